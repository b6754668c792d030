#!/usr/bin/env bash
# A PostgreSQL server on loopback for the benchmarks (scripts/bench.sh): Debian's
# packages (installed here if missing), a data directory of its own, durable commits
# (fsync on, synchronous_commit on), trust authentication on 127.0.0.1 only.
#
#   scripts/postgres.sh start     install if needed, initdb once, start on 127.0.0.1:$PGPORT (5544)
#   scripts/postgres.sh stop
#   scripts/postgres.sh status
#
# Environment: PGPORT (5544) and STOCKROOM_PG_DIR (/tmp/stockroom-bench-pg) choose
# another server (the tests start their own, never the benchmark's);
# STOCKROOM_PG_LOGICAL=1 starts it with wal_level=logical, for the outbox connector's
# replication slots.
set -euo pipefail

PORT="${PGPORT:-5544}"
DIR="${STOCKROOM_PG_DIR:-/tmp/stockroom-bench-pg}"

bin_dir() {
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/postgres" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
    done
    return 1
}

install() {
    if bin_dir >/dev/null; then return 0; fi
    echo "postgres.sh: installing PostgreSQL from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q postgresql >&2
    bin_dir >/dev/null || { echo "postgres.sh: no PostgreSQL binaries after install" >&2; exit 1; }
}

# PostgreSQL refuses to run as root: run its commands as the postgres user then.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    install
    local bin; bin="$(bin_dir)"
    if as_pg "$bin/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
        echo "postgres.sh: already running on 127.0.0.1:$PORT"; return 0
    fi
    if [ ! -f "$DIR/PG_VERSION" ]; then
        mkdir -p "$DIR"
        [ "$(id -u)" = 0 ] && chown postgres "$DIR"
        as_pg "$bin/initdb" -D "$DIR" -U postgres --auth=trust >/dev/null
    fi
    local extra=""
    if [ "${STOCKROOM_PG_LOGICAL:-0}" = 1 ]; then
        extra="-c wal_level=logical -c max_replication_slots=64 -c max_wal_senders=16"
    fi
    as_pg "$bin/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w start -o \
        "-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=200 -c shared_buffers=256MB $extra" >/dev/null
    echo "postgres.sh: running on 127.0.0.1:$PORT (data in $DIR)"
}

stop() {
    local bin; bin="$(bin_dir)" || return 0
    as_pg "$bin/pg_ctl" -D "$DIR" -w stop -m fast >/dev/null 2>&1 || true
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) bin="$(bin_dir)" && as_pg "$bin/pg_ctl" -D "$DIR" status ;;
    *) sed -n '2,9p' "$0"; exit 2 ;;
esac
