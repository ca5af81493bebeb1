"""FullyFusedMLP and the fused MLP op.

CPU (always): the fallback path is MLP exactly; the state dict is MLP's (checkpoints load both ways); the packing
and padding of the wrapper; and the whole jt.Function (packing, gradient scaling, weight/bias gradients) run
against a Jittor-ops emulation of the three kernels that rounds to fp16 where they do.
GPU (skipped without a CUDA device): the real kernels against the fp32 nn.Linear path, forward and every gradient
(input, weights, biases), several depths/widths/activations and batch sizes that are not multiples of the 128-row
block; and the weight-gradient kernel against its emulation on the same operands.

Tolerance (relative L2 error ||fused - fp32|| / ||fp32||, parameters and inputs drawn fp16-representable so that
both paths compute with the same numbers): output <= 2e-3; gradients <= 1e-2 for smooth hidden activations
(softplus, none) and <= 5e-2 with ReLU. fp16 activations/gradients carry 11 significant bits (unit roundoff 4.9e-4)
and errors of a few 1e-4 are what the smooth networks show. With ReLU, rounding a hidden activation can flip the
sign of a pre-activation near zero in the next layer, switching that unit's derivative between 0 and 1: a sparse set
of O(1) element errors whose L2 share grows like sqrt(fraction flipped), 1-2% measured on the Jittor-ops emulation
of the kernels. A wrong index or a missing tile gives O(1) errors, far above either bound.
"""
import importlib

import numpy as np
import pytest

import jnerf  # noqa: F401  (prepares Jittor's environment before jittor loads)
import jittor as jt

from jnerf.models.networks.mlp import MLP, softplus
from jnerf.models.networks.fully_fused_mlp import FullyFusedMLP
from jnerf.utils.jittor_env import cuda_device_count
from jnerf.utils.registry import NETWORKS, build_from_cfg

fm = importlib.import_module("jnerf.ops.fused_mlp.fused_mlp")  # the module (the package exports a function of that name)

RTOL_FWD = 2e-3
RTOL_GRAD = 1e-2
RTOL_GRAD_RELU = 5e-2


def check_close(a, b, act, where=""):
    """a: fp32 reference, b: fused; dicts from forward_and_grads. Returns the errors."""
    errs = {k: rel_err(b[k], a[k]) for k in a}
    for k in a:
        assert a[k].shape == b[k].shape and np.isfinite(b[k]).all(), (where, k)
        tol = RTOL_FWD if k == "y" else RTOL_GRAD_RELU if act == "relu" else RTOL_GRAD
        assert errs[k] < tol, (where, k, errs[k], tol)
    return errs


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / (np.linalg.norm(b) + 1e-30))


def make_pair(in_dim, out_dim, width, n_hidden, act, out_act, bias, seed=0, fused="auto", min_fused_rows=0):
    """A plain MLP and a FullyFusedMLP holding the same (random) parameters (fused at every batch size unless
    ``min_fused_rows`` says otherwise)."""
    ref = MLP(in_dim, out_dim, width, n_hidden, activation=act, output_activation=out_act, bias=bias)
    rng = np.random.default_rng(seed)
    state = {k: (rng.standard_normal(v.shape) / np.sqrt(v.shape[-1] if len(v.shape) == 2 else width)).astype(
        np.float16).astype(np.float32) for k, v in ref.state_dict().items()}  # fp16-representable: both paths see
    # the same weights, so the comparison measures the fp16 activations/gradients, not the weight rounding
    ref.load_state_dict(state)
    fused_m = FullyFusedMLP(in_dim, out_dim, width, n_hidden, activation=act, output_activation=out_act, bias=bias,
                            fused=fused, min_fused_rows=min_fused_rows)
    fused_m.load_state_dict(state)
    return ref, fused_m


def forward_and_grads(model, x_np, g_np):
    """Output, and gradients of sum(y * g) w.r.t. x and every parameter (numpy, keyed by name)."""
    x = jt.array(x_np)
    y = model(x)
    params = [p for _, p in model.named_parameters()]
    names = [n for n, _ in model.named_parameters()]
    grads = jt.grad((y * jt.array(g_np)).sum(), [x] + params)
    out = {"y": y.numpy(), "x": grads[0].numpy()}
    out.update({n: g.numpy() for n, g in zip(names, grads[1:])})
    return out


