"""CUDA multiresolution hash encoding: ``hash_encode_cuda(x, table, scales, n_active)`` and the numerical
gradient's stencils, ``hash_encode_stencil_cuda(x, table, scales, n_active, h, stencil)`` (kernels in hashgrid.h).

Same maths, signature and outputs as ``reference.hash_encode_reference`` (docs/design.md). Compile-time: the table
dtype (float32/float16) and F; runtime (no recompile): N, L, T, n_active (through jt.code's data map), the scales
(a small [L] float32 Var, built once per distinct scale list and kept on the device). No host syncs.
"""
import numpy as np

import jittor as jt

from ..cuda_utils import cuda_header, kernel_scope
from .reference import check_hash_encode_args, check_stencil, check_stencil_step, stencil_points

__all__ = ["hash_encode_cuda", "hash_encode_stencil_cuda"]

_scales_cache = {}


def _scales_var(scales):
    """[L] float32 Var of the per-level scales, one per distinct list (created once, no per-call upload)."""
    key = scales.tobytes()
    var = _scales_cache.get(key)
    if var is None:
        var = jt.array(scales.astype(np.float32)).stop_grad()
        _scales_cache[key] = var
    return var


def _ctype(table):
    return "__half" if str(table.dtype) == "float16" else "float"


_FORWARD_SRC = """
    // in0 x [N,3] f32, in1 table [L,T,F], in2 scales [L] f32 -> out0 [N, L*F] f32
    const uint32_t n_points = in0_shape0, n_levels = in1_shape0, table_size = in1_shape1;
    if (n_points > 0 && n_levels > 0) {{
        dim3 grid(jnerf::n_blocks(n_points), n_levels);
        jnerf::hash_encode_forward_kernel<{ctype}, {F}><<<grid, jnerf::kThreads>>>(
            in0_p, reinterpret_cast<const {ctype}*>(in1_p), in2_p, out0_p,
            n_points, n_levels, table_size, (uint32_t)data["n_active"]);
    }}
"""

_BACKWARD_SRC = """
    // in0 x [N,3] f32, in1 table [L,T,F], in2 scales [L] f32, in3 dout [N, L*F] f32
    // -> out0 grad_table [L,T,F] f32{dx_comment}
    const uint32_t n_points = in0_shape0, n_levels = in1_shape0, table_size = in1_shape1;
    cudaMemsetAsync(out0_p, 0, sizeof(float) * (size_t)out0->num, 0);
    {dx_memset}
    if (n_points > 0 && n_levels > 0) {{
        dim3 grid(jnerf::n_blocks(n_points), n_levels);
        jnerf::hash_encode_backward_kernel<{ctype}, {F}, {need_dx}><<<grid, jnerf::kThreads>>>(
            in0_p, reinterpret_cast<const {ctype}*>(in1_p), in2_p, in3_p, out0_p, {dx_ptr},
            n_points, n_levels, table_size, (uint32_t)data["n_active"]);
    }}
"""


class HashEncodeFunction(jt.Function):
    """x [N,3] f32, table [L,T,F] f32|f16, scales_var [L] f32 (no grad), n_active int -> [N, L*F] f32."""

    def execute(self, x, table, scales_var, n_active):
        self.x, self.table, self.scales_var, self.n_active = x, table, scales_var, n_active
        self.need_dx = not x.is_stop_grad()
        n_levels, _, n_features = table.shape
        src = _FORWARD_SRC.format(ctype=_ctype(table), F=n_features)
        with kernel_scope():
            return jt.code((x.shape[0], n_levels * n_features), "float32", [x, table, scales_var],
                           cuda_header=cuda_header("hashgrid"), cuda_src=src,
                           data={"n_active": float(n_active)})

    def grad(self, dout):
        x, table = self.x, self.table
        n_features = table.shape[2]
        need_dx = self.need_dx
        src = _BACKWARD_SRC.format(
            ctype=_ctype(table), F=n_features, need_dx="true" if need_dx else "false",
            dx_comment=", out1 dx [N,3] f32" if need_dx else "",
            dx_memset="cudaMemsetAsync(out1_p, 0, sizeof(float) * (size_t)out1->num, 0);" if need_dx else "",
            dx_ptr="out1_p" if need_dx else "nullptr")
        shapes = [table.shape] + ([x.shape] if need_dx else [])
        dtypes = ["float32"] * len(shapes)
        with kernel_scope():
            outs = jt.code(shapes, dtypes, [x, table, self.scales_var, dout.float32()],
                           cuda_header=cuda_header("hashgrid"), cuda_src=src,
                           data={"n_active": float(self.n_active)})
        grad_table = outs[0]
        if str(table.dtype) == "float16":
            grad_table = grad_table.float16()  # accumulated in fp32, cast once
        grad_x = outs[1] if need_dx else None
        return grad_x, grad_table, None, None


