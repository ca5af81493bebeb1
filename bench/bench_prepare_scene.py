"""Round trip of tools/prepare_scene.py on a rendered scene: throw the cameras away, recover them from the images
(and masks) with structure from motion, align them to the truth by a similarity (Umeyama on the camera centres) and
report the camera errors; optionally train the CPU tiny config on the original and on the prepared scene and score
both meshes against the ground truth, the prepared one brought back with the same similarity.

    python bench/bench_prepare_scene.py /tmp/rt                       # 48 views at 384^2 of the bunny, rich texture
    python bench/bench_prepare_scene.py /tmp/rt --train-steps 250     # + the two tiny training runs (~7 min)

Targets (issue 14): median centre error < 1% of the cameras' spread, median rotation error < 0.5 deg, no camera
worse than 3% / 2 deg; the prepared scene's Chamfer within 2x the original's.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jnerf  # noqa: E402,F401  (before anything that may import jittor)


def bunny_mesh():
    import pymeshlab
    return os.path.join(os.path.dirname(pymeshlab.__file__), "tests", "sample_meshes", "bunny.obj")


def make_truth(root, views, resolution, hemisphere):
    from jnerf.dataset.scene_maker import make_scene
    scene = os.path.join(root, f"truth_{views}v_{resolution}{'_hemi' if hemisphere else ''}")
    if not os.path.isfile(os.path.join(scene, "gt_mesh.ply")):
        make_scene(bunny_mesh(), scene, n_views=views, width=resolution, hemisphere=hemisphere, seed=0,
                   texture="rich")
    return scene


def world_cameras(scene_dir, views=None):
    """(K [N,3,3], c2w [N,4,4] world units, scale_mat) of a NeuS folder."""
    from jnerf.dataset.cameras import camera_indices, load_cameras_npz, normalised_to_world
    npz = os.path.join(scene_dir, "cameras_sphere.npz")
    views = camera_indices(npz) if views is None else views
    intr, c2w, scale_mat = load_cameras_npz(npz, views)
    c2w = c2w.copy()
    c2w[:, :3, 3] = normalised_to_world(c2w[:, :3, 3], scale_mat)
    return intr, c2w, scale_mat


def camera_errors(truth, prepared):
    """compare_cameras of the prepared scene's views against the true views they came from."""
    from jnerf.evaluation.camera_eval import compare_cameras
    from jnerf.dataset.neus_format import view_index
    with open(os.path.join(prepared, "prepare.json")) as f:
        record = json.load(f)
    true_views = [view_index(v["photo"]) for v in record["views"]]
    _, true_c2w, true_scale = world_cameras(truth, true_views)
    _, est_c2w, est_scale = world_cameras(prepared)
    result = compare_cameras(est_c2w, true_c2w)
    # the prepared unit sphere, brought into the true frame, against the true one
    centre = result["scale"] * result["rotation"] @ est_scale[:3, 3] + result["translation"]
    result["sphere_centre_offset"] = float(np.linalg.norm(centre - true_scale[:3, 3]) / true_scale[0, 0])
    result["sphere_radius_ratio"] = float(result["scale"] * est_scale[0, 0] / true_scale[0, 0])
    result["record"] = record
    return result


def train_tiny(scene, log_dir, steps):
    from jnerf.runner import build_runner, load_run_config
    config = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "projects", "neus", "configs",
                          "instant_neus_tiny_cpu.py")
    cfg = load_run_config(config, [f"log_dir={log_dir!r}", f"dataset.root={scene!r}", f"train.total_steps={steps}",
                                   "train.val_every=0", "train.save_every=0", "eval.after_training=False"])
    runner = build_runner(cfg)
    runner.train()
    return runner.last_mesh


def chamfer(mesh_path, truth, similarity=None):
    import trimesh
    from jnerf.evaluation.camera_eval import apply_similarity
    from jnerf.evaluation.mesh_eval import evaluate_mesh
    mesh = trimesh.load(mesh_path, process=False)
    if similarity is not None:
        mesh = trimesh.Trimesh(apply_similarity(mesh.vertices, *similarity), mesh.faces, process=False)
    return evaluate_mesh(mesh, os.path.join(truth, "gt_mesh.ply"), scene_dir=truth, seed=0)["chamfer"]


