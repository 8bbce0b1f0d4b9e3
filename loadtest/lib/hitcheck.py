#!/usr/bin/env python3
"""Helpers for bench-hit.sh (standard library only).

  gen STORE COUNT SIZE        write COUNT objects of SIZE random bytes into the
                              store layout (audio/<file_id>.ogg); print the ids
  warm BASE URLS STORE        fill a proxy's cache, prove every slice is a hit
                              and that sampled bodies are byte-exact
  port                        print a free TCP port on 127.0.0.1
  cpu PID...                  print user+system CPU seconds of PIDs and their
                              live children
  table RESULTS               print the markdown table of wrk results

URLS is a file of lines `<object size> <path?query>`, the same list the wrk
script reads. A file id is the first 32 hex digits of the SHA-256 of the
bytes (cadenza_config::ids::FileId::of_content).
"""

import hashlib
import http.client
import os
import random
import re
import socket
import sys
import time
import urllib.parse

ID_RE = re.compile(r"/a/([0-9a-f]{32})\.ogg")


def die(msg):
    print(f"hitcheck: {msg}", file=sys.stderr)
    sys.exit(1)


def gen(store, count, size):
    os.makedirs(os.path.join(store, "audio"), exist_ok=True)
    for _ in range(count):
        data = os.urandom(size)
        fid = hashlib.sha256(data).hexdigest()[:32]
        path = os.path.join(store, "audio", f"{fid}.ogg")
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
        print(fid)


