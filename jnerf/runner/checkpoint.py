"""Checkpoints and the run folder: checkpoints are written atomically (temp file + rename), named by step, the last K
kept; a failed write leaves the previous checkpoint intact and says so; --resume falls back past an unreadable newest
checkpoint; a checkpoint loads only into a model of exactly its shapes; and a lock keeps two trainings out of one
run folder."""
import errno
import fcntl
import glob
import logging
import os
import pickle
import re
import socket
import time

import numpy as np

from jnerf.utils.errors import RunLockedError, UserError

logger = logging.getLogger("jnerf")

_NAME = "ckpt_{:08d}.pkl"
_PATTERN = re.compile(r"ckpt_(\d{8})\.pkl$")


def save_checkpoint(ckpt_dir, step, state, keep_last=3):
    """Write ``state`` (a picklable dict of numpy arrays and numbers) as the checkpoint of ``step``. A failed write
    (a full disk, say) removes its temp file and raises a UserError; the older checkpoints stay as they were."""
    os.makedirs(ckpt_dir, exist_ok=True)
    path = os.path.join(ckpt_dir, _NAME.format(step))
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        previous = latest_checkpoint(ckpt_dir)
        raise UserError(f"cannot write checkpoint {path} ({err.strerror or err}); "
                        f"{'the previous checkpoint ' + previous + ' is intact' if previous else 'no checkpoint yet'}"
                        ) from err
    for old in list_checkpoints(ckpt_dir)[:-keep_last] if keep_last > 0 else []:
        os.remove(old)
    return path


def list_checkpoints(ckpt_dir):
    """Complete checkpoints in ``ckpt_dir``, oldest first (by step number, not by name order)."""
    found = [(int(m.group(1)), p) for p in glob.glob(os.path.join(ckpt_dir, "ckpt_*.pkl"))
             if (m := _PATTERN.search(p))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(ckpt_dir):
    ckpts = list_checkpoints(ckpt_dir)
    return ckpts[-1] if ckpts else None


def load_checkpoint(path):
    """The state dict of a checkpoint file; a UserError naming the file when it is missing or not a checkpoint."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with open(path, "rb") as f:
            state = pickle.load(f)
    except Exception as err:  # unpickling a wrong or truncated file raises many kinds of error
        raise UserError(f"{path}: not a readable jnerf checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise UserError(f"{path}: not a jnerf checkpoint (no model state and step in it)")
    return state


def initial_state(ckpt_dir, task, resume, ckpt=None):
    """(state, path) a run starts from: ``ckpt`` when given; (None, None) for a fresh training; for --resume and
    the other tasks the newest readable checkpoint in ``ckpt_dir`` (an unreadable newer one is skipped, with a
    warning). (None, None) for --resume without checkpoints; an error for the other tasks."""
    if ckpt:
        return load_checkpoint(ckpt), ckpt
    if task == "train" and not resume:
        return None, None
    for path in reversed(list_checkpoints(ckpt_dir)):
        try:
            state = load_checkpoint(path)
        except UserError as err:
            logger.warning("skipping %s: %s; trying the one before it", path, err)
            continue
        logger.info("loading %s", path)
        return state, path
    if task == "train":
        logger.info("--resume: no readable checkpoint in %s, starting from scratch", ckpt_dir)
        return None, None
    raise FileNotFoundError(f"no readable checkpoint in {ckpt_dir}: train first or pass --ckpt")


def check_shapes(saved, model_state, where):
    """Raise a UserError naming every parameter whose shape differs between a checkpoint (``saved``: name -> array)
    and the model (``model_state``: name -> Var), and every parameter only one of them has."""
    problems = [f"{k}: checkpoint {list(np.shape(saved[k]))}, model {list(model_state[k].shape)}"
                for k in model_state if k in saved and tuple(np.shape(saved[k])) != tuple(model_state[k].shape)]
    problems += [f"{k}: not in the checkpoint" for k in model_state if k not in saved]
    problems += [f"{k}: not in the model" for k in saved if k not in model_state]
    if problems:
        raise UserError(f"{where} does not fit this model's config ({len(problems)} parameter(s)): "
                        + "; ".join(problems[:4]) + (" ..." if len(problems) > 4 else ""))


class RunLock:
    """An exclusive lock on a run folder (``<exp_dir>/.lock``, flock) while a training writes there. A training in
    another process stops with the holder's pid; one process may hold it for several runners (a notebook that
    rebuilds its runner). A lock left by a dead process is free (the kernel drops flocks with their process) and is
    taken over with a note in the log."""

    _held = {}  # path -> [fd, holders] for the locks this process holds

    def __init__(self, exp_dir):
        self.path = os.path.abspath(os.path.join(exp_dir, ".lock"))
        self.holding = False

    def acquire(self):
        if self.path in RunLock._held:
            RunLock._held[self.path][1] += 1
            self.holding = True
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                raise RunLockedError(f"{os.path.dirname(self.path)} is in use by {holder}; wait for it or choose "
                                     "another exp_name") from err
            raise
        previous = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if previous:
            logger.info("run folder lock: took over the lock left by %s, which no longer holds it", previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()} since "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        RunLock._held[self.path] = [fd, 1]
        self.holding = True
        return self

    def release(self):
        if not self.holding:
            return
        self.holding = False
        entry = RunLock._held[self.path]
        entry[1] -= 1
        if entry[1] == 0:
            del RunLock._held[self.path]
            os.ftruncate(entry[0], 0)
            fcntl.flock(entry[0], fcntl.LOCK_UN)
            os.close(entry[0])

    def __del__(self):
        self.release()
