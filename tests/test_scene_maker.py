"""Tests of the synthetic-scene pipeline: camera maths, the exact rasteriser and make_scene / tools/make_scene.py."""
import os
import subprocess
import sys

import jnerf  # noqa: F401  (before anything that imports jittor)
import numpy as np
import pytest
import trimesh
from PIL import Image

from jnerf.dataset import rasterizer
from jnerf.dataset.cameras import (CameraError, decompose_projection, downscale_intrinsics, fibonacci_directions,
                                   load_cameras_npz, look_at_c2w, pixel_directions, project_points,
                                   projection_from_pose)
from jnerf.dataset.rasterizer import rasterize
from jnerf.dataset.scene_maker import make_scene, vertex_normals

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _random_camera(rng):
    intr = np.array([[rng.uniform(80, 400), rng.uniform(-1, 1), rng.uniform(20, 60)],
                     [0, rng.uniform(80, 400), rng.uniform(20, 60)], [0, 0, 1]])
    c2w = look_at_c2w(rng.normal(size=3) * 3 + [0, 0, 4], rng.normal(size=3) * 0.1, [0, 1, 0])
    return intr, c2w


# ----------------------------------------------------------------------------------------------- cameras
def test_decompose_projection_recovers_camera_for_any_scale_and_sign():
    rng = np.random.default_rng(0)
    for _ in range(10):
        intr, c2w = _random_camera(rng)
        proj = projection_from_pose(intr, c2w)[:3] * rng.choice([-1, 1]) * rng.uniform(0.01, 100)
        got_k, got_pose = decompose_projection(proj)
        np.testing.assert_allclose(got_k, intr, rtol=1e-10, atol=1e-8)
        np.testing.assert_allclose(got_pose, c2w, atol=1e-10)


def test_decompose_projection_rejects_degenerate_matrices():
    with pytest.raises(CameraError, match="not invertible"):
        decompose_projection(np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]), where="cam 3")
    with pytest.raises(CameraError, match="NaN or inf"):
        decompose_projection(np.full((3, 4), np.nan))


def test_load_cameras_npz_names_problems(tmp_path):
    intr, c2w = _random_camera(np.random.default_rng(1))
    good = {"world_mat_0": projection_from_pose(intr, c2w), "scale_mat_0": np.eye(4)}
    np.savez(tmp_path / "ok.npz", **good)
    k, poses, scale = load_cameras_npz(str(tmp_path / "ok.npz"), 1)
    np.testing.assert_allclose(poses[0], c2w, atol=1e-10)
    np.savez(tmp_path / "missing.npz", **good)
    with pytest.raises(CameraError, match="world_mat_1"):
        load_cameras_npz(str(tmp_path / "missing.npz"), 2)
    inside = dict(good, scale_mat_0=np.diag([10.0, 10, 10, 1]))  # unit sphere now 10x larger than the camera distance
    np.savez(tmp_path / "inside.npz", **inside)
    with pytest.raises(CameraError, match="inside the unit sphere"):
        load_cameras_npz(str(tmp_path / "inside.npz"), 1)


def test_downscale_intrinsics_keeps_pixel_centres_integer():
    intr, c2w = _random_camera(np.random.default_rng(2))
    for f in (2, 3, 4):
        small = downscale_intrinsics(intr, f)
        u_small = np.array([[0, 0], [5, 7], [11, 3]], dtype=np.float64)
        # the centre of output pixel u' is the centre of the f x f input block, f u' + (f-1)/2
        u_full = f * u_small + (f - 1) / 2
        ray_small = np.c_[u_small, np.ones(3)] @ np.linalg.inv(small).T
        ray_full = np.c_[u_full, np.ones(3)] @ np.linalg.inv(intr).T
        np.testing.assert_allclose(ray_small, ray_full, atol=1e-12)


