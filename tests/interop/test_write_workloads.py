#!/usr/bin/env python3
"""Seeded random workloads (odd-sized writes, zeroes, discards, compressed
writes, resizes, reopens) on images qcowkit creates and on images qemu-img
creates, mirrored on a raw file. Afterwards `qemu-img check` finds no leak
and no corruption, qcowkit's own check agrees, and `qemu-img compare` says
the image equals the mirror.

Images with internal snapshots check copy-on-write: each snapshot's view is
converted to raw by qemu-img before and after the workload, and the two must
be equal byte for byte, except for zeroes past the old end when the workload
grew the image (a write that changed a cluster the snapshot shares instead
of copying it shows up here, not in the active layer).

Images with persistent bitmaps (qemu-img bitmap --add, one enabled and
one disabled) check the bitmaps the engine maintains: afterwards
`qemu-img info` shows them not in use, and `qcowkit map --bitmap` (when
QCOWKIT is given) reads the enabled one dirty over every range the
workload changed and the disabled one clean.

usage: test_write_workloads.py DRIVER IMAGES_DIR [QCOWKIT]"""
import atexit
import filecmp
import functools
import json
import os
import shutil
import sys
import tempfile

from interop_common import qemu_check, read_manifest, require, run

driver, directory = sys.argv[1], sys.argv[2]
qcowkit = sys.argv[3] if len(sys.argv) > 3 else None
require("qemu-img")
work = tempfile.mkdtemp(prefix="qcowkit-workload-")
atexit.register(shutil.rmtree, work, ignore_errors=True)
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
# Images that get persistent bitmaps before the workload: name -> options.
with_bitmaps = {"ours-bitmaps": [], "qemu-bitmaps-c4k": ["cluster_size=4096"]}
configs += [("ours-bitmaps", "ours", [], 16 * MIB), ("qemu-bitmaps-c4k", "qemu", ["cluster_size=4096"], 8 * MIB)]
# Images qemu-img made with data already in them, including compressed ones
# and one with an internal snapshot that must survive.
copied = {"v2", "c4k", "zlib", "zstd", "zlib-c4k", "snapshot", "rc8", "lazy", "prealloc-full",
          "extl2", "extl2-c2m"}
# Copies that get an internal snapshot (qemu-img snapshot -c) of their data
# before the workload, so its writes meet clusters shared with a snapshot:
# compressed, 4 KiB clusters, version 2, extended L2. (The workload does not
# resize images with snapshots; the other copies keep the resizes.)
snapshot_first = {"zlib", "c4k", "v2", "extl2"}


def snapshot_names(image):
    info = json.loads(run("qemu-img", "info", "-U", "--output=json", image).stdout)
    return [s["name"] for s in info.get("snapshots", [])]


def snapshot_views(image, tag):
    """Each internal snapshot's view, converted to raw by qemu-img."""
    views = {}
    for snap in snapshot_names(image):
        out = "%s.%s.%s.raw" % (image, snap, tag)
        run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", "-l", "snapshot.name=" + snap, image, out)
        views[snap] = out
    return views


def view_change(before, after):
    """None when the snapshot's view after the workload is the one before,
    else where it differs. The workload may grow the image (never shrink it
    while it has snapshots); qemu-img then reads the snapshot at the new
    size, zeroes past its old end, so only those bytes may be added."""
    with open(before, "rb") as fa, open(after, "rb") as fb:
        offset = 0
        while True:
            x = fa.read(1 << 20)
            y = fb.read(len(x)) if x else b""
            if x != y:
                n = min(len(x), len(y))
                at = next((i for i in range(n) if x[i] != y[i]), n)
                if at == n:
                    return "the view shrank from %d to %d bytes" % (os.path.getsize(before), offset + n)
                return "first difference at byte %d" % (offset + at)
            if not x:
                break
            offset += len(x)
        while True:
            y = fb.read(1 << 20)
            if not y:
                return None
            if y.count(0) != len(y):
                at = next(i for i in range(len(y)) if y[i])
                return "byte %d past the snapshot's old end is not zero" % (offset + at)
            offset += len(y)


def all_zero(path):
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            if block.count(0) != len(block):
                return False
    return True

def bitmap_problem(name, image, log):
    """What is wrong with the bitmaps after the workload, or None."""
    info = json.loads(run("qemu-img", "info", "--output=json", image).stdout)
    bitmaps = {b["name"]: b for b in info.get("format-specific", {}).get("data", {}).get("bitmaps", [])}
    if sorted(bitmaps) != ["disabled", "enabled"]:
        return "bitmaps after the workload: %s" % sorted(bitmaps)
    if any("in-use" in b["flags"] for b in bitmaps.values()):
        return "bitmaps still in use after a clean close: %s" % bitmaps
    if qcowkit is None:
        return None
    def dirty(bitmap):
        out = run(qcowkit, "map", "--bitmap", bitmap, "--output=json", image).stdout
        return [(r["start"], r["start"] + r["length"]) for r in json.loads(out) if r["dirty"]]
    if dirty("disabled"):
        return "the disabled bitmap recorded writes: %s" % dirty("disabled")[:4]
    runs = dirty("enabled")
    with open(log) as f:
        changes = [tuple(map(int, line.split())) for line in f if line.strip()]
    if not changes:
        return "the workload changed nothing"
    for offset, length in changes:
        pos = offset
        for start, end in runs:
            if start <= pos < end:
                pos = end
        if pos < offset + length:
            return "the enabled bitmap misses bytes %d..%d (changed at %d+%d)" % (pos, offset + length, offset, length)
    return None


