"""Choose the compute device at run time (never at import) and say once what runs where."""
import logging

from .jittor_env import cuda_device_count

logger = logging.getLogger("jnerf")


def cuda_available():
    """True when Jittor was built with CUDA here and the driver reports a device."""
    import jittor as jt
    return bool(jt.has_cuda) and cuda_device_count() > 0


def set_device(device="auto"):
    """Set ``jt.flags.use_cuda`` from ``device`` in {'auto', 'cpu', 'cuda'}; returns the device used."""
    import jittor as jt
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got '{device}'")
    use_cuda = cuda_available() if device == "auto" else device == "cuda"
    if use_cuda and not cuda_available():
        from .errors import DeviceError
        raise DeviceError("device 'cuda' was asked for (--device / the config's device), but no CUDA device is usable "
                          "here (no driver or GPU, or Jittor started without nvcc: nvcc_path=''); use --device cpu")
    jt.flags.use_cuda = int(use_cuda)
    archs = list(jt.flags.cuda_archs) if use_cuda else []
    logger.info("device: %s%s", "cuda" if use_cuda else "cpu", f" (sm_{archs[0]})" if archs else "")
    return "cuda" if use_cuda else "cpu"
