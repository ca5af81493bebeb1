"""Mend stock Jittor 1.3.11 so that it builds against CUDA 13 (the reviewed diff is patches/jittor-1.3.11-cuda13.patch).

Two build faults, both only on nvcc >= 13:
1. ``extern/cuda/inc/helper_cuda.h`` reads ``cudaDeviceProp::computeMode`` and ``::clockRate``, which CUDA 13
   removed; we read the same values through ``cudaDeviceGetAttribute``.
2. ``compiler.py`` hands nvcc ``-std=c++14``; CUDA 13's CUB/Thrust/libcu++ refuse anything below C++17, so the
   cub-based ops (cumsum, argsort, ...) fail to compile. We pass ``-std=c++17`` to nvcc >= 13.

The edits are exact string replacements applied before Jittor is first imported; each is skipped when already
present, and nothing is touched on CUDA <= 12. Jittor's compiled cache is keyed by its sources, so the patched
headers are picked up on the next compile.
"""
import importlib.util
import os

MARKER = "jnerf-cuda13"

_ATTR_HELPER = (
    "// " + MARKER + ": cudaDeviceProp lost computeMode/clockRate in CUDA 13; read them as attributes.\n"
    "inline int jnerfDeviceAttribute(cudaDeviceAttr attr, int dev) {\n"
    "  int value = 0;\n"
    "  cudaDeviceGetAttribute(&value, attr, dev);\n"
    "  return value;\n"
    "}\n\n")

# (file, [(old, new), ...]); `old` must occur in the stock 1.3.11 file.
EDITS = {
    "extern/cuda/inc/helper_cuda.h": [
        ("inline int gpuDeviceInit(int devID) {",
         _ATTR_HELPER + "inline int gpuDeviceInit(int devID) {"),
        ("if (deviceProp.computeMode == cudaComputeModeProhibited) {",
         "if (jnerfDeviceAttribute(cudaDevAttrComputeMode, devID) == cudaComputeModeProhibited) {"),
        ("    if (deviceProp.computeMode != cudaComputeModeProhibited) {",
         "    if (jnerfDeviceAttribute(cudaDevAttrComputeMode, current_device) != cudaComputeModeProhibited) {"),
        ("sm_per_multiproc * deviceProp.clockRate;",
         "sm_per_multiproc * jnerfDeviceAttribute(cudaDevAttrClockRate, current_device);"),
        ("        (deviceProp.computeMode != cudaComputeModeProhibited)) {",
         "        (jnerfDeviceAttribute(cudaDevAttrComputeMode, current_device) != cudaComputeModeProhibited)) {"),
    ],
    "compiler.py": [
        ('        nvcc_flags = nvcc_flags.replace("-Wall", "")\n',
         '        if nvcc_version >= [13,0]:  # ' + MARKER + ': CUDA 13 CUB/Thrust need C++17\n'
         '            nvcc_flags = nvcc_flags.replace("-std=c++14", "-std=c++17")\n'
         '        nvcc_flags = nvcc_flags.replace("-Wall", "")\n'),
    ],
}


class JittorPatchError(RuntimeError):
    pass


def jittor_source_dir():
    """Directory of the installed jittor package, found without importing it (importing compiles it)."""
    spec = importlib.util.find_spec("jittor")
    if spec is None or not spec.origin:
        raise JittorPatchError("jittor is not installed: pip install jittor==1.3.11.0")
    return os.path.dirname(spec.origin)


def patch_text(text, edits, name):
    """Apply ``edits`` to ``text``; already-patched text is returned unchanged."""
    if MARKER in text:
        return text
    for old, new in edits:
        if old not in text:
            raise JittorPatchError(f"cannot apply the CUDA 13 patch to jittor/{name}: expected text not found:\n"
                                   f"{old.strip()}\n(is this Jittor 1.3.11?)")
        text = text.replace(old, new)
    return text


def apply(src_dir=None):
    """Patch the Jittor sources in ``src_dir``; returns the list of files changed (empty when already patched)."""
    src_dir = src_dir or jittor_source_dir()
    changed = []
    for name, edits in EDITS.items():
        path = os.path.join(src_dir, name)
        with open(path) as f:
            text = f.read()
        new = patch_text(text, edits, name)
        if new != text:
            tmp = path + ".jnerf-tmp"
            with open(tmp, "w") as f:
                f.write(new)
            os.replace(tmp, path)
            changed.append(path)
    return changed


def apply_if_needed(nvcc_version):
    """Apply the patch when ``nvcc_version`` ((major, minor) of the nvcc Jittor will use, or None) is CUDA 13 or
    newer; returns True if files changed."""
    version = nvcc_version
    if version is None or version < (13, 0):
        return False
    try:
        return bool(apply())
    except PermissionError as e:
        raise JittorPatchError(f"Jittor needs a CUDA 13 fix but its sources are read-only ({e.filename}); "
                               "run once as the owner of the install, or see patches/jittor-1.3.11-cuda13.patch")
