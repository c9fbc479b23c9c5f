#!/usr/bin/env bash
# The stacked benchmarks' recommended recipes on a GPU machine: DATASETS (default
# stacked-digits,stacked-fashion) x SEEDS (default 10) runs, JOBS (default 3) processes sharing
# the GPU, each iteration replayed as a CUDA graph. Not yet timed on a GPU: a lease of this
# project once gave 16 eager processes on one H200 320 s and none finished (docs/benchmarks.md),
# so time one run first:  SEEDS=1 JOBS=1 DATASETS=stacked-digits bash benchmarks/gpu_stacked.sh
# Needs the Fashion-MNIST IDX files for stacked-fashion (FASHION_DIR, default Debian's dir); its
# classifier ships with the package; GANFORGE_CACHE may hold the digits one (trained in seconds
# otherwise). Results: ${OUT:-benchmarks/results/gpu_stacked}.
#   OUT=/tmp/gs FASHION_DIR=$PWD/.fmnist GANFORGE_CACHE=$PWD/.gcache bash benchmarks/gpu_stacked.sh
set -u
out=${OUT:-benchmarks/results/gpu_stacked}; mkdir -p "$out"
export PYTHONPATH=${GANFORGE_SRC:-$PWD/src}${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if [ -n "${FASHION_DIR:-}" ] && [ ! -e /usr/share/datasets/fashion-mnist ]; then
  mkdir -p /usr/share/datasets && ln -s "$(realpath "$FASHION_DIR")" /usr/share/datasets/fashion-mnist
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" >> "$out/gpu.txt"
timeout ${BUDGET_S:-540} python3 benchmarks/mode_collapse.py --datasets ${DATASETS:-stacked-digits,stacked-fashion} \
  --configs recommended --seeds ${SEEDS:-10} --jobs ${JOBS:-3} --device cuda --set train.cuda_graph=true \
  --no-progress --out "$out" "$@" 2>&1 | tail -40
