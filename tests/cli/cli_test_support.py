"""What the verb tests against qemu-img share (snapshot, bitmap, rebase,
commit, lock): running a command, recording a failure without stopping, and
the checks every one of them makes. Each test script imports it from its own
folder and exits non-zero when `failures` is not empty."""
import hashlib
import subprocess

failures = []


def fail(message):
    failures.append(message)
    print("FAIL: " + message, flush=True)


def run(*cmd, cwd=None):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, errors="replace",
                          timeout=300, cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr


def ok(what, *cmd, cwd=None):
    """The command's output, or None (and a failure) when it exits non-zero."""
    rc, out, err = run(*cmd, cwd=cwd)
    if rc != 0:
        fail(f"{what}: {' '.join(map(str, cmd))}: exit {rc}: {err.strip()[:400]}")
        return None
    return out


def qemu_check_clean(what, path):
    rc, out, err = run("qemu-img", "check", path)
    if rc != 0 or "No errors were found" not in out:
        fail(f"{what}: qemu-img check exit {rc}: {(out + err).strip()[:400]}")


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
