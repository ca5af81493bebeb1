"""tools/prepare_scene.py: photos (+ masks) -> a NeuS scene folder, checked against scenes whose cameras are known.

- COLMAP models (text and binary) and transforms.json written from a rendered scene come back as the same cameras
  (to 1e-5), and the folder reads with the NeuS loader;
- lens models convert exactly as pycolmap projects, and an undistorted mask matches a pinhole render of the scene;
- a real structure-from-motion run on a small rendered scene recovers the cameras within the issue's targets;
- bad input gets a one-line error and leaves nothing behind.
"""
import json
import os
import shutil
import subprocess
import sys

import jnerf  # noqa: F401  (before anything that imports jittor)
import numpy as np
import pytest
from PIL import Image

from jnerf.dataset.capture import (COLMAP_MODELS, Lens, PrepareError, distort_normalised, lens_from_colmap,
                                   undistortion_maps)
from jnerf.dataset.cameras import camera_indices, load_cameras_npz, normalised_to_world, projection_from_pose
from jnerf.dataset.colmap_io import SfmOptions
from jnerf.dataset.neus_format import load_scene_arrays
from jnerf.dataset.prepare import PrepareOptions, prepare_scene
from jnerf.evaluation.camera_eval import compare_cameras, umeyama

pycolmap = pytest.importorskip("pycolmap")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bunny():
    import pymeshlab
    return os.path.join(os.path.dirname(pymeshlab.__file__), "tests", "sample_meshes", "bunny.obj")


def _world_cameras(scene_dir, views=None):
    """(K [N,3,3], c2w [N,4,4] in world units, scale_mat) of a NeuS folder."""
    npz = os.path.join(scene_dir, "cameras_sphere.npz")
    intr, c2w, scale_mat = load_cameras_npz(npz, camera_indices(npz) if views is None else views)
    c2w = c2w.copy()
    c2w[:, :3, 3] = normalised_to_world(c2w[:, :3, 3], scale_mat)
    return intr, c2w, scale_mat


@pytest.fixture(scope="module")
def small_scene(tmp_path_factory):
    """12 views of the bunny at 96^2 (cameras known exactly)."""
    from jnerf.dataset.scene_maker import make_scene
    root = str(tmp_path_factory.mktemp("truth") / "bunny12")
    make_scene(_bunny(), root, n_views=12, width=96, seed=1)
    return root


@pytest.fixture(scope="module")
def sfm_scene(tmp_path_factory):
    """48 views of the richly textured bunny at 256^2 on a hemisphere, the issue's view count at a size CI affords.
    With 32 views the weakest camera (near the horizon) sat at 2.4% of the spread single-threaded, and one threaded
    run in eight (COLMAP is deterministic only on one thread) passed 3%; with 48 the worst of six threaded runs was
    1.5% / 0.9 deg. (24 views, or the whole sphere, leave some photos unregistered at this size.)"""
    from jnerf.dataset.scene_maker import make_scene
    root = str(tmp_path_factory.mktemp("truth") / "bunny48_rich")
    make_scene(_bunny(), root, n_views=48, width=256, seed=0, texture="rich", hemisphere=True)
    return root


def _assert_same_cameras(prepared, truth, true_views):
    intr, c2w, _ = _world_cameras(prepared)
    true_intr, true_c2w, _ = _world_cameras(truth, true_views)
    np.testing.assert_allclose(intr, true_intr, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c2w, true_c2w, atol=1e-5)


def _assert_sphere_fits(prepared, truth, similarity=None, max_ratio=1.2):
    """The prepared unit sphere, brought into the true frame, holds the whole GT mesh and is at most ``max_ratio``
    times the true one (the mesh's bounding sphere * 1.1)."""
    import trimesh
    _, _, scale = _world_cameras(prepared)
    _, _, true_scale = _world_cameras(truth)
    s, rot, trans = similarity or (1.0, np.eye(3), np.zeros(3))
    centre, radius = s * rot @ scale[:3, 3] + trans, s * scale[0, 0]
    vertices = trimesh.load(os.path.join(truth, "gt_mesh.ply"), process=False).vertices
    farthest = np.linalg.norm(vertices - centre, axis=1).max()
    assert farthest < radius < max_ratio * true_scale[0, 0], (farthest, radius, true_scale[0, 0])


