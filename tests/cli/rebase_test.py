#!/usr/bin/env python3
"""qcowkit rebase against qemu-img rebase, on the same chains.

usage: rebase_test.py QCOWKIT IMAGES_DIR WORK_DIR

Safe mode: an overlay rebased onto another backing file (qcow2 or raw,
smaller or larger than the overlay) or onto none (-b "") reads exactly as
before (qemu-img compare against a raw copy taken first), qemu-img check is
clean, qemu-img info names the new file and format, and qemu-img rebase on a
copy gives the same contents. Unsafe mode (-u) changes only the header:
what the overlay allocates stays as it was. Bad input (no -b, no -F, a new
backing file that does not exist, a backing file outside the image's folder
without --backing-chain, -U) is refused and the file left as it was.
IMAGES_DIR is unused (the chains are made here); it keeps the CTest line
the same as the other verbs'.
"""
import json
import os
import shutil
import sys

QCOWKIT, _IMAGES, WORK = sys.argv[1:4]
from cli_test_support import failures, fail, run, ok, qemu_check_clean, digest  # noqa: E402


def w(name):
    return os.path.join(WORK, name)


def same_contents(what, image, raw):
    rc, out, err = run("qemu-img", "compare", "-F", "raw", image, raw)
    if rc != 0:
        fail(f"{what}: qemu-img compare exit {rc}: {(out + err).strip()[:300]}")


def backing_of(path):
    rc, out, _ = run("qemu-img", "info", "-U", "--output=json", path)
    info = json.loads(out) if rc == 0 else {}
    return info.get("backing-filename"), info.get("backing-filename-format")


def make_chain(tag, base_size="64M", overlay_size=None):
    """base-TAG.qcow2 <- ov-TAG.qcow2, both with data, plus raw-TAG.raw (what ov reads)."""
    base, ov, raw = w(f"base-{tag}.qcow2"), w(f"ov-{tag}.qcow2"), w(f"raw-{tag}.raw")
    for p in (base, ov, raw):
        if os.path.exists(p):
            os.unlink(p)
    ok("base", "qemu-img", "create", "-q", "-f", "qcow2", base, base_size)
    ok("base data", "qemu-io", "-c", "write -P 0x11 0 4M", "-c", "write -P 0x12 20M 1M", base)
    extra = [overlay_size] if overlay_size else []
    ok("overlay", "qemu-img", "create", "-q", "-f", "qcow2", "-b", os.path.basename(base), "-F", "qcow2", ov, *extra)
    ok("overlay data", "qemu-io", "-c", "write -P 0x21 1M 64k", "-c", "write -z 2M 64k",
       "-c", "write -P 0x22 30M 100k", ov)
    ok("raw copy", "qemu-img", "convert", "-O", "raw", ov, raw)
    return base, ov, raw


def new_backing(name, size, fmt="qcow2"):
    path = w(name)
    if os.path.exists(path):
        os.unlink(path)
    ok("new backing", "qemu-img", "create", "-q", "-f", fmt, path, size)
    ok("new backing data", "qemu-io", "-f", fmt, "-c", "write -P 0x31 2M 4M", "-c", "write -P 0x32 12M 64k", path)
    return path


def safe_cases():
    for tag, new, fmt, size in [("q", "new-q.qcow2", "qcow2", "64M"), ("raw", "new-raw.img", "raw", "64M"),
                                ("small", "new-small.qcow2", "qcow2", "16M"),
                                ("large", "new-large.qcow2", "qcow2", "128M")]:
        _, ov, raw = make_chain(tag)
        new_backing(new, size, fmt)
        twin = w(f"ov-{tag}-qemu.qcow2")
        shutil.copyfile(ov, twin)
        if ok(f"rebase {tag}", QCOWKIT, "rebase", "-b", new, "-F", fmt, ov) is None:
            continue
        qemu_check_clean(f"rebase {tag}", ov)
        same_contents(f"rebase {tag}: contents", ov, raw)
        if backing_of(ov) != (new, fmt):
            fail(f"rebase {tag}: qemu-img info says backing {backing_of(ov)}")
        ok(f"qemu rebase {tag}", "qemu-img", "rebase", "-b", new, "-F", fmt, twin)
        same_contents(f"qemu-img's rebase {tag}", twin, raw)
        rc, out, err = run("qemu-img", "compare", ov, twin)
        if rc != 0:
            fail(f"rebase {tag}: qcowkit's and qemu-img's results differ: {out.strip()}")
        # qcowkit reads what qemu-img rebase wrote.
        info = ok("qcowkit info", QCOWKIT, "info", "--output=json", twin)
        if info and json.loads(info).get("backing-filename") != new:
            fail(f"qcowkit info after qemu-img rebase: {info[:300]}")

    # Standalone: -b "".
    _, ov, raw = make_chain("alone")
    ok("rebase -b ''", QCOWKIT, "rebase", "-b", "", ov)
    qemu_check_clean("standalone", ov)
    same_contents("standalone: contents", ov, raw)
    if backing_of(ov) != (None, None):
        fail(f"standalone: still has backing {backing_of(ov)}")
    rc, out, _ = run("qemu-img", "map", "--output=json", ov)
    if rc == 0 and any(e.get("depth", 0) != 0 for e in json.loads(out)):
        fail("standalone image still maps to a backing file")


