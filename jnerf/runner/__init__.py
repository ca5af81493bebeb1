"""Runners: turn a config into a trained model and its outputs."""
import logging

from jnerf.utils.config import apply_overrides, load_config, merge_into
from .neus_runner import NeuSRunner

logger = logging.getLogger("jnerf")


def resolve_device(device):
    """'auto' -> 'cuda' when a CUDA device is usable, else 'cpu'; 'cpu'/'cuda' unchanged."""
    if device == "auto":
        from jnerf.utils.device import cuda_available
        return "cuda" if cuda_available() else "cpu"
    return device


def load_run_config(path, opts=(), device=None):
    """The config of a run: the file with its bases; its ``on_cpu`` overrides when the run will be on the CPU
    (so a GPU-sized config such as the demo stays feasible on a CPU); then the command-line overrides, which win.
    Once applied, ``on_cpu`` is None in the returned config."""
    cfg = apply_overrides(load_config(path), opts)
    if device:
        cfg.device = device
    if cfg.get("on_cpu") and resolve_device(cfg.device) == "cpu":
        merge_into(cfg, cfg.on_cpu, "on_cpu")
        apply_overrides(cfg, opts)
        logger.info("running on the CPU: applied the config's on_cpu settings (%s)", ", ".join(cfg.on_cpu))
        # applied once: the run's saved config.py then holds the values it ran with, and loading it again (--task
        # mesh) must not lay on_cpu over the command line's overrides a second time
        cfg.on_cpu = None
    return cfg


def build_runner(cfg, task="train", resume=False, ckpt=None):
    return NeuSRunner(cfg, task=task, resume=resume, ckpt=ckpt)
