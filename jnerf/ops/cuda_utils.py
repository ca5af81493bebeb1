"""Shared Python helpers of the CUDA kernel wrappers (hashgrid.py, volume_render.py, occupancy.py).

Kernels live in headers (``jnerf/ops/common.h`` + one ``<family>/<family>.h`` per family) and are launched with
``jt.code``. Include paths go into the op's own ``compile_options`` (``{"FLAGS: -I<dir>": 1}``), never into the
global nvcc flags. Jittor keys its kernel cache on the op's source text, not on the files it includes, so the
header text built here carries a digest of the headers: editing a header recompiles the ops that use it.
Per-call scalars (n_active, step size, box, ...) go through jt.code's ``data`` map (double values read by the
host launch code), which is not part of the cache key, so they cost no recompile.
"""
import hashlib
import os

import jnerf  # noqa: F401  (prepares Jittor's environment before jittor is imported)
import jittor as jt

__all__ = ["OPS_DIR", "THREADS", "compile_options", "cuda_header", "kernel_scope", "check_cuda_path"]

OPS_DIR = os.path.dirname(os.path.abspath(__file__))
THREADS = 256  # must equal jnerf::kThreads in common.h

_header_cache = {}


def check_cuda_path():
    """Jittor passes include flags unquoted: refuse an install path nvcc would split."""
    if any(c in OPS_DIR for c in " \t'\""):
        raise RuntimeError(f"jnerf's CUDA kernels cannot be compiled from a path with spaces or quotes: {OPS_DIR}")


def compile_options():
    """Per-op nvcc flags: the include directory of every kernel header."""
    check_cuda_path()
    return {f"FLAGS: -I{OPS_DIR} ": 1}


def _digest(paths):
    h = hashlib.sha1()
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def cuda_header(family, extra=""):
    """``cuda_header`` text for a kernel family: a digest of common.h and <family>/<family>.h, then the include."""
    key = (family, extra)
    if key not in _header_cache:
        rel = f"{family}/{family}.h"
        digest = _digest([os.path.join(OPS_DIR, "common.h"), os.path.join(OPS_DIR, rel)])
        _header_cache[key] = f'// jnerf {rel} {digest}\n#include "{rel}"\n{extra}'
    return _header_cache[key]


def kernel_scope():
    """Context in which jt.code ops get the include flags (Jittor copies ``compile_options`` into every Var
    created inside it, so all outputs of a multi-output op carry them)."""
    return jt.flag_scope(compile_options=compile_options())
