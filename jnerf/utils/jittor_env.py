"""Prepare the environment Jittor reads at import, so that a plain ``import jnerf`` works anywhere.

Jittor decides a lot when it is first imported: whether to download MKL (fails offline), whether to compile its
CUDA parts with the ``nvcc`` it finds (fails when no CUDA driver/runtime exists, as on CPU-only machines that still
have an nvcc), and it silently returns wrong arrays from GPU memory under numpy 2. ``setup_jittor_env`` settles all
three before ``import jittor`` and never touches ``jt.flags.use_cuda``: the device is chosen at run time.
"""
import ctypes
import importlib.abc
import os
import re
import shutil
import subprocess
import sys

_done = False


class JittorEnvironmentError(RuntimeError):
    pass


def _check_numpy():
    import numpy
    major = int(numpy.__version__.split(".")[0])
    if major >= 2:
        raise JittorEnvironmentError(
            f"jnerf needs numpy < 2, found numpy {numpy.__version__} at {os.path.dirname(numpy.__file__)}. "
            "Jittor 1.3.11 returns silently wrong arrays from Var.numpy() under numpy 2 "
            "(README, Troubleshooting). Fix: pip install 'numpy<2'")


def cuda_device_count():
    """Number of CUDA devices the driver reports; 0 when there is no driver (no CUDA runtime needed)."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    try:
        if lib.cuInit(0) != 0:
            return 0
        count = ctypes.c_int(0)
        if lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    except AttributeError:
        return 0


def nvcc_version(nvcc=None):
    """(major, minor) of the nvcc on PATH (or given), None when absent."""
    nvcc = nvcc or os.environ.get("nvcc_path") or shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    if not nvcc or not os.path.exists(nvcc):
        return None
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"release (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


class _RefuseJittorImport(importlib.abc.MetaPathFinder):
    """Makes ``import jittor`` fail with the numpy message, so that jnerf's Jittor-free parts (the evaluator, the
    scene tools) still import next to numpy 2 while nothing can run Jittor there."""

    def find_spec(self, name, path=None, target=None):
        if name == "jittor" or name.startswith("jittor."):
            _check_numpy()
        return None


def setup_jittor_env():
    """Set Jittor's start-up variables (only those the user has not set); idempotent. Under numpy 2 any later
    ``import jittor`` raises JittorEnvironmentError instead."""
    global _done
    if _done:
        return
    try:
        _check_numpy()
    except JittorEnvironmentError:
        sys.meta_path.insert(0, _RefuseJittorImport())
        _done = True
        return
    if "jittor" not in sys.modules:
        # MKL is downloaded on first use; the machines we run on are often offline and it brings nothing we need.
        os.environ.setdefault("use_mkl", "0")
        # These extern libraries are downloaded too, and unused by jnerf.
        for flag in ("use_cutt", "use_cutlass", "use_nccl", "use_mpi"):
            os.environ.setdefault(flag, "0")
        # conv_opt=1 makes Jittor load only cuBLAS and cuRAND: jnerf uses no convolutions, and cuDNN's
        # development files are often missing (Jittor then aborts at import).
        os.environ.setdefault("conv_opt", "1")
        if "nvcc_path" not in os.environ and cuda_device_count() == 0:
            # An nvcc without a driver and device (CPU-only CI) makes Jittor fail at import; run on the CPU.
            os.environ["nvcc_path"] = ""
        elif os.environ.get("nvcc_path", None) != "":
            from jnerf.utils import jittor_patch
            jittor_patch.apply_if_needed(nvcc_version())
    _done = True