def _views_of(prepared):
    from jnerf.dataset.neus_format import view_index
    with open(os.path.join(prepared, "prepare.json")) as f:
        return [view_index(v["photo"]) for v in json.load(f)["views"]]


# ------------------------------------------------------------------------------------------------ lens models
@pytest.mark.parametrize("model", sorted(COLMAP_MODELS))
def test_colmap_camera_models_project_as_pycolmap_does(model):
    rng = np.random.default_rng(0)
    names, _ = COLMAP_MODELS[model]
    known = {"f": 300.0, "fx": 310.0, "fy": 290.0, "cx": 161.0, "cy": 119.0}
    params = [known.get(n, rng.uniform(-0.05, 0.05)) for n in names]
    camera = pycolmap.Camera(model=model, width=320, height=240, params=params)
    intr, lens = lens_from_colmap(model, params)
    cam_points = np.c_[rng.uniform(-0.5, 0.5, (100, 2)), np.ones(100)]
    ours = distort_normalised(cam_points[:, :2], lens) * np.diag(intr)[:2] + intr[:2, 2]
    # COLMAP puts pixel centres at +0.5, we at integers: the same point is 0.5 further in COLMAP's coordinates
    np.testing.assert_allclose(ours + 0.5, camera.img_from_cam(cam_points), atol=1e-9)


def test_unsupported_colmap_camera_model_is_named():
    with pytest.raises(PrepareError, match="camera model FOV is not supported"):
        lens_from_colmap("FOV", [300, 300, 160, 120, 0.1], where="cameras.txt")


@pytest.mark.parametrize("lens", [Lens("opencv", (-0.2, 0.05, 0.001, -0.002)), Lens("opencv", (0.15, 0.0, 0, 0)),
                                  Lens("fisheye", (0.05, -0.01, 0.0, 0.0))])
def test_undistortion_maps_sample_where_the_lens_puts_the_ray(lens):
    intr = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])
    new_intr, map_x, map_y = undistortion_maps(intr, lens, 160, 120)
    # every output pixel comes from inside the photo (no blank border to read as background)
    assert map_x.min() >= -0.5 and map_x.max() <= 159.5 and map_y.min() >= -0.5 and map_y.max() <= 119.5
    assert min(map_x.min() + 0.5, 159.5 - map_x.max(), map_y.min() + 0.5, 119.5 - map_y.max()) < 0.01  # and tight
    rng = np.random.default_rng(1)
    u, v = rng.integers(0, 160, 50), rng.integers(0, 120, 50)
    ray = np.c_[(u - new_intr[0, 2]) / new_intr[0, 0], (v - new_intr[1, 2]) / new_intr[1, 1], np.ones(50)]
    model = {"opencv": "OPENCV", "fisheye": "OPENCV_FISHEYE"}[lens.kind]
    params = [150.0, 150.0, 80.0, 60.0, *lens.coeffs]
    expected = pycolmap.Camera(model=model, width=160, height=120, params=params).img_from_cam(ray) - 0.5
    np.testing.assert_allclose(np.c_[map_x[v, u], map_y[v, u]], expected, atol=1e-3)


