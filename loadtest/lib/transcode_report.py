#!/usr/bin/env python3
"""Report of loadtest/bench-transcode.sh: speed, bitrate error and loudness
agreement, as markdown.

usage: transcode_report.py WORK LENGTH CORES CADENZA_VERSION OGGENC_VERSION FFMPEG_VERSION
"""

import json
import os
import re
import statistics
import sys
from collections import defaultdict

RUNGS = [24, 96, 160, 320]


def ebur128(path):
    """(I, LRA, TP) from ffmpeg's ebur128 summary, or None."""
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        return None
    summary = text[text.rfind("Summary:"):]
    found = [re.search(pat + r"\s+(-?[\d.]+|-inf)", summary) for pat in (r"I:", r"LRA:", r"Peak:")]
    if not all(found):
        return None
    return tuple(float(m.group(1)) for m in found)


def main():
    work, length, cores = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    versions = sys.argv[4:7]
    rows = [line.rstrip("\n").split("\t") for line in open(os.path.join(work, "results.tsv"))]
    # tool -> run -> [wall, cpu] summed over masters
    per_run = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    masters = []
    for tool, master, run, wall, user, sys_ in rows:
        per_run[tool][run][0] += float(wall)
        per_run[tool][run][1] += float(user) + float(sys_)
        if master not in masters:
            masters.append(master)
    audio = length * len(masters)
    out = []
    p = out.append
    p(f"# Transcoder ladder benchmark\n")
    p(f"{len(masters)} masters of {length:.0f} s (44.1 kHz stereo), {cores} cores; "
      f"{versions[0]}; {versions[1]}; {versions[2]}. Figures are medians over "
      f"{len(next(iter(per_run.values())))} runs.\n")

    p("## Speed: the four rungs of every master\n")
    p(f"| tool | CPU s | × realtime per core | wall s | × realtime on {cores} cores | per core vs oggenc | wall vs oggenc |")
    p("|---|---:|---:|---:|---:|---:|---:|")
    med = {}
    for tool, runs in per_run.items():
        wall = statistics.median(v[0] for v in runs.values())
        cpu = statistics.median(v[1] for v in runs.values())
        med[tool] = (wall, cpu)
    base = med.get("oggenc")
    for tool, (wall, cpu) in med.items():
        vs_cpu = f"{base[1] / cpu:.2f}×" if base else "—"
        vs_wall = f"{base[0] / wall:.2f}×" if base else "—"
        p(f"| {tool} | {cpu:.1f} | {audio / cpu:.1f} | {wall:.1f} | {audio / wall:.1f} | {vs_cpu} | {vs_wall} |")
    p("")

    # Bitrates from run 1.
    p("## Bitrate: achieved vs nominal (mean over masters; worst in brackets)\n")
    p("| tool | 24 kbps (total, kbps) | 96 | 160 | 320 |")
    p("|---|---:|---:|---:|---:|")
    for tool in med:
        per_rung = defaultdict(list)
        for master in masters:
            d = os.path.join(work, "out", master, "1")
            if tool == "cadenza":
                try:
                    line = open(os.path.join(d, "cadenza.json")).readline()
                except OSError:
                    continue
                for r in json.loads(line)["manifest"]["renditions"]:
                    per_rung[r["bitrate_kbps"]].append(r["achieved_kbps"])
            else:
                for k in RUNGS:
                    f = os.path.join(d, f"{tool}-{k}.ogg")
                    if os.path.exists(f):
                        per_rung[k].append(os.path.getsize(f) * 8 / length / 1000)
        cells = []
        for k in RUNGS:
            v = per_rung.get(k, [])
            if not v:
                cells.append("—")
            elif k == 24:
                cells.append(f"{statistics.mean(v):.2f} ({max(v):.2f})")
            else:
                errs = [(x / k - 1) * 100 for x in v]
                worst = max(errs, key=abs)
                cells.append(f"{statistics.mean(errs):+.2f} % ({worst:+.2f} %)")
        p(f"| {tool} | " + " | ".join(cells) + " |")
    p("")

    p("## Loudness: cadenza vs ffmpeg's ebur128 filter (ffmpeg prints one decimal)\n")
    p("| master | I cadenza / ffmpeg (LUFS) | ΔI | LRA cadenza / ffmpeg (LU) | true peak cadenza / ffmpeg (dBTP) | renditions: worst ΔI |")
    p("|---|---:|---:|---:|---:|---:|")
    worst_master = 0.0
    worst_rendition = 0.0
    for master in masters:
        d = os.path.join(work, "out", master)
        try:
            m = json.loads(open(os.path.join(d, "1", "cadenza.json")).readline())["manifest"]
        except OSError:
            continue
        ref = ebur128(os.path.join(d, "ebur128-master.txt"))
        if not ref:
            continue
        l = m["loudness"]
        di = l["integrated_lufs"] - ref[0]
        worst_master = max(worst_master, abs(di))
        rend = []
        for r in m["renditions"]:
            rr = ebur128(os.path.join(d, f"ebur128-{r['file_id']}.txt"))
            if rr:
                rend.append((r["bitrate_kbps"], r["loudness"]["integrated_lufs"] - rr[0]))
        rw = max(rend, key=lambda x: abs(x[1])) if rend else (0, 0.0)
        worst_rendition = max(worst_rendition, abs(rw[1]))
        p(f"| {master} | {l['integrated_lufs']:.2f} / {ref[0]:.1f} | {di:+.2f} | "
          f"{l['loudness_range_lu']:.2f} / {ref[1]:.1f} | {l['true_peak_dbtp']:.2f} / {ref[2]:.1f} | "
          f"{rw[1]:+.2f} ({rw[0]} kbps) |")
    p("")
    p(f"Worst integrated-loudness difference: masters {worst_master:.2f} LU, renditions {worst_rendition:.2f} LU.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
