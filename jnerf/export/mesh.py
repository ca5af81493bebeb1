"""Mesh building blocks, numpy only: the SDF lattice in bounded-memory chunks, marching cubes with outward faces,
connected components and clean-up, and atomic PLY/OBJ writers."""
import logging
import os

import numpy as np

logger = logging.getLogger("jnerf")


def grid_points(bbox_min, bbox_max, resolution):
    """The [resolution^3, 3] float32 lattice over the box, x-major (x slowest), as marching cubes indexes it."""
    axes = [np.linspace(lo, hi, resolution, dtype=np.float32) for lo, hi in zip(bbox_min, bbox_max)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def evaluate_sdf_volume(sdf_fn, bbox_min, bbox_max, resolution, chunk=1 << 18, prior_fn=None, progress=True):
    """SDF sampled on the lattice, [res, res, res] float32.

    ``sdf_fn`` maps an [n,3] float32 numpy array to [n] SDF values. Chunks of one x-slab block at a time keep
    memory bounded. ``prior_fn`` (optional) maps the same points to (evaluate [n] bool, value [n] float32): only the
    points marked ``evaluate`` go through ``sdf_fn``, the others take ``value`` (e.g. the sign an occupancy grid
    knows for the cells it skips).
    """
    bbox_min, bbox_max = np.asarray(bbox_min, np.float32), np.asarray(bbox_max, np.float32)
    axes = [np.linspace(lo, hi, resolution, dtype=np.float32) for lo, hi in zip(bbox_min, bbox_max)]
    volume = np.empty((resolution,) * 3, np.float32)
    yz = np.stack(np.meshgrid(axes[1], axes[2], indexing="ij"), -1).reshape(-1, 2)
    slabs = max(1, chunk // len(yz))
    iterator = range(0, resolution, slabs)
    if progress:
        from tqdm import tqdm
        iterator = tqdm(iterator, desc=f"marching cubes {resolution}^3", unit="slab", leave=False)
    for start in iterator:
        xs = axes[0][start:start + slabs]
        pts = np.concatenate([np.repeat(xs, len(yz))[:, None], np.tile(yz, (len(xs), 1))], 1)
        if prior_fn is None:
            keep, values = np.ones(len(pts), bool), np.empty(len(pts), np.float32)
        else:
            keep, values = prior_fn(pts)
        if keep.any():
            values[keep] = sdf_fn(pts[keep])
        volume[start:start + len(xs)] = values.reshape(len(xs), resolution, resolution)
    return volume


def _mcubes_marching_cubes():
    """PyMCubes' marching cubes. Its package __init__ also imports scipy for smoothing helpers we do not use;
    where that scipy is broken (e.g. built for another numpy) load the compiled core directly."""
    try:
        import mcubes
        return mcubes.marching_cubes
    except (ImportError, AttributeError):
        import glob
        import importlib.machinery
        import importlib.util
        import sys
        sys.modules.pop("mcubes", None)
        spec = importlib.util.find_spec("mcubes")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("PyMCubes is not installed: pip install PyMCubes") from None
        core = glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "_mcubes*.so"))
        if not core:
            raise
        loader = importlib.machinery.ExtensionFileLoader("mcubes._mcubes", core[0])
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader("mcubes._mcubes", loader))
        loader.exec_module(module)
        return module.marching_cubes


def marching_cubes(volume, bbox_min, bbox_max, level=0.0):
    """Zero level set of an SDF volume (negative inside) -> (vertices [V,3] float32 in box units, faces [F,3]).

    Faces are oriented so that their normals point outwards (towards positive SDF).
    """
    if not (volume.min() < level < volume.max()):
        raise ValueError(f"the SDF never crosses {level} inside the box (range {volume.min():.4g} to "
                         f"{volume.max():.4g}): nothing to mesh; is training diverged or the box wrong?")
    # PyMCubes orients faces towards decreasing values; negate so outward = increasing SDF.
    verts, faces = _mcubes_marching_cubes()(-volume, -level)
    res = np.array(volume.shape, np.float32) - 1
    bbox_min, bbox_max = np.asarray(bbox_min, np.float32), np.asarray(bbox_max, np.float32)
    verts = bbox_min + verts.astype(np.float32) / res * (bbox_max - bbox_min)
    return verts.astype(np.float32), faces.astype(np.int64)


