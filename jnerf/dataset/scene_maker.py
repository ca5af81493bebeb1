"""Render any triangle mesh into a NeuS-format scene folder (synthetic data with exact cameras and a GT mesh).

Output layout (what `NeuSDataset` reads): ``cameras_sphere.npz`` (world_mat_i, scale_mat_i), ``image/000.png``..,
``mask/000.png``.., and ``gt_mesh.ply`` (the input mesh, world units, binary PLY).
Cameras sit on a Fibonacci lattice over a sphere (or the hemisphere above ``up``) and look at the centre of the
object's bounding sphere; scale_mat maps that sphere, enlarged by ``margin``, onto the unit sphere.
Appearance depends only on the 3D surface point (a procedural pattern times a smooth colour field, Lambertian shading
from a light fixed in the world plus ambient), so every view agrees and photometric consistency pins the geometry.
Rendering uses `rasterizer.rasterize` with the cameras read back through `cameras.load_cameras_npz`, i.e. exactly the
projection and pixel-centre convention of the loader.
"""
import os
import time

import numpy as np

from .cameras import fibonacci_directions, load_cameras_npz, look_at_c2w, pixel_directions, projection_from_pose
from .rasterizer import rasterize

__all__ = ["load_mesh", "bounding_sphere_scale_mat", "vertex_normals", "make_cameras", "surface_albedo", "TEXTURES",
           "environment_colour", "shade_view", "make_scene"]

_AXES = {"x": (1, 0, 0), "y": (0, 1, 0), "z": (0, 0, 1), "-x": (-1, 0, 0), "-y": (0, -1, 0), "-z": (0, 0, -1)}


def load_mesh(mesh):
    """A trimesh.Trimesh from a path (.ply/.obj/.off/...) or a Trimesh; raises ValueError for empty meshes."""
    import trimesh  # only the scene tools need trimesh; `import jnerf.dataset` must not

    if isinstance(mesh, trimesh.Trimesh):
        return mesh
    if not os.path.isfile(mesh):
        raise FileNotFoundError(f"{mesh}: mesh file not found")
    loaded = trimesh.load(mesh, force="mesh", process=False)
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise ValueError(f"{mesh}: no triangles found (expected a triangle mesh)")
    return loaded


def bounding_sphere_scale_mat(vertices, margin=1.1):
    """4x4 scale_mat mapping the unit sphere onto the vertices' bounding sphere (bbox-centred) times ``margin``."""
    vertices = np.asarray(vertices, dtype=np.float64)
    centre = 0.5 * (vertices.min(0) + vertices.max(0))
    radius = np.linalg.norm(vertices - centre, axis=1).max() * margin
    scale_mat = np.eye(4)
    scale_mat[:3, :3] *= radius
    scale_mat[:3, 3] = centre
    return scale_mat


def _up_vector(up):
    """Unit vector from an axis name ('y', '-z', ...) or any non-zero 3-vector."""
    if isinstance(up, str):
        if up not in _AXES:
            raise ValueError(f"axis must be one of {', '.join(_AXES)} or a 3-vector, got {up!r}")
        up = _AXES[up]
    vec = np.asarray(up, dtype=np.float64)
    if vec.shape != (3,) or not np.linalg.norm(vec) > 0:
        raise ValueError(f"axis must be a non-zero 3-vector, got {up!r}")
    return vec / np.linalg.norm(vec)


def _rotation_about(axis, angle):
    """3x3 rotation by ``angle`` (radians) about the unit vector ``axis`` (Rodrigues)."""
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def vertex_normals(vertices, faces):
    """Area-weighted unit vertex normals [V,3] (orientation from the face winding)."""
    corners = vertices[faces]  # [F,3,3]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)  # |cross| = 2 * area: area weighting for free
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-30)


