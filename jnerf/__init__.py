"""jnerf: Instant-NeuS surface reconstruction in Jittor (multi-view images + masks -> coloured mesh).

``import jnerf`` prepares Jittor's environment (no MKL download, the CPU without a CUDA driver, the CUDA 13 mend)
but imports neither Jittor nor the components, so the Jittor-free parts (``jnerf.evaluation``, the scene tools)
start at once and run under any numpy. Components register with their registries when first needed:
``build_from_cfg`` asks ``register_all()`` for a name it does not know, and ``jnerf.models`` etc. import on access.
"""
import importlib

from .utils.jittor_env import setup_jittor_env

setup_jittor_env()

__version__ = "0.1.0"

_SUBPACKAGES = ("dataset", "evaluation", "export", "models", "ops", "optims", "runner", "utils")


def register_all():
    """Import every registered component (datasets, models, optimisers, exporters); idempotent."""
    from .dataset import neus_dataset  # noqa: F401
    from . import export, models, optims  # noqa: F401


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'jnerf' has no attribute '{name}'")
