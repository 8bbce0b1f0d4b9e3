#!/usr/bin/env bash
# Install what the load tests need, if missing: nginx (with the slice
# module), wrk, python3, curl, oggenc, ffmpeg and GNU time. Idempotent: a second run installs nothing.
# Debian/Ubuntu only (apt-get); run as root or with sudo available.
set -euo pipefail

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
# bench-transcode.sh: the peers (oggenc, ffmpeg) and GNU time.
command -v oggenc >/dev/null 2>&1 || need+=(vorbis-tools)
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
[ -x /usr/bin/time ] || need+=(time)

if [ "${#need[@]}" -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "setup.sh: need root (or sudo) to install: ${need[*]}" >&2; exit 1; }
        SUDO="sudo"
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "setup.sh: no apt-get; install these by hand: ${need[*]}" >&2
        exit 1
    fi
    echo "setup.sh: installing ${need[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
    # The package starts a system nginx on :80; the benchmarks run their own
    # instance with their own config, so stop the system one (best effort).
    if [[ " ${need[*]} " == *" nginx "* ]]; then
        $SUDO systemctl disable --now nginx >/dev/null 2>&1 || $SUDO service nginx stop >/dev/null 2>&1 || true
    fi
fi

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [[ $("$NGINX" -V 2>&1) != *--with-http_slice_module* ]]; then
    echo "setup.sh: $NGINX lacks the slice module (--with-http_slice_module); install Debian's nginx" >&2
    exit 1
fi
echo "setup.sh: ok: $("$NGINX" -v 2>&1), $(wrk --version 2>&1 | head -n1 | cut -d' ' -f1-2), slice module present" >&2
