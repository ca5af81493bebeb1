"""Fully fused MLP on tensor cores: Python side of ``fused_mlp.h``.

``fused_mlp(x, weights, biases, spec)`` evaluates the same function as jnerf's ``MLP`` (nn.Linear layers, hidden
activation relu/softplus/none, output activation none/sigmoid) with one CUDA kernel for the whole network: fp16
weights and activations, fp32 accumulation, biases and activations applied in fp32. Its backward is one more fused
kernel that gives the input gradient and the per-layer pre-activation gradients, and a third that sums every
layer's weight and bias gradient from those and the saved activations (tensor cores, fp32 partial sums per block,
one Jittor sum over the blocks).

Gradient scaling: the output gradient is multiplied by ``GRAD_SCALE_TARGET / max|dz_out|`` (computed on the device
and passed to the kernel as a [1] tensor, no host sync) before it goes to fp16, so that tiny loss gradients do not
flush to zero; every result is divided by the same factor in fp32.

The launch shape (hidden width W, padded in/out widths, rows per block, activations) is compiled in; the batch size,
the number of layers and beta are run-time values (the data map), so they cost no recompile.
"""
import os
from collections import namedtuple

import jittor as jt

from ..cuda_utils import cuda_header, kernel_scope

__all__ = ["FusedMLPSpec", "make_spec", "fused_mlp_cuda", "fused_mlp_available", "set_fused_mlp_enabled",
           "pad16", "pack_weights", "pack_biases", "unsupported_reason", "SUPPORTED_WIDTHS"]

HIDDEN_ACT_IDS = {"none": 0, "relu": 1, "softplus": 2}     # == jnerf_ffmlp::ACT_*
OUTPUT_ACT_IDS = {"none": 0, "sigmoid": 1}                 # == jnerf_ffmlp::OUT_*
SUPPORTED_WIDTHS = (64, 128)
MAX_IO_PAD = 256           # widest padded input/output the kernel takes (registers: IN_PAD/16 weight fragments)
SMEM_LIMIT = 64 * 1024     # dynamic shared memory a block may use on every sm_75+ card
GRAD_SCALE_TARGET = 128.0  # max |scaled output gradient| (leaves 2^9 of fp16 headroom for growth through layers)
SKEW = 8                   # == jnerf_ffmlp::SKEW

_enabled = os.environ.get("JNERF_FUSED_MLP", "1") != "0"


def set_fused_mlp_enabled(flag):
    """Global switch (fp16 fused path on/off); also the environment variable JNERF_FUSED_MLP=0."""
    global _enabled
    _enabled = bool(flag)


def fused_mlp_available():
    """True when the fused kernel can run now: CUDA in use (jt.flags.use_cuda), every card sm_75 or newer (fp16
    tensor-core WMMA), and fp16 fused MLPs not switched off (set_fused_mlp_enabled / JNERF_FUSED_MLP)."""
    if not _enabled or not jt.flags.use_cuda:
        return False
    archs = list(getattr(jt.flags, "cuda_archs", None) or [])
    return len(archs) > 0 and min(archs) >= 75


def pad16(n):
    """n rounded up to a multiple of 16 (the WMMA tile)."""
    return (int(n) + 15) // 16 * 16


# in_dim/out_dim: true widths; in_pad/out_pad: padded to 16; width: hidden width W; n_layers: linear layers (>= 1);
# act/out_act: names; beta: softplus beta; rows: batch rows per thread block.
FusedMLPSpec = namedtuple("FusedMLPSpec", "in_dim out_dim width n_layers act out_act beta in_pad out_pad rows")