# ----------------------------------------------------------------------------------------------- CPU: module
def test_fallback_equals_mlp_exactly():
    ref, fused_m = make_pair(35, 17, 64, 2, "softplus", "none", True)
    assert not fused_m.use_fused()  # CPU
    rng = np.random.default_rng(1)
    x, g = rng.standard_normal((50, 35)).astype(np.float32), rng.standard_normal((50, 17)).astype(np.float32)
    a, b = forward_and_grads(ref, x, g), forward_and_grads(fused_m, x, g)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_state_dict_compatible_both_ways():
    ref, fused_m = make_pair(35, 3, 64, 2, "relu", "sigmoid", True, seed=3)
    assert list(ref.state_dict().keys()) == list(fused_m.state_dict().keys())
    assert list(fused_m.state_dict().keys())[:2] == ["linears.0.weight", "linears.0.bias"]
    back = MLP(35, 3, 64, 2, activation="relu", output_activation="sigmoid")
    back.load_state_dict(fused_m.state_dict())
    for k, v in fused_m.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k].numpy(), v.numpy())


def test_registered_and_options():
    m = build_from_cfg(dict(type="FullyFusedMLP"), NETWORKS, in_dim=8, out_dim=1, fused=False)
    assert isinstance(m, FullyFusedMLP) and isinstance(m, MLP) and not m.use_fused()
    with pytest.raises(ValueError):
        FullyFusedMLP(8, 1, fused="yes")
    with pytest.raises(ValueError):
        FullyFusedMLP(8, 1, hidden_dim=32, fused=True)     # width 32 unsupported
    auto = FullyFusedMLP(8, 1, hidden_dim=32)              # 'auto' falls back silently
    assert auto.unsupported is not None and not auto.use_fused()
    assert FullyFusedMLP(8, 1, hidden_dim=32, n_hidden_layers=0).unsupported is None  # single layer: any width
    assert not fm.fused_mlp_available()                    # CPU


# ----------------------------------------------------------------------------------------------- CPU: packing
def test_spec_padding():
    s = fm.make_spec(35, 17, 64, 2, "softplus", "none", 100)
    assert (s.in_pad, s.out_pad, s.rows, s.width) == (48, 32, 128, 64)
    assert fm.pad16(1) == 16 and fm.pad16(16) == 16 and fm.pad16(17) == 32
    s128 = fm.make_spec(130, 3, 128, 3, "relu", "sigmoid")
    assert s128.in_pad == 144 and fm._smem_bytes(128, 144, 16, s128.rows) <= fm.SMEM_LIMIT
    assert fm.make_spec(3, 1, 64, 1).rows == 128


def test_pack_weights_and_biases_layout():
    spec = fm.make_spec(5, 3, 64, 3, "relu", "none")  # 3 linear layers
    rng = np.random.default_rng(0)
    ws = [rng.standard_normal(s).astype(np.float32) for s in [(64, 5), (64, 64), (3, 64)]]
    bs = [rng.standard_normal(s[0]).astype(np.float32) for s in [(64,), (64,), (3,)]]
    packed = fm.pack_weights([jt.array(w) for w in ws], spec).numpy()
    assert packed.dtype == np.float16 and packed.shape == (64 * 16 + 64 * 64 + 16 * 64,)
    w0 = packed[:64 * 16].reshape(64, 16)
    np.testing.assert_array_equal(w0[:, :5], ws[0].astype(np.float16))
    assert not w0[:, 5:].any()
    w2 = packed[64 * 16 + 64 * 64:].reshape(16, 64)
    np.testing.assert_array_equal(w2[:3], ws[2].astype(np.float16))
    assert not w2[3:].any()
    b = fm.pack_biases([jt.array(v) for v in bs], spec).numpy()
    assert b.shape == (64 + 64 + 16,) and b.dtype == np.float32
    np.testing.assert_array_equal(b[128:131], bs[2])
    assert not b[131:].any()
    assert not fm.pack_biases(None, spec).numpy().any()


