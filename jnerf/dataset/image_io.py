"""Image reading for NeuS-format scenes without OpenCV: PNG/JPG, 8- or 16-bit, grey/RGB/RGBA -> float32 in [0,1].

Pillow reads everything we need except 16-bit colour PNGs, which it silently truncates to 8 bits; those are
decoded here (zlib + PNG scanline filters), and ``write_png16`` writes them (used by tests and tools).
"""
import struct
import zlib

import numpy as np

__all__ = ["ImageReadError", "read_image", "write_png16"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS_OF_COLOUR_TYPE = {0: 1, 2: 3, 4: 2, 6: 4}


class ImageReadError(ValueError):
    """An image file that is missing, unreadable, truncated or of an unsupported kind."""


def read_image(path):
    """Read ``path`` as float32 [H,W,C] in [0,1] with C in {1,3,4} (grey, RGB, RGBA; grey+alpha becomes RGBA)."""
    path = str(path)
    try:
        header = _png_header(path)
        if header is not None and header["bit_depth"] == 16 and header["colour_type"] in (2, 6):
            return _decode_png16(path, header).astype(np.float32) / 65535.0
        return _read_with_pillow(path)
    except ImageReadError:
        raise
    except Exception as err:  # PIL/zlib raise many types for broken files; name the file once here
        raise ImageReadError(f"{path}: cannot read image ({type(err).__name__}: {err})") from err


def _read_with_pillow(path):
    from PIL import Image
    with Image.open(path) as img:
        img.load()  # forces decoding now so a truncated file fails here, not later
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            return (np.asarray(img, dtype=np.float32) / 65535.0)[..., None]
        if img.mode == "L":
            return (np.asarray(img, dtype=np.float32) / 255.0)[..., None]
        has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
        arr = np.asarray(img.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32)
        return arr / 255.0


def _png_header(path):
    """IHDR fields of a PNG file, or None when the file is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(33)
    if not head.startswith(_PNG_SIGNATURE):
        return None
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise ImageReadError(f"{path}: truncated PNG header")
    width, height, bit_depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return dict(width=width, height=height, bit_depth=bit_depth, colour_type=colour_type, interlace=interlace)


def _png_chunks(data, path):
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise ImageReadError(f"{path}: truncated PNG chunk {kind!r}")
        yield kind, body
        if kind == b"IEND":
            return
        pos += 12 + length
    raise ImageReadError(f"{path}: truncated PNG (no IEND chunk)")


def _decode_png16(path, header):
    """Decode a non-interlaced 16-bit RGB/RGBA PNG to uint16 [H,W,C]."""
    if header["interlace"]:
        raise ImageReadError(f"{path}: interlaced 16-bit PNGs are not supported")
    with open(path, "rb") as f:
        data = f.read()
    idat = b"".join(body for kind, body in _png_chunks(data, path) if kind == b"IDAT")
    try:
        raw = zlib.decompress(idat)
    except zlib.error as err:
        raise ImageReadError(f"{path}: corrupt PNG image data ({err})") from err
    h, w = header["height"], header["width"]
    channels = _CHANNELS_OF_COLOUR_TYPE[header["colour_type"]]
    bpp = 2 * channels
    stride = w * bpp
    if len(raw) != h * (stride + 1):
        raise ImageReadError(f"{path}: truncated PNG image data ({len(raw)} of {h * (stride + 1)} bytes)")
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(h, stride + 1)
    out = np.zeros((h, stride), dtype=np.uint8)
    prior = np.zeros(stride, dtype=np.uint8)
    for r in range(h):
        out[r] = _unfilter_row(int(rows[r, 0]), rows[r, 1:], prior, bpp, path)
        prior = out[r]
    return out.view(">u2").reshape(h, w, channels).astype(np.uint16)


def _unfilter_row(kind, filt, prior, bpp, path):
    if kind == 0:
        return filt
    if kind == 2:
        return filt + prior  # uint8 arithmetic wraps mod 256, as PNG requires
    if kind == 1:
        # Recon(x) = Filt(x) + Recon(x - bpp): a running sum within each byte lane
        return (np.cumsum(filt.reshape(-1, bpp).astype(np.int64), axis=0) % 256).astype(np.uint8).reshape(-1)
    if kind not in (3, 4):
        raise ImageReadError(f"{path}: unknown PNG filter type {kind}")
    # Average and Paeth depend on the reconstructed left neighbour, so walk the pixels in order.
    filt = filt.astype(np.int64).reshape(-1, bpp)
    up = prior.astype(np.int64).reshape(-1, bpp)
    out = np.zeros_like(filt)
    left = np.zeros(bpp, dtype=np.int64)
    up_left = np.zeros(bpp, dtype=np.int64)
    for i in range(filt.shape[0]):
        if kind == 3:
            pred = (left + up[i]) // 2
        else:
            pred = _paeth(left, up[i], up_left)
        out[i] = (filt[i] + pred) % 256
        left, up_left = out[i], up[i]
    return out.astype(np.uint8).reshape(-1)


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _filter_row(kind, raw, prior, bpp):
    """PNG forward filter of one scanline (int64 arrays of bytes)."""
    left = np.concatenate([np.zeros(bpp, np.int64), raw[:-bpp]])
    up_left = np.concatenate([np.zeros(bpp, np.int64), prior[:-bpp]])
    pred = {0: np.zeros_like(raw), 1: left, 2: prior, 3: (left + prior) // 2,
            4: _paeth(left, prior, up_left)}[kind]
    return ((raw - pred) % 256).astype(np.uint8)


def write_png16(path, image, filters=(0,)):
    """Write uint16 [H,W,3|4] as a 16-bit PNG; row r uses PNG filter ``filters[r % len(filters)]``."""
    image = np.asarray(image)
    if image.dtype != np.uint16 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"write_png16 expects uint16 [H,W,3|4], got {image.dtype} {image.shape}")
    h, w, c = image.shape
    bpp = 2 * c
    rows = image.astype(">u2").view(np.uint8).reshape(h, w * bpp).astype(np.int64)
    prior = np.zeros(w * bpp, np.int64)
    body = bytearray()
    for r in range(h):
        kind = filters[r % len(filters)]
        body.append(kind)
        body += _filter_row(kind, rows[r], prior, bpp).tobytes()
        prior = rows[r]

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2 if c == 3 else 6, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(_PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(body)))
                + chunk(b"IEND", b""))
