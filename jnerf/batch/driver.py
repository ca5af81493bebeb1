"""Run a batch: find its scenes, skip the finished ones, submit the others to Dask (one task each, see task.py),
show a progress bar over scenes, keep the results table current, and stop cleanly on Ctrl-C.

Exit status of ``run_batch``: 0 every scene done (now or in an earlier run), 1 some scene failed (the table says
why), 130 stopped by Ctrl-C (running scenes saved a checkpoint; running the same batch again resumes them).
"""
import os
import time
import uuid
from typing import Optional, Sequence

from tqdm import tqdm

from jnerf.utils.config import load_config
from jnerf.utils.errors import UserError
from .results import scene_line, summary_line, write_tables
from .scenes import default_batch_name, find_scenes
from .task import SceneJob, read_record, run_scene

__all__ = ["run_batch", "EXIT_FAILED", "EXIT_INTERRUPTED"]

EXIT_FAILED, EXIT_INTERRUPTED = 1, 130
STOP_WAIT_S = 600  # after Ctrl-C: how long the running scenes may take to save their checkpoints


def _scene_opts(opts, where, batch_wide=False):
    """``opts`` as a scene's command takes them. The batch sets dataset.root, log_dir and exp_name of each scene
    (its folder, <log_dir>/<batch>, its name): they may not be overridden, except log_dir in the batch's --opts,
    which the client has used already."""
    kept = []
    for opt in opts:
        key = opt.split("=", 1)[0].strip()
        if key == "log_dir" and batch_wide:
            continue
        if key in ("dataset.root", "log_dir", "exp_name"):
            raise UserError(f"{where}: '{opt}': the batch sets {key} for each scene")
        kept.append(opt)
    return tuple(kept)


def _finished(record):
    return record is not None and record.get("status") == "done" and os.path.isfile(record.get("mesh") or "")


def _failed_record(job, err):
    """The record of a task that raised (its training killed on every retry, or its workers dying: KilledWorker)."""
    return dict(scene=job.name, status="failed", error=f"{type(err).__name__}: {err}".replace("\n", " "),
                scene_dir=job.scene_dir, run_dir=job.run_dir)


class _Batch:
    def __init__(self, jobs, records, batch_dir):
        self.jobs, self.records, self.batch_dir = jobs, records, batch_dir

    def finish(self, job, record, bar):
        self.records[job.name] = record
        bar.update(1)
        bar.set_postfix_str(summary_line(self.table()))
        bar.write(scene_line(record))
        write_tables(self.table(), self.batch_dir)

    def table(self):
        """One record a scene, in the batch's order; a scene not ended yet is 'queued' (or running)."""
        return [self.records.get(j.name) or dict(scene=j.name, status="queued") for j in self.jobs]


def _collect(futures, batch, bar, timeout=None):
    """Wait for ``futures`` (future -> job), record each outcome and forget the future: a result left on a worker
    would be computed again (the scene trained again) if that worker died. Ends at ``timeout``, with the
    unfinished ones still in ``futures``."""
    from distributed import as_completed
    from distributed.utils import TimeoutError as DaskTimeout
    try:
        for future in as_completed(list(futures), timeout=timeout):
            job = futures[future]
            err = future.exception() if future.status == "error" else None
            batch.finish(job, _failed_record(job, err) if err is not None else future.result(), bar)
            del futures[future]
            future.release()
    except DaskTimeout:
        pass


def _stop(stop_event, futures, batch, bar):
    """Ctrl-C: ask every running scene to stop (each saves a checkpoint) and wait for them; a second Ctrl-C stops
    waiting (the trainings still save, on their own)."""
    bar.write(f"stopping: {len(futures)} scene(s) finish their step and save a checkpoint; Ctrl-C again to stop "
              "waiting for them")
    stop_event.set()
    try:
        _collect(futures, batch, bar, timeout=STOP_WAIT_S)
    except KeyboardInterrupt:
        pass
    for job in futures.values():
        batch.records[job.name] = dict(scene=job.name, status="interrupted", scene_dir=job.scene_dir,
                                       run_dir=job.run_dir, error="stopped; a re-run resumes from its checkpoint")
    write_tables(batch.table(), batch.batch_dir)


