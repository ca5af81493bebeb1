"""Reading a NeuS-format scene folder into numpy (no Jittor): cameras, images, masks, downscaling, mask dilation.

Layout: ``<root>/cameras_sphere.npz``, ``<root>/image/000.png ...``, optional ``<root>/mask/000.png ...``; the image
``010.png`` (and its mask) belongs to ``world_mat_10``. The loader (``neus_dataset.py``) and the mesh evaluator
share this code.
"""
import logging
import os
import re

import numpy as np

from .cameras import camera_indices, downscale_intrinsics, load_cameras_npz
from .image_io import _cv2, read_image

logger = logging.getLogger("jnerf")

__all__ = ["SceneFormatError", "load_scene_arrays", "pair_views", "view_index", "IMAGE_EXTENSIONS", "list_images",
           "read_scene_cameras", "read_rgb_images", "read_masks", "check_masks_not_empty", "block_average",
           "dilate_masks", "disc_kernel", "check_downscale"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


class SceneFormatError(ValueError):
    """A scene folder whose files do not fit the NeuS layout; the message names the file and what was expected."""


def list_images(folder, what="image"):
    """Sorted image paths (png/jpg) in ``folder``; raises when the folder is missing or holds none."""
    if not os.path.isdir(folder):
        raise SceneFormatError(f"{folder}: {what} folder not found")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise SceneFormatError(f"{folder}: no {what} files (expected {', '.join(IMAGE_EXTENSIONS)})")
    return [os.path.join(folder, n) for n in names]


def check_downscale(factor):
    """Validate an integer downscale factor >= 1."""
    if int(factor) != factor or factor < 1:
        raise ValueError(f"downscale must be an integer >= 1, got {factor!r}")
    return int(factor)


def read_scene_cameras(root, views, downscale=1, camera_file="cameras_sphere.npz"):
    """(intrinsics [N,3,3] float32 after downscale, c2w [N,4,4] float32 normalised frame, scale_mat [4,4] float64)
    of ``views`` (a count, or a list of view indices)."""
    intr, c2w, scale_mat = load_cameras_npz(os.path.join(root, camera_file), views)
    intr = np.stack([downscale_intrinsics(k, check_downscale(downscale)) for k in intr])
    return intr.astype(np.float32), c2w.astype(np.float32), scale_mat


def view_index(path):
    """The view index a NeuS file name carries (``010.png`` -> 10), None when the name ends in no number."""
    m = re.search(r"(\d+)$", os.path.splitext(os.path.basename(path))[0])
    return int(m.group(1)) if m else None


def _indexed(files, what):
    """{view index: path} of files named by index; None when some name carries no number."""
    indices = [view_index(f) for f in files]
    if any(i is None for i in indices):
        return None
    seen = {}
    for i, f in zip(indices, files):
        if i in seen:
            raise SceneFormatError(f"{f} and {seen[i]}: two {what} files for view {i}")
        seen[i] = f
    return seen


def pair_views(root, image_files, camera_file="cameras_sphere.npz", image_dir="image", skip_unpaired=False):
    """(image paths, view indices) paired with the cameras as NeuS data means it: ``010.png`` <-> ``world_mat_10``.
    An image without a camera or a camera without an image is an error naming both, unless ``skip_unpaired``
    (then those views are dropped with a warning). Files not named by a number pair by sorted position, which needs
    exactly as many cameras."""
    cam_path = os.path.join(root, camera_file)
    cameras = camera_indices(cam_path)
    by_index = _indexed(image_files, "image")
    if by_index is None:
        if len(cameras) != len(image_files):
            raise SceneFormatError(f"{os.path.join(root, image_dir)}: {len(image_files)} images whose names carry no "
                                   f"view number, and {len(cameras)} cameras in {cam_path}: cannot pair them")
        return list(image_files), cameras
    no_camera = [i for i in sorted(by_index) if i not in cameras]
    no_image = [i for i in cameras if i not in by_index]
    if no_camera or no_image:
        problem = "; ".join(
            [f"{image_dir}/{os.path.basename(by_index[i])} has no camera (no world_mat_{i} in {cam_path})"
             for i in no_camera[:3]] +
            [f"world_mat_{i} in {cam_path} has no image (no {image_dir}/{i:03d}.png)" for i in no_image[:3]])
        more = len(no_camera) + len(no_image) - min(len(no_camera), 3) - min(len(no_image), 3)
        problem += f"; and {more} more" if more > 0 else ""
        if not skip_unpaired:
            raise SceneFormatError(f"{problem} (set dataset.skip_unpaired_views=True to train on the paired views)")
        logger.warning("%s: skipping the unpaired views (dataset.skip_unpaired_views)", problem)
    views = [i for i in sorted(by_index) if i in cameras]
    if not views:
        raise SceneFormatError(f"{os.path.join(root, image_dir)}: no image has a camera in {cam_path}")
    return [by_index[i] for i in views], views


def block_average(image, factor):
    """Average ``factor`` x ``factor`` pixel blocks of [H,W,...]; the last H % f rows / W % f columns are dropped."""
    if factor == 1:
        return image
    h, w = image.shape[0] // factor, image.shape[1] // factor
    blocks = image[:h * factor, :w * factor].reshape(h, factor, w, factor, *image.shape[2:])
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def _check_size(path, array, size):
    if array.shape[:2] != size:
        raise SceneFormatError(f"{path}: size {array.shape[1]}x{array.shape[0]} (WxH), expected "
                               f"{size[1]}x{size[0]} like the first image")


def read_rgb_images(paths, downscale=1):
    """(images float32 [N,h,w,3] RGB in [0,1], alpha masks bool [N,h,w] or None unless every image has alpha,
    full-resolution size (H, W)); h = H // downscale, w = W // downscale.

    One float32 array is filled in place, so peak memory is the output plus one image.
    """
    first = read_image(paths[0])
    size = first.shape[:2]
    h, w = size[0] // downscale, size[1] // downscale
    images = np.empty((len(paths), h, w, 3), dtype=np.float32)
    alphas = np.empty((len(paths), h, w), dtype=bool) if first.shape[2] == 4 else None
    for i, path in enumerate(paths):
        img = first if i == 0 else read_image(path)
        _check_size(path, img, size)
        rgb = np.repeat(img[..., :1], 3, axis=2) if img.shape[2] in (1, 2) else img[..., :3]
        images[i] = block_average(rgb, downscale)
        if alphas is not None:
            if img.shape[2] != 4:
                alphas = None  # mixed RGB/RGBA: alpha is not a usable mask source
            else:
                alphas[i] = block_average(img[..., 3], downscale) >= 0.5
    return images, alphas, size


def read_masks(paths, size, downscale=1):
    """Binary masks bool [N,h,w] from mask images (first channel > 0.5) of full-resolution ``size`` (H, W)."""
    masks = np.empty((len(paths), size[0] // downscale, size[1] // downscale), dtype=bool)
    for i, path in enumerate(paths):
        img = read_image(path)
        _check_size(path, img, size)
        binary = (img[..., 0] > 0.5).astype(np.float32)
        masks[i] = block_average(binary, downscale) >= 0.5
    return masks


def check_masks_not_empty(masks, paths):
    for mask, path in zip(masks, paths):
        if not mask.any():
            raise SceneFormatError(f"{path}: mask is empty (no foreground pixel); every view must see the object")


def disc_kernel(radius):
    """Boolean disc [2r+1, 2r+1] of offsets within ``radius`` + 0.5 (the original's kernel; radius 0: one pixel)."""
    r = int(np.ceil(radius))
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= (radius + 0.5) ** 2


def dilate_masks(masks, radius):
    """Dilate bool masks [N,H,W] with a disc of ``radius`` pixels (0: unchanged): OpenCV's dilate, or the same
    maximum over the disc's offsets in numpy where OpenCV does not import."""
    if radius <= 0:
        return masks
    kernel = disc_kernel(radius)
    cv2 = _cv2()
    if cv2 is not None:
        return np.stack([cv2.dilate(m.astype(np.uint8), kernel.astype(np.uint8)) > 0 for m in masks])
    r = kernel.shape[0] // 2
    padded = np.pad(masks, ((0, 0), (r, r), (r, r)))
    out = np.zeros_like(masks)
    height, width = masks.shape[1:]
    for dy, dx in zip(*np.nonzero(kernel)):
        out |= padded[:, dy:dy + height, dx:dx + width]
    return out


def load_scene_arrays(root, downscale=1, use_masks=True, image_dir="image", mask_dir="mask",
                      camera_file="cameras_sphere.npz", skip_unpaired_views=False):
    """Numpy view of a scene: dict of ``image_files``, ``views`` (view indices), ``images`` float32 [N,H,W,3],
    ``masks`` bool [N,H,W] or None (from ``mask_dir``, else from the images' alpha), ``intrinsics`` [N,3,3] and
    ``c2w`` [N,4,4] float32, ``scale_mat`` float64 [4,4]. Images, masks and cameras are paired by the view number in
    the file names (``pair_views``). Masks and images are block-averaged by ``downscale``."""
    downscale = check_downscale(downscale)
    image_files, views = pair_views(root, list_images(os.path.join(root, image_dir), "image"), camera_file,
                                    image_dir, skip_unpaired_views)
    images, alphas, full_size = read_rgb_images(image_files, downscale)
    intrinsics, c2w, scale_mat = read_scene_cameras(root, views, downscale, camera_file)
    masks = None
    if use_masks:
        mask_folder = os.path.join(root, mask_dir)
        if os.path.isdir(mask_folder):
            mask_files = _mask_files(mask_folder, image_files, views)
            masks = read_masks(mask_files, full_size, downscale)
            check_masks_not_empty(masks, mask_files)
        elif alphas is not None:
            masks = alphas
            check_masks_not_empty(masks, [f"{f} (alpha channel)" for f in image_files])
    return dict(image_files=image_files, views=views, images=images, masks=masks, intrinsics=intrinsics, c2w=c2w,
                scale_mat=scale_mat)


def _mask_files(mask_folder, image_files, views):
    """The mask of each image: the mask file with the image's view number (by sorted position when the names carry
    no number, which then needs one mask per image)."""
    mask_files = list_images(mask_folder, "mask")
    by_index = _indexed(mask_files, "mask")
    if by_index is None or _indexed(image_files, "image") is None:
        if len(mask_files) != len(image_files):
            raise SceneFormatError(f"{mask_folder}: {len(mask_files)} masks for {len(image_files)} images "
                                   f"(expected one mask per image)")
        return mask_files
    missing = [os.path.basename(f) for f, v in zip(image_files, views) if v not in by_index]
    if missing:
        raise SceneFormatError(f"{mask_folder}: no mask for {', '.join(missing[:5])}"
                               f"{' ...' if len(missing) > 5 else ''} (expected one mask per image, named alike)")
    return [by_index[v] for v in views]
