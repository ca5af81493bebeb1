"""A picture to check a prepared scene by eye: the unit sphere (what training will reconstruct), the cameras and the
sparse points / visual hull in the normalised frame, drawn orthographically from the side and from above.

OpenCV draws it (matplotlib is not a dependency). "Up" is the mean of the cameras' up vectors (-y of OpenCV axes),
which is the world's up for photos taken upright.
"""
import numpy as np

__all__ = ["draw_preview"]

_PANEL = 560
_SPHERE, _CAMERA, _FIRST, _POINT, _OUTSIDE, _HULL = ((60, 200, 60), (200, 120, 40), (40, 40, 230), (110, 110, 110),
                                                      (40, 40, 230), (0, 200, 230))  # BGR


def _view_axes(c2w):
    """(right, up, towards the viewer) of the side view and of the top view."""
    up = -c2w[:, :3, 1].mean(0)
    up = up / max(np.linalg.norm(up), 1e-12)
    helper = np.array([1.0, 0, 0]) if abs(up[0]) < 0.9 else np.array([0, 0, 1.0])
    side = np.cross(up, helper)
    side /= np.linalg.norm(side)
    right = np.cross(up, side)
    return (right, up, side), (right, side, up)


def _panel(title, axes, c2w, intrinsics, sizes, points, outside, hull, extent):
    import cv2
    img = np.full((_PANEL, _PANEL, 3), 255, np.uint8)
    right, up, toward = axes
    scale = 0.45 * _PANEL / extent

    def to_px(p):
        p = np.atleast_2d(p)
        return np.stack([_PANEL / 2 + scale * (p @ right), _PANEL / 2 - scale * (p @ up)], 1).round().astype(np.int32)

    # draw far things first so near ones stay on top
    if len(hull):
        for q in to_px(hull):
            cv2.circle(img, tuple(int(c) for c in q), 1, _HULL, -1)
    order = np.argsort(points @ toward) if len(points) else []
    for i in order:
        q = to_px(points[i])[0]
        cv2.circle(img, (int(q[0]), int(q[1])), 1, _OUTSIDE if outside[i] else _POINT, -1)
    cv2.circle(img, (_PANEL // 2, _PANEL // 2), int(round(scale)), _SPHERE, 2, cv2.LINE_AA)
    depth = 0.15 * extent
    for k, (intr, pose, (width, height)) in enumerate(zip(intrinsics, c2w, sizes)):
        corners_px = np.array([[0, 0, 1], [width - 1, 0, 1], [width - 1, height - 1, 1], [0, height - 1, 1.0]])
        rays = corners_px @ np.linalg.inv(intr).T * depth
        corners = rays @ pose[:3, :3].T + pose[:3, 3]
        apex, quad = to_px(pose[:3, 3])[0], to_px(corners)
        colour = _FIRST if k == 0 else _CAMERA
        for q in quad:
            cv2.line(img, tuple(int(c) for c in apex), tuple(int(c) for c in q), colour, 1, cv2.LINE_AA)
        cv2.polylines(img, [quad.reshape(-1, 1, 2)], True, colour, 1, cv2.LINE_AA)
    cv2.putText(img, title, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def draw_preview(path, intrinsics, c2w, sizes, points=None, hull=None, max_points=20000, seed=0):
    """Write a PNG of two panels (side and top view) of the normalised frame: green circle = unit sphere, blue
    frustums = cameras (red: the first image), grey dots = sparse points (red: outside the sphere), yellow dots =
    visual-hull voxels. All inputs in the normalised frame: intrinsics [N,3,3], c2w [N,4,4], sizes [N,2] (W,H),
    points [P,3], hull [V,3]."""
    import cv2
    rng = np.random.default_rng(seed)
    points = np.zeros((0, 3)) if points is None else np.asarray(points, np.float64)
    hull = np.zeros((0, 3)) if hull is None else np.asarray(hull, np.float64)
    if len(points) > max_points:
        points = points[rng.choice(len(points), max_points, replace=False)]
    if len(hull) > max_points:
        hull = hull[rng.choice(len(hull), max_points, replace=False)]
    outside = np.linalg.norm(points, axis=1) > 1.0
    extent = max(1.2, float(np.percentile(np.linalg.norm(c2w[:, :3, 3], axis=1), 95)) * 1.15)
    side, top = _view_axes(c2w)
    panels = [_panel(name, axes, c2w, intrinsics, sizes, points, outside, hull, extent)
              for name, axes in (("side view", side), ("top view (along the cameras' up)", top))]
    legend = np.full((60, 2 * _PANEL, 3), 255, np.uint8)
    lines = ("green circle: the unit sphere (training reconstructs inside it); blue: cameras (red: the first photo)",
             f"grey: {len(points)} sparse points ({int(outside.sum())} outside the sphere, red); yellow: "
             f"{len(hull)} visual-hull voxels")
    for row, text in enumerate(lines):
        cv2.putText(legend, text, (10, 22 + 26 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    image = np.vstack([np.hstack(panels), legend])
    if not cv2.imwrite(path, image):
        raise OSError(f"{path}: cannot write the preview image")
