"""NeuSDataset and the NeuS-format readers: cameras vs the scene maker, ray batches, downscaling, image formats,
and a clear error for every kind of bad input."""
import os
import shutil

import jnerf  # noqa: F401  (must precede jittor)
import numpy as np
import pytest
import trimesh
from PIL import Image

from jnerf.dataset.cameras import CameraError
from jnerf.dataset.image_io import ImageReadError, read_image
from jnerf.dataset.neus_dataset import NeuSDataset
from jnerf.dataset.neus_format import load_scene_arrays
from jnerf.dataset.neus_format import SceneFormatError, dilate_masks, disc_kernel
from jnerf.dataset.scene_maker import make_scene
from jnerf.utils.registry import DATASETS, build_from_cfg

N_VIEWS, WIDTH, HEIGHT = 6, 48, 40  # non-square on purpose: catches swapped H/W


def _test_mesh():
    """An off-centre, anisotropic object in arbitrary units (a stretched icosphere)."""
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    mesh.vertices = mesh.vertices * [30.0, 20.0, 25.0] + [100.0, -40.0, 7.0]
    return mesh


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("scene"))
    make_scene(_test_mesh(), root, n_views=N_VIEWS, width=WIDTH, height=HEIGHT, fov_deg=45.0, seed=3)
    return root


@pytest.fixture
def scene_copy(scene, tmp_path):
    root = str(tmp_path / "copy")
    shutil.copytree(scene, root)
    return root


@pytest.fixture(scope="module")
def dataset(scene):
    return NeuSDataset(scene, mask_dilation=2)


def _world_to_normalised(points, scale_mat):
    return (points - scale_mat[:3, 3]) @ np.linalg.inv(scale_mat[:3, :3]).T


def _project(points, intr, c2w):
    w2c = np.linalg.inv(c2w.astype(np.float64))
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    pix = cam @ intr.astype(np.float64).T
    return pix[:, :2] / pix[:, 2:3], cam[:, 2]


# ------------------------------------------------------------------------------------------------ round trip
def test_gt_vertices_project_into_masks(dataset, scene):
    gt = trimesh.load(os.path.join(scene, "gt_mesh.ply"), process=False)
    points = _world_to_normalised(np.asarray(gt.vertices), dataset.scale_mat)
    assert np.all(np.linalg.norm(points, axis=1) < 1.0), "scale_mat must map the object inside the unit sphere"
    # rim vertices sit on the silhouette, so their nearest pixel centre is outside the mask about half the time;
    # a 1-pixel tolerance absorbs that and still catches a wrong pose, focal length or axis convention
    tolerant = dilate_masks(dataset.masks_np, 1)
    for i in range(dataset.n_images):
        uv, depth = _project(points, dataset.intrinsics[i], dataset.c2w[i])
        assert np.all(depth > 0)
        col, row = np.round(uv[:, 0]).astype(int), np.round(uv[:, 1]).astype(int)
        inside = (col >= 0) & (col < dataset.W) & (row >= 0) & (row < dataset.H)
        hit = np.zeros(len(points), bool)
        hit[inside] = tolerant[i, row[inside], col[inside]]
        assert hit.mean() >= 0.99, f"view {i}: only {hit.mean():.3f} of GT vertices land in the mask"


def _ray_hits_mesh(origins, dirs, triangles):
    """Exact ray/triangle test (Moller-Trumbore) of rays [R,3] against triangles [F,3,3]: bool [R]."""
    e1, e2 = triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]
    pvec = np.cross(dirs[:, None], e2[None])  # [R,F,3]
    det = np.einsum("rfk,fk->rf", pvec, e1)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / det
        tvec = origins[:, None] - triangles[None, :, 0]
        u = np.einsum("rfk,rfk->rf", tvec, pvec) * inv
        qvec = np.cross(tvec, e1[None])
        v = np.einsum("rk,rfk->rf", dirs, qvec) * inv
        t = np.einsum("fk,rfk->rf", e2, qvec) * inv
    return np.any((u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0), axis=1)


