#!/usr/bin/env bash
# Runtime extras (issue 2): build the Cortex-M4F size probe (only FullyConnected + Softmax linked,
# opt-level "s" + LTO) and print its section sizes. A report, not an assertion.
set -euo pipefail
cd "$(dirname "$0")/../.."
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}" runtime/size-probe/measure.sh
