"""Input encoders (ENCODERS registry): the multiresolution hash grid for positions, spherical harmonics for directions."""
from .hash_grid import HashGridEncoder, growth_factor, level_scales
from .sh import SHEncoder

__all__ = ["HashGridEncoder", "SHEncoder", "growth_factor", "level_scales"]