def make_config_image(name, who, options, size):
    """Creates an empty image as configured, and its all-zero raw mirror."""
    image = os.path.join(work, name + ".qcow2")
    raw = os.path.join(work, name + ".raw")
    if who == "ours":
        run(driver, "create", image, str(size), *options)
    else:
        opts = ",".join(options)
        run("qemu-img", "create", "-q", "-f", "qcow2", *(["-o", opts] if opts else []), image, str(size))
    if name in with_bitmaps:
        run("qemu-img", "bitmap", "--add", "-g", "8K", image, "enabled")
        run("qemu-img", "bitmap", "--add", "--disable", image, "disabled")
    with open(raw, "wb") as f:
        f.truncate(size)
    return image, raw


def copy_qemu_image(name, image, raw):
    """Copies one of qemu-img's images with data and its raw reference."""
    dst = os.path.join(work, "copy-" + name + ".qcow2")
    shutil.copyfile(image, dst)
    dst_raw = os.path.join(work, "copy-" + name + ".raw")
    shutil.copyfile(raw, dst_raw)
    if name in snapshot_first:
        run("qemu-img", "snapshot", "-c", "pre-workload", dst)
    return dst, dst_raw


# Each job makes its files when it starts and removes them when it ends.
failures = []
jobs = [(config[0], functools.partial(make_config_image, *config)) for config in configs]
jobs += [("copy-" + name, functools.partial(copy_qemu_image, name, image, raw))
         for name, image, raw, backing in read_manifest(directory) if name in copied]


def run_job(seed, name, make_files):
    """Makes one job's image, runs its workload and checks. Returns (problem
    or None, number of snapshot views checked)."""
    image, raw = make_files()
    before = snapshot_views(image, "before")
    for snap, view in before.items():
        if all_zero(view):
            return ("snapshot %s reads as zeroes before the workload: nothing to protect" % snap), 0
    log = image + ".changes"
    proc = run(driver, "workload", image, raw, str(seed), "400", log, check=False)
    if proc.returncode != 0:
        return "workload: %s" % proc.stderr.strip(), 0
    code, report = qemu_check(image)
    if code != 0 or report.get("leaks", 0) or report.get("corruptions", 0):
        return "qemu-img check exit %d: %s" % (code, report), 0
    ours = dict(line.split("=") for line in run(driver, "check", image).stdout.split())
    if ours["leaks"] != "0" or ours["corruptions"] != "0":
        return "our check: %s" % ours, 0
    proc = run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", image, raw, check=False)
    if proc.returncode != 0:
        return "qemu-img compare: %s" % proc.stdout.strip(), 0
    problem = bitmap_problem(name, image, log) if name in with_bitmaps else None
    if problem:
        return problem, 0
    if name == "copy-snapshot" and "before-edits" not in before:
        return "the image has no snapshot before-edits to check", 0
    after = snapshot_views(image, "after")
    if sorted(after) != sorted(before):
        return "snapshots %s before the workload, %s after" % (sorted(before), sorted(after)), 0
    changed = ["%s (%s)" % (snap, view_change(before[snap], after[snap])) for snap in before
               if view_change(before[snap], after[snap])]
    if changed:
        return "the workload changed what snapshot(s) read: %s" % ", ".join(changed), 0
    for snap in before:
        # The snapshot differs from the active layer: the workload did write
        # over data the snapshot keeps, so the comparison above meant something.
        if filecmp.cmp(before[snap], raw, shallow=False):
            return "snapshot %s still equals the active layer" % snap, 0
    return None, len(before)


def remove_job_files(name):
    """Each job's files go when it ends, so the test holds one job's worth
    of disk at a time (all of them together are over a gigabyte)."""
    for entry in os.listdir(work):
        if entry.startswith(name + "."):
            os.unlink(os.path.join(work, entry))


snapshotted = 0
for seed, (name, make_files) in enumerate(jobs, start=1):
    try:
        problem, views = run_job(seed, name, make_files)
    except AssertionError as e:  # a tool failed; its output is in the message
        problem, views = str(e), 0
    finally:
        remove_job_files(name)
    if problem:
        failures.append("%s: %s" % (name, problem))
        continue
    snapshotted += views
    print("ok %s%s" % (name, " (%d snapshot(s) unchanged)" % views if views else ""), flush=True)

failed_jobs = len(failures)
if snapshotted < 1 + len(snapshot_first):
    failures.append("only %d snapshot views were checked" % snapshotted)
for f in failures:
    print("FAIL " + f)
print("%d passed, %d failed; %d snapshot views unchanged by the workloads"
      % (len(jobs) - failed_jobs, failed_jobs, snapshotted))
sys.exit(1 if failures else 0)
