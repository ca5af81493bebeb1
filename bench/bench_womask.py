"""Training without masks against training with them, on a scene that has both (tools/make_scene.py --background
env writes a textured background and still writes the masks): Chamfer and F-score of each final mesh against the
ground truth (no mask culling, so background floaters count), the share of the predicted surface farther than 2% of
the diagonal from the ground truth (floaters), and the training speed.

    python tools/make_scene.py data/bunny/gt_mesh.ply data/bunny_env --background env --n-views 64 --resolution 320
    python bench/bench_womask.py data/bunny_env [--steps 3000] [--device cuda]
"""
import argparse
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


def run(config, scene, steps, device, log_dir, name):
    from jnerf.evaluation import evaluate_mesh
    from jnerf.runner import build_runner, load_run_config
    cfg = load_run_config(config, [f"log_dir={log_dir!r}", f"exp_name={name!r}", f"dataset.root={scene!r}",
                                   f"train.total_steps={steps}", "train.val_every=0", "eval.after_training=False"],
                          device=device)
    runner = build_runner(cfg)
    start = time.time()
    runner.train()
    wall = time.time() - start
    gt = os.path.join(scene, "gt_mesh.ply")
    result = evaluate_mesh(runner.last_mesh, gt, seed=0)
    runner.lock.release()
    return dict(name=name, chamfer=result["chamfer_frac"], fscore=result["fscore"],
                floaters=floater_share(runner.last_mesh, gt), it_s=runner.step / runner.train_seconds, wall=wall)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene")
    parser.add_argument("--steps", type=int, default=None, help="default: each config's own")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    scene = os.path.abspath(args.scene)
    log_dir = tempfile.mkdtemp(prefix="womask_")
    rows = []
    for name, config in (("with masks", "instant_neus_demo.py"), ("without masks", "instant_neus_womask.py")):
        from jnerf.runner import load_run_config
        steps = args.steps or load_run_config(os.path.join(CONFIGS, config), device=args.device).train.total_steps
        rows.append(run(os.path.join(CONFIGS, config), scene, steps, args.device, log_dir, name.replace(" ", "_")))
    print(f"\nscene {scene}, log {log_dir}\n")
    print("| run | Chamfer / diag | F @ 0.5% | floaters (> 2% of diag) | it/s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['chamfer']:.5f} | {r['fscore']:.3f} | {100 * r['floaters']:.2f}% | "
              f"{r['it_s']:.2f} |")
    print(f"\nwithout / with masks: Chamfer x{rows[1]['chamfer'] / rows[0]['chamfer']:.2f}, "
          f"speed x{rows[1]['it_s'] / rows[0]['it_s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
