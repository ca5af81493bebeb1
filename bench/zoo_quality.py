"""Quality over training time on the scene zoo: train every zoo scene with preview meshes, then score each mesh
(Chamfer as a fraction of the GT bbox diagonal, F-score at 0.5% of it) against the seconds of training that made it.

    python bench/make_zoo.py data/zoo
    python bench/zoo_quality.py train data/zoo --out logs/zoo          # trains (needs Jittor; GPU or CPU)
    python bench/zoo_quality.py score logs/zoo --zoo data/zoo          # scores (no Jittor: any numpy, scipy)

`train` runs the README's train command once per scene with the given config (default: the demo's), only
`dataset.root` and the outputs changed, plus `train.mesh_every` preview meshes. `score` prints one table per scene
and a summary that checks what the geometry issue asks: the final mesh within 10% of the best preview, no preview
after the first occupancy update more than 20% above the best before it, and the time to come within 10% of the
final Chamfer. Scores are cached in each run folder (`zoo_scores.json`), so a re-run only scores new meshes.

    python bench/zoo_quality.py score logs/zoo_new --zoo data/zoo --reference logs/zoo_base

adds the time-to-quality comparison that speed work is judged by: for each scene, the seconds this run takes to
come within 10% of the *reference* run's final Chamfer, against the reference's own seconds to that point. The
reference can also be a JSON of scored curves (`score ... --save-curves FILE`), e.g. bench/reference/, so that it
outlives the run folders.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

MESH_LINE = re.compile(r"mesh at step (\d+) \(([\d.]+) s of training\).* -> (\S+?_res(\d+)\.(?:ply|obj))")
RATE_LINE = re.compile(r"\| ([\d.]+) it/s")


def scene_dirs(zoo, only=None):
    names = sorted(n for n in os.listdir(zoo) if os.path.isfile(os.path.join(zoo, n, "cameras_sphere.npz")))
    return [os.path.join(zoo, n) for n in names if not only or n in only]


# ------------------------------------------------------------------------------------------------------ train
def train(args):
    config = os.path.abspath(args.config)
    os.makedirs(args.out, exist_ok=True)
    runs = []
    for scene in scene_dirs(args.zoo, args.scenes):
        name = os.path.basename(scene)
        opts = [f"dataset.root={os.path.abspath(scene)!r}", f"log_dir={os.path.abspath(args.out)!r}",
                f"exp_name={name!r}", f"train.mesh_every={args.mesh_every}",
                f"mesh.preview_resolution={args.preview_resolution}", "eval.after_training=False", *args.opts]
        cmd = [sys.executable, os.path.abspath(args.run_net), "--config-file", config,
               "--task", "train", "--opts", *opts]
        runs.append((name, cmd))
    done = lambda name: os.path.join(args.out, f"{name}.done")
    pending, running, failed = [r for r in runs if not os.path.isfile(done(r[0]))], [], []
    for name, _ in runs:
        if os.path.isfile(done(name)):
            print(f"[zoo] {name}: already trained", flush=True)
    # A timeout (SIGTERM) or Ctrl-C stops the scenes still training too, so that scoring what they made does not
    # share the device with orphaned runs.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f"[zoo] stopped (signal {signum})"))
    try:
        while pending or running:
            while pending and len(running) < args.jobs:
                name, cmd = pending.pop(0)
                shutil.rmtree(os.path.join(args.out, name), ignore_errors=True)  # an unfinished earlier attempt
                log = open(os.path.join(args.out, f"{name}.stdout"), "w")
                print(f"[zoo] training {name} ({len(running) + 1} running)", flush=True)
                running.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), time.time()))
            time.sleep(1)
            for entry in list(running):
                name, proc, start = entry
                if proc.poll() is not None:
                    running.remove(entry)
                    print(f"[zoo] {name}: exit {proc.returncode} after {time.time() - start:.0f} s", flush=True)
                    if proc.returncode:
                        failed.append(name)
                    else:
                        open(done(name), "w").close()
    finally:
        for name, proc, _ in running:
            if proc.poll() is None:
                print(f"[zoo] {name}: stopped unfinished", flush=True)
                proc.terminate()
        for _, proc, _ in running:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 1 if failed else 0


# ------------------------------------------------------------------------------------------------------ score
def meshes_in_log(log_path):
    """[(step, train_seconds, resolution, path)], log order; a path logged twice keeps its last entry."""
    found = {}
    with open(log_path) as f:
        for line in f:
            m = MESH_LINE.search(line)
            if m:
                found[m.group(3)] = (int(m.group(1)), float(m.group(2)), int(m.group(4)), m.group(3))
    return sorted(found.values(), key=lambda e: (e[0], e[2]))


def training_rate(log_path):
    """Median it/s of the run's log lines (the windows with previews or updates included)."""
    with open(log_path) as f:
        rates = sorted(float(m.group(1)) for m in map(RATE_LINE.search, f) if m)
    return rates[len(rates) // 2] if rates else float("nan")


def first_update_step(run_dir):
    """The step of the first SDF-aware occupancy update, or of the first weight prune (the rule before it), read
    from the run's resolved config."""
    from jnerf.utils.config import load_config
    cfg = load_config(os.path.join(run_dir, "config.py"))
    if "update_start" in cfg.occupancy:
        return int(cfg.occupancy.update_start)
    if "occupancy_schedule" in cfg:  # the old rule pruned first at prune_start + prune_every
        return int(cfg.occupancy_schedule.prune_start) + int(cfg.occupancy_schedule.prune_every)
    return None


def _score_one(job):
    path, gt, scene = job
    from jnerf.evaluation.mesh_eval import evaluate_mesh
    res = evaluate_mesh(path, gt, scene_dir=scene, seed=0, tau_frac=0.005)
    return path, {"chamfer_frac": res["chamfer_frac"], "fscore": res["fscore"],
                  "fscore_1pct": res["fscore_at"]["0.01"], "accuracy_frac": res["accuracy_frac"],
                  "completeness_frac": res["completeness_frac"]}


def score_run(run_dir, scene, jobs):
    cache_path = os.path.join(run_dir, "zoo_scores.json")
    cache = json.load(open(cache_path)) if os.path.isfile(cache_path) else {}
    # a mesh already scored counts even when the file is gone (tables can be re-made from the cache alone)
    entries = [e for e in meshes_in_log(os.path.join(run_dir, "train.log")) if e[3] in cache or os.path.isfile(e[3])]
    todo = [(e[3], os.path.join(scene, "gt_mesh.ply"), scene) for e in entries if e[3] not in cache]
    if todo:
        if jobs > 1:
            from multiprocessing import Pool
            with Pool(min(jobs, len(todo))) as pool:
                cache.update(pool.map(_score_one, todo))
        else:
            cache.update(map(_score_one, todo))
        with open(cache_path, "w") as f:
            json.dump(cache, f, indent=1)
    return [(step, secs, res, cache[path]) for step, secs, res, path in entries]


def previews_of(rows):
    """The preview meshes: the rows at the lowest marching-cubes resolution (the final mesh may be finer)."""
    return [r for r in rows if r[2] == min(x[2] for x in rows)] if rows else []


def seconds_to_reach(rows, chamfer):
    """Training seconds of the first preview at or below ``chamfer``; None if none gets there."""
    return next((r[1] for r in previews_of(rows) if r[3]["chamfer_frac"] <= chamfer), None)


def summarise(name, rows, first_update, rate):
    """Markdown lines for one scene and its summary dict."""
    lines = [f"### {name}", "", "| step | training s | res | Chamfer / diag | F @ 0.5% | F @ 1% |", "|---|---|---|---|---|---|"]
    for step, secs, res, s in rows:
        lines.append(f"| {step} | {secs:.1f} | {res} | {s['chamfer_frac']:.5f} | {s['fscore']:.3f} | "
                     f"{s['fscore_1pct']:.3f} |")
    previews = previews_of(rows)
    final = rows[-1] if rows else None
    best = min(previews, key=lambda r: r[3]["chamfer_frac"]) if previews else None
    before = [r for r in previews if first_update is not None and r[0] < first_update]
    after = [r for r in previews if first_update is not None and r[0] >= first_update]
    summary = {"scene": name, "rate": rate}
    if final and best:
        final_c, best_c = final[3]["chamfer_frac"], best[3]["chamfer_frac"]
        summary.update(final_chamfer=final_c, final_f=final[3]["fscore"], final_res=final[2],
                       best_chamfer=best_c, best_step=best[0], final_over_best=final_c / best_c)
        summary["seconds_to_10pct_of_final"] = seconds_to_reach(rows, 1.1 * final_c)
        if before and after:
            best_before = min(r[3]["chamfer_frac"] for r in before)
            summary["worst_after_update_over_best_before"] = max(r[3]["chamfer_frac"] for r in after) / best_before
    lines.append("")
    return lines, summary


def score_runs(runs, zoo, jobs):
    """{scene: (rows, summary, markdown lines)} for every run folder of ``runs`` that is a zoo scene."""
    scored = {}
    for name in sorted(os.listdir(runs)):
        run_dir = os.path.join(runs, name)
        if name not in zoo or not os.path.isfile(os.path.join(run_dir, "train.log")):
            continue
        rows = score_run(run_dir, zoo[name], jobs)
        lines, summary = summarise(name, rows, first_update_step(run_dir),
                                   training_rate(os.path.join(run_dir, "train.log")))
        scored[name] = rows, summary, lines
    return scored


def save_curves(scored, path):
    """Each scene's scored meshes as JSON (step, training s, resolution, scores): a reference that later runs can be
    compared against (``--reference curves.json``) once the run folders are gone."""
    curves = {name: [[step, secs, res, s] for step, secs, res, s in rows] for name, (rows, _, _) in scored.items()}
    with open(path, "w") as f:
        json.dump(curves, f, indent=1)


def load_reference(path, zoo, jobs):
    """A reference for ``reference_table``: a runs folder (scored as usual) or a ``save_curves`` JSON file."""
    if os.path.isdir(path):
        return score_runs(path, zoo, jobs)
    with open(path) as f:
        curves = json.load(f)
    loaded = {}
    for name, rows in curves.items():
        rows = [(int(step), float(secs), int(res), s) for step, secs, res, s in rows]
        lines, summary = summarise(name, rows, None, float("nan"))
        loaded[name] = rows, summary, lines
    return loaded


def reference_table(scored, reference):
    """Markdown: each scene's seconds to within 10% of the reference run's final Chamfer, this run's and the
    reference's own, and their ratio (below 1: this run gets there sooner)."""
    out = ["### time to the reference's quality", "",
           "| scene | reference final | reference: s to within 10% of it | this run: s to within 10% of it | "
           "ratio | this run's final |", "|---|---|---|---|---|---|"]
    for name, (rows, summary, _) in scored.items():
        if name not in reference or "final_chamfer" not in reference[name][1] or "final_chamfer" not in summary:
            continue
        ref_rows, ref_summary, _ = reference[name]
        target = 1.1 * ref_summary["final_chamfer"]
        ref_s, s = seconds_to_reach(ref_rows, target), seconds_to_reach(rows, target)
        fmt = lambda v: "never" if v is None else f"{v:.1f}"
        ratio = f"{s / ref_s:.2f}" if s is not None and ref_s else "-"
        out.append(f"| {name} | {ref_summary['final_chamfer']:.5f} | {fmt(ref_s)} | {fmt(s)} | {ratio} | "
                   f"{summary['final_chamfer']:.5f} |")
    return out + [""]


def score(args):
    zoo = {os.path.basename(s): s for s in scene_dirs(args.zoo)}
    scored = score_runs(args.runs, zoo, args.jobs)
    out = [line for _, _, lines in scored.values() for line in lines]
    summaries = [summary for _, summary, _ in scored.values()]
    if args.reference:
        out += reference_table(scored, load_reference(args.reference, zoo, args.jobs))
    if args.save_curves:
        save_curves(scored, args.save_curves)
    out += ["### summary", "",
            "| scene | it/s | best preview (step) | final (res) | final / best | worst after 1st update / best "
            "before | s to within 10% of final |", "|---|---|---|---|---|---|---|"]
    for s in summaries:
        if "final_chamfer" not in s:
            out.append(f"| {s['scene']} | no meshes | | | | | |")
            continue
        worst = s.get("worst_after_update_over_best_before")
        reached = s.get("seconds_to_10pct_of_final")
        out.append(f"| {s['scene']} | {s['rate']:.1f} | {s['best_chamfer']:.5f} ({s['best_step']}) | "
                   f"{s['final_chamfer']:.5f} / F {s['final_f']:.3f} ({s['final_res']}) | {s['final_over_best']:.2f} | "
                   f"{'-' if worst is None else f'{worst:.2f}'} | {'-' if reached is None else f'{reached:.1f}'} |")
    text = "\n".join(out)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train every zoo scene with preview meshes")
    t.add_argument("zoo", help="folder of scene folders (bench/make_zoo.py)")
    t.add_argument("--out", required=True, help="log_dir of the runs (one exp per scene)")
    t.add_argument("--config", default=os.path.join(ROOT, "projects", "neus", "configs", "instant_neus_demo.py"))
    t.add_argument("--scenes", nargs="*", help="only these scene names")
    t.add_argument("--run-net", default=os.path.join(ROOT, "tools", "run_net.py"),
                   help="the run_net.py to train with (another checkout's, to compare versions)")
    t.add_argument("--mesh-every", type=int, default=250)
    t.add_argument("--preview-resolution", type=int, default=256)
    t.add_argument("--jobs", type=int, default=1, help="scenes trained at once (timings then include contention)")
    t.add_argument("--opts", nargs="*", default=[], help="extra config overrides for every scene")
    s = sub.add_parser("score", help="score the meshes of finished runs")
    s.add_argument("runs", help="the --out folder of `train`")
    s.add_argument("--zoo", required=True)
    s.add_argument("--jobs", type=int, default=1, help="meshes scored in parallel processes")
    s.add_argument("--markdown", help="also write the tables here")
    s.add_argument("--reference", help="a reference (e.g. before a change), as a runs folder or a --save-curves "
                                       "JSON: the time to come within 10%% of its final Chamfer")
    s.add_argument("--save-curves", help="also write every scene's scored meshes here as JSON (a later --reference)")
    args = parser.parse_args(argv)
    return train(args) if args.command == "train" else score(args)


if __name__ == "__main__":
    sys.exit(main())
