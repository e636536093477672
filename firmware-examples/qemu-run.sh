#!/usr/bin/env bash
# Cargo runner for the firmware examples: runs the ELF in QEMU's mps2-an386 through the project's
# own tool (`edgeloop qemu-run`), which decodes the defmt log, and exits with the firmware's status.
# Set EDGELOOP to a prebuilt edgeloop binary to skip building it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ -n "${EDGELOOP:-}" ]; then
  exec "$EDGELOOP" qemu-run "$@"
fi
exec cargo run -q --release --manifest-path "$here/../Cargo.toml" --bin edgeloop -- qemu-run "$@"