# ------------------------------------------------------------------------------------------------ COLMAP models
def _colmap_model_of(scene, out_dir, binary, model="PINHOLE", extra=(), names=None):
    """A COLMAP sparse model of a NeuS scene's true cameras (world units), one camera per image."""
    intr, c2w, _ = _world_cameras(scene)
    rec = pycolmap.Reconstruction()
    for i, (k, pose) in enumerate(zip(intr, c2w)):
        params = ([k[0, 0], k[1, 1]] if model != "SIMPLE_PINHOLE" else [k[0, 0]]) + [k[0, 2] + 0.5, k[1, 2] + 0.5]
        camera = pycolmap.Camera(model=model, width=96, height=96, params=params + list(extra), camera_id=i + 1)
        rec.add_camera_with_trivial_rig(camera)
        w2c = np.linalg.inv(pose)
        image = pycolmap.Image(name=(names or (lambda j: f"{j:03d}.png"))(i), camera_id=i + 1, image_id=i + 1)
        rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(rotation=pycolmap.Rotation3d(w2c[:3, :3]),
                                                                 translation=w2c[:3, 3]))
    os.makedirs(out_dir, exist_ok=True)
    (rec.write_binary if binary else rec.write_text)(out_dir)
    return out_dir


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_colmap_model_gives_back_the_true_cameras(small_scene, tmp_path, binary):
    model = _colmap_model_of(small_scene, str(tmp_path / "sparse"), binary)
    out = str(tmp_path / "prepared")
    record = prepare_scene(os.path.join(small_scene, "image"), out, masks_dir=os.path.join(small_scene, "mask"),
                           colmap_model=model)
    assert record["n_views"] == 12 and not record["dropped_photos"]
    _assert_same_cameras(out, small_scene, list(range(12)))
    _assert_sphere_fits(out, small_scene)
    scene = load_scene_arrays(out)  # the loader reads it unchanged
    truth = load_scene_arrays(small_scene)
    np.testing.assert_array_equal(scene["images"], truth["images"])  # pinhole: photos copied untouched
    np.testing.assert_array_equal(scene["masks"], truth["masks"])
    assert os.path.isfile(os.path.join(out, "preview.png")) and record["sphere"]["method"].startswith("visual hull")


def test_distorted_colmap_camera_is_undistorted_to_match_a_pinhole_render(small_scene, tmp_path):
    """Distort the masks of a pinhole render with a known OPENCV lens, prepare them with that lens, and compare the
    undistorted masks with masks rendered directly with the new pinhole cameras."""
    import cv2
    from jnerf.dataset.rasterizer import rasterize
    from jnerf.dataset.scene_maker import load_mesh
    coeffs = (-0.15, 0.03, 0.002, -0.001)
    intr, c2w, scale = _world_cameras(small_scene)
    lens = Lens("opencv", coeffs)
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir(), masks.mkdir()
    # distorted pixel p comes from the pinhole pixel K undistort(K^-1 p)
    v, u = np.mgrid[0:96, 0:96].astype(np.float32)
    pix = np.stack([u.ravel(), v.ravel()], 1).reshape(-1, 1, 2)
    src = cv2.undistortPoints(pix, intr[0], np.array(coeffs), P=intr[0]).reshape(96, 96, 2)
    for i in range(12):
        for folder, sub in ((photos, "image"), (masks, "mask")):
            image = cv2.imread(os.path.join(small_scene, sub, f"{i:03d}.png"), cv2.IMREAD_UNCHANGED)
            cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.remap(image, src[..., 0], src[..., 1], cv2.INTER_LINEAR))
    model = _colmap_model_of(small_scene, str(tmp_path / "sparse"), False, "OPENCV", coeffs)
    out = str(tmp_path / "prepared")
    record = prepare_scene(str(photos), out, masks_dir=str(masks), colmap_model=model)
    assert all(v["undistorted"] for v in record["views"])
    scene = load_scene_arrays(out)
    mesh = load_mesh(os.path.join(small_scene, "gt_mesh.ply"))
    verts = (np.asarray(mesh.vertices) - scale[:3, 3]) / scale[0, 0]
    ious, distorted_ious = [], []
    for i in range(12):
        pose = c2w[i].copy()
        pose[:3, 3] = (pose[:3, 3] - scale[:3, 3]) / scale[0, 0]
        rendered = rasterize(verts, np.asarray(mesh.faces), scene["intrinsics"][i].astype(np.float64), pose, 96,
                             96)["face_id"] >= 0
        ious.append((rendered & scene["masks"][i]).sum() / (rendered | scene["masks"][i]).sum())
        distorted = np.asarray(Image.open(masks / f"{i:03d}.png")) > 127
        distorted_ious.append((rendered & distorted).sum() / (rendered | distorted).sum())
    assert min(ious) > 0.95, ious
    assert np.mean(ious) > np.mean(distorted_ious) + 0.02, (ious, distorted_ious)  # (0.97 vs 0.94 when written)


