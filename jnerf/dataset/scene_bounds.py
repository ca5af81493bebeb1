"""Where the object is: the sphere that `scale_mat` maps the unit sphere onto, from the masks' visual hull, from
sparse 3D points, or (neither available) from the cameras alone. Numpy and OpenCV only (no Jittor).

The sphere functions return ``(centre [3], radius, info)`` in world units (``hull_sphere`` also the kept voxel centres
[V,3], for the preview); ``info`` is a JSON-able dict saying how the sphere was found, for ``prepare.json``. The
radius already includes ``margin`` (unit sphere radius / object radius).
"""
import numpy as np

from .capture import PrepareError

__all__ = ["look_at_centre", "carve_hull", "hull_sphere", "points_sphere", "cameras_sphere", "scale_mat_of",
           "min_camera_distance"]


def scale_mat_of(centre, radius) -> np.ndarray:
    """4x4 scale_mat mapping the unit sphere onto the sphere (centre, radius): x_world = s * x_norm + centre."""
    scale_mat = np.eye(4)
    scale_mat[:3, :3] *= float(radius)
    scale_mat[:3, 3] = centre
    return scale_mat


def min_camera_distance(c2w, centre) -> float:
    return float(np.linalg.norm(c2w[:, :3, 3] - centre, axis=1).min())


def look_at_centre(c2w: np.ndarray):
    """(point [3] nearest to all optical axes in the least-squares sense, well_posed). Ill-posed when the axes are
    near parallel (a forward-facing capture), where no such point exists."""
    origins, dirs = c2w[:, :3, 3], c2w[:, :3, 2]
    projectors = np.eye(3)[None] - dirs[:, :, None] * dirs[:, None, :]  # [N,3,3] onto the plane normal to each axis
    lhs, rhs = projectors.sum(0), np.einsum("nij,nj->i", projectors, origins)
    eig = np.linalg.eigvalsh(lhs)
    well_posed = eig[0] > 1e-2 * eig[-1]
    return np.linalg.solve(lhs + 1e-9 * np.eye(3), rhs), bool(well_posed)


def _project(points, intr, c2w):
    """(u, v, depth) [P] of world points with one pinhole camera."""
    w2c = np.linalg.inv(c2w)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    depth = cam[:, 2]
    safe = np.where(depth > 1e-9, depth, 1.0)
    return (intr[0, 0] * cam[:, 0] + intr[0, 1] * cam[:, 1]) / safe + intr[0, 2], \
        intr[1, 1] * cam[:, 1] / safe + intr[1, 2], depth


def carve_hull(lo, hi, resolution, intrinsics, c2w, masks, min_views_in_frame=0.5):
    """Voxels of the box [lo, hi] (``resolution`` per axis) that no view sees as background.

    A voxel is carved when some view sees its centre on background farther than the voxel's projected radius from
    any foreground pixel (a distance transform of the background), so a voxel that the object only grazes survives;
    out of frame or behind the camera is unknown, as in `jnerf/ops/occupancy/reference.py`. A voxel must also lie in
    frame in at least ``min_views_in_frame`` of the views, so the box's corners that few cameras see do not survive
    as unknown. Returns (centres [V,3] of kept voxels, voxel edge [3]).
    """
    import cv2
    edge = (hi - lo) / resolution
    axes = [lo[a] + (np.arange(resolution) + 0.5) * edge[a] for a in range(3)]
    centres = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    half_diagonal = 0.5 * np.linalg.norm(edge)
    alive = np.ones(len(centres), bool)
    in_frame_count = np.zeros(len(centres), np.int32)
    for intr, pose, mask in zip(intrinsics, c2w, masks):
        height, width = mask.shape
        # distance (pixels) from each background pixel to the nearest foreground pixel; 0 on the foreground
        dist = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
        u, v, depth = _project(centres, intr, pose)
        col, row = np.round(u).astype(np.int64), np.round(v).astype(np.int64)
        in_frame = (depth > 1e-9) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
        in_frame_count += in_frame
        radius_px = intr[0, 0] * half_diagonal / np.where(depth > 1e-9, depth, 1.0) + 1.0
        far = np.zeros(len(centres), bool)
        far[in_frame] = dist[row[in_frame], col[in_frame]] > radius_px[in_frame]
        alive &= ~far
    alive &= in_frame_count >= min_views_in_frame * len(masks)
    return centres[alive], edge


