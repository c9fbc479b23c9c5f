#!/usr/bin/env bash
# The GPU checks in one go (CUDA tests, throughput at 32 and 64 px, seed ensemble), for a
# machine with an NVIDIA GPU and PyTorch installed. Logs go to ${OUT:-benchmarks/results/gpu}.
#   FASHION_DIR=/path/to/fashion-mnist bash benchmarks/gpu.sh
set -u
out=${OUT:-benchmarks/results/gpu}; mkdir -p "$out"
export PYTHONPATH=${GANFORGE_SRC:-$PWD/src}${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
data=${FASHION_DIR:+--data-dir $FASHION_DIR}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$out/gpu.txt"
timeout 240 python3 -m pytest -q --timeout 120 -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/tests.txt"
timeout 300 python3 benchmarks/throughput.py --device cuda --size 32 --batch 256 --steps ${STEPS:-100} --warmup 10 $data \
  --variants ${VARIANTS32:-bf16,cl+bf16,bf16+graph,cl+bf16+graph,cl+bf16+compile+graph} 2>&1 | tee "$out/throughput32.txt"
timeout 150 python3 benchmarks/throughput.py --device cuda --size 64 --batch 256 --steps ${STEPS:-100} --warmup 10 $data --rounds 2 \
  --variants ${VARIANTS64:-cl+bf16,cl+bf16+graph} 2>&1 | tee "$out/throughput64.txt"
timeout 120 python3 benchmarks/ensemble.py --set train.device=cuda 2>&1 | tee "$out/ensemble.txt"
