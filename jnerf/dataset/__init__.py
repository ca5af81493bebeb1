"""Datasets (registered in DATASETS) and the synthetic-scene tools that produce their input.

`NeuSDataset` reads NeuS/IDR-format folders; `scene_maker.make_scene` renders a mesh into one.
"""
from .neus_dataset import NeuSDataset
from .scene_maker import make_scene

__all__ = ["NeuSDataset", "make_scene"]
