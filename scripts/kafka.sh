#!/usr/bin/env bash
# The local broker for development, tests and benchmarks: Apache Kafka in KRaft mode,
# assembled from Maven Central (scripts/kafka/pom.xml) into ~/.cache/stockroom.
#
#   scripts/kafka.sh install            fetch the jars once (Maven; about a minute)
#   scripts/kafka.sh start [--nodes N]  install if needed, format new storage, start N
#                                       combined broker+controller nodes (default 1)
#                                       and wait until each serves; the last line
#                                       printed is the bootstrap address (list)
#   scripts/kafka.sh stop               stop every node (data is kept)
#   scripts/kafka.sh restart [--nodes N]  stop, then start (the data survives)
#   scripts/kafka.sh status             one line per node: node N pid PID ADDR running|stopped
#   scripts/kafka.sh wipe               stop and delete the data
#   scripts/kafka.sh kill N             kill -9 node N (chaos tests); `start` brings it back
#   scripts/kafka.sh tool CLASS ARGS... run one of Kafka's tools on the broker's classpath,
#                                       e.g. org.apache.kafka.tools.consumer.ConsoleConsumer
#
# Node i listens on 127.0.0.1:$((PORT + i - 1)) (clients) and 127.0.0.1:$((PORT + 100 + i - 1))
# (controller). One node: replication factor 1. Three nodes: the production settings
# (default.replication.factor=3, min.insync.replicas=2, unclean leader election off).
#
# Environment: STOCKROOM_KAFKA_PORT (9092), STOCKROOM_KAFKA_HOME (data, logs and pid
# files; default ~/.cache/stockroom/kafka-$PORT), STOCKROOM_CACHE (~/.cache/stockroom),
# STOCKROOM_KAFKA_HEAP (1g per node), JAVA (java; Kafka 4.1 needs Java 17..24).
set -euo pipefail

VERSION=4.1.1
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${STOCKROOM_CACHE:-$HOME/.cache/stockroom}
DIST=$CACHE/apache-kafka-$VERSION
PORT=${STOCKROOM_KAFKA_PORT:-9092}
HOME_DIR=${STOCKROOM_KAFKA_HOME:-$CACHE/kafka-$PORT}
HEAP=${STOCKROOM_KAFKA_HEAP:-1g}
JAVA=${JAVA:-java}

say() { printf 'kafka.sh: %s\n' "$*" >&2; }

pick_java() {
    local v
    v=$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
    if [ -z "$v" ] || [ "$v" -lt 17 ] || [ "$v" -ge 25 ]; then
        # Kafka 4.1 needs Java 17 or later and does not run on 25: look for a 17.
        for j in /usr/lib/jvm/java-17-openjdk-amd64/bin/java /usr/lib/jvm/*17*/bin/java; do
            if [ -x "$j" ]; then JAVA=$j; return 0; fi
        done
        say "Kafka $VERSION needs Java 17 to 24; $JAVA is version ${v:-unknown}. Set JAVA=/path/to/java."
        exit 1
    fi
}

install() {
    if [ -f "$DIST/.complete" ]; then return 0; fi
    command -v mvn >/dev/null || { say "Maven (mvn) is needed to fetch Apache Kafka's jars"; exit 1; }
    say "fetching Apache Kafka $VERSION from Maven Central into $DIST"
    rm -rf "$DIST.tmp"
    mvn -q -B -Dstyle.color=never -f "$HERE/kafka/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$DIST.tmp/libs" >&2
    touch "$DIST.tmp/.complete"
    rm -rf "$DIST"
    mv "$DIST.tmp" "$DIST"
}

