#!/usr/bin/env bash
# Builds the size probe for thumbv7em-none-eabihf (opt-level "s", LTO) and prints its sections.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/size-probe"
cargo build --release --quiet
ELF="$CARGO_TARGET_DIR/thumbv7em-none-eabihf/release/edgeloop-size-probe"
if command -v llvm-size >/dev/null; then
  llvm-size -A "$ELF" | grep -E '^(section|\.vector_table|\.text|\.rodata|\.data|\.bss)'
else
  echo "skipped: llvm-size not installed (the ELF is $ELF)"
fi
