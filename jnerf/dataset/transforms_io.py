"""Read a ``transforms.json`` (NeRF-synthetic, instant-ngp, nerfstudio) into a `Capture` (numpy only).

Conventions of those formats, and what is done with them:
- ``transform_matrix`` is camera-to-world with OpenGL camera axes (x right, y up, z backwards); ours are OpenCV's
  (y down, z forward), so c2w_ours = c2w_gl @ diag(1, -1, -1, 1). The world frame is kept as it is.
- Focal length: ``fl_x``/``fl_y`` in pixels, else ``camera_angle_x``/``camera_angle_y`` (full field of view,
  radians): f = W / (2 tan(angle / 2)); a missing y focal equals the x one.
- Principal point: ``cx``/``cy`` in the +0.5 pixel-centre convention that instant-ngp and nerfstudio share with
  COLMAP (we subtract 0.5); absent, the image centre ((W-1)/2, (H-1)/2 in ours).
- Distortion: ``k1 k2 (k3 k4) p1 p2`` (OpenCV's radial-tangential model), or with ``camera_model`` 'OPENCV_FISHEYE'
  nerfstudio's ``k1..k4`` (equidistant fisheye).
- Intrinsics and ``w``/``h`` may sit at the top level (shared) or in each frame (per frame; a frame's value wins).
- A frame's ``file_path`` names its image; it is matched by file name to the images folder, and a path without an
  extension (NeRF-synthetic's ``./train/r_0``) matches any image extension.
"""
import json
import math
import os
from typing import Dict, List

import numpy as np

from .capture import PINHOLE, Capture, Lens, PrepareError, principal_point_to_ours

__all__ = ["read_transforms", "OPENGL_TO_OPENCV"]

OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])  # flips y and z of the camera axes
_INTRINSIC_KEYS = ("fl_x", "fl_y", "camera_angle_x", "camera_angle_y", "cx", "cy", "w", "h", "k1", "k2", "k3",
                   "k4", "p1", "p2", "camera_model")