def hull_sphere(intrinsics, c2w, masks, margin=1.1, resolution=96):
    """The sphere around the visual hull of the masks, grown by ``margin``.

    Two passes: a coarse grid over a cube about the cameras' look-at point (half size: the median camera distance
    to it, which holds every point that most cameras see in front of them) finds the hull's box; a fine grid over
    that box (plus two coarse voxels) gives the hull. Centre: the middle of the hull's bounding box; radius: the
    farthest kept voxel centre plus half a voxel diagonal, so the object, inside the hull, is inside the sphere.
    """
    centre, _ = look_at_centre(c2w)
    half = float(np.median(np.linalg.norm(c2w[:, :3, 3] - centre, axis=1)))
    lo, hi = centre - half, centre + half
    coarse = max(16, resolution // 2)
    kept, edge = carve_hull(lo, hi, coarse, intrinsics, c2w, masks)
    if len(kept) == 0:
        raise PrepareError("the masks' visual hull is empty: no point in front of the cameras is foreground in every "
                           "view (masks paired with the wrong images, inverted masks, or wrong cameras)")
    lo, hi = kept.min(0) - 2 * edge, kept.max(0) + 2 * edge
    kept, edge = carve_hull(lo, hi, resolution, intrinsics, c2w, masks)
    if len(kept) == 0:
        raise PrepareError("the masks' visual hull is empty at the fine resolution (masks and cameras disagree)")
    box_lo, box_hi = kept.min(0) - 0.5 * edge, kept.max(0) + 0.5 * edge
    mid = 0.5 * (box_lo + box_hi)
    radius = (np.linalg.norm(kept - mid, axis=1).max() + 0.5 * np.linalg.norm(edge)) * margin
    info = dict(method="visual hull of the masks", resolution=resolution, voxels_kept=int(len(kept)),
                voxel_size=float(np.max(edge)), hull_box_min=box_lo.tolist(), hull_box_max=box_hi.tolist(),
                margin=margin, rule="a voxel is empty when one view sees it on background farther than its projected "
                "radius from the mask; centre = middle of the hull's box; radius = farthest voxel * margin")
    return mid, float(radius), info, kept


def points_sphere(points, point_views, c2w, margin=1.1, min_views=3, percentile=(2.0, 98.0)):
    """The sphere around the sparse points, robust to stray points: points seen in >= ``min_views`` images, nearer to
    the look-at point than the cameras, inside the per-axis ``percentile`` box; centred where the cameras look
    (falling back to the points' median for a forward-facing capture); radius: the farthest such point * margin."""
    centre, well_posed = look_at_centre(c2w)
    good = points[point_views >= min_views]
    if len(good) < 20:
        raise PrepareError(f"only {len(good)} sparse points are seen in >= {min_views} views; too few to place the "
                           "object (give --masks, or see docs/custom-data.md, 'When structure from motion fails')")
    if not well_posed:
        centre = np.median(good, axis=0)
    near = good[np.linalg.norm(good - centre, axis=1) < 0.9 * min_camera_distance(c2w, centre)]
    if len(near) < 20:
        near = good
    lo, hi = np.percentile(near, percentile[0], axis=0), np.percentile(near, percentile[1], axis=0)
    inside = near[np.all((near >= lo) & (near <= hi), axis=1)]
    radius = float(np.linalg.norm(inside - centre, axis=1).max()) * margin
    info = dict(method="sparse points", points_total=int(len(points)), points_seen_by_enough_views=int(len(good)),
                min_views=min_views, points_used=int(len(inside)), percentile_box=list(percentile),
                centre_from="where the cameras look" if well_posed else "median of the points (cameras look in "
                "parallel)", margin=margin,
                rule="points seen in >= min_views views, nearer than the cameras, inside the percentile box; "
                "radius = farthest point from the centre * margin")
    return centre, radius, info


def cameras_sphere(intrinsics, c2w, sizes, margin=1.0):
    """No masks and no points: the largest sphere about the look-at point that every view sees whole (a guess that
    assumes the photos frame the object)."""
    centre, well_posed = look_at_centre(c2w)
    if not well_posed:
        raise PrepareError("the cameras look in parallel and there are neither masks nor sparse points to place the "
                           "object: give --masks")
    radii = []
    for intr, pose, (width, height) in zip(intrinsics, c2w, sizes):
        to_centre = centre - pose[:3, 3]
        dist = np.linalg.norm(to_centre)
        off_axis = np.arccos(np.clip(to_centre @ pose[:3, 2] / dist, -1, 1))
        half_fov = min(np.arctan(0.5 * width / intr[0, 0]), np.arctan(0.5 * height / intr[1, 1]))
        radii.append(dist * np.sin(max(half_fov - off_axis, 0.0)))
    radius = float(min(radii)) * margin
    if radius <= 0:
        raise PrepareError("the cameras do not look at a common point; give --masks so the object can be found")
    info = dict(method="cameras only (no masks, no sparse points): the largest sphere about the look-at point that "
                "every view sees whole; check the preview", margin=margin)
    return centre, radius, info