def make_cameras(n_views, width, height, fov_deg, hemisphere=False, up="y", seed=0):
    """Intrinsics [3,3] and normalised-frame poses [N,4,4] of cameras that frame the unit sphere.

    ``fov_deg`` is the horizontal field of view; the principal point is the image centre ((W-1)/2, (H-1)/2) because
    pixel centres are integers. The lattice is rotated about ``up`` by a seeded random angle.
    """
    if not 0 < fov_deg < 170:
        raise ValueError(f"fov_deg must lie in (0, 170), got {fov_deg}")
    half = np.radians(fov_deg) / 2
    focal = 0.5 * width / np.tan(half)
    intr = np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1]])
    # the unit sphere must fit the narrower half-angle with a 5% border
    narrow = min(half, np.arctan(0.5 * height / focal))
    distance = 1.05 / np.sin(narrow)
    up_vec = _up_vector(up)
    dirs = fibonacci_directions(n_views, hemisphere_axis=up_vec if hemisphere else None)
    angle = np.random.default_rng(seed).uniform(0, 2 * np.pi)
    dirs = _rotation_about(up_vec, angle) @ dirs.T
    poses = [look_at_c2w(distance * d, np.zeros(3), up_vec) for d in dirs.T]
    return intr, np.stack(poses)


TEXTURES = ("blotches", "rich")


def surface_albedo(points, seed=0, texture="blotches"):
    """View-independent albedo [P,3] in [0,1] of normalised-frame surface points [P,3].

    A smooth colour field (about one cycle over the object) modulated by a pattern:
    - ``'blotches'`` (the default, the bundled demo's look): a two-scale pattern of products of sinusoids in random 3D
      directions (about 6 and 15 cycles per unit), so texture is present on every surface orientation;
    - ``'rich'``: aperiodic multi-scale blobs (a sum of many sinusoids of random direction, frequency and phase), the
      kind of texture structure from motion needs: the two-scale products repeat, and repeated patterns mismatch.
    """
    if texture not in TEXTURES:
        raise ValueError(f"texture must be one of {', '.join(TEXTURES)}, got {texture!r}")
    rng = np.random.default_rng(seed)
    colour_freq = rng.normal(size=(3, 3)) * 0.6
    colour = 0.6 + 0.35 * np.sin(2 * np.pi * points @ colour_freq.T + rng.uniform(0, 2 * np.pi, 3))
    pattern = _blotch_pattern(points, rng) if texture == "blotches" else _rich_pattern(points, rng)
    pattern = 0.5 + 0.5 * np.tanh(3.0 * pattern)  # sharpen into blotches with crisp edges
    return colour * (0.35 + 0.65 * pattern[:, None])


def _blotch_pattern(points, rng):
    pattern = np.zeros(len(points))
    for cycles, weight in ((6.0, 1.0), (15.0, 0.5)):
        dirs = rng.normal(size=(3, 3))
        dirs *= cycles / np.linalg.norm(dirs, axis=1, keepdims=True)
        waves = np.sin(2 * np.pi * points @ dirs.T + rng.uniform(0, 2 * np.pi, 3))  # [P,3]
        pattern += weight * np.prod(waves, axis=1)
    return pattern


def _rich_pattern(points, rng, n_waves=48, min_cycles=3.0, max_cycles=24.0):
    """Zero-mean, unit-variance field [P]: ``n_waves`` sinusoids with log-uniform frequencies (cycles per unit) and
    amplitudes falling as 1/sqrt(frequency), so coarse and fine blobs both show; 24 cycles per unit stays about
    7 pixels a cycle at 384^2, below aliasing."""
    cycles = np.exp(rng.uniform(np.log(min_cycles), np.log(max_cycles), n_waves))
    dirs = rng.normal(size=(n_waves, 3))
    dirs *= (cycles / np.linalg.norm(dirs, axis=1))[:, None]
    amplitude = 1.0 / np.sqrt(cycles)
    waves = np.sin(2 * np.pi * points @ dirs.T + rng.uniform(0, 2 * np.pi, n_waves))  # [P,n]
    return waves @ amplitude / np.sqrt(0.5 * np.sum(amplitude ** 2))


def shade_view(raster, vertices, faces, vertex_normals, light_dir, seed=0, ambient=0.45, texture="blotches"):
    """Colour image [H,W,3] float in [0,1] (black background) and mask [H,W] bool from a `rasterize` result."""
    face_id = raster["face_id"]
    hit = face_id >= 0
    tri = faces[face_id[hit]]  # [P,3]
    bary = raster["bary"][hit][:, :, None]  # [P,3,1]
    points = np.sum(vertices[tri] * bary, axis=1)
    normals = np.sum(vertex_normals[tri] * bary, axis=1)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    diffuse = np.clip(normals @ light_dir, 0.0, 1.0)
    rgb = surface_albedo(points, seed, texture) * (ambient + (1 - ambient) * diffuse)[:, None]
    image = np.zeros(face_id.shape + (3,))
    image[hit] = np.clip(rgb, 0, 1)
    return image, hit


