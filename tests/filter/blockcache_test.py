#!/usr/bin/python3
"""Integration tests of nbdkit-blockcache-filter against real nbdkit.

Each case starts its own nbdkit on a unix socket in a private temporary
directory (--exit-with-parent, bounded waits), so nothing outlives the test.

  blockcache_test.py CASE --filter PATH/nbdkit-blockcache-filter.so

Cases:
  workload-memory     seeded random workload, filter vs no filter, memory plugin
  workload-file       the same over the file plugin (the file checked after exit)
  workload-noextents  the same over --filter=noextents memory, read caching on
  kill                SIGKILL after a flush (from another connection: multi-conn) and
                      more writes: the flushed data is in the file
  caps                can_* answers follow the plugin's
  options             bad option values stop nbdkit with a message naming the option
  fio-verify          four parallel fio connections write and verify through a 1M cache
  close               unflushed writes reach the file when the client disconnects,
                      even through the delay filter
  flush-error         error filter under ours fails writes: flush reports it, retries later
  exit-error          the write-back (error filter) or the flush (nbd plugin, its server
                      gone) fails at exit: the log says what may be lost and how many
                      bytes were still cached
  write-around        over the fast file plugin, writes reach the file before a flush;
                      with blockcache-write-around=off they stay cached
  scan-map            blockcache-extents=scan over noextents: nbdinfo --map shows zeroes
  memory-bound        the memory bound measured from outside: nbdkit's peak RSS while
                      8x the bound is written over the null plugin
"""

import argparse
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

try:
    import nbd
except ImportError:
    sys.exit("FAIL: the Python libnbd bindings are missing: install the Debian package "
             "python3-libnbd (and run this with /usr/bin/python3)")

MiB = 1 << 20


def need(program, package):
    if shutil.which(program) is None:
        sys.exit(f"FAIL: {program} not found: install the Debian package {package}")


class Server:
    """nbdkit in the foreground on a unix socket; stopped or killed by us."""

    def __init__(self, tmp, args, name="nbdkit"):
        self.sock = os.path.join(tmp, name + ".sock")
        if os.path.exists(self.sock):
            os.unlink(self.sock)  # left by an earlier server of the same name
        self.log = open(os.path.join(tmp, name + ".log"), "w+")
        self.cmd = ["nbdkit", "-f", "--exit-with-parent", "-U", self.sock] + args
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.fail_with_log("nbdkit did not start")
            time.sleep(0.02)
        self.uri = f"nbd+unix:///?socket={self.sock}"
        self.connect().shutdown()  # serving, not just bound

    def connect(self):
        # The socket file appears at bind(), a moment before listen(): retry
        # a refused connection briefly.
        deadline = time.monotonic() + 10
        while True:
            h = nbd.NBD()
            try:
                h.connect_uri(self.uri)
                return h
            except nbd.Error as e:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.fail_with_log(f"cannot connect to nbdkit: {e}")
                time.sleep(0.05)

    def fail_with_log(self, what):
        self.log.flush()
        self.log.seek(0)
        sys.exit(f"FAIL: {what}\ncommand: {' '.join(self.cmd)}\n{self.log.read()[-4000:]}")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.fail_with_log("nbdkit did not exit within 60 s of SIGTERM")
        if rc != 0:
            self.fail_with_log(f"nbdkit exited with status {rc}")

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=30)

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()


def check(condition, message):
    if not condition:
        sys.exit("FAIL: " + message)


