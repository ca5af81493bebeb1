"""Time to quality of a training run: score every mesh a run wrote against the ground truth and print a table of
Chamfer distance / F-score against the seconds of training that produced it.

Train with preview meshes first (the runner logs "mesh at step N (T s of training) ... -> path" for each), e.g.

    python tools/run_net.py --config-file projects/neus/configs/instant_neus_demo.py --task train \\
        --opts exp_name=ttq train.mesh_every=500 mesh.preview_resolution=192
    python bench/time_to_quality.py logs/ttq --gt data/bunny/gt_mesh.ply --scene data/bunny

"Reached" is the first mesh whose Chamfer is within 10% of the final mesh's (the issue's definition).
Preview meshes are coarser than the final one, so the table reads as an upper bound on the time.
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

MESH_LINE = re.compile(r"mesh at step (\d+) \(([\d.]+) s of training\).* -> (\S+?\.(?:ply|obj))")


def meshes_in_log(log_path):
    """[(step, train_seconds, mesh_path)] in log order; the last entry of a step wins (final export)."""
    found = {}
    with open(log_path) as f:
        for line in f:
            m = MESH_LINE.search(line)
            if m:
                found[(int(m.group(1)), m.group(3))] = float(m.group(2))
    return sorted((step, secs, path) for (step, path), secs in found.items())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="logs/<exp_name> of a finished run")
    parser.add_argument("--gt", required=True, help="ground-truth mesh (world units)")
    parser.add_argument("--scene", help="scene folder, to cull with its masks as the runner's eval does")
    parser.add_argument("--within", type=float, default=0.10, help="relative tolerance to the final Chamfer")
    args = parser.parse_args(argv)

    import jnerf  # noqa: F401
    from jnerf.evaluation.mesh_eval import evaluate_mesh
    log = os.path.join(args.run_dir, "train.log")
    entries = [e for e in meshes_in_log(log) if os.path.isfile(e[2])]
    if not entries:
        print(f"no meshes listed in {log}: train with train.mesh_every > 0", file=sys.stderr)
        return 2
    rows = []
    for step, secs, path in entries:
        result = evaluate_mesh(path, args.gt, scene_dir=args.scene, seed=0)
        rows.append((step, secs, result["chamfer"], result["chamfer"] / result["gt_bbox_diagonal"],
                     result["fscore"], os.path.basename(path)))
    final = rows[-1][2]
    reached = next(r for r in rows if r[2] <= final * (1 + args.within))
    print("| step | training s | Chamfer | % of diag | F-score | mesh |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.1f} | {r[2]:.5f} | {100 * r[3]:.3f}% | {r[4]:.4f} | {r[5]} |")
    print(f"\nwithin {100 * args.within:.0f}% of the final Chamfer ({final:.5f}) after {reached[1]:.1f} s of "
          f"training (step {reached[0]}), F-score {reached[4]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
