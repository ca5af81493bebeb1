"""Samplers (SAMPLERS): the occupancy grid that decides where rays take samples, packed samples, and the scene
box that bounds them."""
from jnerf.ops.occupancy import PackedSamples

from .occupancy_grid import OccupancyGrid
from .scene_box import SceneBox

__all__ = ["PackedSamples", "OccupancyGrid", "SceneBox"]
