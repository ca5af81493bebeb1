"""Turn a folder of photos (and masks) into a NeuS-format scene folder: cameras from structure from motion, a COLMAP
model or a transforms.json; images undistorted to pinhole where the lens bends them; ``scale_mat`` from the masks'
visual hull, else from the sparse points; a log (``prepare.json``) and a picture to check (``preview.png``).

Output (what `neus_format.load_scene_arrays` reads): ``cameras_sphere.npz`` (world_mat_i = K_i [R_i|t_i] in the
cameras' world frame, scale_mat_i all equal), ``image/000.png ...`` (the photos in name order, renumbered),
``mask/000.png ...`` when there are masks, ``prepare.json``, ``preview.png``, and ``sparse/`` (the COLMAP model)
after structure from motion. The folder is built beside OUT_DIR under a temporary name and renamed into place only
when complete, so a failure leaves nothing half-written. Numpy, OpenCV and (for COLMAP) pycolmap; no Jittor.
"""
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import numpy as np

from .capture import Capture, PrepareError, max_distortion_pixels, undistortion_maps
from .colmap_io import SfmOptions

logger = logging.getLogger("jnerf")

__all__ = ["PrepareOptions", "prepare_scene", "list_photos", "pair_masks", "PHOTO_EXTENSIONS"]

PHOTO_EXTENSIONS = (".png", ".jpg", ".jpeg")  # what the NeuS loader reads


@dataclass
class PrepareOptions:
    """Settings of `prepare_scene` (the command line's flags of the same names).

    margin: unit-sphere radius / object radius; hull_resolution: voxels per axis of the fine visual-hull grid;
    min_distortion_px: lenses that move no pixel farther than this are treated as pinhole and the photos copied
    untouched (resampling would blur them for nothing); overwrite: replace an existing OUT_DIR.
    """
    sfm: SfmOptions = field(default_factory=SfmOptions)
    margin: float = 1.1
    hull_resolution: int = 96
    min_distortion_px: float = 0.1
    overwrite: bool = False
    keep_database: bool = False


class _Log:
    """Collects warnings for prepare.json while logging them."""

    def __init__(self):
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)
        logger.warning(message)


