"""Faults and bad input: each gives a one-line error naming the file or key (no traceback), or a loud warning, and
loses nothing already written. The cases are the ones a new user hit (see bench/fault_matrix.py for the whole
matrix as a table); each test failed before the fix."""
import errno
import os
import pickle
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from jnerf.runner import build_runner, load_run_config
from jnerf.runner.checkpoint import RunLock, list_checkpoints, load_checkpoint
from jnerf.utils.errors import RunLockedError, TrainingDiverged, UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "projects", "neus", "configs", "instant_neus_tiny_cpu.py")
BUNNY = os.path.join(ROOT, "data", "bunny")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import run_net  # noqa: E402


def opts(tmp_path, *extra):
    return [f"log_dir={str(tmp_path / 'logs')!r}", f"dataset.root={BUNNY!r}", "train.val_every=0",
            "eval.after_training=False", *extra]


def cli(capsys, *argv):
    """run_net.main in this process: (exit code, stderr)."""
    code = run_net.main(list(argv))
    return code, capsys.readouterr().err


def assert_one_line(err, *needles):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), err
    assert "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])


@pytest.fixture
def no_data_loading(monkeypatch):
    """Fails the test if a scene starts loading: these errors must come before minutes of loading, not after."""
    from jnerf.dataset import neus_dataset

    def refuse(*args, **kwargs):
        raise AssertionError("the scene was loaded before the error")
    monkeypatch.setattr(neus_dataset.NeuSDataset, "__init__", refuse)


# ------------------------------------------------------------------------------------ config-time errors (fast)
@pytest.mark.parametrize("override,needles", [
    ("train.total_steps=-5", ["total_steps", "-5"]),
    ("train.total_steps=4.5", ["train.total_steps", "integer"]),
    ("total_steps=abc", ["total_steps"]),
    ("train=5", ["'train'", "dict"]),
    ("renderer.n_rays='many'", ["renderer.n_rays", "integer"]),
])
def test_bad_overrides_are_rejected_before_loading_data(tmp_path, capsys, no_data_loading, override, needles):
    code, err = cli(capsys, "--config-file", TINY, "--opts", *opts(tmp_path, override))
    assert code == 2
    assert_one_line(err, *needles)


def test_config_syntax_error_and_missing_base_name_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("_base_ = 'instant_neus_base.py'\ntrain = dict(total_steps=\n")
    code, err = cli(capsys, "--config-file", str(bad))
    assert code == 2
    assert_one_line(err, f"{bad}:", "syntax error")
    orphan = tmp_path / "orphan.py"
    orphan.write_text("_base_ = 'no_such_base.py'\n")
    code, err = cli(capsys, "--config-file", str(orphan))
    assert_one_line(err, "no_such_base.py", str(orphan))


def test_cuda_without_a_gpu_log_dir_on_a_file_and_eval_without_ground_truth(tmp_path, capsys):
    from jnerf.utils.device import cuda_available
    if not cuda_available():
        code, err = cli(capsys, "--config-file", TINY, "--device", "cuda", "--opts", *opts(tmp_path))
        assert code == 2
        assert_one_line(err, "cuda", "--device cpu")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, err = cli(capsys, "--config-file", TINY, "--opts", *opts(tmp_path), f"log_dir={str(blocker / 'logs')!r}")
    assert code == 2
    assert_one_line(err, "run folder", "log_dir")


def test_eval_without_ground_truth_stops_before_loading(tmp_path, capsys, no_data_loading):
    scene = tmp_path / "no_gt"
    shutil.copytree(BUNNY, scene, ignore=shutil.ignore_patterns("gt_mesh.ply"))
    code, err = cli(capsys, "--config-file", TINY, "--task", "eval", "--opts", *opts(tmp_path),
                    f"dataset.root={str(scene)!r}")
    assert code == 2
    assert_one_line(err, "ground-truth mesh", "gt_mesh.ply")


