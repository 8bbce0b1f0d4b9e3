#!/usr/bin/env bash
# Hit path: the cadenza edge against a tuned nginx proxy_cache + slice, both
# in front of the same origin, both fully warmed, driven one after the other
# by the same wrk load. See loadtest/README.md.
#
#   loadtest/setup.sh                 # once: nginx (with slice), wrk
#   loadtest/bench-hit.sh             # DURATION=20s CONNECTIONS=64 by default
#   DURATION=5s WARMUP=1s loadtest/bench-hit.sh
#
# Environment (defaults in brackets):
#   DURATION [20s] WARMUP [3s]    measured run and discarded warm-up run (wrk -d)
#   CONNECTIONS [64] THREADS [2]  wrk -c / -t, the same for both servers
#   SLICE [256KiB]                slice size of both caches (edge cache.slice, nginx slice)
#   BIG_COUNT [16] BIG_SIZE [8MiB]      objects the range scenario reads
#   SMALL_COUNT [16] SMALL_SIZE [3MiB]  objects the whole-object scenario reads
#   RANGE_LEN [65536] ALIGN [0]   bytes per range; 1 = offsets multiple of RANGE_LEN
#   PIN [shared]                  shared: servers and wrk all float on every core;
#                                 split: servers on the first half of the cores, wrk on the rest
#   SCENARIOS ["range64k whole3m"]  SERVERS ["edge nginx"]; edge-disk = the edge with a
#                                 one-slice memory tier and a disk tier, so hits come from disk
#   DROP_CACHES [0]               1 = drop the page cache before each measured run (root) and
#                                 skip the warm-up run: hits start cold on disk
#   CADENZA                       use this cadenza binary instead of building one
#   KEEP [0]                      1 = keep the work dir (logs, configs) and print its path
#   OUT                           also write the report (markdown) to this file
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
HC="python3 $HERE/lib/hitcheck.py"
LUA="$HERE/lib/wrk-audio.lua"

DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
SLICE=${SLICE:-256KiB}
BIG_COUNT=${BIG_COUNT:-16}
BIG_SIZE=${BIG_SIZE:-8MiB}
SMALL_COUNT=${SMALL_COUNT:-16}
SMALL_SIZE=${SMALL_SIZE:-3MiB}
RANGE_LEN=${RANGE_LEN:-65536}
ALIGN=${ALIGN:-0}
PIN=${PIN:-shared}
SCENARIOS=${SCENARIOS:-"range64k whole3m"}
SERVERS=${SERVERS:-"edge nginx"}
KEEP=${KEEP:-0}
OUT=${OUT:-}
DROP_CACHES=${DROP_CACHES:-0}
# nginx I/O knobs. The defaults are what measured best here with the cache
# in the page cache (loadtest/README.md): sendfile on; aio threads hands
# every hit to a thread pool and halved req/s; tcp_nopush with slice and
# keep-alive stalled each response ~40 ms (delayed ACK).
NGINX_SENDFILE=${NGINX_SENDFILE:-on}
NGINX_AIO=${NGINX_AIO:-off}
NGINX_NOPUSH=${NGINX_NOPUSH:-off}
NGINX_EXTRA=${NGINX_EXTRA:-} # more directives for nginx's http {} block

log() { echo "bench-hit: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# "8MiB", "256KiB", "256k", "3M", "65536" -> bytes (binary units).
to_bytes() {
    local v=$1 n unit
    [[ $v =~ ^([0-9]+)([A-Za-z]*)$ ]] || die "bad size $v"
    n=${BASH_REMATCH[1]}
    unit=${BASH_REMATCH[2]}
    case "$unit" in
    "" | B) echo "$n" ;;
    k | K | KiB | KB) echo $((n * 1024)) ;;
    m | M | MiB | MB) echo $((n * 1024 * 1024)) ;;
    g | G | GiB | GB) echo $((n * 1024 * 1024 * 1024)) ;;
    *) die "bad size unit in $v" ;;
    esac
}

