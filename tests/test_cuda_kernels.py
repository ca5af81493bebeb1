"""CUDA kernels (jnerf/ops/*/<family>.py) against the Jittor-ops references run on the CPU.

Skipped where Jittor has no CUDA or no device is present. Every check draws fresh random inputs, poisons the
allocator with NaN first (Jittor reuses freed blocks of the same size, so an element the kernel forgets to write
shows up as NaN or garbage), uses sizes that are not multiples of the block size, and includes empty rays.
Relative error ||cuda - ref|| / ||ref|| must be < 1e-5 in float32 and < 1e-2 with a float16 table.
"""
import math

import numpy as np
import pytest

import jnerf  # noqa: F401  (prepares Jittor's environment before jittor is imported)
import jittor as jt
from jnerf.dataset.cameras import look_at_c2w
from jnerf.utils.jittor_env import cuda_device_count


def _cuda_available():
    return bool(jt.has_cuda) and cuda_device_count() > 0


pytestmark = pytest.mark.skipif(not _cuda_available(), reason="needs Jittor with CUDA and a CUDA device")

if _cuda_available():  # the kernel modules import only where they can run
    from jnerf.ops.hashgrid.hashgrid import hash_encode_cuda, hash_encode_stencil_cuda
    from jnerf.ops.hashgrid.reference import hash_encode_reference, hash_encode_stencil_reference
    from jnerf.ops.occupancy.occupancy import carve_visual_hull_cuda, ray_march_cuda
    from jnerf.ops.occupancy.reference import carve_visual_hull_reference, ray_march_reference
    from jnerf.ops.volume_render.reference import accumulate_reference, render_weights_reference
    from jnerf.ops.volume_render.volume_render import accumulate_cuda, render_weights_cuda

FP32_TOL, FP16_TOL = 1e-5, 1e-2


def _rel_err(got, ref):
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    assert np.all(np.isfinite(got)), "non-finite values (unwritten output?)"
    denom = np.linalg.norm(ref)
    return float(np.linalg.norm(got - ref) / (denom if denom > 0 else 1.0))


def _poison(*shapes):
    """Allocate NaN-filled blocks of these float32 shapes and free them, so the next outputs reuse poisoned memory."""
    with jt.flag_scope(use_cuda=1):
        blocks = [jt.full(s, float("nan"), dtype="float32") for s in shapes]
        jt.sync(blocks)
    del blocks
    jt.sync_all()


def _cpu(fn, *args):
    with jt.flag_scope(use_cuda=0):
        return fn(*args)


def _gpu(fn, *args):
    with jt.flag_scope(use_cuda=1):
        return fn(*args)


# ------------------------------------------------------------------------------------------------ hashgrid
def _scales(n_levels, base, finest):
    b = math.exp(math.log(finest / base) / (n_levels - 1))
    return [base * b ** l - 1.0 for l in range(n_levels)]


def _hash_case(rng, n_points, n_levels, log2_t, n_features, dtype, n_active, base=16, finest=1024):
    x = rng.uniform(0.0, 1.0, size=(n_points, 3)).astype(np.float32)
    k = min(50, n_points)
    x[:k] = rng.uniform(-0.1, 1.1, size=(k, 3))  # a few outside [0,1]: clamped, no gradient on that axis
    table = rng.uniform(-1.0, 1.0, size=(n_levels, 2 ** log2_t, n_features)).astype(dtype)
    dout = rng.normal(size=(n_points, n_levels * n_features)).astype(np.float32)
    scales = _scales(n_levels, base, finest)

    def run(fn, use_cuda):
        with jt.flag_scope(use_cuda=use_cuda):
            xv, tv, gv = jt.array(x), jt.array(table), jt.array(dout)
            out = fn(xv, tv, scales, n_active)
            gx, gt = jt.grad((out * gv).sum(), [xv, tv])
            return out.numpy(), gx.numpy(), gt.numpy()

    n_out = n_levels * n_features
    _poison((n_points, n_out), (n_points, 3), table.shape)
    got = run(hash_encode_cuda, 1)
    ref = run(hash_encode_reference, 0)
    return got, ref


@pytest.mark.parametrize("n_points,n_active", [(100003, 16), (777, 11), (1, 3)])
def test_hash_encode_fp32(n_points, n_active):
    rng = np.random.default_rng()
    (out, gx, gt), (rout, rgx, rgt) = _hash_case(rng, n_points, 16, 14, 2, np.float32, n_active)
    assert _rel_err(out, rout) < FP32_TOL
    assert np.all(out[:, n_active * 2:] == 0.0), "inactive levels must be zero"
    assert _rel_err(gt, rgt) < FP32_TOL
    assert np.all(gt[n_active:] == 0.0), "inactive levels get no gradient"
    assert _rel_err(gx, rgx) < FP32_TOL


