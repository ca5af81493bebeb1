"""Pinhole-camera helpers shared by the NeuS loader, the scene maker and the mesh evaluator (numpy only).

Convention everywhere: OpenCV axes (x right, y down, z forward), pixel (u, v) = (column, row) with its centre at
integer coordinates, so the camera-space direction through a pixel is K^-1 [u, v, 1] (no +0.5).
`cameras_sphere.npz` follows IDR/NeuS: world_mat_i = K[R|t] (4x4, world units) and scale_mat_i maps the unit sphere
(normalised frame) onto the object; P = (world_mat @ scale_mat)[:3,:4] is the camera of the normalised frame.
"""
import os
import re

import numpy as np

__all__ = ["CameraError", "load_cameras_npz", "camera_indices", "decompose_projection", "projection_from_pose", "look_at_c2w",
           "downscale_intrinsics", "project_points", "pixel_directions", "fibonacci_directions"]


class CameraError(ValueError):
    """A camera file whose content cannot describe a valid pinhole camera; the message names the file and key."""


def _finite_matrix(npz, key, path):
    if key not in npz:
        raise CameraError(f"{path}: missing key '{key}' (expected world_mat_i and scale_mat_i for every image i)")
    mat = np.asarray(npz[key], dtype=np.float64)
    if mat.shape != (4, 4):
        raise CameraError(f"{path}: '{key}' has shape {mat.shape}, expected (4, 4)")
    if not np.all(np.isfinite(mat)):
        raise CameraError(f"{path}: '{key}' contains NaN or inf")
    return mat


def _check_scale_mat(scale, path, key):
    if abs(np.linalg.det(scale[:3, :3])) < 1e-12 or not np.allclose(scale[3], [0, 0, 0, 1]):
        raise CameraError(f"{path}: '{key}' is not an invertible affine map (got {scale.tolist()})")


def _rq(mat):
    """RQ decomposition of a 3x3 matrix: mat = upper @ orthogonal (via QR of the row-reversed transpose)."""
    q, r = np.linalg.qr(mat[::-1].T)
    return r.T[::-1, ::-1], q.T[::-1]


def decompose_projection(proj, where="camera"):
    """Split a 3x4 projection P = K[R|t] into K (3x3, K[2,2] = 1) and the camera-to-world pose (4x4, OpenCV axes).

    ``where`` names the camera in error messages. Raises CameraError for non-finite or rank-deficient P.
    """
    proj = np.asarray(proj, dtype=np.float64)[:3, :4]
    if not np.all(np.isfinite(proj)):
        raise CameraError(f"{where}: projection matrix contains NaN or inf")
    block = proj[:, :3]
    det = np.linalg.det(block)
    # scale-invariant rank test: a degenerate P has a (near) singular left 3x3 block
    if abs(det) <= 1e-12 * max(np.linalg.norm(block), 1e-300) ** 3:
        raise CameraError(f"{where}: projection matrix is not invertible (its left 3x3 block is singular)")
    if det < 0:  # P and -P are the same camera; pick the sign that gives a proper rotation
        proj, block = -proj, -block
    intr, rot = _rq(block)
    # RQ is unique only up to the signs of K's columns; make the diagonal positive (D @ D = I keeps K R)
    signs = np.diag(np.sign(np.diag(intr)))
    intr, rot = intr @ signs, signs @ rot
    c2w = np.eye(4)
    c2w[:3, :3] = rot.T
    c2w[:3, 3] = -np.linalg.solve(block, proj[:, 3])
    return intr / intr[2, 2], c2w


def _read_npz(path):
    if not os.path.isfile(path):
        raise CameraError(f"{path}: camera file not found (expected cameras_sphere.npz beside image/ and mask/)")
    try:
        return dict(np.load(path))
    except Exception as err:  # np.load raises several types for a corrupt archive
        raise CameraError(f"{path}: cannot read as a .npz archive ({err})") from err


def camera_indices(path):
    """Sorted view indices i of the ``world_mat_i`` keys in a NeuS camera file."""
    npz = _read_npz(path)
    return sorted(int(m.group(1)) for m in (re.fullmatch(r"world_mat_(\d+)", k) for k in npz) if m)


