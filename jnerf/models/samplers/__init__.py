"""Samplers: the occupancy grid, packed samples and the NeuS renderer (registered in SAMPLERS)."""
from jnerf.ops.occupancy import PackedSamples

from .neus_renderer import NeuSRenderer, cos_anneal_ratio, neus_alpha, safe_normalize
from .occupancy_grid import OccupancyGrid

__all__ = ["PackedSamples", "OccupancyGrid", "NeuSRenderer", "neus_alpha", "cos_anneal_ratio", "safe_normalize"]
