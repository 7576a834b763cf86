#!/usr/bin/env python3
"""Benchmarks nbdkit-blockcache-filter against nbdkit's own cache filter
(cache=writeback) and against no filter at all, in one run, with fio's nbd
engine. Prints each row as IOPS / MiB/s and as ratios; asserts nothing.

  filter_bench.py --filter build/filter/nbdkit-blockcache-filter.so [--seconds 5]

Backends: the memory plugin, and a slow one (--filter=delay wdelay=1ms
rdelay=1ms over memory). Rows: 4K random writes with a flush every 256
writes (iodepth 16), 64K sequential writes (iodepth 16, flushed at the end),
4K random reads of data written just before (iodepth 16).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SIZE = "1G"


def die(message):
    sys.exit("bench: " + message)


class Server:
    def __init__(self, tmp, args):
        self.sock = os.path.join(tmp, "bench.sock")
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.proc = subprocess.Popen(["nbdkit", "-f", "--exit-with-parent", "-U", self.sock] + args,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                die("nbdkit did not start: " + " ".join(args) + "\n" +
                    (self.proc.stderr.read().decode() if self.proc.poll() is not None else ""))
            time.sleep(0.02)
        # The socket file appears at bind(), a moment before listen().
        while True:
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.sock)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    die("nbdkit does not accept connections: " + " ".join(args))
                time.sleep(0.02)
            finally:
                probe.close()
        self.uri = f"nbd+unix:///?socket={self.sock}"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def fio(uri, seconds, rows):
    """Runs one fio invocation; returns {job name: (iops, MiB/s)}."""
    cmd = ["fio", "--output-format=json", "--ioengine=nbd", f"--uri={uri}", "--direct=1",
           "--group_reporting=0"]
    for name, opts in rows:
        cmd += [f"--name={name}"] + opts
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60 + 10 * seconds)
    if out.returncode != 0:
        die("fio failed: " + " ".join(cmd) + "\n" + out.stderr[-2000:])
    report = json.loads(out.stdout[out.stdout.index("{"):])
    result = {}
    for job in report["jobs"]:
        side = job["write"] if job["write"]["io_bytes"] > 0 else job["read"]
        result[job["jobname"]] = (side["iops"], side["bw_bytes"] / (1 << 20))
    return result


def measure(tmp, server_args, seconds):
    t = str(seconds)
    server = Server(tmp, server_args)
    try:
        results = {}
        results.update(fio(server.uri, seconds, [
            ("randwrite-4k-fsync256", ["--rw=randwrite", "--bs=4k", "--iodepth=16", "--fsync=256",
                                       "--time_based", f"--runtime={t}", f"--size={SIZE}"])]))
        results.update(fio(server.uri, seconds, [
            ("seqwrite-64k", ["--rw=write", "--bs=64k", "--iodepth=16", "--time_based",
                              f"--runtime={t}", f"--size={SIZE}", "--end_fsync=1"])]))
        # Recently written data: 32 MiB written, then read back at random.
        results.update(fio(server.uri, seconds, [
            ("prepare", ["--rw=write", "--bs=1m", "--iodepth=4", "--offset=512m", "--size=32m"]),
            ("randread-4k-recent", ["--stonewall", "--rw=randread", "--bs=4k", "--iodepth=16",
                                    "--offset=512m", "--size=32m", "--time_based",
                                    f"--runtime={t}"])]))
        results.pop("prepare", None)
        return results
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--filter", required=True)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "5")))
    parser.add_argument("--backends", default="memory,delay",
                        help="comma-separated subset of memory,delay")
    parser.add_argument("--extra", default="",
                        help="extra blockcache parameters, e.g. blockcache-threads=32")
    args = parser.parse_args()
    for program, package in (("nbdkit", "nbdkit"), ("fio", "fio")):
        if shutil.which(program) is None:
            die(f"{program} not found: install the Debian package {package}")
    ours = os.path.abspath(args.filter)
    if not os.path.exists(ours):
        die(f"{ours} is not built (make build)")

    backends = [("memory", ["memory", SIZE]),
                ("delay", ["--filter=delay", "memory", SIZE, "wdelay=1ms", "rdelay=1ms"])]
    wanted = args.backends.split(",")
    backends = [b for b in backends if b[0] in wanted]
    configs = [("no filter", []),
               ("nbdkit cache", ["--filter=cache", "cache=writeback"]),
               ("blockcache", [f"--filter={ours}"] + args.extra.split())]

    print(f"blockcache filter benchmark: fio nbd engine, {args.seconds} s per row, nbdkit "
          + subprocess.run(["nbdkit", "--version"], capture_output=True, text=True).stdout.split()[1])
    with tempfile.TemporaryDirectory(prefix="blockcache-bench-") as tmp:
        for backend, plugin in backends:
            table = {}
            for config, filters in configs:
                # Filters come first on the command line (outermost first),
                # their parameters after the plugin's.
                filter_flags = [f for f in filters if f.startswith("--filter")]
                params = [f for f in filters if not f.startswith("--filter")]
                table[config] = measure(tmp, filter_flags + plugin + params, args.seconds)
            print(f"\n== backend: {' '.join(plugin)}")
            print(f"{'row':24} {'no filter':>16} {'nbdkit cache':>16} {'blockcache':>16}"
                  f" {'vs none':>8} {'vs cache':>9}")
            for row in table["no filter"]:
                cells = []
                for config, _ in configs:
                    iops, mib = table[config][row]
                    cells.append(f"{iops:9.0f}/{mib:5.0f}M")
                ours_iops = table["blockcache"][row][0]
                vs_none = ours_iops / max(table["no filter"][row][0], 1e-9)
                vs_cache = ours_iops / max(table["nbdkit cache"][row][0], 1e-9)
                print(f"{row:24} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16}"
                      f" {vs_none:7.2f}x {vs_cache:8.2f}x")
    print("\n(cells are IOPS/MiB per second; ratios are blockcache IOPS over the peer's)")


if __name__ == "__main__":
    main()
