"""Textured meshes: a baked texture reproduces a known colour field, gutters take their chart's colour, the OBJ+MTL+PNG
and GLB files open in trimesh and pymeshlab with their UVs and texture (world units, right colours), bad settings
are one-line errors, and on the CPU a trained checkpoint gives textured files, a turntable and its comparison."""
import os
import subprocess
import sys

import numpy as np
import pytest
import trimesh

from jnerf.export import mesh as mesh_ops
from jnerf.export import texture as tex
from jnerf.utils.registry import ConfigKeyError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "projects", "neus", "configs", "instant_neus_tiny_cpu.py")
LO, HI = [-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]


def colour_field(points):
    """A colour that is a smooth function of position, different in each channel."""
    return (0.5 + 0.4 * np.sin(3.0 * np.asarray(points, np.float64) + np.array([0.0, 1.0, 2.0]))).astype(np.float32)


@pytest.fixture(scope="module")
def sphere():
    """A marching-cubes sphere of radius 0.6 (about 5k faces), as the exporter makes them."""
    volume = mesh_ops.evaluate_sdf_volume(lambda p: np.linalg.norm(p, axis=1) - 0.6, LO, HI, 40, progress=False)
    return mesh_ops.marching_cubes(volume, LO, HI)


@pytest.fixture(scope="module")
def baked(sphere):
    return tex.bake_texture(colour_field, *sphere, size=256, padding=2, dilation=16, progress=False)


def points_on_faces(mesh, n_per_face=4, seed=0):
    """Random points (and their uv) on every face that covers a texel's worth of area, corners included."""
    tri_uv = mesh.uv[mesh.faces]
    uv_area = 0.5 * np.abs(np.cross(tri_uv[:, 1] - tri_uv[:, 0], tri_uv[:, 2] - tri_uv[:, 0]))
    faces = mesh.faces[uv_area * mesh.texture.shape[0] ** 2 > 0.5]
    bary = np.random.default_rng(seed).dirichlet(np.ones(3), size=(len(faces), n_per_face))
    bary = np.concatenate([bary, np.broadcast_to(np.eye(3), (len(faces), 3, 3))], 1)   # + the three corners
    points = np.einsum("fnk,fkd->fnd", bary, mesh.vertices[faces]).reshape(-1, 3)
    uv = np.einsum("fnk,fkd->fnd", bary, mesh.uv[faces]).reshape(-1, 2)
    return points, uv