def run_case(name, truth, out, use_masks, sfm_extra, rows):
    from jnerf.dataset.colmap_io import SfmOptions
    from jnerf.dataset.prepare import PrepareOptions, prepare_scene
    start = time.time()
    prepare_scene(os.path.join(truth, "image"), out, masks_dir=os.path.join(truth, "mask") if use_masks else None,
                  options=PrepareOptions(sfm=SfmOptions(**sfm_extra), overwrite=True))
    seconds = time.time() - start
    res = camera_errors(truth, out)
    notes = res["record"]["source_notes"]
    sfm_seconds = sum(v for k, v in notes.items() if k.startswith("sfm_seconds"))
    rows.append(dict(case=name, registered=f"{res['record']['n_views']}/{res['record']['n_photos']}",
                     centre_median_pct=float(np.median(res["centre_error_pct"])),
                     centre_max_pct=float(res["centre_error_pct"].max()),
                     rot_median_deg=float(np.median(res["rotation_error_deg"])),
                     rot_max_deg=float(res["rotation_error_deg"].max()),
                     sphere_offset=res["sphere_centre_offset"], sphere_radius_ratio=res["sphere_radius_ratio"],
                     sfm_seconds=sfm_seconds, total_seconds=seconds, reproj_px=notes.get("mean_reprojection_error")))
    return res


def print_table(rows):
    print("| case | registered | centre err median / max (% of spread) | rotation err median / max (deg) | "
          "sphere centre offset / radius ratio (vs true unit sphere) | SfM s | total s | reproj. px |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['registered']} | {r['centre_median_pct']:.3f} / {r['centre_max_pct']:.3f} | "
              f"{r['rot_median_deg']:.3f} / {r['rot_max_deg']:.3f} | {r['sphere_offset']:.3f} / "
              f"{r['sphere_radius_ratio']:.3f} | {r['sfm_seconds']:.1f} | {r['total_seconds']:.1f} | "
              f"{r['reproj_px']:.3f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", help="folder for the scenes and runs")
    parser.add_argument("--views", type=int, default=48)
    parser.add_argument("--resolution", type=int, default=384)
    parser.add_argument("--hemisphere", action="store_true", help="cameras on the upper hemisphere only")
    parser.add_argument("--cases", nargs="*", default=["masks", "no-masks", "single-camera"],
                        choices=["masks", "no-masks", "single-camera", "no-refine", "per-image"])
    parser.add_argument("--train-steps", type=int, default=0, help="also train the tiny config this many steps")
    args = parser.parse_args(argv)
    truth = make_truth(args.work, args.views, args.resolution, args.hemisphere)
    case_args = {"masks": (True, {}), "no-masks": (False, {}), "single-camera": (True, {"camera_mode": "single"}),
                 "no-refine": (True, {"refine": False}), "per-image": (True, {"camera_mode": "per-image"})}
    rows, results = [], {}
    for case in args.cases:
        use_masks, extra = case_args[case]
        results[case] = run_case(case, truth, os.path.join(args.work, f"prepared_{case}"), use_masks, extra, rows)
    print(f"\nscene: {truth} ({args.views} views, {args.resolution}^2, rich texture)")
    print_table(rows)
    if args.train_steps:
        case = "masks" if "masks" in results else args.cases[0]
        res = results[case]
        similarity = (res["scale"], res["rotation"], res["translation"])
        runs = {}
        for label, scene, sim in (("original", truth, None),
                                  (f"prepared ({case})", os.path.join(args.work, f"prepared_{case}"), similarity)):
            start = time.time()
            mesh = train_tiny(scene, os.path.join(args.work, "logs_" + label.split()[0]), args.train_steps)
            runs[label] = (chamfer(mesh, truth, sim), time.time() - start)
        print(f"\ntiny CPU run, {args.train_steps} steps; Chamfer vs gt_mesh.ply (world units of the truth; the "
              "prepared scene's mesh brought back by the camera similarity)")
        for label, (value, seconds) in runs.items():
            print(f"| {label} | Chamfer {value:.5f} | {seconds:.0f} s |")
        ratio = runs[f"prepared ({case})"][0] / runs["original"][0]
        print(f"ratio prepared / original: {ratio:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
