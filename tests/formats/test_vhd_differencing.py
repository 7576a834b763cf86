#!/usr/bin/env python3
"""A differencing VHD reads through its parent: sectors its blocks' bitmaps
mark present come from the child, every other sector (and every block the
BAT leaves unallocated) from the parent. qemu-img cannot create differencing
VHDs, so this test writes one itself (write_child below, after the VHD
specification: footer type 4, dynamic header with the parent's Unicode name
and a W2ru parent locator, BAT, blocks of a sector bitmap, most significant
bit first, then data) over a parent qemu-img made, and checks qcowkit's
reading against the bytes it computes.

Also: `qcowkit info` names the parent as backing-filename (qemu-img 7.2
does not: it reads a differencing VHD as a dynamic one, ignoring the
bitmaps and the parent, so its conversion is not the reference here);
without --backing-chain a verb that reads contents refuses the image and
names the parent; a parent name that is not a plain file name is never
followed.

usage: test_vhd_differencing.py QCOWKIT WORK_DIR"""
import json
import os
import random
import shutil
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from interop_common import require, run  # noqa: E402

qcowkit, work = sys.argv[1], sys.argv[2]
require("qemu-img", "qemu-io")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
failures = []


def expect(ok, what):
    print(("ok " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def checksum(data):
    return (~sum(data)) & 0xFFFFFFFF


BLOCK = 2 << 20
SECTORS_PER_BLOCK = BLOCK // 512
BITMAP = 512  # 4096 sectors, one bit each, padded to a sector


def write_child(path, parent_footer, locator_name, blocks):
    """blocks: {block index: (set of present sectors, bytes of the block)}"""
    size = struct.unpack_from(">Q", parent_footer, 48)[0]
    entries = (size + BLOCK - 1) // BLOCK
    footer = bytearray(parent_footer)
    struct.pack_into(">I", footer, 60, 4)  # disk type: differencing
    struct.pack_into(">Q", footer, 16, 512)  # data offset: the dynamic header
    footer[68:84] = bytes(range(1, 17))  # a unique id of its own
    struct.pack_into(">I", footer, 64, 0)
    struct.pack_into(">I", footer, 64, checksum(footer))
    locator = locator_name.encode("utf-16-le")
    header_at, bat_at = 512, 1536
    bat_bytes = (entries * 4 + 511) // 512 * 512
    locator_at = bat_at + bat_bytes
    locator_space = (len(locator) + 511) // 512 * 512
    data_at = locator_at + locator_space
    header = bytearray(1024)
    header[0:8] = b"cxsparse"
    struct.pack_into(">QQIII", header, 8, 0xFFFFFFFFFFFFFFFF, bat_at, 0x00010000, entries, BLOCK)
    name = os.path.basename(locator_name.replace("\\", "/")).encode("utf-16-be")
    header[64:64 + len(name)] = name
    # Locator 0: platform W2ru, data space (sectors), length (bytes), offset.
    struct.pack_into(">4sIIIQ", header, 576, b"W2ru", locator_space // 512, len(locator), 0, locator_at)
    struct.pack_into(">I", header, 36, checksum(header))
    bat = [0xFFFFFFFF] * entries
    body = bytearray()
    for index in sorted(blocks):
        present, data = blocks[index]
        bat[index] = (data_at + len(body)) // 512
        bitmap = bytearray(BITMAP)
        for s in present:
            bitmap[s // 8] |= 0x80 >> (s % 8)
        body += bitmap + data
    with open(path, "wb") as f:
        f.write(footer)
        f.write(header)
        f.write(struct.pack(">%dI" % entries, *bat).ljust(bat_bytes, b"\xff"))
        f.write(locator.ljust(locator_space, b"\0"))
        f.write(body)
        f.write(footer)


rng = random.Random(16)
parent = os.path.join(work, "parent.vhd")
run("qemu-img", "create", "-q", "-f", "vpc", parent, "8M")
run("qemu-io", "-f", "vpc", "-c", "write -P 0x11 0 3M", "-c", "write -P 0x22 6M 1M", parent)
parent_raw = os.path.join(work, "parent.raw")
run("qemu-img", "convert", "-f", "vpc", "-O", "raw", parent, parent_raw)
expected = bytearray(open(parent_raw, "rb").read())
with open(parent, "rb") as f:
    parent_footer = f.read(512)

# Block 0: every other run of sectors present; block 2: all present; block 1
# and 3 unallocated (block 3 is parent data, block 1 half parent data).
blocks = {}
present0 = {s for s in range(SECTORS_PER_BLOCK) if (s // 3) % 2 == 0}
present0 |= set(range(4000, SECTORS_PER_BLOCK))  # a run up to the block's end
data0 = bytes(rng.getrandbits(8) for _ in range(BLOCK))
blocks[0] = (present0, data0)
data2 = bytes([0x5C]) * BLOCK
blocks[2] = (set(range(SECTORS_PER_BLOCK)), data2)
for index, (present, data) in blocks.items():
    for s in present:
        at = index * BLOCK + s * 512
        expected[at:at + 512] = data[s * 512:(s + 1) * 512]

child = os.path.join(work, "child.vhd")
write_child(child, parent_footer, ".\\parent.vhd", blocks)

out = os.path.join(work, "out.raw")
proc = run(qcowkit, "convert", "-O", "raw", child, out, check=False)
expect(proc.returncode != 0 and "parent.vhd" in proc.stderr and "--backing-chain" in proc.stderr,
       "without --backing-chain, convert refuses naming the parent: %r" % proc.stderr.strip())

run(qcowkit, "convert", "--backing-chain", "-O", "raw", child, out)
got = open(out, "rb").read()
expect(len(got) == len(expected), "converted size %d, expected %d" % (len(got), len(expected)))
first = next((i for i in range(min(len(got), len(expected))) if got[i] != expected[i]), None)
expect(got == expected, "contents match the child's sectors over the parent's (first difference: %s)" % first)

info = json.loads(run(qcowkit, "info", "--output=json", child).stdout)
expect(info.get("format") == "vpc", "info format %r" % info.get("format"))
expect(info.get("backing-filename") == "./parent.vhd",
       "info backing-filename %r" % info.get("backing-filename"))
human = run(qcowkit, "info", child).stdout
expect("backing file: ./parent.vhd" in human, "human info names the backing file")

# qcowkit compare reads the chain too.
proc = run(qcowkit, "compare", "--backing-chain", child, out, check=False)
expect(proc.returncode == 0, "qcowkit compare child vs its conversion: %s" % proc.stdout.strip())

# A parent locator that leaves the folder: with the CLI's default (refuse)
# nothing is opened; a name such as json:{...} is never followed.
evil = os.path.join(work, "evil.vhd")
write_child(evil, parent_footer, "json:{\"file\":\"/etc/passwd\"}", {})
proc = run(qcowkit, "convert", "--backing-chain", "-O", "raw", evil, out, check=False)
expect(proc.returncode != 0 and "not a plain file name" in proc.stderr,
       "a json: parent name is refused: %r" % proc.stderr.strip())

# qcowkit check: vpc has no check in qemu-img either.
proc = run(qcowkit, "check", child, check=False)
expect(proc.returncode == 63 and "does not support checks" in proc.stderr,
       "check says vpc has no checks, exit 63 (got %d)" % proc.returncode)

print("%d failures" % len(failures))
sys.exit(1 if failures else 0)
