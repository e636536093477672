#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a fixed time and writes fuzz/RESULTS.md (executions,
# exec/s, libFuzzer coverage per target).
#
#   scripts/fuzz.sh [SECONDS] [TARGET[=SECONDS] ...]
#
# SECONDS (default 60) is the time per target; naming targets runs only those, each optionally
# with its own time (`scripts/fuzz.sh 60 frame_decode=1200 parse_invoke=1800`).
# Environment: FUZZ_SANITIZER (default `address`; `none` runs 2-4x more executions per second),
# FUZZ_RSS_MB (default 2048), FUZZ_TIMEOUT_S (per input, default 10), FUZZ_MAX_LEN (longest input,
# overriding the per-target default below), FUZZ_SEEDS=0 (keep the
# seeds already written), FUZZ_BUILD=0 (run the binaries built last time), FUZZ_APPEND=1 (add this run's table to fuzz/RESULTS.md), EDGELOOP_CACHE.
# Inputs that once crashed a target are kept in fuzz/regressions/<target>/ and replayed first.
#
# Installs cargo-fuzz (cached under $EDGELOOP_CACHE/tools) and uses the nightly toolchain. The
# seed corpora (fuzz/corpus/<target>/) are rewritten by `write-seeds` on every run; what the
# fuzzer adds goes to $EDGELOOP_CACHE/fuzz-corpus/<target>/ and is kept between runs. A crash
# leaves its input in fuzz/artifacts/<target>/ and makes the script exit with status 1.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${EDGELOOP_CACHE:-$HOME/.cache/edgeloop}"
TOOLS="$CACHE/tools"
SANITIZER="${FUZZ_SANITIZER:-address}"
RSS_MB="${FUZZ_RSS_MB:-2048}"
TIMEOUT_S="${FUZZ_TIMEOUT_S:-10}"
# Fuzz builds (instrumented, nightly, -Zbuild-std) share nothing with the workspace's build.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$CACHE/fuzz-target}"
if [ "$SANITIZER" != address ]; then
  CARGO_TARGET_DIR="$CARGO_TARGET_DIR/sanitizer-$SANITIZER"
fi
export PATH="$TOOLS/bin:$PATH"

ALL_TARGETS=(parse_invoke frame_decode ingest_stream onnx_compile dataset_read serve_text wav_parse
  checkpoint_load)
# Longest input each target explores. Model images: 32 KiB keeps the int8 example models
# (MLP 21 KB, DS-CNN 31 KB) and drops the f32 ones (69 and 92 KB, truncated to invalid images):
# with them in the corpus each execution runs a full DS-CNN and the rate fell to ~20/s on 2
# loaded cores. A telemetry frame is at most 256 bytes encoded. WAV: 8 KiB is a quarter-second
# clip (the round trip is linear in it; a Speech Commands clip is 32 KiB and adds nothing but
# time). Checkpoints: 32 KiB holds the tiny GPT/BERT seeds with optimizer moments (up to 21 KB).
declare -A MAX_LEN=(
  [parse_invoke]=32768 [frame_decode]=512 [ingest_stream]=4096
  [onnx_compile]=65536 [dataset_read]=8192 [serve_text]=4096
  [wav_parse]=8192 [checkpoint_load]=32768
)

default_s="${1:-60}"
shift || true
declare -A SECONDS_FOR=()
targets=()
for arg in "$@"; do
  t="${arg%%=*}"
  [ -n "${MAX_LEN[$t]:-}" ] || { echo "unknown target: $t (one of: ${ALL_TARGETS[*]})" >&2; exit 2; }
  targets+=("$t")
  [[ "$arg" == *=* ]] && SECONDS_FOR[$t]="${arg#*=}"
done
[ "${#targets[@]}" -gt 0 ] || targets=("${ALL_TARGETS[@]}")

step() { printf '\n==> %s\n' "$*"; }

step "nightly toolchain and cargo-fuzz"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
rustup +nightly component add rust-src >/dev/null
if ! command -v cargo-fuzz >/dev/null; then
  CARGO_TARGET_DIR="$CACHE/target-tools/cargo-install" \
    cargo install cargo-fuzz --locked --root "$TOOLS"
fi
cargo fuzz --version

if [ "${FUZZ_SEEDS:-1}" = 1 ]; then
  step "seed corpora (write-seeds: valid inputs made by the project's writers)"
  (cd fuzz && cargo run --quiet --all-features --bin write-seeds)
