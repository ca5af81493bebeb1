"""Textured meshes, numpy only (no Jittor): a UV atlas (xatlas), the surface point under every texel, a colour
texture baked from any colour function of surface points, its gutters filled (OpenCV), and OBJ+MTL+PNG / binary
glTF writers; plus a z-buffered render of a textured or vertex-coloured mesh for turntables and comparisons.

UV convention: OBJ's (u right, v up from the image's bottom row). Texel (row r, column c) of a size x size texture
has its centre at u = (c + 0.5) / size, v = 1 - (r + 0.5) / size. glTF counts v from the top, so its writer flips v.
"""
import io
import json
import logging
import os
import struct
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from jnerf.dataset.image_io import _cv2   # OpenCV, or None where it does not import (one warning)
from jnerf.export.mesh import atomic_write
from jnerf.utils.checks import require_int
from jnerf.utils.errors import UserError

__all__ = ["TextureSettings", "TexturedMesh", "uv_atlas", "texel_surface_points", "fill_gutters", "bake_texture",
           "sample_texture", "render_mesh", "save_textured_obj", "save_glb", "TEXTURE_FORMATS"]

logger = logging.getLogger("jnerf")

TEXTURE_FORMATS = ("obj", "glb")
MAX_CHART_FACES = 1000   # see uv_atlas: xatlas' charts are grown within pieces of at most BLOCK_FACES faces,
BLOCK_FACES = 5000       # each chart capped at about MAX_CHART_FACES faces' worth of area


class TextureSettings:
    """The config group ``mesh.texture``: a UV-mapped mesh with a baked colour texture, written beside the PLY.

    size: texture edge in texels (a square PNG); target_faces: decimate the mesh to about this many faces first
    (pymeshlab's quadric edge collapse, ``pip install 'jnerf[mesh]'``; 0: keep every face); padding: texels between
    charts in the atlas; dilation: texels the chart colours are spread into the gutters around each chart, so that
    bilinear filtering and mip-mapping near a seam read the chart's own colour (0: none; the rest stays black);
    formats: 'obj' (OBJ + MTL + PNG) and/or 'glb' (binary glTF, texture embedded); turntable: after the bake, render
    the textured mesh around the object (the ``turntable`` group's cameras) and compare it with the validation
    views' training images.

    Colour: the colour network at each texel's surface point with view direction -normal (the SDF's normal there),
    i.e. what a camera facing the surface sees, as for the PLY's vertex colours. Averaging over the training views
    that see the point would need a visibility test per texel and view; head-on is one network call per texel.
    View-dependent highlights are not baked in.
    """

    def __init__(self, size: int = 2048, target_faces: int = 0, padding: int = 2, dilation: int = 16,
                 formats: Sequence[str] = ("obj", "glb"), turntable: bool = True):
        self.size = require_int("mesh.texture", "size", size, 16)
        self.target_faces = require_int("mesh.texture", "target_faces", target_faces, 0)
        self.padding = require_int("mesh.texture", "padding", padding, 0)
        self.dilation = require_int("mesh.texture", "dilation", dilation, 0)
        formats = [formats] if isinstance(formats, str) else list(formats)
        bad = [f for f in formats if f not in TEXTURE_FORMATS]
        if bad or not formats:
            raise ValueError(f"mesh.texture.formats: expected a non-empty list of {', '.join(TEXTURE_FORMATS)}, "
                             f"got {formats}")
        self.formats, self.turntable = formats, bool(turntable)


class TexturedMesh:
    """vertices [V,3] float32, faces [F,3] int64, uv [V,2] float32 (one uv per vertex: seams split vertices),
    texture [S,S,3] uint8 RGB (row 0 = the image's top), filled [S,S] bool (texels a triangle covers, before the
    gutter fill), normals [V,3] float32 (area-weighted, from the mesh before the seams were cut)."""

    def __init__(self, vertices, faces, uv, texture, filled, normals):
        self.vertices, self.faces, self.uv = vertices, faces, uv
        self.texture, self.filled, self.normals = texture, filled, normals


