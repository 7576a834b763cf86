#!/usr/bin/env python3
"""Seeded random workloads (odd-sized writes, zeroes, discards, compressed
writes, resizes, reopens) on images qcowkit creates and on images qemu-img
creates, mirrored on a raw file. Afterwards `qemu-img check` finds no leak
and no corruption, qcowkit's own check agrees, and `qemu-img compare` says
the image equals the mirror."""
import os
import shutil
import sys
import tempfile

from interop_common import qemu_check, read_manifest, require, run

driver, directory = sys.argv[1], sys.argv[2]
require("qemu-img")
work = tempfile.mkdtemp(prefix="qcowkit-workload-")
MIB = 1024 * 1024

# (name, who creates it, options, size)
configs = [
    ("ours-default", "ours", [], 16 * MIB),
    ("ours-v2", "ours", ["compat=0.10"], 16 * MIB),
    ("ours-c512", "ours", ["cluster_size=512"], 2 * MIB),
    ("ours-c512-rc64", "ours", ["cluster_size=512", "refcount_bits=64"], 2 * MIB),
    ("ours-c4k", "ours", ["cluster_size=4096"], 8 * MIB),
    ("ours-c2m", "ours", ["cluster_size=2097152"], 64 * MIB),
    ("ours-rc1", "ours", ["refcount_bits=1"], 16 * MIB),
    ("ours-rc8", "ours", ["refcount_bits=8"], 16 * MIB),
    ("ours-lazy", "ours", ["lazy_refcounts=on"], 16 * MIB),
    ("ours-zstd", "ours", ["compression_type=zstd"], 16 * MIB),
    ("ours-prealloc", "ours", ["preallocation=metadata"], 16 * MIB),
    ("ours-extl2", "ours", ["extended_l2=on", "cluster_size=65536"], 16 * MIB),
    ("ours-extl2-c16k", "ours", ["extended_l2=on", "cluster_size=16384"], 8 * MIB),
    ("qemu-default", "qemu", [], 16 * MIB),
    ("qemu-v2", "qemu", ["compat=0.10"], 16 * MIB),
    ("qemu-c512", "qemu", ["cluster_size=512"], 2 * MIB),
    ("qemu-rc1", "qemu", ["refcount_bits=1"], 16 * MIB),
    ("qemu-rc64", "qemu", ["refcount_bits=64"], 16 * MIB),
    ("qemu-zstd", "qemu", ["compression_type=zstd"], 16 * MIB),
    ("qemu-prealloc", "qemu", ["preallocation=metadata"], 16 * MIB),
    ("qemu-extl2", "qemu", ["extended_l2=on"], 16 * MIB),
]
# Images qemu-img made with data already in them, including compressed ones
# and one with an internal snapshot that must survive.
copied = {"v2", "c4k", "zlib", "zstd", "zlib-c4k", "snapshot", "rc8", "lazy", "prealloc-full",
          "extl2", "extl2-c2m"}

failures = []
jobs = []
for name, who, options, size in configs:
    image = os.path.join(work, name + ".qcow2")
    raw = os.path.join(work, name + ".raw")
    if who == "ours":
        run(driver, "create", image, str(size), *options)
    else:
        opts = ",".join(options)
        run("qemu-img", "create", "-q", "-f", "qcow2", *(["-o", opts] if opts else []), image, str(size))
    with open(raw, "wb") as f:
        f.truncate(size)
    jobs.append((name, image, raw))
for name, image, raw, backing in read_manifest(directory):
    if name in copied:
        dst = os.path.join(work, "copy-" + name + ".qcow2")
        shutil.copyfile(image, dst)
        dst_raw = os.path.join(work, "copy-" + name + ".raw")
        shutil.copyfile(raw, dst_raw)
        jobs.append(("copy-" + name, dst, dst_raw))

for seed, (name, image, raw) in enumerate(jobs, start=1):
    proc = run(driver, "workload", image, raw, str(seed), "400", check=False)
    if proc.returncode != 0:
        failures.append("%s: workload: %s" % (name, proc.stderr.strip()))
        continue
    code, report = qemu_check(image)
    if code != 0 or report.get("leaks", 0) or report.get("corruptions", 0):
        failures.append("%s: qemu-img check exit %d: %s" % (name, code, report))
        continue
    ours = dict(line.split("=") for line in run(driver, "check", image).stdout.split())
    if ours["leaks"] != "0" or ours["corruptions"] != "0":
        failures.append("%s: our check: %s" % (name, ours))
        continue
    proc = run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", image, raw, check=False)
    if proc.returncode != 0:
        failures.append("%s: qemu-img compare: %s" % (name, proc.stdout.strip()))
        continue
    if name == "copy-snapshot":
        snaps = run("qemu-img", "snapshot", "-l", image).stdout
        if "before-edits" not in snaps:
            failures.append("%s: the snapshot is gone: %s" % (name, snaps))
            continue
    print("ok %s" % name)

shutil.rmtree(work, ignore_errors=True)
for f in failures:
    print("FAIL " + f)
print("%d passed, %d failed" % (len(jobs) - len(failures), len(failures)))
sys.exit(1 if failures else 0)
