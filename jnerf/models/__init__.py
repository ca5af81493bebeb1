"""Model components, registered on import: encoders, networks, samplers (occupancy grid, scene box), renderers,
losses."""
from . import encoders, networks, samplers, renderers, losses  # noqa: F401
