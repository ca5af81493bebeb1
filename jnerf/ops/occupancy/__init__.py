"""Occupancy-grid ops: ray marching into packed samples and visual-hull carving.

The public functions choose the implementation at call time: the CUDA kernels of ``occupancy.py`` when
``jt.flags.use_cuda`` is set and they are available, otherwise the Jittor-ops reference in ``reference.py``.
Kernels return plain tuples; ``ray_march`` wraps them into ``PackedSamples`` here so both paths agree.
"""
from dataclasses import dataclass

import jittor as jt

from jnerf.ops import cuda_kernel

from .reference import (as_box, carve_visual_hull_reference, cell_centres, cell_indices, ray_aabb_intersect,
                        ray_march_reference)

__all__ = ["PackedSamples", "ray_march", "carve_visual_hull", "ray_aabb_intersect",
           "cell_indices", "cell_centres", "as_box"]


@dataclass
class PackedSamples:
    """Samples along rays without padding (nerfacc style); a ray's samples are contiguous and ordered by t.

    ray_indices [S] int32, t_starts [S] float32, t_ends [S] float32, packed_info [R,2] int32 (first, count).
    """
    ray_indices: jt.Var
    t_starts: jt.Var
    t_ends: jt.Var
    packed_info: jt.Var

    @property
    def n_samples(self):
        return int(self.ray_indices.shape[0])

    @property
    def n_rays(self):
        return int(self.packed_info.shape[0])

    def midpoints(self):
        """Centre of each sample's interval: [S] float32."""
        return 0.5 * (self.t_starts + self.t_ends)

    def lengths(self):
        """Length of each sample's interval: [S] float32."""
        return self.t_ends - self.t_starts


def _cuda_impl(name):
    return cuda_kernel("jnerf.ops.occupancy.occupancy", name)


def ray_march(rays_o, rays_d, occupied, bbox_min, bbox_max, resolution, step_size, max_steps, jitter=None,
              near_min=0.0):
    """Fixed-step samples inside occupied cells -> PackedSamples (see ``reference.ray_march_reference``)."""
    impl = _cuda_impl("ray_march_cuda") or ray_march_reference
    return PackedSamples(*impl(rays_o, rays_d, occupied, bbox_min, bbox_max, resolution, step_size, max_steps,
                               jitter, near_min))


def carve_visual_hull(intrinsics, c2w, masks, bbox_min, bbox_max, resolution, min_background_views=1,
                      use_corners=True):
    """occupied [R^3] bool: cells not seen as background by >= min_background_views views."""
    impl = _cuda_impl("carve_visual_hull_cuda") or carve_visual_hull_reference
    return impl(intrinsics, c2w, masks, bbox_min, bbox_max, resolution, min_background_views, use_corners)
