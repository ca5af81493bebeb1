"""Tests of the hash encoding op and the encoders against naive numpy implementations and analytic references."""
import math

import numpy as np
import pytest

import jnerf  # noqa: F401  (prepares Jittor's environment before jittor loads)
import jittor as jt

from jnerf.ops.hashgrid import STENCILS, hash_encode, hash_encode_stencil, level_resolutions
from jnerf.models.encoders.hash_grid import HashGridEncoder
from jnerf.models.encoders.sh import SHEncoder
from jnerf.utils.registry import ENCODERS, build_from_cfg

# Small grid shared by the op tests so Jittor compiles each graph once: levels 0-1 are dense (res^3 <= T),
# levels 2-3 hashed.
N_LEVELS, LOG2_T, N_FEATURES = 4, 12, 2
SCALES = (np.float32(6.0) * np.float32(2.3) ** np.arange(N_LEVELS)).astype(np.float32) - np.float32(1)
# pos = x*scale + 0.5 may be rounded once (fused multiply-add) or twice: one float32 ulp of pos moves a weight by
# that much, times table differences of up to 2 here.
VALUE_ATOL = 4 * float(SCALES.max()) * np.finfo(np.float32).eps


def naive_hash_encode(x, table, scales, n_active):
    """Straight loop-per-level numpy version of docs/design.md's maths, uint32 hash; float64 accumulation."""
    n_levels, table_size, n_features = table.shape
    x = np.clip(x.astype(np.float32), 0, 1)
    out = np.zeros((x.shape[0], n_levels * n_features))
    for level in range(n_active):
        scale = np.float32(scales[level])
        res = int(math.ceil(scale)) + 1
        pos = x * scale + np.float32(0.5)
        p0 = np.floor(pos).astype(np.int64)
        frac = (pos - p0).astype(np.float64)
        for corner in range(8):
            c = np.array([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1])
            v = (p0 + c).astype(np.uint32)
            weight = np.prod(np.where(c == 1, frac, 1 - frac), axis=1)
            if res ** 3 <= table_size:
                idx = (v[:, 0].astype(np.int64) + v[:, 1] * res + v[:, 2] * res * res) % table_size
            else:
                h = v[:, 0] * np.uint32(1) ^ v[:, 1] * np.uint32(2654435761) ^ v[:, 2] * np.uint32(805459861)
                idx = h.astype(np.int64) % table_size
            out[:, level * n_features:(level + 1) * n_features] += weight[:, None] * table[level, idx]
    return out


def random_inputs(n=500, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.05, 1.05, (n, 3)).astype(np.float32)  # a few outside the box exercise the clamp
    table = rng.uniform(-1, 1, (N_LEVELS, 2 ** LOG2_T, N_FEATURES)).astype(dtype)
    return x, table


def test_levels_cover_dense_and_hashed():
    res = level_resolutions(SCALES)
    dense = [r ** 3 <= 2 ** LOG2_T for r in res]
    assert dense[0] and not dense[-1]


@pytest.mark.parametrize("n_active", [N_LEVELS, 2])
def test_hash_encode_values_match_numpy(n_active):
    x, table = random_inputs()
    out = hash_encode(jt.array(x), jt.array(table), SCALES, n_active).numpy()
    assert out.shape == (x.shape[0], N_LEVELS * N_FEATURES) and out.dtype == np.float32
    np.testing.assert_allclose(out, naive_hash_encode(x, table, SCALES, n_active), atol=VALUE_ATOL)
    assert np.all(out[:, n_active * N_FEATURES:] == 0)


def test_hash_encode_fp16_table_accumulates_in_fp32():
    x, table = random_inputs(dtype=np.float16)
    table_var = jt.array(table)
    out = hash_encode(jt.array(x), table_var, SCALES, N_LEVELS)
    assert out.dtype == "float32"
    np.testing.assert_allclose(out.numpy(), naive_hash_encode(x, table.astype(np.float32), SCALES, N_LEVELS),
                               atol=VALUE_ATOL)
    grad16 = jt.grad(out.sum(), table_var)
    assert grad16.dtype == "float16"
    table32 = jt.array(table.astype(np.float32))
    grad32 = jt.grad(hash_encode(jt.array(x), table32, SCALES, N_LEVELS).sum(), table32).numpy()
    np.testing.assert_allclose(grad16.numpy().astype(np.float32), grad32, rtol=2e-3, atol=2e-3)


