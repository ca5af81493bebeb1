"""COLMAP through pycolmap: read a sparse model (.bin or .txt) and run structure from motion on a folder of photos,
both into a `Capture` (our camera convention, see `capture.py`).

pycolmap (an optional dependency, ``pip install -e .[colmap]``) does the real work: SIFT features, matching,
incremental mapping, bundle adjustment and model I/O. Written here is only the glue: the options, the refinement pass
after mapping and the conversion of COLMAP's cameras (principal point at +0.5) into ours.
"""
import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from .capture import Capture, PrepareError, lens_from_colmap

logger = logging.getLogger("jnerf")

__all__ = ["import_pycolmap", "read_colmap_model", "reconstruction_to_capture", "SfmOptions", "run_sfm", "camera_groups",
           "CAMERA_MODES", "MATCHERS"]

CAMERA_MODES = ("auto", "single", "per-image")
MATCHERS = ("exhaustive", "sequential")


def import_pycolmap():
    """pycolmap, or a PrepareError that says how to install it."""
    try:
        import pycolmap
    except ImportError as err:
        raise PrepareError(f"pycolmap is needed for COLMAP models and structure from motion ({err}); install it "
                           "with: pip install -e .[colmap]  (or: pip install pycolmap)") from err
    return pycolmap


def _cam_from_world(image):
    """3x4 world-to-camera matrix of a registered pycolmap image (a method since pycolmap 3.12, a property before)."""
    pose = image.cam_from_world() if callable(image.cam_from_world) else image.cam_from_world
    return np.asarray(pose.matrix(), np.float64)


def _is_registered(image):
    has_pose = getattr(image, "has_pose", None)
    if has_pose is not None:
        return bool(has_pose)
    return bool(getattr(image, "registered", True))


def reconstruction_to_capture(rec, where: str, source: str) -> Capture:
    """A pycolmap Reconstruction -> Capture of its registered images, sorted by name; points with their track
    lengths. Raises PrepareError for an unsupported camera model, naming it."""
    images = sorted((im for im in rec.images.values() if _is_registered(im)), key=lambda im: im.name)
    names, sizes, intrinsics, lenses, c2ws = [], [], [], [], []
    for image in images:
        camera = rec.cameras[image.camera_id]
        intr, lens = lens_from_colmap(camera.model.name, camera.params,
                                      where=f"{where}: camera {image.camera_id} (of {image.name})")
        w2c = np.eye(4)
        w2c[:3] = _cam_from_world(image)
        names.append(image.name)
        sizes.append((camera.width, camera.height))
        intrinsics.append(intr)
        lenses.append(lens)
        c2ws.append(np.linalg.inv(w2c))
    points = [(p.xyz, p.track.length()) for p in rec.points3D.values()]
    xyz = np.array([p[0] for p in points], np.float64).reshape(-1, 3)
    views = np.array([p[1] for p in points], np.int64)
    return Capture(names, np.array(sizes, np.int64).reshape(-1, 2), np.array(intrinsics).reshape(-1, 3, 3), lenses,
                   np.array(c2ws).reshape(-1, 4, 4), xyz, views, source)


def read_colmap_model(model_dir: str) -> Capture:
    """The cameras of a COLMAP sparse model folder (cameras/images/points3D .bin or .txt)."""
    pycolmap = import_pycolmap()
    if not os.path.isdir(model_dir):
        raise PrepareError(f"{model_dir}: COLMAP model folder not found")
    present = set(os.listdir(model_dir))
    for ext in (".bin", ".txt"):
        if {f"cameras{ext}", f"images{ext}"} <= present:
            break
    else:
        raise PrepareError(f"{model_dir}: not a COLMAP model (expected cameras.bin and images.bin, or cameras.txt and "
                           "images.txt, e.g. sparse/0 of a COLMAP project)")
    try:
        rec = pycolmap.Reconstruction(model_dir)
    except Exception as err:  # pycolmap raises RuntimeError/ValueError for corrupt files
        raise PrepareError(f"{model_dir}: cannot read the COLMAP model ({type(err).__name__}: {err})") from err
    return reconstruction_to_capture(rec, model_dir, source=f"COLMAP model {model_dir} ({ext[1:]})")