# ----------------------------------------------------------------------------------------------- data errors
def _scene_copy(tmp_path, n_views=None):
    scene = tmp_path / "scene"
    shutil.copytree(BUNNY, scene)
    if n_views is not None:
        for sub in ("image", "mask"):
            for name in sorted(os.listdir(scene / sub))[n_views:]:
                os.remove(scene / sub / name)
        cams = dict(np.load(scene / "cameras_sphere.npz"))
        np.savez(scene / "cameras_sphere.npz", **{k: v for k, v in cams.items()
                                                  if int(k.rsplit("_", 1)[1]) < n_views})
    return scene


def test_a_single_view_and_inverted_masks_stop_with_a_reason(tmp_path, capsys):
    scene = _scene_copy(tmp_path, n_views=1)
    code, err = cli(capsys, "--config-file", TINY, "--opts", *opts(tmp_path), f"dataset.root={str(scene)!r}")
    assert code == 2
    assert_one_line(err, "1 view", "dataset.min_views")
    inverted = tmp_path / "inverted"
    shutil.copytree(BUNNY, inverted)
    from PIL import Image
    for name in os.listdir(inverted / "mask"):
        mask = np.asarray(Image.open(inverted / "mask" / name))
        Image.fromarray(255 - mask).save(inverted / "mask" / name)
    code, err = cli(capsys, "--config-file", TINY, "--opts", *opts(tmp_path), f"dataset.root={str(inverted)!r}")
    assert code == 2
    assert_one_line(err, "empty visual hull", "inverted")


