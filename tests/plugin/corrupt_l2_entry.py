#!/usr/bin/env python3
"""Makes the first L2 entry of a qcow2 image point at an unaligned host
offset, which the qcow2 spec calls corruption.
usage: corrupt_l2_entry.py IMAGE"""
import struct
import sys

with open(sys.argv[1], "r+b") as f:
    header = f.read(104)
    l1_offset = struct.unpack(">Q", header[40:48])[0]
    f.seek(l1_offset)
    l2_offset = struct.unpack(">Q", f.read(8))[0] & 0x00FFFFFFFFFFFE00
    if l2_offset == 0:
        sys.exit("the first L1 entry has no L2 table")
    f.seek(l2_offset)
    entry = struct.unpack(">Q", f.read(8))[0]
    f.seek(l2_offset)
    f.write(struct.pack(">Q", entry | 0x200))
