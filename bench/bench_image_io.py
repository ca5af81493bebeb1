"""Image decoding speed: 16-bit and 8-bit PNGs through jnerf's reader (OpenCV), against the pure-Python 16-bit PNG
decoder it replaced (commit 48732c3's jnerf/dataset/image_io.py, loaded from git), as a table.

    python bench/bench_image_io.py [--sizes 400x300,1600x1200]
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
OLD_COMMIT = "48732c3"


def old_reader():
    """The replaced decoder, from git (None when the checkout has no history)."""
    try:
        src = subprocess.run(["git", "show", f"{OLD_COMMIT}:jnerf/dataset/image_io.py"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = os.path.join(tempfile.mkdtemp(), "old_image_io.py")
    with open(path, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("old_image_io", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="400x300,1600x1200")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    import cv2
    from jnerf.dataset.image_io import read_image
    old = old_reader()
    tmp = tempfile.mkdtemp()
    rng = np.random.default_rng(0)
    print("| image | jnerf (OpenCV) ms | pure-Python decoder ms | speed-up | same values |")
    print("|---|---|---|---|---|")
    for size in args.sizes.split(","):
        w, h = map(int, size.split("x"))
        for bits in (16, 8):
            dtype = np.uint16 if bits == 16 else np.uint8
            image = rng.integers(0, np.iinfo(dtype).max + 1, size=(h, w, 3), dtype=dtype)
            # smooth content compresses like a photo; pure noise would not
            image = cv2.GaussianBlur(image, (0, 0), 3)
            path = os.path.join(tmp, f"{w}x{h}_{bits}.png")
            if old is not None and bits == 16:
                # rows with every PNG filter type, Paeth most (what libpng's adaptive filtering picks on photos)
                old.write_png16(path, image, filters=(4, 4, 1, 2, 3, 0))
            else:
                cv2.imwrite(path, image[..., ::-1])
            new_s, new = best_of(lambda: read_image(path), args.repeat)
            if old is not None and bits == 16:
                old_s, ref = best_of(lambda: old.read_image(path), 1)
                same = bool(np.allclose(new, ref, atol=1e-7))
                print(f"| {w}x{h} {bits}-bit RGB | {1e3 * new_s:.1f} | {1e3 * old_s:.0f} | {old_s / new_s:.0f}x | "
                      f"{same} |")
            else:
                print(f"| {w}x{h} {bits}-bit RGB | {1e3 * new_s:.1f} | (Pillow before) | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
