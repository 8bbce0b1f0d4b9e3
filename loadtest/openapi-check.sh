#!/usr/bin/env bash
# The control plane's OpenAPI document, checked by an independent fuzzer:
# schemathesis generates requests from GET /openapi.json (valid and
# invalid ones) and checks every answer against the same document: no 5xx,
# every status documented, documented content types, bodies valid against
# their schemas. Starts `cadenza control` on a free loopback port over a
# temp SQLite database with a small catalog and a user, and runs once per
# credential: the user token on the user routes, the admin token on
# /v1/admin/*, the worker token on /v1/ingest/*. Exit status: non-zero if
# any run found a failure.
#
#   loadtest/openapi-check.sh                            # builds debug
#   CADENZA=target/debug/cadenza loadtest/openapi-check.sh
#   EXAMPLES=200 SEED=7 loadtest/openapi-check.sh         # a longer, other run
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# Test cases per operation and phase; a fixed seed keeps CI repeatable.
EXAMPLES=${EXAMPLES:-25}
SEED=${SEED:-20260101}
log() { echo "openapi-check: $*" >&2; }

if ! command -v schemathesis >/dev/null 2>&1; then
    log "installing schemathesis (pip)"
    python3 -m pip install --quiet --disable-pip-version-check schemathesis >&2
    hash -r
fi
if [ -z "${CADENZA:-}" ]; then
    log "building debug"
    (cd "$ROOT" && cargo build --bin cadenza >&2)
    TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
    CADENZA=$TARGET/debug/cadenza
fi

WORK=$(mktemp -d)
PID=
cleanup() {
    if [ -n "$PID" ]; then
        kill "$PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
ADMIN=openapi-check-admin-$RANDOM$RANDOM
WORKER=openapi-check-worker-$RANDOM$RANDOM
"$CADENZA" keys generate >"$WORK/keys.toml"
cat >"$WORK/control.toml" <<EOF
listen = "127.0.0.1:$PORT"
admin_token = "$ADMIN"

[database]
url = "sqlite://$WORK/control.db"

[signing]
keys_file = "$WORK/keys.toml"

[ingest]
worker_token = "$WORKER"

# The fuzzer sends thousands of requests as one user: without this most
# would be 429s (documented, but they would hide the routes behind them).
[rate_limits]
enabled = false

[[edges]]
name = "pop-a"
url = "http://127.0.0.1:9"
EOF
control() { "$CADENZA" control --config "$WORK/control.toml" "$@"; }

# Started directly, not through control(): $! must be the server itself
# (a function in the background is a subshell, and killing it would leave
# the server running).
RUST_LOG=warn "$CADENZA" control --config "$WORK/control.toml" >"$WORK/control.log" 2>&1 &
PID=$!
for _ in $(seq 1 150); do
    curl -fsS "$BASE/readyz" >/dev/null 2>&1 && break
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/control.log" >&2; log "cadenza control exited"; exit 1; }
    sleep 0.2
done
curl -fsS "$BASE/readyz" >/dev/null || { cat "$WORK/control.log" >&2; log "not ready after 30 s"; exit 1; }

# A small catalog (tracks without audio yet) and a user: ids the
# document's examples name (`t1`), so some requests find something.
curl -fsS "$BASE/v1/admin/import" -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' -d '{
  "artists": [{"id": "ar1", "name": "Ada"}, {"id": "ar2", "name": "Bo"}],
  "albums": [{"id": "al1", "title": "First", "album_type": "album", "release_date": "2024-02-29", "artist_ids": ["ar1", "ar2"]}],
  "tracks": [{"id": "t1", "album_id": "al1", "title": "One", "track_number": 1, "artist_ids": ["ar1"], "duration_ms": 30000},
             {"id": "t2", "album_id": "al1", "title": "Two", "track_number": 2, "artist_ids": ["ar2"], "duration_ms": 40000}]
}' >/dev/null
printf '%s\n' '{"artist":{"id":"ar3","name":"Cy"}}' '{"album":{"id":"al2","title":"Second","album_type":"single","artist_ids":["ar3"]}}' |
    curl -fsS "$BASE/v1/admin/import/jsonl" -H "authorization: Bearer $ADMIN" \
        -H 'content-type: application/x-ndjson' --data-binary @- >/dev/null
USER_TOKEN=$(control user create --tier premium --country SE --id ana 2>/dev/null)
curl -fsS "$BASE/v1/playlists" -H "authorization: Bearer $USER_TOKEN" -H 'content-type: application/json' \
    -d '{"name": "Mix"}' >/dev/null

status=0
# One worker: concurrent workers trip a thread-safety fault inside the
# generator (hypothesis describing its filters) on two cores.
run() {
    local what=$1 token=$2
    shift 2
    log "schemathesis: $what"
    schemathesis run "$BASE/openapi.json" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
        --phases examples,coverage,fuzzing \
        --max-examples "$EXAMPLES" --seed "$SEED" --workers 1 \
        --header "Authorization: Bearer $token" \
        --suppress-health-check all --warnings off \
        "$@" || status=1
}
# The JSON Lines import has no JSON schema for its body as a whole; the
# Rust test suite covers it.
run "user routes" "$USER_TOKEN" --exclude-path-regex '^/v1/(admin|ingest)/'
run "admin routes" "$ADMIN" --include-path-regex '^/v1/admin/' --exclude-path /v1/admin/import/jsonl
run "worker routes" "$WORKER" --include-path-regex '^/v1/ingest/'

if [ "$status" -ne 0 ]; then
    log "FAILED (server log: the last lines)"
    tail -n 20 "$WORK/control.log" >&2
fi
exit $status
