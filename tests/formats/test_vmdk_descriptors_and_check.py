#!/usr/bin/env python3
"""Hostile vmdk descriptor files end in a clear error (never a crash, never
a file outside the policy), and `qcowkit check` reports vdi and vmdk
problems as `qemu-img check` does (same stderr lines, exit code and JSON
fields), and refuses formats without a check as qemu-img does (exit 63).

Descriptor cases: the descriptor naming itself as its extent; an extent in
another folder (refused by default, read with --backing-chain); a json:
name; extent sizes that do not add up (a flat file too short, a ZERO extent, a sparse
extent of another capacity); more extents than the limit; a line too long;
two descriptors naming each other (an extent is never read as a
descriptor, so there is no loop to follow).

usage: test_vmdk_descriptors_and_check.py QCOWKIT WORK_DIR"""
import json
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from interop_common import require, run  # noqa: E402

qcowkit, work = sys.argv[1], sys.argv[2]
require("qemu-img", "qemu-io")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(os.path.join(work, "elsewhere"))
failures = []


def expect(ok, what):
    print(("ok " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def descriptor(path, extent_lines, create_type="monolithicFlat"):
    with open(path, "w") as f:
        f.write("# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n"
                "createType=\"%s\"\n\n# Extent description\n" % create_type)
        f.write("".join(line + "\n" for line in extent_lines))
        f.write("\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"ide\"\n")


def refused(name, path, words, *extra):
    proc = run(qcowkit, "convert", *extra, "-O", "raw", path, os.path.join(work, "out.raw"), check=False)
    ok = proc.returncode == 1 and all(w in proc.stderr for w in words)
    expect(ok, "%s: exit %d, %r" % (name, proc.returncode, proc.stderr.strip()))


def w(name):
    return os.path.join(work, name)


flat = w("data-flat.vmdk")
with open(flat, "wb") as f:
    f.truncate(1 << 20)
    f.write(b"\x42" * 4096)

# A good one first, so the refusals below mean something.
descriptor(w("good.vmdk"), ['RW 1024 FLAT "data-flat.vmdk" 1024', 'RW 2048 FLAT "data-flat.vmdk" 0'])
proc = run(qcowkit, "convert", "-O", "raw", w("good.vmdk"), w("good.raw"), check=False)
expect(proc.returncode == 0 and os.path.getsize(w("good.raw")) == 3072 * 512,
       "two flat extents, one file, read (%s)" % proc.stderr.strip())
q = run("qemu-img", "convert", "-f", "vmdk", "-O", "raw", w("good.vmdk"), w("good.qemu.raw"), check=False)
expect(q.returncode == 0 and open(w("good.raw"), "rb").read() == open(w("good.qemu.raw"), "rb").read(),
       "same bytes as qemu-img's conversion")

descriptor(w("self.vmdk"), ['RW 1 FLAT "self.vmdk" 0'])
refused("the descriptor as its own extent", w("self.vmdk"), ["self.vmdk", "the image itself"])
refused("the descriptor as its own extent, --backing-chain", w("self.vmdk"),
        ["the image itself"], "--backing-chain")

shutil.copy(flat, os.path.join(work, "elsewhere", "other-flat.vmdk"))
descriptor(w("outside.vmdk"), ['RW 2048 FLAT "elsewhere/other-flat.vmdk" 0'])
refused("an extent in another folder", w("outside.vmdk"), ["other-flat.vmdk", "own directory"])
proc = run(qcowkit, "convert", "--backing-chain", "-O", "raw", w("outside.vmdk"), w("out.raw"), check=False)
expect(proc.returncode == 0, "the same with --backing-chain reads (%s)" % proc.stderr.strip())

descriptor(w("passwd.vmdk"), ['RW 1 FLAT "/etc/passwd" 0'])
refused("/etc/passwd as an extent", w("passwd.vmdk"), ["/etc/passwd", "refused"])
descriptor(w("json.vmdk"), ['RW 1 FLAT "json:{}" 0'])
refused("a json: extent name", w("json.vmdk"), ["not a plain file name"], "--backing-chain")

descriptor(w("short.vmdk"), ['RW 4096 FLAT "data-flat.vmdk" 0'])
refused("a flat extent longer than its file", w("short.vmdk"), ["does not fit its file"])
descriptor(w("offset.vmdk"), ['RW 2048 FLAT "data-flat.vmdk" 1'])
refused("a flat extent whose offset runs it past its file", w("offset.vmdk"), ["does not fit its file"])

run("qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", w("split.vmdk"), "10M",
    check=True)
descriptor(w("capacity.vmdk"), ['RW 40960 SPARSE "split-s001.vmdk"'], "twoGbMaxExtentSparse")
refused("a sparse extent of another capacity", w("capacity.vmdk"), ["holds 20480 sectors", "40960"])

descriptor(w("zero.vmdk"), ["RW 100 ZERO"])
refused("a ZERO extent (qemu-img ignores them)", w("zero.vmdk"), ["ZERO extents are not supported"])
descriptor(w("rdonly.vmdk"), ['RDONLY 2048 FLAT "data-flat.vmdk" 0'])
refused("an RDONLY extent (qemu-img skips it)", w("rdonly.vmdk"), ["access 'RDONLY'"])
descriptor(w("no-offset.vmdk"), ['RW 2048 FLAT "data-flat.vmdk"'])
refused("a FLAT extent without an offset", w("no-offset.vmdk"), ["has no offset"])
descriptor(w("many.vmdk"), ['RW 1 FLAT "data-flat.vmdk" 0'] * 5000)
refused("5000 extents", w("many.vmdk"), ["more than 4096 extents"])
descriptor(w("long.vmdk"), ['RW 1 FLAT "' + "a" * 5000 + '" 0'])
refused("a 5000-byte line", w("long.vmdk"), ["line", "bytes long"])
descriptor(w("huge.vmdk"), ['RW 1099511627776 FLAT "data-flat.vmdk" 0'] * 2)
refused("extents adding up past 2^40 sectors", w("huge.vmdk"), ["2^40"])
descriptor(w("bad-size.vmdk"), ['RW -5 FLAT "data-flat.vmdk" 0'])
refused("a negative extent size", w("bad-size.vmdk"), ["extent size"])

descriptor(w("ping.vmdk"), ['RW 1 SPARSE "pong.vmdk"'], "twoGbMaxExtentSparse")
descriptor(w("pong.vmdk"), ['RW 1 SPARSE "ping.vmdk"'], "twoGbMaxExtentSparse")
refused("two descriptors naming each other", w("ping.vmdk"), ["pong.vmdk", "VMDK header"])

# --- check -------------------------------------------------------------------


def same_check(name, image):
    ours = run(qcowkit, "check", "--output=json", image, check=False)
    theirs = run("qemu-img", "check", "--output=json", image, check=False)
    ok = ours.returncode == theirs.returncode
    if ours.stdout.strip() or theirs.stdout.strip():
        a, b = json.loads(ours.stdout), json.loads(theirs.stdout)
        ok = ok and a == b
    lines = lambda text: [l for l in text.splitlines() if l.startswith("ERROR")]  # noqa: E731
    ok = ok and lines(ours.stderr) == lines(theirs.stderr)
    expect(ok, "check %s: exit %d (qemu-img %d), %r / %r; stderr %r / %r" % (
        name, ours.returncode, theirs.returncode, ours.stdout.strip(), theirs.stdout.strip(),
        ours.stderr.strip(), theirs.stderr.strip()))
    human = run(qcowkit, "check", image, check=False)
    expect(human.returncode == ours.returncode, "human check %s exits the same" % name)


run("qemu-img", "create", "-q", "-f", "vdi", w("a.vdi"), "10M", check=True)
run("qemu-io", "-f", "vdi", "-c", "write -P 1 0 3M", w("a.vdi"), check=True)
same_check("clean vdi", w("a.vdi"))
with open(w("a.vdi"), "r+b") as f:
    bmap = struct.unpack_from("<I", f.read(512), 340)[0]
    f.seek(bmap)
    f.write(struct.pack("<IIII", 1, 1, 70, 0xFFFFFFFE))
same_check("vdi with a shared block, an entry out of range, a count mismatch", w("a.vdi"))

run("qemu-img", "create", "-q", "-f", "vmdk", w("b.vmdk"), "10M", check=True)
run("qemu-io", "-f", "vmdk", "-c", "write -P 1 0 256k", w("b.vmdk"), check=True)
same_check("clean vmdk", w("b.vmdk"))
same_check("clean twoGbMaxExtentSparse", w("split.vmdk"))
with open(w("b.vmdk"), "r+b") as f:
    h = f.read(512)
    for d in struct.unpack_from("<QQ", h, 48):
        f.seek(d * 512)
        gt = struct.unpack("<I", f.read(4))[0]
        f.seek(gt * 512 + 8)
        f.write(struct.pack("<I", 0x100000))
same_check("vmdk with a grain past the end", w("b.vmdk"))
proc = run(qcowkit, "check", w("b.vmdk"), check=False)
expect(proc.returncode == 1 and "Check failed" in proc.stderr, "it fails as qemu-img's (%r)" % proc.stderr)

run("qemu-img", "create", "-q", "-f", "vpc", w("c.vpc"), "10M", check=True)
run("qemu-img", "create", "-q", "-f", "raw", w("d.raw"), "1M", check=True)
for image, fmt in ((w("c.vpc"), []), (w("d.raw"), []), (w("a.vdi"), ["-r", "all"])):
    proc = run(qcowkit, "check", *fmt, image, check=False)
    theirs = run("qemu-img", "check", *fmt, image, check=False)
    expect(proc.returncode == 63 == theirs.returncode and "does not support checks" in proc.stderr,
           "check %s %s: exit %d as qemu-img's %d" % (" ".join(fmt), os.path.basename(image),
                                                     proc.returncode, theirs.returncode))

print("%d failures" % len(failures))
sys.exit(1 if failures else 0)
