#!/usr/bin/env python3
"""qcowkit measure against qemu-img measure: the same output, human and JSON,
for every image qemu-img makes and several output layouts, for --size, and
the same refusals for bad usage.

usage: measure_test.py QCOWKIT IMAGES_DIR
"""
import os
import shutil
import subprocess
import sys

QCOWKIT, IMAGES = sys.argv[1:3]
failures = []
compared = 0


def run(*cmd):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout


def same(*args):
    global compared
    theirs = run("qemu-img", "measure", *args)
    ours = run(QCOWKIT, "measure", *args)
    compared += 1
    if theirs[0] != 0:
        if ours[0] == 0:
            failures.append(f"measure {' '.join(args)}: qemu-img refuses it, qcowkit says {ours[1]!r}")
    elif ours != theirs:
        failures.append(f"measure {' '.join(args)}: qcowkit {ours}, qemu-img {theirs}")


if shutil.which("qemu-img") is None:
    print("qemu-img is missing: apt-get install qemu-utils", file=sys.stderr)
    sys.exit(1)
layouts = [[], ["-o", "cluster_size=4k"], ["-o", "cluster_size=2M,refcount_bits=64"],
           ["-o", "extended_l2=on,cluster_size=128k"], ["-o", "cluster_size=512,refcount_bits=1"]]
with open(os.path.join(IMAGES, "images.tsv")) as f:
    for line in f:
        name, qcow2, raw, backing = line.rstrip("\n").split("\t")
        if backing != "-":
            continue
        for layout in layouts:
            same("-O", "qcow2", *layout, qcow2)
        same("--output=json", "-O", "qcow2", qcow2)
        same("-O", "raw", qcow2)
        same("-O", "qcow2", "-f", "raw", raw)
for size in ("1M", "1G", "3T", "12345678"):
    same("--size", size)
    for layout in layouts:
        same("--output=json", "--size", size, "-O", "qcow2", *layout)
for bad in (["--size", "1G", os.path.join(IMAGES, "images.tsv")], []):
    rc, _ = run(QCOWKIT, "measure", *bad)
    if rc == 0:
        failures.append(f"measure {bad}: accepted bad usage")
for f in failures:
    print("FAIL: " + f)
print(f"measure: {compared} comparisons with qemu-img, {len(failures)} failures")
sys.exit(1 if failures or compared < 50 else 0)
