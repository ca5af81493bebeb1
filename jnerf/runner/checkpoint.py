"""Checkpoints written atomically (temp file + rename), named by step, the last K kept; nothing half-written
is ever read back, and an interrupted run resumes from the newest complete file."""
import glob
import logging
import os
import pickle
import re

logger = logging.getLogger("jnerf")

_NAME = "ckpt_{:08d}.pkl"
_PATTERN = re.compile(r"ckpt_(\d{8})\.pkl$")


def save_checkpoint(ckpt_dir, step, state, keep_last=3):
    """Write ``state`` (a picklable dict of numpy arrays and numbers) as the checkpoint of ``step``."""
    os.makedirs(ckpt_dir, exist_ok=True)
    path = os.path.join(ckpt_dir, _NAME.format(step))
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
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


def initial_state(ckpt_dir, task, resume, ckpt=None):
    """The state a run starts from: ``ckpt`` when given; none for a fresh training; the newest checkpoint in
    ``ckpt_dir`` for --resume (none, with a log line, when there is none yet) and for the other tasks (an error
    when there is none)."""
    if ckpt:
        return load_checkpoint(ckpt)
    if task == "train" and not resume:
        return None
    path = latest_checkpoint(ckpt_dir)
    if path is None:
        if task == "train":
            logger.info("--resume: no checkpoint in %s, starting from scratch", ckpt_dir)
            return None
        raise FileNotFoundError(f"no checkpoint in {ckpt_dir}: train first or pass --ckpt")
    logger.info("loading %s", path)
    return load_checkpoint(path)


def load_checkpoint(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (pickle.UnpicklingError, EOFError) as e:
        raise ValueError(f"checkpoint {path} is unreadable or truncated: {e}") from e