def test_mask_pixels_are_exactly_the_rays_that_hit_the_mesh(dataset, scene):
    gt = trimesh.load(os.path.join(scene, "gt_mesh.ply"), process=False)
    triangles = _world_to_normalised(np.asarray(gt.vertices), dataset.scale_mat)[np.asarray(gt.faces)]
    rays = dataset.image_rays(2)
    hits = _ray_hits_mesh(rays["rays_o"].numpy().astype(np.float64), rays["rays_d"].numpy().astype(np.float64),
                          triangles)
    agree = hits == dataset.masks_np[2].reshape(-1)
    assert agree.mean() >= 0.995, f"mask and ray casting disagree on {np.sum(~agree)} of {agree.size} pixels"
    assert np.array_equal(rays["mask"].numpy()[:, 0] > 0, dataset.masks_np[2].reshape(-1))


def test_attributes_follow_design(dataset):
    n = dataset.n_images
    assert (n, dataset.H, dataset.W) == (N_VIEWS, HEIGHT, WIDTH)
    assert dataset.intrinsics.shape == (n, 3, 3) and dataset.intrinsics.dtype == np.float32
    assert dataset.c2w.shape == (n, 4, 4) and dataset.c2w.dtype == np.float32
    assert dataset.scale_mat.dtype == np.float64
    assert tuple(dataset.images.shape) == (n, HEIGHT, WIDTH, 3) and str(dataset.images.dtype) == "float32"
    assert tuple(dataset.masks.shape) == (n, HEIGHT, WIDTH)
    assert dataset.masks_np.dtype == np.bool_
    assert np.all(dataset.intrinsics[:, 0, 0] > 0) and np.all(dataset.intrinsics[:, 1, 1] > 0)
    rot = dataset.c2w[:, :3, :3].astype(np.float64)
    assert np.allclose(rot @ rot.transpose(0, 2, 1), np.eye(3), atol=1e-5)
    assert np.allclose(np.linalg.det(rot), 1.0, atol=1e-5)
    hull = dataset.hull_cameras()
    assert hull["masks"].sum() > dataset.masks_np.sum()  # dilated
    assert DATASETS.get("NeuSDataset") is NeuSDataset


# ------------------------------------------------------------------------------------------------ rays
def _check_batch(dataset, batch, n):
    rays_o, rays_d = batch["rays_o"].numpy(), batch["rays_d"].numpy()
    img = batch["img_idx"].numpy()
    assert rays_o.shape == (n, 3) and rays_d.shape == (n, 3) and batch["mask"].shape == (n, 1)
    assert img.dtype == np.int32 and img.min() >= 0 and img.max() < dataset.n_images
    assert np.allclose(np.linalg.norm(rays_d, axis=1), 1.0, atol=1e-5)
    assert np.allclose(rays_o, dataset.c2w[img, :3, 3], atol=1e-6)
    # every ray must re-project onto an integer pixel centre whose colour and mask it carries
    uv = np.empty((n, 2))
    for k in range(n):
        uv[k] = _project((rays_o[k] + 2.0 * rays_d[k])[None], dataset.intrinsics[img[k]], dataset.c2w[img[k]])[0][0]
    col, row = np.round(uv).astype(int).T
    assert np.allclose(uv, np.stack([col, row], 1), atol=2e-3), "pixel centres must sit at integer coordinates"
    images = dataset.images.numpy()
    assert np.allclose(batch["rgb"].numpy(), images[img, row, col], atol=1e-6)
    return img, row, col


def test_sample_rays_from_dilated_masks(dataset):
    n = 256
    batch = dataset.sample_rays(n)
    img, row, col = _check_batch(dataset, batch, n)
    assert dataset.hull_cameras()["masks"][img, row, col].all(), "mask sampling must stay in the dilated masks"
    assert np.array_equal(batch["mask"].numpy()[:, 0], dataset.masks_np[img, row, col].astype(np.float32))
    assert len(np.unique(img)) > 1


