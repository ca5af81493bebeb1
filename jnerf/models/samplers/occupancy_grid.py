"""Occupancy grid over the object box: the visual hull as the outer bound, an SDF-aware classification of every
hull cell as outside, near-surface or inside, packed ray marching through the near-surface cells, and the sign of
the cells that the sampler skips, for mesh extraction.

The grid owns its update rule and its schedule (as nerfacc's ``OccGridEstimator.update_every_n_steps``): the runner
only calls ``update_every_n_steps(step, sdf_fn, inv_s_fn)``. Until ``update_start`` every hull cell is sampled. From
then on, every ``update_every`` steps, the SDF is evaluated at each hull cell's centre and the cell becomes

- SURFACE when |sdf| <= band, where band = ``band_cells`` cell half-diagonals + ``band_softness`` / inv_s: the zero
  set can pass through the cell (the first term, with slack for an SDF whose gradient norm reaches band_cells), or
  NeuS' alpha is still noticeably non-zero there (the second term: the logistic density is ``softness`` widths from
  its peak);
- INSIDE when sdf < -band, OUTSIDE when sdf > band.

The sampler marches SURFACE cells and the outer layer of the INSIDE region (INSIDE cells next to any other cell).
The rest of the interior is skipped for speed: rays never get past the surface anyway. The layer matters when the
classification is wrong: where the network is negative right next to empty space (typically a concavity the visual
hull carved while the SDF still held the initial sphere there), a ray entering the interior meets samples of
alpha ~ 1 there instead of passing through a skipped, invisible solid, so the mask and colour losses see the error
and move the surface. Skipped cells stay inside: mesh extraction gives them a negative value, so skipping never
carves a false inner wall. Cells outside the hull are always OUTSIDE. A classification is recomputed from scratch
each time, so a cell comes back as soon as the surface moves towards it.
"""
import logging
from typing import Callable, Tuple

import jittor as jt
import numpy as np

from jnerf.ops.occupancy import as_box, carve_visual_hull, ray_march
from jnerf.ops.occupancy import PackedSamples
from jnerf.utils.registry import SAMPLERS

__all__ = ["OccupancyGrid", "OUTSIDE", "SURFACE", "INSIDE", "dilate_cells"]

logger = logging.getLogger("jnerf")

OUTSIDE, SURFACE, INSIDE = 0, 1, 2
_STATE_NAMES = {OUTSIDE: "outside", SURFACE: "surface", INSIDE: "inside"}


def dilate_cells(flags: np.ndarray, cells: int = 1) -> np.ndarray:
    """Grow a bool [R,R,R] set by ``cells`` in every direction (a (2c+1)^3 cube), numpy only.

    Separable: one max over shifted copies per axis. Hand-written because the training path must not need scipy,
    whose build on the GPU machines does not load next to the numpy that Jittor needs."""
    out = flags.copy()
    for axis in range(3):
        grown = out.copy()
        for shift in range(1, cells + 1):
            lead = [slice(None)] * 3
            trail = [slice(None)] * 3
            lead[axis], trail[axis] = slice(shift, None), slice(None, -shift)
            grown[tuple(lead)] |= out[tuple(trail)]
            grown[tuple(trail)] |= out[tuple(lead)]
        out = grown
    return out