def test_hash_encode_fp32_four_features():
    rng = np.random.default_rng()
    (out, gx, gt), (rout, rgx, rgt) = _hash_case(rng, 5000, 8, 12, 4, np.float32, 8)
    assert _rel_err(out, rout) < FP32_TOL
    assert _rel_err(gt, rgt) < FP32_TOL
    assert _rel_err(gx, rgx) < FP32_TOL


def test_hash_encode_fp16():
    rng = np.random.default_rng()
    (out, gx, gt), (rout, rgx, rgt) = _hash_case(rng, 50001, 16, 14, 2, np.float16, 13)
    assert gt.dtype == np.float16
    assert _rel_err(out, rout) < FP16_TOL
    assert _rel_err(gt, rgt) < FP16_TOL
    assert _rel_err(gx, rgx) < FP16_TOL


def test_hash_encode_no_x_gradient_and_empty():
    rng = np.random.default_rng()
    x = rng.uniform(size=(1000, 3)).astype(np.float32)
    table = rng.uniform(-1, 1, size=(4, 2 ** 10, 2)).astype(np.float32)
    scales = _scales(4, 8, 64)
    with jt.flag_scope(use_cuda=1):
        xv, tv = jt.array(x).stop_grad(), jt.array(table)
        gt = jt.grad(hash_encode_cuda(xv, tv, scales, 4).sum(), tv).numpy()
        empty = hash_encode_cuda(jt.zeros((0, 3)), tv, scales, 4)
        assert tuple(empty.shape) == (0, 8)
    with jt.flag_scope(use_cuda=0):
        xv, tv = jt.array(x), jt.array(table)
        rgt = jt.grad(hash_encode_reference(xv, tv, scales, 4).sum(), tv).numpy()
    assert _rel_err(gt, rgt) < FP32_TOL


@pytest.mark.parametrize("n_points,n_levels,n_features,dtype,n_active,h_cells,stencil", [
    (100003, 16, 2, np.float32, 16, 1.0, "central"),   # h = the finest cell: every offset point changes cell there
    (7777, 16, 2, np.float32, 9, 0.37, "central"),
    (5000, 8, 4, np.float32, 8, 1.0, "central"),
    (50001, 16, 2, np.float16, 13, 1.0, "central"),
    (1, 4, 2, np.float32, 3, 0.5, "central"),
    (100003, 16, 2, np.float32, 16, 1.0, "tetrahedral"),  # moves on all 3 axes: 1 to 8 corners shared
    (7777, 16, 2, np.float32, 9, -0.37, "tetrahedral"),   # mirrored
    (5000, 8, 4, np.float32, 8, -1.0, "tetrahedral"),
    (50001, 16, 2, np.float16, 13, 1.0, "tetrahedral"),
])
def test_hash_encode_stencil(n_points, n_levels, n_features, dtype, n_active, h_cells, stencil):
    """The fused stencil kernels against the reference (the plain encoding of the KN points): values and table
    gradient; points near and beyond the [0,1] faces included."""
    rng = np.random.default_rng()
    k_points = 7 if stencil == "central" else 5
    x = rng.uniform(0.0, 1.0, size=(n_points, 3)).astype(np.float32)
    k = min(60, n_points)
    x[:k] = rng.choice([-0.02, 0.0, 1e-4, 0.9999, 1.0, 1.02], size=(k, 3))
    table = rng.uniform(-1.0, 1.0, size=(n_levels, 2 ** 14, n_features)).astype(dtype)
    dout = rng.normal(size=(k_points * n_points, n_levels * n_features)).astype(np.float32)
    scales = _scales(n_levels, 16, 1024)
    h = h_cells / np.float32(scales[n_active - 1])

    def run(fn, use_cuda):
        with jt.flag_scope(use_cuda=use_cuda):
            xv, tv, gv = jt.array(x).stop_grad(), jt.array(table), jt.array(dout)
            out = fn(xv, tv, scales, n_active, h, stencil)
            return out.numpy(), jt.grad((out * gv).sum(), tv).numpy()

    _poison((k_points * n_points, n_levels * n_features), table.shape)
    out, gt = run(hash_encode_stencil_cuda, 1)
    rout, rgt = run(hash_encode_stencil_reference, 0)
    tol = FP16_TOL if dtype == np.float16 else FP32_TOL
    assert out.shape == (k_points * n_points, n_levels * n_features)
    assert _rel_err(out, rout) < tol
    assert np.all(out[:, n_active * n_features:] == 0.0)
    assert _rel_err(gt, rgt) < tol
    assert np.all(gt[n_active:] == 0.0)


