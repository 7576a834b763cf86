"""Helpers shared by the interop tests: running tools, comparing maps."""
import json
import shutil
import subprocess
import sys


def require(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        sys.exit("missing tools: %s (install Debian package qemu-utils)" % ", ".join(missing))


def run(*args, check=True):
    proc = subprocess.run(args, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError("%s exited %d\nstdout: %s\nstderr: %s"
                             % (" ".join(map(str, args)), proc.returncode, proc.stdout, proc.stderr))
    return proc


def read_manifest(directory):
    rows = []
    with open("%s/images.tsv" % directory) as f:
        for line in f:
            name, image, raw, backing = line.rstrip("\n").split("\t")
            rows.append((name, image, raw, None if backing == "-" else backing))
    return rows


def flags_by_byte_ranges(entries, keys):
    """Turns map entries into [(start, end, (values...))] over the image. The
    key "offset" stands for where the run lies in the file, as the distance
    from guest to host offset, so runs split differently still compare."""
    out = []
    for e in entries:
        values = tuple((e["offset"] - e["start"] if "offset" in e else None) if k == "offset"
                       else e.get(k, False) for k in keys)
        out.append((e["start"], e["start"] + e["length"], values))
    return out


def compare_maps(ours, theirs, keys=("present", "zero", "data")):
    """Returns a description of the first place two maps disagree, or None."""
    a = flags_by_byte_ranges(ours, keys)
    b = flags_by_byte_ranges(theirs, keys)
    if not a or not b:
        return "empty map" if a != b else None
    if a[-1][1] != b[-1][1]:
        return "maps cover different sizes: %d vs %d" % (a[-1][1], b[-1][1])
    i = j = 0
    pos = 0
    while i < len(a) and j < len(b):
        if a[i][2] != b[j][2]:
            return "at offset %d: ours %s, qemu-img %s" % (
                pos, dict(zip(keys, a[i][2])), dict(zip(keys, b[j][2])))
        end = min(a[i][1], b[j][1])
        pos = end
        if a[i][1] == end:
            i += 1
        if b[j][1] == end:
            j += 1
    return None


def qemu_map(image):
    return json.loads(run("qemu-img", "map", "--output=json", image).stdout)


def qemu_check(image):
    proc = run("qemu-img", "check", "--output=json", image, check=False)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("qemu-img check failed on %s: %s %s" % (image, proc.stdout, proc.stderr))
    return proc.returncode, report