fi

step "build ($SANITIZER sanitizer, release with debug assertions)"
# Each target with only the crates it needs (the image and frame targets build the runtime alone).
declare -A FEATURES=(
  [parse_invoke]="" [frame_decode]="" [ingest_stream]=ingest
  [onnx_compile]=onnx [dataset_read]=dataset [serve_text]=dataset
  [wav_parse]=dataset [checkpoint_load]=dataset
)
if [ "${FUZZ_BUILD:-1}" = 1 ]; then
  for t in "${targets[@]}"; do
    (cd fuzz && cargo +nightly fuzz build --features "${FEATURES[$t]}" -s "$SANITIZER" "$t")
  done
fi
BIN_DIR="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"

LOG_DIR="$CACHE/fuzz-logs"
mkdir -p "$LOG_DIR"
rows=()
failed=0
for t in "${targets[@]}"; do
  s="${SECONDS_FOR[$t]:-$default_s}"
  step "fuzz $t for ${s}s"
  work="$CACHE/fuzz-corpus/$t"
  mkdir -p "$work" "fuzz/artifacts/$t"
  log="$LOG_DIR/$t.log"
  set +e
  mkdir -p "fuzz/corpus/$t"
  regressions=()
  [ -d "fuzz/regressions/$t" ] && regressions=("fuzz/regressions/$t")
  nice -n "${FUZZ_NICE:-10}" "$BIN_DIR/$t" "$work" "fuzz/corpus/$t" "${regressions[@]}" \
    -max_total_time="$s" -max_len="${FUZZ_MAX_LEN:-${MAX_LEN[$t]}}" -rss_limit_mb="$RSS_MB" \
    -timeout="$TIMEOUT_S" -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
    >"$log" 2>&1
  rc=$?
  set -e
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$log")
  # The last status line (DONE, or the last pulse before a crash) carries cov: and ft:.
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
  if [ "$rc" -eq 0 ]; then
    verdict="no crash, hang or OOM"
  else
    failed=1
    kind=$(grep -oE 'ERROR: libFuzzer: [a-z-]+|panicked at [^:]*' "$log" | head -1)
    art=$(ls -t "fuzz/artifacts/$t" 2>/dev/null | head -1)
    verdict="**FAILED** (exit $rc: ${kind:-see log}; input fuzz/artifacts/$t/$art)"
  fi
  echo "$t: ${execs:-?} executions, ${rate:-?}/s, cov ${cov:-?}, ft ${ft:-?}: $verdict"
  rows+=("| \`$t\` | $s | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $verdict |")
done

step "fuzz/RESULTS.md"
{
  echo "# Fuzzing results"
  echo
  echo "Written by \`scripts/fuzz.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'): $(nproc) cores" \
    "(load average $(cut -d' ' -f1-3 /proc/loadavg) at the end), libFuzzer via" \
    "$(cargo fuzz --version), $(rustc +nightly --version | cut -d' ' -f1-2), sanitizer \`$SANITIZER\`," \
    "release build with debug assertions and overflow checks, RSS limit ${RSS_MB} MB," \
    "${TIMEOUT_S} s per input, one fuzzing process per target (this script runs them one after" \
    "another; other work on the machine shows in the load average)."
  echo
  echo "\`cov\` is libFuzzer's count of covered edges (\`cov:\`), \`ft\` its count of features" \
    "(edges with hit-count buckets, \`ft:\`), both from the final status line; \`corpus\` is" \
    "inputs/bytes in the working corpus at the end (seeds plus what earlier runs kept)."
  echo
  echo "| target | seconds | executions | exec/s | cov | ft | corpus | result |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Targets and properties: see \`fuzz/src/lib.rs\`. Security promises they back: \`SECURITY.md\`."
} >fuzz/RESULTS.md.new
if [ "${FUZZ_APPEND:-0}" = 1 ] && [ -f fuzz/RESULTS.md ]; then
  { cat fuzz/RESULTS.md; echo; echo "## Run of $(date -u '+%Y-%m-%d %H:%M UTC')"; echo;
    sed -n '/^| target/,/^$/p' fuzz/RESULTS.md.new; } >fuzz/RESULTS.md.tmp
  mv fuzz/RESULTS.md.tmp fuzz/RESULTS.md
  rm fuzz/RESULTS.md.new
else
  mv fuzz/RESULTS.md.new fuzz/RESULTS.md
fi
cat fuzz/RESULTS.md
exit "$failed"
