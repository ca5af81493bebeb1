"""FullyFusedMLP: jnerf's MLP with a fully fused tensor-core forward/backward when the device allows it.

Same constructor, same parameters (``linears.i.weight`` / ``linears.i.bias``) and so the same state dict as ``MLP``:
a checkpoint written by either loads into the other. At call time it uses the fused fp16 kernel
(``jnerf.ops.fused_mlp``) when ``fused`` allows it and ``fused_mlp_available()`` (CUDA in use, sm_75+, fp16 fused
path enabled) and the network shape is supported (hidden width 64 or 128, padded input/output widths <= 256);
otherwise it runs MLP's plain nn.Linear path, which is exact fp32.

Precision caveat for the SDF network: its gradient() takes central differences with a step of one finest hash cell
(~1e-3), and fp16 hidden activations quantise the SDF at about 1e-4. Measured on the CPU with a Jittor-ops emulation
of the kernels (SDFNetwork, 16 active levels, hash table U(-1e-2, 1e-2), 2000 points): SDF rel. L2 error 5e-4,
finite-difference gradient 3.4e-2, Laplacian ~40x its own size (useless). So use it for the colour network and for
inference; keep the SDF network on MLP while the curvature (Laplacian) loss or fine normals matter.
"""

from jnerf.models.networks.mlp import MLP
from jnerf.ops.fused_mlp import fused_mlp, fused_mlp_available, make_spec, unsupported_reason
from jnerf.utils.checks import require_int
from jnerf.utils.registry import NETWORKS

__all__ = ["FullyFusedMLP", "fused_mlp_available"]

FUSED_CHOICES = ("auto", True, False)


@NETWORKS.register_module()
class FullyFusedMLP(MLP):
    """[N, in_dim] -> [N, out_dim] float32. ``fused``: 'auto' (fused kernel when available and supported, for
    batches of at least ``min_fused_rows`` rows), True (required at any batch size: raises on CUDA when the shape is
    unsupported or the card too old; CPU still falls back), False (always the plain path).

    Why a batch threshold: on an H200 (bench/RESULTS.md) the fused kernel beats Jittor's fp32 layers from about 2^18
    rows (training 1.07x, inference 2.1x) but not at 2^14-2^16, where Jittor's per-call overhead dominates and the
    fused path launches more ops. The demo's post-decoded colour MLP sees ~8k rows per training step: there the
    fused kernel made training 8% slower end to end, so small batches take the plain path."""

    def __init__(self, in_dim, out_dim, hidden_dim=64, n_hidden_layers=1, activation="relu", softplus_beta=100,
                 output_activation="none", bias=True, fused="auto", min_fused_rows=1 << 17):
        super().__init__(in_dim, out_dim, hidden_dim=hidden_dim, n_hidden_layers=n_hidden_layers,
                         activation=activation, softplus_beta=softplus_beta, output_activation=output_activation,
                         bias=bias)
        if fused not in FUSED_CHOICES:
            raise ValueError(f"FullyFusedMLP: fused must be one of {FUSED_CHOICES}, got {fused!r}")
        self.fused = fused
        self.min_fused_rows = require_int("FullyFusedMLP", "min_fused_rows", min_fused_rows, 0)
        self.has_bias = bool(bias)
        n_layers = self.n_hidden_layers + 1
        self.unsupported = unsupported_reason(self.in_dim, self.out_dim, self.hidden_dim, n_layers,
                                              self.activation, self.output_activation_name)
        if fused is True and self.unsupported is not None:
            raise ValueError(f"FullyFusedMLP(fused=True): unsupported {self.unsupported}")
        self._spec = None if self.unsupported is not None else make_spec(
            self.in_dim, self.out_dim, self.hidden_dim, n_layers, self.activation, self.output_activation_name,
            self.softplus_beta)

    def use_fused(self, n_rows=None):
        """Whether execute() takes the fused kernel now (decided at call time), for a batch of ``n_rows`` rows
        (None: for a batch large enough)."""
        if self.fused is False or self._spec is None:
            return False
        if self.fused == "auto" and n_rows is not None and n_rows < self.min_fused_rows:
            return False
        available = fused_mlp_available()
        if self.fused is True and not available:
            import jittor as jt
            if jt.flags.use_cuda:
                raise RuntimeError("FullyFusedMLP(fused=True): the fused kernel needs sm_75+ and fp16 enabled")
        return available

    def execute(self, x):
        if self.fused is False or self._spec is None:
            return super().execute(x)
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"FullyFusedMLP: input must have shape [N, {self.in_dim}], got {x.shape}")
        self.use_fused(x.shape[0])                                           # fused=True: raises if it cannot run
        weights = [lin.weight for lin in self.linears]                       # [out_l, in_l] float32
        biases = [lin.bias for lin in self.linears] if self.has_bias else None  # [out_l] float32
        min_rows = self.min_fused_rows if self.fused == "auto" else 1
        return fused_mlp(x, weights, biases, self._spec, min_rows)           # [N, out_dim] float32
