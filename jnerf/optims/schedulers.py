"""Learning-rate schedules: a factor of each group's base lr, set before every step (SCHEDULERS)."""
import math

from jnerf.utils.registry import SCHEDULERS


class _FactorSchedule:
    def __init__(self, optimizer):
        self.optimizer = optimizer

    def factor(self, step):
        raise NotImplementedError

    def step(self, step):
        """Set every group's lr for training step ``step`` (0-based); returns the factor."""
        f = self.factor(step)
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * f
        return f


@SCHEDULERS.register_module()
class WarmupCosineLR(_FactorSchedule):
    """Linear warm-up from ``warmup_start`` to 1 over ``warmup_steps``, then cosine decay to ``min_factor`` at
    ``total_steps`` (NeuS' schedule; the original Instant-NeuS warms up from 0 over 10k steps, which wastes them)."""

    def __init__(self, optimizer, total_steps, warmup_steps=500, min_factor=0.05, warmup_start=0.01):
        """``total_steps`` is the run's train.total_steps (passed by the runner, never copied into the config)."""
        super().__init__(optimizer)
        if total_steps <= 0:
            raise ValueError(f"scheduler: total_steps (train.total_steps) must be positive, got {total_steps}")
        self.total_steps, self.warmup_steps = total_steps, warmup_steps
        self.min_factor, self.warmup_start = min_factor, warmup_start

    def factor(self, step):
        if step < self.warmup_steps:
            return self.warmup_start + (1 - self.warmup_start) * step / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))
