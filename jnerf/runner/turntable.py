"""Novel-view cameras for ``--task render`` (the network) and for textured meshes (rasterised): a circle around the
object at the training cameras' mean distance and elevation, looking at the normalised frame's origin, with the
first camera's intrinsics."""
import logging
import os

import numpy as np
import jittor as jt
from tqdm import tqdm

from jnerf.dataset.cameras import look_at_c2w
from .visualize import normal_image, to_uint8

logger = logging.getLogger("jnerf")


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
        poses.append(look_at_c2w(eye, np.zeros(3), up).astype(np.float32))
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


def render_turntable(runner, settings, out_dir):
    """Render ``settings.n_frames`` views around the object with the runner's renderer into ``out_dir``: PNG frames
    (colour | normals) and turntable.mp4 (kept as frames alone when no ffmpeg backend is installed)."""
    K, poses, (H, W) = turntable_cameras(runner.dataset, settings.n_frames, settings.downscale,
                                         settings.elevation_deg)

    def frames():
        for c2w in tqdm(poses, desc="render", unit="frame"):
            rgb, normal, _, opacity = runner.render_image(camera_rays(K, c2w, H, W))
            normal_cam = normal @ c2w[:3, :3]
            yield to_uint8(np.concatenate([rgb, normal_image(normal_cam) * (opacity[..., None] > 0.5)], 1))
    write_frames(frames(), out_dir, settings.fps)


def render_mesh_turntable(mesh, dataset, settings, out_dir):
    """The same circle of cameras around a ``TexturedMesh`` (normalised frame), rasterised with its texture on the
    CPU: PNG frames and turntable.mp4 in ``out_dir``."""
    from jnerf.export.texture import render_mesh
    K, poses, (H, W) = turntable_cameras(dataset, settings.n_frames, settings.downscale, settings.elevation_deg)
    frames = (to_uint8(render_mesh(mesh.vertices, mesh.faces, K, c2w, H, W, mesh=mesh)[0])
              for c2w in tqdm(poses, desc="textured turntable", unit="frame"))
    write_frames(frames, out_dir, settings.fps)


def write_frames(frames, out_dir, fps):
    """Frames (uint8 [H,W,3], any iterable) as out_dir/0000.png ..., each written as it comes, then
    out_dir/turntable.mp4 (the frames alone when no ffmpeg backend is installed)."""
    import imageio
    os.makedirs(out_dir, exist_ok=True)
    kept = []
    for i, frame in enumerate(frames):
        imageio.imwrite(os.path.join(out_dir, f"{i:04d}.png"), frame)
        kept.append(frame)
    video = os.path.join(out_dir, "turntable.mp4")
    try:
        imageio.mimwrite(video, kept, fps=fps, macro_block_size=1)
        logger.info("render: %d frames and %s", len(kept), video)
    except Exception as e:  # no ffmpeg backend: the PNGs are still there
        logger.warning("could not write %s (%s); frames are in %s", video, e, out_dir)