def test_hash_encode_dispatches_on_use_cuda_at_call_time(monkeypatch):
    import sys
    import types
    import jnerf.ops as ops
    import jnerf.ops.hashgrid as hashgrid_ops
    calls = []

    class FakeJittor:
        class flags:
            use_cuda = 1

    monkeypatch.setattr(ops, "jt", FakeJittor)
    kernel = types.SimpleNamespace(hash_encode_cuda=lambda *args: calls.append(args) or "cuda")
    monkeypatch.setitem(sys.modules, "jnerf.ops.hashgrid.hashgrid", kernel)
    assert hashgrid_ops.hash_encode("x", "table", "scales", 1) == "cuda" and len(calls) == 1
    monkeypatch.setitem(sys.modules, "jnerf.ops.hashgrid.hashgrid", None)  # kernel not importable: reference
    x, table = random_inputs(n=8)
    np.testing.assert_allclose(hashgrid_ops.hash_encode(jt.array(x), jt.array(table), SCALES, 2).numpy(),
                               naive_hash_encode(x, table, SCALES, 2), atol=VALUE_ATOL)


def test_hash_encode_table_gradient_is_the_transposed_interpolation():
    x, table = random_inputs(n=300, seed=1)
    n_active = 3
    rng = np.random.default_rng(2)
    upstream = rng.normal(size=(x.shape[0], N_LEVELS * N_FEATURES))
    table_var = jt.array(table)
    out = hash_encode(jt.array(x), table_var, SCALES, n_active)
    grad = jt.grad((out * jt.array(upstream.astype(np.float32))).sum(), table_var).numpy()
    # The encoding is linear in the table, so its gradient is the sum over points of upstream * d(out)/d(entry):
    # probe every entry's coefficient by encoding one-hot tables level by level would be slow; instead compare
    # the directional derivative along random table directions, which is exact for a linear map.
    for k in range(3):
        direction = rng.normal(size=table.shape)
        expected = np.sum(upstream * naive_hash_encode(x, direction, SCALES, n_active))
        np.testing.assert_allclose(np.sum(grad * direction), expected, rtol=1e-4)
    assert np.all(grad[n_active:] == 0)


def test_hash_encode_x_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    x = rng.uniform(0.05, 0.95, (200, 3)).astype(np.float32)
    _, table = random_inputs(seed=4)
    upstream = rng.normal(size=(x.shape[0], N_LEVELS * N_FEATURES))
    x_var = jt.array(x)
    out = hash_encode(x_var, jt.array(table), SCALES, N_LEVELS)
    grad = jt.grad((out * jt.array(upstream.astype(np.float32))).sum(), x_var).numpy()
    # Central differences in float64 on the naive version; points closer than h to a cell face of any level
    # straddle a kink of the piecewise-trilinear map, so they are excluded.
    h = 1e-5
    dist_to_face = np.min([np.abs((x * s + 0.5) - np.round(x * s + 0.5)) / s for s in SCALES], axis=0)
    for axis in range(3):
        step = np.zeros(3)
        step[axis] = h
        plus = np.sum(upstream * naive_hash_encode((x + step).astype(np.float64), table, SCALES, N_LEVELS), 1)
        minus = np.sum(upstream * naive_hash_encode((x - step).astype(np.float64), table, SCALES, N_LEVELS), 1)
        fd = (plus - minus) / (2 * h)
        smooth = dist_to_face[:, axis] > 2 * h
        assert smooth.sum() > 150
        np.testing.assert_allclose(grad[smooth, axis], fd[smooth], rtol=2e-3, atol=2e-3 * np.abs(fd).max())


def test_hash_encode_rejects_bad_arguments():
    x, table = random_inputs(n=4)
    with pytest.raises(ValueError, match="x must"):
        hash_encode(jt.array(x[:, :2]), jt.array(table), SCALES, 1)
    with pytest.raises(ValueError, match="scales"):
        hash_encode(jt.array(x), jt.array(table), SCALES[:2], 1)
    with pytest.raises(ValueError, match="n_active"):
        hash_encode(jt.array(x), jt.array(table), SCALES, N_LEVELS + 1)


@pytest.mark.parametrize("n_active,stencil,sign", [(N_LEVELS, "central", 1), (2, "central", 1),
                                                   (N_LEVELS, "tetrahedral", 1), (2, "tetrahedral", -1)])
def test_stencil_encoding_is_the_encoding_of_its_points(n_active, stencil, sign):
    """Row k*N + n of the stencil encoding is the encoding of x[n] + h*STENCILS[stencil][k], |h| one
    finest-active cell (a negative h mirrors the stencil)."""
    x, table = random_inputs(n=300, seed=3)
    h = np.float32(sign / SCALES[n_active - 1])
    out = hash_encode_stencil(jt.array(x), jt.array(table), SCALES, n_active, h, stencil).numpy()
    steps = STENCILS[stencil]
    assert len(steps) == (7 if stencil == "central" else 5) and np.all(steps.sum(axis=0) == 0)
    points = (x[None] + steps[:, None] * h).reshape(-1, 3)  # the same float32 sums, entry-major
    assert out.shape == (len(steps) * len(x), N_LEVELS * N_FEATURES)
    np.testing.assert_allclose(out, naive_hash_encode(points, table, SCALES, n_active), atol=VALUE_ATOL)


