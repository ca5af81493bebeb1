#!/usr/bin/env bash
# GPU sessions through the device tool (carry [".device", "data/zoo"]); each mode fits the tool's 10-minute limit.
#   bash bench/gpu_e2e.sh warm         compile every Jittor op that training, validation and export use (a short
#                                      demo run), then pack the warm cache as $OUT/jittor-cache.tgz for later calls
#   bash bench/gpu_e2e.sh zoo NAME [TREE] [JOBS] [SCENES...]
#                                      train the zoo ($ZOO, default data/zoo from bench/make_zoo.py) with the demo config of TREE
#                                      (default: this checkout; .device/before holds an older commit), JOBS scenes at
#                                      once, preview meshes every 250 steps; score them with the machine's own
#                                      numpy-2 Python (the evaluator needs no Jittor); tables and logs into $OUT;
#                                      REFERENCE=<runs folder, or curves JSON as in bench/reference/> adds the
#                                      time to come within 10% of that reference's final Chamfer
#   bash bench/gpu_e2e.sh demo         the README's main command unchanged, then the demo with preview meshes
#   bash bench/gpu_e2e.sh womask SCENE the masked demo config against the unmasked one on SCENE (bench_womask.py);
#                                      WOMASK_OPTS="key=value ..." adds an unmasked variant with those overrides
#   bash bench/gpu_e2e.sh profile      where a demo training step's time goes (bench/profile_step.py), at each
#                                      of $PROFILE_SAMPLES samples per step (default 262144, the demo's)
#   bash bench/gpu_e2e.sh tests        the CUDA-vs-CPU tests (kernels, fused MLP) and the fused-MLP benchmark
#   bash bench/gpu_e2e.sh batch        bench/bench_batch.py: 2 scenes through tools/run_batch.py against 2 plain runs
#                                      (demo config, $BATCH_OPTS, default train.total_steps=1500; a warm-up run
#                                      first), meshes scored with the machine's own Python; table into $OUT
set -u
source bench/device_env.sh
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/jnerf-out}; mkdir -p "$OUT"
DEMO=projects/neus/configs/instant_neus_demo.py
KEY_LINES=" (device|kernels|step [0-9]+ \||mesh at|Chamfer|F-score|evaluation|Traceback|Error)"
DEADLINE=$((SECONDS + ${BUDGET_S:-585}))
left() { local l=$((DEADLINE - SECONDS)); [ "$l" -lt "$1" ] && echo "$l" || echo "$1"; }  # min(cap, time left)
# The machine's own Python (numpy 2, scipy) scores meshes: no Jittor, so no numpy < 2 needed; only trimesh (pure
# Python) comes from the carried wheels.
SCORE_PKGS=/tmp/jnerf-score-pkgs
( flock 9; [ -f $SCORE_PKGS/.done ] || { python3 -m pip install -q --no-index --no-deps --target $SCORE_PKGS \
  .device/wheels/trimesh-*.whl && touch $SCORE_PKGS/.done; } ) 9> /tmp/jnerf-score-pkgs.lock
SCORE_ENV=(env -u PYTHONPATH PYTHONPATH="$PWD:$SCORE_PKGS")
score_py() { "${SCORE_ENV[@]}" python3 "$@"; }

