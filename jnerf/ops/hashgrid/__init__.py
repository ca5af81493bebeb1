"""Multiresolution hash encoding op: ``hash_encode(x, table, scales, n_active)``.

The implementation is chosen at call time: the CUDA kernel (``hashgrid.py``) when ``jt.flags.use_cuda`` is set and
it can be imported, else the Jittor-ops reference (``reference.py``). Both follow the maths in docs/design.md.
"""
from jnerf.ops import cuda_kernel
from .reference import hash_encode_reference, level_resolutions

__all__ = ["hash_encode", "hash_encode_reference", "level_resolutions"]


def hash_encode(x, table, scales, n_active):
    """Encode x [N,3] in [0,1] with table [L,T,F] at per-level scales; -> [N, L*F] float32 (see reference.py)."""
    impl = cuda_kernel("jnerf.ops.hashgrid.hashgrid", "hash_encode_cuda") or hash_encode_reference
    return impl(x, table, scales, n_active)
