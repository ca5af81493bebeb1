#!/usr/bin/env bash
# Download (on a machine with PyPI access) the wheels bench/device_env.sh installs on an offline GPU machine
# with Python 3.12. They land in .device/wheels (git-ignored) and travel with `carry: [".device"]`.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device/wheels
pip wheel -q --no-deps jittor==1.3.11.0 -w .device/wheels
pip download -q --no-deps --only-binary :all: --python-version 3.12 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  numpy==1.26.4 astunparse six PyMCubes trimesh tqdm imageio pillow xatlas==0.0.11 -d .device/wheels
# Dask for tools/run_batch.py (bench/bench_batch.py): dask, distributed and what they import
pip download -q --no-deps --only-binary :all: --python-version 3.12 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  dask==2026.8.0 distributed==2026.8.0 click cloudpickle fsspec packaging partd pyyaml toolz jinja2 markupsafe \
  locket msgpack psutil sortedcontainers tblib tornado zict -d .device/wheels
ls -la .device/wheels
