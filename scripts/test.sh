#!/usr/bin/env bash
# The one test command (README, "Test"). CI runs exactly this (.ci/run).
#
#   scripts/test.sh          format, lints, and every test of the workspace
#
# Tests use real parts: sled files, a tantivy index, the real binary on loopback,
# and a real Apache Kafka broker (KRaft), which scripts/kafka.sh assembles from Maven
# Central into ~/.cache/stockroom (about a minute, once) and starts.
# Set STOCKROOM_KAFKA=host:port to test against another broker instead.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "build the binary the end-to-end tests start"
cargo build -p stockroom --bin stockroom

if [ -z "${STOCKROOM_KAFKA:-}" ]; then
    step "the local Apache Kafka broker (scripts/kafka.sh start)"
    scripts/kafka.sh start
fi

step "cargo test"
cargo test --workspace

step "chaos, quick (scripts/chaos.sh --quick): kill -9 under load, then check the history"
scripts/chaos.sh --quick

step "the web console in headless chromium (scripts/console.sh --quick): search, a product, a rebuild"
scripts/console.sh --quick

step "generated requests against /openapi.json (scripts/fuzz.sh --quick, schemathesis)"
scripts/fuzz.sh --quick

step "benchmarks, quick (scripts/bench.sh --quick): the harness runs and writes its results"
scripts/bench.sh --quick
for f in target/bench/results.json target/bench/results.md target/bench/latency.png target/bench/throughput.png; do
    [ -s "$f" ] || { echo "bench.sh wrote no $f"; exit 1; }
done

echo
echo "all tests passed"
