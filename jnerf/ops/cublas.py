"""Dense products through cuBLAS with its transpose flags, and a linear layer built on them.

Jittor writes a 2-D matmul as a broadcast-multiply-reduce that a graph pass turns into cuBLAS, and differentiates
that pattern op by op. ``linear`` gives the layer its own backward instead: three cuBLAS calls (y = x W^T,
dx = dy W, dW = dy^T x) that read the operands in place, plus the bias sum. On an H200 this took the demo's
training step from 20.8 to 19.8 ms at 2^18 samples (bench/RESULTS.md). Where a cast or a transpose sits between the
operands, the pass does not recognise the pattern at all: the fused MLP's weight gradients (fp16 -> fp32,
transposed) then ran as a naive [p, N, q] reduction, ~4e5 rows/s on an H200. On the CPU these are jt.matmul of
transposed views: the same maths.
"""
import jittor as jt

__all__ = ["matmul", "linear"]


def _cublas_ops():
    return getattr(jt.compile_extern, "cublas_ops", None) if jt.flags.use_cuda else None


def matmul(a, b, trans_a=False, trans_b=False):
    """op(a) @ op(b) for 2-D float32 a, b, where op transposes when asked: e.g. a [N,p], b [N,q], trans_a ->
    a^T @ b [p,q]."""
    ops = _cublas_ops()
    if ops is not None:
        return ops.cublas_matmul(a, b, bool(trans_a), bool(trans_b))
    return jt.matmul(a.transpose() if trans_a else a, b.transpose() if trans_b else b)


class _Linear(jt.Function):
    """x [N,in] @ weight[out,in]^T (+ bias [out]); gradients: dx = dy @ W, dW = dy^T @ x, db = sum_rows dy."""

    def __init__(self, has_bias):
        self.has_bias = has_bias

    def execute(self, x, weight, *bias):
        self.x, self.weight = x, weight
        y = matmul(x, weight, trans_b=True)
        return y + bias[0] if bias else y

    def grad(self, dy):
        x, weight = self.x, self.weight
        self.x = self.weight = None
        dx, dw = matmul(dy, weight), matmul(dy, x, trans_a=True)
        # dy.sum(0) reduces over the outer dimension, which Jittor runs at ~3 TB/s on an H200 (0.16 ms for the SDF
        # MLP's [1.8M, 64]): no faster as a product
        return (dx, dw, dy.sum(0)) if self.has_bias else (dx, dw)


def linear(x, weight, bias=None):
    """nn.Linear's function, y = x @ weight^T + bias, for x [N,in] float32, weight [out,in], bias [out] or None. On
    CUDA through ``_Linear`` (cuBLAS with transpose flags, no transposed copies); on the CPU nn.Linear's own ops, so
    CPU runs keep their numbers."""
    if _cublas_ops() is None or x.ndim != 2 or str(x.dtype) != "float32":
        y = jt.nn.matmul_transpose(x, weight)
        return y + bias if bias is not None else y
    return _Linear(True)(x, weight, bias) if bias is not None else _Linear(False)(x, weight)
