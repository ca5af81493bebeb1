"""CUDA occupancy-grid ops (kernels in occupancy.h), same signatures and results as ``reference.py``:

- ``ray_march_cuda``: two passes (count per ray, exclusive scan -> packed_info, fill). The one host sync is reading
  the total sample count to size the outputs (unavoidable with exact-size packed outputs; once per call).
- ``carve_visual_hull_cuda``: one thread per cell, loops over the views (run once at start-up).
Per-call numbers (box, resolution, step size, max_steps, near_min) travel in jt.code's data map: no recompiles.
"""
import numpy as np

import jittor as jt

from ..cuda_utils import cuda_header, kernel_scope
from .reference import as_box, check_hull_inputs, check_march_inputs

__all__ = ["ray_march_cuda", "carve_visual_hull_cuda"]

# Host launch code shared by the kernels that need the box: builds jnerf::Box from the data map.
_BOX_SRC = """
    jnerf::Box box;
    box.lo[0] = data["lo0"]; box.lo[1] = data["lo1"]; box.lo[2] = data["lo2"];
    box.hi[0] = data["hi0"]; box.hi[1] = data["hi1"]; box.hi[2] = data["hi2"];
    box.scale[0] = data["sc0"]; box.scale[1] = data["sc1"]; box.scale[2] = data["sc2"];
    box.res = (int)data["res"];
"""

_MARCH_PARAMS_SRC = _BOX_SRC + """
    jnerf::MarchParams params;
    params.box = box;
    params.step = data["step"]; params.half_step = data["half_step"];
    params.near_min = data["near_min"]; params.max_steps = (int)data["max_steps"];
"""

_COUNT_SRC = _MARCH_PARAMS_SRC + """
    // in0 rays_o [R,3] f32, in1 rays_d [R,3] f32, in2 occupied [G^3] bool|uint8{jitter_comment} -> out0 counts [R] i32
    const uint32_t n_rays = in0_shape0;
    jnerf::march_count_kernel<in2_type, {has_jitter}><<<jnerf::n_blocks(n_rays), jnerf::kThreads>>>(
        in0_p, in1_p, in2_p, {jitter_ptr}, out0_p, n_rays, params);
"""

_FILL_SRC = _MARCH_PARAMS_SRC + """
    // in0 rays_o [R,3] f32, in1 rays_d [R,3] f32, in2 occupied [G^3] bool|uint8, in3 packed_info [R,2] i32
    // {jitter_comment} -> out0 ray_indices [S] i32, out1 t_starts [S] f32, out2 t_ends [S] f32
    const uint32_t n_rays = in0_shape0;
    jnerf::march_fill_kernel<in2_type, {has_jitter}><<<jnerf::n_blocks(n_rays), jnerf::kThreads>>>(
        in0_p, in1_p, in2_p, {jitter_ptr}, in3_p, out0_p, out1_p, out2_p, n_rays, params);
"""

_CARVE_SRC = """
    // in0 views [V,21] f32, in1 background [V,H,W] uint8 -> out0 occupied [G^3] bool
    const int n_views = in0_shape0, height = in1_shape1, width = in1_shape2, res = (int)data["res"];
    jnerf::carve_kernel<{use_corners}><<<jnerf::n_blocks(out0->num), jnerf::kThreads>>>(
        in0_p, (const unsigned char*)in1_p, out0_p, n_views, height, width, res,
        data["lo0"], data["lo1"], data["lo2"], data["ext0"], data["ext1"], data["ext2"],
        (int)data["min_views"]);
"""



def _box_data(bbox_min, bbox_max, resolution):
    """The box as exact float32 values (the reference's arithmetic) in a jt.code data map."""
    lo, hi = as_box(bbox_min, bbox_max)
    scale = np.asarray(resolution / (hi - lo), dtype=np.float32)  # the reference's cell_indices expression
    data = {"res": float(int(resolution))}
    for a in range(3):
        data[f"lo{a}"], data[f"hi{a}"], data[f"sc{a}"] = float(lo[a]), float(hi[a]), float(scale[a])
    return data


def _as_f32(v):
    v = v.stop_grad()
    return v if v.dtype == jt.float32 else v.float32()


