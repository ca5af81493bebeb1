"""Fully fused MLP op (tensor cores, fp16 weights/activations, fp32 accumulation): ``fused_mlp(x, weights, biases,
spec)``, CUDA only. The module ``jnerf.models.networks.fully_fused_mlp.FullyFusedMLP`` chooses between it and the
plain MLP path at call time (``fused_mlp_available()``)."""
from .fused_mlp import (FusedMLPSpec, SUPPORTED_WIDTHS, fused_mlp, fused_mlp_available, make_spec, pack_biases,
                        pack_weights, pad16, set_fused_mlp_enabled, unsupported_reason)

__all__ = ["FusedMLPSpec", "SUPPORTED_WIDTHS", "fused_mlp", "fused_mlp_available", "make_spec", "pack_biases",
           "pack_weights", "pad16", "set_fused_mlp_enabled", "unsupported_reason"]
