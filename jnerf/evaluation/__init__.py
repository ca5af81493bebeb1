"""Scoring meshes against ground truth (Chamfer distance, F-score), numpy/scipy/trimesh only: it never loads
Jittor, so meshes can be scored on any machine, e.g. next to a numpy 2 that Jittor cannot use."""
from .mesh_eval import evaluate_mesh, format_report, missing_dependency

__all__ = ["evaluate_mesh", "format_report", "missing_dependency"]
