"""Where the scenes run: the embedded Dask ``LocalCluster`` (one worker process per GPU, each pinned with
CUDA_VISIBLE_DEVICES, or N workers on a machine without GPUs), or an existing cluster's scheduler.

A worker runs one scene at a time (one thread): the training is a subprocess that takes the GPU (or every core),
and the worker only waits for it. Its memory is not the worker's, so the workers have no memory limit.
"""
import logging
import os
import signal
import threading

from distributed import Client, LocalCluster, WorkerPlugin

__all__ = ["detect_gpus", "PinnedLocalCluster", "LocalWorkerSetup", "log_dask_to", "start_local_cluster", "connect",
           "check_cluster"]


def detect_gpus():
    """The CUDA device ids this process may use, as CUDA_VISIBLE_DEVICES names them ([] without a usable GPU).
    The driver is asked through ctypes: no Jittor here."""
    from jnerf.utils.jittor_env import cuda_device_count
    count = cuda_device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip()][:count]
    return [str(i) for i in range(count)]


class PinnedLocalCluster(LocalCluster):
    """A LocalCluster whose worker number i sees only GPU ``gpus[i % len(gpus)]``: CUDA_VISIBLE_DEVICES is set in
    its nanny's environment, so its scene processes inherit it, and a worker restarted after a crash keeps it."""

    def __init__(self, n_workers, gpus=(), **kwargs):
        self.gpus = [str(g) for g in gpus]
        super().__init__(n_workers=0, **kwargs)
        self.scale(n_workers)

    def new_worker_spec(self):
        ((name, spec),) = super().new_worker_spec().items()
        if self.gpus:
            options = dict(spec["options"])
            options["env"] = {**options.get("env", {}), "CUDA_VISIBLE_DEVICES": self.gpus[name % len(self.gpus)]}
            spec = dict(spec, options=options)
        return {name: spec}


def log_dask_to(path, level=logging.WARNING):
    """Send this process's Dask messages (the 'distributed' logger) to ``path`` instead of the terminal: a worker
    that dies or a task that raises makes Dask log tracebacks, while the batch reports each scene's outcome in one
    line and in its table."""
    logger = logging.getLogger("distributed")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {os.getpid()} %(name)s %(levelname)s %(message)s"))
    handler.setLevel(level)
    logger.addHandler(handler)
    logger.propagate = False


class LocalWorkerSetup(WorkerPlugin):
    """Set-up of the embedded cluster's workers. They share the client's terminal, so Ctrl-C reaches them as well:
    the client stops the scenes itself (each worker relays it to its scene's training, which saves a checkpoint),
    so the workers ignore it and live on to report. Their Dask messages go to the batch's dask.log."""

    def __init__(self, log_file):
        self.log_file = log_file

    def setup(self, worker):
        if threading.current_thread() is threading.main_thread():  # the worker's event loop runs there
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        log_dask_to(self.log_file)


def start_local_cluster(n_workers, gpus=(), log_file=os.devnull):
    """(cluster, client) of ``n_workers`` single-threaded worker processes on this machine, pinned round-robin
    to ``gpus`` (none: no pinning), with Dask's messages in ``log_file``; returns once every worker is up."""
    log_dask_to(log_file)  # the scheduler and the nannies live in this process
    cluster = PinnedLocalCluster(n_workers, gpus, threads_per_worker=1, processes=True, memory_limit=0,
                                 dashboard_address=None, silence_logs=logging.WARNING)
    client = Client(cluster)
    client.register_plugin(LocalWorkerSetup(log_file), name="jnerf-local-worker")
    client.wait_for_workers(n_workers)
    return cluster, client


def connect(address):
    """A client of the existing cluster at ``address`` (tcp://host:port, or a scheduler file)."""
    from jnerf.utils.errors import UserError
    try:
        return Client(scheduler_file=address) if os.path.isfile(address) else Client(address, timeout=30)
    except (OSError, TimeoutError, ValueError) as err:
        raise UserError(f"--scheduler {address}: cannot reach the Dask scheduler ({err})") from err


def check_cluster(client):
    """Problems that would fail every scene on an existing cluster, as lines: the scheduler unpickles each task and
    a worker runs it, so both must import jnerf (the check itself is sent by value, which needs no jnerf there); a
    worker with several threads would run several scenes at once on its GPU."""
    finds_jnerf = lambda: __import__("importlib.util").util.find_spec("jnerf") is not None  # noqa: E731
    problems = []
    if not client.run_on_scheduler(finds_jnerf):
        problems.append("the scheduler cannot import jnerf")
    workers = client.run(finds_jnerf)
    lacking = sorted(w for w, ok in workers.items() if not ok)
    if lacking:
        problems.append(f"{len(lacking)} of {len(workers)} workers cannot import jnerf ({', '.join(lacking[:3])})")
    if problems:
        problems.append("install jnerf where the scheduler and the workers run (pip install -e <checkout>)")
    busy = {w: info["nthreads"] for w, info in client.scheduler_info()["workers"].items() if info["nthreads"] > 1}
    notes = [f"{len(busy)} worker(s) have several threads and run as many scenes at once (start GPU workers with "
             "--nthreads 1)"] if busy else []
    return problems, notes
