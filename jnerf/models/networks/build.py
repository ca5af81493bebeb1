"""Building a sub-component that a config may give either as a dict or as an already built module."""
from jittor import nn

from jnerf.utils.registry import build_from_cfg

__all__ = ["build_module"]


def build_module(cfg, registry, **defaults):
    """``cfg`` built from ``registry`` if it is a config dict (``defaults`` fill the keys it lacks), else returned
    as is when it is already a module."""
    if isinstance(cfg, nn.Module):
        return cfg
    if not hasattr(cfg, "keys"):
        raise TypeError(f"expected a module or a config dict with a 'type' key, got {type(cfg).__name__}")
    missing = {k: v for k, v in defaults.items() if k not in cfg}
    return build_from_cfg(cfg, registry, **missing)
