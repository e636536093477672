#!/usr/bin/env bash
# Installs everything the tests need (Rust targets and components, Debian packages, a pinned
# Python venv) and runs every check and test. This is the project's one test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${EDGELOOP_CACHE:-$HOME/.cache/edgeloop}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
# 2-core machines: keep candle's and gemm's thread pools from oversubscribing.
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-2}"
export CANDLE_NUM_THREADS="${CANDLE_NUM_THREADS:-2}"
# CI builds from a fresh clone each time: incremental state for a throw-away path only fills the disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
mkdir -p "$CACHE"

step() { printf '\n==> %s\n' "$*"; }

step "Disk space for the build"
# A reused target directory grows with every dependency or profile change. Start it over when the
# disk is short (a cold build needs ~12 GiB) or the directory has grown past 30 GiB.
avail_gib=$(( $(df -Pk "$CACHE" | awk 'NR==2 {print $4}') / 1048576 ))
target_gib=0
if [ -d "$CARGO_TARGET_DIR" ]; then
  target_gib=$(( $(du -sk "$CARGO_TARGET_DIR" | cut -f1) / 1048576 ))
fi
echo "free: ${avail_gib} GiB; target dir: ${target_gib} GiB"
if [ "$avail_gib" -lt 15 ] || [ "$target_gib" -gt 30 ]; then
  echo "removing $CARGO_TARGET_DIR to start the build over"
  rm -rf "$CARGO_TARGET_DIR"
  avail_gib=$(( $(df -Pk "$CACHE" | awk 'NR==2 {print $4}') / 1048576 ))
fi
if [ "$avail_gib" -lt 12 ]; then
  echo "error: only ${avail_gib} GiB free under $CACHE; the build and tests need about 12 GiB" >&2
  exit 1
fi

step "Rust targets and components"
rustup component add rustfmt clippy >/dev/null
rustup target add thumbv7em-none-eabihf thumbv6m-none-eabi >/dev/null

step "Debian packages"
need_apt=()
for pkg in $(cat scripts/apt-packages.txt); do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

step "Python venv (pinned: python/requirements.txt)"
VENV="$CACHE/venv"
REQ_HASH="$(sha256sum python/requirements.txt | cut -c1-16)"
if [ ! -f "$VENV/.req-$REQ_HASH" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r python/requirements.txt
  touch "$VENV/.req-$REQ_HASH"
fi
export EDGELOOP_PYTHON="$VENV/bin/python"
ORT_DYLIB_PATH="$(ls "$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1)"
export ORT_DYLIB_PATH

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (workspace, all targets, -D warnings)"
cargo clippy --workspace --all-targets -- -D warnings

step "runtime builds for microcontrollers with no allocator (no features, then each feature alone)"
for target in thumbv7em-none-eabihf thumbv6m-none-eabi; do
  cargo build -p edgeloop-runtime --release --target "$target"
  cargo build -p edgeloop-runtime --release --target "$target" --features defmt
done

step "tests"
cargo test --workspace

for extra in scripts/test.d/*.sh; do
  [ -e "$extra" ] || continue
  step "$extra"
  bash "$extra"
done

step "all checks passed"
