"""jnerf.ops.reduce.mean: the two-pass mean (CUDA's path, forced here on the CPU) against numpy's float64 mean,
values and gradient, at sizes below, at and around multiples of its column count."""
import numpy as np
import pytest

import jnerf  # noqa: F401  (prepares Jittor's environment before jittor loads)
import jittor as jt

from jnerf.ops.reduce import COLUMNS, mean


@pytest.mark.parametrize("shape", [(1,), (COLUMNS - 1,), (COLUMNS,), (3 * COLUMNS,), (3 * COLUMNS + 17,), (262147,),
                                   (5003, 3)])
def test_two_pass_mean_matches_numpy(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(1.0, 2.0, size=shape).astype(np.float32)
    values = jt.array(x)
    got = mean(values, two_pass=True)
    assert got.numpy().size == 1 and got.numpy().shape == values.mean().numpy().shape
    np.testing.assert_allclose(got.numpy().item(), x.astype(np.float64).mean(), rtol=1e-5, atol=1e-6)
    grad = jt.grad(got * 3.0, values).numpy()
    np.testing.assert_allclose(grad, np.full(shape, 3.0 / x.size), rtol=1e-6)
    # the default on the CPU is Jittor's own mean, bit for bit
    assert mean(values).numpy().item() == values.mean().numpy().item()
