#!/usr/bin/env bash
# Supply-chain policy (deny.toml): licenses, banned/duplicate crates, sources, and RustSec
# advisories when a copy of the advisory database is available. Takes seconds once cargo-deny is
# installed (cached under $EDGELOOP_CACHE/tools; a cold install compiles it: ~7 CPU-minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE="${EDGELOOP_CACHE:-$HOME/.cache/edgeloop}"
TOOLS="$CACHE/tools"
export PATH="$TOOLS/bin:$PATH"
if ! command -v cargo-deny >/dev/null; then
  CARGO_TARGET_DIR="$CACHE/target-tools/cargo-install" \
    cargo install cargo-deny --locked --root "$TOOLS"
fi

# Licenses, bans, sources: the lock file and the registry's crate metadata only, no network.
# `--offline` metadata needs every platform's dependencies in the registry cache (windows-sys,
# android_system_properties, ... are never built here): fetch them first (crates.io is reachable).
cargo fetch --locked >/dev/null
cargo deny --offline check --hide-inclusion-graph licenses bans sources

# Advisories need the RustSec database (a git clone of github.com/rustsec/advisory-db), at the
# path cargo-deny derives from deny.toml's db-urls. Fetch it when the network allows; otherwise
# use the local copy if there is one, and say how old it is; otherwise say they were not checked.
DB="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/advisory-db-3157b0e258782691"
fetched=no
timeout 120 cargo deny fetch db >/dev/null 2>&1 && fetched=yes
if [ -d "$DB/.git" ]; then
  [ "$fetched" = yes ] || echo "could not update the advisory database (no network); using the local copy"
  db_date=$(git -C "$DB" log -1 --format=%cs)
  echo "checking advisories against the RustSec database as of $db_date ($DB)"
  cargo deny --offline check --hide-inclusion-graph advisories
else
  echo "WARNING: RustSec advisories NOT checked: the advisory database could not be fetched" \
    "(github.com unreachable) and there is no local copy at $DB" >&2
fi
