#!/usr/bin/env python3
"""qcowkit vs qemu-img on the same files, in one run; prints ratios.

usage: bench/cli/bench_cli.py [--virtual-gib N] [--data-gib N] [--workdir DIR]
                              [--repeat N] [--only SUBSTRING[|SUBSTRING...]]

Makes a sparse raw image (100 GiB virtual, --data-gib of data spread over
it: part random, part text-like, so it compresses as real disks do), plus
the inputs of issue 13's convert rows (1 GiB of random data, a 4 GiB sparse
raw with 1 GiB of data, compressible text and a compressed qcow2 of it),
and issue 16's (a 1 GiB raw with 512 MiB of data converted by qemu-img to
vmdk, vdi, vpc and vhdx, each converted back to qcow2 by both tools; and
qcow2 streamed to standard output against qemu-img writing a file),
then times each row with qemu-img and with build/tools/qcowkit (--repeat
runs each, alternating which goes first, the median kept). A ratio above 1
means qcowkit was faster. Nothing is asserted: the numbers are printed.
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# QCOWKIT=path overrides, e.g. to time a copy while the build tree changes.
QCOWKIT = os.environ.get("QCOWKIT", os.path.join(ROOT, "build", "tools", "qcowkit"))
sys.path.insert(0, os.path.join(ROOT, "bench", "lib"))
from servers import alternating_runs  # noqa: E402


def make_source(path, virtual, data, seed=1):
    """Sparse raw: `data` bytes in 8 MiB runs scattered over `virtual` bytes."""
    rng = random.Random(seed)
    run = 8 << 20
    words = [b"block", b"inode", b"qcow2", b"cluster", b"refcount", b"\x00" * 64, b"kernel",
             b"\xff" * 16, b"library", b"config"]
    with open(path, "wb") as f:
        f.truncate(virtual)
        slots = sorted(rng.sample(range(virtual // run), max(1, data // run)))
        for slot in slots:
            chunk = bytearray()
            while len(chunk) < run:
                if rng.random() < 0.3:
                    chunk += rng.randbytes(4096)                 # incompressible
                else:
                    chunk += b" ".join(rng.choice(words) for _ in range(700))[:4096].ljust(4096, b"\0")
            f.seek(slot * run)
            f.write(bytes(chunk[:run]))


def make_random(path, size, seed=2):
    """`size` bytes of incompressible data, no holes."""
    rng = random.Random(seed)
    with open(path, "wb") as f:
        for _ in range(size // (8 << 20)):
            f.write(rng.randbytes(8 << 20))


def make_text(path, size, seed=3):
    """`size` bytes of text-like data that compresses about 3:1."""
    rng = random.Random(seed)
    words = [b"block", b"inode", b"qcow2", b"cluster", b"refcount", b"kernel", b"library",
             b"config", b"the", b"of", b"and", b"partition", b"journal", b"superblock"]
    with open(path, "wb") as f:
        block = bytearray()
        while len(block) < (8 << 20):
            block += b" ".join(rng.choice(words) for _ in range(4096)) + b"\n"
        block = bytes(block[:8 << 20])
        for i in range(size // (8 << 20)):
            f.write(block[i:] + block[:i])


def make_if_missing(path, maker, *args):
    if not os.path.exists(path):
        print(f"making {path}", flush=True)
        maker(path, *args)


def timed(cmd, workdir):
    """(wall seconds, CPU seconds, peak resident MiB) of one run of `cmd`."""
    # /usr/bin/time measures the peak: a child of this (large) Python process
    # would inherit its high-water mark across exec.
    peak_file = os.path.join(workdir, "peak-rss.txt")
    start = time.monotonic()
    with open(os.devnull, "wb") as null, subprocess.Popen(
            ["/usr/bin/time", "-f", "%M", "-o", peak_file] + cmd,
            stdout=null, stderr=subprocess.PIPE) as proc:
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)  # this run alone, its children included
        proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - start
    cpu = usage.ru_utime + usage.ru_stime
    # check exits 0 on a clean image; anything else is a failed row.
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: "
                           f"{err.decode(errors='replace').strip()[:300]}")
    with open(peak_file) as f:
        peak_kib = int(f.read().split()[-1])
    return elapsed, cpu, peak_kib / 1024


def fresh(path):
    if os.path.exists(path):
        os.unlink(path)
    return path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--virtual-gib", type=int, default=100)
    parser.add_argument("--data-gib", type=float, default=1.0)
    parser.add_argument("--workdir", default=os.path.join(ROOT, "build", "bench-cli"))
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per tool and row, alternating; the median counts")
    parser.add_argument("--only", default="",
                        help="run only the rows whose name contains this (A|B: either)")
    args = parser.parse_args()
    for tool, package in (("qemu-img", "qemu-utils"), ("/usr/bin/time", "time")):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install {package}")
    if not os.access(QCOWKIT, os.X_OK):
        sys.exit(f"{QCOWKIT} is missing: build first (cmake --build --preset default)")
    os.makedirs(args.workdir, exist_ok=True)
    w = lambda name: os.path.join(args.workdir, name)

    src = w("source.raw")
    virtual = args.virtual_gib << 30
    data = int(args.data_gib * (1 << 30))
    if not os.path.exists(src) or os.path.getsize(src) != virtual:
        print(f"making {src}: {args.virtual_gib} GiB virtual, {args.data_gib} GiB data", flush=True)
        make_source(src, virtual, data)
    # A qcow2 made by qemu-img is the input of the qcow2 rows for both tools.
    base = w("source.qcow2")
    if not os.path.exists(base):
        subprocess.run(["qemu-img", "convert", "-O", "qcow2", src, base], check=True)

    # Issue 13's rows: each input made once, kept between runs.
    rand = w("random-1g.raw")
    make_if_missing(rand, make_random, 1 << 30)
    sparse4 = w("sparse-4g.raw")
    make_if_missing(sparse4, make_source, 4 << 30, 1 << 30)
    text = w("text-1g.raw")
    make_if_missing(text, make_text, 1 << 30)
    packed = w("text-zlib.qcow2")
    if not os.path.exists(packed):
        subprocess.run(["qemu-img", "convert", "-c", "-O", "qcow2", text, packed], check=True)

    # Issue 16's rows: other formats into qcow2, and qcow2 streamed to stdout.
    mixed = w("mixed-1g.raw")  # 1 GiB virtual, 512 MiB of data (part text)
    make_if_missing(mixed, make_source, 1 << 30, 512 << 20, 5)
    foreign = []
    for fmt, opts in (("vmdk", []), ("vdi", []), ("vpc", []), ("vhdx", [])):
        path = w(f"mixed.{fmt}")
        if not os.path.exists(path):
            subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", fmt, *opts, mixed, path], check=True)
        # vhdx lands later: only when this build's info recognises it.
        probe = subprocess.run([QCOWKIT, "info", "--output=json", path], capture_output=True, text=True)
        if probe.returncode != 0 or f'"{fmt}"' not in probe.stdout:
            print(f"skipping {fmt} -> qcow2: qcowkit info does not recognise {path}")
            continue
        foreign.append((f"convert {fmt} -> qcow2 (1G, 512M data)",
                        ["qemu-img", "convert", "-O", "qcow2", path, "{out}"],
                        [QCOWKIT, "convert", "-O", "qcow2", path, "{out}"], "out.qcow2"))

    rows = foreign + [
        ("convert -O qcow2 SRC - > file (stream)",
         ["qemu-img", "convert", "-O", "qcow2", mixed, "{out}"],
         ["bash", "-c", f"'{QCOWKIT}' convert -O qcow2 '{mixed}' - > '{{out}}'"], "out.qcow2"),
        ("convert -O vmdk streamOptimized - > file (stream)",
         ["qemu-img", "convert", "-O", "vmdk", "-o", "subformat=streamOptimized", mixed, "{out}"],
         ["bash", "-c", f"'{QCOWKIT}' convert -O vmdk -o subformat=streamOptimized '{mixed}' - > '{{out}}'"],
         "out.vmdk"),
        ("convert -c -O qcow2 SRC - > file (stream)",
         ["qemu-img", "convert", "-c", "-O", "qcow2", mixed, "{out}"],
         ["bash", "-c", f"'{QCOWKIT}' convert -c -O qcow2 '{mixed}' - > '{{out}}'"], "out-zlib.qcow2"),
        ("convert raw -> qcow2 (1 GiB random)",
         ["qemu-img", "convert", "-O", "qcow2", rand, "{out}"],
         [QCOWKIT, "convert", "-O", "qcow2", rand, "{out}"], "out.qcow2"),
        ("convert 4G sparse raw -> qcow2",
         ["qemu-img", "convert", "-O", "qcow2", sparse4, "{out}"],
         [QCOWKIT, "convert", "-O", "qcow2", sparse4, "{out}"], "out.qcow2"),
        ("convert text -> qcow2 -c zlib",
         ["qemu-img", "convert", "-c", "-O", "qcow2", text, "{out}"],
         [QCOWKIT, "convert", "-c", "-O", "qcow2", text, "{out}"], "out-zlib.qcow2"),
        ("convert text -> qcow2 -c zstd",
         ["qemu-img", "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", text, "{out}"],
         [QCOWKIT, "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", text, "{out}"],
         "out-zstd.qcow2"),
        ("convert compressed qcow2 -> raw",
         ["qemu-img", "convert", "-O", "raw", packed, "{out}"],
         [QCOWKIT, "convert", "-O", "raw", packed, "{out}"], "out.raw"),
        ("convert qcow2 -> raw",
         ["qemu-img", "convert", "-O", "raw", base, "{out}"],
         [QCOWKIT, "convert", "-O", "raw", base, "{out}"], "out.raw"),
        ("convert raw -> qcow2",
         ["qemu-img", "convert", "-O", "qcow2", src, "{out}"],
         [QCOWKIT, "convert", "-O", "qcow2", src, "{out}"], "out.qcow2"),
        ("convert raw -> qcow2 -c zlib",
         ["qemu-img", "convert", "-c", "-O", "qcow2", src, "{out}"],
         [QCOWKIT, "convert", "-c", "-O", "qcow2", src, "{out}"], "out-zlib.qcow2"),
        ("convert raw -> qcow2 -c zstd",
         ["qemu-img", "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", src, "{out}"],
         [QCOWKIT, "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", src, "{out}"],
         "out-zstd.qcow2"),
        ("check (100 GiB sparse qcow2)",
         ["qemu-img", "check", base], [QCOWKIT, "check", base], None),
        ("map --output=json (same image)",
         ["qemu-img", "map", "--output=json", base], [QCOWKIT, "map", "--output=json", base], None),
    ]
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.1f}")
    print("ratio = qemu-img / qcowkit (> 1: qcowkit faster); wall-clock, then CPU seconds,"
          " then each tool's peak resident memory in MiB")
    print(f"{'row':38} {'qemu-img s':>11} {'qcowkit s':>10} {'ratio':>6} {'cpu qemu':>9} {'cpu ours':>9}"
          f" {'ratio':>6} {'MiB qemu':>9} {'MiB ours':>9}")
    for name, theirs, ours, out in rows:
        if args.only and not any(part in name for part in args.only.split("|")):
            continue
        # Alternate the tools (and which goes first) and keep each one's
        # median run: this machine's disk and CPUs are shared, and single
        # runs vary by 2x or more. Rows under a second get more runs.
        commands = {"qemu": theirs, "ours": ours}

        def run_once(tool):
            target = w(out) if out else None
            if target:
                fresh(target)
            result = timed([c.replace("{out}", target) if target else c for c in commands[tool]],
                           args.workdir)
            if target:
                os.unlink(target)
            return result

        runs_of = alternating_runs(["qemu", "ours"], max(1, args.repeat),
                                   run_once, short_seconds=1.0, seconds_of=lambda r: r[0])
        median = lambda rs: sorted(rs)[len(rs) // 2]
        (wall_q, cpu_q, _), (wall_o, cpu_o, _) = median(runs_of["qemu"]), median(runs_of["ours"])
        peak_q = max(r[2] for r in runs_of["qemu"])
        peak_o = max(r[2] for r in runs_of["ours"])
        print(f"{name:38} {wall_q:11.3f} {wall_o:10.3f} {wall_q / wall_o:6.2f} "
              f"{cpu_q:9.3f} {cpu_o:9.3f} {cpu_q / max(cpu_o, 1e-6):6.2f}"
              f" {peak_q:9.1f} {peak_o:9.1f}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