def test_stencil_step_beyond_one_cell_is_refused():
    x, table = random_inputs(n=4)
    finest = 1.0 / float(SCALES[1])
    for bad in (0.0, -1.5 * finest, 1.5 * finest):
        with pytest.raises(ValueError, match="step h. must be in"):
            hash_encode_stencil(jt.array(x), jt.array(table), SCALES, 2, bad)


def test_hash_grid_encoder_levels_and_mask():
    enc = build_from_cfg(dict(type="HashGridEncoder", n_levels=N_LEVELS, n_features_per_level=N_FEATURES,
                              log2_hashmap_size=LOG2_T, base_resolution=8, finest_resolution=64, start_level=2),
                         ENCODERS)
    b = (64 / 8) ** (1 / (N_LEVELS - 1))
    np.testing.assert_allclose(enc.scales, 8 * b ** np.arange(N_LEVELS) - 1, rtol=1e-6)
    assert enc.per_level_scale == pytest.approx(b)
    assert enc.out_dim == N_LEVELS * N_FEATURES and enc.n_active == 2
    assert enc.cell_size(3) == pytest.approx(1 / (64 - 1), rel=1e-6)
    table = enc.table.numpy()
    assert table.shape == (N_LEVELS, 2 ** LOG2_T, N_FEATURES) and np.abs(table).max() <= 1e-4
    assert np.abs(table).max() > 5e-5  # uniform over the whole range, not a tiny constant
    x, _ = random_inputs(n=50)
    enc.set_active_levels(3)
    out = enc(jt.array(x)).numpy()
    np.testing.assert_allclose(out, naive_hash_encode(x, table, enc.scales, 3), atol=1e-9)
    with pytest.raises(ValueError, match="active levels"):
        enc.set_active_levels(N_LEVELS + 1)


def test_hash_grid_encoder_options():
    enc = HashGridEncoder(n_levels=3, base_resolution=4, per_level_scale=2.0, log2_hashmap_size=8,
                          start_level=3, dtype="float16")
    np.testing.assert_allclose(enc.scales, [3, 7, 15])
    assert enc.table.dtype == "float16"
    with pytest.raises(ValueError, match="dtype"):
        HashGridEncoder(dtype="float64")
    with pytest.raises(ValueError, match="finest_resolution"):
        HashGridEncoder(base_resolution=32, finest_resolution=16)


def _sphere_directions(n_polar, n_azimuth):
    """Gauss-Legendre in cos(polar) x uniform azimuth: exact quadrature for band-limited products."""
    cos_polar, w_polar = np.polynomial.legendre.leggauss(n_polar)
    azimuth = (np.arange(n_azimuth) + 0.5) * 2 * np.pi / n_azimuth
    c, a = np.meshgrid(cos_polar, azimuth, indexing="ij")
    s = np.sqrt(1 - c ** 2)
    dirs = np.stack([s * np.cos(a), s * np.sin(a), c], -1).reshape(-1, 3)
    weights = (w_polar[:, None] * np.full(n_azimuth, 2 * np.pi / n_azimuth)).reshape(-1)
    return dirs.astype(np.float32), weights, np.arccos(c).reshape(-1), a.reshape(-1)


def test_sh_encoder_matches_scipy_and_is_orthonormal():
    from scipy.special import sph_harm_y
    enc = SHEncoder(degree=4)
    dirs, weights, polar, azimuth = _sphere_directions(8, 16)
    out = enc(jt.array(dirs)).numpy().astype(np.float64)
    assert out.shape == (dirs.shape[0], 16)
    expected = []
    for l in range(4):
        for m in range(-l, l + 1):
            y = sph_harm_y(l, abs(m), polar, azimuth)
            expected.append(y.real if m == 0 else math.sqrt(2) * (y.real if m > 0 else y.imag))
    np.testing.assert_allclose(out, np.stack(expected, 1), atol=2e-6)
    gram = (out * weights[:, None]).T @ out
    np.testing.assert_allclose(gram, np.eye(16), atol=1e-5)
    # tcnn's sign convention for band 1: (-0.4886 y, 0.4886 z, -0.4886 x)
    np.testing.assert_allclose(out[:, 1:4], 0.48860251 * dirs[:, [1, 2, 0]] * [-1, 1, -1], atol=1e-6)


@pytest.mark.parametrize("degree", [1, 2, 3, 5, 8])
def test_sh_encoder_every_degree_matches_scipy(degree):
    """The monomial form at every supported degree (up to x^7 terms at degree 8) against scipy, in float32."""
    from scipy.special import sph_harm_y
    dirs, _, polar, azimuth = _sphere_directions(9, 17)
    out = SHEncoder(degree=degree)(jt.array(dirs)).numpy().astype(np.float64)
    expected = []
    for l in range(degree):
        for m in range(-l, l + 1):
            y = sph_harm_y(l, abs(m), polar, azimuth)
            expected.append(y.real if m == 0 else math.sqrt(2) * (y.real if m > 0 else y.imag))
    np.testing.assert_allclose(out, np.stack(expected, 1), atol=2e-5)
