#!/usr/bin/env bash
# edgeloop vs TensorFlow Lite Micro on the Cortex-M4 (and Cortex-M0+ code), in one run: fetches
# the TFLM side's sources if DEPS lacks them (fetch.sh), builds TFLM's firmware with CMSIS-NN and
# with its reference kernels, and with CMSIS-NN for the Cortex-M0+ (build.sh), regenerates
# edgeloop's firmware-examples/BENCH.md (scripts/firmware-bench.sh), runs the three TFLM
# firmwares in QEMU's mps2-an386 with the same instruction-count plugin, and writes
# bench/tflm/RESULTS.md, results.json and tflm.png.
#
#   bench/tflm/run.sh [DEPS] [OUT]     (defaults under ~/.cache/edgeloop)
#
# Needs what scripts/test.sh installs (qemu-system-arm, cc, the thumbv7em target, the Python
# venv with matplotlib: EDGELOOP_PYTHON) and arm-none-eabi-gcc with newlib (Debian:
# gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib). Not part of CI:
# CI has no network access to GitHub for the TFLM sources.
set -euo pipefail
cd "$(dirname "$0")/../.."
deps="${1:-$HOME/.cache/edgeloop/tflm-deps}"
out="${2:-$HOME/.cache/edgeloop/tflm-out}"
[ -f "$deps/sources.json" ] || bash bench/tflm/fetch.sh "$deps"
bash bench/tflm/build.sh "$deps" "$out"
cc -shared -fPIC -O2 -o "$out/insn-count.so" firmware-examples/tools/insn-count.c
bash scripts/firmware-bench.sh
for set in cmsis_nn reference cmsis_nn_m0plus; do
  elf="$out/tflm-$set.elf"
  mark="$(arm-none-eabi-nm "$elf" | awk '$3 == "edgeloop_mark" { print $1 }')"
  mark="$(printf '0x%x' $((16#$mark & ~1)))"
  rm -f "$out/counts-$set.txt"
  if ! timeout 600 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic -monitor none \
    -semihosting-config enable=on,target=native -kernel "$elf" \
    -plugin "$out/insn-count.so,marker=$mark,out=$out/counts-$set.txt" > "$out/log-$set.txt" 2>&1; then
    echo "error: the TFLM firmware ($set) failed; its output:" >&2
    cat "$out/log-$set.txt" >&2
    exit 1
  fi
done
"${EDGELOOP_PYTHON:-python3}" bench/tflm/report.py "$out" "$deps" firmware-examples/BENCH.md bench/tflm
