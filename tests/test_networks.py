"""Tests of the MLP, the SDF network (sphere init, numerical gradient/Laplacian, level schedule), the colour and
variance networks and the Instant-NeuS container, against numpy forward passes and analytic functions."""
import math

import numpy as np
import pytest

import jnerf  # noqa: F401  (prepares Jittor's environment before jittor loads)
import jittor as jt

from jnerf.models.encoders.sh import SHEncoder
from jnerf.models.networks.mlp import MLP
from jnerf.models.networks.sdf_network import SDFNetwork
from jnerf.models.networks.color_network import ColorNetwork
from jnerf.models.networks.variance_network import VarianceNetwork
from jnerf.models.networks.instant_neus import InstantNeuS
from jnerf.utils.registry import NETWORKS, ConfigKeyError, build_from_cfg

BBOX_MIN, BBOX_MAX = [-1.0, -0.5, -1.0], [1.0, 1.0, 0.8]  # cube centre (0, 0.25, -0.1), half size 1
CENTER, HALF = np.array([0.0, 0.25, -0.1]), 1.0
# All three levels dense (res^3 <= 2^15): scales 7, 15, 31.
ENCODING = dict(type="HashGridEncoder", n_levels=3, n_features_per_level=2, log2_hashmap_size=15,
                base_resolution=8, finest_resolution=32, start_level=2)


def numpy_mlp(mlp, x):
    """Forward pass of ``mlp`` in float64 numpy."""
    acts = {"relu": lambda z: np.maximum(z, 0), "none": lambda z: z,
            "softplus": lambda z: np.logaddexp(0, mlp.softplus_beta * z) / mlp.softplus_beta}
    layers = list(mlp.linears)
    for i, linear in enumerate(layers):
        x = x @ linear.weight.numpy().T.astype(np.float64) + linear.bias.numpy()
        if i < len(layers) - 1:
            x = acts[mlp.activation](x)
    return 1 / (1 + np.exp(-x)) if mlp.output_activation_name == "sigmoid" else x


@pytest.mark.parametrize("activation,output_activation", [("softplus", "none"), ("relu", "sigmoid")])
def test_mlp_matches_numpy(activation, output_activation):
    mlp = MLP(5, 4, hidden_dim=16, n_hidden_layers=2, activation=activation, softplus_beta=100,
              output_activation=output_activation)
    assert list(mlp.state_dict().keys()) == [f"linears.{i}.{p}" for i in range(3) for p in ("weight", "bias")]
    x = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    np.testing.assert_allclose(mlp(jt.array(x)).numpy(), numpy_mlp(mlp, x), rtol=1e-4, atol=1e-5)


def test_mlp_softplus_is_stable_and_rejects_bad_options():
    mlp = MLP(1, 1, hidden_dim=1, activation="softplus", softplus_beta=100)
    z = jt.array(np.array([[-1e3], [0.0], [1e3]], np.float32))
    out = mlp.hidden_activation(z).numpy()[:, 0]
    np.testing.assert_allclose(out, [0.0, math.log(2) / 100, 1e3], rtol=1e-6)
    with pytest.raises(ValueError, match="activation"):
        MLP(3, 1, activation="tanh")
    with pytest.raises(ValueError, match="input must have shape"):
        mlp(jt.zeros((2, 3)))


def make_sdf_network(**kwargs):
    args = dict(encoding=dict(ENCODING), bbox_min=BBOX_MIN, bbox_max=BBOX_MAX, feature_dim=8,
                sphere_init_radius=0.4, warmup_steps=100, level_steps=50)
    args.update(kwargs)
    return build_from_cfg(dict(type="SDFNetwork", **args), NETWORKS)


@pytest.mark.parametrize("n_hidden_layers", [1, 2])
def test_sdf_network_starts_as_a_sphere(n_hidden_layers):
    jt.set_global_seed(0)
    net = make_sdf_network(n_hidden_layers=n_hidden_layers)
    x = np.random.default_rng(1).uniform(-1, 1, (2000, 3)).astype(np.float32) * HALF + CENTER.astype(np.float32)
    sdf, feature = net(jt.array(x))
    assert sdf.shape == [2000] and feature.shape == [2000, 8]
    dist = np.linalg.norm(x - CENTER, axis=1)
    # softplus rounds the cone |x| at its apex; away from it the surface is a sphere to ~1% of r
    away = dist > 0.25 * HALF
    np.testing.assert_allclose(sdf.numpy()[away], dist[away] - 0.4, atol=0.03 * HALF)


