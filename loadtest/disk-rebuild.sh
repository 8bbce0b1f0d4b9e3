#!/usr/bin/env bash
# Disk tier start-up: how long a real `cadenza edge` takes to rebuild its
# index over COUNT slice files, how soon it serves while it does, and that
# what it indexed comes back from disk. See loadtest/README.md.
#
#   loadtest/disk-rebuild.sh                 # COUNT=1000000
#   COUNT=100000 loadtest/disk-rebuild.sh
#
# Environment: COUNT [1000000] slice files; PAYLOAD [1024] bytes each (the
# walk reads names only, so size does not change its cost; small files keep
# the benchmark's disk use to ~4 KiB a file); SAMPLE [200] of them also put
# in the store and fetched through the edge afterwards; COLD [1] also run
# with the dentry/inode caches dropped first (root); CADENZA binary; KEEP.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
COUNT=${COUNT:-1000000}
PAYLOAD=${PAYLOAD:-1024}
SAMPLE=${SAMPLE:-200}
COLD=${COLD:-1}
KEEP=${KEEP:-0}
SLICE=262144
log() { echo "disk-rebuild: $*" >&2; }
die() { log "error: $*"; exit 1; }

if [ -z "${CADENZA:-}" ]; then
    (cd "$ROOT" && cargo build --release --bin cadenza) || die "cargo build failed"
    CADENZA=${CARGO_TARGET_DIR:-$ROOT/target}/release/cadenza
fi
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/cadenza-disk-rebuild.XXXXXX")
EDGE_PID=
cleanup() {
    [ -n "$EDGE_PID" ] && kill "$EDGE_PID" 2>/dev/null && wait "$EDGE_PID" 2>/dev/null
    if [ "$KEEP" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

log "writing $COUNT slice files under $WORK/cache (df: $(df --output=fstype,avail -h "$WORK" | tail -n1))"
t0=$(date +%s.%N)
python3 "$HERE/lib/slicegen.py" "$WORK/cache" "$COUNT" "$SLICE" "$PAYLOAD" "$WORK/store" "$SAMPLE" >"$WORK/sample.ids"
log "written in $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s"
"$CADENZA" keys generate --id bench >"$WORK/keys.toml"
TOKEN=$("$CADENZA" keys token)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() { # run LABEL
    local label=$1 p a start first ready stats
    p=$(port)
    a=$(port)
    start=$(date +%s%N)
    RUST_LOG=warn "$CADENZA" edge --set "listen=127.0.0.1:$p" --set "admin.listen=127.0.0.1:$a" \
        --set "admin.token=$TOKEN" --set "origin.url=file://$WORK/store" \
        --set "signing.keys_file=$WORK/keys.toml" --set "cache.slice=${SLICE}B" \
        --set "disk.path=$WORK/cache" --set "disk.max_size=$((COUNT * 12 / 10))KiB" >"$WORK/edge-$label.log" 2>&1 &
    EDGE_PID=$!
    local url
    url="http://127.0.0.1:$p$(head -n1 "$WORK/sample.ids" | xargs -I{} "$CADENZA" sign --keys-file "$WORK/keys.toml" --file-id {} --user bench --ttl 1h)"
    for _ in $(seq 1 2000); do
        curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && break
        sleep 0.005
    done
    first=$((($(date +%s%N) - start) / 1000000))
    for _ in $(seq 1 6000); do
        stats=$(curl -fsS --max-time 1 -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$a/admin/stats" 2>/dev/null || true)
        [[ $stats == *'"index_ready":true'* ]] && break
        sleep 0.01
    done
    ready=$((($(date +%s%N) - start) / 1000000))
    [[ $stats == *'"index_ready":true'* ]] || die "index not ready after 60 s"
    local indexed millis
    indexed=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['disk']['indexed_at_start'])" "$stats")
    # The index's memory: the whole process's resident set once it is built.
    local rss
    rss=$(awk '/^VmRSS/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$EDGE_PID/status")
    millis=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['disk']['rebuild_millis'])" "$stats")
    # The sample comes back from disk, byte for byte (skip the first id: the
    # readiness probe may have fetched it from the store before the walk
    # reached it).
    local disk=0 n=0
    while read -r id; do
        n=$((n + 1))
        [ "$n" = 1 ] && continue
        local u x
        u="http://127.0.0.1:$p$("$CADENZA" sign --keys-file "$WORK/keys.toml" --file-id "$id" --user bench --ttl 1h)"
        x=$(curl -fsS -D - -o "$WORK/got" "$u" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache" {print $2}')
        cmp -s "$WORK/got" "$WORK/store/audio/$id.ogg" || die "$id: body differs from the store"
        [ "$x" = HIT-DISK ] && disk=$((disk + 1))
    done <"$WORK/sample.ids"
    echo "| $label | $COUNT | $indexed | $millis ms | $first ms | $ready ms | $rss | $disk / $((n - 1)) |"
    kill "$EDGE_PID"
    wait "$EDGE_PID" 2>/dev/null || true
    EDGE_PID=
}

echo "## Disk tier index rebuild"
echo
echo "- $(date -u +%Y-%m-%dT%H:%MZ), cadenza $(cd "$ROOT" && git rev-parse --short HEAD), $(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(df --output=fstype "$WORK" | tail -n1) on $(df --output=source "$WORK" | tail -n1)"
echo "- rebuild = the edge's own walk time (\`rebuild_millis\`); first 200 = from spawning the process to its first answered audio request; ready = to \`index_ready\` seen by polling /admin/stats"
echo
echo "- disk.max_size = 1.2 KiB per file (the files weigh ~1.1 KiB), so the index is sized as for real slices; RSS = the edge process's resident memory with the index built"
echo
echo "| caches | slice files | indexed | rebuild | first 200 | ready | edge RSS | sample from disk |"
echo "|---|---|---|---|---|---|---|---|"
run warm
if [ "$COLD" = 1 ]; then
    sync
    echo 2 >/proc/sys/vm/drop_caches 2>/dev/null || die "COLD=1 needs root (or COLD=0)"
    run "cold (dentries and inodes dropped)"
fi
