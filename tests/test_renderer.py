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
    w_derived = render_weights(jt.array(alpha), jt.array(packed_info)).numpy()     # ray_indices from packed_info
    np.testing.assert_allclose(w_derived, w)


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


# ---------------------------------------------------------------- NeuS alpha and the renderer

from jnerf.models.renderers.neus_renderer import (NeuSRenderer, cos_anneal_ratio, neus_alpha,  # noqa: E402
                                                safe_normalize)
from jnerf.models.samplers.occupancy_grid import OccupancyGrid  # noqa: E402


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("ratio", [0.0, 0.4, 1.0])
def test_neus_alpha_matches_formula(ratio):
    rng = np.random.default_rng(5)
    n = 64
    sdf = rng.normal(scale=0.05, size=n).astype(np.float32)
    grad = rng.normal(size=(n, 3)).astype(np.float32)
    dirs = rng.normal(size=(n, 3))
    dirs = (dirs / np.linalg.norm(dirs, axis=1, keepdims=True)).astype(np.float32)
    dists = rng.uniform(0.001, 0.05, size=n).astype(np.float32)
    inv_s = 37.0
    cos = (dirs * grad).sum(1)
    iter_cos = -(np.maximum(-cos * 0.5 + 0.5, 0) * (1 - ratio) + np.maximum(-cos, 0) * ratio)
    prev = _sigmoid((sdf - iter_cos * dists / 2) * inv_s)
    nxt = _sigmoid((sdf + iter_cos * dists / 2) * inv_s)
    expect = np.clip((prev - nxt + 1e-5) / (prev + 1e-5), 0, 1)
    got = neus_alpha(jt.array(sdf), jt.array(grad), jt.array(dirs), jt.array(dists), jt.array([inv_s]), ratio)
    np.testing.assert_allclose(got.numpy(), expect, rtol=1e-4, atol=1e-6)


def test_cos_anneal_ratio_and_safe_normalize():
    assert [cos_anneal_ratio(s, 100) for s in (0, 50, 100, 500)] == [0.0, 0.5, 1.0, 1.0]
    assert cos_anneal_ratio(0, 0) == 1.0
    v = np.array([[0, 0, 0], [3, 0, 4], [1e-9, 0, 0]], np.float32)
    fallback = np.eye(3, dtype=np.float32)
    out = safe_normalize(jt.array(v), jt.array(fallback)).numpy()
    np.testing.assert_allclose(out, [[1, 0, 0], [0.6, 0, 0.8], [0, 0, 1]], atol=1e-6)


class _SphereSDF:
    """Analytic stand-in for SDFNetwork: a sphere with exact gradient and Laplacian, constant features."""

    def __init__(self, radius, feature):
        self.radius = radius
        self.feature = feature

    def gradient(self, x, laplacian=True):
        dist = jt.sqrt((x * x).sum(dim=1))
        out = {"sdf": dist - self.radius, "gradient": x / dist.reshape((-1, 1)),
               "feature": jt.array(self.feature).reshape((1, -1)).broadcast((x.shape[0], len(self.feature)))}
        if laplacian:
            out["laplacian"] = 2.0 / dist
        return out


class _ConstantColour:
    """Colour network stand-in: the first three feature channels are the colour (constant features)."""

    def __call__(self, feature, dirs, normals):
        assert feature.shape[0] == dirs.shape[0] == normals.shape[0]
        return feature[:, :3]


class _Variance:
    def __init__(self, inv_s):
        self.log_inv_s = jt.array([np.log(inv_s)], dtype=jt.float32)

    def inv_s(self):
        return jt.exp(self.log_inv_s)


class _SphereModel:
    def __init__(self, post_decoding, inv_s=2000.0):
        self.sdf_network = _SphereSDF(0.5, [0.2, 0.5, 0.8, 0.1])
        self.color_network = _ConstantColour()
        self.variance_network = _Variance(inv_s)
        self.post_decoding = post_decoding


def _camera_rays():
    """Rays from z = -3 along +z: through the centre, off-centre hits (x = 0.3, y = -0.2) and misses (x = 0.8)."""
    offsets = np.array([[0, 0], [0.3, 0], [0, -0.2], [0.8, 0], [0, 0.9], [0.1, 0.1]], np.float32)
    origins = np.concatenate([offsets, np.full((len(offsets), 1), -3.0, np.float32)], axis=1)
    dirs = np.tile(np.array([[0, 0, 1]], np.float32), (len(offsets), 1))
    radial = np.linalg.norm(offsets, axis=1)
    hit = radial < 0.5
    depth = np.where(hit, 3.0 - np.sqrt(np.clip(0.25 - radial ** 2, 0, None)), 0)
    normal = np.concatenate([offsets, -(3.0 - depth)[:, None]], axis=1) / 0.5
    return origins, dirs, hit, depth, normal


def _renderer(post_decoding, background="white"):
    grid = OccupancyGrid((-1, -1, -1), (1, 1, 1), resolution=8)
    return NeuSRenderer(_SphereModel(post_decoding), grid, step_size=0.01, max_steps=512,
                        background=background, anneal_end=100)


