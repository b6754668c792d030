#!/usr/bin/env bash
# Generated requests against every documented endpoint (schemathesis, from PyPI):
# no answer may be a server error, and every answer must match /openapi.json
# (status code, content type, body schema); invalid requests must be rejected.
#
#   scripts/fuzz.sh --quick     about 30 examples per operation and phase (CI runs this)
#   scripts/fuzz.sh             300 per operation and phase
#
# Not checked: that every schema-valid request is accepted (some rules, like a
# GTIN's check digit or an ISO currency code, are not expressible in the schema).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
    --quick) examples=30 ;;
    "") examples=300 ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac

export PATH="$HOME/.local/bin:$PATH"
if ! command -v st >/dev/null 2>&1; then
    echo "fuzz.sh: installing schemathesis (PyPI)" >&2
    python3 -m pip install -q --user schemathesis 2>/dev/null || python3 -m pip install -q schemathesis
fi

cargo build -q -p stockroom --bin stockroom
bin="${CARGO_TARGET_DIR:-target}/debug/stockroom"
data=$(mktemp -d)
log="$data/server.log"
"$bin" serve --data-dir "$data/data" --listen 127.0.0.1:0 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
addr=""
for _ in $(seq 1 300); do
    addr=$(grep -o 'addr=[0-9.:]*' "$log" | head -1 | cut -d= -f2 || true)
    [ -n "$addr" ] && curl -sf "http://$addr/health/readyz" >/dev/null && break
    sleep 0.1
done
[ -n "$addr" ] || { echo "fuzz.sh: the server did not start" >&2; cat "$log" >&2; exit 1; }

SCHEMATHESIS_HOOKS=scripts.fuzz_hooks st run "http://$addr/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection \
    --max-examples "$examples" --request-timeout 10 --no-color
