#!/usr/bin/env bash
# The chaos run: clients write while processes are killed (-9) and restarted at random
# moments — the command processor, the query node (also while it rebuilds its catalog
# on request) and, on Kafka, the broker; then the history checker reads the log and
# the views and counts lost, duplicated and invalid writes (tests/examples/chaos.rs).
# The node that serves reads also keeps the SQL read model (--sql-model) on a
# PostgreSQL of scripts/postgres.sh (127.0.0.1:$STOCKROOM_CHAOS_PGPORT, 5563 by
# default), and the checker compares its rows with the catalog. Exits non-zero on
# any violation.
#
#   scripts/chaos.sh --quick        about a minute each, embedded and one broker (CI
#                                   runs this); with --cluster: a short cluster run
#   scripts/chaos.sh                the long runs: embedded, Kafka (one broker) and
#                                   Kafka on three brokers, 16 clients each
#   scripts/chaos.sh --embedded     only the embedded log
#   scripts/chaos.sh --kafka        only Kafka: one broker, then three brokers
#   scripts/chaos.sh --cluster      only Kafka on three brokers (broker kill -9s)
#
# The one-broker run uses the local broker (scripts/kafka.sh start, on
# $STOCKROOM_KAFKA_PORT, 9092 by default), which it restarts, or $STOCKROOM_KAFKA
# (then the broker is not restarted). The three-broker run starts a fresh cluster
# with replication factor 3 and min.insync.replicas=2 on $STOCKROOM_CLUSTER_PORT
# (19092..19094 by default), kills the leader of a partition of `events` with -9 and
# starts it again, and stops the cluster at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=300 clients=16 quick=0 only=""
# Faults per backend: kills of the processor, kills of the query node, broker restarts
# or kills, and rebuild requests each followed by a kill of the query node mid-rebuild.
embedded_faults="--kills 30 --rebuilds 30"
kafka_faults="--kills 10 --query-kills 10 --broker-restarts 5 --rebuilds 10"
# On three brokers: kills of the command node and of brokers. A broker kill (10-25 s
# down, then its restart) takes about a minute on 2 cores: a longer run. Kills of the
# query node are left to the runs above (a query node restarted under a steady write
# load does not report ready until the writes pause).
cluster_seconds=600
cluster_faults="--kills 5 --broker-kills 5"
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        --embedded) only="embedded" ;;
        --kafka) only="kafka cluster" ;;
        --cluster) only="cluster" ;;
        *) sed -n '2,24p' "$0"; exit 2 ;;
    esac
done
backends=${only:-embedded kafka cluster}
if [ "$quick" = 1 ]; then
    seconds=30 clients=8
    embedded_faults="--kills 4 --rebuilds 3"
    kafka_faults="--kills 2 --query-kills 2 --broker-restarts 1 --rebuilds 2"
    cluster_seconds=90
    cluster_faults="--kills 1 --broker-kills 1"
    # The cluster takes a minute to start: the quick run (CI) leaves it to
    # tests/tests/replication.rs, which kills a broker under load in every test run,
    # unless asked for by --cluster.
    [ "$only" = cluster ] || backends=${backends/ cluster/}
fi

cargo build -p stockroom --bin stockroom
cargo build -p stockroom-tests --example chaos
# The SQL read model's server (each run makes a database of its own in it).
pg_port="${STOCKROOM_CHAOS_PGPORT:-5563}"
PGPORT="$pg_port" STOCKROOM_PG_DIR="/tmp/stockroom-test-pg-$pg_port" STOCKROOM_PG_LOGICAL=1 scripts/postgres.sh start
for backend in $backends; do
    flag="" faults="$embedded_faults" run=$seconds
    case "$backend" in
        kafka)
            [ -n "${STOCKROOM_KAFKA:-}" ] || scripts/kafka.sh start
            flag="--kafka" faults="$kafka_faults"
            ;;
        cluster) flag="--cluster" faults="$cluster_faults" run=$cluster_seconds ;;
    esac
    echo "== chaos on $backend: ${run}s, $clients clients, $faults"
    # shellcheck disable=SC2086
    cargo run -q -p stockroom-tests --example chaos -- --seconds "$run" --clients "$clients" $faults $flag \
        --postgres "$pg_port"
done
