"""Mesh export (EXPORTERS): ``MeshExporter`` turns a trained model into mesh files; ``mesh`` holds the numpy
building blocks (lattice evaluation, marching cubes, components, writers)."""
from .exporter import MeshExporter

__all__ = ["MeshExporter"]
