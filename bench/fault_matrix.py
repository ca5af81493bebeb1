"""The fault matrix: run the command line against faults and bad input, as a new user meets them, and print a table
of case, exit code and verdict:

- OK: the expected exit code, and a one-line error (or the expected warning) that names the culprit;
- TRACEBACK: a Python traceback reached the user;
- SILENT-WRONG: it exited 0 (or went on) where it should have stopped or warned;
- WRONG: another exit code or message than expected.

    python bench/fault_matrix.py                          # this checkout, on the CPU (about 5 minutes on 2 cores)
    python bench/fault_matrix.py --tree .device/before    # another checkout, e.g. an older commit

Each case runs `tools/run_net.py` of the tree in a subprocess on a copy of the bundled demo scene (tiny CPU config,
a few steps). The tests in tests/test_reliability.py check the same cases one by one.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


class Matrix:
    def __init__(self, tree, work):
        self.tree, self.work = os.path.abspath(tree), work
        self.config = os.path.join(self.tree, "projects", "neus", "configs", "instant_neus_tiny_cpu.py")
        self.rows = []

    def scene(self, name, edit=None):
        path = os.path.join(self.work, name)
        if not os.path.isdir(path):
            shutil.copytree(os.path.join(ROOT, "data", "bunny"), path)
            if edit:
                edit(path)
        return path

    def args(self, exp, scene=None, *opts, config=None, task="train", extra=()):
        return [sys.executable, os.path.join(self.tree, "tools", "run_net.py"), "--config-file",
                config or self.config, "--task", task, *extra, "--opts", f"log_dir={self.work + '/logs'!r}",
                f"exp_name={exp!r}", f"dataset.root={scene or self.scene('bunny')!r}", "train.val_every=0",
                "train.log_every=5", *opts]

    def run(self, args, timeout=600):
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=self.tree)
        return proc.returncode, proc.stdout + proc.stderr

    def record(self, case, code, out, want_code, want_text):
        if "Traceback" in out:
            verdict = "TRACEBACK"
        elif code == 0 and want_code != 0:
            verdict = "SILENT-WRONG"
        elif code == want_code and all(t in out for t in want_text):
            verdict = "OK"
        else:
            verdict = "WRONG"
        lines = [line.strip() for line in out.strip().splitlines() if line.strip() and "%|" not in line]
        last = next((line for line in lines if want_text and want_text[0] in line and
                     (line.startswith("error") or " W " in line or " I " in line)), lines[-1] if lines else "")
        self.rows.append((case, code, verdict, last[:110]))
        print(f"{verdict:12} {code:4} {case}: {last[:110]}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=ROOT, help="the checkout whose tools/run_net.py runs (default: this one)")
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="jnerf_faults_")
    m = Matrix(args.tree, work)
    steps = "train.total_steps=6"

    def drop_image(path):  # image 011 deleted, cameras_sphere.npz unchanged
        os.remove(os.path.join(path, "image", "011.png"))
        os.remove(os.path.join(path, "mask", "011.png"))
    m.record("image deleted, cameras unchanged", *m.run(m.args("drop", m.scene("drop", drop_image), steps)),
             2, ["011"])

    def single_view(path):  # one image, one camera
        import numpy as np
        for sub in ("image", "mask"):
            for name in sorted(os.listdir(os.path.join(path, sub)))[1:]:
                os.remove(os.path.join(path, sub, name))
        cams = dict(np.load(os.path.join(path, "cameras_sphere.npz")))
        np.savez(os.path.join(path, "cameras_sphere.npz"), world_mat_0=cams["world_mat_0"],
                 scale_mat_0=cams["scale_mat_0"])
    m.record("a single training image", *m.run(m.args("single", m.scene("single", single_view), steps)),
             2, ["min_views"])

    def invert_masks(path):
        from PIL import Image
        import numpy as np
        for name in os.listdir(os.path.join(path, "mask")):
            mask = np.asarray(Image.open(os.path.join(path, "mask", name)))
            Image.fromarray(255 - mask).save(os.path.join(path, "mask", name))
    m.record("inverted masks (empty visual hull)",
             *m.run(m.args("inverted", m.scene("inverted", invert_masks), steps)), 2, ["visual hull"])

    for opt, text in (("train.total_steps=-5", "total_steps"), ("train.total_steps=4.5", "integer"),
                      ("total_steps=abc", "total_steps"), ("train=5", "train")):
        m.record(f"--opts {opt}", *m.run(m.args("opts", None, opt)), 2, [text])
    m.record("--device cuda without CUDA", *m.run(m.args("dev", None, steps, extra=("--device", "cuda"))), 2,
             ["cuda"])
    bad = os.path.join(work, "bad.py")
    with open(bad, "w") as f:
        f.write("_base_ = %r\ntrain = dict(total_steps=\n" % m.config)
    m.record("syntax error in a config", *m.run(m.args("syntax", None, config=bad)), 2, ["bad.py:"])
    orphan = os.path.join(work, "orphan.py")
    with open(orphan, "w") as f:
        f.write("_base_ = 'no_such_base.py'\n")
    m.record("missing _base_", *m.run(m.args("orphan", None, config=orphan)), 2, ["no_such_base.py", "orphan.py"])
    blocker = os.path.join(work, "a_file")
    open(blocker, "w").close()
    m.record("log_dir below a regular file", *m.run(m.args("x", None, f"log_dir={blocker + '/logs'!r}")), 2,
             ["log_dir"])
    m.record("--task eval without gt_mesh.ply",
             *m.run(m.args("nogt", m.scene("nogt", lambda p: os.remove(os.path.join(p, "gt_mesh.ply"))),
                           task="eval")), 2, ["gt_mesh.ply"])
    text = os.path.join(work, "notes.txt")
    with open(text, "w") as f:
        f.write("step 40\n")
    m.record("--ckpt pointing at a text file", *m.run(m.args("txt", None, task="mesh", extra=("--ckpt", text))), 2,
             ["notes.txt"])

    # checkpoints: a short run to have some
    code, out = m.run(m.args("base", None, "train.total_steps=10", "train.save_every=5",
                             "eval.after_training=False", "mesh.resolution=32"))
    ckpt = os.path.join(work, "logs", "base", "checkpoints", "ckpt_00000010.pkl")
    m.record("checkpoint from another hash size",
             *m.run(m.args("other", None, "model.sdf_network.encoding.log2_hashmap_size=14", task="mesh",
                           extra=("--ckpt", ckpt))), 2, ["encoding.table"])
    with open(ckpt, "r+b") as f:
        f.truncate(2000)
    m.record("--resume with a truncated newest checkpoint",
             *m.run(m.args("base", None, "train.total_steps=12", "eval.after_training=False",
                           "mesh.resolution=32", extra=("--resume",))), 0, ["skipping"])

    # live processes: a second training into the same folder; Ctrl-C; kill -9 and --resume
    first = subprocess.Popen(m.args("busy", None, "train.total_steps=100000"), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, cwd=m.tree)
    for line in first.stdout:
        if "I step 5 |" in line:
            break
    m.record("two trainings into one exp_name", *m.run(m.args("busy", None, steps)), 2, [str(first.pid)])
    first.send_signal(signal.SIGINT)
    out = first.communicate(timeout=300)[0]
    m.record("Ctrl-C during training", first.returncode, out, 130, ["--resume"])
    victim = subprocess.Popen(m.args("killed", None, "train.total_steps=40", "train.save_every=5",
                                     "eval.after_training=False", "mesh.resolution=32"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=m.tree)
    for line in victim.stdout:
        if "ckpt_00000010.pkl" in line:
            victim.kill()
            break
    victim.wait()
    code, out = m.run(m.args("killed", None, "train.total_steps=20", "eval.after_training=False",
                             "mesh.resolution=32", extra=("--resume",)))
    m.record("kill -9, then --resume", code, out, 0, ["restored the state of step 10", "mesh at step 20"])

    print("\n| case | exit code | verdict | last line |\n|---|---|---|---|")
    for case, code, verdict, last in m.rows:
        print(f"| {case} | {code} | {verdict} | {last.replace('|', '/')} |")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r[2] == "OK" for r in m.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
