"""Image reading for NeuS-format scenes: PNG/JPG/..., 8- or 16-bit, grey/RGB/RGBA -> float32 in [0,1], through
OpenCV (``cv2.imread(..., IMREAD_UNCHANGED)``: 16-bit PNGs at full depth, about 200x faster than decoding them in
Python). Pillow is only the fallback where OpenCV cannot be imported (a machine whose OpenCV is built for another
numpy): it reads 8-bit images and 16-bit grey, and refuses 16-bit colour, which it would truncate to 8 bits."""
import functools
import logging
import os

import numpy as np

__all__ = ["ImageReadError", "read_image"]

logger = logging.getLogger("jnerf")


class ImageReadError(ValueError):
    """An image file that is missing, unreadable, truncated or of an unsupported kind."""


@functools.lru_cache(maxsize=1)
def _cv2():
    try:
        import cv2
        return cv2
    except Exception as err:  # noqa: BLE001  (a broken build fails in many ways)
        logger.warning("OpenCV does not import here (%s: %s); reading images with Pillow", type(err).__name__, err)
        return None


def read_image(path) -> np.ndarray:
    """Read ``path`` as float32 [H,W,C] in [0,1] with C in {1,3,4} (grey, RGB, RGBA; grey+alpha becomes RGBA)."""
    path = str(path)
    if not os.path.isfile(path):
        raise ImageReadError(f"{path}: image file not found")
    cv2 = _cv2()
    try:
        return _read_with_opencv(cv2, path) if cv2 is not None else _read_with_pillow(path)
    except ImageReadError:
        raise
    except Exception as err:  # decoders raise many types for broken files; name the file once here
        raise ImageReadError(f"{path}: cannot read image ({type(err).__name__}: {err})") from err


def _to_unit(img):
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(img.dtype)
    if scale is None:
        raise ValueError(f"unsupported pixel type {img.dtype} (expected 8 or 16 bits)")
    return img.astype(np.float32) / scale


def _read_with_opencv(cv2, path):
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)  # BGR(A) order, 8 or 16 bits, or None
    if img is None:
        raise ImageReadError(f"{path}: cannot read image (not an image file, or truncated)")
    if img.ndim == 2:
        return _to_unit(img)[..., None]
    if img.shape[2] == 2:  # grey + alpha
        return _to_unit(img[..., [0, 0, 0, 1]])
    order = [2, 1, 0, 3][:img.shape[2]]  # BGR(A) -> RGB(A)
    return _to_unit(img[..., order])


def _read_with_pillow(path):
    from PIL import Image
    with Image.open(path) as img:
        img.load()  # forces decoding now so a truncated file fails here, not later
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            return (np.asarray(img, dtype=np.float32) / 65535.0)[..., None]
        if img.mode in ("RGB;16", "RGBA;16") or img.info.get("bits", 8) > 8:
            raise ImageReadError(f"{path}: 16-bit colour needs OpenCV (Pillow would truncate it to 8 bits)")
        if img.mode == "L":
            return (np.asarray(img, dtype=np.float32) / 255.0)[..., None]
        has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
        return np.asarray(img.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255.0