def connected_components(n_verts, faces):
    """Component label [n_verts] int64 of each vertex (its smallest vertex index), faces [F,3] sharing vertices
    joined. Vectorised union-find: hook each root under the smallest root it touches, then compress paths; a
    few rounds for marching-cubes meshes. numpy only, so exporting a mesh needs neither scipy nor networkx."""
    parent = np.arange(n_verts, dtype=np.int64)
    faces = np.asarray(faces, np.int64)
    u = np.concatenate([faces[:, 0], faces[:, 1]])
    v = np.concatenate([faces[:, 1], faces[:, 2]])
    while True:
        ru, rv = parent[u], parent[v]
        differ = ru != rv
        if not differ.any():
            return parent
        lo, hi = np.minimum(ru[differ], rv[differ]), np.maximum(ru[differ], rv[differ])
        np.minimum.at(parent, hi, lo)        # parent[i] <= i always: no cycles
        while True:                          # path compression until every vertex points at its root
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand


def submesh(verts, faces, keep_faces):
    """(vertices, faces) of the faces where ``keep_faces`` [F] is true, unused vertices dropped, faces re-indexed."""
    kept = np.asarray(faces, np.int64)[keep_faces]
    used, new_faces = np.unique(kept, return_inverse=True)
    return np.asarray(verts, np.float32)[used], new_faces.reshape(-1, 3).astype(np.int64)


def keep_large_components(verts, faces, min_fraction=0.0, largest_only=True):
    """Drop floaters: keep the largest connected component (or every component with at least ``min_fraction``
    of the faces); unused vertices are dropped and faces re-indexed."""
    faces = np.asarray(faces, np.int64)
    if len(faces) == 0:
        return verts, faces
    face_label = connected_components(len(verts), faces)[faces[:, 0]]
    labels, counts = np.unique(face_label, return_counts=True)
    if len(labels) <= 1:
        return verts, faces
    keep_labels = labels[[int(np.argmax(counts))]] if largest_only else labels[counts >= min_fraction * len(faces)]
    keep = np.isin(face_label, keep_labels)
    logger.info("mesh clean-up: kept %d of %d components (%d of %d faces)", len(keep_labels), len(labels),
                int(keep.sum()), len(faces))
    return submesh(verts, faces, keep)


def _write_ply(f, verts, faces, rgb):
    """Binary little-endian PLY: float xyz (+ uchar rgb) per vertex, uchar-count int-index faces."""
    vertex_fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if rgb is not None:
        vertex_fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    header = ["ply", "format binary_little_endian 1.0", "comment written by jnerf", f"element vertex {len(verts)}"]
    header += [f"property {'float' if t == '<f4' else 'uchar'} {name}" for name, t in vertex_fields]
    header += [f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    f.write(("\n".join(header) + "\n").encode("ascii"))
    vertex = np.empty(len(verts), dtype=vertex_fields)
    for i, axis in enumerate("xyz"):
        vertex[axis] = verts[:, i]
    if rgb is not None:
        for i, channel in enumerate(("red", "green", "blue")):
            vertex[channel] = rgb[:, i]
    face = np.empty(len(faces), dtype=[("n", "u1"), ("index", "<i4", (3,))])
    face["n"] = 3
    face["index"] = faces
    f.write(vertex.tobytes())
    f.write(face.tobytes())


def _write_obj(f, verts, faces, rgb):
    """Text OBJ; colours as the common 'v x y z r g b' extension (floats in [0,1]) that MeshLab reads."""
    cols = verts if rgb is None else np.concatenate([verts, rgb / 255.0], 1)
    np.savetxt(f, cols, fmt="v" + " %.6f" * cols.shape[1])
    np.savetxt(f, faces + 1, fmt="f %d %d %d")


def atomic_write(path, write):
    """Call ``write(f)`` on a binary temp file beside ``path``, then rename it to ``path`` (creating the folder):
    a reader never sees a half-written file, and a failed write (a full disk, say) leaves none behind but raises a
    UserError naming the file. Returns ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ext = os.path.splitext(path)[1]
    tmp = f"{path}.tmp{ext}"
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        from jnerf.utils.errors import UserError
        raise UserError(f"cannot write mesh {path} ({err.strerror or err}); the checkpoints are intact: write it "
                        "again with --task mesh") from err
    return path


def save_mesh(path, verts, faces, colors=None):
    """Write PLY (binary) or OBJ (by extension) atomically; ``colors`` [V,3] float in [0,1] become vertex colours."""
    writers = {".ply": _write_ply, ".obj": _write_obj}
    ext = os.path.splitext(path)[1].lower()
    if ext not in writers:
        raise ValueError(f"mesh format of {path} not supported: use .ply or .obj")
    verts = np.asarray(verts, np.float32).reshape(-1, 3)
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    rgb = None if colors is None else (np.clip(colors, 0, 1) * 255 + 0.5).astype(np.uint8)
    return atomic_write(path, lambda f: writers[ext](f, verts, faces, rgb))
