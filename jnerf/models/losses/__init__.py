"""Loss functions (registered in LOSSES) and metrics."""
import jnerf  # noqa: F401  (prepares Jittor's environment before jittor is imported)

from .neus_loss import NeuSLoss, curvature_weight, psnr

__all__ = ["NeuSLoss", "curvature_weight", "psnr"]
