#!/usr/bin/env bash
# Benchmarks the qcow2 filter over the nbd plugin, against qemu-nbd opening
# the same qcow2 image over NBD; the inner server (nbdkit file, serving the
# image's bytes) adds 1 ms to every read and write (the delay filter), as a
# remote disk would. See bench_qcow2_filter.py for the rows.
#   BENCH_DIR=path  scratch space (default build/bench-qcow2-filter)
#   BENCH_RUNS=n    runs per cell, the median is printed (default 3)
#   BENCH_SIZE_MIB  image size (default 256)
#   BENCH_FIO_SECONDS  length of each fio cell (default 4)
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in nbdkit nbdcopy qemu-nbd qemu-img fio; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install nbdkit libnbd-bin qemu-utils fio)" >&2; exit 1; }
done
filter=${FILTER:-build/filter/nbdkit-qcow2-filter.so}
blockcache=${BLOCKCACHE:-build/filter/nbdkit-blockcache-filter.so}
for so in "$filter" "$blockcache"; do
  [[ -f $so ]] || { echo "bench: $so is missing; run 'make build'" >&2; exit 1; }
done
exec /usr/bin/python3 bench/qcow2-filter/bench_qcow2_filter.py "$filter" "$blockcache" \
  "${BENCH_DIR:-build/bench-qcow2-filter}"
