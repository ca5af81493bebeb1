#!/usr/bin/env bash
# Set up jnerf on a fresh machine: the package and its dependencies (plus the test extras with --test), Jittor's
# one-time compile of its core (~2 min on 2 cores, cached in ~/.cache/jittor), and, where a CUDA GPU is usable, the
# CUDA kernels that training and export use (~5 minutes once, with a progress bar), so that the first run does not
# stall on them.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

if [ -n "$extras" ]; then
  # pymeshlab (a test extra, and the optional [mesh] extra) loads libGL.so.1 and libX11.so.6 (libgl1, libx11-6).
  if ! ldconfig -p 2>/dev/null | grep -q "libGL.so.1" || ! ldconfig -p 2>/dev/null | grep -q "libX11.so.6"; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq libgl1 libx11-6 >/dev/null
    else
      echo "warning: libGL.so.1/libX11.so.6 missing; install libgl1 and libx11-6 for pymeshlab" >&2
    fi
  fi
fi

python -m pip install -q -e ".${extras}"
# Jittor compiles its core on first import and, the very first time, asks to be run again; do both here.
python -c "import jnerf, jittor" >/dev/null 2>&1 || true
python -c "import jnerf, jittor; print('jnerf ready: jittor', jittor.__version__)"
python tools/precompile.py
