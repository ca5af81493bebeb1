"""The runner's own config groups (train, val, turntable, eval), each validated where it is read."""
from typing import Optional, Sequence

from jnerf.utils.checks import require_int

__all__ = ["TrainSettings", "ValidationSettings", "TurntableSettings", "EvalSettings"]


class TrainSettings:
    """total_steps: steps to train (also the lr schedule's length); every N steps (0: never): a log line
    (log_every), validation images (val_every), a checkpoint (save_every, the last keep_checkpoints kept) and a
    preview mesh (mesh_every)."""

    def __init__(self, total_steps: int = 20000, log_every: int = 100, val_every: int = 2500,
                 save_every: int = 5000, keep_checkpoints: int = 3, mesh_every: int = 0):
        self.total_steps = require_int("train", "total_steps", total_steps, 1)
        self.log_every = require_int("train", "log_every", log_every, 1)
        self.val_every = require_int("train", "val_every", val_every, 0)
        self.save_every = require_int("train", "save_every", save_every, 0)
        self.keep_checkpoints = require_int("train", "keep_checkpoints", keep_checkpoints, 1)
        self.mesh_every = require_int("train", "mesh_every", mesh_every, 0)

    @staticmethod
    def due(step: int, every: int) -> bool:
        return every > 0 and step % every == 0


class ValidationSettings:
    """views: training images rendered for validation panels; downscale: their size divisor; chunk: rays per
    rendering call."""

    def __init__(self, views: Sequence[int] = (0,), downscale: int = 2, chunk: int = 8192):
        self.views = [require_int("val", "views", v, 0) for v in views]
        self.downscale = require_int("val", "downscale", downscale, 1)
        self.chunk = require_int("val", "chunk", chunk, 1)


class TurntableSettings:
    """--task render: n_frames around the object at the training cameras' distance; downscale of the first
    camera's image size; fps of the mp4; elevation_deg (None: the cameras' mean elevation)."""

    def __init__(self, n_frames: int = 60, downscale: int = 2, fps: int = 30, elevation_deg: Optional[float] = None):
        self.n_frames = require_int("turntable", "n_frames", n_frames, 1)
        self.downscale = require_int("turntable", "downscale", downscale, 1)
        self.fps = require_int("turntable", "fps", fps, 1)
        self.elevation_deg = elevation_deg


class EvalSettings:
    """gt_mesh: ground truth in world units (None: <dataset root>/gt_mesh.ply when present); cull_with_masks: drop
    predicted surface no training mask covers (DTU-style); after_training: score the final mesh after
    --task train when ground truth exists."""

    def __init__(self, gt_mesh: Optional[str] = None, cull_with_masks: bool = True, after_training: bool = True):
        self.gt_mesh, self.cull_with_masks, self.after_training = gt_mesh, bool(cull_with_masks), bool(after_training)