def test_hash_encode_stencil_with_x_gradient_falls_back_to_the_plain_kernels():
    rng = np.random.default_rng()
    x = rng.uniform(size=(3001, 3)).astype(np.float32)
    table = rng.uniform(-1, 1, size=(8, 2 ** 12, 2)).astype(np.float32)
    scales = _scales(8, 16, 256)
    h = 1.0 / np.float32(scales[7])

    def run(fn, use_cuda):
        with jt.flag_scope(use_cuda=use_cuda):
            xv, tv = jt.array(x), jt.array(table)
            out = fn(xv, tv, scales, 8, h)
            gx, gt = jt.grad((out * out).sum(), [xv, tv])
            return out.numpy(), gx.numpy(), gt.numpy()

    for got, ref in zip(run(hash_encode_stencil_cuda, 1), run(hash_encode_stencil_reference, 0)):
        assert _rel_err(got, ref) < FP32_TOL


# ------------------------------------------------------------------------------------------------ volume rendering
def _packed(rng, n_rays, max_count=40, empty_fraction=0.2):
    counts = rng.integers(1, max_count + 1, size=n_rays)
    counts[rng.uniform(size=n_rays) < empty_fraction] = 0
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    packed_info = np.stack([first, counts], axis=1).astype(np.int32)
    ray_indices = np.repeat(np.arange(n_rays), counts).astype(np.int32)
    return packed_info, ray_indices


@pytest.mark.parametrize("n_rays", [3001, 1, 257])
def test_render_weights(n_rays):
    rng = np.random.default_rng()
    packed_info, ray_indices = _packed(rng, n_rays)
    n = len(ray_indices)
    alpha = rng.uniform(0.0, 0.99, size=n).astype(np.float32)
    alpha[rng.uniform(size=n) < 0.02] = 1.0  # opaque samples: clamp path
    g = rng.normal(size=n).astype(np.float32)

    def run(fn, use_cuda):
        with jt.flag_scope(use_cuda=use_cuda):
            a = jt.array(alpha)
            w = fn(a, jt.array(packed_info), jt.array(ray_indices))
            (ga,) = jt.grad((w * jt.array(g)).sum(), [a])
            return w.numpy(), ga.numpy()

    _poison((n,), (n,))
    w, ga = run(render_weights_cuda, 1)
    rw, rga = run(render_weights_reference, 0)
    assert _rel_err(w, rw) < FP32_TOL
    assert _rel_err(ga, rga) < FP32_TOL


@pytest.mark.parametrize("n_channels", [None, 1, 3, 7])
def test_accumulate(n_channels):
    rng = np.random.default_rng()
    n_rays = 2049
    packed_info, ray_indices = _packed(rng, n_rays)
    n = len(ray_indices)
    w = rng.uniform(size=n).astype(np.float32)
    vals = None if n_channels is None else rng.normal(size=(n, n_channels)).astype(np.float32)
    c = 1 if n_channels is None else n_channels
    g = rng.normal(size=(n_rays, c)).astype(np.float32)

    def run(fn, use_cuda):
        with jt.flag_scope(use_cuda=use_cuda):
            wv = jt.array(w)
            vv = None if vals is None else jt.array(vals)
            out = fn(wv, vv, jt.array(ray_indices), n_rays)
            grads = jt.grad((out * jt.array(g)).sum(), [wv] + ([] if vv is None else [vv]))
            return [out.numpy()] + [x.numpy() for x in grads]

    _poison((n_rays, c), (n,), (n, c))
    got = run(accumulate_cuda, 1)
    ref = run(accumulate_reference, 0)
    for a, b in zip(got, ref):
        assert _rel_err(a, b) < FP32_TOL
    assert np.all(got[0][packed_info[:, 1] == 0] == 0.0), "rays without samples must be 0"


def test_volume_render_empty():
    with jt.flag_scope(use_cuda=1):
        pi = jt.zeros((5, 2), dtype="int32")
        e = jt.zeros((0,), dtype="float32")
        ei = jt.zeros((0,), dtype="int32")
        assert tuple(render_weights_cuda(e, pi, ei).shape) == (0,)
        out = accumulate_cuda(e, None, ei, 5).numpy()
        assert out.shape == (5, 1) and np.all(out == 0)