node_dir() { echo "$HOME_DIR/node-$1"; }
client_port() { echo $((PORT + $1 - 1)); }
controller_port() { echo $((PORT + 100 + $1 - 1)); }
pid_of() { cat "$(node_dir "$1")/pid" 2>/dev/null || true; }
running() {
    local pid
    pid=$(pid_of "$1")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$(client_port "$1")") 2>/dev/null; }
nodes_here() {
    if [ -f "$HOME_DIR/nodes" ]; then cat "$HOME_DIR/nodes"; else echo 0; fi
}
bootstrap() {
    local n=$1 i list=""
    for i in $(seq 1 "$n"); do list="${list:+$list,}127.0.0.1:$(client_port "$i")"; done
    echo "$list"
}

configure() {
    local n=$1 i=$2 dir voters="" j
    dir=$(node_dir "$i")
    for j in $(seq 1 "$n"); do voters="${voters:+$voters,}$j@127.0.0.1:$(controller_port "$j")"; done
    local rf=1 isr=1
    if [ "$n" -ge 3 ]; then rf=3 isr=2; fi
    mkdir -p "$dir"
    cat >"$dir/server.properties" <<EOF
# Written by scripts/kafka.sh: node $i of $n, combined broker and controller (KRaft).
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(client_port "$i"),CONTROLLER://127.0.0.1:$(controller_port "$i")
advertised.listeners=PLAINTEXT://127.0.0.1:$(client_port "$i")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
unclean.leader.election.enable=false
# Groups form at once: tests and restarts do not wait 3 s for more members.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
EOF
    cat >"$dir/log4j2.properties" <<'EOF'
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.state.name = state.change.logger
logger.state.level = warn
logger.request.name = kafka.request.logger
logger.request.level = warn
EOF
}

format() {
    local i=$1 dir
    dir=$(node_dir "$i")
    [ -f "$dir/data/meta.properties" ] && return 0
    "$JAVA" -cp "$DIST/libs/*" -Dlog4j2.configurationFile="$dir/log4j2.properties" -Dkafka.logs.dir="$dir" \
        kafka.tools.StorageTool format -t "$(cat "$HOME_DIR/cluster-id")" -c "$dir/server.properties" >&2
}

launch() {
    local i=$1 dir
    dir=$(node_dir "$i")
    # Close the lock's descriptor in the broker: it must not hold the lock for good.
    nohup "$JAVA" -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -Djava.awt.headless=true -Dkafka.logs.dir="$dir" \
        -Dlog4j2.configurationFile="$dir/log4j2.properties" \
        -cp "$DIST/libs/*" kafka.Kafka "$dir/server.properties" >>"$dir/stdout.log" 2>&1 9>&- &
    echo $! >"$dir/pid"
}

start() {
    local n=$1 i
    pick_java
    install
    local have
    have=$(nodes_here)
    if [ "$have" != 0 ] && [ "$have" != "$n" ]; then
        say "$HOME_DIR holds a $have-node cluster; run 'scripts/kafka.sh wipe' first to start $n nodes"
        exit 1
    fi
    mkdir -p "$HOME_DIR"
    if [ ! -f "$HOME_DIR/cluster-id" ]; then
        "$JAVA" -cp "$DIST/libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1 >"$HOME_DIR/cluster-id"
    fi
    echo "$n" >"$HOME_DIR/nodes"
    local todo=() formats=()
    for i in $(seq 1 "$n"); do
        if running "$i"; then continue; fi
        if answers "$i"; then
            say "something else already listens on 127.0.0.1:$(client_port "$i"); stop it or set STOCKROOM_KAFKA_PORT"
            exit 1
        fi
        configure "$n" "$i"
        todo+=("$i")
    done
    # Formatting starts a JVM a node: side by side, not one after the other.
    for i in "${todo[@]}"; do
        format "$i" &
        formats+=($!)
    done
    for pid in "${formats[@]}"; do
        wait "$pid" || { say "formatting a node's storage failed (see above)"; exit 1; }
    done
    for i in "${todo[@]}"; do launch "$i"; done
    for i in $(seq 1 "$n"); do
        local waited=0
        until answers "$i"; do
            if ! running "$i"; then
                say "node $i exited; the end of its log ($(node_dir "$i")/server.log):"
                tail -20 "$(node_dir "$i")/server.log" >&2 || tail -20 "$(node_dir "$i")/stdout.log" >&2
                exit 1
            fi
            if [ "$waited" -ge 1200 ]; then
                say "node $i did not answer on 127.0.0.1:$(client_port "$i") within 120 s; see $(node_dir "$i")/server.log"
                exit 1
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
    done
    say "Apache Kafka $VERSION: $n node(s) serving (data in $HOME_DIR)"
    bootstrap "$n"
}

stop_node() {
    local i=$1 pid
    pid=$(pid_of "$i")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        # A controlled shutdown moves leadership away first; give it time.
        for _ in $(seq 1 300); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$(node_dir "$i")/pid"
}

stop() {
    local n i
    n=$(nodes_here)
    [ "$n" = 0 ] && return 0
    # Stop the nodes together: one by one, the last ones wait for a quorum that left.
    for i in $(seq 1 "$n"); do
        local pid
        pid=$(pid_of "$i")
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    for i in $(seq 1 "$n"); do stop_node "$i"; done
    say "stopped"
}

status() {
    local n i ok=0
    n=$(nodes_here)
    if [ "$n" = 0 ]; then
        echo "node 1 pid - 127.0.0.1:$(client_port 1) stopped"
        return 1
    fi
    for i in $(seq 1 "$n"); do
        if running "$i"; then
            echo "node $i pid $(pid_of "$i") 127.0.0.1:$(client_port "$i") running"
        else
            echo "node $i pid - 127.0.0.1:$(client_port "$i") stopped"
            ok=1
        fi
    done
    return $ok
}

nodes_arg() {
    # Without --nodes: the size of the cluster already here, else one node.
    local n
    n=$(nodes_here)
    [ "$n" = 0 ] && n=1
    while [ $# -gt 0 ]; do
        case "$1" in
            --nodes) n=${2:?--nodes needs a number}; shift 2 ;;
            --nodes=*) n=${1#--nodes=}; shift ;;
            *) say "unknown argument $1"; exit 2 ;;
        esac
    done
    case "$n" in 1|3) ;; *) say "--nodes is 1 or 3"; exit 2 ;; esac
    echo "$n"
}

verb=${1:-}
[ $# -gt 0 ] && shift
if [ "$verb" = tool ]; then
    pick_java
    install
    class=${1:?tool needs a class name}
    shift
    exec "$JAVA" -Xmx256m -cp "$DIST/libs/*" "$class" "$@"
fi

# Several tests may ask at once: one installs and starts, the others wait for it.
mkdir -p "$CACHE" "$HOME_DIR"
exec 9>"$HOME_DIR.lock"
flock 9

case "$verb" in
    install) pick_java; install ;;
    start) start "$(nodes_arg "$@")" ;;
    stop) stop ;;
    restart) n=$(nodes_arg "$@"); stop; start "$n" ;;
    status) status ;;
    wipe) stop; rm -rf "$HOME_DIR"; say "wiped $HOME_DIR" ;;
    kill)
        i=${1:?kill needs a node number}
        pid=$(pid_of "$i")
        [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
        rm -f "$(node_dir "$i")/pid"
        say "killed node $i"
        ;;
    *) sed -n '2,25p' "$0"; exit 2 ;;
esac