def test_image_rays_and_downscale_convention(dataset, scene):
    full = dataset.image_rays(1)
    assert (full["H"], full["W"]) == (HEIGHT, WIDTH) and full["rays_d"].shape == (HEIGHT * WIDTH, 3)
    assert np.allclose(full["rgb"].numpy(), dataset.images.numpy()[1].reshape(-1, 3))
    half = dataset.image_rays(1, downscale=2)
    small = NeuSDataset(scene, downscale=2, use_masks=False)
    assert (small.H, small.W) == (HEIGHT // 2, WIDTH // 2) and small.masks is None
    # pixel (u', v') of a 2x-downscaled image averages pixels 2u'..2u'+1: its ray is the full-res ray through
    # (2u' + 0.5, 2v' + 0.5), i.e. the mean of the four full-res pixel-centre directions (before normalising)
    d_cam = np.linalg.inv(dataset.intrinsics[1].astype(np.float64))
    v, u = np.mgrid[0:small.H, 0:small.W]
    pix = np.stack([2 * u.ravel() + 0.5, 2 * v.ravel() + 0.5, np.ones(u.size)], 1) @ d_cam.T
    expected = pix @ dataset.c2w[1, :3, :3].astype(np.float64).T
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    for rays in (half, small.image_rays(1)):
        assert np.allclose(rays["rays_d"].numpy(), expected, atol=1e-5)
    block_mean = dataset.images.numpy()[1].reshape(small.H, 2, small.W, 2, 3).mean((1, 3)).reshape(-1, 3)
    assert np.allclose(small.image_rays(1)["rgb"].numpy(), block_mean, atol=1e-5)
    assert np.allclose(half["rgb"].numpy(), block_mean, atol=1e-5)


def test_without_masks_samples_whole_images(scene_copy):
    shutil.rmtree(os.path.join(scene_copy, "mask"))
    ds = build_from_cfg(dict(type="NeuSDataset", root=scene_copy, ray_sampling="mask"), DATASETS)
    assert ds.masks is None and ds.masks_np is None and ds.ray_sampling == "all"
    batch = ds.sample_rays(64)
    _check_batch(ds, batch, 64)
    assert np.all(batch["mask"].numpy() == 1.0)


def test_sphere_sampling_draws_only_rays_that_meet_the_unit_sphere(scene):
    ds = NeuSDataset(scene, use_masks=False, ray_sampling="sphere")
    batch = ds.sample_rays(512)
    o, d = batch["rays_o"].numpy().astype(np.float64), batch["rays_d"].numpy().astype(np.float64)
    b = (o * d).sum(1)
    disc = b * b - ((o * o).sum(1) - 1)
    assert np.all(disc > 0) and np.all(-b + np.sqrt(disc) > 0)
    # and it is a real restriction: some whole-image rays miss the sphere
    everything = NeuSDataset(scene, use_masks=False, ray_sampling="all").image_rays(0)
    o, d = everything["rays_o"].numpy().astype(np.float64), everything["rays_d"].numpy().astype(np.float64)
    b = (o * d).sum(1)
    assert np.mean(b * b - ((o * o).sum(1) - 1) <= 0) > 0.05


# ------------------------------------------------------------------------------------------------ formats
def test_rgba_alpha_is_the_mask_and_channels_are_rgb(scene_copy):
    masks = load_scene_arrays(scene_copy)["masks"]
    shutil.rmtree(os.path.join(scene_copy, "mask"))
    for i, name in enumerate(sorted(os.listdir(os.path.join(scene_copy, "image")))):
        path = os.path.join(scene_copy, "image", name)
        rgb = np.asarray(Image.open(path).convert("RGB"))
        rgb = rgb.copy()
        rgb[0, 0] = (255, 0, 0)  # a pure red pixel: must come back in channel 0 (RGB, not BGR)
        Image.fromarray(np.dstack([rgb, masks[i] * np.uint8(255)])).save(path)
    arrays = load_scene_arrays(scene_copy)
    assert np.array_equal(arrays["masks"], masks)
    assert np.allclose(arrays["images"][:, 0, 0], [1.0, 0.0, 0.0])


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_png_is_read_at_full_precision_in_rgb_order(tmp_path, channels):
    import cv2
    rng = np.random.default_rng(0)
    image = rng.integers(0, 65536, size=(7, 9, channels), dtype=np.uint16)  # RGB(A)
    path = str(tmp_path / "deep.png")
    order = [2, 1, 0, 3][:channels] if channels > 1 else [0]
    assert cv2.imwrite(path, image[..., order] if channels > 1 else image[..., 0])  # OpenCV writes BGR(A)
    out = read_image(path)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert np.allclose(out * 65535.0, image, atol=0.01)


def test_jpg_and_grey_images(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 2] = 200
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=95)
    out = read_image(str(tmp_path / "a.jpg"))
    assert out.shape == (8, 8, 3) and abs(out[..., 2].mean() - 200 / 255) < 0.02 and out[..., 0].max() < 0.05
    Image.fromarray(np.full((4, 5), 65535, np.uint16)).save(tmp_path / "g.png")
    assert np.allclose(read_image(str(tmp_path / "g.png")), 1.0)


