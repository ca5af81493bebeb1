"""Multiresolution hash encoding written with plain Jittor ops: the CPU path and the reference for the CUDA kernel.

The maths is the one fixed in docs/design.md (tcnn's): per level l, pos = x*scale_l + 0.5, trilinear interpolation
of the 8 surrounding vertices, a dense index on levels whose (ceil(scale_l)+1)^3 vertices fit the table and the
xor-prime spatial hash (uint32 arithmetic) elsewhere. Gradients to the table and to x come from Jittor's autograd.
"""
import math

import numpy as np

import jittor as jt

__all__ = ["hash_encode_reference", "hash_encode_stencil_reference", "stencil_points", "level_resolutions",
           "HASH_PRIMES", "check_hash_encode_args", "check_stencil", "STENCIL", "STENCILS"]

# Unit steps of the 7-point central-difference stencil, in the order its points are encoded and returned:
# centre, +x, -x, +y, -y, +z, -z.
STENCIL = np.array([[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], np.float32)
# The 5-point tetrahedral stencil: the centre and four vertices of a regular tetrahedron inscribed in the cube of
# half-edge 1 (sum k = 0, sum k k^T = 4 I). It gives the gradient (first order) and the Laplacian from 4 evaluations
# instead of 6; hashgrid.h's TetrahedralStencil lists the same rows.
TETRAHEDRON = np.array([[0, 0, 0], [1, -1, -1], [-1, -1, 1], [-1, 1, -1], [1, 1, 1]], np.float32)
STENCILS = {"central": STENCIL, "tetrahedral": TETRAHEDRON}

# tcnn's primes for the x, y, z vertex coordinates.
HASH_PRIMES = (1, 2654435761, 805459861)
_UINT32_MASK = 0xFFFFFFFF


def _int64_array(values):
    # jt.array silently narrows int64 numpy arrays to int32, which would overflow the hash products.
    with jt.flag_scope(auto_convert_64_to_32=0):
        return jt.array(np.asarray(values, dtype=np.int64))


def level_resolutions(scales):
    """Vertices per axis of each level, ceil(scale_l) + 1, as a list of Python ints."""
    return [int(math.ceil(s)) + 1 for s in np.asarray(scales, dtype=np.float32)]


def check_hash_encode_args(x, table, scales, n_active):
    """Validate the arguments of hash_encode; return (scales as float32 numpy [L], n_active as int)."""
    if not isinstance(x, jt.Var) or x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"hash_encode: x must be a jt.Var of shape [N, 3], got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    if not isinstance(table, jt.Var) or table.ndim != 3:
        raise ValueError(f"hash_encode: table must be a jt.Var of shape [L, T, F], got "
                         f"{getattr(table, 'shape', type(table).__name__)}")
    if str(table.dtype) not in ("float32", "float16"):
        raise ValueError(f"hash_encode: table dtype must be float32 or float16, got {table.dtype}")
    if isinstance(scales, jt.Var):
        scales = scales.numpy()
    scales = np.asarray(scales, dtype=np.float32).reshape(-1)
    if scales.shape[0] != table.shape[0]:
        raise ValueError(f"hash_encode: scales must have one entry per level ({table.shape[0]}), "
                         f"got {scales.shape[0]}")
    n_active = int(n_active)
    if not 0 <= n_active <= table.shape[0]:
        raise ValueError(f"hash_encode: n_active must be in [0, {table.shape[0]}], got {n_active}")
    return scales, n_active


def _level_runs(resolutions, table_size):
    """Split levels into maximal runs of the same kind: [(first, stop, is_dense)] (dense: res^3 <= T)."""
    runs = []
    for level, res in enumerate(resolutions):
        dense = res ** 3 <= table_size
        if runs and runs[-1][2] == dense:
            runs[-1] = (runs[-1][0], level + 1, dense)
        else:
            runs.append((level, level + 1, dense))
    return runs


def _axis_terms(p0, strides):
    """(p0_a + {0,1}) * stride_a per axis: 3 x [N, La, 2] int64; strides: 3 lists of La ints."""
    n_levels = p0.shape[1]
    terms = []
    for axis in range(3):
        vertex = p0[..., axis].unsqueeze(-1) + _int64_array([0, 1])  # [N, La, 2]
        terms.append(vertex * _int64_array(strides[axis]).reshape(1, n_levels, 1))
    return terms


def _combine_corners(terms, combine):
    """Corner c = 4*cx + 2*cy + cz of the per-axis terms: 3 x [N, La, 2] -> [N, La, 8]."""
    tx, ty, tz = terms
    corners = combine(combine(tx.unsqueeze(-1).unsqueeze(-1), ty.unsqueeze(-2).unsqueeze(-1)),
                      tz.unsqueeze(-2).unsqueeze(-2))  # [N, La, 2, 2, 2]
    return corners.reshape(tx.shape[0], tx.shape[1], 8)


def _corner_indices(p0, resolutions, table_size):
    """Table row of each corner of each active level.

    p0: [N, La, 3] int64 lower vertex; returns [N, La, 8] int64 in [0, table_size).
    Each axis contributes a term per vertex coordinate (2 values per cell), so the products are taken on
    [N, La, 2] and only the combination runs over the 8 corners.
    """
    parts = []
    for first, stop, dense in _level_runs(resolutions, table_size):
        p0_run, res = p0[:, first:stop], resolutions[first:stop]
        if dense:  # v.x + v.y*res + v.z*res^2
            terms = _axis_terms(p0_run, ([1] * len(res), res, [r * r for r in res]))
            rows = _combine_corners(terms, lambda a, b: a + b)
        else:  # v.x*1 ^ v.y*P1 ^ v.z*P2; the low 32 bits equal the uint32 products' xor
            terms = _axis_terms(p0_run, [[prime] * len(res) for prime in HASH_PRIMES])
            rows = _combine_corners(terms, lambda a, b: a ^ b) & _int64_array(_UINT32_MASK)
        parts.append(rows % _int64_array(table_size))
    return parts[0] if len(parts) == 1 else jt.concat(parts, dim=1)


def _corner_weights(frac):
    """Trilinear weights: frac [N, La, 3] -> [N, La, 8], corner c = 4*cx + 2*cy + cz as in _combine_corners."""
    pairs = [jt.stack([1.0 - frac[..., a], frac[..., a]], dim=-1) for a in range(3)]  # 3 x [N, La, 2]
    weights = (pairs[0].unsqueeze(-1).unsqueeze(-1)
               * pairs[1].unsqueeze(-2).unsqueeze(-1)
               * pairs[2].unsqueeze(-2).unsqueeze(-2))  # [N, La, 2, 2, 2]
    return weights.reshape(frac.shape[0], frac.shape[1], 8)


def hash_encode_reference(x, table, scales, n_active):
    """Hash-encode points with Jittor ops.

    x: [N, 3] float32 in [0, 1] (clamped); table: [L, T, F] float32 or float16; scales: L floats (scale_l,
    used as float32); n_active: levels l >= n_active output 0 and get no gradient.
    Returns [N, L*F] float32, level-major (l0f0, l0f1, l1f0, ...).
    """
    scales, n_active = check_hash_encode_args(x, table, scales, n_active)
    n_points = x.shape[0]
    n_levels, table_size, n_features = table.shape
    if n_active == 0:
        return jt.zeros((n_points, n_levels * n_features), dtype="float32")
    active_scales = scales[:n_active]
    x = x.float32().clamp(0.0, 1.0)
    pos = x.unsqueeze(1) * jt.array(active_scales).reshape(1, n_active, 1) + 0.5  # [N, La, 3]
    p0 = jt.floor(pos).stop_grad()
    weights = _corner_weights(pos - p0)  # [N, La, 8], carries d/dx
    rows = _corner_indices(p0.int64(), level_resolutions(active_scales), table_size)  # [N, La, 8]
    level_offset = _int64_array(np.arange(n_active) * table_size).reshape(1, n_active, 1)
    rows = (rows + level_offset).int32()
    flat_table = table[:n_active].reshape(n_active * table_size, n_features)
    corner_features = flat_table[rows].float32()  # [N, La, 8, F], fp32 accumulation for fp16 tables
    encoded = (weights.unsqueeze(-1) * corner_features).sum(dim=2)  # [N, La, F]
    encoded = encoded.reshape(n_points, n_active * n_features)
    if n_active < n_levels:
        padding = jt.zeros((n_points, (n_levels - n_active) * n_features), dtype="float32")
        encoded = jt.concat([encoded, padding], dim=1)
    return encoded


def check_stencil(stencil):
    """The unit steps [K,3] of a stencil named in STENCILS."""
    if stencil not in STENCILS:
        raise ValueError(f"hash_encode_stencil: stencil must be one of {sorted(STENCILS)}, got {stencil!r}")
    return STENCILS[stencil]


def stencil_points(x, h, stencil="central"):
    """The K stencil points of each of x [N,3]: [KN, 3], row k*N + n = x[n] + h * STENCILS[stencil][k] (float32
    sums). A negative h mirrors the stencil."""
    steps = check_stencil(stencil)
    offsets = jt.array(steps * np.float32(h))  # [K, 3]
    return (x.unsqueeze(0) + offsets.unsqueeze(1)).reshape(len(steps) * x.shape[0], 3)


def check_stencil_step(h, scales, n_active):
    """h as a float32-exact Python float; it must be non-zero and |h| at most one cell of every active level (the
    CUDA kernels rely on an offset point staying within the neighbouring cell on each axis). A negative h mirrors
    the stencil."""
    h = float(np.float32(h))
    finest_cell = 1.0 / float(np.float32(scales[n_active - 1])) if n_active > 0 else math.inf
    if not 0.0 < abs(h) <= finest_cell * (1 + 1e-6):
        raise ValueError(f"hash_encode_stencil: |step h| must be in (0, {finest_cell:g}] (one cell of the finest "
                         f"active level), got {h:g}")
    return h


def hash_encode_stencil_reference(x, table, scales, n_active, h, stencil="central"):
    """Encode the stencil of x [N,3] (encoder units, [0,1]) with step h: the encoding of ``stencil_points(x, h,
    stencil)``, [KN, L*F] float32, row k*N + n for stencil entry k (STENCILS[stencil]'s order)."""
    scales, n_active = check_hash_encode_args(x, table, scales, n_active)
    h = check_stencil_step(h, scales, n_active)
    return hash_encode_reference(stencil_points(x.float32(), h, stencil), table, scales, n_active)
