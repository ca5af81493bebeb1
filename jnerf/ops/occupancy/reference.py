"""Occupancy-grid ops with plain Jittor ops: the CPU path and the semantics the CUDA kernels copy.

The grid covers the (possibly anisotropic) box [bbox_min, bbox_max] with ``resolution`` cells per axis; cell
(ix, iy, iz) has the flat index ``ix*R*R + iy*R + iz`` and points outside the box map to the nearest cell.
Cameras follow the dataset's convention: OpenCV axes, pixel (u, v) has its centre at integer coordinates.
"""
import jittor as jt
import numpy as np

__all__ = ["as_box", "ray_aabb_intersect", "cell_indices", "cell_centres", "ray_march_reference",
           "carve_visual_hull_reference"]

# Replaces zero direction components in the slab test: the slab bounds go to +-huge instead of nan.
_TINY_DIRECTION = 1e-9


def as_box(bbox_min, bbox_max):
    """The box corners as float32 numpy [3] arrays; raises unless min < max on every axis."""
    lo = np.asarray(bbox_min, dtype=np.float32).reshape(-1)
    hi = np.asarray(bbox_max, dtype=np.float32).reshape(-1)
    if lo.shape != (3,) or hi.shape != (3,):
        raise ValueError(f"bbox_min/bbox_max: expected 3 numbers each, got {lo.tolist()} and {hi.tolist()}")
    if not np.all(hi > lo):
        raise ValueError(f"bbox_max must exceed bbox_min on every axis, got {lo.tolist()} and {hi.tolist()}")
    return lo, hi


def _check_rays(rays_o, rays_d):
    if rays_o.ndim != 2 or rays_o.shape[1] != 3:
        raise ValueError(f"rays_o: expected shape [R,3], got {list(rays_o.shape)}")
    if tuple(rays_d.shape) != tuple(rays_o.shape):
        raise ValueError(f"rays_d: expected shape {list(rays_o.shape)} like rays_o, got {list(rays_d.shape)}")


def ray_aabb_intersect(rays_o, rays_d, bbox_min, bbox_max, near_min=0.0):
    """Slab test: rays_o, rays_d [R,3] -> t_near [R], t_far [R] float32, hit [R] bool.

    t_near is clamped to at least ``near_min``; a ray hits when t_far > t_near after that clamp.
    """
    _check_rays(rays_o, rays_d)
    lo, hi = as_box(bbox_min, bbox_max)
    d = jt.where(rays_d.abs() < _TINY_DIRECTION, jt.full_like(rays_d, _TINY_DIRECTION), rays_d)
    t_lo = (jt.array(lo).reshape((1, 3)) - rays_o) / d                                 # [R,3]
    t_hi = (jt.array(hi).reshape((1, 3)) - rays_o) / d                                 # [R,3]
    t_near = jt.minimum(t_lo, t_hi).max(dim=1)                                          # [R]
    t_far = jt.maximum(t_lo, t_hi).min(dim=1)                                           # [R]
    t_near = jt.maximum(t_near, jt.full_like(t_near, float(near_min)))
    return t_near, t_far, t_far > t_near


def cell_indices(points, bbox_min, bbox_max, resolution):
    """Flat cell index [N] int32 of points [N,3]; points outside the box go to the nearest cell."""
    lo, hi = as_box(bbox_min, bbox_max)
    scale = jt.array(resolution / (hi - lo)).reshape((1, 3))
    ijk = ((points - jt.array(lo).reshape((1, 3))) * scale).floor().int32()            # [N,3]
    ijk = jt.clamp(ijk, 0, resolution - 1)
    return (ijk[:, 0] * resolution + ijk[:, 1]) * resolution + ijk[:, 2]