def _write_cameras(path, intr, poses, scale_mat):
    """world_mat_i (world units) for normalised-frame poses, so that world_mat_i @ scale_mat_i = K[R|t]_norm."""
    arrays = {}
    for i, pose in enumerate(poses):
        arrays[f"world_mat_{i}"] = projection_from_pose(intr, pose) @ np.linalg.inv(scale_mat)
        arrays[f"scale_mat_{i}"] = scale_mat
    np.savez(path, **arrays)


def environment_colour(dirs, seed=0):
    """Colour [P,3] in [0,1] of a textured environment at infinity, seen along unit directions [P,3]: it depends on
    the direction only, so every view agrees, as a distant background does (a pattern for a background model)."""
    return surface_albedo(1.7 * np.asarray(dirs, dtype=np.float64), seed + 101)


BACKGROUNDS = ("black", "env")


def make_scene(mesh, out_dir, n_views=64, width=512, height=None, fov_deg=40.0, hemisphere=False, up="y",
               margin=1.1, seed=0, light_dir=(0.3, 1.0, 0.5), texture="blotches", background="black",
               verbose=False):
    """Render ``mesh`` (path or Trimesh, any units/position) into a NeuS-format folder ``out_dir``.

    ``light_dir`` is a world-frame direction towards the light; ``texture`` picks the surface pattern
    (``surface_albedo``: 'blotches' or the 'rich' one that structure from motion needs). ``background``: 'black', or
    'env' (a textured environment at infinity, ``environment_colour``; the masks are written either way). Returns a
    summary dict (paths, sizes, seconds). Deterministic for a given ``seed``.
    """
    if background not in BACKGROUNDS:
        raise ValueError(f"background: expected one of {', '.join(BACKGROUNDS)}, got {background!r}")
    from PIL import Image  # imported here so that `import jnerf.dataset` needs neither Pillow nor trimesh

    start = time.time()
    if texture not in TEXTURES:
        raise ValueError(f"texture must be one of {', '.join(TEXTURES)}, got {texture!r}")
    height = width if height is None else height
    mesh = load_mesh(mesh)
    scale_mat = bounding_sphere_scale_mat(mesh.vertices, margin)
    for sub in ("image", "mask"):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    intr, poses = make_cameras(n_views, width, height, fov_deg, hemisphere, up, seed)
    npz_path = os.path.join(out_dir, "cameras_sphere.npz")
    _write_cameras(npz_path, intr, poses, scale_mat)
    # render with the cameras as the loader will see them, not the ones we meant to write
    intrinsics, c2ws, _ = load_cameras_npz(npz_path, n_views)

    vertices = (np.asarray(mesh.vertices, dtype=np.float64) - scale_mat[:3, 3]) / scale_mat[0, 0]
    faces = np.asarray(mesh.faces, dtype=np.int64)
    normals = vertex_normals(vertices, faces)
    light = _up_vector(light_dir)
    coverage = []
    for i in range(n_views):
        raster = rasterize(vertices, faces, intrinsics[i], c2ws[i], height, width)
        image, mask = shade_view(raster, vertices, faces, normals, light, seed, texture=texture)
        if background == "env":
            dirs = pixel_directions(intrinsics[i], c2ws[i], height, width)
            dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
            image[~mask] = environment_colour(dirs.reshape(height, width, 3)[~mask], seed)
        rgb8 = np.round(image * 255).astype(np.uint8)
        name = f"{i:03d}.png"
        Image.fromarray(rgb8).save(os.path.join(out_dir, "image", name), optimize=True)
        Image.fromarray(mask.astype(np.uint8) * 255).save(os.path.join(out_dir, "mask", name), optimize=True)
        coverage.append(mask.mean())
        if verbose:
            print(f"view {i + 1}/{n_views}: {mask.mean() * 100:.1f}% of pixels on the object")
    gt_path = os.path.join(out_dir, "gt_mesh.ply")
    type(mesh)(mesh.vertices, mesh.faces, process=False).export(gt_path)  # geometry only, binary PLY
    return {"out_dir": out_dir, "n_views": n_views, "width": width, "height": height, "fov_deg": fov_deg,
            "scale_mat": scale_mat, "mask_coverage": float(np.mean(coverage)), "seconds": time.time() - start,
            "gt_mesh": gt_path, "cameras": npz_path}
