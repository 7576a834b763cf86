#!/usr/bin/env python3
"""qcowkit's verbs and QEMU's image locks.

usage: lock_test.py QCOWKIT IMAGES_DIR WORK_DIR [PLUGIN]

While qemu-io holds an image read-write (as a running VM or qemu-nbd does),
every verb that changes it (check -r, resize, compact, snapshot -c/-a/-d,
bitmap, rebase, commit) and every reader without -U (info, check, map) is
refused with a message saying a writer holds it, and the file is left as
it was; info -U still reads it. While qemu-io holds it read-only (a
reader), the changing verbs are refused naming a reader, and info reads.
With PLUGIN (nbdkit-qcow2-plugin.so, when it is built) the same refusals
hold while nbdkit serves the image read-write. Once the holders are gone,
the verbs work again. IMAGES_DIR is unused.
"""
import os
import shutil
import subprocess
import sys
import time

QCOWKIT, _IMAGES, WORK = sys.argv[1:4]
from cli_test_support import failures, fail, run, digest  # noqa: E402

PLUGIN = sys.argv[4] if len(sys.argv) > 4 else None


def locked(path, byte=None):
    """Someone holds a lock on `path` (on lock byte `byte`, if given)."""
    inode = os.stat(path).st_ino
    def covers(line):
        start, end = line.split()[-2:]
        return byte is None or int(start) <= byte <= (float("inf") if end == "EOF" else int(end))
    with open("/proc/locks") as f:
        return any(f":{inode} " in line and covers(line) for line in f)


class Holder:
    """qemu-io with the image open until stop()."""

    def __init__(self, path, read_only):
        args = ["qemu-io", "-f", "qcow2"] + (["-r"] if read_only else []) + [path]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.up = False
        for _ in range(300):
            if locked(path):
                self.up = True
                return
            time.sleep(0.1)
        fail(f"qemu-io did not lock {path} within 30 s")

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


class Server:
    """nbdkit serving the image with the qcow2 plugin, and a read-write client
    (qemu-io over NBD) connected, until stop(). The plugin reopens the image
    for writing (taking the writer lock) at the first read-write connection."""

    def __init__(self, path):
        self.sock = os.path.join(WORK, "nbdkit.sock")
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.log = os.path.join(WORK, "nbdkit.log")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(["nbdkit", "-f", "-U", self.sock, PLUGIN, path, "backing=true"],
                                         stdout=subprocess.DEVNULL, stderr=log)
        self.up = False
        self.client = None
        for _ in range(300):
            if os.path.exists(self.sock) and locked(path):
                self.client = subprocess.Popen(["qemu-io", "-f", "raw", f"nbd+unix:///?socket={self.sock}"],
                                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL)
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        for _ in range(300 if self.client else 0):
            if locked(path, 101):  # QEMU's "write" permission byte: the writer lock
                self.up = True
                return
            time.sleep(0.1)
        with open(self.log) as log:
            fail(f"nbdkit did not serve {path}: {log.read().strip()}")

    def stop(self):
        if self.client:
            self.client.stdin.close()
            self.client.wait(timeout=60)
        self.proc.terminate()
        self.proc.wait(timeout=60)


def verbs(image, base):
    return [
        ("check -r leaks", ["check", "-r", "leaks", image]),
        ("resize", ["resize", image, "+1M"]),
        ("compact", ["compact", image]),
        ("snapshot -c", ["snapshot", "-c", "s", image]),
        ("snapshot -d", ["snapshot", "-d", "keep", image]),
        ("bitmap --add", ["bitmap", "--add", image, "b"]),
        ("commit", ["commit", image]),
        ("rebase -u", ["rebase", "-u", "-b", "", image]),
    ]


def expect_refusals(image, base, kind, readers_too):
    before = digest(image)
    checks = verbs(image, base)
    if readers_too:
        checks += [("info", ["info", image]), ("check", ["check", image]),
                   ("map", ["map", image])]
    for what, args in checks:
        rc, out, err = run(QCOWKIT, *args)
        if rc == 0:
            fail(f"{what} ran while a {kind} held the image")
        elif f"in use by a {kind}" not in err:
            fail(f"{what}: the refusal does not name the {kind}: {err.strip()!r}")
    if digest(image) != before:
        fail(f"the image changed while a {kind} held it")


def main():
    for tool in ("qemu-img", "qemu-io"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: apt-get install qemu-utils", file=sys.stderr)
            sys.exit(1)
    os.makedirs(WORK, exist_ok=True)
    base, image = os.path.join(WORK, "base.qcow2"), os.path.join(WORK, "image.qcow2")
    for p in (base, image):
        if os.path.exists(p):
            os.unlink(p)
    run("qemu-img", "create", "-q", "-f", "qcow2", base, "16M")
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", image)
    run("qemu-img", "snapshot", "-c", "keep", image)

    writer = Holder(image, read_only=False)
    if not writer.up:
        sys.exit(1)
    expect_refusals(image, base, "writer", readers_too=True)
    rc, out, err = run(QCOWKIT, "info", "-U", image)
    if rc != 0:
        fail(f"info -U next to a writer: exit {rc}: {err.strip()}")
    writer.stop()

    if PLUGIN and os.path.exists(PLUGIN) and shutil.which("nbdkit"):
        server = Server(image)
        if server.up:
            expect_refusals(image, base, "writer", readers_too=True)
        server.stop()
    else:
        print("(no plugin built or no nbdkit: the plugin as the holder is not tested)")

    reader = Holder(image, read_only=True)
    if not reader.up:
        sys.exit(1)
    expect_refusals(image, base, "reader", readers_too=False)
    rc, out, err = run(QCOWKIT, "info", image)
    if rc != 0:
        fail(f"info next to a reader: exit {rc}: {err.strip()}")
    reader.stop()

    for what, args in verbs(image, base):
        rc, out, err = run(QCOWKIT, *args)
        if rc != 0:
            fail(f"{what} once the image is free: exit {rc}: {err.strip()}")
    print(f"locks: {len(failures)} failures")
    sys.exit(1 if failures else 0)


main()
