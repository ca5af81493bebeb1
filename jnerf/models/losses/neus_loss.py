"""Instant-NeuS training losses: colour (L1, optional MSE), eikonal, mask BCE and scheduled curvature.

The curvature weight follows Neuralangelo: it warms up linearly while the coarse hash levels train, then shrinks by
the level growth factor for each newly activated level so the finer levels can carve detail, and stops shrinking
once every level is active (the original Instant-NeuS kept decaying until the term vanished).
"""
import math
from typing import Optional

import jittor as jt

from jnerf.ops.reduce import mean
from jnerf.utils.registry import LOSSES

__all__ = ["NeuSLoss", "curvature_weight", "psnr"]


def curvature_weight(step, base, warmup_steps=0, level_steps=1, decay=1.0, decay_levels=0):
    """Curvature loss weight at ``step``.

    base * step / warmup_steps during the warm-up, then base / decay ** min((step - warmup_steps) / level_steps,
    decay_levels): one factor of ``decay`` (the hash-level growth factor) per level step, for at most
    ``decay_levels`` level steps (the number of levels added after the warm-up).
    """
    if warmup_steps < 0 or level_steps <= 0 or decay <= 0 or decay_levels < 0:
        raise ValueError(f"curvature schedule: expected warmup_steps >= 0, level_steps > 0, decay > 0, "
                         f"decay_levels >= 0; got {warmup_steps}, {level_steps}, {decay}, {decay_levels}")
    if step < warmup_steps:
        return base * step / warmup_steps
    exponent = min((step - warmup_steps) / level_steps, decay_levels)
    return base / decay ** exponent


def psnr(mse):
    """Peak signal-to-noise ratio in dB of a mean squared error (colours in [0,1]); float or jt.Var."""
    if isinstance(mse, jt.Var):
        return -10.0 * jt.log(mse) / math.log(10.0)
    return -10.0 * math.log10(mse)


def _mean_or_zero(values):
    """Mean of a Var (jnerf.ops.reduce.mean: two passes on CUDA), 0 when it has no elements (a batch without
    samples)."""
    return mean(values) if values.numel() > 0 else jt.zeros((1,), dtype=jt.float32).sum()


def _binary_cross_entropy(p, target):
    """Mean of -(target log p + (1 - target) log(1 - p)); ``p`` already clamped away from 0 and 1."""
    return -mean(target * jt.log(p) + (1.0 - target) * jt.log(1.0 - p))


