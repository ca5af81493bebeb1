"""Cameras of a set of photos, whatever their source (structure from motion, a COLMAP model, a transforms.json),
in the convention of the rest of jnerf, plus the lens models that `tools/prepare_scene.py` can undistort.

Convention: OpenCV camera axes (x right, y down, z forward), pixel (u, v) with its centre at integer coordinates, so
K here is OpenCV's K. COLMAP, instant-ngp and nerfstudio put pixel centres at +0.5 (the image spans [0, W] x [0, H]):
their principal point is ours + 0.5 (``principal_point_to_ours``). Lens distortion acts on the normalised image
coordinates (x/z, y/z) before K, in COLMAP's and OpenCV's models alike; the models that OpenCV can undistort map onto
``Lens('opencv', [k1, k2, p1, p2(, k3, k4, k5, k6)])`` or ``Lens('fisheye', [k1, k2, k3, k4])`` (equidistant).
Numpy and OpenCV only.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from jnerf.utils.errors import UserError

__all__ = ["PrepareError", "Lens", "PINHOLE", "Capture", "COLMAP_MODELS", "lens_from_colmap",
           "principal_point_to_ours", "distort_normalised", "max_distortion_pixels", "undistortion_maps"]


class PrepareError(UserError, ValueError):
    """Input that `tools/prepare_scene.py` cannot turn into a scene; the message names the file and what was
    expected."""


@dataclass(frozen=True)
class Lens:
    """Distortion of one camera: ``kind`` 'pinhole' (none), 'opencv' (OpenCV's radial-tangential coefficients
    k1, k2, p1, p2[, k3[, k4, k5, k6]]) or 'fisheye' (cv2.fisheye's equidistant k1..k4)."""
    kind: str = "pinhole"
    coeffs: tuple = ()

    @property
    def is_pinhole(self) -> bool:
        return self.kind == "pinhole" or not np.any(np.asarray(self.coeffs, np.float64)) and self.kind != "fisheye"


PINHOLE = Lens()


@dataclass
class Capture:
    """Cameras of N photos in the source's world frame.

    names: [N] image file names (as in the images folder); sizes int [N,2] (width, height); intrinsics float64
    [N,3,3] (pixel centres at integers); lenses: [N] Lens; c2w float64 [N,4,4] (OpenCV axes, source world frame);
    points float64 [P,3] sparse 3D points (may be empty) and point_views int [P] (how many images see each);
    source: where the cameras came from; notes: facts for the log (SfM statistics, dropped images).
    """
    names: List[str]
    sizes: np.ndarray
    intrinsics: np.ndarray
    lenses: List[Lens]
    c2w: np.ndarray
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    point_views: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    source: str = ""
    notes: Dict = field(default_factory=dict)

    def __len__(self):
        return len(self.names)

    def subset(self, keep: List[int]) -> "Capture":
        """The cameras of the images ``keep`` (indices), same points."""
        return Capture([self.names[i] for i in keep], self.sizes[keep], self.intrinsics[keep],
                       [self.lenses[i] for i in keep], self.c2w[keep], self.points, self.point_views, self.source,
                       self.notes)


def principal_point_to_ours(cx: float, cy: float):
    """A principal point in the +0.5 convention (COLMAP, instant-ngp, nerfstudio: pixel centres at i + 0.5) ->
    ours (pixel centres at integers)."""
    return cx - 0.5, cy - 0.5


# COLMAP camera model -> (names of its parameters, lens kind); the parameter names say which number is which.
COLMAP_MODELS = {
    "SIMPLE_PINHOLE": (("f", "cx", "cy"), "pinhole"),
    "PINHOLE": (("fx", "fy", "cx", "cy"), "pinhole"),
    "SIMPLE_RADIAL": (("f", "cx", "cy", "k1"), "opencv"),
    "RADIAL": (("f", "cx", "cy", "k1", "k2"), "opencv"),
    "OPENCV": (("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2"), "opencv"),
    "FULL_OPENCV": (("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6"), "opencv"),
    "SIMPLE_RADIAL_FISHEYE": (("f", "cx", "cy", "k1"), "fisheye"),
    "RADIAL_FISHEYE": (("f", "cx", "cy", "k1", "k2"), "fisheye"),
    "OPENCV_FISHEYE": (("fx", "fy", "cx", "cy", "k1", "k2", "k3", "k4"), "fisheye"),
    "SIMPLE_FISHEYE": (("f", "cx", "cy"), "fisheye"),
    "FISHEYE": (("fx", "fy", "cx", "cy"), "fisheye"),
}
_OPENCV_ORDER = ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")
_FISHEYE_ORDER = ("k1", "k2", "k3", "k4")


def lens_from_colmap(model: str, params, where: str = "camera"):
    """(K float64 [3,3] in our pixel convention, Lens) of a COLMAP camera ``model`` with ``params``.

    COLMAP's radial models are OpenCV's with the missing coefficients zero (same formula on x/z, y/z); its
    *_FISHEYE models are cv2.fisheye's equidistant model (theta_d = theta (1 + k1 theta^2 + ...)).
    """
    if model not in COLMAP_MODELS:
        raise PrepareError(f"{where}: camera model {model} is not supported (supported: "
                           f"{', '.join(COLMAP_MODELS)}); undistort the images with COLMAP first "
                           "(colmap image_undistorter) and pass the undistorted model")
    names, kind = COLMAP_MODELS[model]
    params = [float(p) for p in params]
    if len(params) != len(names):
        raise PrepareError(f"{where}: camera model {model} takes {len(names)} parameters "
                           f"({', '.join(names)}), got {len(params)}")
    value = dict(zip(names, params))
    fx, fy = value.get("fx", value.get("f")), value.get("fy", value.get("f"))
    cx, cy = principal_point_to_ours(value["cx"], value["cy"])
    intr = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    if kind == "pinhole":
        return intr, PINHOLE
    order = _OPENCV_ORDER if kind == "opencv" else _FISHEYE_ORDER
    coeffs = [value.get(n, 0.0) for n in order]
    if kind == "opencv":  # OpenCV takes 4, 5 or 8 coefficients
        coeffs = coeffs[:8] if any(coeffs[5:]) else coeffs[:5] if coeffs[4] else coeffs[:4]
    return intr, Lens(kind, tuple(coeffs))


def distort_normalised(xy: np.ndarray, lens: Lens) -> np.ndarray:
    """Normalised image points [P,2] (x/z, y/z of the ideal pinhole) -> where the lens puts them [P,2]."""
    import cv2
    xy = np.ascontiguousarray(xy, np.float64).reshape(-1, 1, 2)
    if lens.kind == "fisheye":
        return cv2.fisheye.distortPoints(xy, np.eye(3), np.asarray(lens.coeffs, np.float64)).reshape(-1, 2)
    if lens.is_pinhole:
        return xy.reshape(-1, 2).copy()
    points = np.concatenate([xy.reshape(-1, 2), np.ones((len(xy), 1))], axis=1)
    zero = np.zeros(3)
    out, _ = cv2.projectPoints(points, zero, zero, np.eye(3), np.asarray(lens.coeffs, np.float64))
    return out.reshape(-1, 2)


def _pixel_grid(width, height, step):
    """Pixel centres [P,2] on a grid every ``step`` pixels, border rows and columns included."""
    us = np.unique(np.r_[np.arange(0, width, step), width - 1])
    vs = np.unique(np.r_[np.arange(0, height, step), height - 1])
    u, v = np.meshgrid(us, vs)
    return np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float64)


