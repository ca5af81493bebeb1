"""Runners: turn a config into a trained model and its outputs."""
from .neus_runner import NeuSRunner


def build_runner(cfg, task="train", resume=False, ckpt=None):
    return NeuSRunner(cfg, task=task, resume=resume, ckpt=ckpt)
