"""Datasets (registered in DATASETS) and the synthetic-scene tools that produce their input.

`NeuSDataset` reads NeuS/IDR-format folders; `scene_maker.make_scene` renders a mesh into one. Everything here but
`NeuSDataset` is numpy only, so the evaluator and the scene tools never load Jittor.
"""
__all__ = ["NeuSDataset", "make_scene"]


def __getattr__(name):
    if name == "NeuSDataset":
        from .neus_dataset import NeuSDataset
        return NeuSDataset
    if name == "make_scene":
        from .scene_maker import make_scene
        return make_scene
    raise AttributeError(f"module 'jnerf.dataset' has no attribute '{name}'")
