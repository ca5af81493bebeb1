"""Optimisers and learning-rate schedules (OPTIMS, SCHEDULERS)."""
from .adam import Adam
from .schedulers import WarmupCosineLR

__all__ = ["Adam", "WarmupCosineLR"]
