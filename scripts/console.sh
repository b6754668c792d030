#!/usr/bin/env bash
# The web console (query/console/, served at / by every node with the read side) in a
# real headless browser: Debian's chromium driven by playwright-core from npm.
#
#   scripts/console.sh --quick      both shapes, 24 products each (CI runs this)
#   scripts/console.sh              both shapes, 300 products each
#   scripts/console.sh --embedded   only `stockroom serve` on the embedded log
#   scripts/console.sh --kafka      only a Kafka command node + query node
#
# Installs chromium with apt-get if /usr/bin/chromium is missing and the test's npm
# packages with `npm ci` (no browser download), runs the unit test of the page's
# metrics parser (node --test), then for each shape starts target/debug/stockroom on
# free loopback ports with a temporary data directory, and runs
# tests/console/console.test.mjs against it: it seeds products through the HTTP API,
# then searches, filters, opens a product and rebuilds the catalog from the page.
# The embedded node checks tokens (the page asks for one; a reader token is refused
# operations); the Kafka query node does not. Screenshots: target/console/<shape>-*.png.
# Kafka: $STOCKROOM_KAFKA, else the local broker on 127.0.0.1:9092 (scripts/kafka.sh
# start), with topics of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
products=300 shapes="embedded kafka"
for arg in "$@"; do
    case "$arg" in
        --quick) products=24 ;;
        --embedded) shapes=embedded ;;
        --kafka) shapes=kafka ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

step() { printf '\n== console: %s\n' "$*"; }
start_time=$SECONDS

if [ ! -x /usr/bin/chromium ]; then
    step "installing Debian's chromium (apt-get)"
    as_root=""
    [ "$(id -u)" = 0 ] || as_root=sudo
    $as_root apt-get update -q
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -q chromium
fi

step "npm ci (playwright-core, no browser download)"
(cd tests/console && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --prefer-offline --loglevel=error)

step "unit test of the page's metrics parser (node --test)"
node --test tests/console/metrics.test.mjs

cargo build -q -p stockroom --bin stockroom
bin="${CARGO_TARGET_DIR:-target}/debug/stockroom"
shots="${CARGO_TARGET_DIR:-target}/console"
mkdir -p "$shots"

tmp=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

failed() {
    echo "console.sh: $*" >&2
    for log in "$tmp"/*.log; do
        [ -e "$log" ] || continue
        echo "--- last lines of $(basename "$log")" >&2
        tail -n 30 "$log" >&2
    done
    exit 1
}

# start NAME SUBCOMMAND ARGS...: a node on 127.0.0.1:0; sets $url once it is ready.
start() {
    local name=$1 dir="$tmp/$1"
    shift
    mkdir -p "$dir"
    "$bin" "$@" --listen 127.0.0.1:0 --data-dir "$dir" >"$tmp/$name.log" 2>&1 &
    pids+=($!)
    local pid=$! addr=""
    for _ in $(seq 1 600); do
        kill -0 "$pid" 2>/dev/null || failed "$name exited at start"
        if [ -s "$dir/serve.addr" ]; then
            addr=$(cat "$dir/serve.addr")
            curl -sf "http://$addr/health/readyz" >/dev/null && break
        fi
        sleep 0.1
    done
    curl -sf "http://$addr/health/readyz" >/dev/null || failed "$name did not become ready"
    url="http://$addr"
}

browser_test() {
    step "the browser test, $1 ($products products)"
    SHAPE=$1 CONSOLE_URL=$2 WRITE_URL=$3 CONSOLE_TOKEN=${4:-} SCREENSHOTS=$shots PRODUCTS=$products \
        node tests/console/console.test.mjs || failed "the browser test failed on $1"
}

for shape in $shapes; do
    case "$shape" in
        embedded)
            step "stockroom serve (embedded log, tokens on)"
            token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
            reader=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
            STOCKROOM_TOKENS="admin:$token,reader:$reader" start serve serve
            READER_TOKEN=$reader browser_test embedded "$url" "$url" "$token"
            ;;
        kafka)
            bootstrap=${STOCKROOM_KAFKA:-127.0.0.1:9092}
            if [ -z "${STOCKROOM_KAFKA:-}" ] && ! (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; then
                scripts/kafka.sh start
            fi
            prefix="console-$$-$(date +%s)"
            step "a command node and a query node on Kafka ($bootstrap, topics $prefix.*)"
            "$bin" topics create --kafka "$bootstrap" --topic-prefix "$prefix" --partitions 4 >"$tmp/topics.log" 2>&1 ||
                failed "cannot create the topics"
            kafka=(--kafka "$bootstrap" --topic-prefix "$prefix")
            start command command "${kafka[@]}" --node-id "$prefix-c1"
            write=$url
            start query query "${kafka[@]}" --node-id "$prefix-q1"
            browser_test kafka "$url" "$write"
            ;;
    esac
done

step "passed in $((SECONDS - start_time)) s; screenshots in $shots"
