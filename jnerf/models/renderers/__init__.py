"""Renderers (RENDERERS): NeuS volume rendering over the occupancy grid's packed samples."""
from .neus_renderer import NeuSRenderer, cos_anneal_ratio, neus_alpha, safe_normalize

__all__ = ["NeuSRenderer", "neus_alpha", "cos_anneal_ratio", "safe_normalize"]
