"""`NeuSDataset`: NeuS/IDR-format multi-view data (cameras_sphere.npz + image/ + mask/) as ray batches on the device.

Everything lives in the normalised frame (object inside the unit sphere); ``scale_mat`` maps results back to world
units. Images and masks are held as jt.Var on the compute device and training batches are drawn there with Jittor
ops (no host round trip per step). See docs/design.md ("Data") for the contract.
"""
import logging

import numpy as np
import jittor as jt

from jnerf.utils.checks import require_int
from jnerf.utils.registry import DATASETS
from .neus_format import SceneFormatError, check_downscale, dilate_masks, load_scene_arrays

__all__ = ["NeuSDataset"]

logger = logging.getLogger("jnerf")

FEW_VIEWS = 20  # below this many views, warn: NeuS-style reconstruction typically uses 30-100


@DATASETS.register_module()
class NeuSDataset:
    """Multi-view images, optional masks and cameras of one object, in the normalised frame.

    Args:
        root: scene folder holding ``cameras_sphere.npz``, ``image/`` and optionally ``mask/``.
        downscale: integer factor; images are block-averaged and K adjusted so pixel centres stay integers.
        mask_dilation: radius (pixels, after downscaling) of the disc that grows masks for ray sampling and the hull
            (``masks``/``masks_np`` stay undilated: they are the supervision targets).
        use_masks: False ignores masks even when present.
        ray_sampling: 'mask' draws training pixels from the dilated masks, 'all' from whole images
            ('mask' without masks falls back to 'all'), 'sphere' from the pixels whose rays meet the unit sphere
            (without masks: the object is inside it, so rays are not spent on the background alone).
        skip_unpaired_views: drop (with a warning) images without a camera and cameras without an image, instead
            of stopping; images pair with cameras by the number in their names (010.png <-> world_mat_10).
        min_views: fewer views than this is an error (a surface needs many views; warned below FEW_VIEWS).
    """

    def __init__(self, root, downscale=1, mask_dilation=0, use_masks=True, ray_sampling="mask",
                 skip_unpaired_views=False, min_views=3, image_dir="image", mask_dir="mask",
                 camera_file="cameras_sphere.npz"):
        if ray_sampling not in ("mask", "all", "sphere"):
            raise ValueError(f"NeuSDataset: ray_sampling must be 'mask', 'all' or 'sphere', got {ray_sampling!r}")
        if mask_dilation < 0:
            raise ValueError(f"NeuSDataset: mask_dilation must be >= 0 pixels, got {mask_dilation!r}")
        self.root, self.downscale, self.mask_dilation = root, check_downscale(downscale), mask_dilation
        scene = load_scene_arrays(root, self.downscale, use_masks, image_dir, mask_dir, camera_file,
                                  skip_unpaired_views)
        self.image_files = scene["image_files"]
        self.n_images = len(self.image_files)
        if self.n_images < require_int("dataset", "min_views", min_views, 1):
            raise SceneFormatError(f"{root}: {self.n_images} view(s); surface reconstruction needs many views "
                                   f"(dataset.min_views={min_views}; lower it to try anyway)")
        if self.n_images < FEW_VIEWS:
            logger.warning("%s: only %d views; surfaces from fewer than %d views are often incomplete or wrong",
                           root, self.n_images, FEW_VIEWS)
        self.H, self.W = scene["images"].shape[1:3]
        self.intrinsics, self.c2w, self.scale_mat = scene["intrinsics"], scene["c2w"], scene["scale_mat"]
        self.masks_np = scene["masks"]  # [N,H,W] bool or None
        self.dilated_masks_np = None if self.masks_np is None else dilate_masks(self.masks_np, mask_dilation)
        self.ray_sampling = "all" if ray_sampling == "mask" and self.masks_np is None else ray_sampling

        self.images = jt.array(scene.pop("images"))  # [N,H,W,3] float32; the numpy copy is dropped with ``scene``
        self.masks = None if self.masks_np is None else jt.array(self.masks_np.astype(np.float32))
        # world direction of pixel (u, v, 1) per camera: R_c2w K^-1, [N,3,3]
        pix_to_dir = np.einsum("nij,njk->nik", self.c2w[:, :3, :3].astype(np.float64),
                               np.linalg.inv(self.intrinsics.astype(np.float64)))
        self._pix_to_dir = jt.array(pix_to_dir.astype(np.float32))
        self._origins = jt.array(self.c2w[:, :3, 3].copy())
        self._build_sampling_tables()

    def _build_sampling_tables(self):
        """Per image, the flat indices of pixels rays may start from, concatenated, plus offsets and counts [N]."""
        if self.ray_sampling == "mask":
            flat = self.dilated_masks_np.reshape(self.n_images, -1)
            valid = [np.nonzero(f)[0] for f in flat]
        elif self.ray_sampling == "sphere":
            valid = [np.nonzero(self._meets_unit_sphere(i))[0] for i in range(self.n_images)]
            if min(len(v) for v in valid) == 0:
                raise ValueError(f"{self.root}: ray_sampling='sphere', but no pixel of some image sees the unit "
                                 f"sphere; check scale_mat in the cameras file")
        else:
            valid = None
        counts = np.array([len(v) for v in valid] if valid else [self.H * self.W] * self.n_images)
        self._valid_pixels = jt.array(np.concatenate(valid).astype(np.int32)) if valid else None
        self._valid_offsets = jt.array((np.cumsum(counts) - counts).astype(np.int32))
        self._valid_counts = jt.array(counts.astype(np.float32))

    def _meets_unit_sphere(self, idx):
        """[H*W] bool: pixels of image ``idx`` whose ray meets the unit sphere in front of the camera."""
        v, u = np.mgrid[0:self.H, 0:self.W]
        pix = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], axis=1)                   # [P,3]
        pix_to_dir = (self.c2w[idx, :3, :3].astype(np.float64)
                      @ np.linalg.inv(self.intrinsics[idx].astype(np.float64)))
        dirs = pix @ pix_to_dir.T
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        origin = self.c2w[idx, :3, 3].astype(np.float64)
        b = dirs @ origin                                                                 # [P]
        disc = b * b - (origin @ origin - 1.0)
        return (disc > 0) & (-b + np.sqrt(np.maximum(disc, 0)) > 0)

    # ----------------------------------------------------------------------------------------- rays
    def _rays(self, img_idx, u, v):
        """Origins and unit directions [n,3] through pixel coordinates (u, v) ([n], int or float) of images
        ``img_idx`` (int32 [n])."""
        pix = jt.stack([u.float32(), v.float32(), jt.ones(u.shape, dtype="float32")], dim=-1)  # [n,3]
        dirs = (self._pix_to_dir[img_idx] * pix.unsqueeze(1)).sum(-1)  # [n,3]
        dirs = dirs / jt.sqrt((dirs * dirs).sum(-1, keepdims=True))
        return self._origins[img_idx], dirs

    def _lookup(self, img_idx, flat_pix):
        """Target colour [n,3] and mask [n,1] at flat pixel indices of the given images."""
        flat = img_idx * (self.H * self.W) + flat_pix
        rgb = self.images.reshape(-1, 3)[flat]
        if self.masks is None:
            mask = jt.ones((flat.shape[0], 1), dtype="float32")
        else:
            mask = self.masks.reshape(-1)[flat].unsqueeze(-1)
        return rgb, mask

    def sample_rays(self, n):
        """A random batch of ``n`` rays: image uniform, then a pixel uniform within its sampling region."""
        img_idx = jt.randint(0, self.n_images, shape=(n,), dtype="int32")
        count = self._valid_counts[img_idx]
        pick = jt.minimum(jt.floor_int(jt.random((n,)) * count), (count - 1).int32())  # [n] int32
        if self._valid_pixels is None:
            flat_pix = pick
        else:
            flat_pix = self._valid_pixels[self._valid_offsets[img_idx] + pick]
        v = flat_pix // self.W
        u = flat_pix - v * self.W
        rays_o, rays_d = self._rays(img_idx, u, v)
        rgb, mask = self._lookup(img_idx, flat_pix)
        return {"rays_o": rays_o, "rays_d": rays_d, "rgb": rgb, "mask": mask, "img_idx": img_idx}

    def image_rays(self, idx, downscale=1):
        """Rays for every pixel of image ``idx`` (row-major), block-averaged by ``downscale`` for cheap previews.

        Output pixel (u', v') averages input pixels f*u' .. f*u'+f-1, so its ray goes through the block centre
        (f*u' + (f-1)/2, f*v' + (f-1)/2), the same camera as ``downscale_intrinsics`` gives.
        """
        if not 0 <= idx < self.n_images:
            raise IndexError(f"NeuSDataset: image index {idx} out of range [0, {self.n_images})")
        f = check_downscale(downscale)
        h, w = self.H // f, self.W // f
        v, u = np.mgrid[0:h, 0:w].reshape(2, -1) * f + (f - 1) / 2.0  # block centres, full-resolution pixels
        img_idx = jt.full((h * w,), idx, dtype="int32")
        rays_o, rays_d = self._rays(img_idx, jt.array(u.astype(np.float32)), jt.array(v.astype(np.float32)))
        rgb = self.images[idx][:h * f, :w * f].reshape(h, f, w, f, 3).mean(3).mean(1).reshape(-1, 3)
        if self.masks is None:
            mask = jt.ones((h * w, 1), dtype="float32")
        else:
            block = self.masks[idx][:h * f, :w * f].reshape(h, f, w, f).mean(3).mean(1)
            mask = (block >= 0.5).float32().reshape(-1, 1)
        return {"rays_o": rays_o, "rays_d": rays_d, "rgb": rgb, "mask": mask, "img_idx": img_idx, "H": h, "W": w}

    # ----------------------------------------------------------------------------------------- helpers
    def hull_cameras(self):
        """What the visual hull needs: intrinsics [N,3,3], c2w [N,4,4] (float32) and the dilated masks [N,H,W]
        bool (None without masks), keyed as ``OccupancyGrid.init_from_masks`` takes them."""
        return {"intrinsics": self.intrinsics, "c2w": self.c2w, "masks": self.dilated_masks_np}

    def __len__(self):
        return self.n_images

    def __repr__(self):
        n_masks = "no masks" if self.masks_np is None else f"masks dilated by {self.mask_dilation}px"
        return (f"NeuSDataset({self.root}: {self.n_images} images {self.W}x{self.H} (downscale "
                f"{self.downscale}), {n_masks}, ray_sampling={self.ray_sampling})")
