"""Compare estimated cameras with true ones up to a similarity (scale, rotation, translation), as structure from
motion recovers them: Umeyama's closed-form alignment of the camera centres, then centre and rotation errors.
Numpy only."""
import numpy as np

__all__ = ["umeyama", "apply_similarity", "compare_cameras"]


def umeyama(src: np.ndarray, dst: np.ndarray):
    """(scale s, rotation R [3,3], translation t [3]) minimising sum |dst - (s R src + t)|^2 for points [N,3]
    (Umeyama 1991, with the reflection guard)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_src, mu_dst = src.mean(0), dst.mean(0)
    a, b = src - mu_src, dst - mu_dst
    u, d, vt = np.linalg.svd(b.T @ a / len(src))
    flip = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        flip[2, 2] = -1
    rot = u @ flip @ vt
    scale = np.trace(np.diag(d) @ flip) / (a ** 2).sum(1).mean()
    return scale, rot, mu_dst - scale * rot @ mu_src


def apply_similarity(points, scale, rot, trans):
    """s R p + t for points [P,3]."""
    return scale * np.asarray(points, np.float64) @ rot.T + trans


def compare_cameras(est_c2w: np.ndarray, true_c2w: np.ndarray):
    """Align ``est_c2w`` [N,4,4] to ``true_c2w`` [N,4,4] (same order, OpenCV axes) by the similarity of their
    centres; returns dict: similarity (scale, rotation, translation), centre_error_pct [N] (percent of the true
    cameras' spread = RMS distance of the true centres from their mean), rotation_error_deg [N]."""
    est_c2w, true_c2w = np.asarray(est_c2w, np.float64), np.asarray(true_c2w, np.float64)
    scale, rot, trans = umeyama(est_c2w[:, :3, 3], true_c2w[:, :3, 3])
    centres = apply_similarity(est_c2w[:, :3, 3], scale, rot, trans)
    true_centres = true_c2w[:, :3, 3]
    spread = np.sqrt(((true_centres - true_centres.mean(0)) ** 2).sum(1).mean())
    centre_err = np.linalg.norm(centres - true_centres, axis=1) / spread * 100
    relative = np.einsum("nji,jk,nkl->nil", true_c2w[:, :3, :3], rot, est_c2w[:, :3, :3])  # R_true^T R R_est
    cos = np.clip((np.trace(relative, axis1=1, axis2=2) - 1) / 2, -1, 1)
    return dict(scale=float(scale), rotation=rot, translation=trans, spread=float(spread),
                centre_error_pct=centre_err, rotation_error_deg=np.degrees(np.arccos(cos)))
