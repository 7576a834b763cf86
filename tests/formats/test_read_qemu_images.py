#!/usr/bin/env python3
"""Every vpc, vdi, vmdk, vhdx and qcow image qemu-img makes reads back through qcowkit
byte-identical to qemu-img's own conversion to raw; `qcowkit info` reports
qemu-img's format name, virtual size and cluster size; `qcowkit map` agrees
with `qemu-img map` on what is data and what reads as zeroes.

usage: test_read_qemu_images.py QCOWKIT IMAGES_DIR WORK_DIR"""
import filecmp
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from interop_common import compare_maps, require, run  # noqa: E402

qcowkit, images, work = sys.argv[1], sys.argv[2], sys.argv[3]
require("qemu-img")
os.makedirs(work, exist_ok=True)
failures = []
rows = [line.rstrip("\n").split("\t") for line in open(os.path.join(images, "images.tsv"))]


def info(*args):
    return json.loads(run(*args).stdout)


def check_zero_ranges(our_map, raw_path):
    """None when every range `our_map` says reads as zeroes (zero or not
    data) is zeroes in `raw_path`, and the map covers the whole file."""
    end = 0
    with open(raw_path, "rb") as raw:
        for m in our_map:
            if m["start"] != end:
                return "gap at %d" % end
            end = m["start"] + m["length"]
            if m["zero"] or not m["data"]:
                raw.seek(m["start"])
                left = m["length"]
                while left:
                    chunk = raw.read(min(left, 1 << 20))
                    if chunk.count(0) != len(chunk):
                        return "range at %d mapped as zero holds data" % m["start"]
                    left -= len(chunk)
    if end != os.path.getsize(raw_path):
        return "map ends at %d, the disk at %d" % (end, os.path.getsize(raw_path))
    return None


for name, fmt, image, expected in rows:
    problems = []
    out = os.path.join(work, name + ".raw")
    if os.path.exists(out):
        os.unlink(out)
    proc = run(qcowkit, "convert", "-f", fmt, "-O", "raw", image, out, check=False)
    if proc.returncode != 0:
        problems.append("convert -O raw: exit %d: %s" % (proc.returncode, proc.stderr.strip()))
    elif os.path.getsize(out) != os.path.getsize(expected):
        problems.append("size %d, qemu-img's raw has %d" % (os.path.getsize(out), os.path.getsize(expected)))
    elif not filecmp.cmp(out, expected, shallow=False):
        problems.append("contents differ from qemu-img's conversion")
    if os.path.exists(out):
        os.unlink(out)

    theirs = info("qemu-img", "info", "-f", fmt, "--output=json", image)
    ours = info(qcowkit, "info", "-f", fmt, "--output=json", image)
    for key in ("format", "virtual-size", "cluster-size"):
        if ours.get(key) != theirs.get(key):
            problems.append("info %s: ours %r, qemu-img %r" % (key, ours.get(key), theirs.get(key)))
    # vmdk's format-specific fields (qcowkit leaves out the extents list).
    if fmt == "vmdk":
        for key in ("cid", "parent-cid", "create-type"):
            a = ours.get("format-specific", {}).get("data", {}).get(key)
            b = theirs["format-specific"]["data"].get(key)
            if a != b:
                problems.append("info format-specific %s: ours %r, qemu-img %r" % (key, a, b))
    # Found by content, as qemu-img finds it (a fixed VHD has no header:
    # both call it raw).
    detected = info(qcowkit, "info", "--output=json", image)["format"]
    qemu_detected = info("qemu-img", "info", "--output=json", image)["format"]
    if detected != qemu_detected:
        problems.append("detected as %s, qemu-img says %s" % (detected, qemu_detected))

    our_map = json.loads(run(qcowkit, "map", "-f", fmt, "--output=json", image).stdout)
    if fmt == "vhdx":
        # qemu-img 7.2's vhdx driver has no block status: it calls every
        # byte data. Ours must only never call data zero: whatever it maps
        # as zero or a hole reads as zeroes in qemu-img's conversion.
        problem = check_zero_ranges(our_map, expected)
    else:
        their_map = json.loads(run("qemu-img", "map", "-f", fmt, "--output=json", image).stdout)
        # Where the data lies in the file too, as qemu-img shows it, for the
        # images of one file (a vmdk descriptor's extents are other files,
        # whose offsets qcowkit's map leaves out).
        create_type = theirs.get("format-specific", {}).get("data", {}).get("create-type", "")
        one_file = fmt != "vmdk" or create_type in ("monolithicSparse", "streamOptimized")
        problem = compare_maps(our_map, their_map, ("zero", "data") + (("offset",) if one_file else ()))
    if problem:
        problems.append("map: " + problem)

    if problems:
        failures.extend("%s: %s" % (name, p) for p in problems)
    else:
        print("ok %s" % name)

# vhdx images with a log to replay: read through the replay (in memory: the
# file stays as it was), identical to what qemu-img reads after replaying
# the log itself.
dirty = [line.rstrip("\n").split("\t") for line in open(os.path.join(images, "dirty.tsv"))]
for name, image, expected in dirty:
    with open(image, "rb") as f:
        before = hashlib.sha256(f.read()).hexdigest()
    out = os.path.join(work, name + ".raw")
    proc = run(qcowkit, "convert", "-f", "vhdx", "-O", "raw", image, out, check=False)
    if proc.returncode != 0:
        failures.append("%s: convert -O raw: exit %d: %s" % (name, proc.returncode, proc.stderr.strip()))
    elif not filecmp.cmp(out, expected, shallow=False):
        failures.append("%s: contents differ from qemu-img's after its log replay" % name)
    with open(image, "rb") as f:
        if hashlib.sha256(f.read()).hexdigest() != before:
            failures.append("%s: a read-only open changed the file" % name)
    if os.path.exists(out):
        os.unlink(out)
    rows.append(name)
    if not any(f.startswith(name + ":") for f in failures):
        print("ok %s (log replayed read-only)" % name)

for f in failures:
    print("FAIL " + f)
print("%d images, %d failures" % (len(rows), len(failures)))
sys.exit(1 if failures or not rows else 0)
