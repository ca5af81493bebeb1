# Source this on a GPU machine that cannot reach a package index (the team's lent H100/H200 machines):
#   source bench/device_env.sh
# It installs the wheels carried in .device/wheels (jittor 1.3.11, numpy 1.26.4 and the few pure-Python
# dependencies; build them here with bench/fetch_device_wheels.sh) into /tmp/jnerf-pkgs and puts that first on
# PYTHONPATH, so Jittor meets numpy < 2 even where the machine's own Python ships numpy 2.
# Jittor's CUDA 13 patch is applied by `import jnerf` itself, as on any user's machine.
JNERF_PKGS=${JNERF_PKGS:-/tmp/jnerf-pkgs}
# Under a lock: two benchmark scripts started together in one call otherwise install over each other.
(
  flock 9
  if [ ! -f "$JNERF_PKGS/.done" ]; then
    python3 -m pip install -q --no-index --no-deps --target "$JNERF_PKGS" .device/wheels/*.whl && touch "$JNERF_PKGS/.done"
  fi
) 9> /tmp/jnerf-pkgs.lock
export PYTHONPATH="$JNERF_PKGS:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export JITTOR_HOME=${JITTOR_HOME:-/tmp/jnerf-jittor-home}
mkdir -p "$JITTOR_HOME"
# A warm Jittor cache (its compiled core, ~5 MB packed) saves a minute of compiling on a fresh machine; Jittor keys
# it by compiler, Python and CPU, so on another machine type it is simply not used.
# Later calls can add what they compiled as .device/jittor-cache-*.tgz (bench/gpu_e2e.sh packs it as
# $OUT/jittor-cache-delta.tgz: the whole cache outgrows what a call may bring back).
if [ ! -d "$JITTOR_HOME/.cache" ]; then
  for cache in .device/jittor-cache.tgz .device/jittor-cache-*.tgz; do
    [ -f "$cache" ] && tar xzf "$cache" -C "$JITTOR_HOME"
  done
  for first in .device/jittor-cache-*.tgz.part-aa; do  # a delta that came back in parts (bench/gpu_e2e.sh)
    [ -f "$first" ] && cat "${first%aa}"* | tar xzf - -C "$JITTOR_HOME"
  done
  touch "$JITTOR_HOME/.unpacked"
fi
