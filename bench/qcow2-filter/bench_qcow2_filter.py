#!/usr/bin/env python3
"""The qcow2 filter over a slow remote disk, side by side with qemu-nbd.

An inner nbdkit serves the qcow2 file's bytes (file plugin) with 1 ms added
to every read, write, zero and trim (--filter=delay). Three servers then
serve the image's guest contents from it:
  qcowkit        nbdkit --filter=qcow2 nbd socket=INNER
  qcowkit+cache  nbdkit --filter=qcow2 --filter=blockcache nbd socket=INNER
  qemu-nbd       qemu-nbd -f qcow2 nbd+unix:///?socket=INNER  (--cache=writeback)
Rows: sequential read of a full image (nbdcopy URI null:), sequential
write into an empty image (nbdcopy raw URI, with --flush), 4K random read
and write (fio's nbd engine, iodepth 16, one job). Each cell is the median
of BENCH_RUNS runs (15 for the timed rows when they take under a second),
the servers alternating; ratios are printed, never asserted.
usage: bench_qcow2_filter.py FILTER_SO BLOCKCACHE_SO SCRATCH_DIR"""
import json
import os
import statistics
import subprocess
import sys
from contextlib import contextmanager

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from servers import SHORT_ROW_RUNS, alternating_runs, timed_client, wait_until_listening  # noqa: E402

FILTER = os.path.abspath(sys.argv[1])
BLOCKCACHE = os.path.abspath(sys.argv[2])
SCRATCH = os.path.abspath(sys.argv[3])
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SIZE_MIB = int(os.environ.get("BENCH_SIZE_MIB", "256"))
FIO_SECONDS = int(os.environ.get("BENCH_FIO_SECONDS", "4"))
DELAY = os.environ.get("BENCH_DELAY", "1ms")
MiB = 1 << 20
INNER = os.path.join(SCRATCH, "inner.sock")
OUTER = os.path.join(SCRATCH, "outer.sock")
URI = f"nbd+unix:///?socket={OUTER}"
LOG = os.path.join(SCRATCH, "servers.log")
SERVERS = ["qcowkit", "qcowkit+cache", "qemu-nbd"]


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def prepare():
    """A raw file of incompressible data, and the same as a full qcow2 image."""
    os.makedirs(SCRATCH, exist_ok=True)
    # Named by size, so a run with another BENCH_SIZE_MIB makes its own.
    raw = os.path.join(SCRATCH, f"data-{SIZE_MIB}M.raw")
    full = os.path.join(SCRATCH, f"full-{SIZE_MIB}M.qcow2")
    if not os.path.exists(raw):
        chunk = os.urandom(MiB)
        with open(raw, "wb") as f:
            for i in range(SIZE_MIB):
                f.write(i.to_bytes(8, "little") + chunk[8:])
    if not os.path.exists(full):
        sh("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, full)
    return raw, full


def scratch_image(source):
    """A copy to write to (or a new empty image), with room to grow: the
    filter cannot make the inner export longer."""
    path = os.path.join(SCRATCH, "work.qcow2")
    if os.path.exists(path):
        os.unlink(path)
    if source is None:
        sh("qemu-img", "create", "-q", "-f", "qcow2", path, f"{SIZE_MIB}M")
    else:
        sh("cp", "--sparse=always", source, path)
    os.truncate(path, 2 * SIZE_MIB * MiB + 64 * MiB)
    return path


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def serve(server, image):
    for s in (INNER, OUTER):
        if os.path.exists(s):
            os.unlink(s)
    # The servers' messages go to a log in the scratch directory, shown if a
    # run fails.
    log = open(LOG, "w")
    inner = subprocess.Popen(["nbdkit", "-f", "-U", INNER, "--exit-with-parent", "--filter=delay",
                              "file", image, f"rdelay={DELAY}", f"wdelay={DELAY}"],
                             stderr=log)
    outer = None
    try:
        wait_until_listening(INNER, inner, "inner nbdkit")
        inner_uri = f"nbd+unix:///?socket={INNER}"
        if server == "qemu-nbd":
            cmd = ["qemu-nbd", "--persistent", "--shared=8", f"--socket={OUTER}", "-f", "qcow2",
                   "--cache=writeback", inner_uri]
        else:
            cmd = ["nbdkit", "-f", "-U", OUTER, "--exit-with-parent", f"--filter={FILTER}"]
            if server == "qcowkit+cache":
                cmd.append(f"--filter={BLOCKCACHE}")
            cmd += ["nbd", f"socket={INNER}"]
        outer = subprocess.Popen(cmd, stderr=log)
        wait_until_listening(OUTER, outer, server)
        yield
    finally:
        # The outer server first: it flushes into the inner one on exit.
        if outer:
            stop(outer)
        stop(inner)
        log.close()


def timed(*args):
    return timed_client(args, LOG)


def fio_iops(rw):
    out = subprocess.run(
        ["fio", "--name=bench", "--ioengine=nbd", f"--uri={URI}", f"--rw={rw}", "--bs=4k",
         "--iodepth=16", "--numjobs=1", f"--runtime={FIO_SECONDS}", "--time_based",
         f"--size={SIZE_MIB}M", "--group_reporting", "--output-format=json"],
        check=True, capture_output=True, text=True).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    return job["read" if rw == "randread" else "write"]["iops"]


def measure(row, server, raw, full):
    if row == "seq read (s)":
        with serve(server, full):
            return timed("nbdcopy", URI, "null:")
    if row == "seq write (s)":
        with serve(server, scratch_image(None)):
            return timed("nbdcopy", "--flush", raw, URI)
    rw = "randread" if row.startswith("4k read") else "randwrite"
    with serve(server, scratch_image(full) if rw == "randwrite" else full):
        return fio_iops(rw)


ROWS = ["seq read (s)", "seq write (s)", "4k read (IOPS)", "4k write (IOPS)"]


def main():
    raw, full = prepare()
    load = os.getloadavg()[0]
    print(f"{SIZE_MIB} MiB image behind an inner nbdkit adding {DELAY} per read/write; "
          f"median of {RUNS} runs ({SHORT_ROW_RUNS} for timed rows under 1 s); fio bs=4k iodepth=16, {FIO_SECONDS} s; "
          f"load average {load:.2f} on {os.cpu_count()} CPUs")
    print(f"{'row':16} {'qcowkit':>10} {'+cache':>10} {'qemu-nbd':>10} {'qcowkit/qemu':>13} {'+cache/qemu':>12}")
    for row in ROWS:
        values = alternating_runs(SERVERS, RUNS, lambda s: measure(row, s, raw, full),
                                  short_seconds=1.0 if row.endswith("(s)") else None)
        med = {s: statistics.median(v) for s, v in values.items()}
        ours, cached, qemu = (med[s] for s in SERVERS)
        # Ratio above 1 means qcowkit is better (less time, or more IOPS).
        if row.endswith("(s)"):
            r1, r2 = qemu / ours, qemu / cached
        else:
            r1, r2 = ours / qemu, cached / qemu
        print(f"{row:16} {ours:10.2f} {cached:10.2f} {qemu:10.2f} {r1:12.2f}x {r2:11.2f}x", flush=True)
    print("ratios: above 1.00 means qcowkit (without / with blockcache) is faster than qemu-nbd")


if __name__ == "__main__":
    main()