def test_colmap_model_with_unsupported_camera_model_is_an_error(small_scene, tmp_path):
    model = _colmap_model_of(small_scene, str(tmp_path / "sparse"), False, "FOV", (0.1,))
    out = tmp_path / "prepared"
    with pytest.raises(PrepareError, match="camera model FOV is not supported"):
        prepare_scene(os.path.join(small_scene, "image"), str(out), colmap_model=model)
    _assert_nothing_left(out)


def test_colmap_model_images_missing_from_the_folder_are_dropped_with_a_warning(small_scene, tmp_path, caplog):
    photos = tmp_path / "photos"
    shutil.copytree(os.path.join(small_scene, "image"), photos)
    os.remove(photos / "004.png")
    model = _colmap_model_of(small_scene, str(tmp_path / "sparse"), True)
    record = prepare_scene(str(photos), str(tmp_path / "prepared"), masks_dir=os.path.join(small_scene, "mask"),
                           colmap_model=model)
    assert record["n_views"] == 11 and "004.png" in " ".join(record["warnings"])
    _assert_same_cameras(str(tmp_path / "prepared"), small_scene, [i for i in range(12) if i != 4])


# ------------------------------------------------------------------------------------------------ transforms.json
def _transforms_of(scene, per_frame):
    """A transforms.json of the scene's true cameras: NeRF-synthetic style (camera_angle_x, no extension in
    file_path) or instant-ngp style per-frame intrinsics (fl_x, cx in the +0.5 convention)."""
    intr, c2w, _ = _world_cameras(scene)
    frames = []
    for i, (k, pose) in enumerate(zip(intr, c2w)):
        frame = {"file_path": f"./train/r_{i}", "transform_matrix": (pose @ np.diag([1.0, -1, -1, 1])).tolist()}
        if per_frame:
            frame.update(fl_x=k[0, 0], fl_y=k[1, 1], cx=k[0, 2] + 0.5, cy=k[1, 2] + 0.5, w=96, h=96)
        frames.append(frame)
    data = {"frames": frames}
    if not per_frame:
        data["camera_angle_x"] = 2 * np.arctan(0.5 * 96 / intr[0, 0, 0])
    return data


@pytest.mark.parametrize("per_frame", [False, True], ids=["nerf-synthetic", "per-frame-intrinsics"])
def test_transforms_json_gives_back_the_true_cameras(small_scene, tmp_path, per_frame):
    # NeRF-synthetic photos are RGBA with the mask in alpha: no --masks needed
    photos = tmp_path / "train"
    photos.mkdir()
    for i in range(12):
        rgb = np.asarray(Image.open(os.path.join(small_scene, "image", f"{i:03d}.png")))
        alpha = np.asarray(Image.open(os.path.join(small_scene, "mask", f"{i:03d}.png")))
        Image.fromarray(np.dstack([rgb, alpha])).save(photos / f"r_{i}.png")
    transforms = tmp_path / "transforms_train.json"
    transforms.write_text(json.dumps(_transforms_of(small_scene, per_frame)))
    out = str(tmp_path / "prepared")
    record = prepare_scene(str(photos), out, transforms=str(transforms))
    assert record["masks"] == "alpha channel of the photos"
    views = [int(v["photo"][2:-4]) for v in record["views"]]
    assert sorted(views) == list(range(12))
    _assert_same_cameras(out, small_scene, views)
    _assert_sphere_fits(out, small_scene)
    assert load_scene_arrays(out)["masks"] is not None