@SAMPLERS.register_module()
class OccupancyGrid:
    """resolution^3 cells over [bbox_min, bbox_max] (normalised frame, may be anisotropic); flat cell index
    ix*R*R + iy*R + iz.

    Attributes: ``hull`` numpy bool [R^3] (cells the visual hull keeps; all of them without masks), ``state``
    numpy uint8 [R^3] (OUTSIDE / SURFACE / INSIDE), ``occupied`` jt.Var bool [R^3] (the cells the sampler marches:
    SURFACE and the outer layer of INSIDE).

    update_start, update_every: the classification schedule (steps). band_cells, band_softness: the surface band
    (see the module docstring). use_visual_hull, hull_min_background_views: carve the hull from the masks, a cell
    being empty once that many views see it as background. chunk: points per SDF evaluation.
    """

    def __init__(self, bbox_min=(-1.0, -1.0, -1.0), bbox_max=(1.0, 1.0, 1.0), resolution: int = 128,
                 update_start: int = 2000, update_every: int = 200, band_cells: float = 2.0,
                 band_softness: float = 5.0, use_visual_hull: bool = True, hull_min_background_views: int = 1,
                 chunk: int = 1 << 18):
        if int(resolution) != resolution or resolution < 1:
            raise ValueError(f"resolution: expected a positive integer, got {resolution}")
        if update_start < 0 or update_every < 1:
            raise ValueError(f"update_start/update_every: expected >= 0 and >= 1, got {update_start} and "
                             f"{update_every}")
        if band_cells < 1.0:
            raise ValueError(f"band_cells: expected >= 1 (a cell the surface crosses must stay sampled), got "
                             f"{band_cells}")
        if band_softness < 0:
            raise ValueError(f"band_softness: expected >= 0, got {band_softness}")
        if int(hull_min_background_views) < 1:
            raise ValueError(f"hull_min_background_views: expected >= 1, got {hull_min_background_views}")
        self.bbox_min, self.bbox_max = as_box(bbox_min, bbox_max)
        self.resolution = int(resolution)
        self.update_start, self.update_every = int(update_start), int(update_every)
        self.band_cells, self.band_softness = float(band_cells), float(band_softness)
        self.use_visual_hull = bool(use_visual_hull)
        self.hull_min_background_views = int(hull_min_background_views)
        self.chunk = int(chunk)
        self.set_hull(np.ones(self.n_cells, dtype=bool))

    # ------------------------------------------------------------------------------------------------ geometry
    @property
    def n_cells(self) -> int:
        return self.resolution ** 3

    def cell_size(self) -> np.ndarray:
        """Edge lengths of one cell: numpy float32 [3]."""
        return (self.bbox_max - self.bbox_min) / self.resolution

    def half_diagonal(self) -> float:
        return 0.5 * float(np.linalg.norm(self.cell_size()))

    def band(self, inv_s: float) -> float:
        """|sdf| below which a cell counts as near-surface (normalised units)."""
        return self.band_cells * self.half_diagonal() + self.band_softness / max(float(inv_s), 1e-6)

    def cell_centres(self, flat: np.ndarray) -> np.ndarray:
        """Centres [len(flat), 3] float32 of the cells with these flat indices."""
        res = self.resolution
        ijk = np.stack([flat // (res * res), (flat // res) % res, flat % res], axis=1)
        return (self.bbox_min + (ijk + 0.5) * self.cell_size()).astype(np.float32)

    def cell_of(self, points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(flat cell index [N] int64, inside the box [N] bool) of numpy points [N,3]."""
        points = np.asarray(points, dtype=np.float32)
        in_box = np.all((points >= self.bbox_min) & (points <= self.bbox_max), axis=1)
        ijk = np.floor((points - self.bbox_min) / self.cell_size()).astype(np.int64)
        ijk = np.clip(ijk, 0, self.resolution - 1)
        return (ijk[:, 0] * self.resolution + ijk[:, 1]) * self.resolution + ijk[:, 2], in_box

    # --------------------------------------------------------------------------------------------- the hull
    def set_hull(self, hull: np.ndarray):
        """Take ``hull`` (bool [R^3]) as the outer bound; every hull cell is sampled until the first update."""
        self.hull = np.asarray(hull, dtype=bool).reshape(-1).copy()
        self._hull_cells = np.nonzero(self.hull)[0]
        self._hull_centres = None  # float32 [n_hull, 3], made by the first classify and kept while the hull is
        self._carved = None  # jt float32 [R^3], made on first use by free_points
        state = np.where(self.hull, SURFACE, OUTSIDE).astype(np.uint8)
        self.set_state(state)

    def init_from_masks(self, intrinsics, c2w, masks, use_corners: bool = True) -> float:
        """Carve the visual hull from the masks (when ``use_visual_hull``): intrinsics [N,3,3], c2w [N,4,4]
        (normalised frame), masks [N,H,W] (foreground true; dilate them first to forgive mask errors).
        Returns the fraction of cells the hull keeps."""
        if self.use_visual_hull:
            hull = carve_visual_hull(intrinsics, c2w, masks, self.bbox_min, self.bbox_max, self.resolution,
                                     self.hull_min_background_views, use_corners)
            self.set_hull(hull.numpy().astype(bool))
        return float(self.hull.mean())

    def bound_by_unit_sphere(self) -> float:
        """Without masks: the hull is the cells the unit sphere reaches (the object lies inside it; outside is the
        background's). Returns the fraction of cells kept."""
        centres = self.cell_centres(np.arange(self.n_cells))
        self.set_hull(np.linalg.norm(centres, axis=1) <= 1.0 + self.half_diagonal())
        return float(self.hull.mean())

    def tight_bbox(self, margin: float = 0.0):
        """(min [3], max [3]) numpy float32 of the hull's cells, grown by ``margin`` (normalised-frame units) on
        every side and clipped to the grid's box; the whole box when the hull is empty."""
        if self._hull_cells.size == 0:
            return self.bbox_min.copy(), self.bbox_max.copy()
        centres = self.cell_centres(self._hull_cells)
        half = 0.5 * self.cell_size()
        lo = centres.min(axis=0) - half - margin
        hi = centres.max(axis=0) + half + margin
        return (np.maximum(lo, self.bbox_min).astype(np.float32),
                np.minimum(hi, self.bbox_max).astype(np.float32))

    # ---------------------------------------------------------------------------------------- classification
    def set_state(self, state: np.ndarray):
        self.state = np.asarray(state, dtype=np.uint8).reshape(-1)
        self._sampled = self.sampled_cells(self.state)
        self.occupied = jt.array(self._sampled)

    def sampled_cells(self, state: np.ndarray) -> np.ndarray:
        """bool [R^3]: SURFACE cells and the INSIDE cells that touch a non-INSIDE cell (26-neighbourhood)."""
        inside = state.reshape((self.resolution,) * 3) == INSIDE
        layer = inside & dilate_cells(~inside, 1)
        return (state == SURFACE) | layer.reshape(-1)

    @property
    def occupied_fraction(self) -> float:
        """Fraction of all cells the sampler marches."""
        return float(np.mean(self._sampled))

    def fractions(self) -> dict:
        """Fraction of all cells in each state, for the log."""
        return {name: float(np.mean(self.state == value)) for value, name in _STATE_NAMES.items()}

    def classify(self, sdf_fn: Callable[[np.ndarray], np.ndarray], inv_s: float) -> np.ndarray:
        """State uint8 [R^3] from the SDF at every hull cell's centre (the rule in the module docstring); does not
        change the grid. ``sdf_fn`` maps numpy points [N,3] float32 to SDF values [N]."""
        state = np.full(self.n_cells, OUTSIDE, dtype=np.uint8)
        if self._hull_cells.size == 0:
            return state
        band = self.band(inv_s)
        if self._hull_centres is None:
            # Kept: computing the centres from the flat indices was ~80% of an update's host time (128^3 cells, a
            # full hull: ~70 of ~90 ms on 2 cores), and the demo updates every 100 steps
            self._hull_centres = self.cell_centres(self._hull_cells)
        centres = self._hull_centres
        sdf = np.concatenate([np.asarray(sdf_fn(centres[s:s + self.chunk]), dtype=np.float32).reshape(-1)
                              for s in range(0, len(centres), self.chunk)])
        hull_state = np.where(np.abs(sdf) <= band, SURFACE, np.where(sdf < 0, INSIDE, OUTSIDE))
        state[self._hull_cells] = hull_state
        return state

    def is_update_step(self, step: int) -> bool:
        return step >= self.update_start and (step - self.update_start) % self.update_every == 0

    def update_every_n_steps(self, step: int, sdf_fn: Callable[[np.ndarray], np.ndarray],
                             inv_s_fn: Callable[[], float]) -> bool:
        """Re-classify the hull cells on the schedule; returns whether it did. ``inv_s_fn`` is called only then
        (reading inv_s waits for the GPU). A classification without any near-surface cell (the SDF left the hull)
        keeps the previous state, with a warning."""
        if not self.is_update_step(step):
            return False
        state = self.classify(sdf_fn, inv_s_fn())
        if not np.any(state == SURFACE):
            logger.warning("occupancy update at step %d: the SDF crosses zero in no hull cell; keeping the "
                           "previous cells", step)
            return False
        self.set_state(state)
        return True

    # ---------------------------------------------------------------------------------------------- sampling
    def ray_march(self, rays_o: jt.Var, rays_d: jt.Var, step_size: float, max_steps: int, jitter=None,
                  near_min: float = 0.0) -> PackedSamples:
        """PackedSamples of the rays [R,3] inside near-surface cells (see jnerf.ops.occupancy.ray_march)."""
        return ray_march(rays_o, rays_d, self.occupied, self.bbox_min, self.bbox_max, self.resolution,
                         step_size, max_steps, jitter, near_min)

    def free_points(self, n: int) -> Tuple[jt.Var, jt.Var]:
        """n points [n,3] uniform over the box and whether each lies in a cell the hull carved away [n] float32
        (1: known to be empty space, so the SDF must be positive there). For the regularisers that keep the SDF
        valid where rays do not go."""
        lo = jt.array(self.bbox_min).reshape((1, 3))
        points = lo + jt.rand((n, 3)) * jt.array(self.bbox_max - self.bbox_min).reshape((1, 3))
        ijk = ((points - lo) / jt.array(self.cell_size()).reshape((1, 3))).floor().int32()
        ijk = jt.clamp(ijk, 0, self.resolution - 1)
        flat = (ijk[:, 0] * self.resolution + ijk[:, 1]) * self.resolution + ijk[:, 2]
        if self._carved is None:
            self._carved = jt.array((~self.hull).astype(np.float32))
        return points.stop_grad(), self._carved[flat].stop_grad()

    # ------------------------------------------------------------------------------------- mesh extraction
    def extraction_prior(self, state: np.ndarray):
        """For mesh extraction with a classification ``state``: a function of numpy points [N,3] returning
        (evaluate [N] bool, value [N] float32). The network is evaluated in the cells the sampler would march, in
        near-surface cells' 26 neighbours, and wherever an INSIDE cell touches an OUTSIDE one (there the network,
        not the grid, must say where the surface is); the other points take the sign their cell is known to have
        (negative inside, positive outside or beyond the box), with the magnitude of one cell half-diagonal, so a
        skipped cell never adds a surface.
        """
        cube = state.reshape((self.resolution,) * 3)
        inside, outside = cube == INSIDE, cube == OUTSIDE
        near = (dilate_cells(cube == SURFACE, 1) | (inside & dilate_cells(outside, 1))
                | (outside & dilate_cells(inside, 1))).reshape(-1) | self.sampled_cells(state)
        inside = state == INSIDE
        magnitude = np.float32(self.half_diagonal())

        def prior(points):
            flat, in_box = self.cell_of(points)
            evaluate = in_box & near[flat]
            value = np.where(in_box & inside[flat], -magnitude, magnitude).astype(np.float32)
            return evaluate, value
        return prior

    # -------------------------------------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict:
        """Numpy arrays for a checkpoint."""
        return {"bbox_min": self.bbox_min.copy(), "bbox_max": self.bbox_max.copy(),
                "resolution": np.int64(self.resolution), "hull": self.hull.copy(), "state": self.state.copy()}

    def load_state_dict(self, state: dict):
        """Restore from ``state_dict()``; the box and resolution are taken from the state."""
        resolution = int(state["resolution"])
        for key in ("hull", "state"):
            if key not in state:
                raise ValueError(f"occupancy state: no '{key}' (a checkpoint written before the SDF-aware grid?)")
            if np.asarray(state[key]).size != resolution ** 3:
                raise ValueError(f"state['{key}']: expected {resolution ** 3} cells for resolution {resolution}, "
                                 f"got {np.asarray(state[key]).size}")
        self.bbox_min, self.bbox_max = as_box(state["bbox_min"], state["bbox_max"])
        self.resolution = resolution
        self.set_hull(state["hull"])
        self.set_state(state["state"])