def test_texels_hold_the_colour_of_their_surface_point(sphere, baked):
    """Each covered texel is the colour function at the surface point under its centre (up to 8-bit rounding), and
    that point lies on the mesh."""
    texel, face, bary = tex.texel_surface_points(baked.uv, baked.faces, 256)
    assert len(texel) > 0.3 * 256 ** 2 and np.array_equal(np.sort(texel), np.flatnonzero(baked.filled))
    points = np.einsum("tk,tkd->td", bary, baked.vertices[baked.faces[face]])
    stored = baked.texture.reshape(-1, 3)[texel] / 255.0
    assert np.abs(stored - colour_field(points)).max() <= 0.5 / 255 + 1e-6
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), 0.6, atol=0.02)
    # the texel centre maps back to the uv the barycentrics interpolate
    uv = np.einsum("tk,tkd->td", bary, baked.uv[baked.faces[face]])
    centre = np.stack([texel % 256, texel // 256], 1)
    np.testing.assert_allclose(tex.uv_to_pixel(uv, 256), centre, atol=1e-4)


def test_bilinear_lookups_reproduce_the_colour_field_everywhere_thanks_to_the_gutters(sphere, baked):
    points, uv = points_on_faces(baked)
    error = np.abs(tex.sample_texture(baked.texture, uv) - colour_field(points))
    assert error.mean() < 0.005 and np.percentile(error, 99) < 0.03, (error.mean(), np.percentile(error, 99))
    # without gutters, lookups at chart borders (here: every face corner) blend in black
    bare = tex.bake_texture(colour_field, *sphere, size=256, padding=2, dilation=0, progress=False)
    points, uv = points_on_faces(bare)
    assert np.percentile(np.abs(tex.sample_texture(bare.texture, uv) - colour_field(points)), 99) > 0.1


def test_bake_calls_the_colour_function_in_bounded_chunks(sphere, baked):
    sizes = []

    def counting(points):
        sizes.append(len(points))
        return colour_field(points)
    small = tex.bake_texture(counting, *sphere, size=256, padding=2, dilation=16, chunk=5000, progress=False)
    assert max(sizes) == 5000 and sum(sizes) == int(small.filled.sum())
    np.testing.assert_array_equal(small.texture, baked.texture)


def test_gutters_take_the_nearest_chart_colour_within_the_dilation(monkeypatch):
    image = np.zeros((40, 40, 3), np.uint8)
    filled = np.zeros((40, 40), bool)
    image[5:10, 5:10], filled[5:10, 5:10] = (200, 10, 10), True
    image[25:35, 22:30], filled[25:35, 22:30] = (10, 10, 200), True
    out = tex.fill_gutters(image, filled, 3)
    np.testing.assert_array_equal(out[filled], image[filled])                 # charts untouched
    assert (out[2:13, 2:13] == (200, 10, 10)).all() and (out[22:38, 19:33] == (10, 10, 200)).all()
    ring = np.zeros((40, 40), bool)
    ring[2:13, 2:13] = ring[22:38, 19:33] = True
    assert not out[~ring].any()                                               # nothing beyond 3 texels
    monkeypatch.setattr(tex, "_cv2", lambda: None)                            # where OpenCV does not import
    np.testing.assert_array_equal(tex.fill_gutters(image, filled, 3), out)


def test_numpy_fallbacks_match_opencv(baked, monkeypatch):
    uv = np.random.default_rng(1).uniform(-0.01, 1.01, (50000, 2))       # beyond the edges too: clamped
    with_cv2 = tex.sample_texture(baked.texture, uv)
    png = tex.encode_png(baked.texture)
    monkeypatch.setattr(tex, "_cv2", lambda: None)
    # OpenCV quantises bilinear weights to 1/32: up to 1/32 of a neighbour difference apart
    np.testing.assert_allclose(tex.sample_texture(baked.texture, uv), with_cv2, atol=4.0 / 255)
    import io
    from PIL import Image
    for data in (png, tex.encode_png(baked.texture)):
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), baked.texture)


class _ColourFieldModel:
    """The exporter's view of a model whose colour is ``colour_field`` of the normalised-frame point."""

    def surface_colors(self, points, chunk):
        return colour_field(points)


def _world(points, scale_mat):
    return points @ scale_mat[:3, :3].T + scale_mat[:3, 3]


@pytest.fixture(scope="module")
def written(sphere, tmp_path_factory):
    from jnerf.export import MeshExporter
    out = tmp_path_factory.mktemp("textured")
    scale_mat = np.diag([2.0, 2.0, 2.0, 1.0])
    scale_mat[:3, 3] = [1.0, -3.0, 0.5]
    exporter = MeshExporter(texture=dict(size=256))
    paths = exporter.write_textured(_ColourFieldModel(), *sphere, scale_mat, str(out / "mesh_x_res40"),
                                    exporter.texture)
    return paths, exporter.last_textured, scale_mat


def test_files_are_named_and_written_in_world_units(written):
    paths, mesh, scale_mat = written
    assert [os.path.basename(p) for p in paths] == [f"mesh_x_res40_tex256.{e}" for e in ("obj", "mtl", "png", "glb")]
    assert sorted(os.listdir(os.path.dirname(paths[0]))) == sorted(os.path.basename(p) for p in paths)  # no temps
    with open(paths[1]) as f:
        assert "map_Kd mesh_x_res40_tex256.png" in f.read()
    glb = trimesh.load(paths[3], force="mesh", process=False)
    np.testing.assert_allclose(glb.vertices, _world(mesh.vertices, scale_mat), atol=1e-5)
    # normals in the GLB point outwards from the world-frame centre
    centred = glb.vertices - scale_mat[:3, 3]
    normals = np.asarray(glb.vertex_normals)
    assert (np.einsum("ij,ij->i", normals, centred / np.linalg.norm(centred, axis=1, keepdims=True)) > 0.9).mean() > 0.99


