"""Multiresolution hash encoding written with plain Jittor ops: the CPU path and the reference for the CUDA kernel.

The maths is the one fixed in docs/design.md (tcnn's): per level l, pos = x*scale_l + 0.5, trilinear interpolation
of the 8 surrounding vertices, a dense index on levels whose (ceil(scale_l)+1)^3 vertices fit the table and the
xor-prime spatial hash (uint32 arithmetic) elsewhere. Gradients to the table and to x come from Jittor's autograd.
"""
import math

import numpy as np

import jnerf  # noqa: F401  (prepares Jittor's environment before jittor loads)
import jittor as jt

__all__ = ["hash_encode_reference", "level_resolutions", "HASH_PRIMES", "check_hash_encode_args"]

# tcnn's primes for the x, y, z vertex coordinates.
HASH_PRIMES = (1, 2654435761, 805459861)
_UINT32_MASK = 0xFFFFFFFF
# Corner c = 4*cx + 2*cy + cz; the weight tensor below is laid out in the same order.
_CORNER_OFFSETS = np.array([[cx, cy, cz] for cx in (0, 1) for cy in (0, 1) for cz in (0, 1)], dtype=np.int64)


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


def _corner_indices(p0, resolutions, table_size):
    """Table row of each corner of each active level.

    p0: [N, La, 3] int64 lower vertex; returns [N, La, 8] int64 in [0, table_size).
    """
    n_levels = len(resolutions)
    dense = [r ** 3 <= table_size for r in resolutions]
    # Dense levels combine v.x + v.y*res + v.z*res^2, hashed ones v.x*1 ^ v.y*P1 ^ v.z*P2: same shape, other
    # strides and another combining op, so both are computed with per-level strides and selected per level.
    stride_y = [r if d else HASH_PRIMES[1] for r, d in zip(resolutions, dense)]
    stride_z = [r * r if d else HASH_PRIMES[2] for r, d in zip(resolutions, dense)]
    v = p0.unsqueeze(2) + _int64_array(_CORNER_OFFSETS)  # [N, La, 8, 3]
    vx = v[..., 0]
    vy = v[..., 1] * _int64_array(stride_y).reshape(1, n_levels, 1)
    vz = v[..., 2] * _int64_array(stride_z).reshape(1, n_levels, 1)
    summed = vx + vy + vz
    hashed = (vx ^ vy ^ vz) & _int64_array(_UINT32_MASK)  # low 32 bits = the uint32 products' xor
    is_dense = jt.array(np.array(dense, dtype=np.bool_)).reshape(1, n_levels, 1)
    return jt.ternary(is_dense, summed, hashed) % _int64_array(table_size)


def _corner_weights(frac):
    """Trilinear weights: frac [N, La, 3] -> [N, La, 8] in the corner order of _CORNER_OFFSETS."""
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
