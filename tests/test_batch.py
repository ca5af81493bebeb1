"""Batches of scenes on Dask (tools/run_batch.py), on the CPU with tiny scenes made by the scene maker: a bad scene
fails alone with its error in the table, a worker killed mid-scene is retried and resumes from a checkpoint, a
re-run (here through an existing cluster, --scheduler) skips the finished scenes, and (slow) Ctrl-C leaves
resumable checkpoints and a training killed by a signal is retried.

The batches run as subprocesses of the test: this process may have imported Jittor (other test modules), and Jittor
kills its process when a child dies by a signal; the killed workers and trainings here are grandchildren.
"""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import trimesh

from jnerf.batch.scenes import find_scenes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "projects", "neus", "configs", "instant_neus_tiny_cpu.py")
RUN_BATCH = os.path.join(ROOT, "tools", "run_batch.py")
# Tiny trainings: 64x64 images, ~4k samples a step, a checkpoint every 10 steps, a 48^3 mesh.
FAST = ["train.total_steps=30", "train.save_every=10", "train.log_every=5", "train.val_every=0",
        "dataset.downscale=1", "mesh.resolution=48", "renderer.target_samples=4096", "renderer.n_rays=128",
        "renderer.min_rays=64", "renderer.free_points=256"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """capsule (with ground truth), box (without; its jnerf_opts.txt asks for a 40^3 mesh) and broken (an image
    deleted, its camera kept)."""
    from jnerf.dataset.scene_maker import make_scene
    root = tmp_path_factory.mktemp("scenes")
    make_scene(trimesh.creation.capsule(height=0.8, radius=0.35), str(root / "capsule"), n_views=16, width=64)
    make_scene(trimesh.creation.box(extents=(1.0, 0.6, 0.4)), str(root / "box"), n_views=16, width=64, seed=1)
    os.remove(root / "box" / "gt_mesh.ply")
    (root / "box" / "jnerf_opts.txt").write_text("# this scene's own overrides\nmesh.resolution=40\n")
    shutil.copytree(root / "box", root / "broken")
    os.remove(root / "broken" / "image" / "005.png")
    return root


def batch_args(scenes_arg, log_dir, name, *extra):
    return [RUN_BATCH, "--config-file", TINY, "--scenes", str(scenes_arg), "--name", name, *extra, "--opts",
            f"log_dir={str(log_dir)!r}", *FAST]


def results(batch_dir):
    with open(os.path.join(batch_dir, "results.csv"), newline="") as f:
        return {row["scene"]: row for row in csv.DictReader(f)}


def wait_for(predicate, proc, what, timeout=900):
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, f"the batch ended before {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def log_has(path, text):
    return os.path.isfile(path) and text in open(path, errors="replace").read()


def trainer_pid(run_dir):
    """The pid of the training that holds a run folder (its .lock says 'process PID on HOST since ...')."""
    with open(os.path.join(run_dir, ".lock")) as f:
        return int(f.read().split()[1])


def test_bad_scene_fails_alone_a_killed_worker_resumes_and_a_rerun_skips_finished_scenes(scenes, tmp_path):
    import psutil
    log_dir, batch_dir = tmp_path / "logs", tmp_path / "logs" / "scenes"
    out = open(tmp_path / "batch.txt", "w")
    proc = subprocess.Popen([sys.executable, *batch_args(scenes, log_dir, "scenes", "--workers", "2")], cwd=ROOT,
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        capsule_log = batch_dir / "capsule" / "train.log"
        wait_for(lambda: log_has(capsule_log, "checkpoint: "), proc, "capsule's first checkpoint")
        worker = psutil.Process(trainer_pid(batch_dir / "capsule")).ppid()
        assert worker != proc.pid  # a worker process of the embedded cluster, not the client
        os.kill(worker, signal.SIGKILL)
        proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=300)
    output = open(tmp_path / "batch.txt").read()
    assert proc.returncode == 1, output  # one scene failed
    assert "Traceback" not in output, output
    rows = results(batch_dir)
    assert [rows[s]["status"] for s in ("box", "broken", "capsule")] == ["done", "failed", "done"], rows

    # the broken scene: the loader's one-line error, naming the image that is missing
    assert "no image/005.png" in rows["broken"]["error"] and "\n" not in rows["broken"]["error"]
    assert rows["broken"]["mesh"] == ""

    # the killed worker's scene: its training saved when the worker died, the retry resumed from that checkpoint
    capsule = rows["capsule"]
    assert capsule["attempt"] == "2" and int(capsule["resumed_from"]) >= 10, capsule
    log = open(capsule_log).read()
    assert "interrupt: finishing this step and saving a checkpoint" in log
    assert f"restored the state of step {capsule['resumed_from']}" in log
    assert capsule["mesh"].endswith("capsule/mesh_step000030_res48.ply")
    assert len(trimesh.load(capsule["mesh"], process=False).faces) > 1000
    scores = json.load(open(batch_dir / "capsule" / "eval_step000030.json"))
    assert float(capsule["chamfer"]) == pytest.approx(scores["chamfer"]) and np.isfinite(scores["chamfer"])
    assert float(capsule["fscore"]) == pytest.approx(scores["fscore"]) and float(capsule["train_seconds"]) > 0

    # the scene without ground truth: a mesh at its own resolution (jnerf_opts.txt), no scores
    box = rows["box"]
    assert box["mesh"].endswith("box/mesh_step000030_res40.ply") and os.path.isfile(box["mesh"])
    assert box["chamfer"] == "" and box["fscore"] == "" and box["attempt"] == "1" and box["resumed_from"] == ""
    table = open(batch_dir / "results.md").read()
    assert "| capsule | done |" in table and "no image/005.png" in table

    # the same batch again, through an existing cluster: the finished scenes are skipped, the broken one runs again
    mtimes = {s: os.path.getmtime(rows[s]["mesh"]) for s in ("box", "capsule")}
    wrapper = tmp_path / "existing_cluster.py"
    wrapper.write_text(textwrap.dedent(f"""
        import sys
        from distributed import LocalCluster
        sys.path.insert(0, {os.path.join(ROOT, 'tools')!r})
        import run_batch
        if __name__ == "__main__":
            with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None, memory_limit=0) as cluster:
                argv = {batch_args(scenes, log_dir, "scenes")[1:]!r}
                sys.exit(run_batch.main(argv + ["--scheduler", cluster.scheduler_address]))
    """))
    env = dict(os.environ, PYTHONPATH=ROOT)
    rerun = subprocess.run([sys.executable, str(wrapper)], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 1, rerun.stdout + rerun.stderr
    assert "3 scene(s), 2 finished before" in rerun.stdout and "1 scene(s) to run on the cluster at" in rerun.stdout
    rows = results(batch_dir)
    assert [rows[s]["status"] for s in ("box", "broken", "capsule")] == ["skipped", "failed", "skipped"], rows
    assert rows["capsule"]["chamfer"] == capsule["chamfer"] and rows["box"]["mesh"] == box["mesh"]
    assert {s: os.path.getmtime(rows[s]["mesh"]) for s in ("box", "capsule")} == mtimes
    assert "no image/005.png" in rows["broken"]["error"]
    assert open(batch_dir / "broken" / "console.txt").read().count("=== jnerf batch run") == 2


# ---------------------------------------------------------------------------------------- fast: no training
def test_scene_folders_lists_and_per_scene_overrides(tmp_path):
    for name in ("b", "a", ".hidden"):
        (tmp_path / "many" / name).mkdir(parents=True)
    (tmp_path / "many" / "a" / "jnerf_opts.txt").write_text("train.total_steps=7  # short\n\nmesh.resolution=64\n")
    found = find_scenes(str(tmp_path / "many"))
    assert [(s.name, s.opts) for s in found] == [("a", ("train.total_steps=7", "mesh.resolution=64")), ("b", ())]
    assert found[0].root == str(tmp_path / "many" / "a")
    # a list: folders relative to the list file; the line's overrides come after the folder's own
    (tmp_path / "list.txt").write_text("# two scenes\nmany/a train.total_steps=9 'mesh.postprocess=dict(a=1, b=2)'\n"
                                       "\nmany/b\n")
    found = find_scenes(str(tmp_path / "list.txt"))
    assert [(s.name, s.opts) for s in found] == [
        ("a", ("train.total_steps=7", "mesh.resolution=64", "train.total_steps=9", "mesh.postprocess=dict(a=1, b=2)")),
        ("b", ())]


@pytest.mark.parametrize("setup,argv,needles", [
    (None, ["--opts", "train.total_stpes=5"], ["train.total_stpes", "Did you mean 'total_steps'"]),
    (None, ["--opts", "exp_name='x'"], ["exp_name", "the batch sets"]),
    (None, ["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], ["--workers and --gpus", "--scheduler"]),
    ("scene", [], ["is a scene folder itself"]),
    ("twins", [], ["two scenes are named 'a'"]),
    ("bad_opts", [], ["jnerf_opts.txt:1", "key=value"]),
])
def test_batch_input_errors_are_one_line_before_any_cluster_starts(tmp_path, capsys, setup, argv, needles):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import run_batch
    folder = tmp_path / "many"
    (folder / "a").mkdir(parents=True)
    spec = folder
    if setup == "scene":
        (folder / "cameras_sphere.npz").write_bytes(b"")
    elif setup == "twins":
        (tmp_path / "other" / "a").mkdir(parents=True)
        (tmp_path / "list.txt").write_text("many/a\nother/a\n")
        spec = tmp_path / "list.txt"
    elif setup == "bad_opts":
        (folder / "a" / "jnerf_opts.txt").write_text("mesh.resolution 64\n")
    code = run_batch.main(["--config-file", TINY, "--scenes", str(spec), *argv])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not os.path.exists(os.path.join(ROOT, "logs", "many"))


def test_scene_processes_do_not_inherit_dask_worker_thread_settings(monkeypatch):
    """On an existing cluster the scene gets the worker's environment less what Dask's nanny injected for its own
    threads (OMP_NUM_THREADS=1 would slow a CPU training and change its sums); a value the nanny did not set
    stays. On the embedded cluster it gets the client's environment and the worker's GPU pin."""
    from jnerf.batch.task import SceneJob, child_environment
    job = SceneJob(name="a", scene_dir="/s", batch_dir="/b", config_file="/c.py", opts=(), stop_event="e",
                   batch_run="r", cwd="/")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "4")
    monkeypatch.setenv("PYTHONHASHSEED", "6640")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    env = child_environment(job)
    assert "OMP_NUM_THREADS" not in env and "PYTHONHASHSEED" not in env
    assert env["MKL_NUM_THREADS"] == "4" and env["CUDA_VISIBLE_DEVICES"] == "3"
    local = SceneJob(**{**job.__dict__, "env": {"OMP_NUM_THREADS": "8", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}})
    assert child_environment(local) == {"OMP_NUM_THREADS": "8", "CUDA_VISIBLE_DEVICES": "3"}


def test_embedded_cluster_pins_one_gpu_per_worker_also_after_a_restart(tmp_path):
    """Worker i sees GPU gpus[i % n] (CUDA_VISIBLE_DEVICES from its nanny, which the scene processes inherit); a
    killed worker comes back with the same pin. Pins are only environment values here: no GPU needed. In a
    subprocess, since the workers are children of the process that starts the cluster (see the module doc)."""
    script = tmp_path / "pins.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys, time
        sys.path.insert(0, {ROOT!r})
        from jnerf.batch.cluster import start_local_cluster
        if __name__ == "__main__":
            cluster, client = start_local_cluster(3, ["5", "7"], log_file={str(tmp_path / "dask.log")!r})
            pins = lambda: (os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES"))
            before = client.run(pins)
            victim = next(pid for pid, gpu in before.values() if gpu == "7")
            os.kill(victim, signal.SIGKILL)
            deadline = time.time() + 60
            while time.time() < deadline:
                after = client.run(pins, on_error="ignore")  # the dead one cannot answer
                if len(after) == 3 and victim not in [pid for pid, _ in after.values()]:
                    break
                time.sleep(0.5)
            print(sorted(gpu for _, gpu in before.values()), sorted(gpu for _, gpu in after.values()))
            client.close(); cluster.close()
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "['5', '5', '7'] ['5', '5', '7']"


# ------------------------------------------------------------------------------------------------------ slow
@pytest.mark.slow
def test_ctrl_c_leaves_resumable_checkpoints_and_a_killed_training_is_retried(scenes, tmp_path):
    log_dir, batch_dir = tmp_path / "logs", tmp_path / "logs" / "two"
    (tmp_path / "two.txt").write_text(f"{scenes / 'capsule'} train.total_steps=60\n{scenes / 'box'}\n")
    args = batch_args(tmp_path / "two.txt", log_dir, "two", "--workers", "2")
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        box_log = batch_dir / "box" / "train.log"
        wait_for(lambda: log_has(box_log, "checkpoint: "), proc, "box's first checkpoint")
        os.kill(trainer_pid(batch_dir / "box"), signal.SIGKILL)  # the training alone, as the OOM killer would
        wait_for(lambda: log_has(box_log, "restored the state of step"), proc, "box's retry")
        wait_for(lambda: log_has(batch_dir / "capsule" / "train.log", "checkpoint: "), proc, "capsule's checkpoint")
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C on the terminal reaches the whole foreground group
        output = proc.communicate(timeout=300)[0]
    finally:
        if proc.poll() is None:  # SIGINT, not a kill: Jittor in this process would die with its killed child
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=300)
    assert proc.returncode == 130, output
    assert "stopping:" in output and "Traceback" not in output, output
    rows = results(batch_dir)
    stopped_at = {}
    for scene in ("box", "capsule"):
        row = rows[scene]
        if row["status"] == "done":  # box may have finished before the Ctrl-C
            continue
        assert row["status"] == "interrupted" and "a re-run resumes from step" in row["error"], row
        stopped_at[scene] = int(row["error"].rsplit(" ", 1)[1])
        assert os.path.isfile(batch_dir / scene / "checkpoints" / f"ckpt_{stopped_at[scene]:08d}.pkl")
    assert "capsule" in stopped_at
    deadline = time.time() + 30  # the workers and Dask's resource tracker exit just after the client
    while _processes_of(batch_dir, proc.pid) and time.time() < deadline:
        time.sleep(0.5)
    assert not _processes_of(batch_dir, proc.pid), "processes outlived the batch"

    rerun = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    rows = results(batch_dir)
    assert rows["capsule"]["status"] == "done" and int(rows["capsule"]["resumed_from"]) == stopped_at["capsule"]
    assert rows["capsule"]["mesh"].endswith("mesh_step000060_res48.ply")
    assert rows["box"]["status"] in ("done", "skipped") and os.path.isfile(rows["box"]["mesh"])


def _processes_of(batch_dir, client_pid):
    """Processes of a batch still alive: its client's session (the client, the workers) and the trainings, which
    run in sessions of their own and name the batch folder on their command line."""
    import psutil
    alive = []
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if os.getsid(p.pid) == client_pid or str(batch_dir) in " ".join(p.info["cmdline"] or []):
                alive.append(p.info)
        except (OSError, psutil.Error):
            continue
    return alive
