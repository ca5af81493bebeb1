"""Exact z-buffered triangle rasteriser in vectorised numpy (CPU), for the scene maker and the mesh evaluator.

A pixel (u, v) is covered by a triangle when its centre, the integer point (u, v), lies inside the projected
triangle (the loader's convention: d_cam = K^-1 [u, v, 1]). Depth is interpolated perspective-correctly, so the
depth buffer holds the exact camera-space z of the surface hit by the pixel-centre ray. No anti-aliasing.
Work is done per chunk of triangles: each triangle is expanded to the pixel centres of its bounding box, tested with
edge functions, and the nearest hit per pixel wins (sort by pixel then depth).
"""
import numpy as np

__all__ = ["rasterize"]

_NEAR = 1e-6
_CANDIDATES_PER_CHUNK = 1 << 21


def _screen_space(vertices, intr, c2w):
    w2c = np.linalg.inv(c2w)
    cam = vertices @ w2c[:3, :3].T + w2c[:3, 3]  # [V,3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = (cam @ np.asarray(intr, dtype=np.float64).T)[:, :2] / z[:, None]
    return xy, z


def _pixel_boxes(tri_xy, height, width):
    """Inclusive integer pixel-centre ranges [F] covered by each triangle's bounding box, clipped to the image."""
    u0 = np.clip(np.ceil(tri_xy[:, :, 0].min(1)), 0, width).astype(np.int64)
    u1 = np.clip(np.floor(tri_xy[:, :, 0].max(1)), -1, width - 1).astype(np.int64)
    v0 = np.clip(np.ceil(tri_xy[:, :, 1].min(1)), 0, height).astype(np.int64)
    v1 = np.clip(np.floor(tri_xy[:, :, 1].max(1)), -1, height - 1).astype(np.int64)
    return u0, v0, np.maximum(u1 - u0 + 1, 0), np.maximum(v1 - v0 + 1, 0)


def _chunks(counts):
    """Split face indices into consecutive runs whose candidate pixel counts stay within the budget."""
    cum = np.cumsum(counts)
    start = 0
    while start < len(counts):
        base = cum[start - 1] if start else 0
        stop = int(np.searchsorted(cum, base + _CANDIDATES_PER_CHUNK, side="right"))
        stop = max(stop, start + 1)
        yield start, stop
        start = stop


def _raster_chunk(tri_xy, tri_z, area, u0, v0, bw, bh, face_ids, width):
    """Covered pixels of a chunk: (flat pixel [K], face id [K], screen barycentrics [K,3], depth [K])."""
    counts = bw * bh
    owner = np.repeat(np.arange(len(counts)), counts)
    offset = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
    u = u0[owner] + offset % bw[owner]
    v = v0[owner] + offset // bw[owner]
    p = tri_xy[owner]  # [K,3,2]
    px, py = u.astype(np.float64), v.astype(np.float64)
    # edge function of the edge opposite vertex i, normalised by the signed area -> barycentric weight i
    bary = np.empty((owner.size, 3))
    for i in range(3):
        a, b = p[:, (i + 1) % 3], p[:, (i + 2) % 3]
        bary[:, i] = ((b[:, 0] - a[:, 0]) * (py - a[:, 1]) - (b[:, 1] - a[:, 1]) * (px - a[:, 0])) / area[owner]
    inside = np.all(bary >= 0, axis=1)
    bary, owner = bary[inside], owner[inside]
    depth = 1.0 / np.sum(bary / tri_z[owner], axis=1)
    return (v[inside] * width + u[inside]), face_ids[owner], bary, depth


def _nearest_per_pixel(pix, depth):
    """Indices of the nearest candidate for each distinct pixel."""
    order = np.lexsort((depth, pix))
    first = np.ones(order.size, dtype=bool)
    first[1:] = pix[order[1:]] != pix[order[:-1]]
    return order[first]


def rasterize(vertices, faces, intr, c2w, height, width):
    """Render a triangle mesh with one pinhole camera.

    vertices [V,3], faces [F,3] int, intr [3,3], c2w [4,4] (OpenCV axes, same frame as the vertices).
    Returns dict: ``depth`` [H,W] float64 camera-space z (inf where empty), ``face_id`` [H,W] int64 (-1 where empty),
    ``bary`` [H,W,3] float64 perspective-correct barycentrics of the hit point (0 where empty).
    Triangles with a vertex behind the camera's near plane are skipped.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    xy, z = _screen_space(vertices, intr, c2w)
    tri_z = z[faces]  # [F,3]
    tri_xy = xy[faces]  # [F,3,2]
    e1, e2 = tri_xy[:, 1] - tri_xy[:, 0], tri_xy[:, 2] - tri_xy[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    u0, v0, bw, bh = _pixel_boxes(tri_xy, height, width)
    keep = np.all(tri_z > _NEAR, axis=1) & (np.abs(area) > 1e-12) & (bw > 0) & (bh > 0)
    face_ids = np.nonzero(keep)[0]
    tri_xy, tri_z, area, u0, v0, bw, bh = (a[keep] for a in (tri_xy, tri_z, area, u0, v0, bw, bh))

    depth_buf = np.full(height * width, np.inf)
    face_buf = np.full(height * width, -1, dtype=np.int64)
    bary_buf = np.zeros((height * width, 3))
    for start, stop in _chunks(bw * bh):
        sl = slice(start, stop)
        pix, fid, bary, depth = _raster_chunk(tri_xy[sl], tri_z[sl], area[sl], u0[sl], v0[sl], bw[sl], bh[sl],
                                              face_ids[sl], width)
        win = _nearest_per_pixel(pix, depth)
        pix, fid, bary, depth = pix[win], fid[win], bary[win], depth[win]
        closer = depth < depth_buf[pix]
        pix = pix[closer]
        depth_buf[pix], face_buf[pix] = depth[closer], fid[closer]
        # screen-space weights -> perspective-correct ones: b_i = (w_i / z_i) * z
        bary_buf[pix] = bary[closer] / z[faces[fid[closer]]] * depth[closer, None]
    return {"depth": depth_buf.reshape(height, width), "face_id": face_buf.reshape(height, width),
            "bary": bary_buf.reshape(height, width, 3)}
