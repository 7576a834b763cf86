#!/usr/bin/env python3
"""Side-by-side benchmark: qcowkit's nbdkit qcow2 plugin, qemu-nbd on the same
qcow2 image, nbdkit's file plugin on the equivalent raw file.

Rows: sequential read (nbdcopy URI null:), sequential write into an empty
image (nbdcopy raw URI), 4K random read / write (fio's nbd engine, iodepth 16,
1 and 4 jobs), 64K sequential write (fio), on a fully allocated image and a
sparse half-full one; then the servers' peak memory (VmHWM) while fio writes
4K blocks at random all over an empty 4 TiB image. Each cell is the median of
BENCH_RUNS runs (15 for the timed rows when they take under a second), the
servers taking turns run by run (the order flips every run);
ratios are printed, never asserted.
usage: bench_plugin.py PLUGIN SCRATCH_DIR"""
import json
import os
import statistics
import subprocess
import sys
from contextlib import contextmanager

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from servers import SHORT_ROW_RUNS, alternating_runs, timed_client, wait_until_listening  # noqa: E402

PLUGIN = os.path.abspath(sys.argv[1])
SCRATCH = os.path.abspath(sys.argv[2])
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SIZE_MIB = int(os.environ.get("BENCH_SIZE_MIB", "1024"))
FIO_SECONDS = int(os.environ.get("BENCH_FIO_SECONDS", "4"))
MiB = 1 << 20
SOCK = os.path.join(SCRATCH, "bench.sock")
URI = f"nbd+unix:///?socket={SOCK}"
LOG = os.path.join(SCRATCH, "server.log")
SERVERS = ["qcowkit", "qemu-nbd", "raw-file"]


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def make_raw(path, sparse):
    """1 GiB of incompressible data; `sparse` leaves every other MiB a hole."""
    with open(path, "wb") as f:
        f.truncate(SIZE_MIB * MiB)
        chunk = os.urandom(MiB)
        for i in range(SIZE_MIB):
            if sparse and i % 2:
                continue
            f.seek(i * MiB)
            # Vary each MiB cheaply so nothing dedups or compresses.
            f.write(i.to_bytes(8, "little") + chunk[8:])