SLICE_BYTES=$(to_bytes "$SLICE")
BIG_BYTES=$(to_bytes "$BIG_SIZE")
SMALL_BYTES=$(to_bytes "$SMALL_SIZE")
((BIG_BYTES >= RANGE_LEN)) || die "BIG_SIZE must be at least RANGE_LEN"

for tool in nginx wrk python3 curl taskset; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || die "$tool missing: run loadtest/setup.sh"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ $("$NGINX" -V 2>&1) == *--with-http_slice_module* ]] || die "$NGINX has no slice module: run loadtest/setup.sh"

# --- build -------------------------------------------------------------------
if [ -z "${CADENZA:-}" ]; then
    log "building release (cargo build --release --bin cadenza)"
    (cd "$ROOT" && cargo build --release --bin cadenza) || die "cargo build failed"
    TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
    [[ $TARGET == /* ]] || TARGET=$ROOT/$TARGET
    CADENZA=$TARGET/release/cadenza
fi
[ -x "$CADENZA" ] || die "no cadenza binary at $CADENZA"

# --- CPUs --------------------------------------------------------------------
NCPU=$(nproc)
case "$PIN" in
shared)
    SERVER_CPUS="0-$((NCPU - 1))"
    WRK_CPUS=$SERVER_CPUS
    SERVER_NCPU=$NCPU
    ;;
split)
    ((NCPU >= 2)) || die "PIN=split needs at least 2 cores"
    half=$((NCPU / 2))
    SERVER_CPUS="0-$((half - 1))"
    WRK_CPUS="$half-$((NCPU - 1))"
    SERVER_NCPU=$half
    ;;
*) die "PIN must be shared or split" ;;
esac

NOFILE=65536
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$NOFILE" ]; then NOFILE=$hard; fi

# --- work dir and cleanup ----------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cadenza-bench-hit.XXXXXX")
PIDS=()
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "$KEEP" = 1 ] || [ "$rc" -ne 0 ]; then
        log "work dir kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop() { # stop PID: TERM, wait, drop from PIDS
    local pid=$1 keep=()
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

wait_http() { # wait_http URL PID LOG: until URL answers 2xx, at most 20 s
    local url=$1 pid=$2 logf=$3
    for _ in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || {
            tail -n 20 "$logf" >&2
            die "process $pid exited while waiting for $url"
        }
        if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    tail -n 20 "$logf" >&2
    die "$url did not answer within 20 s"
}

# --- objects, keys, URLs -----------------------------------------------------
log "work dir $WORK; generating $BIG_COUNT x $BIG_SIZE and $SMALL_COUNT x $SMALL_SIZE objects"
STORE=$WORK/store
$HC gen "$STORE" "$BIG_COUNT" "$BIG_BYTES" >"$WORK/big.ids"
$HC gen "$STORE" "$SMALL_COUNT" "$SMALL_BYTES" >"$WORK/small.ids"

"$CADENZA" keys generate --id bench >"$WORK/keys.toml"
ADMIN_TOKEN=$("$CADENZA" keys token)
sign_list() { # sign_list IDS SIZE > URLS
    while read -r id; do
        echo "$2 $("$CADENZA" sign --keys-file "$WORK/keys.toml" --file-id "$id" --user bench --ttl 12h)"
    done <"$1"
}
sign_list "$WORK/big.ids" "$BIG_BYTES" >"$WORK/big.urls"
sign_list "$WORK/small.ids" "$SMALL_BYTES" >"$WORK/small.urls"
cat "$WORK/big.urls" "$WORK/small.urls" >"$WORK/all.urls"
TOTAL_BYTES=$((BIG_COUNT * BIG_BYTES + SMALL_COUNT * SMALL_BYTES))
CACHE_BYTES=$((TOTAL_BYTES * 2 > 512 * 1024 * 1024 ? TOTAL_BYTES * 2 : 512 * 1024 * 1024))

# --- origin: one `cadenza origin` over the file store, for both proxies -------
# It runs only while a proxy warms: during a measured run it is stopped, so a
# request that is not a cache hit fails (502) and wrk counts it as an error.
ORIGIN_PORT=$($HC port)
ORIGIN_PID=
start_origin() {
    RUST_LOG=warn taskset -c "$SERVER_CPUS" "$CADENZA" origin \
        --set "listen=127.0.0.1:$ORIGIN_PORT" --set "store=file://$STORE" \
        >>"$WORK/origin.log" 2>&1 &
    ORIGIN_PID=$!
    PIDS+=("$ORIGIN_PID")
    wait_http "http://127.0.0.1:$ORIGIN_PORT/audio/$(head -n1 "$WORK/small.ids").ogg" "$ORIGIN_PID" "$WORK/origin.log"
}
stop_origin() {
    stop "$ORIGIN_PID"
    ORIGIN_PID=
}

# --- servers -----------------------------------------------------------------
EDGE_PORT=$($HC port)
EDGE_ADMIN_PORT=$($HC port)
NGINX_PORT=$($HC port)

start_edge() { # start_edge [EXTRA --set ARGS...]
    RUST_LOG=warn taskset -c "$SERVER_CPUS" "$CADENZA" edge "$@" \
        --set name=bench \
        --set "listen=127.0.0.1:$EDGE_PORT" \
        --set "admin.listen=127.0.0.1:$EDGE_ADMIN_PORT" \
        --set "admin.token=$ADMIN_TOKEN" \
        --set "origin.url=http://127.0.0.1:$ORIGIN_PORT/" \
        --set "signing.keys_file=$WORK/keys.toml" \
        --set "cache.memory=${EDGE_MEMORY:-$CACHE_BYTES}" \
        --set "cache.slice=$SLICE_BYTES" \
        >"$WORK/edge.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_http "http://127.0.0.1:$EDGE_ADMIN_PORT/readyz" "$SERVER_PID" "$WORK/edge.log"
    wait_http "http://127.0.0.1:$EDGE_PORT$(head -n1 "$WORK/small.urls" | cut -d' ' -f2)" "$SERVER_PID" "$WORK/edge.log"
    SERVER_URL=http://127.0.0.1:$EDGE_PORT
    HIT_PREFIX=HIT
}

write_nginx_conf() {
    mkdir -p "$WORK/nginx/cache" "$WORK/nginx/tmp"
    local user_line=""
    [ "$(id -u)" -eq 0 ] && user_line="user root root;"
    cat >"$WORK/nginx/nginx.conf" <<EOF
# A tuned nginx cache in front of the same origin: the cadenza edge's rival.
$user_line
worker_processes $SERVER_NCPU;
worker_rlimit_nofile $NOFILE;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
$([ "$NGINX_AIO" = threads ] && echo "thread_pool default threads=$((SERVER_NCPU * 2)) max_queue=65536;")

events {
    worker_connections 8192;
    use epoll;
}

http {
    access_log off;
    sendfile $NGINX_SENDFILE;
    sendfile_max_chunk 1m;
    aio $NGINX_AIO;
    tcp_nopush $NGINX_NOPUSH;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    reset_timedout_connection on;
    server_tokens off;
    $NGINX_EXTRA
    types { audio/ogg ogg; }
    default_type application/octet-stream;

    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;

    # Disk cache (served from the page cache once warm, with sendfile).
    proxy_cache_path $WORK/nginx/cache levels=1:2 keys_zone=audio:64m
                     max_size=$((CACHE_BYTES / 1024 / 1024))m inactive=7d use_temp_path=off;

    upstream origin {
        server 127.0.0.1:$ORIGIN_PORT;
        keepalive 64;
    }

    server {
        listen 127.0.0.1:$NGINX_PORT reuseport backlog=4096;

        # The edge's URL shape; the signed query is ignored (nginx checks no token).
        location ~ "^/a/[0-9a-f]{32}\.ogg\$" {
            slice $SLICE_BYTES;
            proxy_cache audio;
            proxy_cache_key \$uri\$slice_range;
            proxy_set_header Range \$slice_range;
            proxy_cache_valid 200 206 30d;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 30s;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering on;
            add_header X-Cache \$upstream_cache_status always;
            rewrite "^/a/([0-9a-f]{32})\.ogg\$" /audio/\$1.ogg? break;
            proxy_pass http://origin;
        }
        location / { return 404; }
    }
}
EOF
}

start_nginx() {
    write_nginx_conf
    "$NGINX" -t -q -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" ||
        die "nginx -t failed: $(cat "$WORK/nginx/error.log")"
    taskset -c "$SERVER_CPUS" "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" \
        -c "$WORK/nginx/nginx.conf" -g "daemon off;" >"$WORK/nginx/stdout.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_http "http://127.0.0.1:$NGINX_PORT$(head -n1 "$WORK/small.urls" | cut -d' ' -f2)" "$SERVER_PID" "$WORK/nginx/error.log"
    SERVER_URL=http://127.0.0.1:$NGINX_PORT
    HIT_PREFIX=HIT
}

edge_origin_requests() {
    curl -fsS --max-time 5 "http://127.0.0.1:$EDGE_ADMIN_PORT/metrics" |
        awk '/^cadenza_edge_origin_requests_total/ { s += $NF } END { print s + 0 }'
}

RESULTS=$WORK/results.txt
: >"$RESULTS"
NOTES=()

run_wrk() { # run_wrk SERVER SCENARIO DURATION -> RESULT line
    local server=$1 scenario=$2 duration=$3 urls mode out
    case "$scenario" in
    range64k)
        urls=$WORK/big.urls
        mode=range
        ;;
    whole3m)
        urls=$WORK/small.urls
        mode=whole
        ;;
    *) die "unknown scenario $scenario" ;;
    esac
    out=$WORK/wrk-$server-$scenario.out
    taskset -c "$WRK_CPUS" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" --timeout 10s \
        -s "$LUA" "$SERVER_URL" -- "$urls" "$mode" "$RANGE_LEN" "$ALIGN" >"$out" 2>&1 ||
        die "wrk failed: $(cat "$out")"
    grep '^RESULT ' "$out" | tail -n1 | cut -d' ' -f2- || die "no RESULT line from wrk: $(cat "$out")"
}

measure() { # measure SERVER SCENARIO
    local server=$1 scenario=$2 line cpu0 cpu1 secs before=0 after=0
    if [ "$DROP_CACHES" = 1 ]; then
        sync
        echo 3 >/proc/sys/vm/drop_caches || die "DROP_CACHES=1 needs root"
        log "$server $scenario: page cache dropped; no warm-up run"
    else
        log "$server $scenario: warm-up run ($WARMUP, discarded)"
        run_wrk "$server" "$scenario" "$WARMUP" >/dev/null
    fi
    [[ $server == edge* ]] && before=$(edge_origin_requests)
    cpu0=$($HC cpu "$SERVER_PID")
    log "$server $scenario: measuring ($DURATION, -t$THREADS -c$CONNECTIONS)"
    line=$(run_wrk "$server" "$scenario" "$DURATION")
    cpu1=$($HC cpu "$SERVER_PID")
    secs=$(sed -E 's/.*duration_s=([0-9.]+).*/\1/' <<<"$line")
    if [[ $server == edge* ]]; then
        after=$(edge_origin_requests)
        if [ "$after" != "$before" ]; then
            NOTES+=("edge $scenario: $((after - before)) origin requests during the measured run (expected 0: all hits)")
        fi
    fi
    local errors
    errors=$(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$line")
    [ "$errors" = 0 ] || NOTES+=("$server $scenario: wrk counted $errors errors: $line")
    echo "scenario=$scenario server=$server cpu_pct=$(python3 -c "print(f'{($cpu1 - $cpu0) / $secs * 100:.1f}')") $line" >>"$RESULTS"
    log "$server $scenario: $line"
}

for server in $SERVERS; do
    start_origin
    case "$server" in
    edge) start_edge ;;
    edge-disk)
        # One slice of memory: every other hit is read (and verified) from disk.
        EDGE_MEMORY=$SLICE_BYTES start_edge --set "disk.path=$WORK/edge-disk" --set "disk.max_size=$CACHE_BYTES"
        ;;
    nginx) start_nginx ;;
    *) die "unknown server $server" ;;
    esac
    log "$server on $SERVER_URL: warming and checking bodies"
    $HC warm "$SERVER_URL" "$WORK/all.urls" "$STORE" "slice=$SLICE_BYTES" "hit=$HIT_PREFIX" ||
        die "$server: warm/verify failed"
    stop_origin
    for scenario in $SCENARIOS; do
        measure "$server" "$scenario"
    done
    stop "$SERVER_PID"
