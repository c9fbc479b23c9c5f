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
set -u
out=${RESULTS:-benchmarks/results/gpu_stacked}; mkdir -p "$out"
export PYTHONPATH=${GANFORGE_SRC:-$PWD/src}${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if [ -n "${FASHION_DIR:-}" ] && [ ! -e /usr/share/datasets/fashion-mnist ]; then
  mkdir -p /usr/share/datasets && ln -s "$(realpath "$FASHION_DIR")" /usr/share/datasets/fashion-mnist
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" >> "$out/gpu.txt"
if [ "${TESTS:-0}" = 1 ]; then
  timeout 240 python3 -m pytest -q -p no:cacheprovider -k "not compile" tests/test_cuda.py > "$out/tests.txt" 2>&1 &
fi
t0=$(date +%s)
timeout ${BUDGET_S:-480} python3 benchmarks/mode_collapse.py --datasets ${DATASETS:-stacked-fashion} \
  --configs recommended --seeds ${SEEDS:-10} --seed-offset ${SEED0:-0} --jobs ${JOBS:-5} --threads ${THREADS:-3} --device cuda \
  --set train.cuda_graph=true --keep-runs --resume --no-progress --out "$out" "$@" >> "$out/log.txt" 2>&1
echo "exit $? after $(( $(date +%s) - t0 )) s" >> "$out/log.txt"
wait
for m in "$out"/runs/*/*/*/metrics.jsonl; do  # each run's last logged step and its time
  [ -f "$m" ] && echo "$m $(tail -n 1 "$m" | cut -c1-40)"
done > "$out/progress.txt"
if [ -n "${COPY:-}" ]; then
  cp "$out"/gpu.txt "$out"/log.txt "$out"/progress.txt "$COPY"/; cp "$out"/results.* "$out"/tests.txt "$COPY"/ 2>/dev/null
fi
cat "$out/gpu.txt" "$out/progress.txt"; tail -n 15 "$out/log.txt"; [ -f "$out/tests.txt" ] && tail -n 3 "$out/tests.txt"
true
