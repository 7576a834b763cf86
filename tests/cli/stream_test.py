#!/usr/bin/env python3
"""convert to standard output ('-') and from standard input, checked by
qemu-img: qcow2 streamed through a real pipe (cat) at several cluster sizes,
compressed with zlib and zstd, vmdk streamOptimized, raw from stdin, the
refusals, and sources that fail part way (an error exit, no hang).

usage: stream_test.py QCOWKIT WORKDIR GROUP   (GROUP: qcow2, compressed, other)
"""
import json
import os
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_test_support import failures, fail, run, ok, qemu_check_clean  # noqa: E402

QCOWKIT, WORK, GROUP = sys.argv[1:4]
MiB = 1 << 20


def sh(command, stdin=None):
    """Runs a bash pipeline (pipefail): (exit code, stderr)."""
    p = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, timeout=120,
                       stdin=stdin)
    return p.returncode, p.stderr.decode(errors="replace")


def make_source(path):
    """24 MiB raw: random data, a hole, a zero run written as data,
    compressible text, and a short tail (the size is not a cluster multiple)."""
    size = 24 * MiB + 3 * 512
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(0)
        f.write(os.urandom(3 * MiB))
        f.seek(8 * MiB)
        f.write(b"\0" * (2 * MiB))          # zeroes as data: must become a hole
        f.write(b"stream me " * (300 * 1024))
        f.seek(16 * MiB + 4096)
        f.write(os.urandom(5000))            # a partial cluster
        f.seek(size - 700)
        f.write(os.urandom(700))
    return size


def check_qcow2(what, src, out, src_fmt="raw"):
    qemu_check_clean(what, out)
    rc, text, err = run("qemu-img", "check", "--output=json", out)
    if rc == 0:
        report = json.loads(text)
        if report.get("leaks", 0) or report.get("corruptions", 0):
            fail(f"{what}: qemu-img check reports {report}")
    rc, text, err = run("qemu-img", "compare", "-f", src_fmt, "-F", "qcow2", src, out)
    if rc != 0:
        fail(f"{what}: qemu-img compare exit {rc}: {(text + err).strip()[:300]}")


def stream_qcow2(what, src, options, compare_direct=True):
    """Through cat (a real pipe), then also straight into a file: same bytes."""
    piped = os.path.join(WORK, what + ".piped.qcow2")
    direct = os.path.join(WORK, what + ".direct.qcow2")
    args = " ".join(options)
    rc, err = sh(f"'{QCOWKIT}' convert -O qcow2 {args} '{src}' - | cat > '{piped}'")
    if rc != 0:
        fail(f"{what}: convert to a pipe exit {rc}: {err.strip()[:300]}")
        return None
    check_qcow2(what, src, piped)
    if compare_direct:
        rc, err = sh(f"'{QCOWKIT}' convert -O qcow2 {args} '{src}' - > '{direct}'")
        if rc != 0:
            fail(f"{what}: convert to a file exit {rc}: {err.strip()[:300]}")
        elif open(piped, "rb").read() != open(direct, "rb").read():
            fail(f"{what}: the piped and direct outputs differ")
    return piped


def allocated(path):
    rc, text, err = run("qemu-img", "map", "--output=json", path)
    if rc != 0:
        fail(f"qemu-img map {path}: {err}")
        return 0
    return sum(e["length"] for e in json.loads(text) if e["data"])