def unsafe_cases():
    _, ov, _ = make_chain("u")
    new_backing("new-u.qcow2", "64M")
    rc, before, _ = run("qemu-img", "map", "--output=json", ov)
    ok("rebase -u", QCOWKIT, "rebase", "-u", "-b", "new-u.qcow2", "-F", "qcow2", ov)
    qemu_check_clean("rebase -u", ov)
    if backing_of(ov) != ("new-u.qcow2", "qcow2"):
        fail(f"rebase -u: backing {backing_of(ov)}")
    rc, after, _ = run("qemu-img", "map", "--output=json", ov)
    own = lambda m: [e for e in json.loads(m) if e.get("depth") == 0 and e.get("present")]
    if own(before) != own(after):
        fail("rebase -u changed what the overlay allocates")
    # -u to a name that does not exist: only recorded, as qemu-img does.
    ok("rebase -u missing", QCOWKIT, "rebase", "-u", "-b", "missing.qcow2", "-F", "qcow2", ov)
    if backing_of(ov) != ("missing.qcow2", "qcow2"):
        fail(f"rebase -u to a missing file: backing {backing_of(ov)}")
    ok("rebase -u standalone", QCOWKIT, "rebase", "-u", "-b", "", ov)
    if backing_of(ov) != (None, None):
        fail(f"rebase -u -b '': backing {backing_of(ov)}")
    qemu_check_clean("rebase -u standalone", ov)


def refused(what, image, *args, status=1):
    before = digest(image)
    rc, out, err = run(QCOWKIT, "rebase", *args)
    if rc != status or not err.strip():
        fail(f"{what}: exit {rc} with message {err.strip()!r}; expected exit {status} and a message")
    if digest(image) != before:
        fail(f"{what}: the file changed although the request was refused")


def bad_input():
    _, ov, _ = make_chain("bad")
    new_backing("new-bad.qcow2", "64M")
    refused("no -b", ov, ov, status=2)
    refused("no -F", ov, "-b", "new-bad.qcow2", ov)
    refused("a new backing file that does not exist", ov, "-b", "nosuch.qcow2", "-F", "qcow2", ov)
    refused("-U", ov, "-U", "-b", "", ov, status=2)
    # Backing files outside the image's folder: only with --backing-chain.
    sub = w("sub")
    os.makedirs(sub, exist_ok=True)
    inner = os.path.join(sub, "inner.qcow2")
    if os.path.exists(inner):
        os.unlink(inner)
    ok("inner", "qemu-img", "create", "-q", "-f", "qcow2", "-b", "../base-bad.qcow2", "-F", "qcow2", inner)
    refused("old backing file outside the folder", inner, "-b", "", inner)
    ok("--backing-chain follows it", QCOWKIT, "rebase", "--backing-chain", "-b", "", inner)
    qemu_check_clean("rebase --backing-chain", inner)


def main():
    for tool in ("qemu-img", "qemu-io"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: apt-get install qemu-utils", file=sys.stderr)
            sys.exit(1)
    os.makedirs(WORK, exist_ok=True)
    safe_cases()
    unsafe_cases()
    bad_input()
    print(f"rebase: {len(failures)} failures")
    sys.exit(1 if failures else 0)


main()
