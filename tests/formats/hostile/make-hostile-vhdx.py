#!/usr/bin/env python3
"""Writes one hostile vhdx image per way a VHDX file can lie, plus a valid
control, and expected.tsv in run-hostile.sh's form:

  name <TAB> vhdx <TAB> expectation <TAB> what

A VHDX file is at least a few MiB (a 1 MiB header section, then 1 MiB
aligned regions), so unlike the other formats' hostile images these are
made when the test runs (sparse files in the build tree), not committed.

  make-hostile-vhdx.py OUTDIR
"""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from vhdx_checksum import sealed  # noqa: E402

KiB, MiB = 1 << 10, 1 << 20
LOG_AT, BAT_AT, META_AT, DATA_AT = 1 * MiB, 2 * MiB, 3 * MiB, 4 * MiB


def guid(d1, d2, d3, d4):
    return struct.pack("<IHH", d1, d2, d3) + bytes(d4)


BAT_GUID = guid(0x2DC27766, 0xF623, 0x4200, [0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08])
META_GUID = guid(0x8B7CA206, 0x4790, 0x4B9A, [0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E])
FILE_PARAMS = guid(0xCAA16737, 0xFA36, 0x4D43, [0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B])
DISK_SIZE = guid(0x2FA54224, 0xCD1B, 0x4876, [0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8])
PAGE83 = guid(0xBECA12AB, 0xB2E6, 0x4523, [0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46])
LOGICAL = guid(0x8141BF1D, 0xA96F, 0x4709, [0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F])
PHYSICAL = guid(0xCDA348C7, 0x445D, 0x4471, [0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56])
LOG_GUID = bytes(range(0x40, 0x50))


def header(seq, log_guid=bytes(16), log_offset=LOG_AT, log_length=MiB, bad_crc=False):
    h = bytearray(4 * KiB)
    h[0:4] = b"head"
    struct.pack_into("<Q", h, 8, seq)
    h[16:32] = bytes(range(1, 17))
    h[32:48] = bytes(range(17, 33))
    h[48:64] = log_guid
    struct.pack_into("<HHIQ", h, 64, 0, 1, log_length, log_offset)
    h = bytearray(sealed(h))
    if bad_crc:
        h[4] ^= 1
    return bytes(h)


def region_table(bat=(BAT_AT, MiB), meta=(META_AT, MiB), bad_crc=False):
    t = bytearray(64 * KiB)
    t[0:4] = b"regi"
    struct.pack_into("<I", t, 8, 2)
    t[16:32] = BAT_GUID
    struct.pack_into("<QII", t, 32, bat[0], bat[1], 1)
    t[48:64] = META_GUID
    struct.pack_into("<QII", t, 64, meta[0], meta[1], 1)
    t = bytearray(sealed(t))
    if bad_crc:
        t[4] ^= 1
    return bytes(t)


def metadata(block=MiB, size=64 * KiB, flags=0, logical=512, params_at=64 * KiB):
    m = bytearray(64 * KiB + 64)
    m[0:8] = b"metadata"
    struct.pack_into("<H", m, 10, 5)
    items = [(FILE_PARAMS, struct.pack("<II", block, flags)), (DISK_SIZE, struct.pack("<Q", size)),
             (PAGE83, bytes(range(16))), (LOGICAL, struct.pack("<I", logical)),
             (PHYSICAL, struct.pack("<I", 4096))]
    at = 64 * KiB
    for i, (g, value) in enumerate(items):
        where = params_at if i == 0 else at
        m[32 + 32 * i:48 + 32 * i] = g
        struct.pack_into("<III", m, 48 + 32 * i, where, len(value), 4)
        if where + len(value) <= len(m):
            m[where:where + len(value)] = value
        at += len(value)
    return bytes(m)


def log_entry(length=8 * KiB, seq=5):
    """One entry writing a 4 KiB sector of block 0's data at DATA_AT + 4 KiB."""
    e = bytearray(8 * KiB)
    e[0:4] = b"loge"
    struct.pack_into("<IIQI", e, 8, length, 0, seq, 1)
    e[32:48] = LOG_GUID
    struct.pack_into("<QQ", e, 48, DATA_AT + 64 * KiB, DATA_AT + 64 * KiB)
    sector = bytes([0x77]) * 4096
    e[64:68] = b"desc"
    e[68:72] = sector[4092:]
    e[72:80] = sector[:8]
    struct.pack_into("<QQ", e, 80, DATA_AT + 4 * KiB, seq)
    e[4096:4100] = b"data"
    struct.pack_into("<I", e, 4100, seq >> 32)
    e[4104:8188] = sector[8:4092]
    struct.pack_into("<I", e, 8188, seq & 0xFFFFFFFF)
    return sealed(e)


