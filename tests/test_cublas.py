"""jnerf.ops.cublas: the linear layer's own backward (dx = dy W, dW = dy^T x, db = sum dy) against nn.Linear's
autograd, on the CPU (the GPU comparison is in test_cuda_kernels.py)."""
import numpy as np
import pytest

import jnerf  # noqa: F401  (prepares Jittor's environment before jittor is imported)
import jittor as jt
from jnerf.ops.cublas import _Linear, matmul


@pytest.mark.parametrize("has_bias", [True, False])
def test_linear_function_matches_nn_linear(has_bias):
    rng = np.random.default_rng(0)
    x0, w0, b0 = rng.normal(size=(37, 5)), rng.normal(size=(3, 5)), rng.normal(size=(3,))
    upstream = jt.array(rng.normal(size=(37, 3)).astype(np.float32))

    def run(use_function):
        x, w, b = (jt.array(a.astype(np.float32)) for a in (x0, w0, b0))
        if use_function:
            y = _Linear(has_bias)(x, w, b) if has_bias else _Linear(has_bias)(x, w)
        else:
            y = jt.nn.matmul_transpose(x, w) + (b if has_bias else 0)
        grads = jt.grad((y * upstream).sum(), [x, w, b] if has_bias else [x, w])
        return [y.numpy()] + [g.numpy() for g in grads]

    for got, want in zip(run(True), run(False)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_matmul_transpose_flags():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)
    np.testing.assert_allclose(matmul(jt.array(a), jt.array(b), trans_a=True).numpy(), a.T @ b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(matmul(jt.array(b.T), jt.array(a.T), trans_b=True).numpy(), b.T @ a, rtol=1e-5,
                               atol=1e-6)
