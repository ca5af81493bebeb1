"""What a Dask worker does for one scene: run the README's train command for it in a subprocess, wait, and read the
outcome from the files the run wrote.

The first attempt runs exactly ``python tools/run_net.py --config-file BASE --task train --opts ...`` (the scene's
root, the batch's run folder and its overrides in ``--opts``), so a scene of a batch gives what that command gives
alone. A run folder with checkpoints (a retried scene, a batch stopped earlier) adds ``--resume``. Outcomes:

- exit 0: ``done``; the record holds the final mesh, the training seconds and, when the scene has ground truth, the
  Chamfer distance and F-score that the run's own evaluation wrote;
- exit 2 (bad data, a bad override, a diverged run) or another error: ``failed``, with the one-line error;
- exit 130 (the batch was stopped, or someone interrupted the training): ``interrupted``, resumable;
- killed by a signal (out of memory, a kill): ``SceneKilled`` is raised, and Dask runs the task again (the
  ``retries`` the driver submits with), which resumes from the last checkpoint. A worker that dies is retried by
  Dask itself; its training gets SIGINT (exec_guard.py), saves and exits, and the retry waits for its lock.

Each attempt appends the training's terminal output to ``<run>/console.txt`` behind a header line, and the record
is written to ``<run>/batch_result.json``; a re-run of the batch skips scenes whose record says ``done``.
"""
import csv
import glob
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from jnerf.utils.errors import UserError

__all__ = ["SceneJob", "SceneKilled", "run_scene", "read_record", "RECORD_FILE", "CONSOLE_FILE"]

RECORD_FILE = "batch_result.json"
CONSOLE_FILE = "console.txt"
EXIT_INTERRUPTED = 130  # tools/run_net.py: stopped by Ctrl-C after saving a checkpoint
_HEADER = "=== jnerf batch"
_CHECKPOINT = re.compile(r"ckpt_(\d{8})\.pkl$")  # jnerf/runner/checkpoint.py's names
_GUARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exec_guard.py")


class SceneKilled(RuntimeError):
    """The scene's training process died by a signal that the batch did not send; Dask retries the task."""


@dataclass(frozen=True)
class SceneJob:
    """Everything a worker needs for one scene (picklable; paths absolute, as workers may start elsewhere)."""
    name: str
    scene_dir: str
    batch_dir: str                      # <log_dir>/<batch>; the run folder is <batch_dir>/<name>
    config_file: str
    opts: Tuple[str, ...]               # the batch's --opts, then the scene's own
    stop_event: str                     # name of the Dask Event that asks the batch's scenes to stop
    batch_run: str                      # this invocation of the batch (marks its attempts in console.txt)
    cwd: str                            # the client's working directory (used when the worker has it)
    env: Optional[Dict[str, str]] = field(default=None, compare=False, repr=False)  # see child_environment
    lock_wait_s: float = 600.0

    @property
    def run_dir(self):
        return os.path.join(self.batch_dir, self.name)

    def command(self, run_net, resume):
        """The README's train command for this scene; ``--resume`` continues from its newest checkpoint."""
        return [sys.executable, run_net, "--config-file", self.config_file, "--task", "train",
                *(["--resume"] if resume else []), "--opts", *self.opts, f"dataset.root={self.scene_dir!r}",
                f"log_dir={self.batch_dir!r}", f"exp_name={self.name!r}"]


def run_net_path():
    """tools/run_net.py of the checkout this jnerf package belongs to (the worker's, not the client's)."""
    import jnerf
    return os.path.normpath(os.path.join(os.path.dirname(jnerf.__file__), os.pardir, "tools", "run_net.py"))


