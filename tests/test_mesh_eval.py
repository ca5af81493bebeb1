"""Mesh evaluator: distances against analytic answers for spheres, F-score behaviour at tau, the sampling floor,
mask culling and GT visibility with a rendered scene, and the command-line tool."""
import json
import os
import subprocess
import sys

import jnerf  # noqa: F401  (must precede jittor)
import numpy as np
import pytest
import trimesh

from jnerf.dataset.scene_maker import make_scene
from jnerf.evaluation.mesh_eval import evaluate_mesh, sample_surface, voxel_downsample

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = dict(floor_frac=2e-3, voxel_frac=8e-3)  # coarser than the defaults: these meshes are simple
FINE = dict(floor_frac=1e-3, voxel_frac=4e-3)  # for offsets of 1% of the diagonal


def _sphere(radius=1.0, centre=(0.0, 0.0, 0.0), subdivisions=5):
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    mesh.vertices = mesh.vertices * radius + np.asarray(centre)
    return mesh


def test_mesh_against_itself_is_below_the_floor():
    mesh = _sphere(2.0, centre=(5.0, -1.0, 3.0))
    res = evaluate_mesh(mesh, mesh, seed=1, **FINE)
    assert res["accuracy"] <= res["floor_accuracy"] and res["completeness"] <= res["floor_completeness"]
    assert res["floor_accuracy_frac"] <= 1.01e-3
    assert res["fscore"] == 1.0


def test_offset_copy_gives_the_offset():
    gt = _sphere(1.0)
    offset = 0.02
    grown = trimesh.Trimesh(gt.vertices + offset * gt.vertex_normals, gt.faces, process=False)
    res = evaluate_mesh(grown, gt, **FINE)
    # flat facets put points up to (1 - cos(half facet angle)) closer; the floor adds a little on top
    for key in ("accuracy", "completeness", "chamfer"):
        assert abs(res[key] - offset) < 0.03 * offset, (key, res[key])


def test_spheres_of_different_radius_match_the_analytic_distance():
    inner, outer = _sphere(0.8), _sphere(1.0)
    diag = 2 * np.sqrt(3)  # GT (outer) bbox diagonal
    coarse = dict(floor_frac=4e-3, voxel_frac=1e-2)  # far-apart surfaces make KD-tree queries slow; keep them few
    res = evaluate_mesh(inner, outer, max_dist_frac=1.0, **coarse)
    assert abs(res["accuracy"] - 0.2) < 0.005 and abs(res["completeness"] - 0.2) < 0.005
    assert abs(res["gt_bbox_diagonal"] - diag) < 1e-3 * diag
    assert abs(res["chamfer_frac"] - 0.2 / diag) < 0.005 / diag
    # every distance is 0.2: tau below it scores nothing, tau above it scores everything
    assert evaluate_mesh(inner, outer, tau=0.15, **coarse)["fscore"] == 0.0
    assert evaluate_mesh(inner, outer, tau=0.25, **coarse)["fscore"] == 1.0
    # distances are clamped at max_dist, so far-off predictions cost max_dist, not more
    far = evaluate_mesh(_sphere(1.0, centre=(100.0, 0, 0)), outer, max_dist_frac=0.05, **coarse)
    assert far["accuracy"] == pytest.approx(0.05 * diag) and far["fscore"] == 0.0


def test_fscore_of_half_a_sphere():
    gt = _sphere(1.0)
    upper = gt.submesh([np.nonzero(gt.triangles_center[:, 2] > 0)[0]], append=True)
    tau = 0.1
    res = evaluate_mesh(upper, gt, tau=tau, max_dist_frac=1.0, **FAST)
    # every predicted point lies on the GT. A GT point at height z < 0 is sqrt(2 - 2 sqrt(1 - z^2)) from the rim,
    # which is below tau for |z| < z_limit; sphere area is uniform in z (Archimedes), so recall = (1 + z_limit) / 2
    z_limit = np.sqrt(1 - (1 - tau ** 2 / 2) ** 2)
    expected_recall = 0.5 + z_limit / 2
    assert res["precision"] == 1.0
    assert abs(res["recall"] - expected_recall) < 0.01, (res["recall"], expected_recall)
    expected_f = 2 * expected_recall / (1 + expected_recall)
    assert abs(res["fscore"] - expected_f) < 0.01