def group_qcow2(src, size):
    for cluster in ("4k", "64k", "2M"):
        out = stream_qcow2("c" + cluster, src, ["-o", "cluster_size=" + cluster])
        if out:
            # The hole and the zero run are not allocated.
            data = allocated(out)
            if data > 13 * MiB:
                fail(f"cluster {cluster}: {data} bytes allocated; the zeroes were stored")
    stream_qcow2("compat010", src, ["-o", "compat=0.10,cluster_size=16k"])
    stream_qcow2("refcount64", src, ["-o", "refcount_bits=64"], compare_direct=False)
    # A qcow2 source with holes (extents are walked), and -S 0.
    qsrc = os.path.join(WORK, "source.qcow2")
    ok("qemu-img convert", "qemu-img", "convert", "-f", "raw", "-O", "qcow2", src, qsrc)
    piped = os.path.join(WORK, "from-qcow2.qcow2")
    rc, err = sh(f"'{QCOWKIT}' convert -p -O qcow2 '{qsrc}' - | cat > '{piped}'")
    if rc != 0:
        fail(f"qcow2 source: exit {rc}: {err[:300]}")
    else:
        check_qcow2("qcow2 source", src, piped)
    full = stream_qcow2("S0", src, ["-S", "0"], compare_direct=False)
    if full and allocated(full) < size - 512:
        fail("-S 0: not every cluster was stored")


def group_compressed(src, size):
    for ctype in ("zlib", "zstd"):
        for cluster in ("64k", "4k"):
            out = stream_qcow2(f"{ctype}-{cluster}", src,
                               ["-c", "-o", f"compression_type={ctype},cluster_size={cluster}"])
            if out:
                rc, text, err = run("qemu-img", "info", "--output=json", out)
                info = json.loads(text) if rc == 0 else {}
                got = info.get("format-specific", {}).get("data", {}).get("compression-type")
                if got != ctype:
                    fail(f"{ctype}: qemu-img info says compression-type {got}")
                if os.path.getsize(out) > 9 * MiB:
                    fail(f"{ctype} {cluster}: {os.path.getsize(out)} bytes: not compressed")
    # Our own output compared with qemu-img's conversion of the same source.
    theirs = os.path.join(WORK, "qemu-c.qcow2")
    ok("qemu-img convert -c", "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", src, theirs)
    rc, text, err = run("qemu-img", "compare", theirs, os.path.join(WORK, "zlib-64k.piped.qcow2"))
    if rc != 0:
        fail(f"compressed output differs from qemu-img's conversion: {text} {err}")