def child_environment(job):
    """The scene process's environment. For the embedded cluster: the client's own (``job.env``), so that a scene
    runs as the same command typed in that shell would, plus the worker's CUDA_VISIBLE_DEVICES pin. Elsewhere: the
    worker's, less what Dask's nanny put in for its own threads (``distributed.nanny.pre-spawn-environ``:
    OMP_NUM_THREADS=1 and the like, and PYTHONHASHSEED), which would slow the training or change it."""
    if job.env is not None:
        env = dict(job.env)
        if "CUDA_VISIBLE_DEVICES" in os.environ:
            env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
        return env
    import dask
    import distributed  # noqa: F401  (its import registers the distributed.* config defaults)
    injected = {k: str(v) for k, v in (dask.config.get("distributed.nanny.pre-spawn-environ") or {}).items()}
    injected["PYTHONHASHSEED"] = "6640"  # the nanny's fixed seed (distributed/nanny.py)
    return {k: v for k, v in os.environ.items() if injected.get(k) != v}


# ------------------------------------------------------------------------------------------- the run folder
def read_record(run_dir):
    """The record a batch wrote for this run folder, or None."""
    path = os.path.join(run_dir, RECORD_FILE)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_record(run_dir, record):
    tmp = os.path.join(run_dir, f".{RECORD_FILE}.{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, os.path.join(run_dir, RECORD_FILE))


def newest_checkpoint_step(run_dir):
    """The step of the newest checkpoint in the run folder, or None. By file name: jnerf.runner.checkpoint cannot
    be imported here (the jnerf.runner package imports Jittor)."""
    steps = [int(m.group(1)) for p in glob.glob(os.path.join(run_dir, "checkpoints", "ckpt_*.pkl"))
             if (m := _CHECKPOINT.search(p))]
    return max(steps) if steps else None


def _run_lock_free(run_dir):
    """True when no process holds the run folder's lock (RunLock in jnerf/runner/checkpoint.py: flock on .lock)."""
    import fcntl
    path = os.path.join(run_dir, ".lock")
    if not os.path.exists(path):
        return True
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _wait_for_run_lock(job, stop):
    """Wait until the previous attempt's training, orphaned by a dead worker and saving its checkpoint, has let the
    run folder go. False when the batch is stopped meanwhile. After ``lock_wait_s`` the run starts anyway and
    run_net reports who holds the folder."""
    deadline = time.time() + job.lock_wait_s
    while not _run_lock_free(job.run_dir) and time.time() < deadline:
        if stop.is_set():
            return False
        time.sleep(0.5)
    return True


# ------------------------------------------------------------------------------------------ one attempt
def _attempt_number(console, batch_run):
    if not os.path.isfile(console):
        return 1
    with open(console, errors="replace") as f:
        return 1 + sum(line.startswith(_HEADER) and f"run {batch_run}" in line for line in f)


def _train(job, command, attempt, stop):
    """Run ``command`` until it ends, relaying a stop of the batch as SIGINT; (exit code, stopped, its output)."""
    console = os.path.join(job.run_dir, CONSOLE_FILE)
    with open(console, "a") as out:
        out.write(f"{_HEADER} run {job.batch_run}, attempt {attempt}, {time.strftime('%Y-%m-%d %H:%M:%S')} on "
                  f"{socket.gethostname()} (worker pid {os.getpid()}, CUDA_VISIBLE_DEVICES="
                  f"{os.environ.get('CUDA_VISIBLE_DEVICES', '')}):\n{shlex.join(command)}\n")
        out.flush()
        start = out.tell()
        proc = subprocess.Popen([sys.executable, _GUARD, str(os.getpid()), *command], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, env=child_environment(job),
                                cwd=job.cwd if os.path.isdir(job.cwd) else job.run_dir,
                                start_new_session=True)  # Ctrl-C on the client's terminal goes through the client
        stopped = False
        while True:
            try:
                code = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if not stopped and stop.is_set():
                    proc.send_signal(signal.SIGINT)  # finish the step, save a checkpoint, exit 130
                    stopped = True
    with open(console, errors="replace") as f:
        f.seek(start)
        return code, stopped, f.read()


def error_line(output):
    """The line that says why a run failed: run_net's one-line error, else the output's last line (the last line
    of a traceback names the exception)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: "):]
    return lines[-1] if lines else "no output"


def _final_outputs(run_dir):
    """What a finished run wrote: its final mesh, training seconds and evaluation (None without ground truth),
    named as the runner names them: the final step is train.total_steps of the run's resolved config.py, the
    final mesh ``mesh_step<step>_res<mesh.resolution>.<first format>``."""
    from jnerf.utils.config import load_config
    cfg = load_config(os.path.join(run_dir, "config.py"))
    step = int(cfg.train.total_steps)
    mesh = os.path.join(run_dir, f"mesh_step{step:06d}_res{cfg.mesh.resolution}.{cfg.mesh.formats[0]}")
    if not os.path.isfile(mesh):
        raise FileNotFoundError(f"run_net exited 0 but the final mesh {mesh} is missing")
    out = dict(mesh=mesh, steps=step, train_seconds=None, chamfer=None, chamfer_pct=None, fscore=None)
    metrics = os.path.join(run_dir, "metrics.csv")
    if os.path.isfile(metrics):
        with open(metrics, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("step") == str(step)]
        if rows:
            out["train_seconds"] = float(rows[-1]["train_seconds"])
    scores = os.path.join(run_dir, f"eval_step{step:06d}.json")
    if os.path.isfile(scores):
        with open(scores) as f:
            result = json.load(f)
        out.update(chamfer=result["chamfer"], chamfer_pct=100 * result["chamfer_frac"], fscore=result["fscore"])
    return out


def _record(job, status, **values):
    record = dict(scene=job.name, status=status, train_seconds=None, chamfer=None, chamfer_pct=None, fscore=None,
                  mesh=None, error=None, steps=None, attempt=None, resumed_from=None, wall_seconds=None,
                  host=socket.gethostname(), scene_dir=job.scene_dir, run_dir=job.run_dir)
    record.update(values)
    return record


def run_scene(job: SceneJob) -> dict:
    """Train, export and evaluate one scene; returns its record (see the module docstring). Runs on a worker."""
    from distributed import Event

    started = time.time()
    os.makedirs(job.run_dir, exist_ok=True)
    stop = Event(job.stop_event)
    earlier = read_record(job.run_dir)
    if earlier and earlier.get("status") == "done" and os.path.isfile(earlier.get("mesh") or ""):
        return dict(earlier, status="skipped")  # another client of this batch finished it meanwhile
    if stop.is_set() or not _wait_for_run_lock(job, stop):
        return _record(job, "interrupted", error="the batch was stopped before this scene started")
    run_net = run_net_path()
    if not os.path.isfile(run_net):
        return _record(job, "failed", error=f"{run_net} not found on {socket.gethostname()}: install jnerf there "
                                            "from a checkout (pip install -e .)")
    resumed_from = newest_checkpoint_step(job.run_dir)
    attempt = _attempt_number(os.path.join(job.run_dir, CONSOLE_FILE), job.batch_run)
    code, stopped, output = _train(job, job.command(run_net, resume=resumed_from is not None), attempt, stop)
    common = dict(attempt=attempt, resumed_from=resumed_from, wall_seconds=round(time.time() - started, 2))
    if code < 0 and not stopped:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        raise SceneKilled(f"{job.name}: its training was killed by {name} (attempt {attempt}); see "
                          f"{os.path.join(job.run_dir, CONSOLE_FILE)}")
    if code == 0:
        try:
            record = _record(job, "done", **_final_outputs(job.run_dir), **common)
        except (OSError, ValueError, KeyError, UserError) as err:  # a run folder the batch cannot read
            record = _record(job, "failed", error=str(err), **common)
    elif code == EXIT_INTERRUPTED or stopped:
        saved = newest_checkpoint_step(job.run_dir)
        record = _record(job, "interrupted", error=f"stopped; a re-run resumes from step {saved}" if saved else
                         "stopped before its first checkpoint; a re-run starts it again", **common)
    else:
        record = _record(job, "failed", error=error_line(output), **common)
    _write_record(job.run_dir, record)
    return record
