#!/usr/bin/env bash
# One device run (the `device` tool of this workplace, or any CUDA machine): the trainer's GPT
# on the GPU (f32 and bf16 autocast) next to PyTorch eager on the same GPU, and the nanoGPT CPU
# recipe (2 threads each, on disjoint cores, at the same time) next to PyTorch on the CPU.
# Expects, built elsewhere (see README.md in this folder): .dev/gpu-bench, .dev/nanogpt-bench,
# .dev/nanogpt.txt (trainer/scripts/nanogpt_text.sh). Results go to $OUT (or ./gpu-out).
set -u
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
ITERS=${ITERS:-2000}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
nproc >> "$OUT/gpu.txt"
# CUDA libraries (cuBLAS, cuRAND, NVRTC) from the machine's PyTorch wheels
LIBS=""
for l in libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13 libcudart.so.13; do
  f=$(find / -xdev -name "$l" 2>/dev/null | head -1)
  [ -n "$f" ] && LIBS="$LIBS:$(dirname "$f")"
done
export LD_LIBRARY_PATH="${LIBS#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ldd .dev/gpu-bench | grep -E "not found|cuda|cublas|curand|nvrtc" | tee -a "$OUT/gpu.txt"
# CPU yardstick: PyTorch on cores 0-1, candle on cores 2-3, concurrently
export PYTHONUNBUFFERED=1
( taskset -c 0,1 timeout 420 python3 trainer/scripts/nanogpt_reference.py --text .dev/nanogpt.txt \
    --iters "$ITERS" --threads 2 --json "$OUT/torch_cpu.json" > "$OUT/torch_cpu.log" 2>&1 ) &
( taskset -c 2,3 timeout 420 env RAYON_NUM_THREADS=2 CANDLE_NUM_THREADS=2 .dev/nanogpt-bench \
    --text .dev/nanogpt.txt --iters "$ITERS" --json "$OUT/candle_cpu.json" > "$OUT/candle_cpu.log" 2>&1 ) &
# GPU: ours, then PyTorch eager, on the remaining cores
taskset -c 4-15 timeout 240 .dev/gpu-bench 200 2>&1 | tee "$OUT/gpu_candle.jsonl"
taskset -c 4-15 timeout 180 python3 trainer/benches/gpu/torch_reference.py 200 2>&1 | tee "$OUT/gpu_torch.jsonl"
wait
cat "$OUT/torch_cpu.json" "$OUT/candle_cpu.json" 2>&1; tail -2 "$OUT/candle_cpu.log"