@pytest.mark.parametrize("post_decoding", [True, False])
def test_renderer_sphere_surface(post_decoding):
    o, d, hit, depth, normal = _camera_rays()
    out = _renderer(post_decoding).render(jt.array(o), jt.array(d), step=1000, is_training=False)
    opacity = out["opacity"].numpy()[:, 0]
    np.testing.assert_allclose(opacity[hit], 1.0, atol=1e-3)
    assert np.all(opacity[~hit] < 1e-2)
    np.testing.assert_allclose(out["depth"].numpy()[hit, 0], depth[hit], atol=6e-3)
    np.testing.assert_allclose(out["normal"].numpy()[hit], normal[hit], atol=2e-2)
    np.testing.assert_allclose(np.linalg.norm(out["normal"].numpy(), axis=1), 1.0, atol=1e-5)
    colour = np.array([0.2, 0.5, 0.8])
    rgb = out["rgb"].numpy()
    np.testing.assert_allclose(rgb[hit], np.tile(colour, (hit.sum(), 1)), atol=2e-3)
    np.testing.assert_allclose(rgb[~hit], 1.0, atol=1e-2)          # white background shows through
    assert out["n_samples"] == out["weights"].shape[0] == out["gradient"].shape[0]


def test_renderer_training_outputs_and_gradients():
    o, d, hit, _, _ = _camera_rays()
    renderer = _renderer(post_decoding=True, background="random")
    out = renderer.render(jt.array(o), jt.array(d), step=10, is_training=True)
    s = out["n_samples"]
    assert out["gradient"].shape == [s, 3] and out["laplacian"].shape == [s] and out["points"].shape == [s, 3]
    # the stand-in's Laplacian is 2/|x|: check it came through for the samples' points
    np.testing.assert_allclose(out["laplacian"].numpy(), 2.0 / np.linalg.norm(out["points"].numpy(), axis=1),
                               rtol=1e-5)
    bg = out["background"].numpy()
    assert bg.shape == (len(o), 3) and np.all((bg >= 0) & (bg < 1)) and bg.std() > 0
    rgb, opacity = out["rgb"].numpy(), out["opacity"].numpy()
    np.testing.assert_allclose(rgb[~hit], bg[~hit], atol=1e-2)     # misses show their random background
    # per-ray jitter: another training render puts its samples elsewhere along the same rays
    again = renderer.render(jt.array(o), jt.array(d), step=10, is_training=True)
    first_points = out["points"].numpy()[:5]
    assert not np.allclose(first_points, again["points"].numpy()[:5])
    # the loss reaches the variance parameter through the alpha
    variance = renderer.model.variance_network.log_inv_s
    g = jt.grad(out["rgb"].sum() + out["opacity"].sum(), variance).numpy()
    assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0 and np.all(np.isfinite(rgb + opacity))


def test_render_chunked_matches_render_and_handles_no_samples():
    o, d, _, _, _ = _camera_rays()
    renderer = _renderer(post_decoding=False)
    full = renderer.render(jt.array(o), jt.array(d), step=1000, is_training=False)
    chunked = renderer.render_chunked(o, d, chunk=4, step=1000)
    for key in ("rgb", "opacity", "depth", "normal"):
        np.testing.assert_allclose(chunked[key], full[key].numpy(), atol=1e-5)
    renderer.occupancy_grid.occupied = jt.zeros((8 ** 3,), dtype=jt.bool)
    empty = renderer.render(jt.array(o), jt.array(d), step=0, is_training=True)
    assert empty["n_samples"] == 0 and np.all(empty["opacity"].numpy() == 0)
    np.testing.assert_allclose(empty["rgb"].numpy(), 1.0)
    np.testing.assert_allclose(empty["normal"].numpy(), -d)          # facing the camera when nothing was seen


def test_renderer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="background"):
        NeuSRenderer(_SphereModel(True), OccupancyGrid(resolution=2), background="green")
    with pytest.raises(ValueError, match="step_size"):
        NeuSRenderer(_SphereModel(True), OccupancyGrid(resolution=2), step_size=0)


def test_validation_panel_is_labelled_and_readable():
    from jnerf.runner.visualize import MIN_PANEL_HEIGHT, validation_panel
    rng = np.random.default_rng(0)
    h, w = 40, 50
    rgb, gt = rng.random((h, w, 3)), rng.random((h, w, 3))
    normals = rng.normal(size=(h, w, 3))
    depth, opacity = rng.uniform(1, 2, (h, w)), np.ones((h, w))
    panel = validation_panel(rgb, gt, normals, depth, opacity, psnr_db=21.5)
    assert panel.shape[0] >= MIN_PANEL_HEIGHT and panel.shape[1] == 4 * panel.shape[1] // 4
    factor = panel.shape[0] // h
    plain = np.kron(rgb, np.ones((factor, factor, 1)))
    corner = (slice(0, 12), slice(0, 60))               # the label sits in the top-left corner of each tile
    assert np.abs(panel[corner].astype(float) / 255 - plain[corner]).max() > 0.5
    far = (slice(panel.shape[0] - 20, None), slice(0, 60))
    assert np.abs(panel[far].astype(float) / 255 - plain[far]).max() < 0.01