@dataclass
class SfmOptions:
    """Structure-from-motion settings (`tools/prepare_scene.py` flags of the same names).

    camera_model: COLMAP model fitted to the photos (SIMPLE_RADIAL: one focal length and one radial term, right for
    most photos; OPENCV for strong wide-angle distortion; PINHOLE for undistorted renders).
    camera_mode: 'auto' (one camera per distinct image size and EXIF camera and focal length, so photos from different
    cameras or zoom settings get their own intrinsics; see ``camera_groups``), 'single' (all photos share one camera: the most constrained, best when
    they truly do) or 'per-image'.
    matcher: 'exhaustive' (every pair; best for up to a few hundred photos) or 'sequential' (neighbours in file-name
    order; for video frames).
    guided_matching: after a pair's geometry is verified, match again constrained by it; measured on a 48-view
    render, it halved the worst camera's error (1.8% / 1.4 deg -> 0.9% / 0.5 deg) for ~10% more time.
    refine: the refinement pass after mapping (robust bundle adjustment, outlier observations dropped, bundle
    adjustment again), which pays most on the weakly constrained cameras.
    """
    camera_model: str = "SIMPLE_RADIAL"
    camera_mode: str = "auto"
    matcher: str = "exhaustive"
    max_features: int = 8192
    peak_threshold: float = 0.004   # SIFT contrast threshold; COLMAP's 0.0067 finds too few points on small objects
    guided_matching: bool = True    # re-match along the verified epipolar geometry: more matches on weak views
    refine: bool = True
    max_reprojection_error: float = 2.0  # pixels; observations beyond are outliers in the refinement pass
    seed: int = 0
    num_threads: int = -1            # all cores; 1 makes the run reproducible (COLMAP's threads race otherwise)
    verbose: bool = False

    def check(self):
        from .capture import COLMAP_MODELS
        if self.camera_model not in COLMAP_MODELS:
            raise PrepareError(f"--camera-model {self.camera_model}: expected one of {', '.join(COLMAP_MODELS)}")
        if self.camera_mode not in CAMERA_MODES:
            raise PrepareError(f"--camera-mode {self.camera_mode}: expected one of {', '.join(CAMERA_MODES)}")
        if self.matcher not in MATCHERS:
            raise PrepareError(f"--matcher {self.matcher}: expected one of {', '.join(MATCHERS)}")


