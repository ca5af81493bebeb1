"""Shared infrastructure: registries, configs, Jittor start-up, logging and device choice."""
from .registry import *  # noqa: F401,F403
