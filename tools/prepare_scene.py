#!/usr/bin/env python
"""Turn your photos (and masks) into a NeuS-format scene folder that jnerf trains on.

    python tools/prepare_scene.py photos/ data/my_object --masks masks/          # structure from motion (pycolmap)
    python tools/prepare_scene.py photos/ data/my_object --colmap-model sparse/0 # cameras from a COLMAP model
    python tools/prepare_scene.py train/ data/lego --transforms transforms_train.json  # NeRF-style transforms.json

Writes cameras_sphere.npz, image/, mask/ (with masks), prepare.json (how everything was derived) and preview.png
(check that the green unit sphere holds the object and little else). See docs/custom-data.md.
Exit status: 0 done; 2 a one-line error about the input (JNERF_DEBUG=1 shows the traceback); OUT_DIR is then
untouched.
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

EXIT_ERROR = 2


def build_parser():
    from jnerf.dataset.capture import COLMAP_MODELS
    from jnerf.dataset.colmap_io import CAMERA_MODES, MATCHERS
    parser = argparse.ArgumentParser(prog="prepare_scene.py", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
                                     epilog="\n".join(__doc__.split("\n")[1:]))
    parser.add_argument("images_dir", metavar="IMAGES_DIR", help="folder of photos (.png/.jpg), all of one size")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="scene folder to write (must not exist, or be empty)")
    parser.add_argument("--masks", metavar="DIR", help="object masks, one per photo, named like it (IMG_1.png or "
                                                       "IMG_1.jpg.png for IMG_1.jpg); white = object")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--colmap-model", metavar="DIR", help="COLMAP sparse model (cameras/images/points3D "
                                                              ".bin or .txt) instead of running structure from motion")
    source.add_argument("--transforms", metavar="FILE", help="transforms.json (NeRF-synthetic / instant-ngp / "
                                                             "nerfstudio) instead of running structure from motion")
    sfm = parser.add_argument_group("structure from motion (without --colmap-model / --transforms)")
    sfm.add_argument("--camera-model", default="SIMPLE_RADIAL", choices=sorted(COLMAP_MODELS),
                     help="lens model fitted to the photos (default SIMPLE_RADIAL; OPENCV for wide-angle lenses)")
    sfm.add_argument("--camera-mode", default="auto", choices=CAMERA_MODES,
                     help="auto: photos of one size and EXIF camera share intrinsics (default); single: all share; "
                          "per-image: none share")
    sfm.add_argument("--matcher", default="exhaustive", choices=MATCHERS,
                     help="exhaustive (default; every pair) or sequential (video frames in name order)")
    sfm.add_argument("--no-refine", action="store_true", help="skip the bundle-adjustment pass after mapping")
    sfm.add_argument("--threads", type=int, default=-1, metavar="N",
                     help="COLMAP threads (default: all cores); 1 gives the same cameras on every run, at about "
                          "1.4x the time on 2 cores (threaded runs differ slightly from run to run)")
    sfm.add_argument("--keep-database", action="store_true", help="keep COLMAP's database in OUT_DIR/sparse/")
    parser.add_argument("--margin", type=float, default=1.1, help="unit sphere radius / object radius (default 1.1)")
    parser.add_argument("--hull-resolution", type=int, default=96, help="visual-hull voxels per axis (default 96)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
    parser.add_argument("--verbose", action="store_true", help="show COLMAP's progress messages")
    return parser


def _options(args):
    from jnerf.dataset.colmap_io import SfmOptions
    from jnerf.dataset.prepare import PrepareOptions
    if not args.margin >= 1.0:
        raise ValueError(f"--margin must be >= 1, got {args.margin}")
    if args.hull_resolution < 16:
        raise ValueError(f"--hull-resolution must be >= 16, got {args.hull_resolution}")
    if args.threads == 0 or args.threads < -1:
        raise ValueError(f"--threads must be a positive count or -1 (all cores), got {args.threads}")
    sfm = SfmOptions(camera_model=args.camera_model, camera_mode=args.camera_mode, matcher=args.matcher,
                     refine=not args.no_refine, num_threads=args.threads, verbose=args.verbose)
    return PrepareOptions(sfm=sfm, margin=args.margin, hull_resolution=args.hull_resolution,
                          overwrite=args.overwrite, keep_database=args.keep_database)


def _summary(record, out_dir):
    sphere = record["sphere"]
    lines = [f"wrote {record['n_views']} views ({record['n_photos']} photos) to {out_dir} in {record['seconds']} s",
             f"cameras: {record['cameras_from']}",
             f"unit sphere: {sphere['method']}; centre {[round(c, 5) for c in sphere['centre']]}, radius "
             f"{sphere['radius']:.5g} (world units)",
             f"check {os.path.join(out_dir, 'preview.png')}; details in {os.path.join(out_dir, 'prepare.json')}"]
    notes = record["source_notes"]
    if "mean_reprojection_error" in notes:
        lines.insert(2, f"structure from motion: {notes['n_points']} points, mean reprojection error "
                        f"{notes['mean_reprojection_error']:.3f} px, {notes['n_cameras']} camera model(s)")
    return "\n".join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
    from jnerf.utils.errors import user_errors
    from jnerf.dataset.prepare import prepare_scene
    try:
        record = prepare_scene(args.images_dir, args.out_dir, masks_dir=args.masks, colmap_model=args.colmap_model,
                               transforms=args.transforms, options=_options(args))
    except user_errors() as err:
        if os.environ.get("JNERF_DEBUG"):
            raise
        print(f"error: {str(err).strip() or type(err).__name__}", file=sys.stderr)
        return EXIT_ERROR
    print(_summary(record, args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
