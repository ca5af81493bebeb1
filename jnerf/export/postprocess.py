"""Optional mesh post-processing with pymeshlab (MeshLab's filters; an optional install: pip install jnerf[mesh]):
small islands removed, small holes closed, Taubin smoothing, quadric decimation to a face budget. Geometry only:
the exporter colours the vertices afterwards from the network, so no colour is interpolated."""
from typing import Tuple

import numpy as np

from jnerf.utils.checks import require_int
from jnerf.utils.errors import UserError

__all__ = ["MeshPostprocess"]


class MeshPostprocess:
    """min_component_faces: drop connected pieces with fewer faces (0: keep all); max_hole_edges: close holes whose
    boundary has at most this many edges (0: none); smooth_iterations: Taubin smoothing steps (0: none; Taubin keeps
    the volume, unlike plain Laplacian smoothing); target_faces: decimate to about this many faces with quadric
    edge collapse, keeping topology and normals (0: no decimation)."""

    def __init__(self, min_component_faces: int = 0, max_hole_edges: int = 0, smooth_iterations: int = 0,
                 target_faces: int = 0):
        self.min_component_faces = require_int("mesh.postprocess", "min_component_faces", min_component_faces, 0)
        self.max_hole_edges = require_int("mesh.postprocess", "max_hole_edges", max_hole_edges, 0)
        self.smooth_iterations = require_int("mesh.postprocess", "smooth_iterations", smooth_iterations, 0)
        self.target_faces = require_int("mesh.postprocess", "target_faces", target_faces, 0)

    def __call__(self, verts: np.ndarray, faces: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(vertices [V,3] float32, faces [F,3] int64) after the filters, in the order listed above."""
        try:
            import pymeshlab
        except ImportError as err:
            raise UserError("mesh.postprocess needs pymeshlab: pip install 'jnerf[mesh]' (or set "
                            "mesh.postprocess=None)") from err
        ms = pymeshlab.MeshSet()
        ms.add_mesh(pymeshlab.Mesh(vertex_matrix=np.asarray(verts, np.float64),
                                   face_matrix=np.asarray(faces, np.int32)))
        if self.min_component_faces:
            ms.meshing_remove_connected_component_by_face_number(mincomponentsize=self.min_component_faces)
        if self.max_hole_edges:
            # new faces unselected: a selection left behind makes the decimation below skip the mesh
            ms.meshing_close_holes(maxholesize=self.max_hole_edges, newfaceselected=False)
        if self.smooth_iterations:
            ms.apply_coord_taubin_smoothing(stepsmoothnum=self.smooth_iterations)
        if self.target_faces and ms.current_mesh().face_number() > self.target_faces:
            ms.meshing_decimation_quadric_edge_collapse(targetfacenum=self.target_faces, preservenormal=True,
                                                        preservetopology=True, optimalplacement=True)
        mesh = ms.current_mesh()
        return mesh.vertex_matrix().astype(np.float32), mesh.face_matrix().astype(np.int64)