# ------------------------------------------------------------------------------------------------------ atlas
def _morton_order(points: np.ndarray, bits: int = 10) -> np.ndarray:
    """Indices that sort points [N,3] along a Z-order curve over their bounding box (nearby points stay close)."""
    extent = max(float(np.ptp(points, axis=0).max()), 1e-12)
    q = ((points - points.min(0)) / extent * (2 ** bits - 1)).astype(np.int64)
    code = np.zeros(len(points), np.int64)
    for bit in range(bits):
        for axis in range(3):
            code |= ((q[:, axis] >> bit) & 1) << (3 * bit + axis)
    return np.argsort(code, kind="stable")


def uv_atlas(vertices: np.ndarray, faces: np.ndarray, size: int, padding: int = 2):
    """xatlas' charts and packing -> (vmapping [V'] int64: the input vertex of each output vertex, faces [F,3] int64
    into the output vertices, uv [V',2] float32 in [0,1], OBJ convention).

    xatlas' chart computation grows superlinearly with a mesh's faces (on 2 cores: 57k faces 3.5 s, 128k 24 s, 229k
    166 s), so the faces are cut, along a Z-order curve of their centres, into pieces of BLOCK_FACES that xatlas
    charts separately and packs into one atlas (229k faces: 3.3 s); piece borders become seams like chart borders.
    Within a piece, charts are capped at about MAX_CHART_FACES faces' worth of area: uncapped, xatlas grows large
    irregular charts that it then splits into many more (and takes 10x longer)."""
    try:
        import xatlas
    except ImportError as err:
        raise UserError("mesh.texture needs xatlas: pip install 'jnerf[texture]'") from err
    vertices = np.ascontiguousarray(vertices, np.float32)
    faces = np.asarray(faces, np.int64)
    tri = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum()
    order = _morton_order(tri.mean(1))
    atlas, pieces = xatlas.Atlas(), []
    for start in range(0, len(faces), BLOCK_FACES):
        used, local = np.unique(faces[order[start:start + BLOCK_FACES]], return_inverse=True)
        atlas.add_mesh(vertices[used], local.reshape(-1, 3).astype(np.uint32))
        pieces.append(used)
    chart = xatlas.ChartOptions()
    chart.max_chart_area = float(area * min(1.0, MAX_CHART_FACES / max(len(faces), 1)))
    pack = xatlas.PackOptions()
    pack.resolution, pack.padding, pack.bilinear = int(size), int(padding), True
    atlas.generate(chart, pack)
    if atlas.atlas_count != 1:  # xatlas opens a second page only when charts do not fit the resolution
        raise UserError(f"mesh.texture: the charts did not fit one {size}x{size} texture; raise mesh.texture.size "
                        "or lower mesh.texture.target_faces")
    vmapping, new_faces, uv, offset = [], [], [], 0
    for i, used in enumerate(pieces):
        piece_vmapping, piece_faces, piece_uv = atlas[i]
        vmapping.append(used[piece_vmapping.astype(np.int64)])
        new_faces.append(piece_faces.astype(np.int64).reshape(-1, 3) + offset)
        uv.append(piece_uv)
        offset += len(piece_vmapping)
    logger.info("UV atlas: %d charts, %.0f%% of the texture used, %d -> %d vertices (seams)", atlas.chart_count,
                100 * atlas.utilization, len(vertices), offset)
    # xatlas gives uv in [0,1] with v along its image rows from the top; OBJ counts v from the bottom
    uv = np.concatenate(uv).astype(np.float32)
    uv[:, 1] = 1.0 - uv[:, 1]
    return np.concatenate(vmapping), np.concatenate(new_faces), uv


def uv_to_pixel(uv: np.ndarray, size: int) -> np.ndarray:
    """uv [N,2] -> image coordinates [N,2] (x = column, y = row) whose integers are texel centres."""
    return np.stack([uv[:, 0] * size - 0.5, (1.0 - uv[:, 1]) * size - 0.5], 1)


def texel_surface_points(uv: np.ndarray, faces: np.ndarray, size: int):
    """The texels whose centres the atlas' triangles cover -> (flat texel index [T] int64, face [T] int64,
    barycentrics [T,3] float64): the scene maker's exact rasteriser, run on the triangles' uv positions with the
    identity camera at depth 1 (so the projection is the identity and its perspective correction is a no-op)."""
    from jnerf.dataset.rasterizer import rasterize
    flat = np.concatenate([uv_to_pixel(np.asarray(uv, np.float64), size), np.ones((len(uv), 1))], 1)
    raster = rasterize(flat, faces, np.eye(3), np.eye(4), size, size)
    texel = np.flatnonzero(raster["face_id"].ravel() >= 0)
    return texel, raster["face_id"].ravel()[texel], raster["bary"].reshape(-1, 3)[texel]


