#!/usr/bin/env python3
"""qcowkit commit against qemu-img commit, on the same chains.

usage: commit_test.py QCOWKIT IMAGES_DIR WORK_DIR

An overlay's data and zeroes go into its backing file (qcow2 or raw): the
backing file then reads as the overlay did (qemu-img compare against a raw
copy taken first), the overlay is empty but reads the same through the
chain, qemu-img check is clean on both, and qemu-img commit on copies gives
a byte-identical view. -d keeps the overlay's clusters; a smaller backing
file grows to the overlay's size. Bad input (no backing file, -b naming
another file, a backing file outside the folder without --backing-chain)
is refused and nothing changes. IMAGES_DIR is unused.
"""
import json
import os
import shutil
import sys

QCOWKIT, _IMAGES, WORK = sys.argv[1:4]
import cli_test_support  # noqa: E402
from cli_test_support import failures, fail, run, ok, digest  # noqa: E402


def w(name):
    return os.path.join(WORK, name)


def qemu_check_clean(what, path, fmt="qcow2"):
    if fmt == "qcow2":  # qemu-img checks no raw base
        cli_test_support.qemu_check_clean(what, path)


def same_contents(what, image, raw, fmt=None):
    args = ["-f", fmt] if fmt else []
    rc, out, err = run("qemu-img", "compare", *args, "-F", "raw", image, raw)
    if rc != 0:
        fail(f"{what}: qemu-img compare exit {rc}: {(out + err).strip()[:300]}")


def own_clusters(path):
    rc, out, _ = run("qemu-img", "map", "--output=json", path)
    return [e for e in json.loads(out) if e.get("depth") == 0 and e.get("present")] if rc == 0 else None


def make_chain(tag, fmt="qcow2", base_size="64M", overlay_size=None, folder=None):
    folder = folder or WORK
    base = os.path.join(folder, f"base-{tag}.{fmt}")
    ov, raw = w(f"ov-{tag}.qcow2"), w(f"raw-{tag}.raw")
    for p in (base, ov, raw):
        if os.path.exists(p):
            os.unlink(p)
    ok("base", "qemu-img", "create", "-q", "-f", fmt, base, base_size)
    ok("base data", "qemu-io", "-f", fmt, "-c", "write -P 0x11 0 4M", "-c", "write -P 0x12 20M 1M", base)
    extra = [overlay_size] if overlay_size else []
    ok("overlay", "qemu-img", "create", "-q", "-f", "qcow2", "-b", os.path.relpath(base, WORK), "-F", fmt, ov, *extra)
    ok("overlay data", "qemu-io", "-c", "write -P 0x21 1M 64k", "-c", "write -z 2M 64k",
       "-c", "write -P 0x22 30M 100k", "-c", "write -P 0x23 3M 512", ov)
    if overlay_size:
        ok("overlay tail", "qemu-io", "-c", "write -P 0x24 70M 64k", ov)
    ok("raw copy", "qemu-img", "convert", "-O", "raw", ov, raw)
    return base, ov, raw


def cases():
    for tag, fmt, overlay_size in [("q", "qcow2", None), ("raw", "raw", None), ("grow", "qcow2", "96M")]:
        base, ov, raw = make_chain(tag, fmt, overlay_size=overlay_size)
        twin_dir = w(f"twin-{tag}")
        shutil.rmtree(twin_dir, ignore_errors=True)
        os.makedirs(twin_dir)
        shutil.copyfile(base, os.path.join(twin_dir, os.path.basename(base)))
        shutil.copyfile(ov, os.path.join(twin_dir, os.path.basename(ov)))
        out = ok(f"commit {tag}", QCOWKIT, "commit", ov)
        if out is None:
            continue
        if out.strip() != "Image committed.":
            fail(f"commit {tag}: printed {out!r}")
        qemu_check_clean(f"commit {tag}: base", base, fmt)
        qemu_check_clean(f"commit {tag}: overlay", ov)
        same_contents(f"commit {tag}: base", base, raw, fmt)
        same_contents(f"commit {tag}: overlay through the chain", ov, raw)
        if own_clusters(ov):
            fail(f"commit {tag}: the overlay still allocates {own_clusters(ov)[:3]}")
        ok(f"qemu commit {tag}", "qemu-img", "commit", "-q", os.path.join(twin_dir, os.path.basename(ov)))
        rc, out, _ = run("qemu-img", "compare", "-f", fmt, "-F", fmt, base,
                         os.path.join(twin_dir, os.path.basename(base)))
        if rc != 0:
            fail(f"commit {tag}: qcowkit's and qemu-img's base files differ: {out.strip()}")

    base, ov, raw = make_chain("keep")
    before = own_clusters(ov)
    ok("commit -d", QCOWKIT, "commit", "-q", "-d", ov)
    same_contents("commit -d: base", base, raw)
    if own_clusters(ov) != before:
        fail("commit -d emptied the overlay")
    qemu_check_clean("commit -d", ov)
    base, ov, raw = make_chain("b")
    before = own_clusters(ov)
    ok("commit -b", QCOWKIT, "commit", "-q", "-b", base, ov)
    same_contents("commit -b: base", base, raw)
    if own_clusters(ov) != before:
        fail("commit -b emptied the overlay (-b implies -d)")


