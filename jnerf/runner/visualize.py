"""Images a person can open: validation panels (prediction | ground truth | normals | depth) as uint8 arrays."""
import numpy as np


def to_uint8(img):
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def normal_image(normals_cam):
    """Camera-space unit normals [H,W,3] -> RGB in [0,1] (x right = red, y down = green, facing camera = blue)."""
    n = normals_cam * np.array([1.0, -1.0, -1.0], dtype=np.float32)  # OpenCV camera axes -> viewer-friendly
    return n * 0.5 + 0.5


def depth_image(depth, opacity):
    """Depth [H,W] normalised over the covered pixels to [0,1] through a simple blue-to-yellow ramp."""
    covered = opacity > 0.5
    if not covered.any():
        return np.zeros(depth.shape + (3,), np.float32)
    lo, hi = np.percentile(depth[covered], [1, 99])
    t = np.clip((depth - lo) / max(hi - lo, 1e-8), 0, 1)
    ramp = np.stack([t, 0.3 + 0.5 * t, 1.0 - t], -1)
    return np.where(covered[..., None], ramp, 0.0).astype(np.float32)


def validation_panel(pred_rgb, gt_rgb, normals_cam, depth, opacity):
    """[H, 4W, 3] uint8: prediction, ground truth, normals, depth side by side."""
    tiles = [pred_rgb, gt_rgb, normal_image(normals_cam) * (opacity[..., None] > 0.5), depth_image(depth, opacity)]
    return to_uint8(np.concatenate(tiles, axis=1))