@pytest.mark.parametrize("radius", [1, 4, 8])
def test_mask_dilation_matches_a_disc_dilation_with_and_without_opencv(monkeypatch, radius):
    from scipy.ndimage import binary_dilation
    from jnerf.dataset import neus_format
    masks = np.random.default_rng(radius).random((3, 37, 41)) > 0.98
    expected = np.stack([binary_dilation(m, structure=disc_kernel(radius)) for m in masks])
    np.testing.assert_array_equal(neus_format.dilate_masks(masks, radius), expected)
    monkeypatch.setattr(neus_format, "_cv2", lambda: None)  # a machine where OpenCV does not import
    np.testing.assert_array_equal(neus_format.dilate_masks(masks, radius), expected)


def test_disc_kernel_is_round():
    kernel = disc_kernel(3)
    assert kernel.shape == (7, 7) and kernel[3].all() and kernel[:, 3].all() and not kernel[0, 0]


# ------------------------------------------------------------------------------------------------ errors
def _rewrite_cameras(root, **changes):
    path = os.path.join(root, "cameras_sphere.npz")
    cams = dict(np.load(path))
    for key, value in changes.items():
        if value is None:
            del cams[key]
        else:
            cams[key] = value
    np.savez(path, **cams)
    return cams


def _error(root, match, kind=(SceneFormatError, CameraError, ImageReadError)):
    with pytest.raises(kind, match=match) as info:
        load_scene_arrays(root)
    return str(info.value)


def test_error_missing_camera_file(scene_copy):
    os.remove(os.path.join(scene_copy, "cameras_sphere.npz"))
    assert "cameras_sphere.npz" in _error(scene_copy, "not found")


def test_error_missing_key(scene_copy):
    _rewrite_cameras(scene_copy, world_mat_3=None)
    _error(scene_copy, "world_mat_3")


def test_error_non_finite_and_singular_matrices(scene_copy):
    cams = dict(np.load(os.path.join(scene_copy, "cameras_sphere.npz")))
    bad = cams["world_mat_2"].copy()
    bad[0, 0] = np.nan
    _rewrite_cameras(scene_copy, world_mat_2=bad)
    _error(scene_copy, "world_mat_2")
    singular = cams["world_mat_2"].copy()
    singular[2, :3] = singular[0, :3]
    _rewrite_cameras(scene_copy, world_mat_2=singular)
    _error(scene_copy, "invertible|singular")