def deeper():
    """-b names a base two layers down: both layers above it go in."""
    base, mid, raw = make_chain("deep")
    top = w("top-deep.qcow2")
    if os.path.exists(top):
        os.unlink(top)
    ok("top", "qemu-img", "create", "-q", "-f", "qcow2", "-b", os.path.basename(mid), "-F", "qcow2", top)
    ok("top data", "qemu-io", "-c", "write -P 0x41 1M 4k", "-c", "write -P 0x42 40M 64k", top)
    ok("raw of top", "qemu-img", "convert", "-O", "raw", top, raw)
    twin_dir = w("twin-deep")
    shutil.rmtree(twin_dir, ignore_errors=True)
    os.makedirs(twin_dir)
    for p in (base, mid, top):
        shutil.copyfile(p, os.path.join(twin_dir, os.path.basename(p)))
    before = own_clusters(top)
    ok("commit -b two layers down", QCOWKIT, "commit", "-q", "-b", base, top)
    qemu_check_clean("commit -b deep: base", base)
    same_contents("commit -b deep: base", base, raw)
    if own_clusters(top) != before:
        fail("commit -b deep changed the top image")
    ok("qemu commit -b deep", "qemu-img", "commit", "-q", "-b", os.path.join(twin_dir, os.path.basename(base)),
       os.path.join(twin_dir, os.path.basename(top)))
    rc, out, _ = run("qemu-img", "compare", base, os.path.join(twin_dir, os.path.basename(base)))
    if rc != 0:
        fail(f"commit -b deep: qcowkit's and qemu-img's base files differ: {out.strip()}")


def refused(what, files, *args, status=1):
    before = [digest(f) for f in files]
    rc, out, err = run(QCOWKIT, "commit", *args)
    if rc != status or not err.strip():
        fail(f"{what}: exit {rc} with message {err.strip()!r}; expected exit {status} and a message")
    if [digest(f) for f in files] != before:
        fail(f"{what}: a file changed although the request was refused")


def bad_input():
    alone = w("alone.qcow2")
    ok("alone", "qemu-img", "create", "-q", "-f", "qcow2", alone, "16M")
    refused("no backing file", [alone], alone)
    base, ov, _ = make_chain("bad")
    refused("-b naming another file", [base, ov, alone], "-b", alone, ov)
    refused("-U", [base, ov], "-U", ov, status=2)
    sub = w("sub")
    os.makedirs(sub, exist_ok=True)
    base, ov, raw = make_chain("far", folder=sub)
    refused("a backing file outside the folder", [base, ov], ov)
    ok("--backing-chain follows it", QCOWKIT, "commit", "-q", "--backing-chain", ov)
    same_contents("commit --backing-chain", base, raw)


def main():
    for tool in ("qemu-img", "qemu-io"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: apt-get install qemu-utils", file=sys.stderr)
            sys.exit(1)
    os.makedirs(WORK, exist_ok=True)
    cases()
    deeper()
    bad_input()
    print(f"commit: {len(failures)} failures")
    sys.exit(1 if failures else 0)


main()