def _load_json(path):
    if not os.path.isfile(path):
        raise PrepareError(f"{path}: transforms file not found")
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        raise PrepareError(f"{path}: cannot read as JSON ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list) or not data["frames"]:
        raise PrepareError(f"{path}: expected a JSON object with a non-empty 'frames' list (transforms.json of "
                           "NeRF-synthetic, instant-ngp or nerfstudio)")
    return data


def _focal(params, size_key, focal_key, angle_key, where):
    if params.get(focal_key) is not None:
        return float(params[focal_key])
    if params.get(angle_key) is not None:
        return 0.5 * float(params[size_key]) / math.tan(0.5 * float(params[angle_key]))
    return None


def _intrinsics(params: Dict, width: int, height: int, where: str):
    """(K [3,3] ours, Lens) from a frame's parameters merged over the file's."""
    params = dict(params, w=width, h=height)
    fx = _focal(params, "w", "fl_x", "camera_angle_x", where)
    fy = _focal(params, "h", "fl_y", "camera_angle_y", where)
    if fx is None and fy is None:
        raise PrepareError(f"{where}: no focal length (expected fl_x or camera_angle_x)")
    fx, fy = fx if fx is not None else fy, fy if fy is not None else fx
    cx = float(params["cx"]) if params.get("cx") is not None else 0.5 * width
    cy = float(params["cy"]) if params.get("cy") is not None else 0.5 * height
    cx, cy = principal_point_to_ours(cx, cy)
    intr = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    value = {k: float(params.get(k) or 0.0) for k in ("k1", "k2", "k3", "k4", "p1", "p2")}
    model = str(params.get("camera_model") or "OPENCV").upper()
    if model == "OPENCV_FISHEYE":
        return intr, Lens("fisheye", tuple(value[k] for k in ("k1", "k2", "k3", "k4")))
    if model not in ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE"):
        raise PrepareError(f"{where}: camera_model {model} is not supported (expected OPENCV, PINHOLE or "
                           "OPENCV_FISHEYE)")
    if value["k4"]:
        raise PrepareError(f"{where}: k4 with camera_model {model}: OpenCV's model has no k4 without k5, k6 "
                           "(use camera_model OPENCV_FISHEYE for a fisheye)")
    coeffs = (value["k1"], value["k2"], value["p1"], value["p2"], value["k3"])
    return intr, (Lens("opencv", coeffs) if any(coeffs) else PINHOLE)


def _image_by_stem(image_names: List[str]):
    by_name, by_stem = {}, {}
    for name in image_names:
        by_name[name] = name
        by_stem.setdefault(os.path.splitext(name)[0], []).append(name)
    return by_name, by_stem


def _frame_pose(frame, where):
    try:
        c2w = np.asarray(frame["transform_matrix"], np.float64)
    except (KeyError, TypeError, ValueError) as err:
        raise PrepareError(f"{where}: no 4x4 'transform_matrix' ({err})") from err
    if c2w.shape == (3, 4):
        c2w = np.vstack([c2w, [0, 0, 0, 1]])
    if c2w.shape != (4, 4) or not np.all(np.isfinite(c2w)):
        raise PrepareError(f"{where}: 'transform_matrix' must be a finite 4x4 matrix")
    rot = c2w[:3, :3]
    if not np.allclose(rot.T @ rot, np.eye(3), atol=1e-4) or np.linalg.det(rot) < 0:
        raise PrepareError(f"{where}: 'transform_matrix' rotation is not orthonormal (scaled or mirrored poses are "
                           "not camera poses)")
    return c2w @ OPENGL_TO_OPENCV


def read_transforms(path: str, image_names: List[str], image_sizes: Dict[str, tuple]) -> Capture:
    """Cameras of the frames of ``path`` whose images are among ``image_names`` (file names of the images folder,
    with their (width, height) in ``image_sizes``). Frames without an image are skipped and named in
    ``notes['frames_without_image']``."""
    data = _load_json(path)
    shared = {k: data[k] for k in _INTRINSIC_KEYS if k in data}
    by_name, by_stem = _image_by_stem(image_names)
    names, sizes, intrinsics, lenses, c2ws, missing = [], [], [], [], [], []
    for i, frame in enumerate(data["frames"]):
        where = f"{path}: frames[{i}]"
        if not isinstance(frame, dict) or "file_path" not in frame:
            raise PrepareError(f"{where}: expected an object with 'file_path' and 'transform_matrix'")
        base = os.path.basename(str(frame["file_path"]))
        matches = [by_name[base]] if base in by_name else by_stem.get(base, [])
        if len(matches) > 1:
            raise PrepareError(f"{where}: file_path {frame['file_path']} matches {', '.join(matches)}; keep one")
        if not matches:
            missing.append(str(frame["file_path"]))
            continue
        name = matches[0]
        width, height = image_sizes[name]
        params = dict(shared, **{k: frame[k] for k in _INTRINSIC_KEYS if k in frame})
        for key, actual in (("w", width), ("h", height)):
            if params.get(key) is not None and int(params[key]) != actual:
                raise PrepareError(f"{where}: {key} = {params[key]} but {name} is {width}x{height}")
        intr, lens = _intrinsics(params, width, height, where)
        names.append(name)
        sizes.append((width, height))
        intrinsics.append(intr)
        lenses.append(lens)
        c2ws.append(_frame_pose(frame, where))
    if len(set(names)) != len(names):
        raise PrepareError(f"{path}: two frames name the same image")
    capture = Capture(names, np.array(sizes, np.int64).reshape(-1, 2), np.array(intrinsics).reshape(-1, 3, 3),
                      lenses, np.array(c2ws).reshape(-1, 4, 4), source=f"transforms file {path}")
    capture.notes["frames_without_image"] = missing
    order = np.argsort(capture.names, kind="stable")
    return capture.subset(list(order)) if len(order) else capture
