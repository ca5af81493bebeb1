"""NeuS's learnable sharpness: inv_s = exp(scale * v), a single trainable scalar v."""
import numpy as np

import jittor as jt
from jittor import nn

from jnerf.utils.registry import NETWORKS

__all__ = ["VarianceNetwork"]

INV_S_MIN, INV_S_MAX = 1e-6, 1e6


@NETWORKS.register_module()
class VarianceNetwork(nn.Module):
    """``inv_s()`` -> [1] float32, exp(scale * variance) clipped to [1e-6, 1e6]; starts at exp(scale * init_val)."""

    def __init__(self, init_val: float = 0.3, scale: float = 10.0):
        super().__init__()
        if not np.isfinite(init_val) or not np.isfinite(scale):
            raise ValueError(f"VarianceNetwork: init_val and scale must be finite, got {init_val} and {scale}")
        self.scale = float(scale)
        self.variance = jt.array(np.array([init_val], np.float32))  # [1], trainable

    def inv_s(self) -> jt.Var:
        return jt.exp(self.variance * self.scale).clamp(INV_S_MIN, INV_S_MAX)

    def execute(self):
        return self.inv_s()
