#!/usr/bin/env bash
# Collapse: N concurrent requests for one uncached object through a cadenza
# edge in front of a slow origin; origin requests per slice and how long the
# waiters wait. See loadtest/README.md.
#
#   loadtest/collapse.sh                      # 1000 requests, scenarios range and whole
#   loadtest/collapse.sh -n 200 --scenarios range --ttfb 100ms
#
# Every argument goes to cadenza-collapse (`--help` lists them). Builds
# `cadenza` and `cadenza-collapse` in release mode first; CADENZA=path skips
# building the edge binary.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET == /* ]] || TARGET=$ROOT/$TARGET

if [ -z "${CADENZA:-}" ]; then
    echo "collapse.sh: building release (cadenza, cadenza-collapse)" >&2
    (cd "$ROOT" && cargo build --release -p cadenza -p cadenza-collapse)
    CADENZA=$TARGET/release/cadenza
else
    (cd "$ROOT" && cargo build --release -p cadenza-collapse)
fi

# One socket per request on each side (the tool's and the edge's, which
# inherits this limit): raise the open-file limit as far as allowed.
hard=$(ulimit -Hn)
want=65536
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want=$hard; fi
ulimit -n "$want" 2>/dev/null || echo "collapse.sh: could not raise ulimit -n (now $(ulimit -n))" >&2

exec "$TARGET/release/cadenza-collapse" --cadenza "$CADENZA" "$@"