# ------------------------------------------------------------------------------------------------ structure from motion
def test_structure_from_motion_recovers_the_cameras(sfm_scene, tmp_path):
    """A real pycolmap run: 48 photos at 256^2 with masks; the cameras after a similarity alignment are within the
    issue's targets, the unit sphere from the visual hull matches the true one, and the loader reads the folder."""
    out = str(tmp_path / "prepared")
    record = prepare_scene(os.path.join(sfm_scene, "image"), out, masks_dir=os.path.join(sfm_scene, "mask"))
    assert record["n_views"] >= 45, record["dropped_photos"]
    views = _views_of(out)
    _, est_c2w, _ = _world_cameras(out)
    _, true_c2w, _ = _world_cameras(sfm_scene, views)
    errors = compare_cameras(est_c2w, true_c2w)
    centre, rot = errors["centre_error_pct"], errors["rotation_error_deg"]
    print(f"registered {len(views)}/48; centre error % median {np.median(centre):.3f} max {centre.max():.3f}; "
          f"rotation error deg median {np.median(rot):.3f} max {rot.max():.3f}; "
          f"SfM {record['source_notes']['sfm_seconds_features_and_matching'] + record['source_notes']['sfm_seconds_mapping']:.1f} s")
    assert np.median(centre) < 1.0 and np.median(rot) < 0.5
    assert centre.max() < 3.0 and rot.max() < 2.0
    _assert_sphere_fits(out, sfm_scene, (errors["scale"], errors["rotation"], errors["translation"]))
    assert os.path.isfile(os.path.join(out, "sparse", "cameras.bin"))
    scene = load_scene_arrays(out)
    assert scene["images"].shape == (len(views), 256, 256, 3) and scene["masks"].shape == (len(views), 256, 256)

    # the same model without masks: the sphere comes from the sparse points, and still holds the object
    no_masks = str(tmp_path / "no_masks")
    record = prepare_scene(os.path.join(sfm_scene, "image"), no_masks, colmap_model=os.path.join(out, "sparse"))
    assert record["sphere"]["method"] == "sparse points"
    _assert_sphere_fits(no_masks, sfm_scene, (errors["scale"], errors["rotation"], errors["translation"]),
                        max_ratio=1.3)