def _smem_bytes(width, in_pad, out_pad, rows):
    return 2 * rows * (max(width, in_pad, out_pad) + SKEW) * 2 + (width // 16) * 256 * 4


def unsupported_reason(in_dim, out_dim, width, n_layers, act, out_act):
    """None when the fused kernel supports this network, else a short reason."""
    if n_layers > 1 and width not in SUPPORTED_WIDTHS:
        return f"hidden width {width} (fused MLP supports {SUPPORTED_WIDTHS})"
    if act not in HIDDEN_ACT_IDS:
        return f"hidden activation {act!r}"
    if out_act not in OUTPUT_ACT_IDS:
        return f"output activation {out_act!r}"
    if pad16(in_dim) > MAX_IO_PAD or pad16(out_dim) > MAX_IO_PAD:
        return f"input/output width {in_dim}/{out_dim} (at most {MAX_IO_PAD})"
    return None


def make_spec(in_dim, out_dim, width, n_layers, act="relu", out_act="none", beta=100.0):
    """The kernel configuration for a network; rows per block is the largest of 128/64/32 that fits SMEM_LIMIT."""
    reason = unsupported_reason(in_dim, out_dim, width, n_layers, act, out_act)
    if reason is not None:
        raise ValueError(f"fused MLP: unsupported {reason}")
    # a single linear layer (no hidden layer) still launches W/16 warps: use 64 as its nominal width
    width = int(width) if n_layers > 1 else 64
    in_pad, out_pad = pad16(in_dim), pad16(out_dim)
    rows = next(r for r in (128, 64, 32) if _smem_bytes(width, in_pad, out_pad, r) <= SMEM_LIMIT or r == 32)
    return FusedMLPSpec(int(in_dim), int(out_dim), width, int(n_layers), act, out_act, float(beta), in_pad,
                        out_pad, rows)


def _pad2(w, rows, cols):
    """w [r, c] float32 -> [rows, cols] float32, zero-padded at the end of each axis."""
    r, c = w.shape
    if c < cols:
        w = jt.concat([w, jt.zeros((r, cols - c), "float32")], dim=1)
    if r < rows:
        w = jt.concat([w, jt.zeros((rows - r, cols), "float32")], dim=0)
    return w


def layer_shape(spec, l):
    """Padded (rows, cols) of layer l's weight in the packed buffer."""
    rows = spec.out_pad if l == spec.n_layers - 1 else spec.width
    cols = spec.in_pad if l == 0 else spec.width
    return rows, cols


def pack_weights(weights, spec):
    """List of nn.Linear weights [out_l, in_l] -> one packed [sum rows*cols] float16 buffer (layout in fused_mlp.h)."""
    parts = [_pad2(w.float32(), *layer_shape(spec, l)).reshape(-1) for l, w in enumerate(weights)]
    return jt.concat(parts, dim=0).float16()


def pack_biases(biases, spec):
    """List of biases [out_l] (or None) -> packed [W*(L-1) + OUT_PAD] float32, zero where absent or padding."""
    parts = []
    for l in range(spec.n_layers):
        n_out = layer_shape(spec, l)[0]
        b = None if biases is None else biases[l]
        if b is None:
            parts.append(jt.zeros((n_out,), "float32"))
        else:
            b = b.float32().reshape(-1)
            if b.shape[0] < n_out:
                b = jt.concat([b, jt.zeros((n_out - b.shape[0],), "float32")], dim=0)
            parts.append(b)
    return jt.concat(parts, dim=0)


def _pack_op(weights, biases, spec):
    """CUDA: pack_weights and pack_biases as one op (a small copy kernel per layer) instead of the ~4 Jittor ops per
    layer (casts, padding concats) that the two functions take; same layout, same values."""
    inputs = [w.float32() for w in weights] + ([b.float32() for b in biases] if biases is not None else [])
    L, launches, w_off, b_off = spec.n_layers, [], 0, 0
    for l in range(L):
        rows, cols = layer_shape(spec, l)
        bias = f"in{L + l}_p" if biases is not None else "nullptr"
        launches.append(f"""
    jnerf_ffmlp::ffmlp_pack_layer<<<{-(-rows * cols // 256)}, 256>>>(in{l}_p, {bias}, (int)in{l}_shape0,
        (int)in{l}_shape1, {rows}, {cols}, reinterpret_cast<__half*>(out0_p) + {w_off}, out1_p + {b_off});""")
        w_off, b_off = w_off + rows * cols, b_off + rows
    src = "".join(launches) + _LAUNCH.format(name="packing")
    with kernel_scope():
        return jt.code([(w_off,), (b_off,)], ["float16", "float32"], inputs, cuda_header=cuda_header("fused_mlp"),
                       cuda_src=src)


def _tmpl(spec):
    return f"{spec.width}, {spec.in_pad}, {spec.out_pad}, {spec.rows}"


_LAUNCH = """
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) LOGf << "fused MLP {name} launch failed:" << cudaGetErrorString(err);
"""


def _launch_src(spec, kern, name, args):
    """cuda_src launching ``kern(args)`` over blocks of spec.rows rows with its dynamic shared memory (set once)."""
    return f"""
    const int n = in0_shape0;
    if (n > 0) {{
        using C = jnerf_ffmlp::Cfg<{_tmpl(spec)}>;
        auto kern = {kern};
        static bool attr_set = false;
        if (!attr_set) {{
            cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)C::SMEM);
            attr_set = true;
        }}
        kern<<<(n + {spec.rows} - 1) / {spec.rows}, C::THREADS, C::SMEM>>>(
            {args});
        {_LAUNCH.format(name=name)}
    }}
    """


def _forward_op(x, w16, b32, spec, save):
    """x [N, in_dim] float32 -> y [N, out_dim] float32 (and hidden [L-1, N, W] float16 when save)."""
    n, L, W = x.shape[0], spec.n_layers, spec.width
    kern = (f"jnerf_ffmlp::ffmlp_forward<{_tmpl(spec)}, {HIDDEN_ACT_IDS[spec.act]}, "
            f"{OUTPUT_ACT_IDS[spec.out_act]}, {'true' if save else 'false'}>")
    hidden_out = "reinterpret_cast<__half*>(out1_p)" if save else "nullptr"
    src = _launch_src(spec, kern, "forward",
                      'in0_p, n, (int)in0_shape1, (int)data["n_layers"], reinterpret_cast<const __half*>(in1_p), '
                      'in2_p,\n            (float)data["beta"], out0_p, (int)out0_shape1,\n'
                      f'            {hidden_out}')
    data = {"n_layers": float(L), "beta": spec.beta}
    with kernel_scope():
        if not save:
            return jt.code((n, spec.out_dim), "float32", [x, w16, b32], cuda_header=cuda_header("fused_mlp"),
                           cuda_src=src, data=data)
        hid_shape = (max(L - 1, 1), n if L > 1 else 1, W)
        y, hidden = jt.code([(n, spec.out_dim), hid_shape], ["float32", "float16"], [x, w16, b32],
                            cuda_header=cuda_header("fused_mlp"), cuda_src=src, data=data)
        return y, hidden


def _backward_op(dz_out, scale, w16, hidden, spec, in_dim):
    """dz_out [N, out_dim] float32, scale [1] float32 -> dx [N, in_dim] float32, dz_hid [L-1, N, W] float16 (scaled)."""
    n, L, W = dz_out.shape[0], spec.n_layers, spec.width
    kern = f"jnerf_ffmlp::ffmlp_backward<{_tmpl(spec)}, {HIDDEN_ACT_IDS[spec.act]}>"
    src = _launch_src(spec, kern, "backward",
                      'in0_p, in1_p, n, (int)out0_shape1, (int)in0_shape1, (int)data["n_layers"],\n'
                      '            reinterpret_cast<const __half*>(in2_p), reinterpret_cast<const __half*>(in3_p), '
                      '(float)data["beta"],\n            reinterpret_cast<__half*>(out1_p), out0_p')
    data = {"n_layers": float(L), "beta": spec.beta}
    hid_shape = (max(L - 1, 1), n if L > 1 else 1, W)
    with kernel_scope():
        dx, dz_hid = jt.code([(n, in_dim), hid_shape], ["float32", "float16"], [dz_out, scale, w16, hidden],
                             cuda_header=cuda_header("fused_mlp"), cuda_src=src, data=data)
    return dx, dz_hid


WGRAD_ROWS_PER_BLOCK = 2048    # rows each weight-gradient block sums at least (its partial is one slot to reduce)
WGRAD_MAX_BLOCKS = 128         # blocks per layer: enough to fill the card, few partials for the final sum


def packed_sizes(spec):
    """(weights, biases): float counts of the packed layouts (pack_weights, pack_biases) at the padded shapes."""
    shapes = [layer_shape(spec, l) for l in range(spec.n_layers)]
    return sum(r * c for r, c in shapes), sum(r for r, _ in shapes)


def _weight_grad_op(x, dz_out, scale, hidden, dz_hid, spec):
    """x [N, in_dim] float32, dz_out [N, out_dim] float32 (unscaled), scale [1], hidden and dz_hid [L-1, N, W] float16
    (dz_hid scaled) -> [G, P] float32: G partial sums of every layer's weight and bias gradient (unscaled) in the
    packed layout, P = sum of packed_sizes(spec); their sum over G is the gradient."""
    n, L = x.shape[0], spec.n_layers
    # n < 0: a row count Jittor knows only at run time
    blocks = WGRAD_MAX_BLOCKS if n < 0 else max(1, min(WGRAD_MAX_BLOCKS, -(-n // WGRAD_ROWS_PER_BLOCK)))
    src = f"""
    const int n = in0_shape0;
    jnerf_ffmlp::ffmlp_weight_grad<{spec.width}, {spec.in_pad}, {spec.out_pad}>
        <<<dim3(out0_shape0, (int)data["n_layers"]), jnerf_ffmlp::WgCfg<{spec.width}, {spec.in_pad}, {spec.out_pad}>::THREADS>>>(
        in0_p, in1_p, in2_p, reinterpret_cast<const __half*>(in3_p), reinterpret_cast<const __half*>(in4_p), n,
        (int)in0_shape1, (int)in1_shape1, (int)data["n_layers"], out0_p, (int)out0_shape1);
    {_LAUNCH.format(name="weight gradient")}
    """
    with kernel_scope():
        return jt.code((blocks, sum(packed_sizes(spec))), "float32", [x, dz_out, scale, hidden, dz_hid],
                       cuda_header=cuda_header("fused_mlp"), cuda_src=src, data={"n_layers": float(L)})


def unpack_grads(flat, spec, shapes):
    """Packed [P] gradients (layout of pack_weights, then pack_biases) -> ([dW_l], [db_l]) cut to the layers' true
    ``shapes`` [(out_l, in_l)]."""
    gw, gb, w_off, b_off = [], [], 0, packed_sizes(spec)[0]
    for l, (n_out, n_in) in enumerate(shapes):
        rows, cols = layer_shape(spec, l)
        gw.append(flat[w_off:w_off + rows * cols].reshape((rows, cols))[:n_out, :n_in])
        gb.append(flat[b_off:b_off + n_out])
        w_off, b_off = w_off + rows * cols, b_off + rows
    return gw, gb


class FusedMLPFunction(jt.Function):
    """y = MLP(x) with parameters (W_0..W_{L-1}[, b_0..b_{L-1}]) as explicit inputs, so Jittor routes their
    gradients. Call as ``FusedMLPFunction(spec, has_bias, save)(x, *weights, *biases)``."""

    def __init__(self, spec, has_bias, save):
        self.spec, self.has_bias, self.save = spec, has_bias, save
        self.saved = None

    def execute(self, x, *params):
        spec, L = self.spec, self.spec.n_layers
        x = x.float32()                                               # [N, in_dim] float32
        weights = params[:L]
        biases = params[L:] if self.has_bias else None
        w16, b32 = _pack_op(weights, biases, spec)                   # packed float16, float32
        if not self.save:
            return _forward_op(x, w16, b32, spec, save=False)
        y, hidden = _forward_op(x, w16, b32, spec, save=True)       # [N, out] f32, [L-1, N, W] f16
        self.saved = (x, w16, hidden, y, [tuple(w.shape) for w in weights])
        return y

    def grad(self, dy):
        spec, L = self.spec, self.spec.n_layers
        n_params = L * (2 if self.has_bias else 1)
        if dy is None or self.saved is None:
            return (None,) * (1 + n_params)
        x, w16, hidden, y, w_shapes = self.saved
        self.saved = None
        dy = dy.float32()                                             # [N, out_dim] float32
        dz_out = dy * y * (1.0 - y) if spec.out_act == "sigmoid" else dy
        amax = dz_out.abs().max().reshape((1,))                      # [1] float32
        scale = GRAD_SCALE_TARGET / jt.maximum(amax, 1e-30)          # [1] float32
        scale = jt.minimum(scale, 2.0 ** 40)
        dx, dz_hid = _backward_op(dz_out, scale, w16, hidden, spec, x.shape[1])
        partial = _weight_grad_op(x, dz_out, scale, hidden, dz_hid, spec)     # [G, P] float32
        gw, gb = unpack_grads(partial.sum(0), spec, w_shapes)
        return (dx, *gw, *(gb if self.has_bias else ()))


def fused_mlp_cuda(x, weights, biases, spec):
    """x [N, in_dim] (float32 or float16) -> [N, out_dim] float32 through the fused kernel.
    weights: list of L Vars [out_l, in_l]; biases: list of L Vars [out_l] or None. CUDA only."""
    has_bias = biases is not None
    params = list(weights) + (list(biases) if has_bias else [])
    save = (not jt.flags.no_grad) and any(not v.is_stop_grad() for v in [x] + params)
    return FusedMLPFunction(spec, has_bias, save)(x, *params)