def plant_quadratic(net, level, radius):
    """Make the network compute r * (trilinear interpolation on hash ``level`` of q/r), q = |p - c|^2 - radius^2
    at each vertex p: central differences with a step of exactly one cell of that level are then exact (the
    interpolant shifted by one cell interpolates the shifted vertex values), gradient 2(x-c), Laplacian 6."""
    enc = net.encoding
    table = np.random.default_rng(5).normal(size=enc.table.shape).astype(np.float32)  # masked levels: garbage
    table[:level + 1] = 0
    res, scale = enc.resolutions[level], float(enc.scales[level])
    v = np.stack(np.meshgrid(*[np.arange(res)] * 3, indexing="ij"), -1).reshape(-1, 3)
    p = net.center + net.half_size * (2 * (v - 0.5) / scale - 1)  # vertex positions, normalised frame
    q = np.sum((p - CENTER) ** 2, axis=1) - radius ** 2
    table[level, (v[:, 0] + v[:, 1] * res + v[:, 2] * res * res) % enc.table_size, 0] = q / net.half_size
    enc.table.assign(jt.array(table))
    offset = 5.0  # keeps the hidden unit where softplus(z) == z in float32
    first = np.zeros((net.mlp.hidden_dim, net.mlp.in_dim), np.float32)
    first[0, 3 + level * enc.n_features_per_level] = 1
    hidden_bias = np.zeros(net.mlp.hidden_dim, np.float32)
    hidden_bias[0] = offset
    last = np.zeros((net.mlp.out_dim, net.mlp.hidden_dim), np.float32)
    last[0, 0] = 1
    out_bias = np.zeros(net.mlp.out_dim, np.float32)
    out_bias[0] = -offset
    for linear, w, b in zip(net.mlp.linears, (first, last), (hidden_bias, out_bias)):
        linear.weight.assign(jt.array(w))
        linear.bias.assign(jt.array(b))


@pytest.mark.parametrize("grad_mode,step", [("central", 0), ("tetrahedral", 0), ("tetrahedral", 1)])
def test_sdf_gradient_and_laplacian_are_exact_on_a_planted_quadratic(grad_mode, step):
    """Either stencil (the tetrahedral one also mirrored, as on odd steps) differentiates a quadratic exactly: its
    offset points sit in their cells where the centre sits in its own, so the interpolation error cancels."""
    net = make_sdf_network(grad_mode=grad_mode)
    net.update_step(step)
    assert net.encoding.n_active == 2
    plant_quadratic(net, level=1, radius=0.3)
    x = (np.random.default_rng(2).uniform(-0.8, 0.8, (300, 3)) * HALF + CENTER).astype(np.float32)
    out = net.gradient(jt.array(x), laplacian=True)
    assert net.finite_difference_step() == pytest.approx(2 * HALF / net.encoding.scales[1], rel=1e-6)
    expected_sdf = np.sum((x - CENTER) ** 2, axis=1) - 0.09
    sdf, feature = net(jt.array(x))
    np.testing.assert_allclose(out["sdf"].numpy(), sdf.numpy(), atol=1e-6)
    np.testing.assert_allclose(out["feature"].numpy(), feature.numpy(), atol=1e-6)
    # the interpolant of a quadratic is within h^2 of it; the differences below are exact
    np.testing.assert_allclose(out["sdf"].numpy(), expected_sdf, atol=3 * net.finite_difference_step() ** 2)
    np.testing.assert_allclose(out["gradient"].numpy(), 2 * (x - CENTER), atol=1e-4)
    np.testing.assert_allclose(out["laplacian"].numpy(), 6.0, atol=2e-3)
    assert net.gradient(jt.array(x), laplacian=False)["laplacian"] is None
    # the eikonal and curvature terms reach the hash table, on the planted level only (level 2 is masked)
    loss = ((out["gradient"].norm(dim=1) - 1) ** 2).mean() + out["laplacian"].abs().mean()
    table_grad = np.abs(jt.grad(loss, net.encoding.table).numpy()).sum(axis=(1, 2))
    assert table_grad[1] > 0 and table_grad[0] == 0 and table_grad[2] == 0


def test_level_schedule_and_step_size():
    net = make_sdf_network()  # start 2 of 3 levels, warmup 100, +1 per 50 steps
    assert [net.active_levels_at(s) for s in (0, 99, 100, 149, 150, 10 ** 6)] == [2, 2, 3, 3, 3, 3]
    net.update_step(120)
    assert net.encoding.n_active == 3
    assert net.finite_difference_step() == pytest.approx(2 * HALF / 31, rel=1e-6)
    net.update_step(0)
    assert net.encoding.n_active == 2
    with pytest.raises(ValueError, match="grad_mode"):
        make_sdf_network(grad_mode="forward")
    with pytest.raises(ValueError, match="bbox_max"):
        make_sdf_network(bbox_max=[1.0, -1.0, 1.0])