def read_urls(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            size, url = line.split(None, 1)
            m = ID_RE.search(url)
            if not m:
                die(f"no file id in {url!r}")
            out.append((int(size), url, m.group(1)))
    if not out:
        die(f"{path}: no URLs")
    return out


class Client:
    """One keep-alive connection, reopened after an error."""

    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port or 80
        self.conn = None

    def get(self, url, rng=None):
        headers = {"Range": f"bytes={rng[0]}-{rng[1]}"} if rng else {}
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                self.conn.request("GET", url, headers=headers)
                r = self.conn.getresponse()
                body = r.read()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, body
            except (http.client.HTTPException, OSError):
                self.conn = None
                if attempt == 2:
                    raise


def warm(base, urls_file, store, slice_size, hit_prefix, rounds, samples):
    urls = read_urls(urls_file)
    client = Client(base)
    blobs = {}
    for size, _, fid in urls:
        with open(os.path.join(store, "audio", f"{fid}.ogg"), "rb") as f:
            blobs[fid] = f.read()
        if len(blobs[fid]) != size:
            die(f"{fid}: size {len(blobs[fid])} on disk, {size} in the URL list")

    def check(url, fid, rng, want_status):
        status, headers, body = client.get(url, rng)
        blob = blobs[fid]
        want = blob if rng is None else blob[rng[0] : rng[1] + 1]
        if status != want_status:
            die(f"GET {fid} range={rng}: status {status}, want {want_status}: {body[:200]!r}")
        if body != want:
            die(f"GET {fid} range={rng}: body differs from the source ({len(body)} vs {len(want)} bytes)")
        if rng is not None:
            cr = f"bytes {rng[0]}-{rng[1]}/{len(blob)}"
            if headers.get("content-range") != cr:
                die(f"GET {fid} range={rng}: Content-Range {headers.get('content-range')!r}, want {cr!r}")
        return headers.get("x-cache", "")

    t0 = time.monotonic()
    slices = 0
    for rnd in range(1, rounds + 1):
        # Fill: every object whole (both proxies fill every slice of it).
        for _, url, fid in urls:
            check(url, fid, None, 200)
        # Prove: one small range inside every slice must be a cache hit.
        misses = []
        slices = 0
        for size, url, fid in urls:
            for start in range(0, size, slice_size):
                end = min(start + slice_size, size) - 1
                a = random.randint(start, end)
                b = min(a + 1023, end)
                x = check(url, fid, (a, b), 206)
                slices += 1
                if not x.startswith(hit_prefix):
                    misses.append((fid, start, x))
        if not misses:
            break
        print(f"hitcheck: round {rnd}: {len(misses)} slices not yet cached, e.g. {misses[:3]}", file=sys.stderr)
    else:
        die(f"{base}: {len(misses)} slices still not cache hits after {rounds} rounds, e.g. {misses[:3]}")

    # Sample: random unaligned 64 KiB ranges and whole objects, byte-exact.
    big = max(size for size, _, _ in urls)
    for _ in range(samples):
        size, url, fid = random.choice([u for u in urls if u[0] == big])
        a = random.randint(0, size - 65536)
        x = check(url, fid, (a, a + 65535), 206)
        if not x.startswith(hit_prefix):
            die(f"sampled range {fid} {a}: X-Cache {x!r} after warming")
    for size, url, fid in random.sample(urls, min(8, len(urls))):
        check(url, fid, None, 200)
    print(
        f"hitcheck: {base}: {len(urls)} objects, {slices} slices all {hit_prefix}* after {rnd} round(s); "
        f"{samples} random 64 KiB ranges and 8 whole objects byte-exact ({time.monotonic() - t0:.1f}s)",
        file=sys.stderr,
    )


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def cpu_seconds(pids):
    """User+system CPU seconds of PIDs and all their live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[1] = ppid, fields[11] = utime, fields[12] = stime
        stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    wanted = set(pids)
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in stats.items():
            if ppid in wanted and pid not in wanted:
                wanted.add(pid)
                grew = True
    total = sum(stats[p][1] for p in wanted if p in stats)
    print(f"{total / tick:.2f}")


def table(path):
    rows = []
    with open(path) as f:
        for line in f:
            fields = dict(kv.split("=", 1) for kv in line.split())
            rows.append(fields)
    print("| scenario | server | req/s | MiB/s | p50 ms | p99 ms | max ms | server CPU % | errors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    by = {}
    for r in rows:
        by[(r["scenario"], r["server"])] = r
        print(
            f"| {r['scenario']} | {r['server']} | {float(r['rps']):,.0f} | {float(r['mibps']):,.1f} | "
            f"{float(r['p50_ms']):.2f} | {float(r['p99_ms']):.2f} | {float(r['max_ms']):.2f} | "
            f"{float(r.get('cpu_pct', 'nan')):.0f} | {r['errors']} |"
        )
    print()
    print("| scenario | edge/nginx req/s | edge/nginx p99 | goal (≥ 1.2× req/s, p99 ≤ nginx) |")
    print("|---|---:|---:|---|")
    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        e, n = by.get((scenario, "edge")), by.get((scenario, "nginx"))
        if not (e and n):
            continue
        ratio = float(e["rps"]) / float(n["rps"])
        p99 = float(e["p99_ms"]) / float(n["p99_ms"])
        met = "met" if ratio >= 1.2 and p99 <= 1.0 else "not met"
        print(f"| {scenario} | {ratio:.2f}× | {p99:.2f}× | {met} |")


def main():
    args = sys.argv[1:]
    if not args:
        die(__doc__)
    cmd, rest = args[0], args[1:]
    if cmd == "gen":
        gen(rest[0], int(rest[1]), int(rest[2]))
    elif cmd == "warm":
        base, urls_file, store = rest[:3]
        opts = dict(a.split("=", 1) for a in rest[3:])
        warm(
            base,
            urls_file,
            store,
            int(opts.get("slice", 262144)),
            opts.get("hit", "HIT"),
            int(opts.get("rounds", 3)),
            int(opts.get("samples", 200)),
        )
    elif cmd == "port":
        free_port()
    elif cmd == "cpu":
        cpu_seconds([int(p) for p in rest])
    elif cmd == "table":
        table(rest[0])
    else:
        die(f"unknown command {cmd!r}\n{__doc__}")


if __name__ == "__main__":
    main()
