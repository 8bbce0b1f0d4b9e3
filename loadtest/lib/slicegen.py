#!/usr/bin/env python3
"""Fill a cadenza disk-tier directory with N valid slice files, as the edge
writes them (docs/edge.md, "Disk tier"), for the index-rebuild benchmark.

    slicegen.py DIR COUNT SLICE_BYTES PAYLOAD_BYTES STORE SAMPLE

Each file is one whole object of PAYLOAD_BYTES random bytes (slice 0), named
and headed for its content's file id. The first SAMPLE objects are also
written to the file store STORE, so the benchmark can fetch them through
the edge and check they come back from disk, byte for byte.
"""
import hashlib
import os
import struct
import sys
import zlib

BLOCK = 16 * 1024  # payload bytes per CRC-32 in the block table


def main():
    d, count, slice_bytes, payload, store, sample = sys.argv[1:7]
    count, slice_bytes, payload, sample = int(count), int(slice_bytes), int(payload), int(sample)
    os.makedirs(d, exist_ok=True)
    for shard in range(256):
        os.makedirs(os.path.join(d, f"{shard:02x}"), exist_ok=True)
    with open(os.path.join(d, "FORMAT"), "w") as f:
        f.write(f"cadenza-disk 1 slice={slice_bytes}\n")
    ids = []
    for n in range(count):
        body = os.urandom(payload)
        fid = hashlib.sha256(body).hexdigest()[:32]
        table = b"".join(struct.pack("<I", zlib.crc32(body[i : i + BLOCK])) for i in range(0, len(body), BLOCK))
        header = (
            b"CDZSLICE"
            + struct.pack("<II", 1, slice_bytes)
            + fid.encode()
            + struct.pack("<QQII", 0, payload, payload, zlib.crc32(table))
        )
        assert len(header) == 72
        header += table
        with open(os.path.join(d, fid[:2], f"{fid}.0.{payload}.{payload}"), "wb") as f:
            f.write(header + body)
        if n < sample:
            path = os.path.join(store, "audio", f"{fid}.ogg")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(body)
            ids.append(fid)
        if n and n % 100_000 == 0:
            print(f"slicegen: {n} files", file=sys.stderr)
    for fid in ids:
        print(fid)


main()
