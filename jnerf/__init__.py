"""jnerf: Instant-NeuS surface reconstruction in Jittor (multi-view images + masks -> coloured mesh).

Importing the package prepares Jittor's environment (no MKL download, CPU fallback without a CUDA driver, numpy < 2)
and registers every component; it runs nothing on a GPU.
"""
from .utils.jittor_env import setup_jittor_env

setup_jittor_env()

__version__ = "0.1.0"

# Importing the sub-packages registers every component in the registries (as JNeRF does).
from . import dataset, models, optims  # noqa: E402,F401
