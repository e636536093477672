#!/usr/bin/env bash
# edgeloop's quantizer against ONNX Runtime's quantize_static on a demo run's models: the intent
# classifier (accuracy, macro F1) and the pretrained tiny GPT (perplexity), fp32 vs our int8 QDQ
# vs ORT's int8 QDQ (QDQ, per-channel, int8, the same calibration inputs), all run in ONNX Runtime
# at graph optimization Level1, plus the compiled images. See python/ref/quantizer_vs_ort.py.
#
# Usage: scripts/quantizer-vs-ort.sh [RUN_DIR] [--out DIR] [--no-images] [--seed N] [...]
#   RUN_DIR   a finished `edgeloop demo --out RUN_DIR` run; without it a fresh `--fast` demo runs
#             into a temporary folder first.
#   --out DIR where quantizer-vs-ort.{json,md} and the models go (default RUN_DIR/quantizer-vs-ort).
#   --seed N  seed of the fresh `--fast` demo (default 7, the demo's).
#   Other flags go to quantizer_vs_ort.py (--no-images, --percentile P, --lm-calib N,
#             --ort-entropy-bins BINS/QUANTIZED_BINS, ...). ORT's `quantize_static` entropy uses
#             128 / 128 histogram bins, which makes it min-max (quant_ort.py says why): the report
#             adds ORT's entropy with a real threshold search, by default at 2048 / 128 bins
#             (--ort-entropy-bins 0 leaves it out).
# Environment: EDGELOOP_BIN (default: `cargo build -p edgeloop`, target/debug/edgeloop),
#   EDGELOOP_PYTHON (default: the project venv), ORT_DYLIB_PATH (default: the venv's onnxruntime).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${EDGELOOP_CACHE:-$HOME/.cache/edgeloop}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-2}"
export CANDLE_NUM_THREADS="${CANDLE_NUM_THREADS:-2}"

die() { echo "quantizer-vs-ort: $*" >&2; exit 1; }

RUN=""
OUT=""
SEED=7
PASS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || die "--out needs a folder"; OUT="$2"; shift 2 ;;
    --seed) [ $# -ge 2 ] || die "--seed needs a number"; SEED="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    # quantizer_vs_ort.py's flags that take a value (also accepted as --flag=value).
    --percentile|--lm-calib|--lm-eval-windows|--ort-entropy-bins)
      [ $# -ge 2 ] || die "$1 needs a value"; PASS+=("$1" "$2"); shift 2 ;;
    --*) PASS+=("$1"); shift ;;
    *) [ -z "$RUN" ] || die "one RUN_DIR only (got '$RUN' and '$1')"; RUN="$1"; shift ;;
  esac
done

PY="${EDGELOOP_PYTHON:-$CACHE/venv/bin/python}"
[ -x "$PY" ] || die "no Python at '$PY': set EDGELOOP_PYTHON to the project venv's python (scripts/test.sh creates it)"
"$PY" -c "import onnxruntime, onnx, numpy" 2>/dev/null ||
  die "$PY lacks onnxruntime/onnx/numpy (pip install -r python/requirements.txt)"
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  ORT_DYLIB_PATH="$(ls "$(dirname "$PY")"/../lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n1 || true)"
  [ -n "$ORT_DYLIB_PATH" ] || die "ORT_DYLIB_PATH is not set and no libonnxruntime.so was found next to $PY"
  export ORT_DYLIB_PATH
fi

BIN="${EDGELOOP_BIN:-}"
if [ -z "$BIN" ]; then
  cargo build -q -p edgeloop
  BIN="$CARGO_TARGET_DIR/debug/edgeloop"
fi
[ -x "$BIN" ] || die "no edgeloop binary at '$BIN'"

if [ -z "$RUN" ]; then
  TMP_RUN="$(mktemp -d "${TMPDIR:-/tmp}/edgeloop-qvo.XXXXXX")"
  # With --out elsewhere, the temporary demo run is removed at the end.
  [ -n "$OUT" ] && trap 'rm -rf "$TMP_RUN"' EXIT
  RUN="$TMP_RUN/run"
  echo "quantizer-vs-ort: running a fresh --fast demo into $RUN"
  "$BIN" demo --fast --quiet --seed "$SEED" --out "$RUN" >"$RUN.log" 2>&1 ||
    { tail -n 30 "$RUN.log" >&2; die "the demo failed (log: $RUN.log)"; }
fi
[ -f "$RUN/summary.json" ] || die "$RUN is not a finished demo run (no summary.json)"
OUT="${OUT:-$RUN/quantizer-vs-ort}"
mkdir -p "$OUT"

"$PY" python/ref/quantizer_vs_ort.py --run "$RUN" --bin "$BIN" --python "$PY" \
  --work "$OUT/work" --json "$OUT/quantizer-vs-ort.json" --md "$OUT/quantizer-vs-ort.md" \
  ${PASS[@]+"${PASS[@]}"}
