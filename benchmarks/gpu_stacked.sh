#!/usr/bin/env bash
# The stacked-benchmark recipe search on one GPU machine (benchmarks/stacked_sweep.py): short
# variants on the CPU cores, long ones on the GPU with CUDA graphs, the CUDA tests alongside.
# Needs the Fashion-MNIST IDX files (FASHION_DIR, default Debian's dir); GANFORGE_CACHE may hold
# cached classifiers. Results: ${OUT:-benchmarks/results/gpu_stacked}/{cpu,gpu}/sweep.{json,md}.
#   OUT=/tmp/gs FASHION_DIR=$PWD/.fmnist GANFORGE_CACHE=$PWD/.gcache bash benchmarks/gpu_stacked.sh
set -u
out=${OUT:-benchmarks/results/gpu_stacked}; mkdir -p "$out"
export PYTHONPATH=${GANFORGE_SRC:-$PWD/src}${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if [ -n "${FASHION_DIR:-}" ] && [ ! -e /usr/share/datasets/fashion-mnist ]; then
  mkdir -p /usr/share/datasets && ln -s "$(realpath "$FASHION_DIR")" /usr/share/datasets/fashion-mnist
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" >> "$out/gpu.txt"
timeout 100 python3 -m pytest -q -x --tb=short -p no:cacheprovider tests/test_cuda.py -k "categorical or statistics" > "$out/tests.txt" 2>&1 &
S=${BUDGET_S:-360}
timeout $((S + 20)) python3 benchmarks/stacked_sweep.py --device cpu --out "$out/cpu" --work /tmp/sw_cpu --parallel 12 \
  --screen-s $S --confirm-s 0 --variants d-recipe,d-sngan-4k,d-sngan-d128-4k,d-r1-4k,d-topk,d-pack2,d-d128,d-lsgan,d-hinge,d-sn,d-const-noise,d-no-ema > "$out/cpu.log" 2>&1 &
timeout $((S + 20)) python3 benchmarks/stacked_sweep.py --device cuda --out "$out/gpu" --work /tmp/sw_gpu --parallel 3 \
  --screen-s $((S / 2)) --confirm-s $((S / 2 - 10)) --confirm-seeds 3 --set train.cuda_graph=true \
  --variants d-sngan,d-sngan-big,f-sngan,f-recipe > "$out/gpu.log" 2>&1 &
wait
tail -25 "$out/tests.txt"; tail -4 "$out/gpu.log"; grep -c . "$out/cpu.log"