def test_downscaled_camera_matches_block_averaged_render():
    sphere = trimesh.creation.icosphere(3, radius=0.7)
    intr = np.array([[120.0, 0, 47.5], [0, 120.0, 47.5], [0, 0, 1]])
    c2w = look_at_c2w([0.3, -0.2, -3.0], [0.1, 0.05, 0], [0, 1, 0])
    full = rasterize(sphere.vertices, sphere.faces, intr, c2w, 96, 96)["face_id"] >= 0
    block = full.reshape(24, 4, 24, 4).mean((1, 3)) >= 0.5

    def agreement(small_k):
        return np.mean((rasterize(sphere.vertices, sphere.faces, small_k, c2w, 24, 24)["face_id"] >= 0) == block)

    good = agreement(downscale_intrinsics(intr, 4))
    naive = agreement(np.diag([0.25, 0.25, 1]) @ intr)  # forgets the half-block shift
    assert good >= 0.99 and good > naive


def test_fibonacci_directions_are_even():
    for hemi in (None, [0, 0, 1]):
        dirs = fibonacci_directions(64, hemisphere_axis=hemi)
        np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 1, atol=1e-12)
        angles = np.arccos(np.clip(dirs @ dirs.T, -1, 1)) + np.eye(64) * 10
        nearest = angles.min(1)
        area = 4 * np.pi if hemi is None else 2 * np.pi
        spacing = np.sqrt(area / 64)
        assert nearest.min() > 0.5 * spacing and nearest.max() < 1.5 * spacing
        if hemi is not None:
            assert np.all(dirs[:, 2] > 0)


# ----------------------------------------------------------------------------------------------- rasteriser
def test_rasterizer_is_exact_on_a_tilted_quad():
    corner, edge_a, edge_b = np.array([-0.8, -0.6, 0.3]), np.array([1.5, 0.2, 0.4]), np.array([0.1, 1.3, -0.5])
    verts = np.array([corner, corner + edge_a, corner + edge_a + edge_b, corner + edge_b])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    intr = np.array([[70.0, 0, 31.5], [0, 70.0, 31.5], [0, 0, 1]])
    c2w = look_at_c2w([0.4, -0.3, -3.0], [0, 0, 0], [0, 1, 0])
    out = rasterize(verts, faces, intr, c2w, 64, 64)
    # analytic: intersect every pixel-centre ray with the plane, express the hit in (a, b) plane coordinates
    dirs = pixel_directions(intr, c2w, 64, 64)  # camera-space z = 1, so t is the depth
    normal = np.cross(edge_a, edge_b)
    depth = ((corner - c2w[:3, 3]) @ normal) / (dirs @ normal)
    hits = c2w[:3, 3] + depth[:, None] * dirs
    ab = np.linalg.lstsq(np.stack([edge_a, edge_b], 1), (hits - corner).T, rcond=None)[0].T
    inside = np.all((ab > 1e-6) & (ab < 1 - 1e-6), axis=1)
    clear = np.all((np.abs(ab) > 1e-6) & (np.abs(ab - 1) > 1e-6), axis=1)  # away from edge ties
    got = out["face_id"].ravel() >= 0
    assert inside.sum() > 500
    np.testing.assert_array_equal(got[clear], inside[clear])
    np.testing.assert_allclose(out["depth"].ravel()[inside], depth[inside], rtol=1e-10)
    tri = faces[out["face_id"].ravel()[inside]]
    recon = np.sum(verts[tri] * out["bary"].reshape(-1, 3)[inside][:, :, None], axis=1)
    np.testing.assert_allclose(recon, hits[inside], atol=1e-9)


def test_rasterizer_keeps_the_nearest_surface_and_ignores_chunking(monkeypatch):
    intr = np.array([[50.0, 0, 15.5], [0, 50.0, 15.5], [0, 0, 1]])
    c2w = np.eye(4)
    near = np.array([[-1, -1, 2.0], [1, -1, 2.0], [0, 1, 2.0]])
    far = near * [2, 2, 1] + [0, 0, 1.0]
    for order in ((near, far), (far, near)):
        out = rasterize(np.concatenate(order), np.array([[0, 1, 2], [3, 4, 5]]), intr, c2w, 32, 32)
        np.testing.assert_allclose(out["depth"][16, 16], 2.0)
    sphere = trimesh.creation.icosphere(3)
    cam = look_at_c2w([0, 0, -3.0], [0, 0, 0], [0, 1, 0])
    ref = rasterize(sphere.vertices, sphere.faces, intr, cam, 32, 32)
    monkeypatch.setattr(rasterizer, "_CANDIDATES_PER_CHUNK", 50)
    small = rasterize(sphere.vertices, sphere.faces, intr, cam, 32, 32)
    for key in ref:
        np.testing.assert_array_equal(ref[key], small[key])


