#!/usr/bin/env bash
# Memory-tier hit ratio against Bélády's optimum: replays Zipf traces
# (α = 0.8 and 1.0, 1 M distinct slices, 10 M requests) through the edge's
# real MemoryTier and prints a markdown table. Extra arguments go to the
# tool, e.g. `loadtest/hit-ratio.sh --moka --throughput` or `--help`.
# Takes about a minute after the build on 2 cores.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Builds (release) if needed, then runs; honours CARGO_TARGET_DIR.
exec cargo run --release --quiet -p cadenza-hitratio -- "$@"