def corrupt_compressed_cluster(path, guest_offset):
    """Overwrites the compressed stream of the cluster at guest_offset."""
    with open(path, "r+b") as f:
        hdr = f.read(104)
        cluster_bits = struct.unpack(">I", hdr[20:24])[0]
        l1_offset = struct.unpack(">Q", hdr[40:48])[0]
        cs = 1 << cluster_bits
        l2_entries = cs // 8
        index = guest_offset // cs
        f.seek(l1_offset + 8 * (index // l2_entries))
        l2 = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
        f.seek(l2 + 8 * (index % l2_entries))
        entry = struct.unpack(">Q", f.read(8))[0]
        assert entry & (1 << 62), "the cluster is not compressed"
        host = entry & ((1 << (62 - (cluster_bits - 8))) - 1)
        f.seek(host)
        f.write(b"\xff" * 64)


def group_other(src, size):
    # vmdk streamOptimized to a pipe, checked and compared by qemu-img.
    vmdk = os.path.join(WORK, "out.vmdk")
    rc, err = sh(f"'{QCOWKIT}' convert -O vmdk -o subformat=streamOptimized '{src}' - | cat > '{vmdk}'")
    if rc != 0:
        fail(f"vmdk stream: exit {rc}: {err[:300]}")
    else:
        rc, text, err = run("qemu-img", "check", "-f", "vmdk", vmdk)
        if rc != 0:
            fail(f"vmdk stream: qemu-img check exit {rc}: {(text + err)[:300]}")
        rc, text, err = run("qemu-img", "info", "--output=json", vmdk)
        sub = json.loads(text).get("format-specific", {}).get("data", {}).get("create-type") if rc == 0 else None
        if sub != "streamOptimized":
            fail(f"vmdk stream: qemu-img info says create-type {sub}")
        rc, text, err = run("qemu-img", "compare", "-f", "raw", "-F", "vmdk", src, vmdk)
        if rc != 0:
            fail(f"vmdk stream: qemu-img compare exit {rc}: {(text + err)[:300]}")
        rc, text, err = run(QCOWKIT, "compare", src, vmdk)
        if rc != 0:
            fail(f"vmdk stream: qcowkit compare exit {rc}: {(text + err)[:300]}")

    # Raw from standard input, into raw and qcow2 files (the size is the input's).
    for fmt, extra in (("raw", []), ("qcow2", []), ("qcow2", ["-c"])):
        out = os.path.join(WORK, f"stdin-{fmt}{''.join(extra)}.{fmt}")
        with open(src, "rb") as f:
            rc, err = sh(f"cat | '{QCOWKIT}' convert -f raw {' '.join(extra)} -O {fmt} - '{out}'", stdin=f)
        if rc != 0:
            fail(f"stdin -> {fmt} {extra}: exit {rc}: {err[:300]}")
            continue
        if fmt == "raw":
            if open(out, "rb").read() != open(src, "rb").read():
                fail("stdin -> raw: the bytes differ")
        else:
            check_qcow2(f"stdin -> {fmt} {extra}", src, out)
            rc, text, err = run("qemu-img", "info", "--output=json", out)
            vsize = json.loads(text)["virtual-size"] if rc == 0 else None
            if vsize != size:
                fail(f"stdin -> qcow2: virtual size {vsize}, expected {size}")

    # An empty input: an empty image, clean.
    empty = os.path.join(WORK, "empty.qcow2")
    rc, err = sh(f"'{QCOWKIT}' convert -f raw -O qcow2 - '{empty}' < /dev/null")
    if rc != 0:
        fail(f"empty stdin -> qcow2: exit {rc}: {err[:300]}")
    else:
        qemu_check_clean("empty stdin -> qcow2", empty)

    # Refusals, each with a message.
    refusals = [
        (f"'{QCOWKIT}' convert -O vdi '{src}' - | cat", "vmdk -o subformat=streamOptimized"),
        (f"'{QCOWKIT}' convert -O raw '{src}' - | cat", "seekable"),
        (f"cat '{src}' | '{QCOWKIT}' convert -f raw -O qcow2 - - | cat", "read twice"),
        (f"cat '{src}' | '{QCOWKIT}' convert -O qcow2 - '{WORK}/x.qcow2'", "-f raw"),
        (f"cat '{src}' | '{QCOWKIT}' convert -f raw -O vdi - '{WORK}/x.vdi'", "-O raw or -O qcow2"),
    ]
    for command, words in refusals:
        rc, err = sh(command)
        if rc == 0 or words not in err:
            fail(f"{command}: expected a refusal mentioning {words!r}, got exit {rc}: {err[:300]}")

    # A source that fails part way: an error naming the offset, no hang.
    bad = os.path.join(WORK, "bad.qcow2")
    ok("qemu-img convert -c", "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", src, bad)
    corrupt_compressed_cluster(bad, 11 * MiB)
    for fmt in ("-O qcow2", "-O vmdk -o subformat=streamOptimized"):
        partial = os.path.join(WORK, "partial.out")
        rc, err = sh(f"'{QCOWKIT}' convert {fmt} '{bad}' - | cat > '{partial}'")
        if rc == 0 or "offset" not in err:
            fail(f"{fmt}: a corrupt source: exit {rc}, message {err[:300]!r}")
    # vmdk streams in one pass: the output stops part way.
    if os.path.getsize(partial) == 0:
        fail("vmdk from a corrupt source: no partial output before the error")
    # The reader going away: an error, not a hang.
    rc, err = sh(f"'{QCOWKIT}' convert -O qcow2 '{src}' - | head -c 1000 > /dev/null")
    if rc == 0:
        fail("a reader that goes away: convert still exited 0")


if shutil.which("qemu-img") is None:
    print("qemu-img is missing: apt-get install qemu-utils", file=sys.stderr)
    sys.exit(1)
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
src = os.path.join(WORK, "source.raw")
size = make_source(src)
{"qcow2": group_qcow2, "compressed": group_compressed, "other": group_other}[GROUP](src, size)
shutil.rmtree(WORK, ignore_errors=True) if not failures else None
print(f"stream {GROUP}: {len(failures)} failures")
sys.exit(1 if failures else 0)
