#!/usr/bin/env python3
"""A random write workload over NBD, mirrored into a raw reference file.

Two connections (multi-conn: the export promises both see one image) take
turns at random writes, zeroes (with and without may-trim, some FUA), trims
and flushes, 512-byte aligned, of 512 B to 256 KiB; every few hundred
operations a random range is read back and compared with the reference.
At the end both flush, and the reference is written to OUT_RAW for
`qemu-img compare`.

usage: workload.py URI OUT_RAW [--ops N] [--seed S]
"""
import argparse
import errno
import random
import sys

import nbd

ap = argparse.ArgumentParser()
ap.add_argument("uri")
ap.add_argument("out_raw")
ap.add_argument("--ops", type=int, default=2000)
ap.add_argument("--seed", type=int, default=1)
args = ap.parse_args()

rng = random.Random(args.seed)
handles = []
for _ in range(2):
    h = nbd.NBD()
    h.connect_uri(args.uri)
    handles.append(h)
size = handles[0].get_size()
assert not handles[0].is_read_only(), "the export is read-only"
assert handles[0].can_multi_conn(), "the export does not offer multi-conn"
ref = bytearray(size)
# Start from what the export holds (it may not be empty).
for off in range(0, size, 1 << 22):
    n = min(1 << 22, size - off)
    ref[off:off + n] = handles[0].pread(n, off)

SECTOR = 512


def pick_range():
    length = rng.choice([1, 1, 2, 8, 64, 128, 512]) * SECTOR
    # Cluster-sized and unaligned ones both, clustered in a hot region to
    # overwrite allocated clusters as well as allocate new ones.
    if rng.random() < 0.5:
        offset = rng.randrange(0, min(size, 8 << 20) - length, SECTOR)
    else:
        offset = rng.randrange(0, size - length, SECTOR)
    return offset, length


def flush_all():
    for h in handles:
        h.flush()


for i in range(args.ops):
    h = rng.choice(handles)
    op = rng.random()
    offset, length = pick_range()
    if op < 0.6:
        data = rng.randbytes(length)
        h.pwrite(data, offset, nbd.CMD_FLAG_FUA if rng.random() < 0.05 else 0)
        ref[offset:offset + length] = data
    elif op < 0.72:
        # Without NO_HOLE the server may deallocate.
        flags = nbd.CMD_FLAG_NO_HOLE if rng.random() < 0.5 else 0
        h.zero(length, offset, flags)
        ref[offset:offset + length] = bytes(length)
    elif op < 0.75:
        # A fast zero either zeroes by metadata or is refused untouched.
        try:
            h.zero(length, offset, nbd.CMD_FLAG_FAST_ZERO)
            ref[offset:offset + length] = bytes(length)
        except nbd.Error as e:
            if e.errnum != errno.ENOTSUP:
                raise
    elif op < 0.85:
        h.trim(length, offset)
        ref[offset:offset + length] = bytes(length)  # trim frees: reads as zeroes (no backing)
    elif op < 0.9:
        h.flush()
    else:
        got = h.pread(length, offset)
        if got != ref[offset:offset + length]:
            sys.exit(f"op {i}: read of {length} at {offset} differs from the reference")

flush_all()
# Read everything back through the server once.
for off in range(0, size, 1 << 22):
    n = min(1 << 22, size - off)
    if handles[0].pread(n, off) != ref[off:off + n]:
        sys.exit(f"final read at {off} differs from the reference")
for h in handles:
    h.shutdown()
with open(args.out_raw, "wb") as f:
    f.write(ref)
print(f"workload: {args.ops} operations on {size} bytes, seed {args.seed}")
