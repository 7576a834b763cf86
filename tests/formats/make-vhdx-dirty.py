#!/usr/bin/env python3
"""Turns a vhdx that qemu-io wrote (and was killed after) into one with a log
to replay: qemu leaves its log entries in the log but has replayed them and
cleared the header's log GUID. This names the newest entry's log GUID in
the current header again and zeroes the sectors that entry writes, so the
image reads right only if the log is replayed.

usage: make-vhdx-dirty.py IMAGE"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vhdx_checksum import sealed  # noqa: E402


path = sys.argv[1]
with open(path, "r+b") as f:
    headers = []
    for at in (64 * 1024, 128 * 1024):
        f.seek(at)
        headers.append((at, bytearray(f.read(4096))))
    at, header = max(headers, key=lambda h: struct.unpack_from("<Q", h[1], 8)[0])
    log_length, log_offset = struct.unpack_from("<IQ", header, 68)
    f.seek(log_offset)
    log = f.read(log_length)
    newest = None
    for pos in range(0, log_length, 4096):
        if log[pos:pos + 4] != b"loge":
            continue
        length, _tail, seq, count = struct.unpack_from("<IIQI", log, pos + 8)
        if newest is None or seq > newest[1]:
            newest = (pos, seq, length, count)
    if newest is None:
        sys.exit("make-vhdx-dirty.py: %s has no log entry (did qemu-io write?)" % path)
    pos, seq, length, count = newest
    entry = log[pos:pos + length]
    header[48:64] = entry[32:48]  # the entry's log GUID
    header = sealed(header)
    f.seek(at)
    f.write(header)
    targets = 0
    for i in range(count):
        file_offset, = struct.unpack_from("<Q", entry, 64 + 32 * i + 16)
        if entry[64 + 32 * i:68 + 32 * i] == b"desc":
            f.seek(file_offset)
            f.write(bytes(4096))
            targets += 1
    if not targets:
        sys.exit("make-vhdx-dirty.py: the newest log entry of %s writes no sector" % path)