def run_workload(server, size, seed, ops=1500):
    """Random writes, zeroes, trims, flushes and verified reads over two
    connections. Returns the SHA-256 of the final contents as the server
    reads them back and as the model (the bytes written) predicts them."""
    rng = random.Random(seed)
    model = bytearray(size)
    handles = [server.connect(), server.connect()]
    for i in range(ops):
        h = rng.choice(handles)
        length = rng.randint(1, 256) * 512
        offset = rng.randrange(0, (size - length) // 512) * 512
        op = rng.random()
        if op < 0.45:
            data = rng.randbytes(length)
            h.pwrite(data, offset, nbd.CMD_FLAG_FUA if rng.random() < 0.02 else 0)
            model[offset:offset + length] = data
        elif op < 0.55:
            h.zero(length, offset, 0 if rng.random() < 0.5 else nbd.CMD_FLAG_NO_HOLE)
            model[offset:offset + length] = bytes(length)
        elif op < 0.60:
            # memory and file both read trimmed ranges back as zeroes.
            h.trim(length, offset)
            model[offset:offset + length] = bytes(length)
        elif op < 0.65:
            h.flush()
        else:
            got = h.pread(length, offset)
            check(got == model[offset:offset + length],
                  f"op {i}: read of {length} bytes at {offset} differs from what was written")
    whole = read_all(handles[0], size)
    check(whole == model, "final contents differ from what was written")
    for h in handles:
        h.shutdown()
    return hashlib.sha256(whole).hexdigest(), hashlib.sha256(model).hexdigest()


def read_all(h, size):
    out = bytearray()
    for offset in range(0, size, 4 * MiB):
        out += h.pread(min(4 * MiB, size - offset), offset)
    return out


def case_workload(args, tmp, plugin_kind):
    size = 32 * MiB
    seed = 20240601
    if plugin_kind == "memory":
        plugin = ["memory", str(size)]
        ours = ["blockcache-size=1M"]  # small: forces write-back on a full cache
    elif plugin_kind == "file":
        path = os.path.join(tmp, "disk.img")
        plugin = ["file", path]
        ours = ["blockcache-size=4M"]
    else:
        plugin = ["--filter=noextents", "memory", str(size)]
        ours = ["blockcache-size=2M", "blockcache-read=on"]

    # Three views of the result, each from a different path: the model (the
    # bytes the workload wrote), the plugin alone read over a plain NBD
    # connection (no filter: an independent reference), and the stack with
    # the filter; for the file plugin also the file itself after nbdkit exits.
    read_back, modelled = {}, {}
    for name, filter_args in (("plain", []), ("cached", [f"--filter={args.filter}"])):
        if plugin_kind == "file":
            with open(path, "wb") as f:
                f.truncate(size)
        server = Server(tmp, filter_args + plugin + (ours if filter_args else []), name)
        read_back[name], modelled[name] = run_workload(server, size, seed)
        server.stop()
        check(read_back[name] == modelled[name], f"{name}: the server read back other bytes than "
                                                 "the workload wrote")
        if plugin_kind == "file":
            with open(path, "rb") as f:
                on_disk = hashlib.sha256(f.read()).hexdigest()
            check(on_disk == modelled[name], f"{name}: the file does not hold the bytes the workload "
                                             "wrote after nbdkit exited")
    check(read_back["cached"] == read_back["plain"],
          "the filter's stack reads back other contents than the plugin alone")
    check(modelled["cached"] == modelled["plain"], "the seeded workload was not the same twice")
    print(f"ok: {plugin_kind}: the filter's stack, the plugin alone and the model agree "
          f"({read_back['plain'][:16]})")


def case_kill(args, tmp):
    size = 32 * MiB
    path = os.path.join(tmp, "disk.img")
    with open(path, "wb") as f:
        f.truncate(size)
    # Write-around off: the file plugin is fast, and the writes after the
    # flush must be cached for the kill to test anything.
    server = Server(tmp, [f"--filter={args.filter}", "file", path, "blockcache-size=64M",
                          "blockcache-write-around=off"])
    h = server.connect()
    other = server.connect()
    check(h.can_multi_conn(), "the filter does not advertise multi-conn")
    rng = random.Random(7)
    flushed = {}
    for _ in range(200):
        offset = rng.randrange(0, (size // 2 - 65536) // 4096) * 4096
        data = rng.randbytes(rng.randint(1, 16) * 4096)
        h.pwrite(data, offset)
        for k in range(0, len(data), 4096):
            flushed[offset + k] = data[k:k + 4096]
    other.flush()  # multi-conn: a flush on any connection covers all of them
    unflushed = rng.randbytes(4 * MiB)
    h.pwrite(unflushed, size // 2)  # never flushed, in the other half
    server.kill()
    with open(path, "rb") as f:
        disk = f.read()
    for offset, block in flushed.items():
        check(disk[offset:offset + 4096] == block,
              f"flushed data at offset {offset} is missing from the file after SIGKILL")
    # The cache really held the unflushed writes (so the test tested it).
    check(disk[size // 2:size // 2 + len(unflushed)] != unflushed,
          "unflushed writes reached the file: nothing was cached")
    print(f"ok: {len(flushed)} flushed blocks survived SIGKILL")


def case_flush_error(args, tmp):
    size = 16 * MiB
    path = os.path.join(tmp, "disk.img")
    trigger = os.path.join(tmp, "fail-writes")
    with open(path, "wb") as f:
        f.truncate(size)
    server = Server(tmp, [f"--filter={args.filter}", "--filter=error", "file", path,
                          "error-pwrite=EIO", "error-pwrite-rate=100%",
                          f"error-pwrite-file={trigger}"])
    h = server.connect()
    rng = random.Random(11)
    data = rng.randbytes(2 * MiB)
    h.pwrite(data, MiB)
    open(trigger, "w").close()
    try:
        h.flush()
        check(False, "flush succeeded although every plugin write failed")
    except nbd.Error as e:
        check(e.errnum == 5, f"flush failed with {e.errnum} ({e}), expected EIO")
    # Still readable, more writes still accepted; a second flush fails too.
    check(h.pread(len(data), MiB) == data, "data was lost from the cache after a failed flush")
    more = rng.randbytes(MiB)
    h.pwrite(more, 8 * MiB)
    try:
        h.flush()
        check(False, "second flush succeeded although writes still fail")
    except nbd.Error:
        pass
    os.unlink(trigger)
    h.flush()
    server.kill()  # no close-time write-back: the flush alone must have done it
    with open(path, "rb") as f:
        disk = f.read()
    check(disk[MiB:MiB + len(data)] == data, "data written before the failed flush was lost")
    check(disk[8 * MiB:9 * MiB] == more, "data written after the failed flush was lost")
    check("write-back" in server.log_text(), "the failed write-back was not logged")
    print("ok: failed flushes reported EIO, the retry wrote everything")


def case_exit_error(args, tmp):
    """At exit the cache writes back and flushes; when that fails the log
    must say what may be lost. nbdkit 1.32's error filter cannot fail a
    flush, so the flush fails the way it does in use: the remote server
    behind the nbd plugin is gone."""
    expected = "closing at exit failed, so writes since the client's last flush may be lost"

    def stop_and_read(server):
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=60)
        return server.log_text()

    # The write-back fails: 64 KiB are still cached, and lost.
    path = os.path.join(tmp, "disk.img")
    with open(path, "wb") as f:
        f.truncate(16 * MiB)
    trigger = os.path.join(tmp, "fail-writes")
    server = Server(tmp, [f"--filter={args.filter}", "--filter=error", "file", path,
                          "error-pwrite=EIO", "error-pwrite-rate=100%",
                          f"error-pwrite-file={trigger}"], name="exit-pwrite")
    h = server.connect()
    h.pwrite(b"\x5a" * 65536, MiB)
    open(trigger, "w").close()  # before the disconnect, which writes back too
    h.shutdown()
    log = stop_and_read(server)
    check(f"{expected} (65536 bytes were still cached)" in log,
          f"a failed write-back at exit is not logged as a loss:\n{log[-2000:]}")
    check("plugin write of 65536 bytes at offset 1048576 failed" in log,
          f"the failed plugin write is not named:\n{log[-2000:]}")

    # Only the final flush fails: nothing was cached, the flush names no range.
    inner = Server(tmp, ["memory", "16M"], name="inner")
    server = Server(tmp, [f"--filter={args.filter}", "nbd", f"socket={inner.sock}", "shared=true"],
                    name="exit-flush")
    h = server.connect()
    h.pwrite(b"\x5a" * 65536, MiB)
    h.flush()
    h.shutdown()
    inner.kill()
    log = stop_and_read(server)
    check(f"{expected} (0 bytes were still cached): plugin flush failed:" in log,
          f"a failed flush at exit is not logged as such:\n{log[-2000:]}")
    print("ok: a failed write-back or flush at exit is logged with what may be lost")


def case_write_around(args, tmp):
    """Over a plugin as fast as memory, once write-back has timed it, writes
    go straight to the plugin even with room in the cache;
    blockcache-write-around=off keeps them cached until the cache is full."""
    page = 4096
    for setting in ("on", "off"):
        path = os.path.join(tmp, f"disk-{setting}.img")
        with open(path, "wb") as f:
            f.truncate(16 * MiB)
        server = Server(tmp, ["-v", "-D", "blockcache.stats=1", f"--filter={args.filter}",
                              "file", path, f"blockcache-write-around={setting}"],
                        name=f"around-{setting}")
        h = server.connect()
        # Cached (the plugin is not timed yet), then written back; three
        # rounds, should one write-back lose the CPU on a busy machine.
        for _ in range(3):
            for i in range(32):
                h.pwrite(bytes([i + 1]) * page, i * 2 * page)
            h.flush()
        later = [MiB + i * 2 * page for i in range(32)]
        for i, offset in enumerate(later):
            h.pwrite(bytes([0x80 + i]) * page, offset)
        with open(path, "rb") as f:
            on_plugin = sum(1 for i, offset in enumerate(later)
                            if os.pread(f.fileno(), page, offset) == bytes([0x80 + i]) * page)
        for i, offset in enumerate(later):
            check(h.pread(page, offset) == bytes([0x80 + i]) * page,
                  f"write-around={setting}: page at {offset} does not read back")
        h.shutdown()
        server.stop()
        stats = re.search(r"writes (\d+) \((\d+) straight to the plugin\)", server.log_text())
        check(stats is not None, f"no cache statistics in the log:\n{server.log_text()[-2000:]}")
        direct = int(stats.group(2))
        if setting == "on":
            check(on_plugin == 32 and direct >= 32,
                  f"write-around=on: {on_plugin} of 32 new pages on the plugin before a flush, "
                  f"{direct} writes straight to the plugin")
        else:
            check(on_plugin == 0 and direct == 0,
                  f"write-around=off: {on_plugin} of 32 new pages on the plugin before a flush, "
                  f"{direct} writes straight to the plugin")
        with open(path, "rb") as f:
            disk = f.read()
        for i, offset in enumerate(later):
            check(disk[offset:offset + page] == bytes([0x80 + i]) * page,
                  f"write-around={setting}: page at {offset} missing from the file after exit")
    print("ok: new writes go around the cache to a fast plugin, and stay cached with write-around=off")


def case_caps(args, tmp):
    need("nbdinfo", "libnbd-bin")
    ours = f"--filter={args.filter}"
    cases = [
        # (stack, expected answers)
        ([ours, "memory", "64M"],
         dict(can_fua=True, can_zero=True, can_fast_zero=True, can_trim=True, can_flush=True,
              can_multi_conn=True, is_read_only=False, can_cache=False)),
        ([ours, "--filter=fua", "memory", "64M"],  # fuamode=none: FUA done with a flush
         dict(can_fua=True)),
        ([ours, "--filter=nozero", "memory", "64M", "zeromode=none"],  # zeroes written here
         dict(can_zero=True, can_fast_zero=False)),
        ([ours, "memory", "64M", "blockcache-read=on"], dict(can_cache=True)),
        (["-r", ours, "memory", "64M"], dict(is_read_only=True)),
    ]
    import json
    for stack, expected in cases:
        server = Server(tmp, stack, "caps")
        out = subprocess.run(["nbdinfo", "--json", server.uri], capture_output=True, text=True,
                             timeout=60)
        server.stop()
        check(out.returncode == 0, f"nbdinfo failed: {out.stderr}")
        info = json.loads(out.stdout)["exports"][0]
        for key, value in expected.items():
            check(info.get(key) == value,
                  f"{' '.join(stack)}: {key} is {info.get(key)}, expected {value}")
    # Extents off: no base:allocation, so nothing claims to know sparseness.
    server = Server(tmp, [ours, "memory", "64M", "blockcache-extents=off"], "caps")
    h = server.connect()
    check(not h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION),
          "blockcache-extents=off still offers base:allocation")
    h.shutdown()
    server.stop()
    print(f"ok: can_* answers as expected in {len(cases) + 1} stacks")


def case_fio_verify(args, tmp):
    need("fio", "fio")
    server = Server(tmp, [f"--filter={args.filter}", "--filter=delay", "memory", "256M",
                          "wdelay=1ms", "rdelay=1ms", "blockcache-size=1M",
                          "blockcache-read=on"])
    out = subprocess.run(["fio", "--ioengine=nbd", f"--uri={server.uri}", "--name=verify",
                          "--rw=randwrite", "--bs=4k,64k", "--bsrange=4k-64k", "--iodepth=16",
                          "--fsync=32", "--numjobs=4", "--size=16M", "--offset_increment=32M",
                          "--verify=crc32c", "--verify_fatal=1", "--verify_state_save=0",
                          "--group_reporting"],
                         capture_output=True, text=True, timeout=300, cwd=tmp)
    server.stop()
    check(out.returncode == 0 and "err= 0" in out.stdout,
          f"fio reported errors:\n{out.stdout[-3000:]}\n{out.stderr[-2000:]}")
    check("read: IOPS=" in out.stdout, "fio did not read anything back to verify")
    print("ok: fio wrote and verified 64 MiB over 4 connections through a 1 MiB cache")


def case_options(args, tmp):
    bad = [("blockcache-mode=fast", "blockcache-mode"),
           ("blockcache-size=1K", "blockcache-size"),
           ("blockcache-size=lots", "blockcache-size"),
           ("blockcache-read=maybe", "blockcache-read"),
           ("blockcache-extents=guess", "blockcache-extents"),
           ("blockcache-page=3000", "blockcache-page"),
           ("blockcache-threads=0", "blockcache-threads"),
           ("blockcache-write-around=sometimes", "blockcache-write-around"),
           ("blockcache-bogus=1", "blockcache-bogus")]
    for option, name in bad:
        out = subprocess.run(["nbdkit", "-f", "-U", os.path.join(tmp, "never.sock"),
                              f"--filter={args.filter}", "memory", "1M", option],
                             capture_output=True, text=True, timeout=30)
        check(out.returncode != 0, f"nbdkit accepted {option}")
        check(name in out.stderr, f"{option}: the error does not name {name}: {out.stderr}")
    help_text = subprocess.run(["nbdkit", f"--filter={args.filter}", "memory", "--help"],
                               capture_output=True, text=True, timeout=30).stdout
    for name in ("blockcache-size", "blockcache-mode", "blockcache-read", "blockcache-extents",
                 "blockcache-scan-block", "blockcache-write-around"):
        check(name in help_text, f"--help does not list {name}")
    print(f"ok: {len(bad)} bad options refused with a clear message; --help lists the options")


def case_close(args, tmp):
    size = 16 * MiB
    path = os.path.join(tmp, "disk.img")
    with open(path, "wb") as f:
        f.truncate(size)
    server = Server(tmp, [f"--filter={args.filter}", "--filter=delay", "file", path,
                          "wdelay=1ms"])
    h = server.connect()
    data = random.Random(5).randbytes(3 * MiB)
    h.pwrite(data, MiB)  # no flush
    h.shutdown()
    server.stop()
    with open(path, "rb") as f:
        disk = f.read()
    check(disk[MiB:MiB + len(data)] == data, "unflushed writes were lost when the client left")
    check("error" not in server.log_text(), "errors at close: " + server.log_text()[-2000:])
    print("ok: a disconnect wrote everything back")


def memory_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    sys.exit(f"FAIL: no {field} in /proc/{pid}/status")


def case_memory_bound(args, tmp, bound=32 * MiB):
    """The cache's memory bound, measured from outside the filter: the peak
    resident size of the nbdkit process (VmHWM, kept by the kernel) while
    8x the bound is written, against its size once serving. Under the null
    plugin, which keeps nothing, what grows is the filter (and nbdkit's
    request buffers, allowed for in the slack)."""
    size = 1 << 30
    server = Server(tmp, [f"--filter={args.filter}", "null", str(size), f"blockcache-size={bound}"])
    pid = server.proc.pid
    h = server.connect()
    h.pwrite(bytes(4096), 0)  # request buffers and the first page exist
    before = memory_kib(pid, "VmRSS") * 1024
    rng = random.Random(3)
    written = 0
    while written < 8 * bound:
        length = rng.choice([4096, 65536, 256 * 1024])
        offset = rng.randrange(0, (size - length) // 4096) * 4096
        h.pwrite(rng.randbytes(length), offset)
        written += length
    peak = memory_kib(pid, "VmHWM") * 1024
    h.shutdown()
    server.stop()
    growth = peak - before
    slack = bound // 4 + 8 * MiB  # page bookkeeping, allocator, request buffers
    print(f"nbdkit grew by {growth / MiB:.1f} MiB (peak RSS {peak / MiB:.1f} MiB) writing "
          f"{written // MiB} MiB through a {bound // MiB} MiB cache")
    check(growth <= bound + slack,
          f"nbdkit's resident memory grew by {growth} bytes, more than the {bound}-byte bound "
          f"plus {slack} bytes of slack")
    check(growth >= bound // 2, f"nbdkit grew by only {growth} bytes: the cache did not fill, "
                                "so the bound was not tested")
    print("ok: the memory bound holds, measured as nbdkit's peak RSS")


def parse_map(text):
    extents = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            extents.append((int(parts[0]), int(parts[1]), int(parts[2])))
    return extents


def nbdinfo_map(uri):
    out = subprocess.run(["nbdinfo", "--map", uri], capture_output=True, text=True, timeout=120)
    check(out.returncode == 0, f"nbdinfo --map failed: {out.stderr}")
    return parse_map(out.stdout)


def case_scan_map(args, tmp):
    need("nbdinfo", "libnbd-bin")
    size = 64 * MiB
    block = 64 * 1024
    data_blocks = {3, 4, 100, 511, 1023}
    server = Server(tmp, [f"--filter={args.filter}", "--filter=noextents", "memory", str(size),
                          "blockcache-extents=scan", f"blockcache-scan-block={block}"])
    h = server.connect()
    for b in data_blocks:
        h.pwrite(b"\x01" * 512, b * block + 4096)
    h.flush()
    h.shutdown()
    extents = nbdinfo_map(server.uri)
    covered = 0
    for offset, length, kind in extents:
        check(offset == covered, f"map is not contiguous at {offset}")
        covered += length
        for b in range(offset // block, (offset + length + block - 1) // block):
            is_data = b in data_blocks
            check((kind & 2 == 0) == is_data,
                  f"block {b} reported as type {kind}, expected {'data' if is_data else 'zero'}")
    check(covered == size, f"map covers {covered} bytes, not {size}")
    zero_bytes = sum(length for _, length, kind in extents if kind & 2)
    server.stop()
    # Without our filter the same stack reports no zeroes at all.
    plain = Server(tmp, ["--filter=noextents", "memory", str(size)], "plain")
    plain_zero = sum(length for _, length, kind in nbdinfo_map(plain.uri) if kind & 2)
    plain.stop()
    check(plain_zero == 0, "noextents unexpectedly reported zeroes by itself")
    print(f"ok: scan found {zero_bytes} zero bytes of {size}; noextents alone reports none")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("case")
    parser.add_argument("--filter", required=True)
    args = parser.parse_args()
    need("nbdkit", "nbdkit")
    check(os.path.exists(args.filter), f"filter {args.filter} is not built")
    with tempfile.TemporaryDirectory(prefix="blockcache-test-") as tmp:
        if args.case.startswith("workload-"):
            case_workload(args, tmp, args.case[len("workload-"):])
        elif args.case == "kill":
            case_kill(args, tmp)
        elif args.case == "flush-error":
            case_flush_error(args, tmp)
        elif args.case == "exit-error":
            case_exit_error(args, tmp)
        elif args.case == "fio-verify":
            case_fio_verify(args, tmp)
        elif args.case == "options":
            case_options(args, tmp)
        elif args.case == "close":
            case_close(args, tmp)
        elif args.case == "caps":
            case_caps(args, tmp)
        elif args.case == "write-around":
            case_write_around(args, tmp)
        elif args.case == "scan-map":
            case_scan_map(args, tmp)
        elif args.case == "memory-bound":
            case_memory_bound(args, tmp)
        else:
            sys.exit(f"unknown case {args.case}")


if __name__ == "__main__":
    main()
