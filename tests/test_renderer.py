"""Volume rendering ops, NeuS alpha and the NeuS renderer against numpy loops and an analytic sphere SDF."""
import jnerf  # noqa: F401  (prepares Jittor's environment before jittor is imported)
import jittor as jt
import numpy as np
import pytest

from jnerf.ops.volume_render import accumulate, render_weights


def _packed_from_counts(counts):
    """ray_indices [S] int32 and packed_info [R,2] int32 for rays with the given sample counts."""
    counts = np.asarray(counts, dtype=np.int32)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
    ray_indices = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    return ray_indices, np.stack([first, counts], axis=1).astype(np.int32)


def _weights_loop(alpha, counts):
    out, s = np.zeros_like(alpha, dtype=np.float64), 0
    for c in counts:
        transmittance = 1.0
        for i in range(s, s + c):
            out[i] = alpha[i] * transmittance
            transmittance *= 1.0 - alpha[i]
        s += c
    return out


# rays with zero samples at the start, in the middle and at the end
COUNTS = [0, 3, 1, 0, 5, 2, 0]


@pytest.fixture(scope="module")
def packed():
    rng = np.random.default_rng(0)
    ray_indices, packed_info = _packed_from_counts(COUNTS)
    alpha = rng.uniform(0.05, 0.9, size=len(ray_indices)).astype(np.float32)
    values = rng.normal(size=(len(ray_indices), 3)).astype(np.float32)
    return ray_indices, packed_info, alpha, values


def test_render_weights_match_loop(packed):
    ray_indices, packed_info, alpha, _ = packed
    w = render_weights(jt.array(alpha), jt.array(packed_info), jt.array(ray_indices)).numpy()
    np.testing.assert_allclose(w, _weights_loop(alpha, COUNTS), rtol=1e-5, atol=1e-7)


def test_render_weights_gradient_by_finite_differences(packed):
    ray_indices, packed_info, alpha, values = packed
    cot = values[:, 0].astype(np.float64)            # a random cotangent so every weight matters
    a = jt.array(alpha)
    loss = (render_weights(a, jt.array(packed_info), jt.array(ray_indices)) * jt.array(values[:, 0])).sum()
    grad = jt.grad(loss, a).numpy()
    eps, a64 = 1e-6, alpha.astype(np.float64)
    fd = np.zeros_like(a64)
    for i in range(len(a64)):
        up, down = a64.copy(), a64.copy()
        up[i] += eps
        down[i] -= eps
        fd[i] = ((_weights_loop(up, COUNTS) - _weights_loop(down, COUNTS)) @ cot) / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-5)


def test_render_weights_stable_after_many_samples():
    """A ray after a million opaque-ish samples still gets its own transmittance, not the global sum's rounding."""
    counts = [1_000_000, 4]
    ray_indices, packed_info = _packed_from_counts(counts)
    alpha = np.full(sum(counts), 0.3, dtype=np.float32)
    w = render_weights(jt.array(alpha), jt.array(packed_info), jt.array(ray_indices)).numpy()
    np.testing.assert_allclose(w[-4:], 0.3 * 0.7 ** np.arange(4), rtol=1e-6)


def test_accumulate_values_and_opacity(packed):
    ray_indices, packed_info, alpha, values = packed
    weights, ri = jt.array(alpha), jt.array(ray_indices)
    n_rays = len(COUNTS)
    expect = np.zeros((n_rays, 3))
    np.add.at(expect, ray_indices, alpha[:, None] * values)
    np.testing.assert_allclose(accumulate(weights, jt.array(values), ri, n_rays).numpy(), expect, atol=1e-6)
    opacity = accumulate(weights, None, ri, n_rays).numpy()
    assert opacity.shape == (n_rays, 1)
    np.testing.assert_allclose(opacity[:, 0], np.bincount(ray_indices, alpha, n_rays), atol=1e-6)


def test_accumulate_gradients(packed):
    ray_indices, _, alpha, values = packed
    n_rays = len(COUNTS)
    cot = np.random.default_rng(1).normal(size=(n_rays, 3)).astype(np.float32)
    w, v = jt.array(alpha), jt.array(values)
    loss = (accumulate(w, v, jt.array(ray_indices), n_rays) * jt.array(cot)).sum()
    gw, gv = jt.grad(loss, [w, v])
    # d/dw_i = <values_i, cot[ray_i]>, d/dv_i = w_i * cot[ray_i]: linear, so exact
    np.testing.assert_allclose(gw.numpy(), (values * cot[ray_indices]).sum(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gv.numpy(), alpha[:, None] * cot[ray_indices], rtol=1e-5, atol=1e-6)


def test_empty_samples():
    ri = jt.zeros((0,), dtype=jt.int32)
    info = jt.zeros((4, 2), dtype=jt.int32)
    w = render_weights(jt.zeros((0,)), info, ri)
    assert w.shape == [0] or tuple(w.shape) == (0,)
    assert np.all(accumulate(w, None, ri, 4).numpy() == 0)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="alpha"):
        render_weights(jt.zeros((3, 1)), jt.zeros((1, 2), dtype=jt.int32), jt.zeros((3,), dtype=jt.int32))
    with pytest.raises(ValueError, match="values"):
        accumulate(jt.zeros((3,)), jt.zeros((2, 3)), jt.zeros((3,), dtype=jt.int32), 1)
