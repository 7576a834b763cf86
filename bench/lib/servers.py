"""What the benchmarks share about the NBD servers they start: waiting for
one to accept connections, timing a client against it, and taking turns
between servers (or command-line tools) run by run.

A server's Unix socket file appears at bind(), a moment before listen():
a client that connects in between is refused. On a loaded machine that
moment is long enough to lose a run, so a benchmark waits until a probe
connection succeeds, not just until the file exists."""
import os
import socket
import subprocess
import time


def wait_until_listening(sock, proc, what, timeout=15.0):
    """Returns once `sock` accepts a connection. Raises RuntimeError, naming
    `what`, if `proc` exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited at startup (status {proc.returncode})")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(sock)
            return
        except (ConnectionRefusedError, FileNotFoundError):
            pass
        finally:
            probe.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not accept connections on {sock} within {timeout:.0f} s")
        time.sleep(0.02)


# Rows that take under a second swing most with this machine's scheduling
# and page-cache noise (the command-line benchmark saw a 0.4 s row read
# 0.69x in one whole run and 1.43x in the next); they get this many runs.
SHORT_ROW_RUNS = 15


def alternating_runs(servers, runs, measure, short_seconds=None, seconds_of=lambda value: value):
    """{server: [measure(server), one per run]}: the servers (or tools) take
    turns run by run, the order flipping every run, so that a slow patch of
    the machine does not fall on one of them only; each run starts after a
    sync. With `short_seconds` (for rows that measure time; `seconds_of`
    finds it in a measured value), a row whose first round all took less
    than that runs SHORT_ROW_RUNS times instead."""
    values = {server: [] for server in servers}
    run = 0
    while run < runs:
        for server in (servers if run % 2 == 0 else servers[::-1]):
            # Start each run with no dirty pages from the last one (or from
            # the benchmark before): the kernel writing them back would be
            # billed to whoever runs next.
            os.sync()
            values[server].append(measure(server))
        if run == 0 and short_seconds is not None and all(seconds_of(v[0]) < short_seconds for v in values.values()):
            runs = max(runs, SHORT_ROW_RUNS)
        run += 1
    return values


def timed_client(args, server_log):
    """Runs the client command `args` and returns its wall-clock seconds. If
    it fails, raises RuntimeError with its messages and the server's, read
    from the file `server_log` the server writes its stderr to."""
    start = time.monotonic()
    done = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        with open(server_log) as log:
            server = log.read()
        raise RuntimeError(f"{' '.join(args)} failed (status {done.returncode}):\n{done.stderr}"
                           f"server messages:\n{server}")
    return time.monotonic() - start
