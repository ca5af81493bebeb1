"""CUDA volume rendering over packed samples (kernels in volume_render.h).

``render_weights_cuda`` and ``accumulate_cuda`` have the signatures and semantics of ``reference.py``; both are
differentiable (jt.Function). Nothing here syncs with the host; every output is a fresh jt.code output.
"""
import jittor as jt

from ..cuda_utils import cuda_header, kernel_scope
from .reference import _check_alpha

__all__ = ["render_weights_cuda", "accumulate_cuda"]

_WEIGHTS_FWD = """
    // in0 alpha [S] f32, in1 packed_info [R,2] i32 -> out0 weights [S] f32
    const uint32_t n_rays = in1_shape0;
    if (n_rays > 0)
        jnerf::render_weights_forward_kernel<<<jnerf::n_blocks(n_rays), jnerf::kThreads>>>(
            in0_p, in1_p, out0_p, n_rays);
"""

_WEIGHTS_BWD = """
    // in0 alpha [S] f32, in1 packed_info [R,2] i32, in2 dweights [S] f32 -> out0 dalpha [S] f32
    const uint32_t n_rays = in1_shape0;
    if (n_rays > 0)
        jnerf::render_weights_backward_kernel<<<jnerf::n_blocks(n_rays), jnerf::kThreads>>>(
            in0_p, in1_p, in2_p, out0_p, n_rays);
"""

_ACC_FWD = """
    // in0 weights [S] f32, in1 ray_indices [S] i32{values_comment} -> out0 [R,C] f32
    const uint32_t n_samples = in0_shape0, n_channels = out0_shape1;
    cudaMemsetAsync(out0_p, 0, sizeof(float) * (size_t)out0->num, 0);
    if (n_samples > 0)
        jnerf::accumulate_forward_kernel<<<jnerf::n_blocks(n_samples), jnerf::kThreads>>>(
            in0_p, {values_ptr}, in1_p, out0_p, n_samples, n_channels);
"""

_ACC_BWD = """
    // in0 weights [S] f32, in1 ray_indices [S] i32, in2 dout [R,C] f32{values_comment}
    // -> out0 dweights [S] f32{dvalues_comment}
    const uint32_t n_samples = in0_shape0, n_channels = in2_shape1;
    if (n_samples > 0)
        jnerf::accumulate_backward_kernel<<<jnerf::n_blocks(n_samples), jnerf::kThreads>>>(
            in0_p, {values_ptr}, in1_p, in2_p, out0_p, {dvalues_ptr}, n_samples, n_channels);
"""


class RenderWeightsFunction(jt.Function):
    """alpha [S] f32, packed_info [R,2] i32 -> weights [S] f32; gradient to alpha."""

    def execute(self, alpha, packed_info):
        self.alpha, self.packed_info = alpha, packed_info
        with kernel_scope():
            return jt.code(alpha.shape, "float32", [alpha, packed_info],
                           cuda_header=cuda_header("volume_render"), cuda_src=_WEIGHTS_FWD)

    def grad(self, dweights):
        with kernel_scope():
            dalpha = jt.code(self.alpha.shape, "float32", [self.alpha, self.packed_info, dweights.float32()],
                             cuda_header=cuda_header("volume_render"), cuda_src=_WEIGHTS_BWD)
        return dalpha, None


class AccumulateFunction(jt.Function):
    """weights [S] f32, ray_indices [S] i32 (sorted), values [S,C] f32 or absent, n_rays -> [n_rays, C] f32."""

    def execute(self, weights, ray_indices, n_rays, values=None):
        self.weights, self.ray_indices, self.values = weights, ray_indices, values
        has_values = values is not None
        n_channels = values.shape[1] if has_values else 1
        src = _ACC_FWD.format(values_ptr="in2_p" if has_values else "nullptr",
                              values_comment=", in2 values [S,C] f32" if has_values else "")
        inputs = [weights, ray_indices] + ([values] if has_values else [])
        with kernel_scope():
            return jt.code((int(n_rays), n_channels), "float32", inputs,
                           cuda_header=cuda_header("volume_render"), cuda_src=src)

    def grad(self, dout):
        has_values = self.values is not None
        src = _ACC_BWD.format(values_ptr="in3_p" if has_values else "nullptr",
                              dvalues_ptr="out1_p" if has_values else "nullptr",
                              values_comment=", in3 values [S,C] f32" if has_values else "",
                              dvalues_comment=", out1 dvalues [S,C] f32" if has_values else "")
        inputs = [self.weights, self.ray_indices, dout.float32()] + ([self.values] if has_values else [])
        shapes = [self.weights.shape] + ([self.values.shape] if has_values else [])
        with kernel_scope():
            outs = jt.code(shapes, ["float32"] * len(shapes), inputs,
                           cuda_header=cuda_header("volume_render"), cuda_src=src)
        return outs[0], None, None, (outs[1] if has_values else None)


def render_weights_cuda(alpha, packed_info, ray_indices):
    """w_i = alpha_i * prod_{j<i, same ray} (1 - alpha_j): alpha [S] f32, packed_info [R,2] i32, ray_indices [S]
    i32 (checked only; the kernel walks packed_info) -> [S] f32, differentiable w.r.t. alpha."""
    _check_alpha(alpha, packed_info, ray_indices)
    if alpha.shape[0] == 0:
        return jt.zeros((0,), dtype=jt.float32)
    if alpha.dtype != jt.float32:
        alpha = alpha.float32()
    if packed_info.dtype != jt.int32:
        packed_info = packed_info.int32()
    return RenderWeightsFunction.apply(alpha, packed_info)


def accumulate_cuda(weights, values, ray_indices, n_rays):
    """Per-ray sum of weights [S] * values [S,C] (None: the weights, C = 1) -> [n_rays, C] f32. ray_indices [S]
    int32 must be sorted (each ray's samples contiguous, as in PackedSamples). Differentiable w.r.t. weights and
    values; rays without samples get 0."""
    if weights.ndim != 1:
        raise ValueError(f"weights: expected shape [S], got {list(weights.shape)}")
    n_samples = weights.shape[0]
    if ray_indices.ndim != 1 or ray_indices.shape[0] != n_samples:
        raise ValueError(f"ray_indices: expected shape [{n_samples}], got {list(ray_indices.shape)}")
    if values is not None and (values.ndim != 2 or values.shape[0] != n_samples):
        raise ValueError(f"values: expected shape [{n_samples}, C] or None, got {list(values.shape)}")
    n_channels = values.shape[1] if values is not None else 1
    if n_samples == 0 or int(n_rays) == 0:
        return jt.zeros((int(n_rays), n_channels), dtype=jt.float32)
    if weights.dtype != jt.float32:
        weights = weights.float32()
    if values is not None and values.dtype != jt.float32:
        values = values.float32()
    if ray_indices.dtype != jt.int32:
        ray_indices = ray_indices.int32()
    return AccumulateFunction.apply(weights, ray_indices, int(n_rays), values)
