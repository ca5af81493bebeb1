"""Model components, registered on import: encoders, networks, samplers/renderers, losses."""
from . import encoders, networks, samplers, losses  # noqa: F401
