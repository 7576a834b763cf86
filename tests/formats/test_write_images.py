#!/usr/bin/env python3
"""Images qcowkit writes are what qemu-img expects: `qcowkit convert -O
vpc|vdi|vmdk|vhdx` gives a file `qemu-img check` finds clean (vdi, vmdk, vhdx;
qemu-img has no check for vpc), `qemu-img compare` finds identical to the source, and `qemu-img info`
gives the virtual size qemu-img's own conversion has. `qcowkit create`
sizes images as `qemu-img create` does, for a table of sizes.

usage: test_write_images.py QCOWKIT IMAGES_DIR WORK_DIR"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from interop_common import require, run  # noqa: E402

qcowkit, images, work = sys.argv[1], sys.argv[2], sys.argv[3]
require("qemu-img")
os.makedirs(work, exist_ok=True)
failures = []
checked = 0

OUTPUTS = [  # (format, -o options, name)
    ("vpc", "subformat=dynamic", "vpc-dynamic"),
    ("vpc", "subformat=fixed", "vpc-fixed"),
    ("vpc", "subformat=dynamic,force_size=on", "vpc-force-size"),
    ("vpc", "subformat=fixed,force_size=on", "vpc-fixed-force"),
    ("vdi", "static=off", "vdi-dynamic"),
    ("vdi", "static=on", "vdi-static"),
    ("vmdk", "subformat=monolithicSparse", "vmdk-sparse"),
    ("vmdk", "subformat=streamOptimized", "vmdk-stream"),
    ("vhdx", "subformat=dynamic", "vhdx-dynamic"),
    ("vhdx", "subformat=fixed", "vhdx-fixed"),
    ("vhdx", "subformat=dynamic,block_size=1M,log_size=2M,block_state_zero=off", "vhdx-dynamic-1m"),
]
SOURCES = ["reference.raw", "odd.raw", "vpc-dynamic.vpc", "vdi-dynamic.vdi", "vmdk-stream.vmdk",
           "qcow-plain.qcow", "vhdx-dynamic.vhdx"]


def fresh(path):
    if os.path.exists(path):
        os.unlink(path)
    return path


def virtual_size(fmt, path):
    """qemu-img's idea of the size, or None when it cannot open the image
    (it cannot open an empty fixed VHD, even one it made)."""
    proc = run("qemu-img", "info", "-f", fmt, "--output=json", path, check=False)
    return json.loads(proc.stdout)["virtual-size"] if proc.returncode == 0 else None


def source_format(name):
    return name.rsplit(".", 1)[1]


for fmt, opts, oname in OUTPUTS:
    for src in SOURCES:
        checked += 1
        label = "%s from %s" % (oname, src)
        src_path = os.path.join(images, src)
        sfmt = source_format(src)
        ours = fresh(os.path.join(work, "ours-%s-%s" % (oname, src)))
        theirs = fresh(os.path.join(work, "theirs-%s-%s" % (oname, src)))
        proc = run(qcowkit, "convert", "-f", sfmt, "-O", fmt, "-o", opts, src_path, ours, check=False)
        if proc.returncode != 0:
            failures.append("%s: convert exit %d: %s" % (label, proc.returncode, proc.stderr.strip()))
            continue
        if fmt != "vpc":  # qemu-img has no check for vpc
            proc = run("qemu-img", "check", "-f", fmt, ours, check=False)
            if proc.returncode != 0:
                failures.append("%s: qemu-img check exit %d: %s%s" % (label, proc.returncode, proc.stdout, proc.stderr))
        proc = run("qemu-img", "compare", "-f", sfmt, "-F", fmt, src_path, ours, check=False)
        if proc.returncode != 0:
            failures.append("%s: qemu-img compare exit %d: %s%s" % (label, proc.returncode, proc.stdout.strip(), proc.stderr.strip()))
        run("qemu-img", "convert", "-f", sfmt, "-O", fmt, "-o", opts, src_path, theirs)
        a, b = virtual_size(fmt, ours), virtual_size(fmt, theirs)
        if a != b:
            failures.append("%s: virtual size %d, qemu-img's conversion has %d" % (label, a, b))
        # Dynamic outputs stay sparse: no larger on disk than qemu-img's.
        if ("dynamic" in oname or "vmdk" in oname) and os.stat(ours).st_blocks > os.stat(theirs).st_blocks * 1.1 + 16:
            failures.append("%s: %d blocks on disk, qemu-img's %d" % (label, os.stat(ours).st_blocks, os.stat(theirs).st_blocks))
        for path in (ours, theirs):
            os.unlink(path)

# -W (any order) cannot break a streaming writer: it stays in order.
checked += 1
out = fresh(os.path.join(work, "stream-W.vmdk"))
src = os.path.join(images, "reference.raw")
proc = run(qcowkit, "convert", "-W", "-m", "8", "-O", "vmdk", "-o", "subformat=streamOptimized", src, out, check=False)
if proc.returncode != 0 or run("qemu-img", "compare", "-f", "raw", "-F", "vmdk", src, out, check=False).returncode != 0:
    failures.append("convert -W -O vmdk streamOptimized: exit %d %s, or not identical" % (proc.returncode, proc.stderr.strip()))

# create: the same virtual size as qemu-img create, over sizes that exercise
# every CHS rule (17, 31, 63 and 255 sectors per track, the CHS maximum,
# the 2040 GiB limit) and odd sizes.
SIZES = ["0", "512", "1000000", "1M", "10M", "33554432", "1G", "4G", "31G", "127G", "130G",
         "2000G", "2040G"]
for fmt, opts, oname in OUTPUTS:
    for size in SIZES:
        checked += 1
        if "fixed" in opts and size.endswith("G") and int(size[:-1]) > 64:
            continue  # a fixed image's file is as large as its disk (sparse, but tmpfs may refuse)
        big = size.endswith("G") and int(size[:-1]) > 1024
        if fmt == "vmdk" and big:
            # A known limit: qcowkit holds every grain table in memory, at
            # most 64 MiB of them (1 TiB of 64 KiB grains); it must refuse
            # larger images with a message, not make a broken one.
            proc = run(qcowkit, "create", "-q", "-f", fmt, "-o", opts, fresh(os.path.join(work, "big")), size, check=False)
            if proc.returncode == 0 or "at most 1 TiB" not in proc.stderr:
                failures.append("create %s %s: expected a refusal naming the 1 TiB limit, got exit %d %s" % (oname, size, proc.returncode, proc.stderr.strip()))
            continue
        ours = fresh(os.path.join(work, "create-ours"))
        theirs = fresh(os.path.join(work, "create-theirs"))
        proc = run(qcowkit, "create", "-q", "-f", fmt, "-o", opts, ours, size, check=False)
        qproc = run("qemu-img", "create", "-q", "-f", fmt, "-o", opts, theirs, size, check=False)
        if (proc.returncode == 0) != (qproc.returncode == 0):
            failures.append("create %s %s: exit %d, qemu-img's %d (%s)" % (oname, size, proc.returncode, qproc.returncode, proc.stderr.strip()))
        elif proc.returncode == 0:
            a, b = virtual_size(fmt, ours), virtual_size(fmt, theirs)
            if a != b:
                failures.append("create %s %s: virtual size %s, qemu-img's %s" % (oname, size, a, b))
            if fmt != "vpc" and a is not None:
                proc = run("qemu-img", "check", "-f", fmt, ours, check=False)
                if proc.returncode != 0:
                    failures.append("create %s %s: qemu-img check exit %d" % (oname, size, proc.returncode))
        for path in (ours, theirs):
            if os.path.exists(path):
                os.unlink(path)

for f in failures:
    print("FAIL " + f)
print("%d cases, %d failures" % (checked, len(failures)))
sys.exit(1 if failures else 0)
