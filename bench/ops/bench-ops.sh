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
if ! command -v qemu-img >/dev/null; then
  echo "bench-ops: qemu-img is missing: apt-get install qemu-utils" >&2
  exit 1
fi
[[ -x $driver ]] || { echo "bench-ops: $driver is missing: run 'make build' first" >&2; exit 1; }

mib=${BENCH_OPS_MIB:-512}
runs=${BENCH_OPS_RUNS:-3}
work=$(mktemp -d "${TMPDIR:-/tmp}/qcowkit-bench-ops.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$driver" fill "$work/src.raw" $((mib << 20)) 1

# Wall and CPU (user + system) seconds of one run of a command. Dirty pages
# are written out first so one run's writeback does not bill the next.
time_once() {
  rm -f "$work/dst.raw"
  sync
  local TIMEFORMAT='%R %U %S'
  { time "$@" >/dev/null 2>&1; } 2>&1 | awk '{ printf "%.3f %.3f\n", $1, $2 + $3 }'
}

median() { sort -n | sed -n "$(((runs + 1) / 2))p"; }

# Runs ours and the peer's command alternately, `runs` times each, so both
# see the same machine load (the machine is shared). Prints the medians of
# our wall, our CPU, the peer's wall and the peer's CPU seconds.
# Usage: compare_times OUR-COMMAND... -- PEER-COMMAND...
compare_times() {
  local ours=() peer=() seen_separator=0 arg
  for arg in "$@"; do
    if [[ $arg == -- ]]; then seen_separator=1
    elif ((seen_separator)); then peer+=("$arg")
    else ours+=("$arg"); fi
  done
  local our_times="" peer_times=""
  for ((i = 0; i < runs; i++)); do
    our_times+="$(time_once "${ours[@]}")"$'\n'
    peer_times+="$(time_once "${peer[@]}")"$'\n'
  done
  local column
  for times in "$our_times" "$peer_times"; do
    for column in 1 2; do
      printf '%s' "$times" | awk -v c=$column '{ print $c }' | median
    done
  done | paste -sd' '
}

# Prints one table row. Usage: row NAME OUR-COMMAND... -- PEER-COMMAND...
row() {
  local name=$1 ours_wall ours_cpu peer_wall peer_cpu
  shift
  read -r ours_wall ours_cpu peer_wall peer_cpu < <(compare_times "$@")
  awk -v n="$name" -v ow="$ours_wall" -v oc="$ours_cpu" -v pw="$peer_wall" -v pc="$peer_cpu" '
    BEGIN { printf "%-12s %8.3f %8.3f %6.2f   %8.3f %8.3f %6.2f\n",
                   n, ow, pw, ow / pw, oc, pc, oc / pc }'
}

echo "block operations on a ${mib} MiB raw file, half data in 4 MiB stripes"
echo "(copy: the same file fully allocated);"
echo "median of $runs runs each, ours and qemu-img alternating"
printf '%-12s %8s %8s %6s   %8s %8s %6s\n' "" "wall s" "" "" "CPU s" "" ""
printf '%-12s %8s %8s %6s   %8s %8s %6s\n' operation qcowkit qemu-img ratio qcowkit qemu-img ratio

# sparse_copy: data only, into a new (zero) file; qemu-img's default -S 4k.
row sparse_copy "$driver" sparse_copy "$work/src.raw" "$work/dst.raw" -- \
  qemu-img convert -t writeback -f raw -O raw "$work/src.raw" "$work/dst.raw"

# copy reads and writes every byte by contract, so its peer gets a fully
# allocated source (qemu-img would skip holes even with -S 0).
cp --sparse=never "$work/src.raw" "$work/full.raw"
row copy "$driver" copy "$work/full.raw" "$work/dst.raw" -- \
  qemu-img convert -t writeback -S 0 -f raw -O raw "$work/full.raw" "$work/dst.raw"

# The results must be right, not only fast.
"$driver" sparse_copy "$work/src.raw" "$work/dst.raw"
cmp "$work/src.raw" "$work/dst.raw"
cp --sparse=always "$work/dst.raw" "$work/same.raw"
row compare "$driver" compare "$work/src.raw" "$work/same.raw" -- \
  qemu-img compare -f raw -F raw "$work/src.raw" "$work/same.raw"
