"""Render a triangle mesh into a NeuS-format scene folder (images, masks, cameras_sphere.npz, gt_mesh.ply).

Example (the bundled demo scene):
    python tools/make_scene.py bunny.obj data/bunny --n-views 64 --resolution 288 --seed 0
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jnerf  # noqa: E402,F401  (must precede anything that imports jittor)
from jnerf.dataset.scene_maker import make_scene  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mesh", help="input triangle mesh (.ply/.obj/.off), any units and position")
    parser.add_argument("out_dir", help="scene folder to write")
    parser.add_argument("--n-views", type=int, default=64, help="number of cameras (Fibonacci lattice)")
    parser.add_argument("--resolution", type=int, nargs="+", default=[512],
                        help="image size: W (square) or W H")
    parser.add_argument("--fov", type=float, default=40.0, help="horizontal field of view, degrees")
    parser.add_argument("--hemisphere", action="store_true", help="cameras only above the object (around --up)")
    parser.add_argument("--up", default="y", help="world up axis: x, y, z, -x, -y or -z")
    parser.add_argument("--margin", type=float, default=1.1,
                        help="unit sphere radius / object bounding-sphere radius")
    parser.add_argument("--seed", type=int, default=0, help="texture and camera-lattice rotation seed")
    parser.add_argument("--background", choices=("black", "env"), default="black",
                        help="'env': a textured environment at infinity behind the object (for training without "
                             "masks; the masks are still written)")
    parser.add_argument("--texture", choices=("blotches", "rich"), default="blotches",
                        help="surface pattern: 'blotches' (default) or 'rich' (aperiodic multi-scale blobs that "
                             "structure from motion can match; for testing tools/prepare_scene.py)")
    args = parser.parse_args(argv)
    if len(args.resolution) not in (1, 2):
        parser.error("--resolution takes W or W H")
    if args.n_views < 1:
        parser.error("--n-views must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    width = args.resolution[0]
    height = args.resolution[1] if len(args.resolution) == 2 else width
    summary = make_scene(args.mesh, args.out_dir, n_views=args.n_views, width=width, height=height,
                         fov_deg=args.fov, hemisphere=args.hemisphere, up=args.up, margin=args.margin,
                         seed=args.seed, background=args.background, texture=args.texture, verbose=False)
    scale = summary["scale_mat"]
    print(f"wrote {summary['n_views']} views {width}x{height} to {args.out_dir} in {summary['seconds']:.1f} s; "
          f"object covers {summary['mask_coverage'] * 100:.1f}% of the pixels; unit sphere = world sphere of "
          f"radius {scale[0, 0]:.6g} at {scale[:3, 3].round(6).tolist()}")


if __name__ == "__main__":
    main()