def test_error_camera_inside_unit_sphere(scene_copy):
    cams = dict(np.load(os.path.join(scene_copy, "cameras_sphere.npz")))
    huge = cams["scale_mat_0"].copy()
    huge[:3, :3] *= 100.0  # the "unit sphere" would now swallow the cameras
    _rewrite_cameras(scene_copy, **{f"scale_mat_{i}": huge for i in range(N_VIEWS)})
    _error(scene_copy, "inside the unit sphere")


def test_images_pair_with_cameras_by_their_number(scene_copy):
    """A deleted image with cameras_sphere.npz unchanged used to shift every later image onto the previous camera."""
    full = load_scene_arrays(scene_copy)
    os.remove(os.path.join(scene_copy, "image", "002.png"))
    os.remove(os.path.join(scene_copy, "mask", "002.png"))
    message = _error(scene_copy, "002.png")
    assert "world_mat_2" in message and "skip_unpaired_views" in message
    kept = load_scene_arrays(scene_copy, skip_unpaired_views=True)
    assert kept["views"] == [0, 1, 3, 4, 5]
    np.testing.assert_array_equal(kept["c2w"], full["c2w"][[0, 1, 3, 4, 5]])   # 003.png keeps world_mat_3
    np.testing.assert_array_equal(kept["masks"], full["masks"][[0, 1, 3, 4, 5]])
    _rewrite_cameras(scene_copy, world_mat_9=np.load(os.path.join(scene_copy, "cameras_sphere.npz"))["world_mat_0"],
                     scale_mat_9=np.load(os.path.join(scene_copy, "cameras_sphere.npz"))["scale_mat_0"])
    shutil.copy(os.path.join(scene_copy, "image", "000.png"), os.path.join(scene_copy, "image", "011.png"))
    message = _error(scene_copy, "world_mat_9")
    assert "011.png" in message and "world_mat_11" in message


def test_error_mask_count_and_size(scene_copy):
    mask_dir = os.path.join(scene_copy, "mask")
    last = sorted(os.listdir(mask_dir))[-1]
    os.remove(os.path.join(mask_dir, last))
    assert last in _error(scene_copy, "no mask for")
    Image.fromarray(np.full((HEIGHT + 2, WIDTH), 255, np.uint8)).save(os.path.join(mask_dir, last))
    assert last in _error(scene_copy, "expected 48x40")


def test_error_image_size_mismatch(scene_copy):
    path = os.path.join(scene_copy, "image", "002.png")
    Image.fromarray(np.zeros((HEIGHT, WIDTH + 1, 3), np.uint8)).save(path)
    assert "002.png" in _error(scene_copy, "expected 48x40")


def test_error_truncated_image(scene_copy):
    path = os.path.join(scene_copy, "image", "001.png")
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    assert "001.png" in _error(scene_copy, "cannot read|truncated", ImageReadError)


def test_error_empty_mask(scene_copy):
    path = os.path.join(scene_copy, "mask", "004.png")
    Image.fromarray(np.zeros((HEIGHT, WIDTH), np.uint8)).save(path)
    assert "004.png" in _error(scene_copy, "empty")


def test_error_bad_arguments(scene):
    with pytest.raises(ValueError, match="downscale"):
        NeuSDataset(scene, downscale=1.5)
    with pytest.raises(ValueError, match="ray_sampling"):
        NeuSDataset(scene, ray_sampling="edges")


def test_projective_scale_of_world_mat_does_not_matter(scene, scene_copy):
    cams = dict(np.load(os.path.join(scene_copy, "cameras_sphere.npz")))
    # P and s*P are the same camera for any s != 0, negative included (RQ sign ambiguity)
    _rewrite_cameras(scene_copy, **{f"world_mat_{i}": cams[f"world_mat_{i}"] * (-2.5 if i % 2 else 0.1)
                                    for i in range(N_VIEWS)})
    ref, scaled = load_scene_arrays(scene), load_scene_arrays(scene_copy)
    assert np.allclose(scaled["intrinsics"], ref["intrinsics"], rtol=1e-5)
    assert np.allclose(scaled["c2w"], ref["c2w"], atol=1e-5)
