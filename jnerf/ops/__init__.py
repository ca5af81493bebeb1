"""Kernel families. Each sub-package exports functions that pick, at call time, the CUDA kernel (when
``jt.flags.use_cuda``) or the Jittor-ops reference that defines their semantics and runs on the CPU."""
import importlib

import jittor as jt


def cuda_kernel(module, name):
    """The CUDA wrapper ``name`` of kernel module ``module`` (e.g. 'jnerf.ops.occupancy.occupancy') when running on
    CUDA and it imports; None otherwise, so the caller falls back to its reference."""
    if not jt.flags.use_cuda:
        return None
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None
