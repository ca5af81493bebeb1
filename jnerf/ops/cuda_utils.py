"""Shared Python helpers of the CUDA kernel wrappers (hashgrid.py, volume_render.py, occupancy.py).

Kernels live in headers (``jnerf/ops/common.h`` + one ``<family>/<family>.h`` per family) and are launched with
``jt.code``. Include paths go into the op's own ``compile_options`` (``{"FLAGS: -I<dir>": 1}``), never into the
global nvcc flags. The one include directory is the folder holding the ``jnerf`` package and every include is
spelled from there (``"jnerf/ops/common.h"``): Jittor's cache resolves each quoted include against its own src/
first (which has a common.h of its own) and then the -I folders, never relative to the including file, and it
hashes the included files, so editing a header recompiles the ops that use it.
Per-call scalars (n_active, step size, box, ...) go through jt.code's ``data`` map (double values read by the
host launch code), which is not part of the cache key, so they cost no recompile.
"""
import os

import jittor as jt

__all__ = ["OPS_DIR", "INCLUDE_ROOT", "compile_options", "cuda_header", "kernel_scope", "check_cuda_path"]

OPS_DIR = os.path.dirname(os.path.abspath(__file__))
INCLUDE_ROOT = os.path.dirname(os.path.dirname(OPS_DIR))  # the folder holding the jnerf package


def check_cuda_path():
    """Jittor passes include flags unquoted: refuse an install path nvcc would split."""
    if any(c in INCLUDE_ROOT for c in " \t'\""):
        raise RuntimeError(f"jnerf's CUDA kernels cannot be compiled from a path with spaces or quotes: "
                           f"{INCLUDE_ROOT}")


def compile_options():
    """Per-op nvcc flags: the include directory of every kernel header."""
    check_cuda_path()
    return {f"FLAGS: -I{INCLUDE_ROOT} ": 1}


def cuda_header(family, extra=""):
    """``cuda_header`` text for a kernel family: the include of jnerf/ops/<family>/<family>.h (+ ``extra``)."""
    return f'#include "jnerf/ops/{family}/{family}.h"\n{extra}'


def kernel_scope():
    """Context in which jt.code ops get the include flags (Jittor copies ``compile_options`` into every Var
    created inside it, so all outputs of a multi-output op carry them)."""
    return jt.flag_scope(compile_options=compile_options())
