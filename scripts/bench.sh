#!/usr/bin/env bash
# Benchmarks side by side, in one run on one machine (absolute numbers drift on a
# shared machine; ratios taken in one run hold). Writes target/bench/results.json and
# target/bench/results.md, and each measurement's raw JSON beside them.
#
#   scripts/bench.sh            the full run (about 10 minutes after the build)
#   scripts/bench.sh --quick    a short run that checks the harness (CI runs this)
#
# What runs (BENCHMARKS.md says what each number means):
#   write_embedded   Stockroom on the embedded log, the command mix from K clients
#                    (tests/examples/loadgen.rs), next to the raw append rate of the
#                    embedded log at the same concurrency (topics/examples/append_bench.rs)
#   write_postgres   the same mix as SQL transactions on PostgreSQL (durable commits)
#   write_scaling    how cost grows: the same mix at 1, 8, 32 and 128 clients (--quick: 1
#                    and 8), Stockroom embedded and the PostgreSQL design, a fresh node
#                    and database for each point (target/bench/scaling.png)
#   freshness        write -> visible in search, at half the measured embedded rate
#   ingest           catalog ingestion on the embedded log: a feed of R new products
#                    (JSON lines), then the same feed again, all unchanged, rows/s
#                    (scripts/ingest_bench.py)
#   replay           rebuild of the catalog from a log of N events, next to the raw
#                    read of that log (query/examples/replay.rs), at 1M and 5M events
#                    (--quick: 100k and 200k): how the rate holds as the log grows
#   write_kafka      Stockroom on the local Apache Kafka broker (scripts/kafka.sh): K
#                    clients, and one client; CPU of the node and the broker; next to
#                    the raw rdkafka produce rate to it at the same concurrency
#                    (topics/examples/kafka_produce_bench.rs)
#   freshness_kafka  write -> visible in search on Kafka, at half the measured Kafka rate
#   write_kafka_streams_{eos,eos_c10,alo}  the Kafka Streams peer (tests/peers/kafka-streams,
#                    built here with mvn) on the same broker, driven by the same loadgen:
#                    exactly_once_v2 with commit.interval.ms 100 (the default) and 10, and
#                    at_least_once; CPU of the peer's JVM and the broker. Each run is warmed
#                    up (the JIT) while `peer race` checks one winner per SKU and per last
#                    unit, and is followed by `peer check` (no overselling; the events agree
#                    with the store): a failed check fails the benchmark
#   kafka_transactions  (full run only) the raw cost of Kafka transactions: transactional
#                    producers committing every 1, 16, 128 records vs idempotent ones,
#                    and read_committed vs read_uncommitted consumers' latency
#   search_10k/100k/1m  queries over HTTP, the same queries in process on the tantivy
#                    index (query/examples/search_bench.rs), and on PostgreSQL full-text
#                    search (tsvector + GIN, ts_rank) over the same products (--quick:
#                    1k, 5k and 20k products)
#   outbox           the PostgreSQL outbox connector (tests/examples/outbox_bench.rs) on
#                    a PostgreSQL of its own with wal_level=logical (port 5545): a
#                    backlog drained (acknowledged commands/s), then a steady 200 rows/s
#                    (commit → slot confirmed, p50/p99); and the SQL read model's
#                    freshness (write acknowledged → row in PostgreSQL, p50/p99);
#                    target/bench/outbox.json (results.json's `outbox`), in words in outbox.txt;
#                    then the same backlog and rate with --outbox-mode poll (outbox_poll.json,
#                    results.json's `outbox.poll`)
#   charts           target/bench/latency.png, throughput.png, scaling.png,
#                    search_scaling.png and replay.png (tests/examples/charts.rs)
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
case "${1:-}" in
    --quick) quick=1 ;;
    "") ;;
    -h | --help) sed -n '2,52p' "$0"; exit 0 ;;
    *) sed -n '2,52p' "$0" >&2; exit 2 ;;
esac
if [ "$quick" = 1 ]; then
    seconds=5 clients=16 products=500 events=100000 replay_large=200000 tiny=1000 small=5000 large=20000
    warmup=3 races=5 feed_rows=5000
    scaling_clients="1 8" scaling_seconds=2