def fill_gutters(image: np.ndarray, filled: np.ndarray, dilation: int) -> np.ndarray:
    """Copy of ``image`` [S,S,C] whose texels outside ``filled`` [S,S] but within ``dilation`` texels of it
    (chessboard distance) take the colour of the nearest filled texel; texels further away keep their value.
    OpenCV's distance transform labels each texel with its nearest filled one; where OpenCV does not import (built
    for another numpy, as on the GPU machines) the same ring-by-ring growth runs in numpy."""
    if dilation <= 0 or filled.all() or not filled.any():
        return image.copy()
    cv2 = _cv2()
    if cv2 is None:
        return _fill_gutters_numpy(image, filled, dilation)
    out = image.copy()
    distance, label = cv2.distanceTransformWithLabels((~filled).astype(np.uint8), cv2.DIST_C, 3,
                                                      labelType=cv2.DIST_LABEL_PIXEL)
    source = np.zeros(int(label.max()) + 1, np.int64)       # label -> flat index of the filled texel it names
    source[label[filled]] = np.flatnonzero(filled)
    gutter = ~filled & (distance <= dilation)
    channels = image.shape[2]
    out.reshape(-1, channels)[np.flatnonzero(gutter)] = image.reshape(-1, channels)[source[label[gutter]]]
    return out


_NEIGHBOURS = [(-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)]


def _fill_gutters_numpy(image, filled, dilation):
    """``fill_gutters`` without OpenCV: ``dilation`` rings, each texel of a ring copying a filled 8-neighbour (edge
    neighbours first)."""
    out, done = image.copy(), filled.copy()
    height, width = filled.shape
    for _ in range(dilation):
        padded_out, padded_done = np.pad(out, ((1, 1), (1, 1), (0, 0))), np.pad(done, 1)
        taken = done.copy()
        for dy, dx in _NEIGHBOURS:
            window = (slice(1 + dy, 1 + dy + height), slice(1 + dx, 1 + dx + width))
            take = ~taken & padded_done[window]
            out[take] = padded_out[window][take]
            taken |= take
        if np.array_equal(taken, done):
            break
        done = taken
    return out


def _vertex_normals(vertices, faces):
    """Area-weighted unit vertex normals [V,3] float32 (the face winding's orientation)."""
    tri = vertices[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros(vertices.shape, np.float64)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    return (normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-30)).astype(np.float32)


