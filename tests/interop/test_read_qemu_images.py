#!/usr/bin/env python3
"""Every image qemu-img makes reads back byte-identical to its reference raw
through qcowkit, and qcowkit's map agrees with `qemu-img map` on what is
present, zero and data, and where it lies in the file."""
import json
import sys

from interop_common import compare_maps, qemu_map, read_manifest, require, run

driver, directory = sys.argv[1], sys.argv[2]
require("qemu-img")
failures = []
rows = read_manifest(directory)
for name, image, raw, backing in rows:
    extra = [backing] if backing else []
    proc = run(driver, "read-compare", image, raw, *extra, check=False)
    if proc.returncode != 0:
        failures.append("%s: read-compare: %s%s" % (name, proc.stdout.strip(), proc.stderr.strip()))
        continue
    ours = json.loads(run(driver, "map", image, *extra).stdout)
    # Host offsets are compared too, except through a backing file (qemu-img
    # gives offsets inside the backing file, which qcowkit does not open).
    keys = ("present", "zero", "data") + (() if backing else ("offset",))
    problem = compare_maps(ours, qemu_map(image), keys)
    if problem:
        failures.append("%s: map: %s" % (name, problem))
    else:
        print("ok %s" % name)

for f in failures:
    print("FAIL " + f)
print("%d passed, %d failed" % (len(rows) - len(failures), len(failures)))
sys.exit(1 if failures else 0)
