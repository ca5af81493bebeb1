"""Training without masks against training with them, on a scene that has both (tools/make_scene.py --background
env writes a textured background and still writes the masks): Chamfer and F-score of each final mesh against the
ground truth (no mask culling, so background floaters count), the share of the predicted surface farther than 2% of
the diagonal from the ground truth (floaters), and the training speed.

    python tools/make_scene.py data/bunny/gt_mesh.ply data/bunny_env --background env --n-views 64 --resolution 320
    python bench/bench_womask.py both data/bunny_env [--steps 3000] [--device cuda] [--out DIR]
    python bench/bench_womask.py train data/bunny_env --out DIR --runs without_masks --tag vlr \
        --opts optim.group_lr.variance=0.01          # a variant beside the runs already in DIR; then `score`

`train` needs Jittor, `score` only numpy/scipy/trimesh (on a machine whose scipy wants numpy 2, score with that
Python: bench/gpu_e2e.sh womask does).
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
CONFIGS = os.path.join(ROOT, "projects", "neus", "configs")


def floater_share(pred_path, gt_path, frac=0.02, n=200000, seed=0):
    """Share of the predicted surface area farther than ``frac`` of the GT bbox diagonal from the GT surface."""
    import trimesh
    from jnerf.evaluation.mesh_eval import nearest_distances, sample_surface
    pred, gt = trimesh.load(pred_path, process=False), trimesh.load(gt_path, process=False)
    rng = np.random.default_rng(seed)
    diag = float(np.linalg.norm(gt.bounds[1] - gt.bounds[0]))
    pred_pts = sample_surface(np.asarray(pred.vertices), np.asarray(pred.faces), n, rng)
    gt_pts = sample_surface(np.asarray(gt.vertices), np.asarray(gt.faces), 4 * n, rng)
    return float(np.mean(nearest_distances(pred_pts, gt_pts, 10 * frac * diag) > frac * diag))


def train(args):
    """Train both runs (Jittor); write ``runs.json`` (mesh paths, it/s) into ``args.out``."""
    import jnerf  # noqa: F401  (Jittor's environment first)
    from jnerf.runner import build_runner, load_run_config
    scene, out = os.path.abspath(args.scene), os.path.abspath(args.out)
    runs = []
    if os.path.isfile(os.path.join(out, "runs.json")):   # keep the runs of an earlier call that this one skips
        with open(os.path.join(out, "runs.json")) as f:
            runs = json.load(f)["runs"]
    names = {base: base + (f"_{args.tag}" if args.tag else "") for base, _ in RUNS}
    runs = [r for r in runs if r["name"] not in [names[n] for n in args.runs]]
    for base, config in [r for r in RUNS if r[0] in args.runs]:
        name = names[base]
        opts = [f"log_dir={out!r}", f"exp_name={name!r}", f"dataset.root={scene!r}", "train.val_every=0",
                "eval.after_training=False"] + ([f"train.total_steps={args.steps}"] if args.steps else [])
        opts += args.opts
        runner = build_runner(load_run_config(os.path.join(CONFIGS, config), opts, device=args.device))
        start = time.time()
        runner.train()
        runs.append(dict(name=name, config=config, mesh=runner.last_mesh, steps=runner.step,
                         it_s=runner.step / runner.train_seconds, train_seconds=runner.train_seconds,
                         wall=time.time() - start))
        runner.lock.release()
        with open(os.path.join(out, "runs.json"), "w") as f:
            json.dump(dict(scene=scene, runs=runs), f, indent=1)
    print(f"trained {len(runs)} runs into {out}")


def score(args):
    """Score the meshes of ``runs.json`` (no Jittor: any numpy, scipy, trimesh) and print the table."""
    from jnerf.evaluation import evaluate_mesh
    with open(os.path.join(args.out, "runs.json")) as f:
        info = json.load(f)
    gt = os.path.join(args.scene or info["scene"], "gt_mesh.ply")
    rows = []
    for run in info["runs"]:
        result = evaluate_mesh(run["mesh"], gt, seed=0)
        rows.append(dict(run, chamfer=result["chamfer_frac"], fscore=result["fscore"],
                         accuracy=result["accuracy_frac"], completeness=result["completeness_frac"],
                         floaters=floater_share(run["mesh"], gt)))
    # accuracy (predicted surface -> GT) against completeness (GT -> predicted) says which way a mesh is wrong:
    # extra surface (a bloated silhouette, floaters) or missing parts (thin parts the background took)
    lines = [f"scene {info['scene']}", "", "| run | steps | Chamfer / diag | accuracy / completeness | F @ 0.5% | "
             "floaters (> 2% of diag) | it/s |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['name'].replace('_', ' ')} | {r['steps']} | {r['chamfer']:.5f} | {r['accuracy']:.5f} / "
              f"{r['completeness']:.5f} | {r['fscore']:.3f} | {100 * r['floaters']:.2f}% | {r['it_s']:.2f} |"
              for r in rows]
    masked = next((r for r in rows if r["name"] == "with_masks"), None)
    for r in rows:
        if masked is not None and r is not masked:
            ratio, speed = r["chamfer"] / masked["chamfer"], r["it_s"] / masked["it_s"]
            lines += ["", f"{r['name'].replace('_', ' ')} / with masks: Chamfer x{ratio:.2f}, speed x{speed:.2f}"]
    print("\n".join(lines))


RUNS = (("with_masks", "instant_neus_demo.py"), ("without_masks", "instant_neus_womask.py"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=("train", "score", "both"))
    parser.add_argument("scene")
    parser.add_argument("--out", default=None, help="run folder (default: a new temporary one)")
    parser.add_argument("--steps", type=int, default=None, help="default: each config's own")
    parser.add_argument("--device", default=None)
    parser.add_argument("--runs", nargs="+", default=[r[0] for r in RUNS], choices=[r[0] for r in RUNS])
    parser.add_argument("--opts", nargs="*", default=[], help="config overrides for the runs trained in this call")
    parser.add_argument("--tag", default=None, help="suffix for the names of this call's runs (a variant kept beside "
                                                    "the plain runs of the same --out)")
    args = parser.parse_args(argv)
    args.out = args.out or tempfile.mkdtemp(prefix="womask_")
    if args.phase in ("train", "both"):
        train(args)
    if args.phase in ("score", "both"):
        score(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
