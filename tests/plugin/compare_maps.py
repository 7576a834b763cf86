#!/usr/bin/env python3
"""Checks that `nbdinfo --map --json` (what the plugin reports) agrees with
`qemu-img map --output=json` (what qemu reads in the file) about which bytes
are data and which are zero or holes.

Where qemu says data:false, the plugin must say the range reads as zero.
Where qemu says data:true and zero:false, the plugin must say data.
(qemu's data:true zero:true, e.g. a preallocated cluster over a file hole,
may be reported either way.)
usage: compare_maps.py NBDINFO.json QEMU.json"""
import json
import sys

NBD_HOLE, NBD_ZERO = 1, 2


def runs(entries, key):
    out = []
    for e in entries:
        start = e["start"] if "start" in e else e["offset"]  # qemu-img / nbdinfo
        out.append((start, start + e["length"], key(e)))
    return out


def main():
    nbd = json.load(open(sys.argv[1]))
    qemu = json.load(open(sys.argv[2]))
    nbd_runs = runs(nbd, lambda e: e["type"])
    qemu_runs = runs(qemu, lambda e: (e["data"], e["zero"]))
    nbd_end = nbd_runs[-1][1] if nbd_runs else 0
    qemu_end = qemu_runs[-1][1] if qemu_runs else 0
    if nbd_end != qemu_end:
        sys.exit(f"the maps cover {nbd_end} and {qemu_end} bytes")
    i = j = 0
    pos = 0
    problems = []
    while i < len(nbd_runs) and j < len(qemu_runs):
        n_start, n_end, n_type = nbd_runs[i]
        q_start, q_end, (q_data, q_zero) = qemu_runs[j]
        end = min(n_end, q_end)
        if not q_data and not (n_type & NBD_ZERO):
            problems.append(f"[{pos}, {end}): qemu says unallocated/zero, plugin says data")
        if q_data and not q_zero and n_type != 0:
            problems.append(f"[{pos}, {end}): qemu says data, plugin says type {n_type}")
        pos = end
        if n_end == end:
            i += 1
        if q_end == end:
            j += 1
    if problems:
        sys.exit("\n".join(problems[:20]))


if __name__ == "__main__":
    main()