# ------------------------------------------------------------------------------------------------ checkpoints
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run with checkpoints at steps 10 and 20."""
    tmp = tmp_path_factory.mktemp("trained")
    runner = build_runner(load_run_config(TINY, opts(tmp, "train.total_steps=20", "train.save_every=10",
                                                     "exp_name='run'")))
    runner.step_until(20)
    runner.save()
    runner.lock.release()
    return tmp, runner.ckpt_dir


def test_checkpoint_of_another_model_shape_is_refused(trained, capsys):
    tmp, ckpt_dir = trained
    ckpt = os.path.join(ckpt_dir, "ckpt_00000020.pkl")
    code, err = cli(capsys, "--config-file", TINY, "--task", "mesh", "--ckpt", ckpt, "--opts",
                    *opts(tmp, "exp_name='other'", "model.sdf_network.encoding.log2_hashmap_size=14"))
    assert code == 2
    assert_one_line(err, "encoding.table", "checkpoint [8, 32768, 2]", "model [8, 16384, 2]")
    text = tmp / "notes.txt"
    text.write_text("step 40\n")
    code, err = cli(capsys, "--config-file", TINY, "--task", "mesh", "--ckpt", str(text), "--opts",
                    *opts(tmp, "exp_name='other'"))
    assert code == 2
    assert_one_line(err, str(text), "not a readable jnerf checkpoint")


def test_resume_skips_a_truncated_newest_checkpoint(trained, tmp_path):
    _, ckpt_dir = trained
    copy = tmp_path / "logs" / "run"
    shutil.copytree(os.path.dirname(ckpt_dir), copy)
    newest = copy / "checkpoints" / "ckpt_00000020.pkl"
    newest.write_bytes(newest.read_bytes()[:1000])  # a half-written file
    runner = build_runner(load_run_config(TINY, opts(tmp_path, "exp_name='run'", "train.total_steps=20")),
                          resume=True)
    assert runner.step == 10
    with open(copy / "train.log") as f:
        assert "skipping" in f.read()


def test_two_trainings_cannot_share_a_run_folder_and_a_dead_lock_is_taken_over(tmp_path):
    first = RunLock(str(tmp_path)).acquire()
    RunLock(str(tmp_path)).acquire().release()  # the same process (a notebook rebuilding its runner) may
    first.release()
    # a lock file left by a process that died (the kernel dropped its flock): taken over
    (tmp_path / ".lock").write_text("process 999999 on somewhere since 2026-01-01 00:00:00")
    RunLock(str(tmp_path)).acquire().release()
    # Another process holds it; it exits by itself when its stdin closes (Jittor, loaded in this process, quits
    # the whole process when a child is killed by a signal, so no kill() here).
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys; sys.path.insert(0, %r); from jnerf.runner.checkpoint import RunLock; "
        "lock = RunLock(%r).acquire(); print('locked', flush=True); sys.stdin.read()") % (ROOT, str(tmp_path))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"process {holder.pid}"):
            RunLock(str(tmp_path)).acquire()
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    RunLock(str(tmp_path)).acquire().release()  # free again once the holder is gone


def test_a_full_disk_keeps_the_previous_checkpoint_and_mesh_writes_leave_nothing_half_done(trained, tmp_path,
                                                                                            monkeypatch):
    from jnerf.export import mesh as mesh_ops
    from jnerf.runner import checkpoint
    _, ckpt_dir = trained
    copy = tmp_path / "ckpts"
    shutil.copytree(ckpt_dir, copy)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(checkpoint.pickle, "dump", full_disk)
    with pytest.raises(UserError, match="No space left.*ckpt_00000020.pkl is intact"):
        checkpoint.save_checkpoint(str(copy), 30, {"step": 30, "model": {}})
    assert [os.path.basename(p) for p in list_checkpoints(str(copy))] == ["ckpt_00000010.pkl", "ckpt_00000020.pkl"]
    assert sorted(os.listdir(copy)) == ["ckpt_00000010.pkl", "ckpt_00000020.pkl"]  # no temp file left
    load_checkpoint(str(copy / "ckpt_00000020.pkl"))
    monkeypatch.setattr(mesh_ops, "_write_ply", full_disk)
    with pytest.raises(UserError, match="cannot write mesh"):
        mesh_ops.save_mesh(str(tmp_path / "m.ply"), np.zeros((3, 3)), np.array([[0, 1, 2]]))
    assert not [f for f in os.listdir(tmp_path) if f.startswith("m.ply")]


# ---------------------------------------------------------------------------------------- NaN and interrupts
def test_nan_rolls_back_to_the_last_checkpoint_and_never_writes_nan(tmp_path, monkeypatch):
    from jnerf.models.losses import neus_loss
    original = neus_loss.NeuSLoss.__call__
    planted = {"steps": {15}}

    def poisoned(self, outputs, rgb_gt, mask=None, step=0):
        terms = original(self, outputs, rgb_gt, mask, step)
        if step in planted["steps"]:
            planted["steps"].discard(step)  # once: the rolled-back run does not meet it again
            terms["total"] = terms["total"] * float("nan")
        return terms
    monkeypatch.setattr(neus_loss.NeuSLoss, "__call__", poisoned)
    runner = build_runner(load_run_config(TINY, opts(tmp_path, "train.total_steps=30", "train.save_every=10",
                                                     "train.log_every=5")))
    lr_before = runner.optimizer.param_groups[0]["base_lr"]
    runner.step_until(30)
    assert runner.step == 30 and runner.rollbacks == 1
    assert runner.optimizer.param_groups[0]["base_lr"] == pytest.approx(lr_before / 2)
    for path in list_checkpoints(runner.ckpt_dir):
        assert all(np.all(np.isfinite(v)) for v in load_checkpoint(path)["model"].values()), path
    with open(os.path.join(runner.exp_dir, "train.log")) as f:
        assert "rolled back to" in f.read()
    runner.lock.release()
    planted["steps"] = {3}
    runner = build_runner(load_run_config(TINY, opts(tmp_path, "exp_name='no_ckpt'", "train.total_steps=10",
                                                     "train.save_every=0", "train.log_every=5")))
    with pytest.raises(TrainingDiverged, match="no checkpoint to roll back to"):
        runner.step_until(10)
    assert not list_checkpoints(runner.ckpt_dir)
    runner.lock.release()


def test_ctrl_c_saves_and_exits_130(tmp_path):
    log_dir = tmp_path / "logs"
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "run_net.py"), "--config-file", TINY,
                             "--opts", *opts(tmp_path, "train.log_every=5", "exp_name='ctrlc'")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    for line in proc.stdout:  # the child must end by itself: see the lock test on killing children here
        if "I step 5 |" in line:
            proc.send_signal(signal.SIGINT)
            break
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 130, out
    assert "continue with --resume" in out and "Traceback" not in out
    assert list_checkpoints(str(log_dir / "ctrlc" / "checkpoints"))