def load_cameras_npz(path, views):
    """Read the cameras of ``views`` (a count n for views 0..n-1, or a list of view indices) from a NeuS
    ``cameras_sphere.npz``.

    Returns ``(intrinsics [N,3,3] float64, c2w [N,4,4] float64 in the normalised frame, scale_mat [4,4] float64)``;
    the shared scale_mat is the first view's.
    """
    npz = _read_npz(path)
    views = list(range(views)) if isinstance(views, (int, np.integer)) else [int(v) for v in views]
    first = f"scale_mat_{views[0]}" if views else "scale_mat_0"
    scale0 = _finite_matrix(npz, first, path)
    _check_scale_mat(scale0, path, first)
    intrinsics, c2ws = [], []
    for i in views:
        world = _finite_matrix(npz, f"world_mat_{i}", path)
        scale = _finite_matrix(npz, f"scale_mat_{i}", path)
        if not np.allclose(scale, scale0, rtol=1e-6, atol=1e-9):
            raise CameraError(f"{path}: 'scale_mat_{i}' differs from '{first}'; all images must share one "
                              "normalisation")
        intr, c2w = decompose_projection((world @ scale)[:3, :4], where=f"{path}: world_mat_{i} @ scale_mat_{i}")
        if np.linalg.norm(c2w[:3, 3]) <= 1.0:
            raise CameraError(f"{path}: camera {i} has its centre inside the unit sphere (|c| = "
                              f"{np.linalg.norm(c2w[:3, 3]):.3f} in the normalised frame); scale_mat_{i} must map "
                              "the unit sphere onto the object only")
        intrinsics.append(intr)
        c2ws.append(c2w)
    return np.stack(intrinsics), np.stack(c2ws), scale0


def projection_from_pose(intr, c2w):
    """4x4 world_mat K[R|t] for a camera-to-world pose (the inverse of ``decompose_projection``)."""
    w2c = np.linalg.inv(np.asarray(c2w, dtype=np.float64))
    out = np.eye(4)
    out[:3, :3] = intr
    return out @ w2c


def look_at_c2w(eye, target, up):
    """Camera-to-world pose (OpenCV axes) at ``eye`` looking at ``target``; image rows run against ``up``."""
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-6:  # looking along the up axis: any perpendicular will do
        right = np.cross(forward, np.roll(up, 1))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
    return c2w


def normalised_to_world(points, scale_mat):
    """Points [P,3] of the normalised frame (object in the unit sphere) -> world units: x_w = S @ [x, 1]."""
    scale_mat = np.asarray(scale_mat, np.float64)
    return np.asarray(points, np.float64) @ scale_mat[:3, :3].T + scale_mat[:3, 3]


def world_to_normalised(points, scale_mat):
    """The inverse of ``normalised_to_world``: world points [P,3] -> the normalised frame."""
    scale_mat = np.asarray(scale_mat, np.float64)
    return (np.asarray(points, np.float64) - scale_mat[:3, 3]) @ np.linalg.inv(scale_mat[:3, :3]).T


def downscale_intrinsics(intr, factor):
    """K of an image block-averaged by an integer ``factor``, keeping pixel centres at integer coordinates.

    Output pixel u' averages input pixels f*u' .. f*u'+f-1, whose centre is u = f*u' + (f-1)/2,
    so u' = (u - (f-1)/2) / f, i.e. K' = S K with S = [[1/f, 0, -(f-1)/(2f)], [0, 1/f, -(f-1)/(2f)], [0, 0, 1]].
    """
    f = float(factor)
    shift = -(f - 1.0) / (2.0 * f)
    scale = np.array([[1 / f, 0, shift], [0, 1 / f, shift], [0, 0, 1]])
    return scale @ np.asarray(intr, dtype=np.float64)


def project_points(points, intr, c2w):
    """Project world points [P,3] with one camera; returns (uv [P,2], depth [P]) with depth = camera-space z."""
    w2c = np.linalg.inv(c2w)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    depth = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        pix = cam @ np.asarray(intr).T
        uv = pix[:, :2] / pix[:, 2:3]
    return uv, depth


def pixel_directions(intr, c2w, height, width):
    """World-space ray directions [H*W,3] (camera-space z = 1, not unit) for every pixel, row-major."""
    v, u = np.mgrid[0:height, 0:width]
    pix = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], axis=-1).astype(np.float64)
    d_cam = pix @ np.linalg.inv(intr).T
    return d_cam @ np.asarray(c2w)[:3, :3].T


def fibonacci_directions(n, hemisphere_axis=None):
    """``n`` unit vectors spread evenly (Fibonacci lattice) over the sphere, or the hemisphere around an axis."""
    i = np.arange(n) + 0.5
    if hemisphere_axis is None:
        height = 1.0 - 2.0 * i / n
    else:
        height = 1.0 - i / n
    radius = np.sqrt(np.clip(1.0 - height ** 2, 0.0, 1.0))
    angle = np.pi * (3.0 - np.sqrt(5.0)) * i
    local = np.stack([radius * np.cos(angle), radius * np.sin(angle), height], axis=-1)  # pole along local z
    if hemisphere_axis is None:
        return local
    axis = np.asarray(hemisphere_axis, dtype=np.float64)
    axis /= np.linalg.norm(axis)
    helper = np.array([1.0, 0, 0]) if abs(axis[0]) < 0.9 else np.array([0, 1.0, 0])
    e1 = np.cross(axis, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(axis, e1)
    return local[:, :1] * e1 + local[:, 1:2] * e2 + local[:, 2:3] * axis
