#!/usr/bin/env bash
# One GPU session (run through the device tool with carry [".device"]): trains the demo scene on the GPU with
# preview meshes every 500 steps (for time-to-quality, scored afterwards with tools/eval_mesh.py on a CPU
# machine), then the CUDA-vs-CPU kernel tests, then the fused-MLP benchmark. Files land in $OUT.
source bench/device_env.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; nvcc --version | tail -1
OUT=${OUT:-/tmp/jnerf-out}; mkdir -p "$OUT"
timeout ${TRAIN_S:-280} python tools/run_net.py --config-file projects/neus/configs/instant_neus_demo.py \
  --task train --device cuda --opts exp_name=gpu_demo train.mesh_every=500 mesh.preview_resolution=192 \
  mesh.resolution=320 eval.after_training=False > "$OUT/train.log" 2>&1
echo "train exit code $?"
grep -E " [IWE] " "$OUT/train.log" | tail -40
(cd logs/gpu_demo && tar czf "$OUT/meshes.tgz" mesh_*.ply validation config.py 2>/dev/null; ls -la)
timeout ${TEST_S:-130} python -m pytest tests/test_cuda_kernels.py -q -p no:cacheprovider 2>&1 | grep -v "^.\[38" | tail -15
timeout ${BENCH_S:-60} python bench/bench_fused_mlp.py --configs 0 --log2-batches 14,18 2>&1 | grep -v "^.\[38" | tail -15
