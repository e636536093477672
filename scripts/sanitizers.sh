#!/usr/bin/env bash
# Runs the runtime's unit tests that exercise its unsafe code under Miri (undefined behaviour:
# out-of-bounds or misaligned accesses, invalid values, aliasing violations) and the runtime's
# whole lib test suite under AddressSanitizer (the host SIMD kernels: AVX2 FullyConnected and
# Conv2D, checked bit-exact against the reference on random shapes).
#
#   scripts/sanitizers.sh [miri|asan]...     (default: both)
#
# Needs the nightly toolchain with the `miri` and `rust-src` components (installed here when
# missing). Builds go to $EDGELOOP_CACHE/fuzz-target (not the workspace's shared target dir).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${EDGELOOP_CACHE:-$HOME/.cache/edgeloop}"
export CARGO_TARGET_DIR="${SANITIZER_TARGET_DIR:-$CACHE/fuzz-target}"
HOST=x86_64-unknown-linux-gnu
what=("$@")
[ "${#what[@]}" -gt 0 ] || what=(miri asan)

step() { printf '\n==> %s\n' "$*"; }

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
rustup +nightly component add miri rust-src >/dev/null

# Tests that reach the runtime's unsafe code (zero-copy image views in image/bytes.rs, the
# aligned buffers of image/writer.rs, the AVX2 kernels and their dispatch in arch/x86.rs) at a
# size Miri finishes in minutes (on an idle 2-core machine; much longer under load). The
# bit-flip/truncation sweeps, the recorder's drop-counting test and the proptest-heavy kernel
# tests run natively (and under ASan below); Miri would take hours on them.
MIRI_TESTS=(
  image::tensor::tests
  image::tests::golden_header
  image::tests::golden_tiny_outputs
  image::tests::f32_model_runs
  image::tests::reject_table
  image::tests::interpreter_rejects_bad_arenas
  telemetry::decode::tests::rejection_table
  telemetry::decode::tests::round_trips_every_worst_case_record
  telemetry::frame::tests
  telemetry::recorder::tests::records_and_drains_in_order
  telemetry::recorder::tests::peek_handles_wraparound_and_pop_removes
  arch::tests::golden_dot_offset_reference
  arch::tests::dot_offsets_beyond_lanes_fall_back
  ops::fully_connected::simd_tests::bit_exact_avx2
  ops::conv2d::simd_tests::bit_exact_avx2
)

for w in "${what[@]}"; do
  case "$w" in
    miri)
      # AVX2 enabled at compile time: `is_x86_feature_detected!("avx2")` is then true under
      # Miri, which emulates the intrinsics, so the unsafe AVX2 paths run, not only the
      # portable fallback. Few proptest cases: each one is a full kernel run in the interpreter.
      step "Miri: runtime unit tests over its unsafe code (AVX2 on)"
      PROPTEST_CASES="${PROPTEST_CASES:-4}" \
        MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}" \
        RUSTFLAGS="-Ctarget-feature=+avx2,+fma" \
        cargo +nightly miri test -p edgeloop-runtime --features std --lib -- "${MIRI_TESTS[@]}"
      ;;
    asan)
      step "AddressSanitizer: runtime lib tests (std features, AVX2 kernels)"
      RUSTFLAGS="-Zsanitizer=address" RUSTDOCFLAGS="-Zsanitizer=address" \
        ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1}" \
        cargo +nightly test -Zbuild-std --target "$HOST" -p edgeloop-runtime --features std --lib
      ;;
    *)
      echo "unknown check: $w (miri or asan)" >&2
      exit 2
      ;;
  esac
done
step "sanitizers: all passed"
