#!/usr/bin/env bash
# GPU sessions through the device tool (carry [".device"]), in two calls that each fit its 10-minute limit:
#   bash bench/gpu_e2e.sh train   the README's main command unchanged, then the demo with preview meshes every 500
#                                 steps with the colour MLP as plain fp32 layers and as the fused kernel at every
#                                 batch size, for iterations/s and time to quality
#   bash bench/gpu_e2e.sh tests   the CUDA-vs-CPU tests (kernels, fused MLP), the fused-MLP benchmark, and the demo
#                                 with the fused kernel in the SDF network too
# Preview meshes are scored with bench/time_to_quality.py on the device when its scipy imports, else packed into
# $OUT (split below the 16 MiB per-file limit) to be scored on a CPU machine.
set -u
source bench/device_env.sh
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/jnerf-out}; mkdir -p "$OUT"
DEMO=projects/neus/configs/instant_neus_demo.py
TTQ_OPTS=(train.mesh_every=500 mesh.preview_resolution=192 mesh.resolution=256 eval.after_training=False)
KEY_LINES=" (device|kernels|step [0-9]+ \||mesh at|Chamfer|F-score|evaluation|Traceback|Error)"

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nvcc --version | tail -1
SCIPY_OK=0
python -c "import scipy.spatial, scipy.ndimage; print('scipy', scipy.__version__)" 2>/dev/null && SCIPY_OK=1

DEADLINE=$((SECONDS + ${BUDGET_S:-585}))
left() { local l=$((DEADLINE - SECONDS)); [ "$l" -lt "$1" ] && echo "$l" || echo "$1"; }  # min(cap, time left)

ttq_run() {  # name, time cap (s), extra --opts...
  local name=$1 limit; limit=$(left "$2"); shift 2
  [ "$limit" -lt 40 ] && { echo "== $name: skipped, ${limit} s left"; return; }
  local t0=$SECONDS
  timeout "$limit" python tools/run_net.py --config-file $DEMO --task train \
    --opts exp_name="'gpu_$name'" "${TTQ_OPTS[@]}" "$@" > "$OUT/run_$name.txt" 2>&1
  echo "== $name: exit $? after $((SECONDS - t0)) s"; grep -E "$KEY_LINES" logs/gpu_$name/train.log | tail -12
  if [ $SCIPY_OK = 1 ]; then
    python bench/time_to_quality.py logs/gpu_$name --gt data/bunny/gt_mesh.ply --scene data/bunny \
      2>&1 | grep -v "^.\[38" | tee "$OUT/ttq_$name.md"
  else
    (cd logs && tar cz gpu_$name/train.log gpu_$name/mesh_*.ply) | split -b 15M - "$OUT/meshes_$name.tgz."
  fi
}

case "${1:-}" in
  train)
    t0=$SECONDS
    timeout "$(left 380)" python tools/run_net.py --config-file $DEMO --task train > "$OUT/run_readme.txt" 2>&1
    echo "== README command: exit $? after $((SECONDS - t0)) s"
    grep -E "$KEY_LINES" logs/bunny_demo/train.log | tail -8
    ls -la logs/bunny_demo
    ttq_run plain 105 "model.color_network.mlp_type='MLP'"
    ttq_run fused 105 "model.color_network.mlp_type={'type': 'FullyFusedMLP', 'min_fused_rows': 0}"
    # The now-warm Jittor cache (core and every op compiled above): carried as .device/jittor-cache.tgz, it spares
    # the next fresh machine minutes of compiling.
    tar czf /tmp/jcache.tgz -C "$JITTOR_HOME" .cache && [ "$(stat -c %s /tmp/jcache.tgz)" -lt 16000000 ] \
      && cp /tmp/jcache.tgz "$OUT/jittor-cache.tgz"; ls -la /tmp/jcache.tgz
    ;;
  tests)
    timeout "$(left 250)" python -m pytest tests/test_cuda_kernels.py tests/test_fused_mlp.py -q -p no:cacheprovider \
      -rs --durations=8 2>&1 | grep -v "^.\[38" | tee "$OUT/gpu_tests.txt" | tail -25
    timeout "$(left 150)" python bench/bench_fused_mlp.py --configs 0,2 --log2-batches 14,16,18,20,21 \
      --budget-s 130 --out "$OUT/fused_mlp.md" 2>&1 | grep -v "^.\[38" | tail -30
    ttq_run fused_sdf 110 "model.sdf_network.mlp_type={'type': 'FullyFusedMLP', 'min_fused_rows': 0}"
    ;;
  *) echo "usage: bash bench/gpu_e2e.sh train|tests" >&2; exit 2 ;;
esac