def ray_march_cuda(rays_o, rays_d, occupied, bbox_min, bbox_max, resolution, step_size, max_steps, jitter=None,
                   near_min=0.0):
    """Fixed-step samples inside occupied cells: rays_o, rays_d [R,3] f32, occupied [G^3] bool|uint8,
    jitter [R] f32 in [0,1) or None (0.5) -> (ray_indices [S] i32, t_starts [S] f32, t_ends [S] f32,
    packed_info [R,2] i32). Same samples as ``reference.ray_march_reference``. No gradients."""
    n_rays = check_march_inputs(rays_o, rays_d, occupied, resolution, step_size, max_steps, jitter)
    empty_f = jt.zeros((0,), dtype=jt.float32)
    if n_rays == 0:
        return jt.zeros((0,), dtype=jt.int32), empty_f, empty_f.clone(), jt.zeros((0, 2), dtype=jt.int32)
    if str(occupied.dtype) not in ("bool", "uint8"):
        occupied = occupied.bool()
    data = _box_data(bbox_min, bbox_max, resolution)
    data.update(step=float(np.float32(step_size)), half_step=float(np.float32(0.5 * step_size)),
                near_min=float(np.float32(near_min)), max_steps=float(int(max_steps)))
    inputs = [_as_f32(rays_o), _as_f32(rays_d), occupied.stop_grad()]
    has_jitter = jitter is not None
    jitter_inputs = [_as_f32(jitter)] if has_jitter else []
    header = cuda_header("occupancy")
    with kernel_scope():
        counts = jt.code((n_rays,), "int32", inputs + jitter_inputs, cuda_header=header, data=data,
                         cuda_src=_COUNT_SRC.format(
                             has_jitter="true" if has_jitter else "false",
                             jitter_ptr="in3_p" if has_jitter else "nullptr",
                             jitter_comment=", in3 jitter [R] f32" if has_jitter else ""))
    first = jt.cumsum(counts, 0) - counts
    packed_info = jt.stack([first, counts], dim=1).int32()          # [R,2] i32
    n_samples = int(counts.sum().item())  # the one host sync: the packed outputs' size
    if n_samples == 0:
        return jt.zeros((0,), dtype=jt.int32), empty_f, empty_f.clone(), packed_info
    with kernel_scope():
        ray_indices, t_starts, t_ends = jt.code(
            [(n_samples,), (n_samples,), (n_samples,)], ["int32", "float32", "float32"],
            inputs + [packed_info] + jitter_inputs, cuda_header=header, data=data,
            cuda_src=_FILL_SRC.format(
                has_jitter="true" if has_jitter else "false",
                jitter_ptr="in4_p" if has_jitter else "nullptr",
                jitter_comment=", in4 jitter [R] f32" if has_jitter else ""))
    return ray_indices, t_starts, t_ends, packed_info


def carve_visual_hull_cuda(intrinsics, c2w, masks, bbox_min, bbox_max, resolution, min_background_views=1,
                           use_corners=True):
    """Visual hull as ``reference.carve_visual_hull_reference``: intrinsics [N,3,3], c2w [N,4,4] (numpy),
    masks [N,H,W] (foreground true / >= 0.5; numpy or jt.Var) -> occupied [resolution^3] bool."""
    intrinsics, c2w, masks_np = check_hull_inputs(intrinsics, c2w, masks, min_background_views)
    n_views, height, width = masks_np.shape
    lo, hi = as_box(bbox_min, bbox_max)
    if n_views == 0:
        return jt.ones((resolution ** 3,), dtype=jt.bool)
    views = np.zeros((n_views, 21), dtype=np.float32)  # [V,21]: w2c rotation, translation, K (float32)
    for v in range(n_views):
        w2c = np.linalg.inv(c2w[v])
        views[v, :9] = w2c[:3, :3].astype(np.float32).reshape(-1)
        views[v, 9:12] = w2c[:3, 3].astype(np.float32)
        views[v, 12:] = intrinsics[v].astype(np.float32).reshape(-1)
    background = (~(masks_np.astype(np.float32) >= 0.5)).astype(np.uint8)  # [V,H,W] 1 = background
    extent = hi - lo
    data = {"res": float(int(resolution)), "min_views": float(int(min_background_views))}
    for a in range(3):
        data[f"lo{a}"], data[f"ext{a}"] = float(lo[a]), float(extent[a])
    with kernel_scope():
        return jt.code((int(resolution) ** 3,), "bool", [jt.array(views), jt.array(background)],
                       cuda_header=cuda_header("occupancy"), data=data,
                       cuda_src=_CARVE_SRC.format(use_corners="true" if use_corners else "false"))