# ------------------------------------------------------------- CPU: the jt.Function against emulated kernels
def _unpack(w16, spec):
    """Packed fp16 buffer -> list of padded [rows, cols] float32 matrices (the values the kernel reads)."""
    flat, mats, off = w16.float32(), [], 0
    for l in range(spec.n_layers):
        r, c = fm.layer_shape(spec, l)
        mats.append(flat[off:off + r * c].reshape((r, c)))
        off += r * c
    return mats


def _bias_slices(b32, spec):
    out, off = [], 0
    for l in range(spec.n_layers):
        r = fm.layer_shape(spec, l)[0]
        out.append(b32[off:off + r])
        off += r
    return out


def _pad_cols(a, cols):
    return a if a.shape[1] == cols else jt.concat([a, jt.zeros((a.shape[0], cols - a.shape[1]), a.dtype)], 1)


def _emul_forward(x, w16, b32, spec, save):
    """Jittor-ops model of ffmlp_forward: fp16 input/weights/hidden activations, fp32 products, bias, activations."""
    ws, bs = _unpack(w16, spec), _bias_slices(b32, spec)
    h = _pad_cols(x.float16().float32(), spec.in_pad)
    hidden = []
    for l in range(spec.n_layers):
        z = jt.matmul(h, ws[l].transpose()) + bs[l]
        if l < spec.n_layers - 1:
            a = jt.nn.relu(z) if spec.act == "relu" else softplus(z, spec.beta) if spec.act == "softplus" else z
            hidden.append(a.float16())
            h = hidden[-1].float32()
        else:
            y = z[:, :spec.out_dim]
            y = jt.sigmoid(y) if spec.out_act == "sigmoid" else y
    if not save:
        return y
    hid = jt.stack(hidden) if hidden else jt.zeros((1, 1, spec.width), "float16")
    return y, hid


def _emul_backward(dz_out, scale, w16, hidden, spec, in_dim):
    """Jittor-ops model of ffmlp_backward (scaled fp16 pre-activation gradients, unscaled fp32 dx)."""
    ws = _unpack(w16, spec)
    d = _pad_cols((dz_out * scale).float16().float32(), spec.out_pad)
    dz_hid = []
    for l in range(spec.n_layers - 1, 0, -1):
        h = hidden[l - 1].float32()
        deriv = (h > 0).float32() if spec.act == "relu" else \
            1.0 - jt.exp(-spec.beta * h) if spec.act == "softplus" else jt.ones_like(h)
        dz = (jt.matmul(d, ws[l]) * deriv).float16()
        dz_hid.insert(0, dz)
        d = dz.float32()
    dx = jt.matmul(d, ws[0])[:, :in_dim] / scale
    hid = jt.stack(dz_hid) if dz_hid else jt.zeros((1, 1, spec.width), "float16")
    return dx, hid


def _emul_weight_grad(x, dz_out, scale, hidden, dz_hid, spec):
    """Jittor-ops model of ffmlp_weight_grad as one block: [1, P] packed weight and bias gradients, from the fp16
    operands the kernel stages (x and the scaled dz_out rounded to fp16), summed in fp32 and divided by scale."""
    L = spec.n_layers
    dz = [dz_hid[l].float32() for l in range(L - 1)]
    dz.append(_pad_cols((dz_out * scale).float16().float32(), spec.out_pad))
    inputs = [_pad_cols(x.float16().float32(), spec.in_pad)] + [hidden[l].float32() for l in range(L - 1)]
    gw = [(jt.matmul(dz[l].transpose(), inputs[l]) / scale).reshape(-1) for l in range(L)]
    gb = [dz[l].sum(0) / scale for l in range(L)]
    return jt.concat(gw + gb).reshape((1, -1))