# ------------------------------------------------------------------------------------------------ occupancy
BOX_MIN, BOX_MAX = np.array([-1.0, -0.8, -0.6], np.float32), np.array([1.0, 0.8, 0.6], np.float32)


def _random_rays(rng, n):
    origins = rng.uniform(-2.5, 2.5, size=(n, 3))
    origins[: n // 4] = rng.uniform(-0.5, 0.5, size=(n // 4, 3))
    dirs = rng.uniform(-0.7, 0.7, size=(n, 3)) - origins
    dirs[n // 2: n // 2 + n // 8] = rng.normal(size=(n // 8, 3))  # some miss the box
    dirs[n - 3:, 1] = 0.0  # axis-parallel in y: the slab test's tiny-direction path
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return origins.astype(np.float32), dirs.astype(np.float32)


@pytest.mark.parametrize("use_jitter,near_min", [(True, 0.0), (False, 0.3)])
def test_ray_march(use_jitter, near_min):
    rng = np.random.default_rng()
    res, n_rays = 32, 4099
    o, d = _random_rays(rng, n_rays)
    occ = rng.uniform(size=res ** 3) < 0.4
    jit = rng.uniform(size=n_rays).astype(np.float32) if use_jitter else None
    args = (res, 0.013, 300)

    def run(fn, use_cuda):
        with jt.flag_scope(use_cuda=use_cuda):
            out = fn(jt.array(o), jt.array(d), jt.array(occ), BOX_MIN, BOX_MAX, *args,
                     None if jit is None else jt.array(jit), near_min)
            return [v.numpy() for v in out]

    _poison((300 * n_rays,))
    ri, ts, te, pi = run(ray_march_cuda, 1)
    rri, rts, rte, rpi = run(ray_march_reference, 0)
    assert pi.shape == rpi.shape and len(ri) == pi[:, 1].sum() and len(ri) > 0
    assert np.array_equal(pi[:, 0], np.cumsum(pi[:, 1]) - pi[:, 1]), "packed_info must be the exclusive scan"
    assert (pi[:, 1] == 0).any()
    # The kernel rounds every step like the reference's separate float32 ops; the CPU reference may be compiled
    # with FMA contraction, so a sample whose midpoint sits within an ulp of a cell face may flip: allow a few rays.
    same = pi[:, 1] == rpi[:, 1]
    assert np.mean(~same) < 2e-3, np.mean(~same)
    keep = np.repeat(same, pi[:, 1])
    rkeep = np.repeat(same, rpi[:, 1])
    assert np.array_equal(ri[keep], rri[rkeep])
    assert _rel_err(ts[keep], rts[rkeep]) < FP32_TOL and _rel_err(te[keep], rte[rkeep]) < FP32_TOL
    assert np.all(te >= ts) and np.all(np.diff(ts)[np.diff(ri) == 0] > 0), "samples ordered by t within a ray"


def test_ray_march_all_miss():
    o = np.tile(np.array([[5.0, 5.0, 5.0]], np.float32), (300, 1))
    d = np.tile(np.array([[1.0, 0.0, 0.0]], np.float32), (300, 1))
    with jt.flag_scope(use_cuda=1):
        ri, ts, te, pi = ray_march_cuda(jt.array(o), jt.array(d), jt.ones((8 ** 3,), dtype="bool"),
                                        BOX_MIN, BOX_MAX, 8, 0.01, 100)
        assert ri.shape[0] == 0 and ts.shape[0] == 0 and te.shape[0] == 0
        assert np.all(pi.numpy() == 0)


def _look_at_cameras(rng, n_views, height, width):
    intr, c2w = [], []
    for _ in range(n_views):
        eye = rng.normal(size=3)
        eye = 3.0 * eye / np.linalg.norm(eye)
        c2w.append(look_at_c2w(eye, np.zeros(3), [0.0, 0.0, 1.0]))
        f = 1.1 * width
        intr.append(np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]]))
    return np.array(intr), np.array(c2w)


def _sphere_masks(intr, c2w, height, width, radius=0.55):
    vv, uu = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    pix = np.stack([uu, vv, np.ones_like(uu)], -1).reshape(-1, 3).astype(np.float64)
    masks = []
    for k, m in zip(intr, c2w):
        dirs = (pix @ np.linalg.inv(k).T) @ m[:3, :3].T
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        o = m[:3, 3]
        t = -(dirs @ o)
        dist = np.linalg.norm(o + t[:, None] * dirs, axis=1)
        masks.append((dist < radius).reshape(height, width))
    return np.array(masks)