def _source_pixels(pixels, new_intr, intr, lens):
    """Where the output pixels [P,2] of the pinhole camera ``new_intr`` come from in the distorted image."""
    xy = (pixels - new_intr[:2, 2]) / np.diag(new_intr)[:2]
    return distort_normalised(xy, lens) * np.diag(intr)[:2] + intr[:2, 2]


def max_distortion_pixels(intr: np.ndarray, lens: Lens, width: int, height: int) -> float:
    """Largest shift (pixels) the lens applies to any pixel of the frame, measured on a grid; 0 for a pinhole."""
    if lens.kind != "fisheye" and lens.is_pinhole:
        return 0.0
    pixels = _pixel_grid(width, height, max(1, min(width, height) // 32))
    return float(np.abs(_source_pixels(pixels, intr, intr, lens) - pixels).max())


def _fits(new_intr, intr, lens, width, height, border):
    src = _source_pixels(border, new_intr, intr, lens)
    return bool(np.all(src >= -0.5) and np.all(src[:, 0] <= width - 0.5) and np.all(src[:, 1] <= height - 0.5))


def undistortion_maps(intr: np.ndarray, lens: Lens, width: int, height: int):
    """(new K [3,3], map_x, map_y float32 [H,W]) that resample a distorted image into a pinhole one of the same size.

    The new K keeps the principal point and scales the focal length by the smallest factor (at least 0.5, where
    radial polynomials still grow monotonically for sane coefficients) at which every output pixel still comes
    from inside the photo (bisection on the frame's border), so no output pixel is blank: a blank band would read as
    background in the masks and carve the object. OpenCV's getOptimalNewCameraMatrix does this for its radial model
    only, and also moves the principal point; one rule for both lens kinds is simpler.
    """
    border = _pixel_grid(width, height, 1)
    border = border[(border[:, 0] == 0) | (border[:, 0] == width - 1) | (border[:, 1] == 0) |
                    (border[:, 1] == height - 1)]

    def scaled(factor):
        new = intr.copy()
        new[0, 0] *= factor
        new[1, 1] *= factor
        return new

    lo, hi = 0.5, 1.0
    while not _fits(scaled(hi), intr, lens, width, height, border):
        lo, hi = hi, hi * 2.0
        if hi > 64:
            raise PrepareError(f"lens {lens.kind} {list(lens.coeffs)}: cannot find a pinhole view inside the photo "
                               "(the distortion coefficients look wrong)")
    if _fits(scaled(lo), intr, lens, width, height, border):
        hi = lo
    for _ in range(40 if hi > lo else 0):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if _fits(scaled(mid), intr, lens, width, height, border) else (mid, hi)
    new_intr = scaled(hi)
    v, u = np.mgrid[0:height, 0:width]
    pixels = np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float64)
    src = _source_pixels(pixels, new_intr, intr, lens).astype(np.float32)
    return new_intr, src[:, 0].reshape(height, width), src[:, 1].reshape(height, width)
