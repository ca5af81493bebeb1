"""The batch tool against plain runs: N scenes back to back through tools/run_batch.py (embedded cluster, default
workers) and the same N scenes as plain `tools/run_net.py --task train` runs, one after the other; prints the
overhead per scene and whether the meshes (and their Chamfer distances) are identical.

    python bench/bench_batch.py                                  # the demo config on data/bunny, 2 scenes
    python bench/bench_batch.py --opts train.total_steps=1500    # shorter trainings, the same comparison
    bash bench/gpu_e2e.sh batch                                  # on the GPU machine (scores with its own Python)
    python bench/bench_batch.py --config projects/neus/configs/instant_neus_tiny_cpu.py \\
        --opts train.total_steps=60 mesh.resolution=64           # a CPU smoke run (a few minutes on 2 cores)

The N scenes are links to one scene folder (--scene), so the two plain runs also show whether a plain run repeats
itself exactly (the baseline for "identical"). Each batch scene runs the plain command with only its log_dir
changed. A warm-up run of that command comes first (--no-warmup skips it), so that no timed run pays for Jittor
compiling kernels. Overhead per scene = (batch wall time - sum of the plain wall times) / N, cluster start and stop
included; the per-scene table also compares each scene's task time in the batch with its plain run.
"""
import argparse
import csv
import filecmp
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
RUN_NET = os.path.join(ROOT, "tools", "run_net.py")
RUN_BATCH = os.path.join(ROOT, "tools", "run_batch.py")
sys.path.insert(0, ROOT)


def timed(cmd, log_path):
    start = time.time()
    with open(log_path, "w") as log:
        code = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.time() - start
    if code != 0:
        tail = open(log_path, errors="replace").read()[-2000:]
        raise SystemExit(f"{shlex.join(cmd)} exited {code} after {seconds:.0f} s:\n{tail}")
    return seconds


def plain_command(args, scene, log_dir, name):
    """The command the batch runs for a scene (SceneJob.command), with another log_dir."""
    from jnerf.batch.task import SceneJob
    job = SceneJob(name=name, scene_dir=scene, batch_dir=log_dir, config_file=args.config, opts=tuple(args.opts),
                   stop_event="", batch_run="", cwd=ROOT)
    return job.command(RUN_NET, resume=False)


MESH = re.compile(r"mesh_step(\d+)_res(\d+)\.ply$")


def final_mesh(run_dir):
    """The final mesh of a finished run: the highest-resolution mesh of its last step."""
    found = [(int(m.group(1)), int(m.group(2)), f) for f in os.listdir(run_dir) if (m := MESH.match(f))]
    return os.path.join(run_dir, max(found)[2])