@pytest.mark.parametrize("fmt", ["obj", "glb"])
def test_trimesh_reads_uvs_and_a_texture_with_the_baked_colours(written, fmt):
    paths, mesh, scale_mat = written
    loaded = trimesh.load(paths[0] if fmt == "obj" else paths[3], force="mesh", process=False)
    assert isinstance(loaded.visual, trimesh.visual.TextureVisuals)
    np.testing.assert_allclose(loaded.visual.uv, mesh.uv, atol=1e-6)
    np.testing.assert_array_equal(loaded.faces, mesh.faces)
    material = loaded.visual.material
    image = np.asarray((material.image if fmt == "obj" else material.baseColorTexture).convert("RGB"))
    np.testing.assert_array_equal(image, mesh.texture)
    # trimesh's own uv -> texture look-up at the corners of faces with area gives the colour field there
    corners = np.unique(mesh.faces[np.linalg.norm(np.cross(*(mesh.vertices[mesh.faces][:, 1:] -
                                                            mesh.vertices[mesh.faces][:, :1]).transpose(1, 0, 2)),
                                                  axis=1) > 1e-5])
    looked_up = trimesh.visual.uv_to_color(loaded.visual.uv[corners], material.image if fmt == "obj"
                                           else material.baseColorTexture)[:, :3] / 255.0
    normalised = (loaded.vertices[corners] - scale_mat[:3, 3]) / 2.0
    assert np.median(np.abs(looked_up - colour_field(normalised))) < 0.01


@pytest.mark.parametrize("fmt", ["obj", "glb"])
def test_pymeshlab_reads_uvs_and_the_texture(written, fmt):
    pymeshlab = pytest.importorskip("pymeshlab")
    paths, mesh, scale_mat = written
    ms = pymeshlab.MeshSet()
    ms.load_new_mesh(paths[0] if fmt == "obj" else paths[3])
    loaded = ms.current_mesh()
    assert loaded.face_number() == len(mesh.faces) and loaded.has_wedge_tex_coord()
    assert loaded.texture_number() == 1
    image = loaded.texture(0)
    assert (image.width(), image.height()) == (256, 256)
    np.testing.assert_allclose(loaded.vertex_matrix(), _world(mesh.vertices, scale_mat), atol=1e-5)
    wedges = loaded.wedge_tex_coord_matrix().reshape(-1, 3, 2)
    np.testing.assert_allclose(wedges, mesh.uv[loaded.face_matrix()], atol=1e-6)


def test_render_of_the_textured_mesh_matches_the_colour_field(baked):
    """The rasteriser's render of the textured mesh shows, at each covered pixel, the colour of the surface point
    that pixel sees (what turntables and the bench's PSNR rest on)."""
    from jnerf.dataset.cameras import look_at_c2w
    from jnerf.dataset.rasterizer import rasterize
    K = np.array([[90.0, 0, 47.5], [0, 90.0, 47.5], [0, 0, 1]])
    c2w = look_at_c2w(np.array([0.3, 0.5, 2.5]), np.zeros(3), np.array([0.0, 1.0, 0.0]))
    image, covered = tex.render_mesh(baked.vertices, baked.faces, K, c2w, 96, 96, mesh=baked)
    raster = rasterize(baked.vertices, baked.faces, K, c2w, 96, 96)
    hit = raster["face_id"] >= 0
    np.testing.assert_array_equal(covered, hit)
    points = np.einsum("pk,pkd->pd", raster["bary"][hit], baked.vertices[baked.faces[raster["face_id"][hit]]])
    assert np.median(np.abs(image[hit] - colour_field(points))) < 0.005
    assert not image[~hit].any()
    colours = colour_field(baked.vertices)
    shaded, _ = tex.render_mesh(baked.vertices, baked.faces, K, c2w, 96, 96, vertex_colors=colours)
    assert np.median(np.abs(shaded[hit] - colour_field(points))) < 0.005