@pytest.mark.parametrize("use_corners,min_views", [(True, 1), (False, 2)])
def test_carve_visual_hull(use_corners, min_views):
    rng = np.random.default_rng()
    intr, c2w = _look_at_cameras(rng, 7, 61, 83)
    masks = _sphere_masks(intr, c2w, 61, 83)
    res = 40
    got = _gpu(carve_visual_hull_cuda, intr, c2w, masks, BOX_MIN, BOX_MAX, res, min_views, use_corners).numpy()
    ref = _cpu(carve_visual_hull_reference, intr, c2w, masks, BOX_MIN, BOX_MAX, res, min_views,
               use_corners).numpy()
    assert got.dtype == np.bool_ and got.shape == ref.shape
    # Pixel rounding of a projection may differ by one ulp between the CPU matmul and the kernel: allow a few cells.
    assert np.mean(got != ref) < 1e-3, np.mean(got != ref)
    assert 0.0 < ref.mean() < 1.0


@pytest.mark.parametrize("shape,weight_decay", [((1000003,), 0.0), ((77, 64), 0.01), ((0,), 0.0)])
def test_adam_update(shape, weight_decay):
    from jnerf.ops.optim.optim import adam_update_cuda
    from jnerf.ops.optim.reference import adam_step_size, adam_update_reference
    rng = np.random.default_rng(3)
    p, g, m = (rng.normal(size=shape).astype(np.float32) for _ in range(3))
    v = rng.random(size=shape).astype(np.float32)
    args = (adam_step_size(1e-2, 0.9, 0.99, 7), 0.9, 0.99, 1e-15, weight_decay)
    _poison(shape, shape, shape)
    got = _gpu(lambda *a: [x.numpy() for x in adam_update_cuda(*a)], *[jt.array(x) for x in (p, g, m, v)], *args)
    want = _cpu(lambda *a: [x.numpy() for x in adam_update_reference(*a)], *[jt.array(x) for x in (p, g, m, v)],
                *args)
    for a, b in zip(got, want):
        assert _rel_err(a, b) < FP32_TOL


@pytest.mark.parametrize("n_rows,has_bias", [(4097, True), (300001, True), (77, False)])
def test_linear_cublas_matches_nn_linear(n_rows, has_bias):
    """jnerf.ops.cublas.linear on CUDA (cuBLAS with transpose flags, its own backward) against nn.Linear's ops on
    the CPU: output and the gradients of input, weight and bias."""
    from jnerf.ops.cublas import linear
    rng = np.random.default_rng(4)
    x0, w0, b0 = (rng.normal(size=s).astype(np.float32) for s in ((n_rows, 35), (64, 35), (64,)))
    up = rng.normal(size=(n_rows, 64)).astype(np.float32)

    def run():
        x, w, b = jt.array(x0), jt.array(w0), jt.array(b0)
        y = linear(x, w, b if has_bias else None)
        params = [x, w, b] if has_bias else [x, w]
        return [v.numpy() for v in [y] + jt.grad((y * jt.array(up)).sum(), params)]

    for got, want in zip(_gpu(run), _cpu(run)):
        assert _rel_err(got, want) < FP32_TOL * 10  # cuBLAS and the CPU sum in different orders over 300k rows


# ------------------------------------------------------------------------------ Jittor-op paths chosen on CUDA
def test_two_pass_mean_and_sh_encoding_on_cuda_match_the_cpu():
    """The losses' mean (two passes on CUDA, values.mean() on the CPU) and the SH encoding (cuBLAS product on CUDA):
    values and the mean's gradient."""
    from jnerf.models.encoders.sh import SHEncoder
    from jnerf.ops.reduce import mean
    rng = np.random.default_rng(7)
    values = rng.normal(1.0, 2.0, size=262147).astype(np.float32)
    dirs = rng.normal(size=(5003, 3)).astype(np.float32)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)

    def run():
        v = jt.array(values)
        m = mean(v * v)
        return [m.numpy(), jt.grad(m, v).numpy(), SHEncoder(4)(jt.array(dirs)).numpy()]

    for got, want in zip(_gpu(run), _cpu(run)):
        assert _rel_err(got, want) < FP32_TOL * 10  # summation orders differ
