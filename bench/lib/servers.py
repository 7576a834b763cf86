"""What the benchmarks share about the NBD servers they start: waiting for
one to accept connections, timing a client against it, and taking turns
between servers run by run.

A server's Unix socket file appears at bind(), a moment before listen():
a client that connects in between is refused. On a loaded machine that
moment is long enough to lose a run, so a benchmark waits until a probe
connection succeeds, not just until the file exists."""
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


def alternating_runs(servers, runs, measure):
    """{server: [measure(server), one per run]}: the servers take turns run by
    run, the order flipping every run, so that a slow patch of the machine
    does not fall on one of them only."""
    values = {server: [] for server in servers}
    for run in range(runs):
        for server in (servers if run % 2 == 0 else servers[::-1]):
            values[server].append(measure(server))
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
