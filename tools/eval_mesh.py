#!/usr/bin/env python
"""Evaluate a reconstructed mesh against the ground truth (Chamfer, accuracy, completeness, F-score).

    python tools/eval_mesh.py pred.ply data/bunny/gt_mesh.ply --scene data/bunny --json metrics.json

With --scene, predicted points that a training view sees outside its (dilated) mask are culled and GT points no
training camera sees are dropped; see jnerf/evaluation/mesh_eval.py for the protocol.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def build_parser():
    parser = argparse.ArgumentParser(prog="eval_mesh.py", description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("pred", help="predicted mesh (.ply/.obj/.off)")
    parser.add_argument("gt", help="ground-truth mesh, world units")
    parser.add_argument("--scene", metavar="DIR", help="NeuS-format scene folder (cameras + masks) for culling")
    parser.add_argument("--json", metavar="PATH", help="write the metrics here")
    parser.add_argument("--pred-frame", choices=("world", "normalised"), default="world",
                        help="frame of the predicted mesh (normalised needs --scene; default: world)")
    parser.add_argument("--tau", type=float, help="F-score threshold in world units (default: --tau-frac of diag)")
    parser.add_argument("--tau-frac", type=float, default=0.005, help="F-score threshold / GT bbox diagonal")
    parser.add_argument("--max-dist-frac", type=float, default=0.05, help="distance clamp / GT bbox diagonal")
    parser.add_argument("--voxel-frac", type=float, default=2e-3, help="query downsampling voxel / diagonal")
    parser.add_argument("--floor-frac", type=float, default=5e-4, help="target sampling floor / diagonal")
    parser.add_argument("--cull-dilation", type=int, help="mask dilation for culling, pixels (default 1%% of size)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    from jnerf.evaluation.mesh_eval import evaluate_mesh
    for path in (args.pred, args.gt):
        if not os.path.isfile(path):
            sys.exit(f"eval_mesh.py: {path}: file not found")
    evaluate_mesh(args.pred, args.gt, scene_dir=args.scene, pred_frame=args.pred_frame, tau=args.tau,
                  tau_frac=args.tau_frac, max_dist_frac=args.max_dist_frac, voxel_frac=args.voxel_frac,
                  floor_frac=args.floor_frac, cull_dilation=args.cull_dilation, seed=args.seed,
                  json_path=args.json, verbose=True)


if __name__ == "__main__":
    main()
