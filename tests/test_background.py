"""Scenes without masks: the background model beyond the unit sphere (contraction, sampling, opacity), the grid and
box bounded by the unit sphere, meshes culled to it, and the scene maker's textured background."""
import os

import numpy as np
import pytest
import jittor as jt
import trimesh

from jnerf.models.networks.background import BackgroundNeRF, contract, sphere_exit
from jnerf.models.samplers import OccupancyGrid, SceneBox

ENCODING = dict(type="HashGridEncoder", n_levels=4, n_features_per_level=2, log2_hashmap_size=12,
                base_resolution=4, finest_resolution=32, start_level=4)


def _rays(rng, n):
    origins = rng.normal(size=(n, 3))
    origins *= (2.0 + rng.uniform(size=(n, 1))) / np.linalg.norm(origins, axis=1, keepdims=True)  # |o| in [2, 3]
    dirs = rng.normal(size=(n, 3)) - 0.3 * origins                                     # most towards the sphere
    return origins.astype(np.float32), (dirs / np.linalg.norm(dirs, axis=1, keepdims=True)).astype(np.float32)


def test_contraction_and_sphere_exit_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3)) * rng.uniform(0.1, 30, size=(500, 1))
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    expected = np.where(norm <= 1, x, (2 - 1 / norm) * x / norm)
    np.testing.assert_allclose(contract(jt.array(x.astype(np.float32))).numpy(), expected, rtol=1e-5, atol=1e-6)
    o, d = _rays(rng, 300)
    t = sphere_exit(jt.array(o), jt.array(d)).numpy()
    b, c = (o * d).sum(1), (o * o).sum(1) - 1
    disc = b * b - c
    hit = (disc > 0) & (-b + np.sqrt(np.maximum(disc, 0)) > 0)       # the sphere is ahead of the ray, not behind
    np.testing.assert_allclose(np.linalg.norm(o[hit] + t[hit, None] * d[hit], axis=1), 1.0, atol=1e-4)
    assert (~hit).any() and np.all(t[~hit] > 0)


