"""Mesh export, checkpoints and optimisers: marching cubes of an analytic sphere, world units, colours,
floater removal, atomic keep-last-K checkpoints, Adam groups and the warm-up + cosine schedule."""
import math
import os

import numpy as np
import pytest
import trimesh

import jittor as jt
from jnerf.optims import Adam, WarmupCosineLR
from jnerf.runner.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from jnerf.dataset.cameras import normalised_to_world, world_to_normalised
from jnerf.export import mesh as mesh_utils
from jnerf.utils.errors import UserError
from jnerf.utils.registry import ConfigKeyError

CENTRE, RADIUS = np.array([0.1, -0.2, 0.05], np.float32), 0.6
LO, HI = [-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]


def sphere_sdf(pts):
    return np.linalg.norm(pts - CENTRE, axis=1) - RADIUS


def test_marching_cubes_of_a_sphere_lies_within_a_voxel_and_faces_outwards():
    res = 64
    volume = mesh_utils.evaluate_sdf_volume(sphere_sdf, LO, HI, res, chunk=5000, progress=False)
    verts, faces = mesh_utils.marching_cubes(volume, LO, HI)
    voxel = 2.0 / (res - 1)
    radii = np.linalg.norm(verts - CENTRE, axis=1)
    assert np.abs(radii - RADIUS).max() < voxel
    tri = verts[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    outward = np.einsum("ij,ij->i", normals, tri.mean(1) - CENTRE)
    assert (outward > 0).mean() > 0.99
    area = trimesh.Trimesh(verts, faces).area
    assert area == pytest.approx(4 * math.pi * RADIUS ** 2, rel=0.02)


def test_volume_takes_the_prior_for_skipped_points_and_errors_without_surface():
    calls = []

    def counting_sdf(pts):
        calls.append(len(pts))
        return sphere_sdf(pts)

    def prior(pts):  # evaluate near the surface; elsewhere the sign is known
        d = sphere_sdf(pts)
        return np.abs(d) < 0.2, np.where(d < 0, -0.5, 0.5).astype(np.float32)
    volume = mesh_utils.evaluate_sdf_volume(counting_sdf, LO, HI, 32, chunk=4096, prior_fn=prior, progress=False)
    full = mesh_utils.evaluate_sdf_volume(sphere_sdf, LO, HI, 32, chunk=4096, progress=False)
    assert sum(calls) < 32 ** 3 / 2
    np.testing.assert_array_equal(np.sign(volume), np.sign(full))
    assert volume.min() == -0.5 and volume.max() == 0.5
    with pytest.raises(ValueError, match="never crosses"):
        mesh_utils.marching_cubes(np.ones((8, 8, 8), np.float32), LO, HI)


def test_world_units_colours_and_floater_removal(tmp_path):
    volume = mesh_utils.evaluate_sdf_volume(sphere_sdf, LO, HI, 32, progress=False)
    verts, faces = mesh_utils.marching_cubes(volume, LO, HI)
    floater = trimesh.creation.icosphere(subdivisions=1, radius=0.05)
    all_v = np.concatenate([verts, floater.vertices + 0.9]).astype(np.float32)
    all_f = np.concatenate([faces, floater.faces + len(verts)])
    kept_v, kept_f = mesh_utils.keep_large_components(all_v, all_f)
    assert len(kept_f) == len(faces) and np.allclose(np.sort(kept_v, 0), np.sort(verts, 0))

    scale_mat = np.diag([2.0, 2.0, 2.0, 1.0])
    scale_mat[:3, 3] = [10.0, 0.0, -5.0]
    world = normalised_to_world(kept_v, scale_mat)
    np.testing.assert_allclose(world, kept_v * 2 + [10.0, 0.0, -5.0], rtol=1e-6)
    np.testing.assert_allclose(world_to_normalised(world, scale_mat), kept_v, atol=1e-6)
    colors = np.random.default_rng(0).random((len(world), 3)).astype(np.float32)
    path = mesh_utils.save_mesh(str(tmp_path / "m.ply"), world, kept_f, colors)
    back = trimesh.load(path, process=False)
    np.testing.assert_allclose(back.vertices, world, atol=1e-5)
    np.testing.assert_allclose(np.asarray(back.visual.vertex_colors)[:, :3] / 255.0, colors, atol=1 / 255)
    assert os.listdir(tmp_path) == ["m.ply"]  # no temp file left behind
    with pytest.raises(ValueError, match="not supported"):
        mesh_utils.save_mesh(str(tmp_path / "m.stl"), world, kept_f)


def test_components_match_trimesh_split_and_obj_round_trips(tmp_path):
    """The numpy union-find labels components as trimesh's graph split does, on many small parts with shuffled
    vertex order (long hook chains), and the OBJ writer round-trips positions, faces and colours."""
    rng = np.random.default_rng(1)
    parts = [trimesh.creation.icosphere(subdivisions=int(rng.integers(0, 3)), radius=0.1) for _ in range(40)]
    parts = [trimesh.Trimesh(p.vertices + rng.normal(size=3) * 3, p.faces) for p in parts]
    merged = trimesh.util.concatenate(parts)
    perm = rng.permutation(len(merged.vertices))            # vertex i of the merged mesh -> perm[i]
    verts = np.empty_like(merged.vertices)
    verts[perm] = merged.vertices
    faces = perm[merged.faces]
    labels = mesh_utils.connected_components(len(verts), faces)
    face_labels = labels[faces]
    assert (face_labels == face_labels[:, :1]).all()        # a face lies in one component
    sizes = sorted(np.unique(face_labels[:, 0], return_counts=True)[1])
    reference = sorted(len(p.faces) for p in trimesh.Trimesh(verts, faces, process=False).split(only_watertight=False))
    assert sizes == reference and len(sizes) == 40

    kept_v, kept_f = mesh_utils.keep_large_components(verts, faces, min_fraction=0.03, largest_only=False)
    assert len(kept_f) == sum(s for s in reference if s >= 0.03 * len(faces)) and kept_f.max() == len(kept_v) - 1
    colors = rng.random((len(kept_v), 3))
    back = trimesh.load(mesh_utils.save_mesh(str(tmp_path / "m.obj"), kept_v, kept_f, colors), process=False)
    np.testing.assert_allclose(back.vertices, kept_v, atol=1e-5)
    np.testing.assert_array_equal(back.faces, kept_f)
    np.testing.assert_allclose(np.asarray(back.visual.vertex_colors)[:, :3] / 255.0, colors, atol=1.5 / 255)


def test_checkpoints_are_atomic_numbered_and_pruned(tmp_path):
    d = str(tmp_path / "ckpt")
    for step in (5, 100, 20, 1000):
        save_checkpoint(d, step, {"step": step, "model": {}}, keep_last=2)
    assert [os.path.basename(p) for p in list_checkpoints(d)] == ["ckpt_00000100.pkl", "ckpt_00001000.pkl"]
    assert load_checkpoint(latest_checkpoint(d))["step"] == 1000
    (tmp_path / "ckpt" / "ckpt_00002000.pkl.tmp.123").write_bytes(b"partial")  # an interrupted write
    assert latest_checkpoint(d).endswith("ckpt_00001000.pkl")
    broken = tmp_path / "ckpt" / "ckpt_00003000.pkl"
    broken.write_bytes(b"\x80\x04trunc")
    with pytest.raises(UserError, match="not a readable jnerf checkpoint"):
        load_checkpoint(str(broken))


def test_adam_groups_schedule_and_state_round_trip():
    a, b = jt.array(np.ones(3, np.float32)), jt.array(np.zeros(2, np.float32))
    groups = [dict(name="encoding", params=[a]), dict(name="mlp", params=[b])]
    opt = Adam(groups, lr=1e-2, group_lr=dict(encoding=1e-1))
    assert [g["lr"] for g in opt.param_groups] == [1e-1, 1e-2]
    with pytest.raises(ConfigKeyError, match="encodng"):
        Adam(groups, group_lr=dict(encodng=1.0))
    sched = WarmupCosineLR(opt, total_steps=100, warmup_steps=10, min_factor=0.1, warmup_start=0.0)
    assert sched.step(0) == 0.0 and sched.step(5) == pytest.approx(0.5) and sched.step(10) == pytest.approx(1.0)
    assert sched.step(55) == pytest.approx(0.1 + 0.9 * 0.5) and sched.step(100) == pytest.approx(0.1)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-2)  # 0.1 * base lr of the group
    for _ in range(3):
        opt.step(((a - 2) ** 2).sum() + ((b + 1) ** 2).sum())
    state = opt.state_dict()
    fresh = Adam([dict(name="encoding", params=[jt.array(a.numpy())]), dict(name="mlp", params=[jt.array(b.numpy())])])
    fresh.load_state_dict(state)
    assert fresh.n_step == 3
    for g_old, g_new in zip(opt.param_groups, fresh.param_groups):
        for key in ("values", "m"):
            for x, y in zip(g_old[key], g_new[key]):
                np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_postprocess_decimates_smooths_closes_holes_and_drops_islands():
    from jnerf.export.postprocess import MeshPostprocess
    rng = np.random.default_rng(0)
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=1.0)               # 20480 faces
    noisy = sphere.vertices * (1 + rng.normal(0, 0.01, (len(sphere.vertices), 1)))
    keep = np.ones(len(sphere.faces), bool)
    keep[np.argsort(sphere.triangles_center[:, 2])[-6:]] = False                     # a small hole at the top
    island = trimesh.creation.icosphere(subdivisions=1, radius=0.05)                 # 80 faces, far away
    verts = np.concatenate([noisy, island.vertices + 3.0])
    faces = np.concatenate([sphere.faces[keep], island.faces + len(noisy)])
    out_v, out_f = MeshPostprocess(min_component_faces=100, max_hole_edges=30, smooth_iterations=10,
                                   target_faces=5000)(verts, faces)
    result = trimesh.Trimesh(out_v, out_f, process=False)
    assert 4500 <= len(out_f) <= 5000
    assert np.linalg.norm(out_v, axis=1).max() < 1.5                                # the island is gone
    assert result.is_watertight                                                      # the hole is closed
    radii = np.linalg.norm(out_v, axis=1)
    assert radii.std() < 0.5 * np.linalg.norm(noisy, axis=1).std()                  # smoother
    assert abs(radii.mean() - 1.0) < 0.02                                            # Taubin keeps the size
    with pytest.raises(ValueError, match="target_faces"):
        MeshPostprocess(target_faces=-1)


