#!/usr/bin/env bash
# Times qcowkit's block operations next to qemu-img doing the same work on
# the same raw files, in the same run, and prints ratios (ours / qemu-img;
# below 1 means qcowkit was faster). Needs the default build and qemu-img.
# qemu-img runs with -t writeback so that, like copy and sparse_copy, it
# flushes the destination before it exits (its default cache mode never does).
#   bench/ops/bench-ops.sh            512 MiB half-sparse image, 3 runs each
#   BENCH_OPS_MIB=2048 BENCH_OPS_RUNS=5 bench/ops/bench-ops.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

driver=build/bench/ops/bench_block_ops
command -v qemu-img >/dev/null || { echo "bench-ops: qemu-img is missing: apt-get install qemu-utils" >&2; exit 1; }
[[ -x $driver ]] || { echo "bench-ops: $driver is missing: run 'make build' first" >&2; exit 1; }

mib=${BENCH_OPS_MIB:-512}
runs=${BENCH_OPS_RUNS:-3}
work=$(mktemp -d "${TMPDIR:-/tmp}/qcowkit-bench-ops.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$driver" fill "$work/src.raw" $((mib << 20)) 1

# Median wall time of `runs` runs of a command, in seconds. Dirty pages are
# written out before each run so one run's writeback does not bill the next.
median_time() {
  local times=()
  for ((i = 0; i < runs; i++)); do
    rm -f "$work/dst.raw"
    sync
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    times+=("$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p"
}

row() {  # name, our time, qemu-img's time
  awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%-12s %10.3f %10.3f %8.2f\n", n, a, b, a / b }'
}

echo "block operations on a ${mib} MiB raw file, half data in 4 MiB stripes; median of $runs runs"
printf '%-12s %10s %10s %8s\n' operation "qcowkit s" "qemu-img s" ratio

ours=$(median_time "$driver" sparse_copy "$work/src.raw" "$work/dst.raw")
peer=$(median_time qemu-img convert -t writeback -f raw -O raw "$work/src.raw" "$work/dst.raw")
row sparse_copy "$ours" "$peer"

ours=$(median_time "$driver" copy "$work/src.raw" "$work/dst.raw")
peer=$(median_time qemu-img convert -t writeback -S 0 -f raw -O raw "$work/src.raw" "$work/dst.raw")
row copy "$ours" "$peer"

# The results must be right, not only fast.
"$driver" sparse_copy "$work/src.raw" "$work/dst.raw"
cmp "$work/src.raw" "$work/dst.raw"
cp --sparse=always "$work/dst.raw" "$work/same.raw"
ours=$(median_time "$driver" compare "$work/src.raw" "$work/same.raw")
peer=$(median_time qemu-img compare -f raw -F raw "$work/src.raw" "$work/same.raw")
row compare "$ours" "$peer"