def test_background_is_opaque_beyond_the_sphere_and_learns():
    rng = np.random.default_rng(1)
    o, d = _rays(rng, 64)
    bg = BackgroundNeRF(ENCODING, n_samples=8, hidden_dim=16, feature_dim=7, sh_degree=2)
    t = bg.sample_t(jt.array(o), jt.array(d), None).numpy()
    points = o[:, None] + t[..., None] * d[:, None]
    assert np.all(np.linalg.norm(points, axis=-1) >= 1 - 1e-4) and np.all(np.diff(t, axis=1) > 0)
    colour = bg(jt.array(o), jt.array(d))
    assert colour.shape == [64, 3] and 0 <= colour.min().item() and colour.max().item() <= 1
    target = jt.array(np.tile([[0.9, 0.1, 0.2]], (64, 1)).astype(np.float32))
    optimizer = jt.optim.Adam(bg.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = ((bg(jt.array(o), jt.array(d), jt.rand((64,))) - target) ** 2).mean()
        optimizer.step(loss)
        first = loss.item() if first is None else first
    assert loss.item() < 0.1 * first


def test_renderer_composites_the_background_model_behind_the_object():
    from jnerf.models.networks import InstantNeuS
    from jnerf.models.renderers import NeuSRenderer
    model = InstantNeuS(
        sdf_network=dict(type="SDFNetwork", encoding=dict(ENCODING, start_level=2), bbox_min=[-1, -1, -1],
                         bbox_max=[1, 1, 1], sphere_init_radius=0.4, feature_dim=4),
        color_network=dict(type="ColorNetwork", hidden_dim=16, n_hidden_layers=1, sh_degree=2),
        variance_network=dict(type="VarianceNetwork", init_val=0.5),
        background_network=dict(type="BackgroundNeRF", encoding=ENCODING, n_samples=8, hidden_dim=16,
                                feature_dim=7, sh_degree=2))
    grid = OccupancyGrid([-1, -1, -1], [1, 1, 1], 16)
    grid.bound_by_unit_sphere()
    renderer = NeuSRenderer(model, grid, step_size=0.02, max_steps=256)
    o, d = _rays(np.random.default_rng(2), 32)
    d[:8] = -o[:8] / np.linalg.norm(o[:8], axis=1, keepdims=True)   # these aim at the object (radius 0.4)
    with jt.no_grad():
        out = renderer.render(jt.array(o), jt.array(d))
        bg = model.background_network(jt.array(o), jt.array(d)).numpy()
    opacity = out["opacity"].numpy()
    np.testing.assert_allclose(out["background"].numpy(), bg, atol=1e-6)
    assert opacity.max() > 0.9 and opacity.min() < 0.1  # some rays hit the sphere, some miss it
    fg = out["rgb"].numpy() - (1 - opacity) * bg
    assert np.all(fg >= -1e-5) and np.all(fg <= opacity + 1e-5)
    assert {"encoding", "mlp", "variance"} == {g["name"] for g in model.param_groups()}
    assert any(p is model.background_network.encoding.table for g in model.param_groups() if g["name"] == "encoding"
               for p in g["params"])


def test_without_masks_the_box_and_the_grid_are_the_unit_sphere_s():
    lo, hi = SceneBox(mode="auto").resolve(None, None)
    np.testing.assert_array_equal(lo, -1) and np.testing.assert_array_equal(hi, 1)
    grid = OccupancyGrid(lo, hi, 20)
    kept = grid.bound_by_unit_sphere()
    centres = grid.cell_centres(np.arange(grid.n_cells))
    radius = np.linalg.norm(centres, axis=1)
    assert grid.hull[radius < 1].all() and not grid.hull[radius > 1 + 2 * grid.half_diagonal()].any()
    assert 0.5 < kept < 0.7  # the ball is ~52% of its box, plus the cells the sphere cuts


def test_meshes_are_culled_to_the_unit_sphere():
    from jnerf.export.mesh import submesh
    inner = trimesh.creation.icosphere(subdivisions=2, radius=0.6)
    outer = trimesh.creation.icosphere(subdivisions=2, radius=1.4)
    verts = np.concatenate([inner.vertices, outer.vertices]).astype(np.float32)
    faces = np.concatenate([inner.faces, outer.faces + len(inner.vertices)])
    kept_v, kept_f = submesh(verts, faces, np.all(np.linalg.norm(verts, axis=1)[faces] <= 1.0, 1))
    assert len(kept_f) == len(inner.faces) and np.allclose(np.linalg.norm(kept_v, axis=1), 0.6, atol=1e-5)


def test_scene_maker_background_is_an_environment_at_infinity(tmp_path):
    from PIL import Image
    from jnerf.dataset.cameras import load_cameras_npz, pixel_directions
    from jnerf.dataset.scene_maker import environment_colour, make_scene
    root = str(tmp_path / "env")
    make_scene(trimesh.creation.icosphere(subdivisions=3, radius=0.3), root, n_views=4, width=48, background="env")
    intr, c2w, _ = load_cameras_npz(os.path.join(root, "cameras_sphere.npz"), 4)
    for i in range(4):
        image = np.asarray(Image.open(os.path.join(root, "image", f"{i:03d}.png"))).astype(np.float64) / 255
        mask = np.asarray(Image.open(os.path.join(root, "mask", f"{i:03d}.png"))) > 127
        assert 0.05 < mask.mean() < 0.9
        dirs = pixel_directions(intr[i], c2w[i], 48, 48)
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        expected = environment_colour(dirs.reshape(48, 48, 3)[~mask])
        np.testing.assert_allclose(image[~mask], expected, atol=1 / 255 + 1e-6)
    with pytest.raises(ValueError, match="background"):
        make_scene(trimesh.creation.icosphere(), str(tmp_path / "x"), n_views=2, width=16, background="sky")


def test_no_nan_from_a_uniform_draw_of_one_or_a_ray_without_surface():
    """CUDA's uniform draws include 1.0: the farthest sample must stay finite. A composite normal of exactly zero
    (a ray that met no surface) must give a zero gradient, not NaN (sqrt's derivative at 0)."""
    from jnerf.models.renderers.neus_renderer import safe_normalize
    o, d = _rays(np.random.default_rng(3), 16)
    bg = BackgroundNeRF(ENCODING, n_samples=8, hidden_dim=16, feature_dim=7, sh_degree=2)
    t = bg.sample_t(jt.array(o), jt.array(d), jt.ones((16,))).numpy()
    assert np.all(np.isfinite(t)) and np.all(np.isfinite(bg(jt.array(o), jt.array(d), jt.ones((16,))).numpy()))
    v = jt.array(np.array([[0, 0, 0], [1, 2, 2]], np.float32))
    grad = jt.grad(safe_normalize(v * 2.0, fallback=jt.array(np.eye(3, dtype=np.float32)[:2])).sum(), v).numpy()
    assert np.all(np.isfinite(grad)) and np.all(grad[0] == 0)


@pytest.mark.slow
def test_without_masks_a_tiny_cpu_run_gives_the_object_and_no_background(tmp_path):
    """End to end without masks (the womask config's CPU settings) on a scene with a textured environment: the mesh
    is the object (much closer to the GT than the initial sphere), inside the unit sphere, with no surface far from
    the object (the foreground did not swallow the background)."""
    from jnerf.dataset.scene_maker import make_scene
    from jnerf.evaluation.mesh_eval import evaluate_mesh, nearest_distances, sample_surface
    from jnerf.runner import build_runner, load_run_config
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    scene = str(tmp_path / "bunny_env")
    make_scene(os.path.join(root, "data", "bunny", "gt_mesh.ply"), scene, n_views=32, width=128, background="env")
    cfg = load_run_config(os.path.join(root, "projects", "neus", "configs", "instant_neus_womask.py"),
                          [f"log_dir={str(tmp_path)!r}", f"dataset.root={scene!r}", "train.total_steps=300",
                           "train.val_every=0", "train.save_every=0", "eval.after_training=False"], device="cpu")
    runner = build_runner(cfg)
    assert runner.dataset.masks is None and runner.grid.hull.mean() > 0.5   # no hull: the unit sphere's cells
    gt = os.path.join(scene, "gt_mesh.ply")
    initial = evaluate_mesh(runner.mesh(tag="init"), gt, seed=0)["chamfer_frac"]
    runner.train()
    final = evaluate_mesh(runner.last_mesh, gt, seed=0)["chamfer_frac"]
    print(f"without masks: Chamfer/diag initial sphere {initial:.4f}, after {runner.step} steps {final:.4f}")
    # Without masks a 300-step CPU run is far from converged (about 3x the masked run's Chamfer; the full config on
    # the GPU is the real check, bench_womask.py), but it must already be well on its way to the object.
    assert final <= initial / 2
    mesh, truth = trimesh.load(runner.last_mesh, process=False), trimesh.load(gt, process=False)
    scale_mat = np.load(os.path.join(scene, "cameras_sphere.npz"))["scale_mat_0"]
    inside = (np.asarray(mesh.vertices) - scale_mat[:3, 3]) / scale_mat[0, 0]
    assert np.linalg.norm(inside, axis=1).max() <= 1.0 + 1e-4                    # culled to the unit sphere
    diag = float(np.linalg.norm(truth.extents))
    rng = np.random.default_rng(0)
    pred = sample_surface(np.asarray(mesh.vertices), np.asarray(mesh.faces), 50000, rng)
    dist = nearest_distances(pred, sample_surface(np.asarray(truth.vertices), np.asarray(truth.faces), 200000, rng),
                             diag)
    assert np.mean(dist > 0.1 * diag) == 0.0                                      # no background floaters


def test_background_encodes_detached_points(monkeypatch):
    """The background's hash encoding needs no d/dx: its input must be detached, or the CUDA backward adds d/dx
    atomics (Jittor does not carry stop_grad to derived vars)."""
    rng = np.random.default_rng(2)
    o, d = _rays(rng, 16)
    bg = BackgroundNeRF(ENCODING, n_samples=8, hidden_dim=16, feature_dim=7, sh_degree=2)
    seen = []
    execute = bg.encoding.execute

    def spy(x):
        seen.append(x.is_stop_grad())
        return execute(x)

    monkeypatch.setattr(bg.encoding, "execute", spy)
    bg(jt.array(o), jt.array(d), jt.rand((16,)))
    assert seen == [True]