def _name_list(names, limit=8):
    names = list(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def list_photos(folder: str, what: str = "image", log: Optional[_Log] = None) -> List[str]:
    """Sorted file names of the photos (.png/.jpg/.jpeg, any case) in ``folder``; other files are skipped with a
    warning (hidden files silently). Raises when the folder is missing or holds no photo."""
    if not os.path.isdir(folder):
        raise PrepareError(f"{folder}: {what} folder not found")
    entries = sorted(n for n in os.listdir(folder) if not n.startswith(".")
                     and os.path.isfile(os.path.join(folder, n)))
    photos = [n for n in entries if n.lower().endswith(PHOTO_EXTENSIONS)]
    others = [n for n in entries if n not in photos]
    if not photos:
        found = f" (found only: {_name_list(others, 5)})" if others else " (the folder is empty)"
        raise PrepareError(f"{folder}: no {what} files, expected {'/'.join(PHOTO_EXTENSIONS)}{found}")
    if others and log is not None:
        log.warn(f"{folder}: skipping {len(others)} file(s) that are not {'/'.join(PHOTO_EXTENSIONS)}: "
                 f"{_name_list(others)}")
    return photos


def _read_raw(path):
    """The file's pixels as stored (any depth and channel count, no EXIF rotation, as the loader reads them)."""
    import cv2
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise PrepareError(f"{path}: cannot read as an image (corrupt, truncated or not an image)")
    return image


def _check_photos(folder, names):
    """{name: (width, height)} after decoding every photo; raises for an unreadable one or mixed sizes; also
    whether every photo has an alpha channel."""
    sizes, all_alpha = {}, True
    for name in names:
        image = _read_raw(os.path.join(folder, name))
        sizes[name] = (image.shape[1], image.shape[0])
        all_alpha &= image.ndim == 3 and image.shape[2] == 4
    distinct = sorted(set(sizes.values()))
    if len(distinct) > 1:
        examples = [next(n for n in names if sizes[n] == s) for s in distinct[:3]]
        raise PrepareError(f"{folder}: photos differ in size ({', '.join(f'{n} {w}x{h}' for n, (w, h) in zip(examples, distinct))}); "
                           "the NeuS loader needs one size: resize or crop them alike (and keep portrait and "
                           "landscape photos apart)")
    return sizes, all_alpha


def pair_masks(mask_dir: str, image_names: List[str], log: Optional[_Log] = None) -> Dict[str, str]:
    """{image name: mask path}: the mask of ``IMG_1.jpg`` is ``IMG_1.<ext>`` or ``IMG_1.jpg.<ext>`` (COLMAP's mask
    naming). A photo without a mask is an error naming them; masks without a photo are skipped with a warning."""
    masks = list_photos(mask_dir, "mask", log)
    by_key = {}
    for mask in masks:
        by_key.setdefault(os.path.splitext(mask)[0], []).append(mask)
    paired, missing = {}, []
    for name in image_names:
        found = by_key.get(name, []) + by_key.get(os.path.splitext(name)[0], [])
        if len(set(found)) > 1:
            raise PrepareError(f"{mask_dir}: {', '.join(sorted(set(found)))} are all masks of {name}; keep one")
        if not found:
            missing.append(name)
        else:
            paired[name] = os.path.join(mask_dir, found[0])
    if missing:
        raise PrepareError(f"{mask_dir}: no mask for {_name_list(missing, 5)} (expected one mask per photo named "
                           f"like it, e.g. {os.path.splitext(missing[0])[0]}.png)")
    unused = sorted(set(masks) - {os.path.basename(p) for p in paired.values()})
    if unused and log is not None:
        log.warn(f"{mask_dir}: {len(unused)} mask(s) without a photo skipped: {_name_list(unused)}")
    return paired


def _read_mask(path, size):
    """bool [H,W]: the first channel above one half, as the NeuS loader reads masks."""
    from .image_io import read_image
    mask = read_image(path)
    if (mask.shape[1], mask.shape[0]) != tuple(size):
        raise PrepareError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, its photo {size[0]}x{size[1]}")
    mask = mask[..., 0] > 0.5
    if not mask.any():
        raise PrepareError(f"{path}: mask is empty (no foreground pixel); every photo must see the object")
    return mask


def _cameras(images_dir, names, sizes, colmap_model, transforms, work_dir, sfm, log) -> Capture:
    """The cameras of the photos from the chosen source, restricted to photos of the folder."""
    if colmap_model:
        from .colmap_io import read_colmap_model
        capture = read_colmap_model(colmap_model)
        absent = [n for n in capture.names if n not in sizes]
        if absent:
            log.warn(f"{colmap_model}: {len(absent)} image(s) of the model are not in {images_dir}: "
                     f"{_name_list(absent)}")
            capture = capture.subset([i for i, n in enumerate(capture.names) if n in sizes])
        for name, size in zip(capture.names, capture.sizes):
            if tuple(size) != sizes[name]:
                raise PrepareError(f"{colmap_model}: camera of {name} is {size[0]}x{size[1]} but the photo is "
                                   f"{sizes[name][0]}x{sizes[name][1]} (a model of resized photos?)")
        return capture
    if transforms:
        from .transforms_io import read_transforms
        capture = read_transforms(transforms, names, sizes)
        missing = capture.notes.pop("frames_without_image", [])
        if missing:
            log.warn(f"{transforms}: {len(missing)} frame(s) have no photo in {images_dir}: {_name_list(missing)}")
        return capture
    from .colmap_io import run_sfm
    logger.info("structure from motion on %d photos (pycolmap)...", len(names))
    return run_sfm(images_dir, names, work_dir, sfm)


def _write_view(src_image, src_mask, out_image, out_mask, maps):
    """Copy (maps None) or undistort one photo and its mask (bool [H,W] or None)."""
    import cv2
    if maps is None:
        shutil.copyfile(src_image, out_image)
    else:
        image = cv2.remap(_read_raw(src_image), maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if not cv2.imwrite(out_image, image):
            raise OSError(f"{out_image}: cannot write")
    if src_mask is not None:
        mask = src_mask.astype(np.float32)
        if maps is not None:
            mask = cv2.remap(mask, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        if not cv2.imwrite(out_mask, np.where(mask >= 0.5, 255, 0).astype(np.uint8)):
            raise OSError(f"{out_mask}: cannot write")
        return mask >= 0.5
    return None


def _alpha_mask(path):
    """bool [H,W]: alpha above one half (RGBA photos, e.g. NeRF-synthetic's, carry the mask there)."""
    image = _read_raw(path)
    return image[..., 3] > np.iinfo(image.dtype).max // 2


def _write_views(stage, images_dir, capture, mask_paths, alpha_masks, min_distortion_px, log):
    """Write image/ (and mask/) into ``stage``; returns (pinhole intrinsics [N,3,3], masks bool [N,H,W] or None,
    per-view records for the log)."""
    os.makedirs(os.path.join(stage, "image"))
    has_masks = mask_paths is not None or alpha_masks
    if has_masks:
        os.makedirs(os.path.join(stage, "mask"))
    intrinsics, masks, records, maps_cache = [], [], [], {}
    for k, name in enumerate(capture.names):
        intr, lens, (width, height) = capture.intrinsics[k], capture.lenses[k], capture.sizes[k]
        shift = max_distortion_pixels(intr, lens, width, height)
        undistort = shift > min_distortion_px
        if undistort:
            key = (tuple(intr.ravel()), lens, width, height)  # photos of one camera share their maps
            if key not in maps_cache:
                maps_cache = {key: undistortion_maps(intr, lens, int(width), int(height))}
            new_intr, map_x, map_y = maps_cache[key]
        else:
            new_intr = intr
        ext = ".png" if undistort else os.path.splitext(name)[1].lower()
        src = os.path.join(images_dir, name)
        mask = None
        if mask_paths is not None:
            mask = _read_mask(mask_paths[name], (width, height))
        elif alpha_masks:
            mask = _alpha_mask(src)
        written = _write_view(src, mask, os.path.join(stage, "image", f"{k:03d}{ext}"),
                              os.path.join(stage, "mask", f"{k:03d}.png"), (map_x, map_y) if undistort else None)
        if has_masks:
            if not written.any():
                raise PrepareError(f"{mask_paths[name] if mask_paths else src}: the mask is empty after undistortion")
            masks.append(written)
        intrinsics.append(new_intr)
        records.append(dict(file=f"image/{k:03d}{ext}", photo=name, undistorted=bool(undistort),
                            lens=dict(kind=lens.kind, coeffs=list(lens.coeffs)), max_distortion_px=round(shift, 3),
                            K=np.round(new_intr, 6).tolist()))
    return np.array(intrinsics), (np.stack(masks) if has_masks else None), records


def _sphere(capture, intrinsics, masks, opts, log):
    from . import scene_bounds
    hull = None
    if masks is not None:
        centre, radius, info, hull = scene_bounds.hull_sphere(intrinsics, capture.c2w, masks, opts.margin,
                                                              opts.hull_resolution)
    elif len(capture.points):
        centre, radius, info = scene_bounds.points_sphere(capture.points, capture.point_views, capture.c2w,
                                                          opts.margin)
        log.warn("no masks: the unit sphere comes from the sparse points; check preview.png (the object inside the "
                 "green circle, little else)")
    else:
        centre, radius, info = scene_bounds.cameras_sphere(intrinsics, capture.c2w, capture.sizes)
        log.warn("no masks and no sparse points: the unit sphere is a guess from where the cameras look; check "
                 "preview.png, or give --masks")
    nearest = scene_bounds.min_camera_distance(capture.c2w, centre)
    if radius >= nearest:
        raise PrepareError(f"the object's sphere (radius {radius:.4g}) reaches camera centres ({nearest:.4g} from its "
                           f"centre): {info['method']} does not fit these cameras; check the masks and the cameras")
    info.update(centre=np.asarray(centre).tolist(), radius=float(radius), nearest_camera_distance=nearest)
    return scene_bounds.scale_mat_of(centre, radius), info, hull


def _write_cameras(stage, intrinsics, c2w, scale_mat):
    from .cameras import projection_from_pose
    arrays = {}
    for i, (intr, pose) in enumerate(zip(intrinsics, c2w)):
        arrays[f"world_mat_{i}"] = projection_from_pose(intr, pose)
        arrays[f"scale_mat_{i}"] = scale_mat
    path = os.path.join(stage, "cameras_sphere.npz")
    np.savez(path, **arrays)
    return path


def _self_check(stage, n_views, intrinsics, c2w, scale_mat):
    """Read the folder back as the loader does and compare the cameras: what we wrote is what training sees."""
    from .cameras import load_cameras_npz, normalised_to_world
    from .neus_format import list_images, pair_views
    files, views = pair_views(stage, list_images(os.path.join(stage, "image")))
    if views != list(range(n_views)):
        raise RuntimeError(f"prepared folder pairs views {views[:5]}..., expected 0..{n_views - 1}")
    got_k, got_c2w, _ = load_cameras_npz(os.path.join(stage, "cameras_sphere.npz"), n_views)
    centres = normalised_to_world(got_c2w[:, :3, 3], scale_mat)
    if not (np.allclose(got_k, intrinsics, rtol=1e-8, atol=1e-6) and np.allclose(centres, c2w[:, :3, 3], atol=1e-6 *
                                                                                  max(1.0, np.abs(c2w).max()))):
        raise RuntimeError("cameras_sphere.npz does not read back as the cameras written")


def _normalised(capture, scale_mat, hull):
    from .cameras import world_to_normalised
    c2w = capture.c2w.copy()
    c2w[:, :3, 3] = world_to_normalised(c2w[:, :3, 3], scale_mat)
    points = world_to_normalised(capture.points, scale_mat) if len(capture.points) else np.zeros((0, 3))
    hull_n = world_to_normalised(hull, scale_mat) if hull is not None else None
    return c2w, points, hull_n


def _stage_dir(out_dir, overwrite):
    """A fresh temporary folder beside ``out_dir`` (same file system, so the final rename is atomic)."""
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise PrepareError(f"{out_dir}: exists and is not a folder")
        if os.listdir(out_dir) and not overwrite:
            raise PrepareError(f"{out_dir}: exists and is not empty (pass --overwrite to replace it)")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.partial-", dir=parent)


def _move_into_place(stage, out_dir):
    out_dir = os.path.abspath(out_dir)
    old = None
    if os.path.exists(out_dir):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.old-", dir=os.path.dirname(out_dir))
        os.rename(out_dir, os.path.join(old, "previous"))
    os.rename(stage, out_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def prepare_scene(images_dir: str, out_dir: str, masks_dir: Optional[str] = None,
                  colmap_model: Optional[str] = None, transforms: Optional[str] = None,
                  options: Optional[PrepareOptions] = None) -> Dict:
    """Write the NeuS-format scene folder ``out_dir`` from the photos of ``images_dir``; returns the log written to
    ``prepare.json``. Cameras come from ``colmap_model`` (a sparse model folder), ``transforms`` (a transforms.json)
    or, with neither, structure from motion. Masks: ``masks_dir``, else the photos' alpha channel when every photo
    has one. Raises PrepareError (one line, naming the file) for input it cannot use; ``out_dir`` is then untouched.
    """
    opts = options or PrepareOptions()
    if colmap_model and transforms:
        raise PrepareError("give either --colmap-model or --transforms, not both")
    if not colmap_model and not transforms:
        opts.sfm.check()
    start = time.time()
    log = _Log()
    names = list_photos(images_dir, "image", log)
    if len(names) < 3:
        raise PrepareError(f"{images_dir}: {len(names)} photo(s) ({_name_list(names)}); at least 3 are needed, and "
                           "structure from motion wants dozens (see docs/custom-data.md)")
    sizes, all_alpha = _check_photos(images_dir, names)
    mask_paths = pair_masks(masks_dir, names, log) if masks_dir else None
    alpha_masks = mask_paths is None and all_alpha
    stage = _stage_dir(out_dir, opts.overwrite)
    try:
        capture = _cameras(images_dir, names, sizes, colmap_model, transforms, os.path.join(stage, "colmap"),
                           opts.sfm, log)
        dropped = [n for n in names if n not in set(capture.names)]
        if dropped:
            why = "not in the camera file" if colmap_model or transforms else "not registered by structure from motion"
            log.warn(f"{len(dropped)} of {len(names)} photo(s) have no camera ({why}) and are left out: "
                     f"{_name_list(dropped)}")
        if len(capture) < 3:
            raise PrepareError(f"{images_dir}: only {len(capture)} of {len(names)} photos have a camera; at least 3 "
                               "are needed (see docs/custom-data.md, 'When structure from motion fails')")
        intrinsics, masks, records = _write_views(stage, images_dir, capture, mask_paths, alpha_masks,
                                                  opts.min_distortion_px, log)
        scale_mat, sphere_info, hull = _sphere(capture, intrinsics, masks, opts, log)
        _write_cameras(stage, intrinsics, capture.c2w, scale_mat)
        _self_check(stage, len(capture), intrinsics, capture.c2w, scale_mat)
        c2w_n, points_n, hull_n = _normalised(capture, scale_mat, hull)
        from .preview import draw_preview
        draw_preview(os.path.join(stage, "preview.png"), intrinsics, c2w_n, capture.sizes,
                     points_n[capture.point_views >= 3] if len(points_n) else None, hull_n)
        _tidy_colmap(stage, opts.keep_database)
        record = dict(
            command=" ".join(sys.argv) if sys.argv and sys.argv[0] else None,
            images_dir=os.path.abspath(images_dir), masks=(os.path.abspath(masks_dir) if masks_dir else
                                                            "alpha channel of the photos" if alpha_masks else None),
            cameras_from=capture.source, n_photos=len(names), n_views=len(capture), dropped_photos=dropped,
            scale_mat=scale_mat.tolist(), sphere=sphere_info, sparse_points=int(len(capture.points)),
            sparse_points_inside_sphere=int((np.linalg.norm(points_n, axis=1) <= 1).sum()) if len(points_n) else 0,
            source_notes=capture.notes, options=dict(asdict(opts)), warnings=log.warnings, views=records,
            seconds=round(time.time() - start, 2),
            how_to_check="preview.png: the green circle (unit sphere) must hold the object (grey points / yellow hull) "
                         "and little else; the cameras (blue) sit around it, outside the circle")
        with open(os.path.join(stage, "prepare.json"), "w") as f:
            json.dump(record, f, indent=1)
        _move_into_place(stage, out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return record


def _tidy_colmap(stage, keep_database):
    """Keep the sparse model (``sparse/``) of a structure-from-motion run, drop the work files."""
    work = os.path.join(stage, "colmap")
    if not os.path.isdir(work):
        return
    if os.path.isdir(os.path.join(work, "sparse")):
        os.rename(os.path.join(work, "sparse"), os.path.join(stage, "sparse"))
    if keep_database and os.path.isfile(os.path.join(work, "database.db")):
        os.rename(os.path.join(work, "database.db"), os.path.join(stage, "sparse", "database.db"))
    shutil.rmtree(work, ignore_errors=True)
