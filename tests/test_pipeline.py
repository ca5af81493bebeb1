"""End to end on the CPU: the tiny config trains on the bundled bunny, the exported world-space coloured mesh
gets much closer to the ground truth than the initial sphere, and an interrupted run resumes at the right step."""
import os
import sys

import numpy as np
import pytest
import trimesh


from jnerf.runner import build_runner, load_run_config
from jnerf.runner.checkpoint import latest_checkpoint, list_checkpoints
from jnerf.evaluation.mesh_eval import evaluate_mesh

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "projects", "neus", "configs", "instant_neus_tiny_cpu.py")
GT = os.path.join(ROOT, "data", "bunny", "gt_mesh.ply")


def tiny_cfg(tmp_path, *opts):
    return load_run_config(TINY, [f"log_dir={str(tmp_path)!r}", f"dataset.root={os.path.join(ROOT, 'data', 'bunny')!r}",
                              *opts])


def chamfer(path):
    return evaluate_mesh(path, GT, scene_dir=None, seed=0)["chamfer"]


def test_tiny_training_beats_initial_sphere_by_3x(tmp_path):
    runner = build_runner(tiny_cfg(tmp_path, "train.val_every=0", "train.save_every=0", "train.total_steps=250"))
    initial = chamfer(runner.mesh(tag="init"))
    runner.train()  # trains, saves, exports the final mesh and evaluates it
    final_path = runner.last_mesh
    final = chamfer(final_path)
    print(f"chamfer: initial sphere {initial:.4f}, after {runner.step} steps {final:.4f}")
    assert final <= initial / 3

    mesh = trimesh.load(final_path, process=False)
    colors = np.asarray(mesh.visual.vertex_colors)[:, :3].astype(float)
    assert len(mesh.faces) > 1000 and colors.std() > 5  # coloured, not a constant placeholder
    gt = trimesh.load(GT, process=False)
    # world units: the mesh overlaps the GT's box, not the normalised unit sphere
    assert np.allclose(mesh.bounds, gt.bounds, atol=0.1 * np.linalg.norm(gt.extents))
    assert os.path.isfile(os.path.join(runner.exp_dir, "config.py"))
    assert latest_checkpoint(runner.ckpt_dir).endswith(f"ckpt_{runner.step:08d}.pkl")
    # metrics a person can plot: one CSV row per log line, TensorBoard events, and a plot
    import csv
    with open(os.path.join(runner.exp_dir, "metrics.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(50, 251, 50))
    assert all(float(r["loss"]) > 0 and float(r["psnr"]) > 5 and float(r["train_seconds"]) > 0 for r in rows)
    assert float(rows[-1]["psnr"]) > float(rows[0]["psnr"])
    assert [f for f in os.listdir(os.path.join(runner.exp_dir, "tb")) if f.startswith("events.out.tfevents")]
    assert os.path.getsize(os.path.join(runner.exp_dir, "metrics.png")) > 10000


def test_resume_continues_at_the_saved_step(tmp_path):
    opts = ("train.val_every=0", "train.save_every=10", "train.keep_checkpoints=2", "train.log_every=10")
    first = build_runner(tiny_cfg(tmp_path, "train.total_steps=20", *opts), task="train")
    first.step_until(20)
    assert [os.path.basename(p) for p in list_checkpoints(first.ckpt_dir)] == ["ckpt_00000010.pkl",
                                                                               "ckpt_00000020.pkl"]
    adam_steps = first.optimizer.n_step
    sdf_weight = first.model.sdf_network.mlp.linears[0].weight.numpy()

    second = build_runner(tiny_cfg(tmp_path, "train.total_steps=30", *opts), task="train", resume=True)
    assert second.step == 20 and second.optimizer.n_step == adam_steps
    np.testing.assert_array_equal(second.model.sdf_network.mlp.linears[0].weight.numpy(), sdf_weight)
    assert second.renderer.n_rays == first.renderer.n_rays
    np.testing.assert_array_equal(second.grid.occupied.numpy(), first.grid.occupied.numpy())
    second.step_until(30)
    assert second.step == 30 and os.path.basename(latest_checkpoint(second.ckpt_dir)) == "ckpt_00000030.pkl"


def test_training_keeps_its_mesh_when_the_evaluator_cannot_import(tmp_path, monkeypatch):
    """A broken scipy (e.g. built for another numpy) must not turn a finished run into a failure."""
    import jnerf.evaluation.mesh_eval as mesh_eval

    assert mesh_eval.missing_dependency() is None  # this machine's scipy and trimesh work
    monkeypatch.setitem(sys.modules, "scipy.spatial", None)  # import scipy.spatial now raises ImportError
    assert "scipy.spatial" in mesh_eval.missing_dependency()
    monkeypatch.setattr(mesh_eval, "missing_dependency",
                        lambda: "AttributeError: module 'numpy' has no attribute 'long'")
    runner = build_runner(tiny_cfg(tmp_path, "train.total_steps=2", "train.val_every=0", "train.save_every=2",
                                   "mesh.resolution=32"))
    runner.train()
    assert os.path.isfile(runner.last_mesh) and runner.step == 2
    assert not [f for f in os.listdir(runner.exp_dir) if f.startswith("eval_")]
    with open(os.path.join(runner.exp_dir, "train.log")) as f:
        log = f.read()
    assert "evaluation skipped (AttributeError: module 'numpy' has no attribute 'long')" in log
    assert log.count("checkpoint: ") == 1  # the periodic save at the last step is not written twice


def test_schedules_follow_train_total_steps_and_the_sdf_levels(tmp_path):
    """Changing train.total_steps alone gives a finished lr schedule, and the curvature schedule follows the SDF
    network's level schedule: neither is a second number a user has to keep equal."""
    runner = build_runner(tiny_cfg(tmp_path, "train.total_steps=123", "model.sdf_network.warmup_steps=40",
                                   "model.sdf_network.level_steps=7"))
    scheduler = runner.scheduler
    assert scheduler.total_steps == 123
    assert scheduler.factor(123) == pytest.approx(scheduler.min_factor)
    encoding = runner.model.sdf_network.encoding
    assert runner.loss_fn.curvature_schedule == dict(
        warmup_steps=40, level_steps=7, decay=pytest.approx(encoding.per_level_scale),
        decay_levels=encoding.n_levels - encoding.start_level - 1)
