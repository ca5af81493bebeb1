"""Volume rendering ops on packed samples: transmittance weights and per-ray accumulation.

The public functions choose the implementation at call time: the CUDA kernels of ``volume_render.py`` when
``jt.flags.use_cuda`` is set and they are available, otherwise the Jittor-ops reference in ``reference.py``.
"""
import jittor as jt

from jnerf.ops import cuda_kernel

from .reference import accumulate_reference, ray_indices_from_packed_info, render_weights_reference

__all__ = ["render_weights", "accumulate"]


def _cuda_impl(name):
    return cuda_kernel("jnerf.ops.volume_render.volume_render", name)


def render_weights(alpha, packed_info, ray_indices=None):
    """alpha [S] float32 -> weights [S]: w_i = alpha_i * prod_{j<i, same ray} (1 - alpha_j).

    ray_indices [S] int32 may be omitted; it is then derived from packed_info [R,2] (a host round trip).
    """
    if ray_indices is None:
        ray_indices = ray_indices_from_packed_info(packed_info)
    impl = _cuda_impl("render_weights_cuda") or render_weights_reference
    return impl(alpha, packed_info, ray_indices)


def accumulate(weights, values, ray_indices, n_rays):
    """Per-ray sum of weights [S] * values [S,C] (None: weights alone) -> [n_rays, C]."""
    impl = _cuda_impl("accumulate_cuda") or accumulate_reference
    return impl(weights, values, ray_indices, n_rays)
