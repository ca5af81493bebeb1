"""Mesh export: marching cubes of the model's SDF over the scene box, with the occupancy grid's signs for the cells
it skips; clean-up, vertex colours, a baked texture, world units and file names. One place to change what a mesh
file holds."""
import logging
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from jnerf.dataset.cameras import normalised_to_world
from jnerf.export import mesh as mesh_ops
from jnerf.utils.checks import require_int
from jnerf.utils.registry import EXPORTERS, build_settings
from .postprocess import MeshPostprocess
from .texture import TextureSettings, TexturedMesh, bake_texture, save_glb, save_textured_obj

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
    (scenes without masks: what lies beyond it is background) before the clean-up; texture: None, True (the
    defaults) or the arguments of ``TextureSettings``: final meshes also get ``..._tex<size>.obj/.mtl/.png`` and
    ``.glb`` (a UV atlas with the colour network baked into it, world units).
    """

    def __init__(self, resolution: int = 512, preview_resolution: int = 128, chunk: int = 1 << 18,
                 level: float = 0.0, mask_with_occupancy: bool = True, clean: str = "largest",
                 min_component_fraction: float = 0.01, vertex_colors: bool = True,
                 formats: Sequence[str] = ("ply",), save_normalized: bool = False,
                 postprocess: Optional[dict] = None, cull_to_unit_sphere: bool = False, texture=None):
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
        self.texture = texture_settings(texture)
        self.last_textured: Optional[TexturedMesh] = None   # normalised frame, for turntables and comparisons

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
        if self.texture is not None and not preview:
            paths += self.write_textured(model, verts, faces, scale_mat,
                                         os.path.join(out_dir, f"mesh_{tag}_res{resolution}"), self.texture)
        return paths, len(verts), len(faces)

    def export_textured(self, model, grid, scale_mat: np.ndarray, out_dir: str, tag: str,
                        resolution: Optional[int] = None, settings: Optional[TextureSettings] = None) -> List[str]:
        """Only the textured files of a final mesh (``--task texture``), with ``settings`` or the config's
        ``texture`` (its defaults when that is None); returns their paths."""
        resolution = resolution or self.resolution
        verts, faces = self.extract(model, grid, resolution)
        if self.postprocess is not None:
            verts, faces = self.postprocess(verts, faces)
        settings = settings or self.texture or TextureSettings()
        return self.write_textured(model, verts, faces, scale_mat, os.path.join(out_dir, f"mesh_{tag}_res{resolution}"),
                                   settings)

    def write_textured(self, model, verts, faces, scale_mat, stem: str, settings: TextureSettings) -> List[str]:
        """Decimate (settings.target_faces), bake and write ``<stem>_tex<size>.{obj,mtl,png,glb}`` in world units;
        the textured mesh in the normalised frame is kept in ``last_textured``."""
        if settings.target_faces and len(faces) > settings.target_faces:
            n_before = len(faces)
            verts, faces = MeshPostprocess(target_faces=settings.target_faces)(verts, faces)
            logger.info("texture: decimated %d -> %d faces", n_before, len(faces))
        textured = bake_texture(lambda points: model.surface_colors(points, self.chunk), verts, faces,
                                settings.size, settings.padding, settings.dilation, chunk=self.chunk)
        self.last_textured = textured
        world = normalised_to_world(textured.vertices, scale_mat)
        # normals transform with the inverse transpose of the frame's linear part (a similarity in practice)
        normals = textured.normals @ np.linalg.inv(np.asarray(scale_mat, np.float64)[:3, :3])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-30)
        stem = f"{stem}_tex{settings.size}"
        paths = []
        if "obj" in settings.formats:
            paths += save_textured_obj(stem + ".obj", world, textured.faces, textured.uv, textured.texture)
        if "glb" in settings.formats:
            paths.append(save_glb(stem + ".glb", world, textured.faces, textured.uv, textured.texture, normals))
        logger.info("textured mesh: %d faces, %dx%d texture (%.0f%% covered) -> %s", len(textured.faces),
                    settings.size, settings.size, 100 * textured.filled.mean(), ", ".join(paths))
        return paths


def texture_settings(texture) -> Optional[TextureSettings]:
    """``mesh.texture``: None/False (off), True (the defaults) or a dict of ``TextureSettings`` arguments."""
    if texture is None or texture is False:
        return None
    if texture is True:
        return TextureSettings()
    if not isinstance(texture, dict):
        raise ValueError(f"mesh.texture: expected None, True or a dict of settings (e.g. dict(size=2048); on the "
                         f"command line {{'size': 2048}}), got {texture!r}")
    return build_settings(TextureSettings, texture, "mesh.texture")