done

# --- report ------------------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(cd "$ROOT" && git status --porcelain --untracked-files=no 2>/dev/null)" ]; then REV="$REV+dirty"; fi
report() {
    echo "## Hit path: cadenza edge vs nginx proxy_cache + slice"
    echo
    echo "- $(date -u +%Y-%m-%dT%H:%MZ), cadenza $REV, $("$NGINX" -v 2>&1 | sed 's/.*: //'), wrk $(wrk -v 2>&1 | head -n1 | awk '{print $2}')"
    echo "- $NCPU cores ($CPU_MODEL), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    case "$PIN" in
    shared) echo "- CPU: servers and wrk share all $NCPU cores (taskset -c $SERVER_CPUS for both; PIN=shared); nginx worker_processes $SERVER_NCPU, edge tokio default workers" ;;
    split) echo "- CPU: servers pinned to cores $SERVER_CPUS, wrk to $WRK_CPUS (PIN=split); nginx worker_processes $SERVER_NCPU" ;;
    esac
    echo "- wrk -t$THREADS -c$CONNECTIONS -d$DURATION (after a discarded $WARMUP run), HTTP/1.1 keep-alive, same request lines to both"
    echo "- range64k: $RANGE_LEN-byte ranges at random $([ "$ALIGN" = 1 ] && echo "$RANGE_LEN-aligned" || echo "byte") offsets of $BIG_COUNT cached $BIG_SIZE objects; whole3m: whole $SMALL_SIZE objects ($SMALL_COUNT)"
    [[ " $SERVERS " == *" edge-disk "* ]] && echo "- edge-disk: the same edge with cache.memory = one slice and a disk tier (disk.path in the work dir, on $(df --output=fstype "$WORK" | tail -n1)): a hit is a memory miss, a file read of the whole slice, its CRC-32 checked, then sent from memory$([ "$DROP_CACHES" = 1 ] && echo "; page cache dropped before each measured run (DROP_CACHES=1)")"
    echo "- slice $SLICE_BYTES bytes on both; edge: memory tier, token (HMAC-SHA256) verified on every request; nginx: disk cache in the page cache, sendfile, no token check"
    echo "- one origin for both: \`cadenza origin\` over a file store, running only while warming: stopped during measured runs, so a miss would be a 502 (errors column)"
    echo "- nginx: sendfile $NGINX_SENDFILE, aio $NGINX_AIO, tcp_nopush $NGINX_NOPUSH, proxy_cache_lock on, keep-alive upstream, access_log off, reuseport"
    echo "- MiB/s counts response bytes including headers; server CPU % = CPU seconds of the server's processes / run time (100% = one core)"
    echo
    $HC table "$RESULTS"
    if [ "${#NOTES[@]}" -gt 0 ]; then
        echo
        for n in "${NOTES[@]}"; do echo "- WARNING: $n"; done
    fi
}
report | tee ${OUT:+"$OUT"}