def prepare():
    os.makedirs(SCRATCH, exist_ok=True)
    images = {}
    for kind in ("full", "sparse"):
        raw = os.path.join(SCRATCH, f"{kind}.raw")
        qcow = os.path.join(SCRATCH, f"{kind}.qcow2")
        if not os.path.exists(raw):
            make_raw(raw, kind == "sparse")
        if not os.path.exists(qcow):
            sh("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow)
        images[kind] = (raw, qcow)
    return images


@contextmanager
def serve(server, raw, qcow):
    if os.path.exists(SOCK):
        os.unlink(SOCK)
    if server == "qcowkit":
        cmd = ["nbdkit", "-f", "-U", SOCK, "--exit-with-parent", PLUGIN, qcow]
    elif server == "qemu-nbd":
        # writeback: qemu-nbd's fast mode, the same page-cache use as ours.
        cmd = ["qemu-nbd", "--persistent", "--shared=8", f"--socket={SOCK}", "-f", "qcow2",
               "--cache=writeback", qcow]
    else:
        cmd = ["nbdkit", "-f", "-U", SOCK, "--exit-with-parent", "file", raw]
    # The server's messages go to a log in the scratch directory, shown if a
    # run fails.
    log = open(LOG, "w")
    proc = subprocess.Popen(cmd, stderr=log)
    try:
        wait_until_listening(SOCK, proc, server)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def timed(*args):
    return timed_client(args, LOG)


def fio_job(rw, jobs, bs="4k", size=None):
    out = subprocess.run(
        ["fio", "--name=bench", "--ioengine=nbd", f"--uri={URI}", f"--rw={rw}", f"--bs={bs}",
         "--iodepth=16", f"--numjobs={jobs}", f"--runtime={FIO_SECONDS}", "--time_based",
         f"--size={size or f'{SIZE_MIB}M'}", "--group_reporting", "--output-format=json"],
        check=True, capture_output=True, text=True).stdout
    data = json.loads(out[out.index("{"):])
    return data["jobs"][0]["read" if rw in ("randread", "read") else "write"]


def fio_iops(rw, jobs):
    return fio_job(rw, jobs)["iops"]


def peak_rss_mib(pid):
    """The server's peak resident memory so far (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def huge_targets():
    """An empty 4 TiB qcow2 and raw file, for the memory row."""
    qcow = os.path.join(SCRATCH, "huge.qcow2")
    raw = os.path.join(SCRATCH, "huge.raw")
    for p in (qcow, raw):
        if os.path.exists(p):
            os.unlink(p)
    sh("qemu-img", "create", "-q", "-f", "qcow2", qcow, "4T")
    with open(raw, "wb") as f:
        f.truncate(4 << 40)
    return raw, qcow


def fresh_targets(kind):
    """Empty targets for the write row: a new qcow2 and a new raw file."""
    qcow = os.path.join(SCRATCH, f"empty-{kind}.qcow2")
    raw = os.path.join(SCRATCH, f"empty-{kind}.raw")
    for p in (qcow, raw):
        if os.path.exists(p):
            os.unlink(p)
    sh("qemu-img", "create", "-q", "-f", "qcow2", qcow, f"{SIZE_MIB}M")
    with open(raw, "wb") as f:
        f.truncate(SIZE_MIB * MiB)
    return raw, qcow


def writable_copy(server, raw, qcow):
    """A copy of the file that `server` serves, for random writes."""
    if server == "raw-file":
        copy = raw + ".w"
        sh("cp", "--sparse=always", raw, copy)
        return copy, qcow
    copy = f"{qcow}.{server}.w"
    sh("cp", "--sparse=always", qcow, copy)
    return raw, copy


def measure(kind, raw, qcow, row, server):
    if row == "seq read (s)":
        with serve(server, raw, qcow):
            return timed("nbdcopy", URI, "null:")
    if row == "seq write (s)":
        er, eq = fresh_targets(kind)
        with serve(server, er, eq):
            return timed("nbdcopy", "--flush", raw, URI)
    if row == "64k seq write (MiB/s)":
        with serve(server, raw, qcow):
            return fio_job("write", 1, bs="64k")["bw"] / 1024
    if row == "4 TiB randwrite peak RSS (MiB)":
        hr, hq = huge_targets()
        with serve(server, hr, hq) as proc:
            fio_job("randwrite", 1, size="4T")
            return peak_rss_mib(proc.pid)
    rw, jobs = row.split()[1], int(row.split()[2][1])
    rw = "randread" if rw == "read" else "randwrite"
    with serve(server, raw, qcow):
        return fio_iops(rw, jobs)


ROWS = ["seq read (s)", "seq write (s)", "4k read j1 (IOPS)", "4k read j4 (IOPS)",
        "4k write j1 (IOPS)", "4k write j4 (IOPS)", "64k seq write (MiB/s)"]
# Rows where less is better: time and memory.
LOWER_IS_BETTER = ("(s)", "(MiB)")


def main():
    images = prepare()
    print(f"{SIZE_MIB} MiB images, median of {RUNS} runs ({SHORT_ROW_RUNS} for timed rows under 1 s);"
          f" qemu-nbd --cache=writeback; fio nbd engine bs=4k iodepth=16, {FIO_SECONDS} s")
    print(f"{'image':7} {'row':30} {'qcowkit':>10} {'qemu-nbd':>10} {'raw-file':>10}"
          f" {'vs qemu-nbd':>12} {'vs raw':>8}")
    cells = [(kind, raw, qcow, row) for kind, (raw, qcow) in images.items() for row in ROWS]
    cells.append(("empty", None, None, "4 TiB randwrite peak RSS (MiB)"))
    for kind, raw, qcow, row in cells:
        # Writes go to one copy per server and row; its runs then see the
        # same image evolve the same way for every server.
        writes = "write j" in row or row.startswith("64k")
        copies = {server: writable_copy(server, raw, qcow) if writes else (raw, qcow)
                  for server in SERVERS}
        values = alternating_runs(SERVERS, RUNS,
                                  lambda server: measure(kind, *copies[server], row, server),
                                  short_seconds=1.0 if row.endswith("(s)") else None)
        ours, qemu, ceiling = (statistics.median(values[s]) for s in SERVERS)
        # Ratio > 1 means qcowkit is better (less time or memory, more IOPS).
        if row.endswith(LOWER_IS_BETTER):
            vs_qemu, vs_raw = qemu / ours, ceiling / ours
        else:
            vs_qemu, vs_raw = ours / qemu, ours / ceiling
        print(f"{kind:7} {row:30} {ours:10.2f} {qemu:10.2f} {ceiling:10.2f}"
              f" {vs_qemu:11.2f}x {vs_raw:7.2f}x", flush=True)
    print("ratios: above 1.00 means qcowkit is better (vs raw: share of the raw-file ceiling;"
          " for memory, the raw-file server holds no metadata at all)")


if __name__ == "__main__":
    main()
