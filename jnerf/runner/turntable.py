"""Novel-view cameras for ``--task render``: a circle around the object at the training cameras' mean distance
and elevation, looking at the normalised frame's origin, with the first camera's intrinsics."""
import numpy as np
import jittor as jt


def look_at(eye, target, up):
    """Camera-to-world [4,4] in OpenCV axes (x right, y down, z forward) looking from ``eye`` at ``target``."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-6:  # looking along ``up``: any perpendicular will do
        x = np.cross(z, np.array([1.0, 0.0, 0.0]))
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([x, y, z], 1)
    c2w[:3, 3] = eye
    return c2w.astype(np.float32)


def turntable_cameras(dataset, n_frames, downscale=1, elevation_deg=None):
    """(K [3,3], [n_frames] c2w [4,4], (H, W)) circling the scene's up axis."""
    centres = dataset.c2w[:, :3, 3].astype(np.float64)
    # The cameras' mean "up" (-y in OpenCV) is the scene's up; the circle lies in the plane normal to it.
    up = -dataset.c2w[:, :3, 1].mean(0)
    up /= np.linalg.norm(up)
    radius = float(np.linalg.norm(centres, axis=1).mean())
    if elevation_deg is None:
        elevation = float(np.arcsin(np.clip(centres @ up / np.linalg.norm(centres, axis=1), -1, 1)).mean())
    else:
        elevation = np.deg2rad(elevation_deg)
    a = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 1.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(up, a)
    poses = []
    for t in np.linspace(0, 2 * np.pi, n_frames, endpoint=False):
        eye = radius * (np.cos(elevation) * (np.cos(t) * a + np.sin(t) * b) + np.sin(elevation) * up)
        poses.append(look_at(eye, np.zeros(3), up))
    K = dataset.intrinsics[0].astype(np.float64).copy()
    H, W = dataset.H // downscale, dataset.W // downscale
    K[:2] /= downscale  # integer pixel centres: u' = u/f keeps centres on the same rays up to the subsampling
    return K.astype(np.float32), poses, (H, W)


def camera_rays(K, c2w, H, W):
    """Rays through every pixel centre (integer coordinates, row-major) as jt.Vars [H*W,3]."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    pix = np.stack([u.ravel(), v.ravel(), np.ones(H * W, np.float32)], 1)
    d = pix @ np.linalg.inv(K).T @ c2w[:3, :3].T
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    o = np.broadcast_to(c2w[:3, 3], d.shape)
    return dict(rays_o=jt.array(np.ascontiguousarray(o, np.float32)), rays_d=jt.array(d.astype(np.float32)), H=H, W=W)