def test_sampling_is_uniform_and_deterministic():
    mesh = _sphere(1.0, subdivisions=3)
    rng = np.random.default_rng(0)
    points = sample_surface(mesh.vertices, mesh.faces, 20000, rng)
    assert np.allclose(np.linalg.norm(points, axis=1), 1.0, atol=0.02)
    # area is uniform in z on a sphere: each z-slab holds its share of the points
    counts = np.histogram(points[:, 2], bins=4, range=(-1, 1))[0]
    assert np.all(np.abs(counts / len(points) - 0.25) < 0.01)
    keep = voxel_downsample(points, 0.1, np.random.default_rng(0))
    cells = np.floor((points[keep] - points.min(0)) / 0.1)
    assert len(np.unique(cells, axis=0)) == len(keep)
    a = evaluate_mesh(_sphere(0.99, subdivisions=3), mesh, seed=7, **FAST)
    b = evaluate_mesh(_sphere(0.99, subdivisions=3), mesh, seed=7, **FAST)
    assert a["chamfer"] == b["chamfer"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A sphere seen from the upper hemisphere only, with a hidden inner sphere inside the GT."""
    root = str(tmp_path_factory.mktemp("eval_scene"))
    outer = _sphere(1.0, subdivisions=3)
    hidden = _sphere(0.4, subdivisions=2)
    gt = trimesh.util.concatenate([outer, hidden])
    make_scene(gt, root, n_views=6, width=40, height=40, fov_deg=50.0, hemisphere=True, up="z", seed=0)
    return root, outer, gt


def test_scene_drops_unseen_gt_and_culls_outside_masks(scene):
    root, outer, gt = scene
    gt_path = os.path.join(root, "gt_mesh.ply")
    # without the scene the hidden sphere counts as missed; with it, it is never seen and drops out
    plain = evaluate_mesh(outer, gt_path, **FAST)
    seen = evaluate_mesh(outer, gt_path, scene_dir=root, **FAST)
    assert plain["recall"] < 0.95 and seen["gt_unseen_fraction"] > 0.1
    assert seen["recall"] > 0.99 and seen["completeness"] < 3 * seen["floor_completeness"]
    # junk outside the masks is culled wherever a view sees it off-mask (6 views: most of it, not all)
    junk = trimesh.util.concatenate([outer, _sphere(0.2, centre=(0.0, 1.5, 0.6), subdivisions=2)])
    dirty = evaluate_mesh(junk, gt_path, **FAST)
    clean = evaluate_mesh(junk, gt_path, scene_dir=root, **FAST)
    assert dirty["precision"] < 0.97 and clean["precision"] > dirty["precision"] + 0.02
    assert clean["pred_culled_fraction"] > 0.02 and dirty["pred_culled_fraction"] == 0.0
    # a prediction in the normalised frame is mapped back with scale_mat
    scale_mat = dict(np.load(os.path.join(root, "cameras_sphere.npz")))["scale_mat_0"]
    normalised = trimesh.Trimesh((outer.vertices - scale_mat[:3, 3]) / scale_mat[0, 0], outer.faces)
    back = evaluate_mesh(normalised, gt_path, scene_dir=root, pred_frame="normalised", **FAST)
    assert back["chamfer"] == pytest.approx(seen["chamfer"], rel=0.05)


def test_cli_prints_a_table_and_writes_json(tmp_path):
    mesh_path = str(tmp_path / "s.ply")
    _sphere(1.0, subdivisions=3).export(mesh_path)
    out = str(tmp_path / "m.json")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "eval_mesh.py"), mesh_path, mesh_path,
                           "--json", out, "--floor-frac", "1e-3"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "chamfer" in proc.stdout and "F-score" in proc.stdout
    metrics = json.load(open(out))
    assert metrics["chamfer"] <= metrics["floor_accuracy"]
    bad = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "eval_mesh.py"), mesh_path,
                          str(tmp_path / "missing.ply")], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "missing.ply" in bad.stderr
