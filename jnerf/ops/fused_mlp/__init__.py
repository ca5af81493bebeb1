"""Fully fused MLP (tensor cores, fp16 weights/activations, fp32 accumulation): ``fused_mlp(x, weights, biases,
spec, min_fused_rows)`` takes the CUDA kernel of ``fused_mlp.py``/``fused_mlp.h`` when it can run
(``fused_mlp_available()``) and the batch is large enough to pay for it, otherwise the fp32 reference of
``reference.py`` (the same function in Jittor ops; jnerf's MLP runs it too)."""
from . import fused_mlp as _cuda
from .fused_mlp import (FusedMLPSpec, SUPPORTED_WIDTHS, fused_mlp_available, make_spec, pack_biases, pack_weights,
                        pad16, set_fused_mlp_enabled, unsupported_reason)
from .reference import (HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS, fused_mlp_reference, hidden_activation,
                        output_activation, softplus)

__all__ = ["FusedMLPSpec", "SUPPORTED_WIDTHS", "fused_mlp", "fused_mlp_available", "fused_mlp_reference",
           "make_spec", "pack_biases", "pack_weights", "pad16", "set_fused_mlp_enabled", "unsupported_reason",
           "softplus", "hidden_activation", "output_activation", "HIDDEN_ACTIVATIONS", "OUTPUT_ACTIVATIONS"]


def fused_mlp(x, weights, biases, spec, min_fused_rows=1):
    """x [N, in_dim] -> [N, out_dim] float32 (weights: L Vars [out_l, in_l]; biases: L Vars [out_l] or None).
    The fused kernel for batches of at least ``min_fused_rows`` rows when it can run here, else the reference."""
    if x.shape[0] >= max(1, min_fused_rows) and _cuda.fused_mlp_available():
        return _cuda.fused_mlp_cuda(x, weights, biases, spec)
    return fused_mlp_reference(x, weights, biases, spec)