class _SphereModel:
    """The exporter's view of a model, with an analytic SDF: a sphere of radius 0.6 and a constant colour."""

    def sdf_numpy(self, points):
        return np.linalg.norm(points, axis=1) - 0.6

    def inv_s_value(self):
        return 1000.0

    def surface_colors(self, points, chunk):
        return np.tile([[0.2, 0.4, 0.6]], (len(points), 1)).astype(np.float32)


def test_exporter_postprocesses_final_meshes_only(tmp_path):
    from jnerf.export import MeshExporter
    from jnerf.models.samplers import OccupancyGrid
    grid = OccupancyGrid(LO, HI, 16)
    exporter = MeshExporter(resolution=64, preview_resolution=64, postprocess=dict(target_faces=2000))
    scale_mat = np.diag([2.0, 2.0, 2.0, 1.0])
    (final,), _, n_faces = exporter.export(_SphereModel(), grid, scale_mat, str(tmp_path), "final")
    (preview,), _, n_preview = exporter.export(_SphereModel(), grid, scale_mat, str(tmp_path), "p", preview=True)
    assert os.path.basename(final) == "mesh_final_res64.ply" and 1800 <= n_faces <= 2000 and n_preview > 5000
    mesh = trimesh.load(final, process=False)
    np.testing.assert_allclose(np.linalg.norm(mesh.vertices, axis=1), 1.2, atol=0.03)   # world units (x2)
    np.testing.assert_array_equal(np.asarray(mesh.visual.vertex_colors)[0, :3], [51, 102, 153])
