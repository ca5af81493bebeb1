"""Multiresolution hash encoding op: ``hash_encode(x, table, scales, n_active)``.

The implementation is chosen at call time: the CUDA kernel (``hashgrid.py``) when ``jt.flags.use_cuda`` is set and
it can be imported, else the Jittor-ops reference (``reference.py``). Both follow the maths in docs/design.md.
"""
from jnerf.ops import cuda_kernel
from .reference import (STENCIL, STENCILS, hash_encode_reference, hash_encode_stencil_reference, level_resolutions,
                        stencil_points)

__all__ = ["hash_encode", "hash_encode_stencil", "hash_encode_reference", "hash_encode_stencil_reference",
           "level_resolutions", "stencil_points", "STENCIL", "STENCILS"]


def hash_encode(x, table, scales, n_active):
    """Encode x [N,3] in [0,1] with table [L,T,F] at per-level scales; -> [N, L*F] float32 (see reference.py)."""
    impl = cuda_kernel("jnerf.ops.hashgrid.hashgrid", "hash_encode_cuda") or hash_encode_reference
    return impl(x, table, scales, n_active)


def hash_encode_stencil(x, table, scales, n_active, h, stencil="central"):
    """Encode a finite-difference stencil of x [N,3] (|step h| <= one cell of the finest active level; a negative h
    mirrors it) -> [KN, L*F] float32, row k*N + n for entry k of STENCILS[stencil]: "central", the 7 points centre,
    +x, -x, +y, -y, +z, -z, or "tetrahedral", the centre and 4 tetrahedron vertices. One kernel shares the corners
    the points have in common on CUDA; see reference.py for the maths."""
    impl = (cuda_kernel("jnerf.ops.hashgrid.hashgrid", "hash_encode_stencil_cuda")
            or hash_encode_stencil_reference)
    return impl(x, table, scales, n_active, h, stencil)