def bake_texture(color_fn: Callable[[np.ndarray], np.ndarray], vertices: np.ndarray, faces: np.ndarray,
                 size: int, padding: int = 2, dilation: int = 16, chunk: int = 1 << 18,
                 progress: bool = True, timings: Optional[Dict[str, float]] = None) -> TexturedMesh:
    """Atlas, texel points, colours and gutters of a mesh [V,3] / [F,3] (any frame ``color_fn`` takes).

    ``color_fn`` maps surface points [n,3] float32 to colours [n,3] in [0,1]; it is called on at most ``chunk``
    points at a time, so memory stays bounded whatever the texture size. ``timings`` (a dict), when given, receives
    the seconds of each stage: atlas, texels, colour, gutters."""
    import time
    clock = time.perf_counter()

    def lap(name):
        nonlocal clock
        now = time.perf_counter()
        if timings is not None:
            timings[name] = now - clock
        clock = now

    vertices = np.asarray(vertices, np.float32)
    faces = np.asarray(faces, np.int64)
    vmapping, uv_faces, uv = uv_atlas(vertices, faces, size, padding)
    out_vertices = vertices[vmapping]
    lap("atlas")
    texel, face, bary = texel_surface_points(uv, uv_faces, size)
    lap("texels")
    colors = np.zeros((size * size, 3), np.float32)
    starts = range(0, len(texel), chunk)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc=f"bake {size}x{size}", unit="chunk", leave=False)
    for start in starts:
        sl = slice(start, start + chunk)
        points = np.einsum("tk,tkd->td", bary[sl], out_vertices[uv_faces[face[sl]]]).astype(np.float32)
        colors[texel[sl]] = np.asarray(color_fn(points), np.float32).reshape(-1, 3)
    lap("colour")
    filled = np.zeros(size * size, bool)
    filled[texel] = True
    filled = filled.reshape(size, size)
    image = (np.clip(colors, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(size, size, 3)
    image = fill_gutters(image, filled, dilation)
    lap("gutters")
    return TexturedMesh(out_vertices, uv_faces, uv, image, filled, _vertex_normals(vertices, faces)[vmapping])


# ------------------------------------------------------------------------------------------------- rendering
def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear texture look-up (edges clamped): texture [S,S,C] uint8, uv [N,2] -> [N,C] float32 in [0,1]; OpenCV's
    remap, or the same interpolation in numpy where OpenCV does not import."""
    size = texture.shape[0]
    xy = uv_to_pixel(np.asarray(uv, np.float64), size).astype(np.float32)
    cv2 = _cv2()
    if cv2 is not None:
        # remap takes maps of at most 32767 rows and columns: lay the points out as rows of 4096
        n, width = len(xy), 4096
        grid = np.zeros((-(-n // width) * width, 2), np.float32)
        grid[:n] = xy
        grid = grid.reshape(-1, width, 2)
        sampled = cv2.remap(texture, grid[..., 0], grid[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return sampled.reshape(-1, texture.shape[2])[:n].astype(np.float32) / 255.0
    xy = np.clip(xy, 0, size - 1)
    x0, y0 = np.minimum(np.floor(xy).astype(np.int64), size - 2).T
    fx, fy = (xy[:, 0] - x0)[:, None], (xy[:, 1] - y0)[:, None]
    t = texture.astype(np.float32)
    top = t[y0, x0] * (1 - fx) + t[y0, x0 + 1] * fx
    bottom = t[y0 + 1, x0] * (1 - fx) + t[y0 + 1, x0 + 1] * fx
    return (top * (1 - fy) + bottom * fy) / 255.0


def render_mesh(vertices, faces, intrinsics, c2w, height, width, vertex_colors=None, mesh: TexturedMesh = None):
    """Colour image [H,W,3] float32 (black background) and coverage mask [H,W] bool of a mesh seen by a pinhole
    camera (OpenCV axes, the vertices' frame), shaded by nothing but its colours: the texture of ``mesh`` (then
    ``vertices``/``faces`` are its own) or per-vertex ``vertex_colors`` [V,3], interpolated perspective-correctly."""
    from jnerf.dataset.rasterizer import rasterize
    raster = rasterize(vertices, faces, intrinsics, c2w, height, width)
    hit = raster["face_id"] >= 0
    corners = np.asarray(faces)[raster["face_id"][hit]]                          # [P,3]
    bary = raster["bary"][hit][:, :, None]                                       # [P,3,1]
    image = np.zeros((height, width, 3), np.float32)
    if mesh is not None:
        image[hit] = sample_texture(mesh.texture, np.sum(mesh.uv[corners] * bary, axis=1))
    elif vertex_colors is not None:
        image[hit] = np.sum(np.asarray(vertex_colors, np.float64)[corners] * bary, axis=1)
    return image, hit


# --------------------------------------------------------------------------------------------------- writers
def encode_png(texture: np.ndarray) -> bytes:
    """RGB uint8 [H,W,3] -> PNG bytes (OpenCV; Pillow where OpenCV does not import)."""
    cv2 = _cv2()
    if cv2 is None:
        from PIL import Image
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(texture)).save(buffer, format="PNG")
        return buffer.getvalue()
    ok, data = cv2.imencode(".png", np.ascontiguousarray(texture[..., ::-1]))
    if not ok:
        raise RuntimeError("OpenCV could not encode the texture as PNG")
    return data.tobytes()


def save_textured_obj(path: str, vertices, faces, uv, texture: np.ndarray) -> list:
    """``path`` (.obj), its .mtl and its .png beside it (same stem; the MTL names the PNG by file name, so the three
    move together). Positions and uv are per vertex (seams are split vertices), so each corner's v and vt share an
    index. Returns the three paths."""
    stem = os.path.splitext(path)[0]
    name = os.path.basename(stem)
    png = atomic_write(stem + ".png", lambda f: f.write(encode_png(texture)))
    # Kd 1 and illum 1: the texture is the final colour (lighting baked in), not an albedo to light again
    mtl = atomic_write(stem + ".mtl", lambda f: f.write(
        (f"# written by jnerf\nnewmtl {name}\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\n"
         f"map_Kd {name}.png\n").encode("ascii")))

    def write_obj(f):
        f.write(f"# written by jnerf\nmtllib {name}.mtl\nusemtl {name}\n".encode("ascii"))
        np.savetxt(f, np.asarray(vertices, np.float64), fmt="v %.6f %.6f %.6f")
        np.savetxt(f, np.asarray(uv, np.float64), fmt="vt %.7f %.7f")
        idx = np.asarray(faces, np.int64) + 1
        np.savetxt(f, np.repeat(idx, 2, axis=1), fmt="f %d/%d %d/%d %d/%d")
    return [atomic_write(path, write_obj), mtl, png]


def _pad4(data: bytes, fill: bytes = b"\x00") -> bytes:
    return data + fill * (-len(data) % 4)


def save_glb(path: str, vertices, faces, uv, texture: np.ndarray, normals=None) -> str:
    """Binary glTF 2.0: one mesh (POSITION, NORMAL when given, TEXCOORD_0, uint32 indices) whose material shows
    the PNG texture unlit (KHR_materials_unlit: the baked colour already holds the lighting; viewers without the
    extension fall back to a rough, non-metallic base colour).

    Written by hand (the format is a JSON header and one binary buffer) because trimesh, which could write it, is
    not importable in the environment that trains on the GPU (it is built for numpy 2, Jittor needs numpy < 2)."""
    vertices = np.ascontiguousarray(vertices, np.float32)
    texcoord = np.ascontiguousarray(np.stack([uv[:, 0], 1.0 - uv[:, 1]], 1), np.float32)  # glTF: v from the top
    indices = np.ascontiguousarray(faces, np.uint32).ravel()
    blobs = [("POSITION", vertices, 5126, "VEC3", 34962), ("TEXCOORD_0", texcoord, 5126, "VEC2", 34962),
             ("indices", indices, 5125, "SCALAR", 34963)]
    if normals is not None:
        blobs.insert(1, ("NORMAL", np.ascontiguousarray(normals, np.float32), 5126, "VEC3", 34962))
    binary, views, accessors, attributes = io.BytesIO(), [], [], {}
    for name, array, component, kind, target in blobs:
        offset = binary.tell()
        binary.write(_pad4(array.tobytes()))
        views.append(dict(buffer=0, byteOffset=offset, byteLength=array.nbytes, target=target))
        accessor = dict(bufferView=len(views) - 1, componentType=component, count=len(array), type=kind)
        if name == "POSITION":  # required by the spec for positions
            accessor.update(min=vertices.min(0).tolist(), max=vertices.max(0).tolist())
        accessors.append(accessor)
        if name != "indices":
            attributes[name] = len(accessors) - 1
    png = encode_png(texture)
    views.append(dict(buffer=0, byteOffset=binary.tell(), byteLength=len(png)))
    binary.write(_pad4(png))
    gltf = dict(
        asset=dict(version="2.0", generator="jnerf"), scene=0, scenes=[dict(nodes=[0])], nodes=[dict(mesh=0)],
        meshes=[dict(primitives=[dict(attributes=attributes, indices=len(accessors) - 1, material=0, mode=4)])],
        materials=[dict(pbrMetallicRoughness=dict(baseColorTexture=dict(index=0), metallicFactor=0.0,
                                                  roughnessFactor=1.0),
                        extensions=dict(KHR_materials_unlit={}))],
        extensionsUsed=["KHR_materials_unlit"],
        textures=[dict(source=0, sampler=0)], images=[dict(bufferView=len(views) - 1, mimeType="image/png")],
        samplers=[dict(magFilter=9729, minFilter=9987, wrapS=33071, wrapT=33071)],   # linear, mipmaps, clamp
        accessors=accessors, bufferViews=views, buffers=[dict(byteLength=binary.tell())])
    header = _pad4(json.dumps(gltf, separators=(",", ":")).encode("utf-8"), b" ")
    body = binary.getvalue()

    def write(f):
        f.write(struct.pack("<III", 0x46546C67, 2, 12 + 8 + len(header) + 8 + len(body)))   # 'glTF', version 2
        f.write(struct.pack("<II", len(header), 0x4E4F534A) + header)                      # 'JSON' chunk
        f.write(struct.pack("<II", len(body), 0x004E4942) + body)                          # 'BIN' chunk
    return atomic_write(path, write)
