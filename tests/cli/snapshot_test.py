#!/usr/bin/env python3
"""qcowkit snapshot against qemu-img, on every kind of image qemu-img makes.

usage: snapshot_test.py QCOWKIT IMAGES_DIR WORK_DIR

For each image (a copy): qcowkit creates snapshots around qemu-io writes,
qemu-img checks the result clean, lists the same snapshots, and reads each
snapshot's view byte-identical to what the image held when it was taken;
qcowkit applies and deletes them, and qemu-img's own snapshots are applied
and deleted by qcowkit. Bad input (unknown names, mixed actions, raw images,
1-bit refcounts) is refused with a message and the file left as it was.
"""
import filecmp
import hashlib
import os
import shutil
import sys

QCOWKIT, IMAGES, WORK = sys.argv[1:4]
from cli_test_support import failures, fail, run, ok, qemu_check_clean  # noqa: E402


def snapshot_view(what, path, name, out):
    return ok(what, "qemu-img", "convert", "-O", "raw", "-l", f"snapshot.name={name}", path, out) is not None


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def same_contents(what, image, raw):
    rc, out, err = run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", image, raw)
    if rc != 0:
        fail(f"{what}: qemu-img compare exit {rc}: {(out + err).strip()[:300]}")


def exercise(name, source, work):
    image = os.path.join(work, f"{name}.qcow2")
    shutil.copyfile(source, image)
    _, listed_before, _ = run("qemu-img", "snapshot", "-l", image)
    before = os.path.join(work, f"{name}-before.raw")
    ok(f"{name}: raw copy", "qemu-img", "convert", "-O", "raw", image, before)
    # Snapshot, then change the image under it (COW of shared clusters).
    if ok(f"{name}: create s1", QCOWKIT, "snapshot", "-c", "s1", image) is None:
        return
    qemu_check_clean(f"{name} after create", image)
    ok(f"{name}: qemu-io write", "qemu-io", "-c", "write -P 0x5a 0 192k", "-c", "write -P 0x3c 1M 4k", image)
    after = os.path.join(work, f"{name}-after.raw")
    ok(f"{name}: raw copy after", "qemu-img", "convert", "-O", "raw", image, after)
    ok(f"{name}: create s2", QCOWKIT, "snapshot", "-c", "s2", image)
    qemu_check_clean(f"{name} after second create", image)
    ours = ok(f"{name}: list", QCOWKIT, "snapshot", "-l", image)
    theirs = ok(f"{name}: qemu list", "qemu-img", "snapshot", "-l", image)
    if ours is not None and ours != theirs:
        fail(f"{name}: snapshot -l differs from qemu-img's:\n{ours}\n{theirs}")
    view = os.path.join(work, f"{name}-s1.raw")
    if snapshot_view(f"{name}: s1 view", image, "s1", view) and not filecmp.cmp(view, before, shallow=False):
        fail(f"{name}: snapshot s1 does not hold what the image held when it was taken")
    # Apply s1: the image reads as before; then delete both.
    ok(f"{name}: apply s1", QCOWKIT, "snapshot", "-a", "s1", image)
    qemu_check_clean(f"{name} after apply", image)
    same_contents(f"{name} after apply", image, before)
    if snapshot_view(f"{name}: s2 view", image, "s2", view) and not filecmp.cmp(view, after, shallow=False):
        fail(f"{name}: snapshot s2 changed when s1 was applied")
    ok(f"{name}: delete s1", QCOWKIT, "snapshot", "-d", "s1", image)
    s2_id = next((row.split()[0] for row in (theirs or "").splitlines()[2:] if row.split()[1:2] == ["s2"]), "?")
    ok(f"{name}: delete s2 by id", QCOWKIT, "snapshot", "-d", s2_id, image)
    qemu_check_clean(f"{name} after delete", image)
    same_contents(f"{name} after delete", image, before)
    # qemu-img's snapshots, applied and deleted by qcowkit.
    ok(f"{name}: qemu snapshot", "qemu-img", "snapshot", "-c", "q1", image)
    ok(f"{name}: qemu-io write", "qemu-io", "-c", "write -P 0x77 64k 128k", image)
    ok(f"{name}: apply q1", QCOWKIT, "snapshot", "-a", "q1", image)
    same_contents(f"{name} after applying qemu's snapshot", image, before)
    ok(f"{name}: delete q1", QCOWKIT, "snapshot", "-d", "q1", image)
    qemu_check_clean(f"{name} after deleting qemu's snapshot", image)
    rc, out, _ = run("qemu-img", "snapshot", "-l", image)
    if out != listed_before:
        fail(f"{name}: the snapshot list is not back to what it was:\n{out}\n{listed_before}")


def refused(what, image, *args, usage=False):
    before = digest(image)
    rc, out, err = run(QCOWKIT, "snapshot", *args, image)
    if rc == 0 or not err.strip():
        fail(f"{what}: exit {rc} with message {err.strip()!r}; expected a refusal")
    if usage and rc != 2:
        fail(f"{what}: exit {rc}, expected the usage status 2")
    if digest(image) != before:
        fail(f"{what}: the file changed although the request was refused")


def main():
    for tool in ("qemu-img", "qemu-io"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: apt-get install qemu-utils", file=sys.stderr)
            sys.exit(1)
    os.makedirs(WORK, exist_ok=True)
    tested = 0
    with open(os.path.join(IMAGES, "images.tsv")) as f:
        for line in f:
            name, qcow2, _raw, backing = line.rstrip("\n").split("\t")
            if backing != "-" or name == "rc1":
                continue
            exercise(name, qcow2, WORK)
            tested += 1

    # Bad input.
    image = os.path.join(WORK, "bad.qcow2")
    ok("bad: create", "qemu-img", "create", "-q", "-f", "qcow2", image, "4M")
    ok("bad: snapshot", QCOWKIT, "snapshot", "-c", "only", image)
    refused("delete of an unknown snapshot", image, "-d", "nosuch")
    refused("apply of an unknown snapshot", image, "-a", "nosuch")
    refused("-l with -c", image, "-l", "-c", "x", usage=True)
    refused("an empty name", image, "-c", "")
    raw = os.path.join(WORK, "bad.raw")
    ok("bad: raw", "qemu-img", "create", "-q", "-f", "raw", raw, "1M")
    refused("a raw image", raw, "-f", "raw", "-c", "x")
    rc1 = os.path.join(WORK, "rc1.qcow2")
    ok("bad: rc1", "qemu-img", "create", "-q", "-f", "qcow2", "-o", "refcount_bits=1", rc1, "4M")
    ok("bad: rc1 write", "qemu-io", "-c", "write 0 64k", rc1)
    refused("1-bit refcounts", rc1, "-c", "x")

    print(f"snapshot: {tested} image kinds, {len(failures)} failures")
    sys.exit(1 if failures or tested == 0 else 0)


main()