@pytest.fixture
def emulated_kernels(monkeypatch):
    monkeypatch.setattr(fm, "_forward_op", _emul_forward)
    monkeypatch.setattr(fm, "_backward_op", _emul_backward)
    monkeypatch.setattr(fm, "_weight_grad_op", _emul_weight_grad)
    monkeypatch.setattr(fm, "_pack_op", lambda w, b, spec: (fm.pack_weights(w, spec), fm.pack_biases(b, spec)))
    monkeypatch.setattr(fm, "fused_mlp_available", lambda: True)
    import jnerf.models.networks.fully_fused_mlp as ffm
    monkeypatch.setattr(ffm, "fused_mlp_available", lambda: True)


CASES = [  # in, out, width, n_hidden, act, out_act, bias
    (35, 17, 64, 1, "softplus", "none", True),   # SDF network shape
    (35, 3, 64, 2, "relu", "sigmoid", True),     # colour network shape
    (32, 16, 128, 3, "relu", "none", False),
    (20, 5, 64, 0, "relu", "none", True),        # a single linear layer
    (7, 1, 64, 4, "none", "sigmoid", True),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("grad_mag", [1.0, 1e-6])
def test_function_with_emulated_kernels(emulated_kernels, case, grad_mag):
    ref, fused_m = make_pair(*case, seed=5)
    assert fused_m.use_fused()
    rng = np.random.default_rng(7)
    n = 133
    x = (0.5 * rng.standard_normal((n, case[0]))).astype(np.float16).astype(np.float32)
    g = (grad_mag * rng.standard_normal((n, case[1]))).astype(np.float32)
    a, b = forward_and_grads(ref, x, g), forward_and_grads(fused_m, x, g)
    check_close(a, b, case[4], (case, grad_mag))


def test_small_batches_take_the_plain_path_unless_fused_is_required(emulated_kernels):
    ref, auto = make_pair(35, 3, 64, 2, "relu", "sigmoid", True, min_fused_rows=100)
    _, required = make_pair(35, 3, 64, 2, "relu", "sigmoid", True, fused=True, min_fused_rows=100)
    assert not auto.use_fused(99) and auto.use_fused(100) and auto.use_fused() and required.use_fused(1)
    rng = np.random.default_rng(3)
    small, large = (jt.array(rng.standard_normal((n, 35)).astype(np.float32)) for n in (50, 150))
    np.testing.assert_array_equal(auto(small).numpy(), ref(small).numpy())     # exact fp32 layers
    for model, x in ((auto, large), (required, small)):                         # emulated fp16 kernel
        y, y_ref = model(x).numpy(), ref(x).numpy()
        assert 0 < rel_err(y, y_ref) < RTOL_FWD
    with pytest.raises(ValueError, match="min_fused_rows"):
        FullyFusedMLP(8, 1, min_fused_rows=-1)


def test_no_grad_inference_path(emulated_kernels):
    ref, fused_m = make_pair(35, 17, 64, 1, "softplus", "none", True)
    x = jt.array(np.random.default_rng(0).standard_normal((40, 35)).astype(np.float32))
    with jt.no_grad():
        y = fused_m(x)
    assert rel_err(y.numpy(), ref(x).numpy()) < RTOL_FWD


# ----------------------------------------------------------------------------------------------- GPU
needs_cuda = pytest.mark.skipif(cuda_device_count() == 0, reason="needs a CUDA device")

GPU_CASES = [
    (35, 17, 64, 1, "softplus", "none", True),
    (35, 3, 64, 2, "relu", "sigmoid", True),
    (32, 16, 128, 3, "relu", "none", False),
]


@pytest.fixture
def cuda():
    prev = jt.flags.use_cuda
    jt.flags.use_cuda = 1
    yield
    jt.flags.use_cuda = prev


@needs_cuda
@pytest.mark.parametrize("case", GPU_CASES)
@pytest.mark.parametrize("n", [1, 77, 128, 1000, 4097])
def test_gpu_fused_matches_fp32(cuda, case, n):
    assert fm.fused_mlp_available()
    ref, fused_m = make_pair(*case, seed=n)
    assert fused_m.use_fused()
    rng = np.random.default_rng(n)
    x = (0.5 * rng.standard_normal((n, case[0]))).astype(np.float16).astype(np.float32)
    g = (1e-5 * rng.standard_normal((n, case[1]))).astype(np.float32)
    a, b = forward_and_grads(ref, x, g), forward_and_grads(fused_m, x, g)
    errs = {k: rel_err(b[k], a[k]) for k in a}
    print("ERRS", case, n, " ".join(f"{k.replace('linears.', '')}:{v:.1e}" for k, v in errs.items()))
    check_close(a, b, case[4], (case, n))


@needs_cuda
@pytest.mark.parametrize("case", GPU_CASES + [(20, 5, 64, 0, "relu", "none", True)])
@pytest.mark.parametrize("n", [77, 2 ** 16 + 3])
def test_gpu_weight_grad_kernel_matches_its_emulation(cuda, case, n):
    """ffmlp_weight_grad on given operands against the same sums in Jittor ops: both take the same fp16 values and
    sum in fp32, so only the order of summation differs (many blocks and chunks at 2^16 rows)."""
    in_dim, out_dim, width, n_hidden, act, out_act, _ = case
    spec = fm.make_spec(in_dim, out_dim, width, n_hidden + 1, act, out_act)
    rng = np.random.default_rng(n)
    n_hid = max(n_hidden, 1)
    x = jt.array(rng.standard_normal((n, in_dim)).astype(np.float32))
    dz_out = jt.array((1e-4 * rng.standard_normal((n, out_dim))).astype(np.float32))
    scale = fm.GRAD_SCALE_TARGET / jt.maximum(dz_out.abs().max().reshape((1,)), 1e-30)
    hidden = jt.array(np.abs(rng.standard_normal((n_hid, n, spec.width))).astype(np.float16))
    dz_hid = jt.array((100 * rng.standard_normal((n_hid, n, spec.width))).astype(np.float16))
    got = fm._weight_grad_op(x, dz_out, scale, hidden, dz_hid, spec)
    assert got.shape[0] == max(1, min(fm.WGRAD_MAX_BLOCKS, -(-n // fm.WGRAD_ROWS_PER_BLOCK)))
    got = got.numpy().sum(0)
    want = _emul_weight_grad(x, dz_out, scale, hidden, dz_hid, spec).numpy()[0]
    assert got.shape == want.shape == (sum(fm.packed_sizes(spec)),)
    w_total = fm.packed_sizes(spec)[0]
    for part, sl in (("weights", slice(0, w_total)), ("biases", slice(w_total, None))):
        assert rel_err(got[sl], want[sl]) < 1e-5, (part, rel_err(got[sl], want[sl]))


@needs_cuda
@pytest.mark.parametrize("case", GPU_CASES + [(20, 5, 64, 0, "relu", "none", True)])
def test_gpu_pack_op_equals_pack_functions(cuda, case):
    in_dim, out_dim, width, n_hidden, act, out_act, bias = case
    ref, _ = make_pair(*case, seed=2)
    spec = fm.make_spec(in_dim, out_dim, width, n_hidden + 1, act, out_act)
    weights = [lin.weight for lin in ref.linears]
    biases = [lin.bias for lin in ref.linears] if bias else None
    w16, b32 = fm._pack_op(weights, biases, spec)
    np.testing.assert_array_equal(w16.numpy(), fm.pack_weights(weights, spec).numpy())
    np.testing.assert_array_equal(b32.numpy(), fm.pack_biases(biases, spec).numpy())


@needs_cuda
def test_gpu_inference_and_depths(cuda):
    """no_grad path (no saved activations) and run-time depth (same compiled kernel, 1..5 hidden layers)."""
    rng = np.random.default_rng(11)
    for n_hidden in (1, 3, 5):
        ref, fused_m = make_pair(35, 3, 64, n_hidden, "relu", "sigmoid", True, seed=n_hidden)
        x = jt.array((0.5 * rng.standard_normal((3001, 35))).astype(np.float16).astype(np.float32))
        with jt.no_grad():
            e = rel_err(fused_m(x).numpy(), ref(x).numpy())
        assert e < RTOL_FWD, (n_hidden, e)
