#!/usr/bin/env bash
# A private PostgreSQL server for a benchmark: initdb into DIR, started on
# PORT (127.0.0.1 only, trust auth), configured the way a production
# catalog database is (memory sized for the catalog instead of the
# packaged 128 MB of shared buffers), stopped with `pg-private.sh stop DIR`.
#
#   loadtest/lib/pg-private.sh start DIR PORT [SHARED_BUFFERS]   # prints the URL
#   loadtest/lib/pg-private.sh stop DIR
#
# Runs the server as the `postgres` user when started by root (initdb
# refuses root). Needs the PostgreSQL server binaries (Debian's
# postgresql package: /usr/lib/postgresql/<version>/bin).
set -euo pipefail

cmd=${1:?usage: pg-private.sh start DIR PORT [SHARED_BUFFERS] | stop DIR}
dir=${2:?DIR}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -x "$bin/pg_ctl" ] || { echo "pg-private: no PostgreSQL server binaries under /usr/lib/postgresql" >&2; exit 1; }
as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $cmd in
    start)
        port=${3:?PORT}
        shared=${4:-2GB}
        mkdir -p "$dir"
        [ "$(id -u)" = 0 ] && chown postgres: "$dir"
        as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1
        # Production-style settings for a read-mostly catalog on this
        # machine: the catalog and its indexes fit in shared buffers;
        # durability as the packaged server's (fsync on).
        cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
shared_buffers = $shared
effective_cache_size = 8GB
work_mem = 16MB
maintenance_work_mem = 512MB
max_connections = 200
random_page_cost = 1.1
CONF
        as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
        echo "postgres://postgres@127.0.0.1:$port/postgres"
        ;;
    stop)
        [ -d "$dir/data" ] && as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
        rm -rf "$dir"
        ;;
    *) echo "pg-private: unknown command $cmd" >&2; exit 1 ;;
esac