def _exif_camera(path):
    """(make, model, focal length, 35 mm focal length) from a photo's EXIF; Nones when absent."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            exif = img.getexif()
            sub = exif.get_ifd(0x8769)  # the Exif sub-IFD holds the focal lengths
    except Exception:  # noqa: BLE001  (unreadable EXIF only loses the grouping hint)
        return (None,) * 4
    return exif.get(0x010F), exif.get(0x0110), sub.get(0x920A), sub.get(0xA405)


def camera_groups(image_dir: str, names: List[str]) -> List[List[str]]:
    """Images that share intrinsics: the same size and the same EXIF camera and focal length. COLMAP's own 'auto'
    mode gives every image without EXIF a camera of its own, which leaves focal length and distortion free per
    image and costs accuracy (renders and screenshots carry no EXIF)."""
    from PIL import Image
    groups = {}
    for name in names:
        path = os.path.join(image_dir, name)
        with Image.open(path) as img:
            size = img.size
        groups.setdefault((size, _exif_camera(path)), []).append(name)
    return list(groups.values())


@contextlib.contextmanager
def _colmap_output_to(path, verbose):
    """Send what COLMAP prints (glog, at INFO, on the process's stderr) to the file ``path`` unless ``verbose``.
    Its glog flags set from Python do not reach the messages of every module, so the file descriptor is redirected;
    the file is kept with the sparse model."""
    if verbose:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log_file:
        os.dup2(log_file.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _extract_and_match(pycolmap, image_dir, names, database, opts: SfmOptions):
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = opts.num_threads if opts.num_threads > 0 else (os.cpu_count() or 1)
    extraction.sift.max_num_features = opts.max_features
    extraction.sift.peak_threshold = opts.peak_threshold
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = opts.camera_model
    if opts.camera_mode == "per-image":
        groups, mode = [list(names)], pycolmap.CameraMode.PER_IMAGE
    elif opts.camera_mode == "single":
        groups, mode = [list(names)], pycolmap.CameraMode.SINGLE
    else:
        groups, mode = camera_groups(image_dir, names), pycolmap.CameraMode.SINGLE
    for group in groups:  # one extraction per group: each call with SINGLE adds one camera for its images
        pycolmap.extract_features(database, image_dir, image_names=group, camera_mode=mode,
                                  reader_options=reader, extraction_options=extraction,
                                  device=pycolmap.Device.cpu)
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = opts.num_threads
    matching.guided_matching = opts.guided_matching
    if opts.matcher == "sequential":
        pycolmap.match_sequential(database, matching_options=matching, device=pycolmap.Device.cpu)
    else:
        pycolmap.match_exhaustive(database, matching_options=matching, device=pycolmap.Device.cpu)


def _map(pycolmap, image_dir, database, out_dir, opts: SfmOptions):
    """Incremental mapping; returns the reconstructions, largest first."""
    mapping = pycolmap.IncrementalPipelineOptions()
    mapping.num_threads = opts.num_threads
    mapping.random_seed = opts.seed
    mapping.mapper.random_seed = opts.seed
    mapping.triangulation.random_seed = opts.seed
    mapping.min_model_size = 3
    os.makedirs(out_dir, exist_ok=True)
    recs = pycolmap.incremental_mapping(database, image_dir, out_dir, options=mapping)
    return sorted(recs.values(), key=lambda r: r.num_reg_images(), reverse=True)


def _bundle_adjust(pycolmap, rec, robust, num_threads):
    options = pycolmap.BundleAdjustmentOptions()
    options.print_summary = False
    options.refine_principal_point = False  # not observable from ordinary photos; COLMAP's default too
    solver = options.ceres.solver_options
    solver.max_num_iterations = 200
    solver.function_tolerance, solver.gradient_tolerance, solver.parameter_tolerance = 1e-12, 1e-12, 1e-12
    solver.num_threads = num_threads
    if robust:
        options.ceres.loss_function_type = pycolmap.LossFunctionType.SOFT_L1
        options.ceres.loss_function_scale = 1.0
    pycolmap.bundle_adjustment(rec, options)


def _refine(pycolmap, rec, opts: SfmOptions):
    """Robust global bundle adjustment to convergence, drop observations beyond ``max_reprojection_error`` and
    points seen from too narrow a baseline, adjust again without the robust loss. The mapper's own adjustments stop
    early and keep outliers that a few weakly observed cameras lean on."""
    before = rec.compute_mean_reprojection_error()
    _bundle_adjust(pycolmap, rec, robust=True, num_threads=opts.num_threads)
    dropped = pycolmap.ObservationManager(rec).filter_all_points3D(opts.max_reprojection_error, 1.5)
    _bundle_adjust(pycolmap, rec, robust=False, num_threads=opts.num_threads)
    return dict(reprojection_error_before=float(before),
                reprojection_error_after=float(rec.compute_mean_reprojection_error()),
                observations_dropped=int(dropped))


def run_sfm(image_dir: str, names: List[str], work_dir: str, opts: Optional[SfmOptions] = None) -> Capture:
    """Structure from motion on the images ``names`` of ``image_dir``: the largest reconstruction as a Capture
    (registered images only; ``notes`` has the timings and statistics). ``work_dir`` receives the database and the
    sparse model (``sparse/``, COLMAP binary, with ``colmap.log``: what COLMAP printed)."""
    opts = opts or SfmOptions()
    opts.check()
    pycolmap = import_pycolmap()
    pycolmap.set_random_seed(opts.seed)
    sparse = os.path.join(work_dir, "sparse")
    os.makedirs(sparse, exist_ok=True)
    database = os.path.join(work_dir, "database.db")
    start = time.time()
    with _colmap_output_to(os.path.join(sparse, "colmap.log"), opts.verbose):
        _extract_and_match(pycolmap, image_dir, names, database, opts)
        matched = time.time()
        recs = _map(pycolmap, image_dir, database, os.path.join(work_dir, "mapper"), opts)
        mapped = time.time()
        if recs and opts.refine:
            refinement = _refine(pycolmap, recs[0], opts)
    if not recs:
        raise PrepareError(f"{image_dir}: structure from motion found no reconstruction (no image pair with enough "
                           "matched features; see docs/custom-data.md, 'When structure from motion fails')")
    rec = recs[0]
    notes = dict(sfm_models=len(recs), sfm_seconds_features_and_matching=round(matched - start, 2),
                 sfm_seconds_mapping=round(mapped - matched, 2), camera_model=opts.camera_model,
                 camera_mode=opts.camera_mode, matcher=opts.matcher, n_cameras=int(rec.num_cameras()))
    if len(recs) > 1:
        logger.warning("structure from motion split the photos into %d models; keeping the largest (%d images)",
                       len(recs), rec.num_reg_images())
    if opts.refine:
        notes.update(refinement)
        notes["sfm_seconds_refinement"] = round(time.time() - mapped, 2)
    notes["mean_reprojection_error"] = float(rec.compute_mean_reprojection_error())
    rec.write_binary(sparse)
    capture = reconstruction_to_capture(rec, image_dir, source="structure from motion (pycolmap "
                                        f"{getattr(pycolmap, '__version__', '?')})")
    notes["n_points"] = int(len(capture.points))
    capture.notes = notes
    return capture
