#!/usr/bin/env python3
"""qcowkit bitmap against qemu-img, on every v3 kind of image qemu-img makes.

usage: bitmap_test.py QCOWKIT IMAGES_DIR WORK_DIR

For each image (a copy): qcowkit adds bitmaps, qemu-img info lists them
with the same flags and granularity and qemu-img check is clean; qemu-io
writes are recorded in them (QEMU writes into the tables qcowkit made) and
qcowkit's view of every bitmap (map --bitmap) equals QEMU's (qemu-nbd -B,
nbdinfo --map); qcowkit merges, clears, disables and removes, and qemu-img
reads the result; qemu-img's own bitmaps are changed by qcowkit. Then the
same operations through qemu-img and qcowkit side by side must leave the
same `qemu-img info`. Bad input (unknown or duplicate names, names over
1023 bytes, bad granularity, v2 and raw images, in-use bitmaps, bad option
combinations) is refused with qemu-img's exit status and a message, and
the file is left as it was.
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time

QCOWKIT, IMAGES, WORK = sys.argv[1:4]
from cli_test_support import failures, fail, run, ok, qemu_check_clean, digest  # noqa: E402


def qemu_bitmaps(path):
    rc, out, err = run("qemu-img", "info", "--output=json", path)
    if rc != 0:
        fail(f"qemu-img info {path}: {err.strip()}")
        return {}
    specific = json.loads(out).get("format-specific", {}).get("data", {})
    return {b["name"]: (sorted(b["flags"]), b["granularity"]) for b in specific.get("bitmaps", [])}


def ours(path, name):
    """Dirty runs of bitmap `name` as qcowkit map --bitmap reads them."""
    rc, out, err = run(QCOWKIT, "map", "--bitmap", name, "--output=json", path)
    if rc != 0:
        fail(f"qcowkit map --bitmap {name} {path}: exit {rc}: {err.strip()}")
        return None
    return [(r["start"], r["length"]) for r in json.loads(out) if r["dirty"]]


def theirs(path, name):
    """Dirty runs of bitmap `name` as QEMU reads them (qemu-nbd -B, nbdinfo)."""
    sock = os.path.join(WORK, "nbd.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    server = subprocess.Popen(["qemu-nbd", "-r", "-k", sock, "-B", name, "-f", "qcow2", path],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        rc, out, err = run("nbdinfo", f"--map=qemu:dirty-bitmap:{name}", f"nbd+unix:///?socket={sock}")
        if rc != 0:
            fail(f"nbdinfo on bitmap {name} of {path}: {err.strip()}")
            return None
        runs = []
        for line in out.splitlines():
            f = line.split()
            if len(f) >= 4 and f[3] == "dirty":
                runs.append((int(f[0]), int(f[1])))
        return runs
    finally:
        server.terminate()
        server.wait()


def same_view(what, path, name):
    a, b = ours(path, name), theirs(path, name)
    if a is not None and b is not None and a != b:
        fail(f"{what}: bitmap {name}: qcowkit reads {a[:6]}, QEMU reads {b[:6]}")
    return a


def exercise(name, source):
    image = os.path.join(WORK, f"{name}.qcow2")
    shutil.copyfile(source, image)
    if ok(f"{name}: add", QCOWKIT, "bitmap", "--add", image, "b1") is None:
        return
    ok(f"{name}: add -g 1M disabled", QCOWKIT, "bitmap", "--add", "-g", "1M", "--disable", image, "b2")
    qemu_check_clean(f"{name} after add", image)
    listed = qemu_bitmaps(image)
    if listed.get("b2") != ([], 1 << 20) or "b1" not in listed or listed["b1"][0] != ["auto"]:
        fail(f"{name}: qemu-img info lists {listed}")
    # QEMU records its writes in the tables qcowkit made.
    ok(f"{name}: qemu-io", "qemu-io", "-c", "write -P 0x5a 0 192k", "-c", "write -P 0x3c 3M 4k", image)
    qemu_check_clean(f"{name} after qemu writes", image)
    b1 = same_view(name, image, "b1")
    if b1 is not None and (not b1 or b1[0][0] != 0 or not any(s <= 3 << 20 < s + l for s, l in b1)):
        fail(f"{name}: b1 does not cover the writes: {b1}")
    if same_view(name, image, "b2") not in ([], None):
        fail(f"{name}: disabled b2 recorded writes")
    # qcowkit merges (granularities differ), QEMU reads the result.
    ok(f"{name}: merge", QCOWKIT, "bitmap", "--merge", "b1", image, "b2")
    b2 = same_view(name, image, "b2")
    if b2 is not None and b2 != [(0, 1 << 20), (3 << 20, 1 << 20)]:
        fail(f"{name}: merged b2 is {b2}")
    # QEMU merges a bitmap qcowkit wrote into one of its own.
    ok(f"{name}: qemu add", "qemu-img", "bitmap", "--add", "--disable", image, "q1")
    ok(f"{name}: qemu merge", "qemu-img", "bitmap", "--merge", "b2", image, "q1")
    if ours(image, "q1") != b2:
        fail(f"{name}: QEMU's merge of b2 reads {ours(image, 'q1')} in qcowkit")
    ok(f"{name}: clear", QCOWKIT, "bitmap", "--clear", image, "b2")
    if same_view(name, image, "b2") not in ([], None):
        fail(f"{name}: cleared b2 is not empty")
    ok(f"{name}: enable", QCOWKIT, "bitmap", "--enable", image, "b2")
    ok(f"{name}: disable q1 is a no-op", QCOWKIT, "bitmap", "--disable", image, "q1")
    ok(f"{name}: qemu-io", "qemu-io", "-c", "write -P 0x11 8M 4k", image)
    if ours(image, "b2") != [(8 << 20, 1 << 20)]:
        fail(f"{name}: re-enabled b2 reads {ours(image, 'b2')}")
    ok(f"{name}: remove q1 (QEMU's)", QCOWKIT, "bitmap", "--remove", image, "q1")
    ok(f"{name}: remove", QCOWKIT, "bitmap", "--remove", image, "b1")
    qemu_check_clean(f"{name} after remove", image)
    ok(f"{name}: remove last", QCOWKIT, "bitmap", "--remove", image, "b2")
    qemu_check_clean(f"{name} after removing the last", image)
    if qemu_bitmaps(image):
        fail(f"{name}: bitmaps left after removing all: {qemu_bitmaps(image)}")
    ok(f"{name}: add again", QCOWKIT, "bitmap", "--add", image, "again")
    qemu_check_clean(f"{name} after adding again", image)


def side_by_side():
    """The same action lists through qemu-img and qcowkit give the same info."""
    sequences = [
        [["--add"], "a"],
        [["--add", "-g", "512"], "a"],
        [["--add", "--disable"], "a"],
        [["--add", "--remove"], "a"],
        [["--add", "--clear", "--disable", "--enable"], "a"],
    ]
    for i, (actions, bitmap) in enumerate(sequences):
        results = []
        for tool in ("qemu-img", QCOWKIT):
            image = os.path.join(WORK, f"side-{i}-{os.path.basename(tool)}.qcow2")
            ok("side: create", "qemu-img", "create", "-q", "-f", "qcow2", image, "16M")
            ok(f"side {actions}: {tool}", tool, "bitmap", *actions, image, bitmap)
            results.append(qemu_bitmaps(image))
            qemu_check_clean(f"side {actions} {tool}", image)
        if results[0] != results[1]:
            fail(f"side by side {actions}: qemu-img gives {results[0]}, qcowkit {results[1]}")


def refused(what, image, *args, status=1):
    before = digest(image)
    rc, out, err = run(QCOWKIT, "bitmap", *args)
    if rc != status or not err.strip():
        fail(f"{what}: exit {rc} with message {err.strip()!r}; expected exit {status} and a message")
    if digest(image) != before:
        fail(f"{what}: the file changed although the request was refused")


def set_in_use(path, name):
    """Marks bitmap `name` in use, as a crash of its writer leaves it."""
    with open(path, "r+b") as f:
        header = f.read(65536)
        pos = struct.unpack(">I", header[100:104])[0]
        while True:
            kind, length = struct.unpack(">II", header[pos:pos + 8])
            if kind == 0:
                return
            if kind == 0x23852875:
                count, _, size, offset = struct.unpack(">IIQQ", header[pos + 8:pos + 32])
                f.seek(offset)
                directory = f.read(size)
                at = 0
                for _ in range(count):
                    _, _, flags, _, _, name_size, extra = struct.unpack(">QIIBBHI", directory[at:at + 24])
                    if directory[at + 24 + extra:at + 24 + extra + name_size] == name.encode():
                        f.seek(offset + at + 12)
                        f.write(struct.pack(">I", flags | 1))
                        return
                    at += (24 + extra + name_size + 7) & ~7
            pos += 8 + ((length + 7) & ~7)


def bad_input():
    image = os.path.join(WORK, "bad.qcow2")
    ok("bad: create", "qemu-img", "create", "-q", "-f", "qcow2", image, "16M")
    ok("bad: add", QCOWKIT, "bitmap", "--add", image, "b")
    ok("bad: add", QCOWKIT, "bitmap", "--add", image, "c")
    refused("duplicate name", image, "--add", image, "b")
    refused("unknown name", image, "--remove", image, "nosuch")
    refused("unknown merge source", image, "--merge", "nosuch", image, "b")
    refused("name of 1024 bytes", image, "--add", image, "x" * 1024)
    refused("empty name", image, "--add", image, "")
    refused("granularity 256", image, "--add", "-g", "256", image, "g")
    refused("granularity 3000", image, "--add", "-g", "3000", image, "g")
    refused("granularity 4G", image, "--add", "-g", "4G", image, "g")
    refused("no action", image, image, "b", status=2)
    refused("-g without --add", image, "--remove", "-g", "1M", image, "b", status=2)
    refused("-b without --merge", image, "--add", "-b", image, image, "z", status=2)
    refused("-F without -b", image, "--merge", "b", "-F", "qcow2", image, "c", status=2)
    refused("one positional", image, "--add", image, status=2)
    other = os.path.join(WORK, "other-size.qcow2")
    ok("bad: other", "qemu-img", "create", "-q", "-f", "qcow2", other, "8M")
    ok("bad: other add", "qemu-img", "bitmap", "--add", other, "o")
    refused("merge from an image of another size", image, "--merge", "o", "-b", other, "-F", "qcow2", image, "b")
    same = os.path.join(WORK, "same-size.qcow2")
    ok("bad: same", "qemu-img", "create", "-q", "-f", "qcow2", same, "16M")
    ok("bad: same add", "qemu-img", "bitmap", "--add", same, "s")
    ok("bad: same write", "qemu-io", "-c", "write 1M 4k", same)
    ok("merge from another file", QCOWKIT, "bitmap", "--merge", "s", "-b", same, "-F", "qcow2", image, "b")
    if ours(image, "b") != [(1 << 20, 65536)]:
        fail(f"merge from another file gives {ours(image, 'b')}")
    qemu_check_clean("after the refusals", image)
    # 1023 bytes and 2 GiB are the largest QEMU accepts.
    ok("name of 1023 bytes", QCOWKIT, "bitmap", "--add", image, "y" * 1023)
    ok("granularity 2G", QCOWKIT, "bitmap", "--add", "-g", "2G", image, "huge")
    qemu_check_clean("after the limits", image)
    if qemu_bitmaps(image).get("huge", (None, 0))[1] != 1 << 31:
        fail(f"2G bitmap: {qemu_bitmaps(image)}")
    # In use (left by a crashed writer): only removal is allowed.
    set_in_use(image, "c")
    refused("clear of an in-use bitmap", image, "--clear", image, "c")
    refused("merge into an in-use bitmap", image, "--merge", "b", image, "c")
    refused("enable of an in-use bitmap", image, "--enable", image, "c")
    ok("remove of an in-use bitmap", QCOWKIT, "bitmap", "--remove", image, "c")
    qemu_check_clean("after removing an in-use bitmap", image)
    v2 = os.path.join(WORK, "v2.qcow2")
    ok("bad: v2", "qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10", v2, "16M")
    refused("a v2 image", v2, "--add", v2, "b")
    raw = os.path.join(WORK, "bad.raw")
    ok("bad: raw", "qemu-img", "create", "-q", "-f", "raw", raw, "1M")
    refused("a raw image", raw, "-f", "raw", "--add", raw, "b")


def convert_bitmaps():
    """convert --bitmaps copies every bitmap as qemu-img convert --bitmaps does."""
    src = os.path.join(WORK, "conv-src.qcow2")
    ok("conv: create", "qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", src, "16M")
    ok("conv: on", QCOWKIT, "bitmap", "--add", "-g", "8K", src, "on")
    ok("conv: off", QCOWKIT, "bitmap", "--add", "--disable", src, "off")
    ok("conv: write", "qemu-io", "-c", "write -P 1 100k 20k", "-c", "write -z 5M 64k", src)
    ok("conv: merge", QCOWKIT, "bitmap", "--merge", "on", src, "off")
    ok("conv: broken", QCOWKIT, "bitmap", "--add", src, "broken")
    set_in_use(src, "broken")
    targets = {}
    for tool in ("qemu-img", QCOWKIT):
        out = os.path.join(WORK, f"conv-{os.path.basename(tool)}.qcow2")
        if os.path.exists(out):
            os.unlink(out)
        rc, _, err = run(tool, "convert", "--bitmaps", "-O", "qcow2", src, out)
        if rc != 1 or "broken" not in err:
            fail(f"{tool} convert --bitmaps with an in-use bitmap: exit {rc}: {err.strip()}")
        if os.path.exists(out):
            os.unlink(out)
        ok(f"{tool} convert --skip-broken-bitmaps", tool, "convert", "--bitmaps", "--skip-broken-bitmaps",
           "-O", "qcow2", src, out)
        qemu_check_clean(f"{tool} convert --bitmaps", out)
        targets[tool] = out
    listed = [qemu_bitmaps(t) for t in targets.values()]
    if listed[0] != listed[1] or sorted(listed[1]) != ["off", "on"]:
        fail(f"convert --bitmaps: qemu-img's copy has {listed[0]}, qcowkit's {listed[1]}")
    for name in ("on", "off"):
        want = ours(src, name)
        if same_view(f"convert --bitmaps {name}", targets[QCOWKIT], name) != want or \
                ours(targets["qemu-img"], name) != want:
            fail(f"convert --bitmaps: bitmap {name} differs from the source's {want}")
    for what, args in (("raw output", ["-O", "raw"]), ("v2 output", ["-O", "qcow2", "-o", "compat=0.10"])):
        out = os.path.join(WORK, "conv-bad.img")
        if os.path.exists(out):
            os.unlink(out)
        rc, _, err = run(QCOWKIT, "convert", "--bitmaps", "--skip-broken-bitmaps", *args, src, out)
        if rc != 1 or not err.strip() or os.path.exists(out):
            fail(f"convert --bitmaps to a {what}: exit {rc}: {err.strip()!r}")
    raw = os.path.join(WORK, "conv.raw")
    ok("conv: raw", "qemu-img", "create", "-q", "-f", "raw", raw, "1M")
    rc, _, err = run(QCOWKIT, "convert", "--bitmaps", "-f", "raw", "-O", "qcow2", raw, raw + ".qcow2")
    if rc != 1 or not err.strip() or os.path.exists(raw + ".qcow2"):
        fail(f"convert --bitmaps from a raw image: exit {rc}: {err.strip()!r}")


def main():
    for tool in ("qemu-img", "qemu-io", "qemu-nbd", "nbdinfo"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: apt-get install qemu-utils libnbd-bin", file=sys.stderr)
            sys.exit(1)
    os.makedirs(WORK, exist_ok=True)
    tested = 0
    with open(os.path.join(IMAGES, "images.tsv")) as f:
        for line in f:
            name, qcow2, _raw, backing = line.rstrip("\n").split("\t")
            if backing != "-" or name == "v2":
                continue
            exercise(name, qcow2)
            tested += 1
    side_by_side()
    convert_bitmaps()
    bad_input()
    print(f"bitmap: {tested} image kinds, {len(failures)} failures")
    sys.exit(1 if failures or tested == 0 else 0)


main()
