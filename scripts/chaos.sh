#!/usr/bin/env bash
# The chaos run: clients write while processes are killed (-9) and restarted at random
# moments — the command processor, the query node (also while it rebuilds its catalog
# on request) and, on Kafka, the broker; then the history checker reads the log and
# the views and counts lost, duplicated and invalid writes (tests/examples/chaos.rs).
# Exits non-zero on any violation.
#
#   scripts/chaos.sh --quick        about a minute per backend (CI runs this)
#   scripts/chaos.sh                a longer run: 5 minutes, 16 clients per backend
#   scripts/chaos.sh --embedded     only the embedded log (also: --kafka)
#
# The Kafka run uses the local broker (scripts/kafka.sh start) or $STOCKROOM_KAFKA
# (then the broker is not restarted).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=300 clients=16 backends="embedded kafka"
# Faults per backend: kills of the processor, kills of the query node, broker restarts,
# and rebuild requests each followed by a kill of the query node mid-rebuild.
embedded_faults="--kills 30 --rebuilds 30"
kafka_faults="--kills 10 --query-kills 10 --broker-restarts 5 --rebuilds 10"
for arg in "$@"; do
    case "$arg" in
        --quick)
            seconds=30 clients=8
            embedded_faults="--kills 4 --rebuilds 3"
            kafka_faults="--kills 2 --query-kills 2 --broker-restarts 1 --rebuilds 2"
            ;;
        --embedded) backends="embedded" ;;
        --kafka) backends="kafka" ;;
        *) sed -n '2,13p' "$0"; exit 2 ;;
    esac
done

cargo build -p stockroom --bin stockroom
cargo build -p stockroom-tests --example chaos
for backend in $backends; do
    flag="" faults="$embedded_faults"
    if [ "$backend" = kafka ]; then
        [ -n "${STOCKROOM_KAFKA:-}" ] || scripts/kafka.sh start
        flag="--kafka" faults="$kafka_faults"
    fi
    echo "== chaos on $backend: ${seconds}s, $clients clients, $faults"
    # shellcheck disable=SC2086
    cargo run -q -p stockroom-tests --example chaos -- --seconds "$seconds" --clients "$clients" $faults $flag
done
