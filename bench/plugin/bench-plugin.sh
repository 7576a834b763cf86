#!/usr/bin/env bash
# Benchmarks the qcow2 plugin against qemu-nbd on the same qcow2 file and
# nbdkit's file plugin on the equivalent raw file (the ceiling).
#   BENCH_DIR=path  scratch space (about 4 GiB; default build/bench-plugin)
#   BENCH_RUNS=n    runs per cell, the median is printed (default 3)
#   BENCH_SIZE_MIB  image size (default 1024)
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in nbdkit nbdcopy qemu-nbd qemu-img fio; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install nbdkit libnbd-bin qemu-utils fio)" >&2; exit 1; }
done
plugin=${PLUGIN:-build/plugin/nbdkit-qcow2-plugin.so}
[[ -f $plugin ]] || { echo "bench: $plugin is missing; run 'make build'" >&2; exit 1; }
exec /usr/bin/python3 bench/plugin/bench_plugin.py "$plugin" "${BENCH_DIR:-build/bench-plugin}"
