#!/usr/bin/env bash
# The transcoder's ladder against the usual tools, on the same masters, in
# the same run. See loadtest/README.md.
#
#   cadenza    cadenza transcode: decode once, loudness of the master, audio
#              features, the four ABR encodes in parallel, every rendition
#              decoded back and metered, ReplayGain tags, published to a
#              file:// store
#   oggenc     oggenc --managed -b N (ABR, Xiph libvorbis): four processes
#              run side by side, the 24 kbps one with --resample 22050 --downmix
#   ffmpeg     one ffmpeg -c:a libvorbis -b:a N making the four rungs. NB
#              ffmpeg turns libvorbis' rate management off unless a min or
#              max rate is given, so -b:a is only a VBR estimate
#   ffmpeg-abr the same with -maxrate 10x the bitrate, which keeps the
#              management (real ABR) on
#
#   loadtest/setup.sh                       # once: oggenc, ffmpeg, GNU time
#   loadtest/bench-transcode.sh             # 3 generated masters + 1 dense, 180 s each, 2 runs
#   LENGTH=60 RUNS=1 loadtest/bench-transcode.sh
#
# Environment (defaults in brackets):
#   LENGTH [180]   seconds per master; MASTERS [3] generated demo-music masters
#                  (44.1 kHz 16-bit), plus one "dense" master: the first with
#                  gated pink-noise percussion mixed in
#   RUNS [2]       measured runs of every tool on every master, interleaved;
#                  each figure is the median over runs
#   TOOLS ["cadenza oggenc ffmpeg ffmpeg-abr"]
#   CADENZA, SYNTH binaries to use instead of building them
#   KEEP [0]       1 = keep the work dir and print its path
#   OUT            also write the report (markdown) to this file
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
LENGTH=${LENGTH:-180}
MASTERS=${MASTERS:-3}
RUNS=${RUNS:-2}
TOOLS=${TOOLS:-"cadenza oggenc ffmpeg ffmpeg-abr"}
KEEP=${KEEP:-0}

for tool in oggenc ffmpeg python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "bench-transcode: $tool missing; run loadtest/setup.sh" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench-transcode: GNU time (/usr/bin/time) missing; run loadtest/setup.sh" >&2; exit 1; }

if [ -z "${CADENZA:-}" ] || [ -z "${SYNTH:-}" ]; then
    echo "bench-transcode: building release binaries" >&2
    (cd "$ROOT" && cargo build --release --locked -q -p cadenza && \
        cargo build --release --locked -q -p cadenza-transcoder --example synth_master)
fi
CADENZA=${CADENZA:-$ROOT/target/release/cadenza}
SYNTH=${SYNTH:-$ROOT/target/release/examples/synth_master}

WORK=$(mktemp -d /tmp/cadenza-bench-transcode.XXXXXX)
cleanup() { if [ "$KEEP" = 1 ]; then echo "bench-transcode: kept $WORK" >&2; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
RESULTS="$WORK/results.tsv"
: > "$RESULTS"

# --- corpus -------------------------------------------------------------------
masters=()
for i in $(seq 1 "$MASTERS"); do
    "$SYNTH" "$WORK/m$i.wav" "$LENGTH" "$i" 16
    masters+=("$WORK/m$i.wav")
done
ffmpeg -v error -y -i "$WORK/m1.wav" \
    -f lavfi -i "anoisesrc=c=pink:r=44100:a=0.3:d=$LENGTH:seed=7" \
    -filter_complex "[1]apulsator=mode=square:hz=2:amount=1,highpass=f=150,aformat=channel_layouts=stereo[n];[0][n]amix=inputs=2:normalize=0,alimiter=limit=0.9" \
    -c:a pcm_s16le "$WORK/dense.wav"
masters+=("$WORK/dense.wav")
echo "bench-transcode: ${#masters[@]} masters of $LENGTH s in $WORK" >&2

# `measure TOOL MASTER RUN CMD…`: run CMD under GNU time, append
# tool, master, run, wall, user, sys to the results.
measure() {
    local tool=$1 master=$2 run=$3; shift 3
    local t="$WORK/time.txt"
    /usr/bin/time -o "$t" -f "%e %U %S" "$@"
    printf '%s\t%s\t%s\t%s\n' "$tool" "$(basename "$master" .wav)" "$run" "$(tr ' ' '\t' < "$t")" >> "$RESULTS"
}

for run in $(seq 1 "$RUNS"); do
    for m in "${masters[@]}"; do
        name=$(basename "$m" .wav)
        out="$WORK/out/$name/$run"
        mkdir -p "$out"
        for tool in $TOOLS; do
            echo "bench-transcode: run $run, $name, $tool" >&2
            case $tool in
            cadenza)
                rm -rf "$out/store"
                measure cadenza "$m" "$run" sh -c "RUST_LOG=warn '$CADENZA' transcode -q --json --store 'file://$out/store' '$m' > '$out/cadenza.json'"
                ;;
            oggenc)
                measure oggenc "$m" "$run" sh -c "
                    oggenc -Q --managed -b 96 -o '$out/oggenc-96.ogg' '$m' &
                    oggenc -Q --managed -b 160 -o '$out/oggenc-160.ogg' '$m' &
                    oggenc -Q --managed -b 320 -o '$out/oggenc-320.ogg' '$m' &
                    oggenc -Q --managed -b 24 --resample 22050 --downmix -o '$out/oggenc-24.ogg' '$m' &
                    wait"
                ;;
            ffmpeg | ffmpeg-abr)
                args=()
                for k in 24 96 160 320; do
                    args+=(-map 0:a -c:a libvorbis -b:a "${k}k")
                    [ "$tool" = ffmpeg-abr ] && args+=(-maxrate "$((k * 10))k")
                    [ "$k" = 24 ] && args+=(-ac 1 -ar 22050)
                    args+=("$out/$tool-$k.ogg")
                done
                measure "$tool" "$m" "$run" ffmpeg -v error -y -i "$m" "${args[@]}"
                ;;
            *) echo "bench-transcode: unknown tool $tool" >&2; exit 1 ;;
            esac
        done
    done
done

# --- loudness reference: ffmpeg's ebur128 on the masters and on cadenza's files --
for m in "${masters[@]}"; do
    name=$(basename "$m" .wav)
    ffmpeg -nostats -i "$m" -af ebur128=peak=true -f null - 2> "$WORK/out/$name/ebur128-master.txt" || true
    if [ -f "$WORK/out/$name/1/cadenza.json" ]; then
        for f in "$WORK/out/$name/1/store/audio/"*.ogg; do
            ffmpeg -nostats -i "$f" -af ebur128=peak=true:dualmono=true -f null - 2> "$WORK/out/$name/ebur128-$(basename "$f" .ogg).txt" || true
        done
    fi
done

python3 "$HERE/lib/transcode_report.py" "$WORK" "$LENGTH" "$(nproc)" \
    "$("$CADENZA" --version)" "$(oggenc --version | head -n1)" "$(ffmpeg -version | head -n1 | cut -d' ' -f1-3)" \
    | tee "${OUT:-/dev/null}"