def hash_encode_cuda(x, table, scales, n_active):
    """Encode x [N,3] float32 in [0,1] (clamped) with table [L,T,F] float32|float16 at the L per-level ``scales``;
    levels >= n_active give 0 and no gradient. Returns [N, L*F] float32, level-major. Gradients: table, x."""
    scales, n_active = check_hash_encode_args(x, table, scales, n_active)
    if x.dtype != jt.float32:
        x = x.float32()
    if x.shape[0] == 0 or n_active == 0:
        # Nothing to launch; zeros keep the output's shape (and no gradient reaches the table, as in the reference).
        return jt.zeros((x.shape[0], table.shape[0] * table.shape[2]), dtype="float32")
    return HashEncodeFunction.apply(x, table, _scales_var(scales), n_active)


_STENCIL_FORWARD_SRC = """
    // in0 x [N,3] f32, in1 table [L,T,F], in2 scales [L] f32 -> out0 [KN, L*F] f32 (row k*N + n)
    const uint32_t n_points = in0_shape0, n_levels = in1_shape0, table_size = in1_shape1;
    if (n_points > 0 && n_levels > 0) {{
        dim3 grid(jnerf::n_blocks(n_points), n_levels);
        jnerf::{kernel}<<<grid, jnerf::kThreads>>>(
            in0_p, reinterpret_cast<const {ctype}*>(in1_p), in2_p, out0_p,
            n_points, n_levels, table_size, (uint32_t)data["n_active"], (float)data["h"]);
    }}
"""

_STENCIL_BACKWARD_SRC = """
    // in0 x [N,3] f32, in1 table [L,T,F] (shape only), in2 scales [L] f32, in3 dout [KN, L*F] f32
    // -> out0 grad_table [L,T,F] f32
    const uint32_t n_points = in0_shape0, n_levels = in1_shape0, table_size = in1_shape1;
    cudaMemsetAsync(out0_p, 0, sizeof(float) * (size_t)out0->num, 0);
    if (n_points > 0 && n_levels > 0) {{
        dim3 grid(jnerf::n_blocks(n_points), n_levels);
        jnerf::{kernel}<<<grid, jnerf::kThreads>>>(
            in0_p, in2_p, in3_p, out0_p, n_points, n_levels, table_size, (uint32_t)data["n_active"],
            (float)data["h"]);
    }}
"""

# Kernel templates per stencil (forward, backward); {ctype} and {F} filled per call.
_STENCIL_KERNELS = {
    "central": ("hash_encode_stencil_forward_kernel<{ctype}, {F}>", "hash_encode_stencil_backward_kernel<{F}>"),
    "tetrahedral": ("hash_encode_offsets_forward_kernel<{ctype}, {F}, jnerf::TetrahedralStencil>",
                    "hash_encode_offsets_backward_kernel<{F}, jnerf::TetrahedralStencil>"),
}


class HashEncodeStencilFunction(jt.Function):
    """x [N,3] f32 (no grad), table [L,T,F] f32|f16, scales_var [L] f32 (no grad), n_active int, h float,
    stencil name -> [KN, L*F] f32. Gradient: the table only."""

    def execute(self, x, table, scales_var, n_active, h, stencil):
        self.x, self.table, self.scales_var, self.n_active, self.h = x, table, scales_var, n_active, h
        self.stencil = stencil
        n_levels, _, n_features = table.shape
        ctype = _ctype(table)
        kernel = _STENCIL_KERNELS[stencil][0].format(ctype=ctype, F=n_features)
        src = _STENCIL_FORWARD_SRC.format(kernel=kernel, ctype=ctype)
        n_rows = len(check_stencil(stencil)) * x.shape[0]
        with kernel_scope():
            return jt.code((n_rows, n_levels * n_features), "float32", [x, table, scales_var],
                           cuda_header=cuda_header("hashgrid"), cuda_src=src,
                           data={"n_active": float(n_active), "h": h})

    def grad(self, dout):
        table = self.table
        kernel = _STENCIL_KERNELS[self.stencil][1].format(F=table.shape[2])
        src = _STENCIL_BACKWARD_SRC.format(kernel=kernel)
        with kernel_scope():
            grad_table = jt.code(table.shape, "float32", [self.x, table, self.scales_var, dout.float32()],
                                 cuda_header=cuda_header("hashgrid"), cuda_src=src,
                                 data={"n_active": float(self.n_active), "h": self.h})
        if str(table.dtype) == "float16":
            grad_table = grad_table.float16()
        return None, grad_table, None, None, None, None


def hash_encode_stencil_cuda(x, table, scales, n_active, h, stencil="central"):
    """The stencil of x [N,3] with step h (STENCILS[stencil], K points), encoded: [KN, L*F] float32, row k*N + n
    (as ``hash_encode_stencil_reference``). When x needs a gradient, the plain kernels run on the KN points
    instead (the fused backward scatters to the table only)."""
    scales, n_active = check_hash_encode_args(x, table, scales, n_active)
    h = check_stencil_step(h, scales, n_active)
    n_rows = len(check_stencil(stencil)) * x.shape[0]
    if x.dtype != jt.float32:
        x = x.float32()
    if not x.is_stop_grad():
        return hash_encode_cuda(stencil_points(x, h, stencil), table, scales, n_active)
    if x.shape[0] == 0 or n_active == 0:
        return jt.zeros((n_rows, table.shape[0] * table.shape[2]), dtype="float32")
    return HashEncodeStencilFunction.apply(x, table, _scales_var(scales), n_active, h, stencil)