def test_variance_network():
    var = VarianceNetwork(init_val=0.3, scale=10)
    np.testing.assert_allclose(var.inv_s().numpy(), [math.exp(3.0)], rtol=1e-6)
    grad = jt.grad(var.inv_s().sum(), var.variance).numpy()
    np.testing.assert_allclose(grad, [10 * math.exp(3.0)], rtol=1e-5)
    np.testing.assert_allclose(VarianceNetwork(init_val=5.0, scale=10).inv_s().numpy(), [1e6])


@pytest.mark.parametrize("use_normal", [True, False])
def test_color_network_feeds_feature_sh_and_normal(use_normal):
    net = ColorNetwork(feature_dim=8, hidden_dim=16, use_normal=use_normal)
    rng = np.random.default_rng(3)
    feature = rng.normal(size=(40, 8)).astype(np.float32)
    dirs = rng.normal(size=(40, 3)).astype(np.float32)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    normals = rng.normal(size=(40, 3)).astype(np.float32)
    rgb = net(jt.array(feature), jt.array(dirs), jt.array(normals)).numpy()
    assert rgb.shape == (40, 3) and np.all((rgb > 0) & (rgb < 1))
    inputs = [feature, SHEncoder(4)(jt.array(dirs)).numpy()] + ([normals] if use_normal else [])
    np.testing.assert_allclose(rgb, numpy_mlp(net.mlp, np.concatenate(inputs, 1)), rtol=1e-4, atol=1e-6)


def test_instant_neus_builds_and_schedules():
    model = build_from_cfg(dict(type="InstantNeuS",
                                sdf_network=dict(type="SDFNetwork", encoding=dict(ENCODING), bbox_min=BBOX_MIN,
                                                 bbox_max=BBOX_MAX, feature_dim=8, warmup_steps=10, level_steps=5),
                                color_network=dict(type="ColorNetwork", hidden_dim=16, activation="none"),
                                variance_network=dict(type="VarianceNetwork")), NETWORKS)
    assert model.color_network.feature_dim == 8 and model.post_decoding
    assert model.sdf_network.encoding.n_active == 2
    model.update_step(10)
    assert model.sdf_network.encoding.n_active == 3
    keys = set(model.state_dict().keys())
    assert {"sdf_network.encoding.table", "sdf_network.mlp.linears.0.weight",
            "color_network.mlp.linears.2.bias", "variance_network.variance"} <= keys
    with pytest.raises(ValueError, match="feature_dim"):
        InstantNeuS(model.sdf_network, ColorNetwork(feature_dim=4), VarianceNetwork())


def test_mlp_type_takes_a_name_or_a_config_with_the_mlps_own_arguments():
    from jnerf.models.networks.fully_fused_mlp import FullyFusedMLP
    from jnerf.runner import load_run_config
    import os
    named = ColorNetwork(feature_dim=8, mlp_type="FullyFusedMLP")
    assert isinstance(named.mlp, FullyFusedMLP) and named.mlp.min_fused_rows == 1 << 17
    demo = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "projects", "neus", "configs",
                        "instant_neus_demo.py")
    cfg = load_run_config(demo, ["model.color_network.mlp_type={'type': 'FullyFusedMLP', 'min_fused_rows': 0}"])
    cfg.model.color_network.pop("type")
    net = ColorNetwork(feature_dim=8, **cfg.model.color_network)
    assert isinstance(net.mlp, FullyFusedMLP) and net.mlp.min_fused_rows == 0 and net.mlp.hidden_dim == 64
    with pytest.raises(ConfigKeyError, match="Did you mean 'min_fused_rows'"):
        ColorNetwork(feature_dim=8, mlp_type=dict(type="FullyFusedMLP", min_fused_row=0))


def test_sdf_gradient_hands_the_stencil_encoder_a_detached_x(monkeypatch):
    """The CUDA stencil kernels (shared corners, no d/dx) run only for an x that needs no gradient; Jittor does not
    carry stop_grad to derived vars, so gradient() must detach the encoder's input itself (it did not: training
    ran the plain kernels on the 7N points with d/dx atomics)."""
    net = make_sdf_network()
    seen = []
    encode_stencil = net.encoding.encode_stencil

    def spy(x, h, stencil="central"):
        seen.append(x.is_stop_grad())
        return encode_stencil(x, h, stencil)

    monkeypatch.setattr(net.encoding, "encode_stencil", spy)
    x = jt.array(np.random.default_rng(0).uniform(-0.5, 0.5, (50, 3)).astype(np.float32))
    net.gradient(x)
    net.gradient(x * 1.0)  # a derived, non-detached input too
    assert seen == [True, True]
