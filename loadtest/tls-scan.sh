#!/usr/bin/env bash
# TLS of the edge's public listener, checked by an independent scanner:
# sslyze against Mozilla's "intermediate" profile (or PROFILE=modern|old).
# Starts `cadenza dev --tls` on free loopback ports in a temp dir, so the
# edge runs exactly as configured in production (rustls, ALPN h2 +
# http/1.1), with a certificate from the stack's own dev CA, which sslyze
# is given as the trust anchor. Exit status: sslyze's (0 = compliant).
#
#   loadtest/tls-scan.sh
#   CADENZA=target/debug/cadenza loadtest/tls-scan.sh   # skip the release build
#   PROFILE=modern loadtest/tls-scan.sh                 # TLS 1.3 only: expected to fail, we offer 1.2
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PROFILE=${PROFILE:-intermediate}
log() { echo "tls-scan: $*" >&2; }

if ! command -v sslyze >/dev/null 2>&1; then
    log "installing sslyze (pip)"
    python3 -m pip install --quiet --disable-pip-version-check sslyze >&2
    hash -r
fi
if [ -z "${CADENZA:-}" ]; then
    log "building release"
    (cd "$ROOT" && cargo build --release --bin cadenza >&2)
    TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
    CADENZA=$TARGET/release/cadenza
fi

WORK=$(mktemp -d)
DEV_PID=
cleanup() {
    if [ -n "$DEV_PID" ]; then
        kill "$DEV_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$DEV_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$DEV_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

RUST_LOG=warn "$CADENZA" dev --tls --data-dir "$WORK/data" --base-port 0 --set demo.tracks=1 \
    >"$WORK/dev.log" 2>&1 &
DEV_PID=$!
for _ in $(seq 1 600); do
    [ -s "$WORK/data/stack.json" ] && break
    kill -0 "$DEV_PID" 2>/dev/null || { cat "$WORK/dev.log" >&2; log "cadenza dev exited"; exit 1; }
    sleep 0.2
done
[ -s "$WORK/data/stack.json" ] || { log "no stack.json after 120 s"; exit 1; }
EDGE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["edges"][0]["url"])' "$WORK/data/stack.json")
CA=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tls_ca_file"])' "$WORK/data/stack.json")
TARGET_HP=${EDGE#https://}
log "scanning $EDGE against Mozilla's $PROFILE profile (trust anchor: the dev CA)"

set +e
sslyze --mozilla_config="$PROFILE" --certinfo_ca_file "$CA" "$TARGET_HP" >"$WORK/sslyze.txt" 2>&1
status=$?
set -e
# The protocol and cipher lines, then the verdict.
grep -E '^ \* (SSL|TLS) [0-9.]+ Cipher Suites|rejected all|accepted the following|^        TLS_|Supported curves|Supplied CA file' \
    "$WORK/sslyze.txt" || true
sed -n '/COMPLIANCE AGAINST/,$p' "$WORK/sslyze.txt"
exit $status
