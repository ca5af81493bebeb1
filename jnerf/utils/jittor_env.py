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


_startup_output = []


def startup_output() -> str:
    """What Jittor printed while it was imported (kept off the terminal; the runner writes it into the run's log)."""
    return "".join(_startup_output)


class _CapturingLoader(importlib.abc.Loader):
    """Runs Jittor's own loader with the stdout and stderr file descriptors sent to a temporary file. Only the
    descriptors: in a notebook Jittor keeps the Python stream it finds at import for its later messages, so that
    stream must stay the real one (there its chatter shows; on a terminal it goes to the file). On failure the text
    is printed, so that errors are never hidden."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        import tempfile
        with tempfile.TemporaryFile(mode="w+") as sink:
            sys.stdout.flush()
            sys.stderr.flush()
            saved = [os.dup(1), os.dup(2)]
            ok = False
            try:
                os.dup2(sink.fileno(), 1)
                os.dup2(sink.fileno(), 2)
                self.loader.exec_module(module)
                ok = True
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                sink.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                for fd in saved:
                    os.close(fd)
                sink.seek(0)
                _startup_output.append(sink.read())
                if not ok:
                    sys.stderr.write(startup_output())


class _QuietJittorImport(importlib.abc.MetaPathFinder):
    """Finds the real ``jittor`` package and wraps its loader in ``_CapturingLoader``: Jittor announces about nine
    '[i ...]' lines at every start, which would bury the run's own first lines."""

    def find_spec(self, name, path=None, target=None):
        if name != "jittor":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _CapturingLoader(spec.loader)
                return spec
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
        if os.environ.get("JNERF_JITTOR_CHATTER", "0") != "1":  # JNERF_JITTOR_CHATTER=1 keeps it on the terminal
            sys.meta_path.insert(0, _QuietJittorImport())
    _done = True
