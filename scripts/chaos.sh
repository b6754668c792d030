#!/usr/bin/env bash
# The chaos run: clients write while the node is killed (-9) and restarted at random
# moments; then the history checker reads the log and the views and counts lost,
# duplicated and invalid writes (tests/examples/chaos.rs). Exits non-zero on any
# violation.
#
#   scripts/chaos.sh --quick        about a minute per backend (CI runs this)
#   scripts/chaos.sh                a longer run: 5 minutes, 16 clients, 30 kills per backend
#   scripts/chaos.sh --embedded     only the embedded log (also: --kafka)
#
# The Kafka run uses the local broker (scripts/kafka.sh start) or $STOCKROOM_KAFKA.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=300 clients=16 kills=30 backends="embedded kafka"
for arg in "$@"; do
    case "$arg" in
        --quick) seconds=30 clients=8 kills=4 ;;
        --embedded) backends="embedded" ;;
        --kafka) backends="kafka" ;;
        *) sed -n '2,12p' "$0"; exit 2 ;;
    esac
done

cargo build -p stockroom --bin stockroom
cargo build -p stockroom-tests --example chaos
for backend in $backends; do
    flag=""
    if [ "$backend" = kafka ]; then
        [ -n "${STOCKROOM_KAFKA:-}" ] || scripts/kafka.sh start
        flag="--kafka"
    fi
    echo "== chaos on $backend: ${seconds}s, $clients clients, $kills kills"
    cargo run -q -p stockroom-tests --example chaos -- --seconds "$seconds" --clients "$clients" --kills "$kills" $flag
done
