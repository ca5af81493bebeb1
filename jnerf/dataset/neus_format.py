"""Reading a NeuS-format scene folder into numpy (no Jittor): cameras, images, masks, downscaling, mask dilation.

Layout: ``<root>/cameras_sphere.npz``, ``<root>/image/000.png ...``, optional ``<root>/mask/000.png ...``; camera i
belongs to the i-th image in sorted order. The loader (``neus_dataset.py``) and the mesh evaluator share this code.
"""
import os

import numpy as np

from .cameras import downscale_intrinsics, load_cameras_npz
from .image_io import read_image

__all__ = ["SceneFormatError", "load_scene_arrays", "IMAGE_EXTENSIONS", "list_images", "read_scene_cameras",
           "read_rgb_images", "read_masks", "check_masks_not_empty", "block_average", "dilate_masks", "disc_kernel",
           "check_downscale"]

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


def read_scene_cameras(root, n_images, downscale=1, camera_file="cameras_sphere.npz"):
    """(intrinsics [N,3,3] float32 after downscale, c2w [N,4,4] float32 normalised frame, scale_mat [4,4] float64)."""
    intr, c2w, scale_mat = load_cameras_npz(os.path.join(root, camera_file), n_images)
    intr = np.stack([downscale_intrinsics(k, check_downscale(downscale)) for k in intr])
    return intr.astype(np.float32), c2w.astype(np.float32), scale_mat


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
    """Dilate bool masks [N,H,W] with a disc of ``radius`` pixels (0: unchanged)."""
    if radius <= 0:
        return masks
    from scipy.ndimage import binary_dilation
    kernel = disc_kernel(radius)
    return np.stack([binary_dilation(m, structure=kernel) for m in masks])


def load_scene_arrays(root, downscale=1, use_masks=True, image_dir="image", mask_dir="mask",
                      camera_file="cameras_sphere.npz"):
    """Numpy view of a scene: dict of ``image_files``, ``images`` float32 [N,H,W,3], ``masks`` bool [N,H,W] or None
    (from ``mask_dir``, else from the images' alpha), ``intrinsics`` [N,3,3] and ``c2w`` [N,4,4] float32,
    ``scale_mat`` float64 [4,4]. Masks and images are block-averaged by ``downscale``."""
    downscale = check_downscale(downscale)
    image_files = list_images(os.path.join(root, image_dir), "image")
    images, alphas, full_size = read_rgb_images(image_files, downscale)
    intrinsics, c2w, scale_mat = read_scene_cameras(root, len(image_files), downscale, camera_file)
    masks = None
    if use_masks:
        mask_folder = os.path.join(root, mask_dir)
        if os.path.isdir(mask_folder):
            mask_files = list_images(mask_folder, "mask")
            if len(mask_files) != len(image_files):
                raise SceneFormatError(f"{mask_folder}: {len(mask_files)} masks for {len(image_files)} images in "
                                       f"{os.path.join(root, image_dir)} (expected one mask per image)")
            masks = read_masks(mask_files, full_size, downscale)
            check_masks_not_empty(masks, mask_files)
        elif alphas is not None:
            masks = alphas
            check_masks_not_empty(masks, [f"{f} (alpha channel)" for f in image_files])
    return dict(image_files=image_files, images=images, masks=masks, intrinsics=intrinsics, c2w=c2w,
                scale_mat=scale_mat)
