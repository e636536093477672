#!/usr/bin/env bash
# Builds the size probe for thumbv7em-none-eabihf (opt-level "s", LTO) and prints its sections.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/size-probe"
cargo build --release --quiet
ELF="$CARGO_TARGET_DIR/thumbv7em-none-eabihf/release/edgeloop-size-probe"
# llvm-size, or binutils' size (the test command installs binutils; both read ARM ELF files).
if command -v llvm-size >/dev/null; then
  SIZE=llvm-size
elif command -v size >/dev/null; then
  SIZE=size
else
  echo "skipped: neither llvm-size nor size is installed (the ELF is $ELF)"
  exit 0
fi
"$SIZE" -A "$ELF" | grep -E '^(section|\.vector_table|\.text|\.rodata|\.data|\.bss)'
