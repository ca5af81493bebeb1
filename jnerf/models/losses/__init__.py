"""Loss functions (registered in LOSSES) and metrics."""

from .neus_loss import NeuSLoss, curvature_weight, psnr

__all__ = ["NeuSLoss", "curvature_weight", "psnr"]