# ----------------------------------------------------------------------------------------------- scene maker
def test_vertex_normals_point_outwards_on_a_sphere():
    sphere = trimesh.creation.icosphere(3, radius=2.0)
    radial = sphere.vertices / np.linalg.norm(sphere.vertices, axis=1, keepdims=True)
    cosines = np.sum(vertex_normals(np.asarray(sphere.vertices), sphere.faces) * radial, axis=1)
    assert cosines.min() > 0.999


def _world_mesh():
    """An off-centre ellipsoid in 'millimetres', far from the unit sphere, so normalisation matters."""
    mesh = trimesh.creation.icosphere(3, radius=1.0)
    mesh.vertices = mesh.vertices * [40.0, 25.0, 30.0] + [100.0, -50.0, 20.0]
    return mesh


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("scene")
    mesh_path = str(root / "object.off")
    _world_mesh().export(mesh_path)
    summary = make_scene(mesh_path, str(root / "out"), n_views=12, width=64, height=48, fov_deg=45, seed=3)
    return str(root / "out"), summary


def _read_masks(folder, n):
    return np.stack([np.asarray(Image.open(os.path.join(folder, "mask", f"{i:03d}.png"))) > 127 for i in range(n)])


def test_scene_files_and_normalisation(scene):
    root, summary = scene
    assert sorted(os.listdir(os.path.join(root, "image"))) == [f"{i:03d}.png" for i in range(12)]
    assert sorted(os.listdir(os.path.join(root, "mask"))) == [f"{i:03d}.png" for i in range(12)]
    img = np.asarray(Image.open(os.path.join(root, "image", "000.png")))
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8
    gt = trimesh.load(os.path.join(root, "gt_mesh.ply"), process=False)
    np.testing.assert_allclose(gt.vertices, _world_mesh().vertices, atol=1e-4)  # world units, float32 PLY
    _, c2w, scale_mat = load_cameras_npz(os.path.join(root, "cameras_sphere.npz"), 12)
    normalised = (gt.vertices - scale_mat[:3, 3]) / scale_mat[0, 0]
    np.testing.assert_allclose(np.linalg.norm(normalised, axis=1).max(), 1 / 1.1, rtol=1e-5)
    np.testing.assert_allclose(scale_mat[:3, 3], [100, -50, 20], atol=1e-9)  # bbox centre
    centres = c2w[:, :3, 3]
    assert np.all(np.linalg.norm(centres, axis=1) > 1)
    np.testing.assert_allclose(np.einsum("ni,ni->n", c2w[:, :3, 2], -centres / np.linalg.norm(centres, axis=1,
                                                                                               keepdims=True)), 1)


