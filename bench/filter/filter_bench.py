#!/usr/bin/env python3
"""Benchmarks nbdkit-blockcache-filter against nbdkit's own cache filter
(cache=writeback) and against no filter at all, in one run, with fio's nbd
engine. Prints each row as IOPS / MiB/s and as ratios; asserts nothing.

  filter_bench.py --filter build/filter/nbdkit-blockcache-filter.so [--seconds 5]

Backends: the memory plugin, the file plugin on a tmpfs image, and a slow
one (--filter=delay wdelay=1ms rdelay=1ms over memory). Rows (iodepth 16,
write rows flushed at the end): 4K and 64K random writes, 64K and 1 MiB
sequential writes, 4K mixed random reads and writes, 4K random writes with
a flush every 256 writes, 4K random reads of data written just before.
Every cell runs --rounds times, the configurations alternating within a
round; the table shows medians. Each row gets a fresh server (and image).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from servers import wait_until_listening  # noqa: E402

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
        try:
            wait_until_listening(self.sock, self.proc, "nbdkit " + " ".join(args))
        except RuntimeError as e:
            die(f"{e}\n" + (self.proc.stderr.read().decode() if self.proc.poll() is not None else ""))
        self.uri = f"nbd+unix:///?socket={self.sock}"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def fio(uri, seconds, rows):
    """Runs one fio invocation; returns {job name: (iops, MiB/s)}, reads and
    writes added together (a mixed row counts both)."""
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
        iops = job["write"]["iops"] + job["read"]["iops"]
        mib = (job["write"]["bw_bytes"] + job["read"]["bw_bytes"]) / (1 << 20)
        requests = job["write"]["total_ios"] + job["read"]["total_ios"]
        result[job["jobname"]] = (iops, mib, requests)
    return result


def cpu_seconds(pid):
    """User plus system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rows(seconds):
    """Every row: name -> the fio jobs that make it (the last one is measured).
    Write rows end with a flush, so a cache is charged for writing back."""
    t = ["--time_based", f"--runtime={seconds}", f"--size={SIZE}", "--iodepth=16"]
    return {
        "randwrite-4k": [("randwrite-4k", ["--rw=randwrite", "--bs=4k", "--end_fsync=1"] + t)],
        "randwrite-64k": [("randwrite-64k", ["--rw=randwrite", "--bs=64k", "--end_fsync=1"] + t)],
        "seqwrite-64k": [("seqwrite-64k", ["--rw=write", "--bs=64k", "--end_fsync=1"] + t)],
        "seqwrite-1m": [("seqwrite-1m", ["--rw=write", "--bs=1m", "--end_fsync=1"] + t)],
        "randrw-4k": [("randrw-4k", ["--rw=randrw", "--rwmixread=50", "--bs=4k",
                                     "--end_fsync=1"] + t)],
        "randwrite-4k-fsync256": [("randwrite-4k-fsync256", ["--rw=randwrite", "--bs=4k",
                                                              "--fsync=256"] + t)],
        # Recently written data: 32 MiB written, then read back at random.
        "randread-4k-recent": [
            ("prepare", ["--rw=write", "--bs=1m", "--iodepth=4", "--offset=512m", "--size=32m"]),
            ("randread-4k-recent", ["--stonewall", "--rw=randread", "--bs=4k", "--iodepth=16",
                                    "--offset=512m", "--size=32m", "--time_based",
                                    f"--runtime={seconds}"])],
    }


def measure(tmp, server_args, seconds, row_names, before_start):
    """One server per row, one fio run each; {row: (iops, MiB/s, server CPU
    microseconds per request)}. The CPU column holds up on a busy machine,
    where throughput swings with everyone else's load."""
    all_rows = rows(seconds)
    results = {}
    for row in row_names:
        before_start()  # every row starts from the same empty backend
        server = Server(tmp, server_args)
        try:
            iops, mib, requests = fio(server.uri, seconds, all_rows[row])[row]
            # Setup jobs (the "prepare" of a read row) are charged too: the
            # same work for every configuration.
            results[row] = (iops, mib, cpu_seconds(server.proc.pid) * 1e6 / max(requests, 1))
        finally:
            server.stop()
    return results


