#!/usr/bin/env bash
# The one test command (README, "Test"). CI runs exactly this (.ci/run).
#
#   scripts/test.sh          format, lints, and every test of the workspace
#
# Tests use real parts: sled files, a tantivy index, the real binary on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "build the binary the end-to-end tests start"
cargo build -p stockroom --bin stockroom

step "cargo test"
cargo test --workspace

echo
echo "all tests passed"