def image(headers=None, regions=None, meta=None, bat=None, log=None, size=DATA_AT + 64 * KiB,
          truncate=None):
    """Pieces to write at their offsets; block 0 (64 KiB of data) at DATA_AT."""
    headers = headers or (header(1), header(2))
    regions = regions or (region_table(), region_table())
    bat = bat if bat is not None else [DATA_AT | 6]
    pieces = [(0, b"vhdxfile" + "qcowkit".encode("utf-16-le")),
              (64 * KiB, headers[0]), (128 * KiB, headers[1]),
              (192 * KiB, regions[0]), (256 * KiB, regions[1]),
              (META_AT, meta or metadata()),
              (BAT_AT, b"".join(struct.pack("<Q", e) for e in bat)),
              (DATA_AT, bytes((k % 251) + 1 for k in range(64 * KiB)))]
    if log:
        pieces.append((LOG_AT, log))
    return (truncate if truncate is not None else size, pieces)


def dirty(**kw):
    return image(headers=(header(1, LOG_GUID, **kw), header(2, LOG_GUID, **kw)), log=log_entry())


IMAGES = [
    ("vhdx-valid", "ok", "a dynamic VHDX with one block of 64 KiB used", image()),
    ("vhdx-header-checksum", "refuse:wrong CRC-32C checksum", "both headers' checksums off by one",
     image(headers=(header(1, bad_crc=True), header(2, bad_crc=True)))),
    ("vhdx-region-checksum", "refuse:no valid VHDX region table", "both region tables' checksums off",
     image(regions=(region_table(bad_crc=True), region_table(bad_crc=True)))),
    ("vhdx-region-past-eof", "refuse:BAT region at offset 1073741824", "the BAT region at 1 GiB",
     image(regions=(region_table(bat=(1 << 30, MiB)),) * 2)),
    ("vhdx-regions-overlap", "refuse:overlaps the header section", "the metadata region over the log",
     image(regions=(region_table(meta=(LOG_AT, MiB)),) * 2)),
    ("vhdx-block-past-eof", "refuse:points past the end of the file", "a BAT entry at 1 GiB",
     image(bat=[(1 << 30) | 6])),
    ("vhdx-block-on-metadata", "refuse:overlaps the headers, the log, the BAT or the metadata",
     "a block in the metadata region", image(bat=[META_AT | 6])),
    ("vhdx-blocks-overlap", "refuse:overlap in the file", "two BAT entries naming one block",
     image(meta=metadata(size=MiB + 64 * KiB), bat=[DATA_AT | 6, DATA_AT | 6], size=DATA_AT + MiB)),
    ("vhdx-bat-state", "refuse:unknown state 5", "a BAT entry of state 5", image(bat=[DATA_AT | 5])),
    ("vhdx-huge-blocks", "refuse:over the limit", "64 TiB of 1 MiB blocks",
     image(meta=metadata(size=64 << 40))),
    ("vhdx-bat-too-small", "refuse:is too small for", "a 1 TiB disk with a 1 MiB BAT",
     image(meta=metadata(size=1 << 40))),
    ("vhdx-block-size", "refuse:not a power of two from 1 MiB to 256 MiB", "3 MiB blocks",
     image(meta=metadata(block=3 * MiB))),
    ("vhdx-block-size-small", "refuse:not a power of two from 1 MiB to 256 MiB", "64 KiB blocks",
     image(meta=metadata(block=64 * KiB))),
    ("vhdx-sector-size", "refuse:logical sector size 1024", "1024-byte logical sectors",
     image(meta=metadata(logical=1024))),
    ("vhdx-item-past-region", "refuse:lies outside the metadata region",
     "the file parameters past the metadata region's end", image(meta=metadata(params_at=MiB - 4))),
    ("vhdx-differencing", "refuse:differencing", "has-parent set in the file parameters",
     image(meta=metadata(flags=2))),
    ("vhdx-log-past-eof", "refuse:VHDX log at offset 1073741824", "a dirty log at 1 GiB",
     dirty(log_offset=1 << 30)),
    ("vhdx-log-entry-past-log", "refuse:log entry at log offset 0: length 2097152",
     "a log entry of 2 MiB in a 1 MiB log",
     image(headers=(header(1, LOG_GUID), header(2, LOG_GUID)), log=log_entry(length=2 * MiB))),
    ("vhdx-log-overlapping", "refuse:entries overlap", "every log sector claims a 1 MiB entry",
     (lambda size, pieces: (size, pieces + [(LOG_AT + pos, b"loge" + bytes(4) + struct.pack("<I", MiB)
                                             + bytes(20) + LOG_GUID) for pos in range(0, MiB, 4 * KiB)]))(
         *image(headers=(header(1, LOG_GUID), header(2, LOG_GUID))))),
    ("vhdx-truncated", "refuse:too small for a VHDX header section", "the first 100 KiB only",
     image(truncate=100 * KiB)),
]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "expected.tsv"), "w") as tsv:
        for name, expect, what, (size, pieces) in IMAGES:
            with open(os.path.join(out, name + ".vhdx"), "wb") as f:
                f.truncate(size)
                for at, data in pieces:
                    if at < size:
                        f.seek(at)
                        f.write(data[:size - at])
            tsv.write("%s\tvhdx\t%s\t%s\n" % (name, expect, what))


main()