def test_one_thread_gives_the_same_cameras_on_every_run(sfm_scene, tmp_path):
    """--threads 1: two runs of the command give identical cameras (threaded COLMAP runs differ slightly)."""
    tool = os.path.join(REPO, "tools", "prepare_scene.py")
    cameras = []
    for run in ("a", "b"):
        out = str(tmp_path / run)
        proc = subprocess.run([sys.executable, tool, os.path.join(sfm_scene, "image"), out, "--threads", "1"],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        cameras.append(dict(np.load(os.path.join(out, "cameras_sphere.npz"))))
    assert cameras[0].keys() == cameras[1].keys() and len(cameras[0]) >= 2 * 45
    for key in cameras[0]:
        np.testing.assert_array_equal(cameras[0][key], cameras[1][key], err_msg=key)
    proc = subprocess.run([sys.executable, tool, os.path.join(sfm_scene, "image"), str(tmp_path / "c"),
                           "--threads", "0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: --threads must be a positive count or -1 (all cores), got 0"]

def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(20, 3))
    rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    rot *= np.linalg.det(rot)
    scale, got_rot, trans = umeyama(src, 2.5 * src @ rot.T + [1, 2, 3])
    np.testing.assert_allclose([scale, *trans], [2.5, 1, 2, 3], atol=1e-10)
    np.testing.assert_allclose(got_rot, rot, atol=1e-10)


# ------------------------------------------------------------------------------------------------ bad input
def _assert_nothing_left(out):
    out = str(out)
    assert not os.path.exists(out)
    leftovers = [n for n in os.listdir(os.path.dirname(out)) if n.startswith(f".{os.path.basename(out)}.")]
    assert not leftovers, leftovers


def _photos(small_scene, folder, indices):
    folder.mkdir()
    for i in indices:
        shutil.copy(os.path.join(small_scene, "image", f"{i:03d}.png"), folder / f"{i:03d}.png")
    return str(folder)


def test_bad_input_gets_a_clear_error_and_nothing_is_written(small_scene, tmp_path):
    out = tmp_path / "prepared"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PrepareError, match="no image files.*the folder is empty"):
        prepare_scene(str(empty), str(out))
    _assert_nothing_left(out)

    one = _photos(small_scene, tmp_path / "one", [0])
    with pytest.raises(PrepareError, match=r"1 photo\(s\) \(000.png\); at least 3 are needed"):
        prepare_scene(one, str(out))
    _assert_nothing_left(out)

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("not a photo")
    with pytest.raises(PrepareError, match="no image files.*found only: readme.txt"):
        prepare_scene(str(notes), str(out))

    broken = _photos(small_scene, tmp_path / "broken", range(4))
    with open(os.path.join(broken, "002.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(PrepareError, match="002.png: cannot read as an image"):
        prepare_scene(broken, str(out))
    _assert_nothing_left(out)

    photos = _photos(small_scene, tmp_path / "photos", range(5))
    wrong_masks = tmp_path / "wrong_masks"
    wrong_masks.mkdir()
    for i in range(5):
        shutil.copy(os.path.join(small_scene, "mask", f"{i:03d}.png"), wrong_masks / f"mask_{i:03d}.png")
    with pytest.raises(PrepareError, match="no mask for 000.png, 001.png"):
        prepare_scene(photos, str(out), masks_dir=str(wrong_masks))
    _assert_nothing_left(out)

    with pytest.raises(PrepareError, match="transforms file not found"):
        prepare_scene(photos, str(out), transforms=str(tmp_path / "missing.json"))
    _assert_nothing_left(out)


def test_out_dir_is_written_whole_or_not_at_all(small_scene, tmp_path, monkeypatch):
    model = _colmap_model_of(small_scene, str(tmp_path / "sparse"), True)
    images, masks = os.path.join(small_scene, "image"), os.path.join(small_scene, "mask")
    out = tmp_path / "prepared"
    import jnerf.dataset.preview as preview

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(preview, "draw_preview", fail)  # fails after the images and cameras are written
    with pytest.raises(RuntimeError, match="disk full"):
        prepare_scene(images, str(out), masks_dir=masks, colmap_model=model)
    _assert_nothing_left(out)
    monkeypatch.undo()

    prepare_scene(images, str(out), masks_dir=masks, colmap_model=model)
    before = sorted(os.listdir(out))
    with pytest.raises(PrepareError, match="exists and is not empty"):
        prepare_scene(images, str(out), masks_dir=masks, colmap_model=model)
    assert sorted(os.listdir(out)) == before
    prepare_scene(images, str(out), masks_dir=masks, colmap_model=model, options=PrepareOptions(overwrite=True))
    assert sorted(os.listdir(out)) == before
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".prepared.")]


def test_command_line_reports_errors_in_one_line(tmp_path, small_scene):
    empty = tmp_path / "empty"
    empty.mkdir()
    tool = os.path.join(REPO, "tools", "prepare_scene.py")
    proc = subprocess.run([sys.executable, tool, str(empty), str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {empty}: no image files, expected .png/.jpg/.jpeg "
                                                "(the folder is empty)"]
    model = _colmap_model_of(small_scene, str(tmp_path / "sparse"), False)
    proc = subprocess.run([sys.executable, tool, os.path.join(small_scene, "image"), str(tmp_path / "out"),
                           "--masks", os.path.join(small_scene, "mask"), "--colmap-model", model],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 12 views (12 photos)" in proc.stdout and "visual hull" in proc.stdout