def chamfer(mesh, scene, score_python, cache):
    """The Chamfer distance of ``mesh`` against the scene's ground truth: the run's own eval json when it wrote
    one, else tools/eval_mesh.py with ``score_python`` (a machine whose scipy cannot run under Jittor's numpy)."""
    if mesh in cache:
        return cache[mesh]
    run_dir, step = os.path.dirname(mesh), MESH.match(os.path.basename(mesh)).group(1)
    own = os.path.join(run_dir, f"eval_step{step}.json")
    out = own if os.path.isfile(own) else mesh + ".eval.json"
    if not os.path.isfile(out):
        subprocess.run([*shlex.split(score_python), os.path.join(ROOT, "tools", "eval_mesh.py"), mesh,
                        os.path.join(scene, "gt_mesh.ply"), "--scene", scene, "--json", out], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        cache[mesh] = json.load(f)["chamfer"]
    return cache[mesh]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.path.join(ROOT, "projects", "neus", "configs",
                                                         "instant_neus_demo.py"))
    parser.add_argument("--scene", default=os.path.join(ROOT, "data", "bunny"), help="the scene every run trains")
    parser.add_argument("--n-scenes", type=int, default=2)
    parser.add_argument("--out", default="/tmp/jnerf-bench-batch", help="work folder (its runs are replaced)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up run")
    parser.add_argument("--score", action="store_true",
                        help="score the meshes when they are identical too (they always are when they differ)")
    parser.add_argument("--score-python", default=shlex.quote(sys.executable),
                        help="command that runs tools/eval_mesh.py when a run did not evaluate its mesh")
    parser.add_argument("--markdown", help="also write the tables here")
    parser.add_argument("--opts", nargs="*", default=[], help="overrides for every run")
    args = parser.parse_args(argv)
    args.config, scene, out = os.path.abspath(args.config), os.path.abspath(args.scene), os.path.abspath(args.out)
    scenes_dir = os.path.join(out, "scenes")
    for sub in ("scenes", "warmup", "plain", "batch"):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
    os.makedirs(scenes_dir)
    names = [f"scene_{i + 1}" for i in range(args.n_scenes)]
    for name in names:
        os.symlink(scene, os.path.join(scenes_dir, name))

    if not args.no_warmup:
        seconds = timed(plain_command(args, os.path.join(scenes_dir, names[0]), os.path.join(out, "warmup"),
                                      names[0]), os.path.join(out, "warmup.txt"))
        print(f"warm-up run (untimed in the comparison): {seconds:.1f} s", flush=True)
    plain = {}
    for name in names:
        plain[name] = timed(plain_command(args, os.path.join(scenes_dir, name), os.path.join(out, "plain"), name),
                            os.path.join(out, f"plain_{name}.txt"))
        print(f"plain {name}: {plain[name]:.1f} s", flush=True)
    batch_cmd = [sys.executable, RUN_BATCH, "--config-file", args.config, "--scenes", scenes_dir, "--name", "batch",
                 "--opts", f"log_dir={out!r}", *args.opts]
    batch_total = timed(batch_cmd, os.path.join(out, "batch.txt"))
    print(f"batch of {len(names)}: {batch_total:.1f} s", flush=True)
    with open(os.path.join(out, "batch", "results.csv"), newline="") as f:
        in_batch = {r["scene"]: r for r in csv.DictReader(f)}

    scores, lines = {}, []
    lines += [f"config {os.path.relpath(args.config, ROOT)} {' '.join(args.opts)}; scene {scene} x {len(names)}", "",
              "| scene | plain s | in the batch s | difference s | training s plain / batch | mesh identical | "
              "Chamfer plain | Chamfer batch |", "|---|---|---|---|---|---|---|---|"]
    identical_all = True
    for name in names:
        p_mesh, b_mesh = final_mesh(os.path.join(out, "plain", name)), in_batch[name]["mesh"]
        same = os.path.basename(p_mesh) == os.path.basename(b_mesh) and filecmp.cmp(p_mesh, b_mesh, shallow=False)
        identical_all &= same
        has_gt = os.path.isfile(os.path.join(scene, "gt_mesh.ply"))
        c_plain = c_batch = None
        if has_gt and (args.score or not same):
            c_plain = chamfer(p_mesh, scene, args.score_python, scores)
            # byte-identical meshes score the same (the evaluator's sampling is seeded)
            c_batch = c_plain if same else chamfer(b_mesh, scene, args.score_python, scores)
        p_train = [r for r in csv.DictReader(open(os.path.join(out, "plain", name, "metrics.csv")))][-1]
        task_s = float(in_batch[name]["wall_seconds"])
        fmt = lambda c: "-" if c is None else f"{c:.6g}"  # noqa: E731
        lines.append(f"| {name} | {plain[name]:.1f} | {task_s:.1f} | {task_s - plain[name]:+.1f} | "
                     f"{float(p_train['train_seconds']):.1f} / {float(in_batch[name]['train_seconds']):.1f} | "
                     f"{'yes' if same else 'NO'} | {fmt(c_plain)} | {fmt(c_batch)} |")
    repeat = filecmp.cmp(final_mesh(os.path.join(out, "plain", names[0])),
                         final_mesh(os.path.join(out, "plain", names[-1])), shallow=False)
    overhead = (batch_total - sum(plain.values())) / len(names)
    lines += ["", f"plain runs back to back: {sum(plain.values()):.1f} s; the batch of {len(names)}: "
              f"{batch_total:.1f} s (cluster start and stop included)",
              f"**overhead per scene: {overhead:+.1f} s** (goal: within 5 s); meshes identical to the plain runs: "
              f"{'yes' if identical_all else 'NO'}; two plain runs of the same scene identical: "
              f"{'yes' if repeat else 'no'}"]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    return 0 if identical_all else 1


if __name__ == "__main__":
    sys.exit(main())
