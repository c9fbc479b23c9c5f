#!/usr/bin/env bash
# The stacked benchmarks' recommended recipes on a GPU machine: DATASETS (default stacked-fashion)
# x SEEDS seeds from SEED0 (default 10 from 0), JOBS (default 5) processes sharing the GPU, each
# iteration replayed as a CUDA graph, runs kept under RESULTS/runs with checkpoints every 2,000 steps:
# run it again (same settings) and it continues where BUDGET_S (default 480 s) cut it off.
# Needs the Fashion-MNIST IDX files (FASHION_DIR, default Debian's dir); the Fashion classifier
# ships with the package. TESTS=1 also runs tests/test_cuda.py beside the training. COPY=DIR
# receives results.json/.md, the log, the GPU line and each run's last logged step. THREADS
# (default 3): CPU threads per run, for its evaluation (26,000 samples classified on the CPU).
# Measured on one H200 (2026-11-27): 5 runs at once trained ~135 steps/s each (43,000 steps in
# 320 s), after ~130 s before the runs started, mostly counting the real-data ceiling on one thread (now on every core,
# and reused by a second call); each run's evaluation was not reached. Where the repository is copied afresh for every call (the device tool),
# RESULTS must lie outside it for a second call to find the checkpoints:
#   RESULTS=/tmp/gsf FASHION_DIR=$PWD/.fmnist SEEDS=5 SEED0=5 COPY=$OUT bash benchmarks/gpu_stacked.sh
# (device tool: first, here, `mkdir -p .fmnist && cp /usr/share/datasets/fashion-mnist/*.gz .fmnist/
# && echo /.fmnist/ >> .git/info/exclude`, then carry .fmnist and give the call BUDGET_S + 60 s.)
# MATRIX=grid25 (or ring8,grid25) also runs the remedy matrix on the same GPU in the same budget:
# MATRIX_CONFIGS (default every named configuration but `recommended` and the ablations) x 10 seeds, each
# configuration's seeds as one seed ensemble, MATRIX_JOBS (default 3) processes, 1 CPU thread
# each, eager (no CUDA graphs), into RESULTS/matrix (COPY gets matrix-results.json/.md); resumed
# like the stacked runs (MATRIX_SEEDS, MATRIX_ARGS: e.g. "--steps 20"). SEEDS=0 runs the matrix
# alone. DEVICE=cpu (default cuda) is a dry run: DEVICE=cpu SEEDS=0 MATRIX=ring8
# MATRIX_CONFIGS=baseline,wgangp MATRIX_SEEDS=2 MATRIX_ARGS="--steps 20" RESULTS=/tmp/g bash benchmarks/gpu_stacked.sh
set -u
out=${RESULTS:-benchmarks/results/gpu_stacked}; mkdir -p "$out"
export PYTHONPATH=${GANFORGE_SRC:-$PWD/src}${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if [ -n "${FASHION_DIR:-}" ] && [ ! -e /usr/share/datasets/fashion-mnist ]; then
  mkdir -p /usr/share/datasets && ln -s "$(realpath "$FASHION_DIR")" /usr/share/datasets/fashion-mnist
fi
dev=${DEVICE:-cuda}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')" >> "$out/gpu.txt"
if [ "${TESTS:-0}" = 1 ]; then
  timeout 240 python3 -m pytest -q -p no:cacheprovider -k "not compile" tests/test_cuda.py > "$out/tests.txt" 2>&1 &
fi
t0=$(date +%s)
if [ -n "${MATRIX:-}" ]; then
  configs=${MATRIX_CONFIGS:-$(python3 benchmarks/mode_collapse.py --list | grep -v '^ ' | grep -v ablation | awk '{print $1}' | grep -vx recommended | paste -sd, -)}
  ( timeout ${BUDGET_S:-480} python3 benchmarks/mode_collapse.py --datasets "$MATRIX" --configs "$configs" \
      --seeds ${MATRIX_SEEDS:-10} --jobs ${MATRIX_JOBS:-3} --threads 1 --device "$dev" --resume --no-progress --out "$out/matrix" ${MATRIX_ARGS:-} \
      >> "$out/matrix-log.txt" 2>&1
    echo "exit $? after $(( $(date +%s) - t0 )) s" >> "$out/matrix-log.txt" ) &
fi
if [ "${SEEDS:-10}" != 0 ]; then
  graph=$([ "$dev" = cpu ] || echo "--set train.cuda_graph=true")
  timeout ${BUDGET_S:-480} python3 benchmarks/mode_collapse.py --datasets ${DATASETS:-stacked-fashion} \
    --configs recommended --seeds ${SEEDS:-10} --seed-offset ${SEED0:-0} --jobs ${JOBS:-5} --threads ${THREADS:-3} --device "$dev" \
    $graph --keep-runs --resume --no-progress --out "$out" "$@" >> "$out/log.txt" 2>&1
  echo "exit $? after $(( $(date +%s) - t0 )) s" >> "$out/log.txt"
fi
wait
for m in "$out"/runs/*/*/*/metrics.jsonl; do  # each run's last logged step and its time
  [ -f "$m" ] && echo "$m $(tail -n 1 "$m" | cut -c1-40)"
done > "$out/progress.txt"
if [ -n "${COPY:-}" ]; then
  cp "$out"/gpu.txt "$out"/progress.txt "$COPY"/; cp "$out"/log.txt "$out"/results.* "$out"/tests.txt "$COPY"/ 2>/dev/null
  for f in results.json results.md; do [ -f "$out/matrix/$f" ] && cp "$out/matrix/$f" "$COPY/matrix-$f"; done
  [ -f "$out/matrix-log.txt" ] && cp "$out/matrix-log.txt" "$COPY"/
fi
cat "$out/gpu.txt" "$out/progress.txt"; [ -f "$out/log.txt" ] && tail -n 15 "$out/log.txt"
[ -f "$out/matrix-log.txt" ] && tail -n 5 "$out/matrix-log.txt"; [ -f "$out/tests.txt" ] && tail -n 3 "$out/tests.txt"
true
