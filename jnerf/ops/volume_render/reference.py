"""Volume rendering over packed samples with plain Jittor ops: the CPU path and the semantics the CUDA kernels copy.

Samples are packed nerfacc style (no padding): sample i belongs to ray ``ray_indices[i]``, the samples of a ray are
contiguous and ordered by t, and ``packed_info[r] = (first, count)``.
"""
import jittor as jt
import numpy as np

__all__ = ["render_weights_reference", "accumulate_reference", "ray_indices_from_packed_info"]

# 1 - alpha is clamped away from 0 before the log so that an opaque sample gives a tiny, finite transmittance.
_MIN_TRANSMITTANCE = 1e-10


def _check_alpha(alpha, packed_info, ray_indices):
    if alpha.ndim != 1:
        raise ValueError(f"alpha: expected shape [S], got {list(alpha.shape)}")
    if ray_indices.ndim != 1 or ray_indices.shape[0] != alpha.shape[0]:
        raise ValueError(f"ray_indices: expected shape [{alpha.shape[0]}] (one per sample), "
                         f"got {list(ray_indices.shape)}")
    if packed_info.ndim != 2 or packed_info.shape[1] != 2:
        raise ValueError(f"packed_info: expected shape [R,2] (first, count), got {list(packed_info.shape)}")


def ray_indices_from_packed_info(packed_info):
    """ray_indices [S] int32 of contiguous packed samples described by packed_info [R,2] (first, count)."""
    counts = packed_info[:, 1].numpy().astype(np.int64)
    return jt.array(np.repeat(np.arange(len(counts), dtype=np.int32), counts))


def render_weights_reference(alpha, packed_info, ray_indices=None):
    """w_i = alpha_i * prod_{j<i, same ray} (1 - alpha_j); differentiable w.r.t. alpha.

    alpha [S] float32, packed_info [R,2] int32, ray_indices [S] int32 (None: derived from packed_info)
    -> weights [S] float32.
    The log-transmittance is summed in float64 over the whole packed array, then the value at each ray's first
    sample is subtracted, so no ray's transmittance depends on how many samples come before it.
    """
    if ray_indices is None:
        ray_indices = ray_indices_from_packed_info(packed_info)
    _check_alpha(alpha, packed_info, ray_indices)
    if alpha.shape[0] == 0:
        return jt.zeros((0,), dtype=jt.float32)
    log_keep = jt.log(jt.clamp(1.0 - alpha.float64(), min_v=_MIN_TRANSMITTANCE))  # [S] float64
    inclusive = jt.cumsum(log_keep, 0)                                              # [S] float64
    exclusive = inclusive - log_keep                                                 # [S] sum over j < i
    ray_first = packed_info[:, 0][ray_indices]                                       # [S] int32
    log_transmittance = exclusive - exclusive[ray_first]                             # [S] within-ray sum
    return (alpha.float64() * jt.exp(log_transmittance)).float32()


def accumulate_reference(weights, values, ray_indices, n_rays):
    """Per-ray sum of weights * values: weights [S], values [S,C] or None, ray_indices [S] -> [n_rays, C].

    ``values=None`` gives the sum of weights (opacity), shape [n_rays, 1]. Rays without samples get 0.
    Differentiable w.r.t. weights and values.
    """
    if weights.ndim != 1:
        raise ValueError(f"weights: expected shape [S], got {list(weights.shape)}")
    n_samples = weights.shape[0]
    if ray_indices.ndim != 1 or ray_indices.shape[0] != n_samples:
        raise ValueError(f"ray_indices: expected shape [{n_samples}], got {list(ray_indices.shape)}")
    if values is None:
        contrib = weights.reshape((-1, 1))                                           # [S,1]
    else:
        if values.ndim != 2 or values.shape[0] != n_samples:
            raise ValueError(f"values: expected shape [{n_samples}, C] or None, got {list(values.shape)}")
        contrib = weights.reshape((-1, 1)) * values                                  # [S,C]
    n_channels = contrib.shape[1]
    if n_samples == 0:
        return jt.zeros((int(n_rays), n_channels), dtype=contrib.dtype)
    return contrib.reindex_reduce("add", [int(n_rays), n_channels], ["@e0(i0)", "i1"], extras=[ray_indices])