def test_bad_texture_settings_are_one_line_errors():
    from jnerf.export import MeshExporter
    with pytest.raises(ConfigKeyError, match="mesh.texture.*'sise'.*Did you mean 'size'"):
        MeshExporter(texture=dict(sise=512))
    with pytest.raises(ValueError, match=r"mesh.texture.formats: expected a non-empty list of obj, glb, got \['fbx'\]"):
        MeshExporter(texture=dict(formats=["fbx"]))
    with pytest.raises(ValueError, match="mesh.texture: size must be an integer >= 16, got 8"):
        MeshExporter(texture=dict(size=8))
    with pytest.raises(ValueError, match=r"mesh.texture: expected None, True or a dict.*\{'size': 2048\}"):
        MeshExporter(texture="dict(size=512)")   # what a shell passes for --opts mesh.texture=dict(size=512)
    assert MeshExporter(texture=True).texture.size == 2048 and MeshExporter(texture=None).texture is None


def test_cli_reports_a_misspelt_texture_key_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "run_net.py"), "--config-file", TINY,
                           "--task", "train", "--opts", f"log_dir={str(tmp_path)!r}", "mesh.texture={'sise': 512}"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "'sise'" in lines[0] and "'size'" in lines[0] and "Traceback" not in proc.stderr


def test_textured_mesh_after_training_and_from_a_checkpoint(tmp_path):
    """Tiny CPU run: mesh.texture at the end of training writes the textured files, its turntable and the
    comparison panel; --task texture then re-bakes the checkpoint's mesh, decimated, with other settings."""
    from jnerf.runner import build_runner, load_run_config
    base = [f"log_dir={str(tmp_path)!r}", f"dataset.root={os.path.join(ROOT, 'data', 'bunny')!r}",
            "train.total_steps=30", "train.val_every=0", "train.save_every=30", "eval.after_training=False",
            "mesh.resolution=40", "turntable.n_frames=2"]
    runner = build_runner(load_run_config(TINY, base + ["mesh.texture={'size': 128}"]))
    runner.train()
    stem = os.path.join(runner.exp_dir, "mesh_step000030_res40")
    assert all(os.path.isfile(f"{stem}_tex128.{ext}") for ext in ("obj", "mtl", "png", "glb", ))
    shown = os.path.join(runner.exp_dir, "texture_step000030")
    assert {"0000.png", "0001.png", "compare_view000.png"} <= set(os.listdir(shown))
    # the texture holds the model's own head-on colours: look them up at the faces' corners
    mesh = runner.exporter.last_textured
    points, uv = points_on_faces(mesh, n_per_face=1)
    expected = runner.model.surface_colors(points.astype(np.float32))
    assert np.median(np.abs(tex.sample_texture(mesh.texture, uv) - expected)) < 0.01
    with open(os.path.join(runner.exp_dir, "train.log")) as f:
        assert "textured mesh vs training view 0: PSNR" in f.read()

    again = build_runner(load_run_config(TINY, base + [
        "mesh.texture={'size': 64, 'formats': ['glb'], 'target_faces': 2000, 'turntable': False}"]), task="texture")
    paths = again.texture()
    assert [os.path.basename(p) for p in paths] == ["mesh_step000030_res40_tex64.glb"]
    glb = trimesh.load(paths[0], force="mesh", process=False)
    assert 1500 <= len(glb.faces) <= 2000 and glb.visual.uv.shape == (len(glb.vertices), 2)