else
    seconds=30 clients=32 products=5000 events=1000000 replay_large=5000000 tiny=10000 small=100000 large=1000000
    warmup=10 races=20 feed_rows=100000
    scaling_clients="1 8 32 128" scaling_seconds=10
fi
# Partitions of the Kafka topics: Stockroom's (`stockroom topics create`) and the peer's.
partitions=8
search_clients=4
out=target/bench
mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.jsonl "$out"/*.txt "$out"/*.png "$out"/results.md

cargo build -q --release -p stockroom --bin stockroom
cargo build -q --release -p stockroom-tests --example loadgen
cargo build -q --release -p stockroom-topics --example append_bench
cargo build -q --release -p stockroom-query --example replay
cargo build -q --release -p stockroom-query --example search_bench
cargo build -q --release -p stockroom-topics --example kafka_produce_bench
cargo build -q --release -p stockroom-tests --example charts
cargo build -q --release -p stockroom-tests --example outbox_bench
# The Kafka Streams peer: Maven fetches its dependencies from Maven Central the first
# time (into ~/.m2), then builds offline-fast; its jar and libs land in its target/.
peer_dir=tests/peers/kafka-streams
command -v mvn >/dev/null && command -v java >/dev/null \
    || { echo "bench.sh: the Kafka Streams peer needs Java 17 and Maven (mvn)" >&2; exit 1; }
mvn -q -B -Dstyle.color=never -f "$peer_dir/pom.xml" package >&2
peer_cp="$peer_dir/target/peer.jar:$peer_dir/target/lib/*"
font=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
if [ -z "${STOCKROOM_CHART_FONT:-}" ] && [ ! -f "$font" ]; then
    echo "bench.sh: installing fonts-dejavu-core (the charts' font)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-dejavu-core >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-dejavu-core >&2; }
fi
target_dir="${CARGO_TARGET_DIR:-target}"
bin="$target_dir/release"
scripts/postgres.sh start
pg="host=127.0.0.1 port=${PGPORT:-5544} user=postgres dbname=bench"

work="$(mktemp -d)"
node_pid=""
cleanup() {
    # Wait for it too: a stopping JVM peer still writes its state directory under $work.
    [ -n "$node_pid" ] && { kill "$node_pid" 2>/dev/null; wait "$node_pid" 2>/dev/null; } || true
    rm -rf "$work"
}
trap cleanup EXIT

# Starts `stockroom serve` on data directory $work/NAME (extra arguments follow);
# sets node_pid and url.
start_node() {
    local dir="$work/$1"
    shift
    mkdir -p "$dir"
    "$bin/stockroom" serve --data-dir "$dir" --listen 127.0.0.1:0 "$@" 2> "$dir.log" &
    node_pid=$!
    for _ in $(seq 1 1200); do
        addr="$(cat "$dir/serve.addr" 2>/dev/null || true)"
        if [ -n "$addr" ] && curl -sf "http://$addr/health/readyz" >/dev/null; then
            url="http://$addr"; return 0
        fi
        sleep 0.1
    done
    echo "bench.sh: the node did not start (see $dir.log)" >&2
    cat "$dir.log" >&2
    exit 1
}

stop_node() {
    kill "$node_pid"; wait "$node_pid" 2>/dev/null || true
    node_pid=""
}

echo "== write path, embedded: $clients clients, ${seconds}s" >&2
start_node write
"$bin/examples/loadgen" --url "$url" --clients "$clients" --seconds "$seconds" --products "$products" \
    --cpu-pids "$node_pid" --label write_embedded > "$out/write_embedded.json"
stop_node
"$bin/examples/append_bench" --appenders "$clients" --batch 1 --seconds "$seconds" > "$out/raw_append.json"

echo "== write path, PostgreSQL: $clients clients, ${seconds}s" >&2
psql -q -h 127.0.0.1 -p "${PGPORT:-5544}" -U postgres -c 'DROP DATABASE IF EXISTS bench' -c 'CREATE DATABASE bench' 2>/dev/null
"$bin/examples/loadgen" --postgres "$pg" --clients "$clients" --seconds "$seconds" --products "$products" \
    --cpu-comm postgres --label write_postgres > "$out/write_postgres.json"

echo "== how write cost grows: $scaling_clients clients, ${scaling_seconds}s each" >&2
for c in $scaling_clients; do
    start_node "scale-$c"
    "$bin/examples/loadgen" --url "$url" --clients "$c" --seconds "$scaling_seconds" --products "$products" \
        --cpu-pids "$node_pid" --label "scaling_embedded_$c" > "$out/scaling_embedded_$c.json"
    stop_node
    psql -q -h 127.0.0.1 -p "${PGPORT:-5544}" -U postgres -c 'DROP DATABASE IF EXISTS bench' -c 'CREATE DATABASE bench' 2>/dev/null
    "$bin/examples/loadgen" --postgres "$pg" --clients "$c" --seconds "$scaling_seconds" --products "$products" \
        --cpu-comm postgres --label "scaling_postgres_$c" > "$out/scaling_postgres_$c.json"
done

echo "== ingestion, embedded: $feed_rows rows new, then the same feed again" >&2
start_node ingest
python3 scripts/ingest_bench.py "$url" "$feed_rows" > "$out/ingest.json"
stop_node

echo "== freshness at half the embedded rate" >&2
half="$(python3 -c 'import json,sys; print(max(1, int(json.load(open(sys.argv[1]))["commands_per_s"] / 2)))' "$out/write_embedded.json")"
start_node fresh
"$bin/examples/loadgen" --url "$url" --clients "$clients" --seconds "$seconds" --products "$products" \
    --rate "$half" --freshness --cpu-pids "$node_pid" --label freshness > "$out/freshness.json"
stop_node

for e in "$events" "$replay_large"; do
    echo "== replay of $e events" >&2
    "$bin/examples/replay" --events "$e" 2>/dev/null | tail -1 > "$out/replay_curve_$e.json"
done
cp "$out/replay_curve_$events.json" "$out/replay.json"

echo "== Kafka (local Apache Kafka broker): write path, one client, freshness, raw produce" >&2
broker_pid=""
if [ -z "${STOCKROOM_KAFKA:-}" ]; then
    scripts/kafka.sh start >&2
    kafka=127.0.0.1:9092 kafka_props=() props_file=""
    broker_pid="$(cat "${STOCKROOM_KAFKA_HOME:-$HOME/.cache/stockroom/kafka-${STOCKROOM_KAFKA_PORT:-9092}}/node-1/pid" 2>/dev/null || true)"
    if [ -n "$broker_pid" ] && ! kill -0 "$broker_pid" 2>/dev/null; then broker_pid=""; fi
else
    kafka="$STOCKROOM_KAFKA" kafka_props=() props_file=""
fi
# Which broker, for results.json (an external one is not described).
python3 -c 'import json,sys; print(json.dumps({"local": sys.argv[1] == "1", "bootstrap": sys.argv[2], "broker_pid": sys.argv[3] or None}))' \
    "$([ -z "${STOCKROOM_KAFKA:-}" ] && echo 1 || echo 0)" "$kafka" "$broker_pid" > "$out/kafka_broker.json"
prefix="bench-$$"
"$bin/stockroom" topics create --kafka "$kafka" --topic-prefix "$prefix" --partitions "$partitions" "${kafka_props[@]}" >&2
start_node kafka --kafka "$kafka" --topic-prefix "$prefix" "${kafka_props[@]}"
kafka_cpu="$node_pid${broker_pid:+,$broker_pid}"
"$bin/examples/loadgen" --url "$url" --clients "$clients" --seconds "$seconds" --products 100 \
    --cpu-pids "$kafka_cpu" --label write_kafka > "$out/write_kafka.json"
echo "== Kafka: one client, one command at a time, ${seconds}s" >&2
"$bin/examples/loadgen" --url "$url" --clients 1 --seconds "$seconds" --products 100 \
    --cpu-pids "$kafka_cpu" --label write_kafka_one > "$out/write_kafka_one.json"
echo "== Kafka: freshness at half the Kafka rate" >&2
half="$(python3 -c 'import json,sys; print(max(1, int(json.load(open(sys.argv[1]))["commands_per_s"] / 2)))' "$out/write_kafka.json")"
"$bin/examples/loadgen" --url "$url" --clients "$clients" --seconds "$seconds" --products 100 \
    --rate "$half" --freshness --cpu-pids "$kafka_cpu" --label freshness_kafka > "$out/freshness_kafka.json"
stop_node
echo "== Kafka: raw produce, $clients concurrent single records, acks=all" >&2
# shellcheck disable=SC2086
"$bin/examples/kafka_produce_bench" "$kafka" 0 "$clients" 1 $props_file --seconds "$seconds" > "$out/raw_produce.txt"
tail -1 "$out/raw_produce.txt" > "$out/raw_produce.json"

# The Kafka Streams peer, one configuration at a time, alone with the broker and loadgen.
# run_peer LABEL PEER-ARGS...: starts it on fresh topics and a fresh application id,
# warms it up while `peer race` runs, measures, checks, stops it and deletes its topics.
# (An array, not a function: `"${peer[@]}" serve &` must give the JVM's own pid to --cpu-pids.)
peer=(java -XX:+UseParallelGC -Xms512m -Xmx2g -cp "$peer_cp" dev.stockroom.peer.Main)
run_peer() {
    local label="$1" dir="$work/$1" peer_prefix="peer-$$-$1"
    shift
    mkdir -p "$dir"
    echo "== Kafka Streams peer, $label ($*): $clients clients, ${seconds}s after a ${warmup}s warm-up" >&2
    "${peer[@]}" serve --bootstrap "$kafka" --prefix "$peer_prefix" --partitions "$partitions" --threads "$(nproc)" \
        --linger-ms 0 --state-dir "$dir/state" --addr-file "$dir/addr" "$@" 2> "$dir.log" &
    node_pid=$!
    url=""
    for _ in $(seq 1 1200); do
        addr="$(cat "$dir/addr" 2>/dev/null || true)"
        if [ -n "$addr" ] && curl -sf "http://$addr/health/readyz" >/dev/null; then url="http://$addr"; break; fi
        kill -0 "$node_pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$url" ] || { echo "bench.sh: the peer did not start (see $dir.log)" >&2; cat "$dir.log" >&2; exit 1; }
    "$bin/examples/loadgen" --url "$url" --clients "$clients" --seconds "$warmup" --products 100 \
        --label "${label}_warmup" > "$out/${label}_warmup.json" &
    local warm=$!
    "${peer[@]}" race --url "$url" --rounds "$races" --racers 8 > "$out/${label}_race.json"
    wait "$warm"
    "$bin/examples/loadgen" --url "$url" --clients "$clients" --seconds "$seconds" --products 100 \
        --cpu-pids "$node_pid${broker_pid:+,$broker_pid}" --label "$label" > "$out/$label.json"
    "${peer[@]}" check --url "$url" --bootstrap "$kafka" --prefix "$peer_prefix" > "$out/${label}_check.json"
    stop_node
    "${peer[@]}" cleanup --bootstrap "$kafka" --prefix "$peer_prefix" 2>/dev/null || true
}
run_peer write_kafka_streams_eos --guarantee exactly_once_v2
run_peer write_kafka_streams_eos_c10 --guarantee exactly_once_v2 --commit-interval-ms 10
run_peer write_kafka_streams_alo --guarantee at_least_once

if [ "$quick" = 0 ]; then
    echo "== Kafka transactions: transactional vs idempotent producers, read_committed vs read_uncommitted" >&2
    : > "$out/kafka_transactions.jsonl"
    for batch in 1 16 128; do
        for mode in shared per-task transactional; do
            # shellcheck disable=SC2086
            "$bin/examples/kafka_produce_bench" "$kafka" 0 "$clients" "$batch" $props_file --mode "$mode" \
                --seconds 10 --consume > "$out/kafka_txn_${mode}_b$batch.txt"
            tail -1 "$out/kafka_txn_${mode}_b$batch.txt" >> "$out/kafka_transactions.jsonl"
        done
    done
fi

echo "== outbox connector: a backlog drained, then a steady rate (PostgreSQL with logical decoding, its own)" >&2
outbox_port="${STOCKROOM_OUTBOX_PGPORT:-5545}"
PGPORT="$outbox_port" STOCKROOM_PG_DIR=/tmp/stockroom-bench-pg-logical STOCKROOM_PG_LOGICAL=1 scripts/postgres.sh start >&2
outbox_dsn="host=127.0.0.1 port=$outbox_port user=postgres dbname=postgres"
outbox_table="outbox_bench_$$"
sql_db="sqlmodel_bench_$$"
psql -q -h 127.0.0.1 -p "$outbox_port" -U postgres -c "CREATE DATABASE $sql_db"
sql_dsn="host=127.0.0.1 port=$outbox_port user=postgres dbname=$sql_db"
start_node outbox --outbox "$outbox_dsn" --outbox-table "$outbox_table" --sql-model "$sql_dsn"
"$bin/examples/outbox_bench" --url "$url" --dsn "$outbox_dsn" --table "$outbox_table" \
    --backlog "$([ "$quick" = 1 ] && echo 300 || echo 5000)" --rate 200 --seconds "$seconds" \
    --sql-dsn "$sql_dsn" --writes "$([ "$quick" = 1 ] && echo 100 || echo 1000)" \
    > "$out/outbox.json" 2> "$out/outbox.txt"
stop_node
# The slot would hold WAL for ever: drop it with its table; and the model's database.
psql -q -h 127.0.0.1 -p "$outbox_port" -U postgres \
    -c "SELECT pg_drop_replication_slot('stockroom_postgres_$outbox_table')" \
    -c "DROP TABLE $outbox_table" -c "DROP PUBLICATION stockroom_$outbox_table" \
    -c "DROP DATABASE $sql_db" >/dev/null
cat "$out/outbox.txt" >&2
echo "== outbox connector, --outbox-mode poll: the same backlog and rate, on the same server" >&2
poll_table="outbox_poll_$$"
start_node outbox_poll --outbox "$outbox_dsn" --outbox-table "$poll_table" --outbox-mode poll
"$bin/examples/outbox_bench" --url "$url" --dsn "$outbox_dsn" --table "$poll_table" \
    --backlog "$([ "$quick" = 1 ] && echo 300 || echo 5000)" --rate 200 --seconds "$seconds" \
    > "$out/outbox_poll.json" 2> "$out/outbox_poll.txt"
stop_node
psql -q -h 127.0.0.1 -p "$outbox_port" -U postgres -c "DROP TABLE $poll_table" \
    -c "DELETE FROM stockroom_outbox_position WHERE outbox = '$poll_table'" >/dev/null
cat "$out/outbox_poll.txt" >&2

for size in tiny small large; do
    n="${!size}"
    echo "== search over $n products: HTTP, in process, PostgreSQL ($search_clients clients)" >&2
    sdir="$work/search_$size"
    "$bin/examples/search_bench" --products "$n" --dir "$sdir" > "$out/search_${size}_inprocess.json"
    start_node "search_$size"
    "$bin/examples/loadgen" --url "$url" --search-only --queries "$sdir/queries.txt" --products 0 \
        --clients "$search_clients" --seconds "$seconds" --cpu-pids "$node_pid" --label "search_$size" \
        > "$out/search_${size}_http.json"
    stop_node
    psql -q -h 127.0.0.1 -p "${PGPORT:-5544}" -U postgres -c 'DROP DATABASE IF EXISTS bench' -c 'CREATE DATABASE bench' 2>/dev/null
    "$bin/examples/loadgen" --postgres "$pg" --schema-only --products 0
    psql -q -h 127.0.0.1 -p "${PGPORT:-5544}" -U postgres -d bench \
        -c "\\copy products (sku, name, description, brand, category, price_cents, on_hand) FROM '$sdir/products.tsv'" \
        -c 'VACUUM ANALYZE products'
    "$bin/examples/loadgen" --postgres "$pg" --search-only --queries "$sdir/queries.txt" --products 0 \
        --clients "$search_clients" --seconds "$seconds" --cpu-comm postgres --label "search_${size}_pg" \
        > "$out/search_${size}_pg.json"
done

"$bin/examples/charts" "$out" >&2
python3 scripts/bench_report.py "$out" "$([ "$quick" = 1 ] && echo "scripts/bench.sh --quick" || echo "scripts/bench.sh")"
echo "bench.sh: wrote $out/results.json and $out/results.md" >&2