def _grow_one_pixel(masks):
    """3x3 max filter of bool masks [N,H,W]."""
    padded = np.pad(masks, ((0, 0), (1, 1), (1, 1)))
    h, w = masks.shape[1:]
    return np.any([padded[:, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=0)


def test_gt_vertices_project_into_masks(scene):
    """Round trip: the cameras as a loader decodes them put the GT surface on the rendered silhouettes.

    Vertices on the silhouette rim sit exactly on the mask boundary, so rounding to the nearest pixel centre puts
    some of them just outside; one pixel of slack covers that, while a 1.5 px projection error does not.
    """
    root, _ = scene
    intr, c2w, scale_mat = load_cameras_npz(os.path.join(root, "cameras_sphere.npz"), 12)
    masks = _read_masks(root, 12)
    grown = _grow_one_pixel(masks)
    gt = trimesh.load(os.path.join(root, "gt_mesh.ply"), process=False)
    points = (gt.vertices - scale_mat[:3, 3]) / scale_mat[0, 0]

    def fraction_inside(mask_stack, shift):
        inside = []
        for i in range(12):
            uv, depth = project_points(points, intr[i], c2w[i])
            col, row = np.round(uv + shift).astype(int).T
            assert np.all(depth > 0)
            ok = (col >= 0) & (col < 64) & (row >= 0) & (row < 48)
            inside.append(ok & mask_stack[i, np.clip(row, 0, 47), np.clip(col, 0, 63)])
        return np.mean(inside)

    assert fraction_inside(grown, 0.0) >= 0.995
    assert fraction_inside(masks, 0.0) >= 0.9
    assert fraction_inside(grown, 1.5) < fraction_inside(grown, 0.0) - 0.02


def test_appearance_is_view_independent(scene):
    """A surface point seen in two views has the same colour in both (shading is fixed in the world)."""
    root, _ = scene
    intr, c2w, scale_mat = load_cameras_npz(os.path.join(root, "cameras_sphere.npz"), 12)
    mesh = _world_mesh()
    verts = (mesh.vertices - scale_mat[:3, 3]) / scale_mat[0, 0]
    images = np.stack([np.asarray(Image.open(os.path.join(root, "image", f"{i:03d}.png"))) / 255.0
                       for i in range(12)])
    rasters = [rasterize(verts, mesh.faces, intr[i], c2w[i], 48, 64) for i in range(12)]
    diffs = []
    for i, j in ((0, 1), (0, 2), (3, 5), (6, 7)):
        hit = np.isfinite(rasters[i]["depth"].ravel())
        points = c2w[i, :3, 3] + rasters[i]["depth"].ravel()[hit, None] * pixel_directions(intr[i], c2w[i], 48,
                                                                                           64)[hit]
        uv, depth = project_points(points, intr[j], c2w[j])
        col, row = np.round(uv).astype(int).T
        ok = (col >= 0) & (col < 64) & (row >= 0) & (row < 48)
        seen = np.zeros_like(ok)
        seen[ok] = np.abs(rasters[j]["depth"][row[ok], col[ok]] - depth[ok]) < 0.01
        diffs.append(np.abs(images[i].reshape(-1, 3)[hit][seen] - images[j][row[seen], col[seen]]).mean(1))
    diffs = np.concatenate(diffs)
    assert diffs.size > 200
    assert np.median(diffs) < 0.05


def test_make_scene_is_deterministic_and_hemisphere_works(tmp_path, scene):
    root, _ = scene
    again = make_scene(_world_mesh(), str(tmp_path / "again"), n_views=12, width=64, height=48, fov_deg=45, seed=3)
    for i in (0, 7):
        a = np.asarray(Image.open(os.path.join(root, "image", f"{i:03d}.png")))
        b = np.asarray(Image.open(os.path.join(again["out_dir"], "image", f"{i:03d}.png")))
        np.testing.assert_array_equal(a, b)
    other = make_scene(_world_mesh(), str(tmp_path / "hemi"), n_views=6, width=32, seed=4, hemisphere=True, up="z")
    _, c2w, _ = load_cameras_npz(other["cameras"], 6)
    assert np.all(c2w[:, 2, 3] > 0)


def test_make_scene_rejects_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.ply"):
        make_scene(str(tmp_path / "nothing.ply"), str(tmp_path / "out"))
    with pytest.raises(ValueError, match="axis"):
        make_scene(_world_mesh(), str(tmp_path / "out"), n_views=2, width=16, up="w")


def test_make_scene_cli(tmp_path):
    mesh_path = str(tmp_path / "obj.ply")
    _world_mesh().export(mesh_path)
    out = str(tmp_path / "cli")
    res = subprocess.run([sys.executable, os.path.join(REPO, "tools", "make_scene.py"), mesh_path, out,
                          "--n-views", "3", "--resolution", "24", "16", "--seed", "1"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "wrote 3 views 24x16" in res.stdout
    assert np.asarray(Image.open(os.path.join(out, "mask", "002.png"))).shape == (16, 24)


def test_rich_texture_is_an_option_and_the_default_is_unchanged():
    from jnerf.dataset.scene_maker import surface_albedo
    points = np.random.default_rng(0).uniform(-1, 1, (2000, 3))
    default = surface_albedo(points, seed=3)
    np.testing.assert_array_equal(default, surface_albedo(points, seed=3, texture="blotches"))
    rich = surface_albedo(points, seed=3, texture="rich")
    assert rich.shape == default.shape and 0 <= rich.min() and rich.max() <= 1
    assert np.abs(rich - default).mean() > 0.05
    with pytest.raises(ValueError, match="texture must be one of"):
        surface_albedo(points, texture="marble")
