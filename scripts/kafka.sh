#!/usr/bin/env bash
# The local Kafka-API broker for development and tests: Tansu 0.6.0 with sqlite storage.
#
#   scripts/kafka.sh install    build Tansu once into the cache (about 7-25 minutes), and kafka-python
#   scripts/kafka.sh start      install if needed, start on 127.0.0.1:$PORT (default 9092), wait until it answers
#   scripts/kafka.sh stop       stop it (data is kept)
#   scripts/kafka.sh restart    stop and start (the data survives: sqlite file)
#   scripts/kafka.sh status     running or not; exit 0 if running
#   scripts/kafka.sh wipe       stop and delete its data
#
# Environment: STOCKROOM_KAFKA_PORT (9092), STOCKROOM_KAFKA_HOME (where data, pid and
# log live; default ~/.cache/stockroom/kafka-$PORT), STOCKROOM_CACHE (~/.cache/stockroom).
# Tansu listens on IPv4 only: always use 127.0.0.1, never localhost.
set -euo pipefail

VERSION=0.6.0
CACHE=${STOCKROOM_CACHE:-$HOME/.cache/stockroom}
ROOT=$CACHE/tansu-$VERSION
BIN=$ROOT/bin/tansu
PORT=${STOCKROOM_KAFKA_PORT:-9092}
HOME_DIR=${STOCKROOM_KAFKA_HOME:-$CACHE/kafka-$PORT}
PIDFILE=$HOME_DIR/tansu.pid
LOG=$HOME_DIR/tansu.log

say() { printf 'kafka.sh: %s\n' "$*" >&2; }

install() {
    if [ ! -x "$BIN" ]; then
        say "building Tansu $VERSION (libsql feature) into $ROOT; this takes a while, once"
        mkdir -p "$ROOT"
        cargo install tansu --version "$VERSION" --locked --features libsql --root "$ROOT"
    fi
    if ! python3 -c 'import kafka' 2>/dev/null; then
        say "installing kafka-python (PyPI) for the wire-compatibility test (scripts/kafka_dump.py)"
        python3 -m pip install -q --user kafka-python 2>/dev/null || python3 -m pip install -q kafka-python
    fi
}

running() {
    [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

answers() {
    # A TCP connect is enough: Tansu accepts once it is ready to serve.
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

start() {
    install
    if running; then
        say "already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
        return 0
    fi
    if answers; then
        say "something else already listens on 127.0.0.1:$PORT; using it"
        return 0
    fi
    mkdir -p "$HOME_DIR"
    # The sqlite path is relative to the working directory (absolute paths are refused).
    (
        cd "$HOME_DIR"
        nohup "$BIN" broker \
            --listener-url "tcp://127.0.0.1:$PORT" \
            --advertised-listener-url "tcp://127.0.0.1:$PORT" \
            --storage-engine "sqlite://tansu.db" >>"$LOG" 2>&1 9>&- &
        echo $! >"$PIDFILE"
    )
    for _ in $(seq 1 150); do
        if answers; then
            say "started on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), data in $HOME_DIR)"
            return 0
        fi
        if ! running; then
            say "Tansu exited; the end of its log:"
            tail -20 "$LOG" >&2
            return 1
        fi
        sleep 0.2
    done
    say "Tansu did not answer on 127.0.0.1:$PORT within 30 s; see $LOG"
    return 1
}

stop() {
    if running; then
        local pid
        pid=$(cat "$PIDFILE")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        say "stopped"
    fi
    rm -f "$PIDFILE"
}

# Several tests may ask at once: one builds and starts, the others wait for it.
mkdir -p "$CACHE"
exec 9>"$CACHE/kafka.lock"
flock 9

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    restart) stop; start ;;
    status)
        if running; then echo "running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"; else echo "not running"; exit 1; fi
        ;;
    wipe) stop; rm -rf "$HOME_DIR"; say "wiped $HOME_DIR" ;;
    *) sed -n '2,13p' "$0"; exit 2 ;;
esac
