"""The scene box: the axis-aligned box of the normalised frame that the hash grid, the occupancy grid and marching
cubes share. 'auto' takes it from the visual hull of the masks (no separate bbox run, no hand-copied numbers), or,
without masks, the unit sphere's box; 'sphere' always takes the unit sphere's box ([-1, 1]^3: scale_mat maps the
object into the unit sphere); 'config' takes the corner and size the config gives."""
import logging
from typing import Optional, Sequence, Tuple

import numpy as np

from jnerf.utils.checks import require_int

__all__ = ["SceneBox"]

logger = logging.getLogger("jnerf")

MODES = ("auto", "sphere", "config")


class SceneBox:
    """mode: 'auto' | 'sphere' | 'config'; corner, size: the box for 'config' (3 numbers each); margin: 'auto' grows
    the hull's box by this much on each side (normalised units); hull_resolution: cells per axis of the coarse hull
    that 'auto' carves over [-1, 1]^3."""

    def __init__(self, mode: str = "auto", corner: Optional[Sequence[float]] = None,
                 size: Optional[Sequence[float]] = None, margin: float = 0.05, hull_resolution: int = 64):
        if mode not in MODES:
            raise ValueError(f"bbox.mode: expected one of {', '.join(MODES)}, got {mode!r}")
        if mode == "config":
            if corner is None or size is None or len(corner) != 3 or len(size) != 3:
                raise ValueError("bbox.mode='config' needs bbox.corner and bbox.size, 3 numbers each")
            if min(size) <= 0:
                raise ValueError(f"bbox.size: expected 3 positive edge lengths, got {list(size)}")
        if margin < 0:
            raise ValueError(f"bbox.margin: expected >= 0, got {margin}")
        self.mode, self.margin = mode, float(margin)
        self.corner = None if corner is None else [float(c) for c in corner]
        self.size = None if size is None else [float(s) for s in size]
        self.hull_resolution = require_int("bbox", "hull_resolution", hull_resolution, 2)

    def resolve(self, hull_cameras: Optional[dict], grid_cfg: Optional[dict] = None) -> Tuple[np.ndarray, np.ndarray]:
        """(bbox_min [3], bbox_max [3]) float32. ``hull_cameras``: the dataset's intrinsics, c2w and dilated masks
        (None without masks, which 'auto' cannot work with); ``grid_cfg``: the occupancy grid's config, whose hull
        settings the probe grid shares."""
        if self.mode == "config":
            lo = np.asarray(self.corner, np.float32)
            return lo, lo + np.asarray(self.size, np.float32)
        if self.mode == "sphere" or hull_cameras is None or hull_cameras.get("masks") is None:
            if self.mode == "auto":
                logger.info("automatic bbox: no masks, so no visual hull; using the unit sphere's box")
            return np.full(3, -1.0, np.float32), np.full(3, 1.0, np.float32)
        from jnerf.utils.registry import SAMPLERS, build_from_cfg
        probe = build_from_cfg(dict(grid_cfg or dict(type="OccupancyGrid"), resolution=self.hull_resolution,
                                    use_visual_hull=True), SAMPLERS, bbox_min=[-1.0] * 3, bbox_max=[1.0] * 3)
        probe.init_from_masks(**hull_cameras)
        lo, hi = probe.tight_bbox(margin=self.margin)
        logger.info("automatic bbox from the visual hull: corner %s size %s",
                    np.round(lo, 4).tolist(), np.round(hi - lo, 4).tolist())
        return lo, hi