# What this call compiled beyond the carried cache, for the next call (save it as .device/jittor-cache-<n>.tgz, or
# its parts as .device/jittor-cache-<n>.tgz.part-aa, -ab, ...). Split in 15 MB parts: a file over 16 MiB does not
# come back from a call (a 17 MB delta was lost that way).
pack_cache_delta() {
  [ -f "$JITTOR_HOME/.unpacked" ] || return 0
  (cd "$JITTOR_HOME" && find .cache -type f -newer .unpacked | tar czf - -T - \
    | split -b 15000000 - "$OUT/jittor-cache-delta.tgz.part-")
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nvcc --version | tail -1

case "${1:-}" in
  warm)
    t0=$SECONDS
    timeout "$(left 560)" python tools/run_net.py --config-file $DEMO --task train --opts exp_name="'warm'" \
      train.total_steps=600 train.val_every=600 train.save_every=600 train.mesh_every=600 \
      mesh.preview_resolution=128 mesh.resolution=128 eval.after_training=False > "$OUT/warm.txt" 2>&1
    echo "== warm-up: exit $? after $((SECONDS - t0)) s"; grep -E "$KEY_LINES" logs/warm/train.log | tail -6
    tar czf /tmp/jcache.tgz -C "$JITTOR_HOME" .cache && [ "$(stat -c %s /tmp/jcache.tgz)" -lt 16000000 ] \
      && cp /tmp/jcache.tgz "$OUT/jittor-cache.tgz"; ls -la /tmp/jcache.tgz
    ;;
  zoo)
    name=${2:?name}; tree=${3:-.}; jobs=${4:-1}; shift 4 2>/dev/null || shift $#
    runs=logs/zoo_$name; zoo=${ZOO:-data/zoo}
    t0=$SECONDS
    # Training stops SCORE_S (default 120) before the deadline so that the meshes it made are still scored; the
    # logs and the compiled ops are saved first, so a call that runs out of time still brings them back.
    timeout "$(( $(left 600) - ${SCORE_S:-120} ))" python bench/zoo_quality.py train $zoo --out $runs \
      --jobs "$jobs" --config "$tree/$DEMO" --run-net "$tree/tools/run_net.py" --mesh-every "${MESH_EVERY:-250}" \
      ${ZOO_OPTS:+--opts $ZOO_OPTS} ${1:+--scenes "$@"} 2>&1 | tee "$OUT/zoo_$name.txt"
    echo "== zoo $name: $((SECONDS - t0)) s"
    tar czf "$OUT/zoo_${name}_logs.tgz" $runs/*/train.log $runs/*/config.py 2>/dev/null
    pack_cache_delta
    timeout "$(left 600)" "${SCORE_ENV[@]}" python3 bench/zoo_quality.py score $runs \
      --zoo $zoo --jobs 12 --markdown "$OUT/zoo_$name.md" ${REFERENCE:+--reference "$REFERENCE"} 2>&1 | tail -18
    tar czf "$OUT/zoo_${name}_logs.tgz" $runs/*/train.log $runs/*/config.py $runs/*/zoo_scores.json 2>/dev/null
    ;;
  demo)
    t0=$SECONDS
    timeout "$(left 300)" python tools/run_net.py --config-file $DEMO --task train ${DEMO_OPTS:+--opts $DEMO_OPTS} \
      > "$OUT/run_readme.txt" 2>&1
    echo "== README command: exit $? after $((SECONDS - t0)) s"
    grep -E "$KEY_LINES" logs/bunny_demo/train.log | tail -8
    ls -la logs/bunny_demo
    for mesh in logs/bunny_demo/mesh_*.ply; do
      score_py tools/eval_mesh.py "$mesh" data/bunny/gt_mesh.ply --scene data/bunny --json "$OUT/demo_eval.json" \
        | grep -E "chamfer|F-score"
    done
    ;;
  womask)
    scene=${2:?scene}; t0=$SECONDS
    timeout "$(left 420)" python bench/bench_womask.py train "$scene" --out logs/womask --device cuda \
      > "$OUT/womask_train.txt" 2>&1
    echo "== womask training: exit $? after $((SECONDS - t0)) s"
    if [ -n "${WOMASK_OPTS:-}" ]; then  # a variant of the unmasked run beside the two plain ones
      timeout "$(left 420)" python bench/bench_womask.py train "$scene" --out logs/womask --device cuda \
        --runs without_masks --tag variant --opts $WOMASK_OPTS >> "$OUT/womask_train.txt" 2>&1
      echo "== womask variant ($WOMASK_OPTS): exit $? after $((SECONDS - t0)) s"
    fi
    grep -E "$KEY_LINES" logs/womask/*/train.log | tail -4
    score_py bench/bench_womask.py score "$scene" --out logs/womask 2>&1 | tee "$OUT/womask.md" | tail -8
    ;;
  profile)
    for samples in ${PROFILE_SAMPLES:-262144}; do
      timeout "$(left 240)" python bench/profile_step.py --device cuda --steps 150 \
        --markdown "$OUT/profile_$samples.md" --opts renderer.target_samples=$samples > "$OUT/profile_log_$samples.txt" 2>&1
      echo "== profile at $samples samples: exit $?"
      grep -E "^\[profile\]|Traceback|Error" "$OUT/profile_log_$samples.txt" | tail -8
    done
    ;;
  tests)
    timeout "$(left 250)" python -m pytest tests/test_cuda_kernels.py tests/test_fused_mlp.py -q -p no:cacheprovider \
      -rs --durations=8 2>&1 | grep -v "^.\[38" | tee "$OUT/gpu_tests.txt" | tail -25
    timeout "$(left 150)" python bench/bench_fused_mlp.py --configs 0,2 --log2-batches 14,16,18,20,21 \
      --budget-s 130 --out "$OUT/fused_mlp.md" 2>&1 | grep -v "^.\[38" | tail -30
    ;;
  batch)
    timeout "$(left 585)" python bench/bench_batch.py --out /tmp/jnerf-bench-batch --markdown "$OUT/bench_batch.md" \
      --score --score-python "${SCORE_ENV[*]} python3" \
      --opts ${BATCH_OPTS-train.total_steps=1500} 2>&1 | tee "$OUT/bench_batch.txt" | grep -v "^.\[38"
    cp /tmp/jnerf-bench-batch/batch/results.md "$OUT/batch_results.md" 2>/dev/null
    ;;
  *) echo "usage: bash bench/gpu_e2e.sh warm|zoo NAME [TREE] [JOBS] [SCENES...]|demo|womask SCENE|profile|tests|batch" >&2; exit 2 ;;
esac
pack_cache_delta