def median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--filter", required=True)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "5")))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")),
                        help="runs of every cell, the configurations alternating; medians shown")
    parser.add_argument("--backends", default="memory,file,delay",
                        help="comma-separated subset of memory,file,delay")
    parser.add_argument("--rows", default=",".join(rows(1)),
                        help="comma-separated subset of " + ",".join(rows(1)))
    parser.add_argument("--configs", default="no filter,nbdkit cache,blockcache",
                        help="comma-separated subset of: no filter,nbdkit cache,blockcache")
    parser.add_argument("--extra", default="",
                        help="extra blockcache parameters, e.g. blockcache-threads=32")
    parser.add_argument("--tmpfs", default="/dev/shm",
                        help="where the file backend's image lives (a tmpfs)")
    args = parser.parse_args()
    for program, package in (("nbdkit", "nbdkit"), ("fio", "fio")):
        if shutil.which(program) is None:
            die(f"{program} not found: install the Debian package {package}")
    ours = os.path.abspath(args.filter)
    if not os.path.exists(ours):
        die(f"{ours} is not built (make build)")
    row_names = args.rows.split(",")
    for row in row_names:
        if row not in rows(1):
            die(f"unknown row {row}")

    image = os.path.join(args.tmpfs, f"blockcache-bench-{os.getpid()}.img")

    def fresh_image():
        with open(image, "wb") as f:
            f.truncate(0)
            f.truncate(1 << 30)

    def nothing():
        pass

    backends = [("memory", ["memory", SIZE], nothing),
                ("file", ["file", image], fresh_image),
                ("delay", ["--filter=delay", "memory", SIZE, "wdelay=1ms", "rdelay=1ms"], nothing)]
    wanted = args.backends.split(",")
    backends = [b for b in backends if b[0] in wanted]
    configs = [("no filter", []),
               ("nbdkit cache", ["--filter=cache", "cache=writeback"]),
               ("blockcache", [f"--filter={ours}"] + args.extra.split())]
    configs = [c for c in configs if c[0] in args.configs.split(",")]

    load = os.getloadavg()
    print(f"blockcache filter benchmark: fio nbd engine, iodepth 16, {args.seconds} s per cell, "
          f"{args.rounds} rounds alternating, medians; nbdkit "
          + subprocess.run(["nbdkit", "--version"], capture_output=True, text=True).stdout.split()[1]
          + f"; load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          f"{os.cpu_count()} CPUs")
    try:
        with tempfile.TemporaryDirectory(prefix="blockcache-bench-") as tmp:
            for backend, plugin, before_start in backends:
                samples = {config: {row: [] for row in row_names} for config, _ in configs}
                for round_ in range(args.rounds):
                    # Alternate the order, so no configuration always runs
                    # first (or last) in a round.
                    order = configs[round_ % len(configs):] + configs[:round_ % len(configs)]
                    for config, filters in order:
                        # Filters come first on the command line (outermost
                        # first), their parameters after the plugin's.
                        filter_flags = [f for f in filters if f.startswith("--filter")]
                        params = [f for f in filters if not f.startswith("--filter")]
                        got = measure(tmp, filter_flags + plugin + params, args.seconds, row_names,
                                      before_start)
                        for row, value in got.items():
                            samples[config][row].append(value)
                print(f"\n== backend: {' '.join(plugin)}")
                header = f"{'row':24}" + "".join(f" {c:>16}" for c, _ in configs)
                if "blockcache" in samples:
                    header += "".join(f" {'vs ' + ('none' if c == 'no filter' else 'cache'):>9}"
                                      for c, _ in configs if c != "blockcache")
                print(header)
                for row in row_names:
                    med = {c: (median([v[0] for v in samples[c][row]]),
                               median([v[1] for v in samples[c][row]])) for c, _ in configs}
                    line = f"{row:24}" + "".join(f" {med[c][0]:9.0f}/{med[c][1]:5.0f}M"
                                                 for c, _ in configs)
                    if "blockcache" in med:
                        for c, _ in configs:
                            if c != "blockcache":
                                line += f" {med['blockcache'][0] / max(med[c][0], 1e-9):8.2f}x"
                    print(line, flush=True)
                print(f"{'server CPU us/request':24}" + "".join(f" {c:>16}" for c, _ in configs)
                      + ("".join(f" {'vs ' + ('none' if c == 'no filter' else 'cache'):>9}"
                                 for c, _ in configs if c != "blockcache")
                         if "blockcache" in samples else ""))
                for row in row_names:
                    cpu = {c: median([v[2] for v in samples[c][row]]) for c, _ in configs}
                    line = f"{row:24}" + "".join(f" {cpu[c]:16.1f}" for c, _ in configs)
                    if "blockcache" in cpu:
                        for c, _ in configs:
                            if c != "blockcache":
                                line += f" {cpu[c] / max(cpu['blockcache'], 1e-9):8.2f}x"
                    print(line, flush=True)
    finally:
        if os.path.exists(image):
            os.unlink(image)
    print("\n(cells are median IOPS/MiB per second, ratios blockcache IOPS over the peer's;"
          " mixed rows count reads and writes. CPU: the server's user+system time per"
          " request, ratios the peer's over blockcache's, so above 1 is better too)")


if __name__ == "__main__":
    main()