def run_batch(config_file: str, scenes: str, workers: Optional[int] = None, gpus: Optional[Sequence[str]] = None,
              scheduler: Optional[str] = None, opts: Sequence[str] = (), name: Optional[str] = None,
              retries: int = 2) -> int:
    """Train every scene of ``scenes`` (a folder of scene folders or a list file) with ``config_file`` and the
    ``opts`` overrides under ``<log_dir>/<name>/<scene>/``; see docs/batch.md. ``gpus``: None detects them, []
    runs on the CPU."""
    if scheduler and (workers is not None or gpus is not None):
        raise UserError("--workers and --gpus shape the embedded cluster; with --scheduler the cluster's own "
                        "workers run the scenes")
    config_file = os.path.abspath(config_file)
    cfg = load_config(config_file, list(opts))  # a misspelt key stops the batch here, not in every scene
    found = find_scenes(scenes)
    batch_dir = os.path.abspath(os.path.join(cfg.log_dir, name or default_batch_name(scenes)))
    batch_run = uuid.uuid4().hex[:8]
    batch_opts = _scene_opts(opts, "--opts", batch_wide=True)
    jobs = [SceneJob(name=s.name, scene_dir=s.root, batch_dir=batch_dir, config_file=config_file,
                     opts=(*batch_opts, *_scene_opts(s.opts, s.root)), stop_event=f"jnerf-batch-stop-{batch_run}",
                     batch_run=batch_run, cwd=os.getcwd(), env=None if scheduler else dict(os.environ))
            for s in found]
    os.makedirs(batch_dir, exist_ok=True)
    records = {}
    for job in jobs:
        earlier = read_record(job.run_dir)
        if _finished(earlier):
            records[job.name] = dict(earlier, status="skipped")
    batch = _Batch(jobs, records, batch_dir)
    todo = [j for j in jobs if j.name not in records]
    print(f"batch {os.path.basename(batch_dir)}: {len(jobs)} scene(s), {len(jobs) - len(todo)} finished before; "
          f"runs in {batch_dir}", flush=True)
    interrupted = False
    if todo:
        interrupted = _run_jobs(todo, batch, workers, gpus, scheduler, retries)
    for job in todo:
        batch.records.setdefault(job.name, dict(scene=job.name, status="not run"))
    table = batch.table()
    csv_path, md_path = write_tables(table, batch_dir)
    print(f"{summary_line(table)}; results: {md_path} and {os.path.basename(csv_path)}", flush=True)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if any(r["status"] not in ("done", "skipped") for r in table) else 0


def _run_jobs(todo, batch, workers, gpus, scheduler, retries):
    """Submit ``todo`` and follow it to the end; True when Ctrl-C stopped it."""
    from .cluster import check_cluster, connect, detect_gpus, start_local_cluster

    cluster = None
    started = time.time()
    if scheduler:
        client = connect(scheduler)
        problems, notes = check_cluster(client)
        if problems:
            client.close()
            raise UserError(f"--scheduler {scheduler}: " + "; ".join(problems))
        for note in notes:
            print(f"note: {note}", flush=True)
        where = f"the cluster at {scheduler} ({len(client.scheduler_info()['workers'])} workers now)"
    else:
        detected = detect_gpus()
        gpus = detected if gpus is None else list(gpus)
        n_workers = workers or max(len(gpus), 1)
        # no GPU asked for on a machine that has some: hide them, or every scene would take GPU 0
        cluster, client = start_local_cluster(n_workers, gpus or ([""] if detected else []),
                                              log_file=os.path.join(batch.batch_dir, "dask.log"))
        where = (f"{n_workers} local worker(s) on GPU(s) {','.join(gpus)}" if gpus else
                 f"{n_workers} local CPU worker(s)")
    try:
        return _follow(client, todo, batch, retries, where, started)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _follow(client, todo, batch, retries, where, started):
    """Submit one task a scene, with the progress bar over scenes; True when Ctrl-C stopped the batch."""
    from distributed import Event
    stop_event = Event(todo[0].stop_event, client=client)
    futures = {client.submit(run_scene, job, key=f"{job.name}-{job.batch_run}", retries=retries, pure=False): job
               for job in todo}
    print(f"{len(todo)} scene(s) to run on {where} (ready in {time.time() - started:.1f} s)", flush=True)
    with tqdm(total=len(batch.jobs), initial=len(batch.jobs) - len(todo), unit="scene", desc="scenes",
              dynamic_ncols=True, disable=None) as bar:
        try:
            _collect(futures, batch, bar)
        except KeyboardInterrupt:
            _stop(stop_event, futures, batch, bar)
            return True
    return False
