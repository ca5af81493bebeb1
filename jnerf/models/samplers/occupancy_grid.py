"""Occupancy grid over the object box: visual-hull init from masks, weight-based pruning, packed ray marching.

The grid only tells the sampler where the surface may be; the SDF is never evaluated to build it. It starts as the
visual hull of the masks and shrinks as cells whose rendering weight stays tiny are pruned. Cells are never re-added.
"""
import jittor as jt
import numpy as np

from jnerf.ops.occupancy import as_box, carve_visual_hull, max_weight_update, ray_march
from jnerf.utils.registry import SAMPLERS

__all__ = ["OccupancyGrid"]


@SAMPLERS.register_module()
class OccupancyGrid:
    """A boolean grid of resolution^3 cells over [bbox_min, bbox_max] (normalised frame, may be anisotropic).

    ``occupied`` jt.Var bool [R^3], flat index ix*R*R + iy*R + iz; ``max_weight`` jt.Var float32 [R^3] holds the
    largest rendering weight seen per cell since the last prune. ``min_occupied_fraction`` is the floor that
    pruning never goes below (a badly initialised SDF must not empty the grid).
    """

    def __init__(self, bbox_min=(-1.0, -1.0, -1.0), bbox_max=(1.0, 1.0, 1.0), resolution=128,
                 min_occupied_fraction=0.002):
        if int(resolution) != resolution or resolution < 1:
            raise ValueError(f"resolution: expected a positive integer, got {resolution}")
        if not 0.0 <= min_occupied_fraction <= 1.0:
            raise ValueError(f"min_occupied_fraction: expected a value in [0,1], got {min_occupied_fraction}")
        self.bbox_min, self.bbox_max = as_box(bbox_min, bbox_max)
        self.resolution = int(resolution)
        self.min_occupied_fraction = float(min_occupied_fraction)
        self.occupied = jt.ones((self.n_cells,), dtype=jt.bool)
        self.max_weight = jt.zeros((self.n_cells,), dtype=jt.float32)

    @property
    def n_cells(self):
        return self.resolution ** 3

    @property
    def occupied_fraction(self):
        return float(self.occupied.float32().mean().item())

    def cell_size(self):
        """Edge lengths of one cell: numpy float32 [3]."""
        return (self.bbox_max - self.bbox_min) / self.resolution

    def init_from_masks(self, intrinsics, c2w, masks, min_background_views=1, use_corners=True, dilate_pixels=0):
        """Carve the visual hull: cells that >= min_background_views views see as background become empty.

        intrinsics [N,3,3], c2w [N,4,4] (normalised frame), masks [N,H,W] (foreground true). ``dilate_pixels``
        grows the foreground first, so that mask errors of that many pixels never carve the object.
        Returns the occupied fraction.
        """
        masks_np = masks.numpy() if isinstance(masks, jt.Var) else np.asarray(masks)
        masks_np = masks_np.astype(np.float32) >= 0.5
        if dilate_pixels > 0:
            window = np.ones((1, 2 * int(dilate_pixels) + 1, 2 * int(dilate_pixels) + 1), dtype=bool)
            from scipy import ndimage  # lazily: only needed when dilating
            masks_np = ndimage.binary_dilation(masks_np, structure=window)
        self.occupied = carve_visual_hull(intrinsics, c2w, masks_np, self.bbox_min, self.bbox_max,
                                          self.resolution, min_background_views, use_corners)
        self.reset_weights()
        return self.occupied_fraction

    def reset_weights(self):
        self.max_weight = jt.zeros((self.n_cells,), dtype=jt.float32)

    def update_weights(self, points, weights):
        """Raise each cell's max weight with samples at points [S,3] (normalised frame) of weights [S]."""
        self.max_weight = max_weight_update(self.max_weight, points, weights, self.bbox_min, self.bbox_max,
                                            self.resolution).detach()

    def prune(self, threshold):
        """Empty the occupied cells whose max weight since the last prune stayed below ``threshold``.

        If that would leave fewer than ``min_occupied_fraction`` of all cells, the occupied cells with the largest
        weights are kept up to that floor instead. Weights restart from 0. Returns the occupied fraction.
        """
        keep = self.occupied & (self.max_weight >= float(threshold))
        floor = int(np.ceil(self.min_occupied_fraction * self.n_cells))
        n_keep = int(keep.int32().sum().item())
        n_occupied = int(self.occupied.int32().sum().item())
        if n_keep < floor and n_occupied > n_keep:
            keep = self._heaviest_occupied(min(floor, n_occupied))
        self.occupied = keep.detach()
        self.reset_weights()
        return self.occupied_fraction

    def _heaviest_occupied(self, count):
        """bool [R^3]: the ``count`` occupied cells with the largest max weight."""
        score = jt.where(self.occupied, self.max_weight, jt.full_like(self.max_weight, -1.0))
        order, _ = jt.argsort(score, descending=True)
        keep = np.zeros(self.n_cells, dtype=bool)
        keep[order[:count].numpy()] = True
        return jt.array(keep)

    def tight_bbox(self, margin=0.0):
        """(min [3], max [3]) numpy float32 of the occupied cells, grown by ``margin`` (normalised-frame units)
        on every side and clipped to the grid's box; the whole box when nothing is occupied."""
        flat = np.nonzero(self.occupied.numpy())[0]
        if flat.size == 0:
            return self.bbox_min.copy(), self.bbox_max.copy()
        res = self.resolution
        ijk = np.stack([flat // (res * res), (flat // res) % res, flat % res], axis=1)
        size = self.cell_size()
        lo = self.bbox_min + ijk.min(axis=0) * size - margin
        hi = self.bbox_min + (ijk.max(axis=0) + 1) * size + margin
        return (np.maximum(lo, self.bbox_min).astype(np.float32),
                np.minimum(hi, self.bbox_max).astype(np.float32))

    def ray_march(self, rays_o, rays_d, step_size, max_steps, jitter=None, near_min=0.0):
        """PackedSamples of the rays [R,3] inside occupied cells (see jnerf.ops.occupancy.ray_march)."""
        return ray_march(rays_o, rays_d, self.occupied, self.bbox_min, self.bbox_max, self.resolution,
                         step_size, max_steps, jitter, near_min)

    def contains(self, points):
        """Numpy bool [N]: whether points [N,3] (numpy, normalised frame) lie inside the box in an occupied cell;
        mesh extraction uses it to skip the network in empty space."""
        points = np.asarray(points, dtype=np.float32)
        inside = np.all((points >= self.bbox_min) & (points <= self.bbox_max), axis=1)
        ijk = np.floor((points - self.bbox_min) / self.cell_size()).astype(np.int64)
        ijk = np.clip(ijk, 0, self.resolution - 1)
        flat = (ijk[:, 0] * self.resolution + ijk[:, 1]) * self.resolution + ijk[:, 2]
        return inside & self._occupied_np()[flat]

    def _occupied_np(self):
        return self.occupied.numpy().astype(bool)

    def state_dict(self):
        """Numpy arrays for a checkpoint."""
        return {"bbox_min": self.bbox_min.copy(), "bbox_max": self.bbox_max.copy(),
                "resolution": np.int64(self.resolution), "occupied": self.occupied.numpy().astype(bool),
                "max_weight": self.max_weight.numpy().astype(np.float32)}

    def load_state_dict(self, state):
        """Restore from ``state_dict()``; the box and resolution are taken from the state."""
        resolution = int(state["resolution"])
        occupied = np.asarray(state["occupied"]).reshape(-1)
        if occupied.size != resolution ** 3:
            raise ValueError(f"state['occupied']: expected {resolution ** 3} cells for resolution {resolution}, "
                             f"got {occupied.size}")
        self.bbox_min, self.bbox_max = as_box(state["bbox_min"], state["bbox_max"])
        self.resolution = resolution
        self.occupied = jt.array(occupied.astype(bool))
        self.max_weight = jt.array(np.asarray(state["max_weight"], dtype=np.float32).reshape(-1))