@LOSSES.register_module()
class NeuSLoss:
    """Weighted sum of the Instant-NeuS loss terms, and the training PSNR.

    Weights (0 turns a term off): color_l1, color_mse, eikonal (mean (|grad f| - 1)^2 over samples), mask
    (BCE of the opacity clamped to [mask_clamp, 1 - mask_clamp] against the mask), curvature (mean |Laplacian f|
    over samples, scheduled by ``curvature_weight``), opaque (mean binary entropy of each ray's opacity, clamped
    like the mask's: without masks it stands in for the mask loss, which is what makes rays all object or all
    background and lets the NeuS variance sharpen).
    Where rays do not sample (the renderer's free points, uniform over the box): free_eikonal (mean
    (|grad f| - 1)^2) and free_space (mean relu(-f) over the points that the visual hull carved away, where the
    surface cannot be). Together they keep the field a valid SDF off the sampled band, so that meshing the whole
    box finds no surface that training never saw.
    The curvature schedule follows the SDF network's levels (``level_schedule``, a run-time value from
    ``SDFNetwork.level_schedule()``): warm-up over its warm-up, one factor of the grid's growth per level step until
    every level is on. A curvature_* argument other than None replaces that part.
    """

    def __init__(self, color_l1: float = 1.0, color_mse: float = 0.0, eikonal: float = 0.1, mask: float = 0.1,
                 curvature: float = 5e-4, free_eikonal: float = 0.1, free_space: float = 1.0, opaque: float = 0.0,
                 mask_clamp: float = 1e-3, curvature_warmup_steps: Optional[int] = None,
                 curvature_level_steps: Optional[int] = None, curvature_decay: Optional[float] = None,
                 curvature_decay_levels: Optional[int] = None, level_schedule: Optional[dict] = None):
        weights = dict(color_l1=color_l1, color_mse=color_mse, eikonal=eikonal, mask=mask, curvature=curvature,
                       free_eikonal=free_eikonal, free_space=free_space, opaque=opaque)
        for name, value in weights.items():
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"loss.{name}: expected a weight >= 0, got {value!r}")
        if not 0 < mask_clamp < 0.5:
            raise ValueError(f"loss.mask_clamp: expected a value in (0, 0.5), got {mask_clamp}")
        self.weights = weights
        levels = dict(dict(warmup_steps=0, level_steps=1, growth=1.0, levels_after_warmup=0), **(level_schedule or {}))
        chosen = dict(warmup_steps=curvature_warmup_steps, level_steps=curvature_level_steps,
                      decay=curvature_decay, decay_levels=curvature_decay_levels)
        derived = dict(warmup_steps=levels["warmup_steps"], level_steps=levels["level_steps"],
                       decay=levels["growth"], decay_levels=levels["levels_after_warmup"])
        self.curvature_schedule = {k: derived[k] if v is None else v for k, v in chosen.items()}
        curvature_weight(0, curvature, **self.curvature_schedule)  # validates the schedule now, not mid-run
        self.mask_clamp = mask_clamp

    def curvature_weight_at(self, step):
        return curvature_weight(step, self.weights["curvature"], **self.curvature_schedule)

    def __call__(self, outputs, rgb_gt, mask=None, step=0):
        """outputs: the renderer's dict; rgb_gt [R,3]; mask [R,1] or None -> dict of terms (Vars), ``total`` and
        ``mse`` (detached, for the PSNR).

        With a mask the target is composited over the renderer's background the way the prediction is:
        rgb_gt * mask + background * (1 - mask).
        """
        if tuple(rgb_gt.shape) != tuple(outputs["rgb"].shape):
            raise ValueError(f"rgb_gt: expected shape {list(outputs['rgb'].shape)}, got {list(rgb_gt.shape)}")
        if mask is not None:
            mask = mask.reshape((-1, 1))
            if "background" in outputs:
                rgb_gt = rgb_gt * mask + outputs["background"] * (1.0 - mask)
        elif self.weights["mask"] > 0:
            raise ValueError("mask: required when the mask loss weight is > 0 (set mask=0 to train without masks)")
        terms = {}
        error = outputs["rgb"] - rgb_gt                                                  # [R,3]
        mse = mean(error * error)
        if self.weights["color_l1"] > 0:
            terms["color_l1"] = mean(error.abs())
        if self.weights["color_mse"] > 0:
            terms["color_mse"] = mse
        if self.weights["eikonal"] > 0:
            grad = outputs["gradient"]                                                   # [S,3]
            norm = jt.sqrt((grad * grad).sum(dim=-1) + 1e-12)                            # [S]
            terms["eikonal"] = _mean_or_zero((norm - 1.0) ** 2)
        opacity = jt.clamp(outputs["opacity"], self.mask_clamp, 1.0 - self.mask_clamp)  # [R,1]
        if self.weights["mask"] > 0:
            terms["mask"] = _binary_cross_entropy(opacity, mask)
        if self.weights["opaque"] > 0:  # the entropy: cross entropy against itself
            terms["opaque"] = _binary_cross_entropy(opacity, opacity)
        if "free_sdf" in outputs:
            if self.weights["free_eikonal"] > 0:
                grad = outputs["free_gradient"]                                          # [P,3]
                norm = jt.sqrt((grad * grad).sum(dim=-1) + 1e-12)
                terms["free_eikonal"] = _mean_or_zero((norm - 1.0) ** 2)
            if self.weights["free_space"] > 0:
                terms["free_space"] = _mean_or_zero(jt.nn.relu(-outputs["free_sdf"]) * outputs["free_known_empty"])
        curvature = self.curvature_weight_at(step)
        if curvature > 0:
            terms["curvature"] = _mean_or_zero(outputs["laplacian"].abs())
        scale = dict(self.weights, curvature=curvature)
        total = None
        for name, value in terms.items():
            total = value * scale[name] if total is None else total + value * scale[name]
        terms["total"] = total if total is not None else jt.zeros((1,), dtype=jt.float32).sum()
        terms["mse"] = mse.detach()  # for the PSNR in the log: colour error against the composited target
        return terms
