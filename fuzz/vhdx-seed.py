#!/usr/bin/env python3
"""Turns a VHDX image into the sparse description fuzz_vhdx reads: u32 file
size in KiB, then (u32 offset, u16 length, bytes) for every run of 4 KiB
pages that are not all zeroes.

usage: vhdx-seed.py IMAGE OUT"""
import struct
import sys

data = open(sys.argv[1], "rb").read()
out = bytearray(struct.pack("<I", (len(data) + 1023) // 1024))
page = 4096
pos = 0
while pos < len(data):
    if data[pos:pos + page].count(0) == len(data[pos:pos + page]):
        pos += page
        continue
    end = pos
    while end < len(data) and end - pos < 65535 - page and data[end:end + page].count(0) != len(data[end:end + page]):
        end += page
    end = min(end, len(data))
    out += struct.pack("<IH", pos, end - pos) + data[pos:end]
    pos = end
open(sys.argv[2], "wb").write(out)
