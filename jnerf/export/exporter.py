"""Mesh export: marching cubes of the model's SDF over the scene box, with the occupancy grid's signs for the cells
it skips; clean-up, vertex colours, world units and file names. One place to change what a mesh file holds."""
import logging
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from jnerf.dataset.cameras import normalised_to_world
from jnerf.export import mesh as mesh_ops
from jnerf.utils.checks import require_int
from jnerf.utils.registry import EXPORTERS, build_settings
from .postprocess import MeshPostprocess

__all__ = ["MeshExporter"]

logger = logging.getLogger("jnerf")

CLEAN_MODES = ("largest", "small", "none")
FORMATS = ("ply", "obj")


@EXPORTERS.register_module()
class MeshExporter:
    """Writes ``mesh_<tag>_res<resolution>.<fmt>`` (world units; ``_normalized`` too when asked) into a folder.

    resolution / preview_resolution: marching-cubes lattice per axis for final / preview meshes; chunk: points per
    network call; level: the iso-level; mask_with_occupancy: evaluate the network only near the surface the
    occupancy grid knows (the other cells take its sign: same mesh, less work); clean: 'largest' component,
    'small' (drop components below ``min_component_fraction`` of the faces) or 'none'; vertex_colors: colour each
    vertex as seen head-on; formats: 'ply' and/or 'obj'; save_normalized: also write the normalised-frame mesh;
    postprocess: None, or the arguments of ``MeshPostprocess`` (pymeshlab: islands, holes, smoothing, decimation),
    applied to final meshes (not previews) before the colours; cull_to_unit_sphere: drop faces outside the unit sphere
    (scenes without masks: what lies beyond it is background) before the clean-up.
    """

    def __init__(self, resolution: int = 512, preview_resolution: int = 128, chunk: int = 1 << 18,
                 level: float = 0.0, mask_with_occupancy: bool = True, clean: str = "largest",
                 min_component_fraction: float = 0.01, vertex_colors: bool = True,
                 formats: Sequence[str] = ("ply",), save_normalized: bool = False,
                 postprocess: Optional[dict] = None, cull_to_unit_sphere: bool = False):
        self.resolution = require_int("mesh", "resolution", resolution, 2)
        self.preview_resolution = require_int("mesh", "preview_resolution", preview_resolution, 2)
        self.chunk = require_int("mesh", "chunk", chunk, 1)
        if clean not in CLEAN_MODES:
            raise ValueError(f"mesh.clean: expected one of {', '.join(CLEAN_MODES)}, got {clean!r}")
        if not 0.0 <= min_component_fraction <= 1.0:
            raise ValueError(f"mesh.min_component_fraction: expected a value in [0, 1], got {min_component_fraction}")
        formats = [formats] if isinstance(formats, str) else list(formats)
        bad = [f for f in formats if f not in FORMATS]
        if bad or not formats:
            raise ValueError(f"mesh.formats: expected a non-empty list of {', '.join(FORMATS)}, got {formats}")
        self.level, self.mask_with_occupancy = float(level), bool(mask_with_occupancy)
        self.clean, self.min_component_fraction = clean, float(min_component_fraction)
        self.vertex_colors, self.formats, self.save_normalized = bool(vertex_colors), formats, bool(save_normalized)
        self.cull_to_unit_sphere = bool(cull_to_unit_sphere)
        self.postprocess = None if postprocess is None else build_settings(MeshPostprocess, postprocess,
                                                                             "mesh.postprocess")

    def extract(self, model, grid, resolution: int) -> Tuple[np.ndarray, np.ndarray]:
        """(vertices [V,3] float32 in the normalised frame, faces [F,3] int64) of the model's zero level set."""
        # The grid's signs come from a fresh classification of the current SDF, so a preview never depends on (or
        # changes) where the training schedule left the grid.
        prior = (grid.extraction_prior(grid.classify(model.sdf_numpy, model.inv_s_value()))
                 if self.mask_with_occupancy else None)
        volume = mesh_ops.evaluate_sdf_volume(model.sdf_numpy, grid.bbox_min, grid.bbox_max, resolution,
                                              chunk=self.chunk, prior_fn=prior)
        verts, faces = mesh_ops.marching_cubes(volume, grid.bbox_min, grid.bbox_max, level=self.level)
        if self.cull_to_unit_sphere:  # without masks: the object is what lies inside the unit sphere
            verts, faces = mesh_ops.submesh(verts, faces, np.all(np.linalg.norm(verts, axis=1)[faces] <= 1.0, 1))
        if self.clean == "largest":
            verts, faces = mesh_ops.keep_large_components(verts, faces, largest_only=True)
        elif self.clean == "small":
            verts, faces = mesh_ops.keep_large_components(verts, faces, min_fraction=self.min_component_fraction,
                                                          largest_only=False)
        return verts, faces

    def export(self, model, grid, scale_mat: np.ndarray, out_dir: str, tag: str,
               resolution: Optional[int] = None, preview: bool = False) -> Tuple[List[str], int, int]:
        """Extract, post-process (final meshes), colour and write the mesh; returns (paths, number of vertices,
        number of faces). ``resolution`` defaults to the preview or the final resolution."""
        resolution = resolution or (self.preview_resolution if preview else self.resolution)
        verts, faces = self.extract(model, grid, resolution)
        if self.postprocess is not None and not preview:
            verts, faces = self.postprocess(verts, faces)
        colors = model.surface_colors(verts, self.chunk) if self.vertex_colors else None
        frames = [("", normalised_to_world(verts, scale_mat))]
        if self.save_normalized:
            frames.append(("_normalized", verts))
        paths = [mesh_ops.save_mesh(os.path.join(out_dir, f"mesh_{tag}_res{resolution}{suffix}.{fmt}"),
                                    points, faces, colors)
                 for fmt in self.formats for suffix, points in frames]
        return paths, len(verts), len(faces)