def _lattice(bbox_min, bbox_max, n_per_axis, offset):
    """Points lo + (i + offset) * cell for i in [0, n_per_axis)^3, flat x-major: [n^3, 3] float32."""
    lo, hi = as_box(bbox_min, bbox_max)
    resolution = n_per_axis if offset else n_per_axis - 1
    axes = [lo[a] + (np.arange(n_per_axis, dtype=np.float32) + offset) * (hi[a] - lo[a]) / resolution
            for a in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return jt.array(grid.astype(np.float32))


def cell_centres(bbox_min, bbox_max, resolution):
    """Centres of all cells in flat-index order: [R^3, 3] float32."""
    return _lattice(bbox_min, bbox_max, resolution, 0.5)


def check_march_inputs(rays_o, rays_d, occupied, resolution, step_size, max_steps, jitter):
    """Validate ray-marching arguments (shared with the CUDA wrapper); returns the number of rays."""
    _check_rays(rays_o, rays_d)
    n_rays = rays_o.shape[0]
    if step_size <= 0 or max_steps < 1:
        raise ValueError(f"step_size must be > 0 and max_steps >= 1, got {step_size} and {max_steps}")
    if occupied.ndim != 1 or occupied.shape[0] != resolution ** 3:
        raise ValueError(f"occupied: expected shape [{resolution ** 3}] (resolution^3), got {list(occupied.shape)}")
    if jitter is not None and tuple(jitter.shape) != (n_rays,):
        raise ValueError(f"jitter: expected shape [{n_rays}] or None, got {list(jitter.shape)}")
    return n_rays


def ray_march_reference(rays_o, rays_d, occupied, bbox_min, bbox_max, resolution, step_size, max_steps,
                        jitter=None, near_min=0.0):
    """Fixed-step marching through occupied cells -> (ray_indices [S] int32, t_starts [S], t_ends [S],
    packed_info [R,2] int32).

    Candidate centres t = t_near + (i + jitter_r) * step_size for i < max_steps while t < t_far; the interval
    [t - step/2, t + step/2] is clipped to [t_near, t_far] and kept when the cell holding its midpoint is occupied.
    ``jitter`` [R] in [0,1) or None (0.5: cell-centred steps). No gradients.
    """
    n_rays = check_march_inputs(rays_o, rays_d, occupied, resolution, step_size, max_steps, jitter)
    if jitter is None:
        jitter = jt.full((n_rays,), 0.5)
    empty = jt.zeros((0,), dtype=jt.float32)
    if n_rays == 0:
        return jt.zeros((0,), dtype=jt.int32), empty, empty.clone(), jt.zeros((0, 2), dtype=jt.int32)
    with jt.no_grad():
        rays_o, rays_d = rays_o.stop_grad(), rays_d.stop_grad()
        t_near, t_far, hit = ray_aabb_intersect(rays_o, rays_d, bbox_min, bbox_max, near_min)
        # Only as many columns as the longest ray needs, so short boxes do not pay for max_steps.
        span = jt.where(hit, t_far - t_near, jt.zeros_like(t_near))
        n_cols = int(min(max_steps, max(1, int(np.ceil(float(span.max().item()) / step_size)) + 1)))
        steps = jt.arange(n_cols).float32().reshape((1, -1))                          # [1,M]
        t = t_near.reshape((-1, 1)) + (steps + jitter.reshape((-1, 1))) * step_size    # [R,M]
        in_box = hit.reshape((-1, 1)) & (t < t_far.reshape((-1, 1)))                   # [R,M]
        t_start = jt.maximum(t - 0.5 * step_size, t_near.reshape((-1, 1)))
        t_end = jt.minimum(t + 0.5 * step_size, t_far.reshape((-1, 1)))
        mid = 0.5 * (t_start + t_end)
        points = rays_o.reshape((-1, 1, 3)) + rays_d.reshape((-1, 1, 3)) * mid.unsqueeze(-1)   # [R,M,3]
        cells = cell_indices(points.reshape((-1, 3)), bbox_min, bbox_max, resolution)
        keep = in_box & occupied[cells].reshape((n_rays, n_cols))                      # [R,M] bool
        counts = keep.int32().sum(dim=1)                                               # [R]
        first = jt.cumsum(counts, 0) - counts
        packed_info = jt.stack([first, counts], dim=1).int32()
        n_samples = int(counts.sum().item())
        if n_samples == 0:
            return jt.zeros((0,), dtype=jt.int32), empty, empty.clone(), packed_info
        flat = jt.nonzero(keep.reshape(-1))[:, 0]                                      # [S] row-major: by ray, then t
        ray_indices = (flat // n_cols).int32()
        return ray_indices, t_start.reshape(-1)[flat], t_end.reshape(-1)[flat], packed_info


def _project(points, intrinsics, world_to_cam, height, width):
    """Pixel (col, row) int32 [N] of points [N,3], and whether each lands in the frame in front of the camera."""
    rot = jt.array(world_to_cam[:3, :3].astype(np.float32))
    trans = jt.array(world_to_cam[:3, 3].astype(np.float32)).reshape((1, 3))
    cam = jt.matmul(points, rot.transpose(1, 0)) + trans                                # [N,3]
    pix = jt.matmul(cam, jt.array(intrinsics.astype(np.float32)).transpose(1, 0))      # [N,3]
    depth = pix[:, 2]
    in_front = depth > 1e-6
    safe_depth = jt.where(in_front, depth, jt.ones_like(depth))
    col = (pix[:, 0] / safe_depth + 0.5).floor()  # nearest pixel: centres sit at integer coordinates
    row = (pix[:, 1] / safe_depth + 0.5).floor()
    in_frame = in_front & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    col = jt.clamp(col, 0, width - 1).int32()
    row = jt.clamp(row, 0, height - 1).int32()
    return col, row, in_frame


def _sees_background(points, background_flat, intrinsics, world_to_cam, height, width):
    """[N] bool: the point projects inside the frame onto a background pixel (off-frame is 'unknown')."""
    col, row, in_frame = _project(points, intrinsics, world_to_cam, height, width)
    return in_frame & background_flat[row * width + col]


def check_hull_inputs(intrinsics, c2w, masks, min_background_views):
    """Validated float64 intrinsics [N,3,3], c2w [N,4,4] and numpy masks [N,H,W] for the visual hull."""
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    c2w = np.asarray(c2w, dtype=np.float64)
    masks_np = masks.numpy() if isinstance(masks, jt.Var) else np.asarray(masks)
    if masks_np.ndim != 3:
        raise ValueError(f"masks: expected shape [N,H,W], got {list(masks_np.shape)}")
    n_views, height, width = masks_np.shape
    if intrinsics.shape != (n_views, 3, 3) or c2w.shape != (n_views, 4, 4):
        raise ValueError(f"intrinsics/c2w: expected shapes [{n_views},3,3] and [{n_views},4,4] (one per mask), "
                         f"got {list(intrinsics.shape)} and {list(c2w.shape)}")
    if min_background_views < 1:
        raise ValueError(f"min_background_views must be >= 1, got {min_background_views}")
    return intrinsics, c2w, masks_np


def carve_visual_hull_reference(intrinsics, c2w, masks, bbox_min, bbox_max, resolution,
                                min_background_views=1, use_corners=True):
    """Visual hull: occupied [R^3] bool, False for cells that at least ``min_background_views`` views see as
    background.

    intrinsics [N,3,3], c2w [N,4,4] (numpy), masks [N,H,W] (foreground true / >= 0.5; numpy or jt.Var).
    A view sees a cell as background when the cell centre (and, with ``use_corners``, all 8 cell corners, which
    keeps cells that the silhouette only grazes) projects inside its frame onto background pixels.
    """
    intrinsics, c2w, masks_np = check_hull_inputs(intrinsics, c2w, masks, min_background_views)
    n_views, height, width = masks_np.shape
    background = ~(masks_np.astype(np.float32) >= 0.5)                                 # [N,H,W] bool
    centres = cell_centres(bbox_min, bbox_max, resolution)                             # [R^3,3]
    corners = _lattice(bbox_min, bbox_max, resolution + 1, 0.0) if use_corners else None  # [(R+1)^3,3]
    votes = jt.zeros((resolution ** 3,), dtype=jt.int32)
    for view in range(n_views):
        world_to_cam = np.linalg.inv(c2w[view])
        bg_flat = jt.array(background[view].reshape(-1))
        seen_bg = _sees_background(centres, bg_flat, intrinsics[view], world_to_cam, height, width)
        if use_corners:
            corner_bg = _sees_background(corners, bg_flat, intrinsics[view], world_to_cam, height, width)
            seen_bg = seen_bg & _all_corners(corner_bg.reshape((resolution + 1,) * 3)).reshape(-1)
        votes = votes + seen_bg.int32()
    return votes < min_background_views


def _all_corners(vertex_flags):
    """[(R+1)^3] vertex flags shaped (R+1, R+1, R+1) -> [R,R,R]: true where all 8 corners of the cell are."""
    out = None
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                sub = vertex_flags[dx:dx + vertex_flags.shape[0] - 1,
                                   dy:dy + vertex_flags.shape[1] - 1,
                                   dz:dz + vertex_flags.shape[2] - 1]
                out = sub if out is None else out & sub
    return out
