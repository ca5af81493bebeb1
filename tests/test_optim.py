"""jnerf's Adam (jnerf.optims.Adam over jnerf.ops.optim) against jittor.nn.Adam and a numpy Adam, on the CPU."""
import numpy as np
import pytest

import jnerf  # noqa: F401  (prepares Jittor's environment before jittor is imported)
import jittor as jt
from jnerf.ops.optim import adam_step_size, adam_update_reference
from jnerf.optims import Adam


def _numpy_adam(p, grads, lr, beta1, beta2, eps, weight_decay=0.0):
    """Adam as jittor.nn.Adam defines it (eps added to sqrt(v) without v's bias correction), in float64."""
    p, m, v = p.astype(np.float64), np.zeros_like(p, np.float64), np.zeros_like(p, np.float64)
    for t, g in enumerate(grads, start=1):
        g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p = p - lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) * m / (np.sqrt(v) + eps)
    return p, m, v


def test_adam_update_reference_matches_numpy_adam():
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(257, 3)).astype(np.float32)
    grads = [rng.normal(size=p0.shape).astype(np.float32) for _ in range(5)]
    p, m, v = jt.array(p0), jt.zeros(p0.shape), jt.zeros(p0.shape)
    for t, g in enumerate(grads, start=1):
        p, m, v = adam_update_reference(p, jt.array(g), m, v, adam_step_size(1e-2, 0.9, 0.99, t), 0.9, 0.99, 1e-15,
                                        weight_decay=0.1)
    want_p, want_m, want_v = _numpy_adam(p0, grads, 1e-2, 0.9, 0.99, 1e-15, weight_decay=0.1)
    np.testing.assert_allclose(m.numpy(), want_m, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(v.numpy(), want_v, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(p.numpy(), want_p, rtol=1e-5, atol=1e-6)


def test_adam_step_size_rejects_step_zero():
    with pytest.raises(ValueError, match="starts at 1"):
        adam_step_size(1e-2, 0.9, 0.99, 0)


def _train(make_optimizer, steps=6):
    """A two-layer regression trained ``steps`` steps from fixed weights; its parameters afterwards."""
    rng = np.random.default_rng(1)
    w1 = jt.array(rng.normal(size=(4, 8)).astype(np.float32))
    w2 = jt.array(rng.normal(size=(8, 1)).astype(np.float32))
    frozen = jt.array(np.ones((1,), np.float32)).stop_grad()
    x = jt.array(rng.normal(size=(32, 4)).astype(np.float32))
    y = jt.array(rng.normal(size=(32, 1)).astype(np.float32))
    opt = make_optimizer([dict(name="first", params=[w1]), dict(name="second", params=[w2, frozen])])
    for _ in range(steps):
        loss = (((jt.nn.relu(x @ w1) @ w2) * frozen - y) ** 2).mean()
        opt.step(loss)
    return w1.numpy(), w2.numpy(), frozen.numpy(), opt


def test_adam_matches_jittor_adam_with_groups():
    """Same parameters as jittor.nn.Adam after several steps, per-group learning rates included."""
    got = _train(lambda groups: Adam(groups, lr=1e-2, betas=(0.9, 0.99), eps=1e-15, group_lr=dict(second=3e-3)))
    want = _train(lambda groups: jt.nn.Adam([dict(groups[0], lr=1e-2), dict(groups[1], lr=3e-3)], 1e-2,
                                            eps=1e-15, betas=(0.9, 0.99)))
    for a, b in zip(got[:3], want[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert got[3].n_step == 6
    np.testing.assert_array_equal(got[2], np.ones((1,), np.float32))  # a frozen parameter stays as it was


def test_adam_step_without_backward_changes_nothing():
    """Gradients are consumed by the step that uses them: a second step() without backward is a no-op."""
    _, w2, _, opt = _train(lambda groups: Adam(groups, lr=1e-2), steps=2)
    opt.step()
    np.testing.assert_array_equal(opt.param_groups[1]["params"][0].numpy(), w2)


def test_two_backward_calls_accumulate_like_one_of_the_summed_loss():
    """backward(a); backward(b); step() == step(a + b), as with jittor.nn.Optimizer's accumulation."""
    def run(split):
        w = jt.array(np.array([[1.0, -2.0], [0.5, 3.0]], np.float32))
        x = jt.array(np.array([[1.0, 2.0], [3.0, -1.0]], np.float32))
        opt = Adam([w], lr=0.1)
        a, b = ((x @ w) ** 2).sum(), (x @ w).abs().sum()
        if split:
            opt.backward(a)
            opt.backward(b)
            opt.step()
        else:
            opt.step(a + b)
        return w.numpy()
    np.testing.assert_allclose(run(True), run(False), rtol=1e-6)
