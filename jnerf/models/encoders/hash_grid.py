"""Multiresolution hash grid encoder (Instant-NGP / tcnn style) with a progressive level mask.

The levels' scales grow geometrically from ``base_resolution`` to ``finest_resolution``; only the first
``n_active`` levels contribute (the others output 0), which the SDF network raises during training.
"""
import math

import numpy as np

import jittor as jt
from jittor import nn

from jnerf.ops.hashgrid import hash_encode, hash_encode_stencil, level_resolutions
from jnerf.utils.checks import require_int
from jnerf.utils.registry import ENCODERS

__all__ = ["HashGridEncoder", "level_scales", "growth_factor"]

_TABLE_DTYPES = ("float32", "float16")
_TABLE_INIT_BOUND = 1e-4


def growth_factor(n_levels, base_resolution, finest_resolution=None, per_level_scale=None):
    """Scale ratio b between consecutive levels: per_level_scale if given, else (finest/base)^(1/(L-1))."""
    if per_level_scale is not None:
        if per_level_scale < 1:
            raise ValueError(f"HashGridEncoder: per_level_scale must be >= 1, got {per_level_scale}")
        return float(per_level_scale)
    if finest_resolution is None:
        raise ValueError("HashGridEncoder: give finest_resolution or per_level_scale")
    if finest_resolution < base_resolution:
        raise ValueError(f"HashGridEncoder: finest_resolution ({finest_resolution}) must be >= "
                         f"base_resolution ({base_resolution})")
    return math.exp(math.log(finest_resolution / base_resolution) / max(n_levels - 1, 1))


def level_scales(n_levels, base_resolution, per_level_scale):
    """scale_l = base * b^l - 1 as float32 [L] (computed in float64)."""
    return (base_resolution * per_level_scale ** np.arange(n_levels, dtype=np.float64) - 1).astype(np.float32)


@ENCODERS.register_module()
class HashGridEncoder(nn.Module):
    """x [N,3] in [0,1]^3 -> [N, n_levels*n_features_per_level] float32, level-major.

    ``per_level_scale``, when given, takes precedence over ``finest_resolution``. ``start_level`` is the number of
    levels active at construction. ``dtype`` is the table's storage type ('float32' or 'float16').
    """

    def __init__(self, n_levels=16, n_features_per_level=2, log2_hashmap_size=19, base_resolution=32,
                 finest_resolution=2048, per_level_scale=None, start_level=4, dtype="float32"):
        super().__init__()
        self.n_levels = require_int("HashGridEncoder", "n_levels", n_levels, 1)
        self.n_features_per_level = require_int("HashGridEncoder", "n_features_per_level",
                                                n_features_per_level, 1)
        self.log2_hashmap_size = require_int("HashGridEncoder", "log2_hashmap_size", log2_hashmap_size, 1)
        if not base_resolution > 1:
            raise ValueError(f"HashGridEncoder: base_resolution must be > 1, got {base_resolution}")
        if dtype not in _TABLE_DTYPES:
            raise ValueError(f"HashGridEncoder: dtype must be one of {_TABLE_DTYPES}, got {dtype!r}")
        self.per_level_scale = growth_factor(self.n_levels, base_resolution, finest_resolution, per_level_scale)
        self.scales = level_scales(self.n_levels, base_resolution, self.per_level_scale)  # [L] np.float32
        self.resolutions = level_resolutions(self.scales)
        self.table_size = 2 ** self.log2_hashmap_size
        self.table = jt.init.uniform((self.n_levels, self.table_size, self.n_features_per_level), "float32",
                                     -_TABLE_INIT_BOUND, _TABLE_INIT_BOUND).cast(dtype)  # [L, T, F]
        self._n_active = self.n_levels
        self.set_active_levels(start_level)
        self.start_level = self._n_active

    @property
    def out_dim(self):
        return self.n_levels * self.n_features_per_level

    @property
    def n_active(self):
        """Number of levels that contribute to the output (the rest output 0)."""
        return self._n_active

    def set_active_levels(self, n: int):
        self._n_active = require_int("HashGridEncoder", "active levels", n, 1)
        if self._n_active > self.n_levels:
            raise ValueError(f"HashGridEncoder: active levels must be <= n_levels ({self.n_levels}), got {n}")

    def cell_size(self, level: int) -> float:
        """Edge of one cell of ``level`` in the encoder's [0,1] input units (1/scale_l)."""
        if not 0 <= level < self.n_levels:
            raise ValueError(f"HashGridEncoder: level must be in [0, {self.n_levels}), got {level}")
        return 1.0 / float(self.scales[level])

    def execute(self, x: jt.Var) -> jt.Var:
        return hash_encode(x, self.table, self.scales, self._n_active)

    def encode_stencil(self, x: jt.Var, h: float, stencil: str = "central") -> jt.Var:
        """A finite-difference stencil of x [N,3] (|h| at most one cell of the finest active level), encoded in one
        call: [KN, out_dim], row k*N + n for entry k of ``STENCILS[stencil]`` ("central": centre, +x, -x, +y, -y,
        +z, -z; "tetrahedral": centre and 4 tetrahedron vertices). Equal to ``self(stencil_points(x, h,
        stencil))``; on CUDA the points share their common corners."""
        return hash_encode_stencil(x, self.table, self.scales, self._n_active, h, stencil)
