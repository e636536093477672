#!/usr/bin/env bash
# Cargo runner for the firmware examples: runs the ELF in QEMU's mps2-an386 through the project's
# own tool (`tools/qemu-run`, its own cargo workspace), which decodes the defmt log, and exits with
# the firmware's status. Set EDGELOOP_QEMU_RUN to a prebuilt edgeloop-qemu-run binary to skip
# building it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ -z "${EDGELOOP_QEMU_RUN:-}" ]; then
  tool="$here/../tools/qemu-run"
  # Build from the tool's own folder so this folder's .cargo/config.toml (thumbv7em target) does
  # not apply to it.
  (cd "$tool" && env -u CARGO_BUILD_TARGET cargo build -q --release --target-dir "$tool/target")
  EDGELOOP_QEMU_RUN="$tool/target/release/edgeloop-qemu-run"
fi
exec "$EDGELOOP_QEMU_RUN" "$@"
