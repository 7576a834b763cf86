#!/usr/bin/env bash
# Runs the libFuzzer binaries of the `fuzz` preset (build-fuzz/).
#   scripts/fuzz.sh [SECONDS]          every fuzzer, SECONDS each (default 600)
#   scripts/fuzz.sh --one NAME SECONDS one fuzzer (CTest's fuzz.run.NAME)
# New interesting inputs go to build-fuzz/fuzz-work/NAME/ (never into the
# committed corpus); a crash, leak or timeout leaves its input in
# build-fuzz/fuzz-artifacts/NAME/ and makes this script fail. Minimize it
# (fuzz_NAME -minimize_crash=1 -runs=10000 FILE) and commit it under
# fuzz/regressions/NAME/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${QCOWKIT_FUZZ_BUILD:-$root/build-fuzz}

max_len_for() {
  case $1 in
    open|vhd|vdi|vmdk|qcow1) echo 1048576 ;;  # whole image files
    vhdx) echo 262144 ;;   # sparse descriptions of image files (fuzz_vhdx.cpp)
    codec) echo 65536 ;;
    *) echo 4096 ;;        # operation programs
  esac
}

run_one() {
  local name=$1 seconds=$2
  local bin=$build/fuzz/fuzz_$name
  if [[ ! -x $bin ]]; then
    echo "fuzz.sh: $bin is missing: build the fuzz preset first (make fuzz-build," \
         "needs the Debian packages clang-14 libfuzzer-14-dev libclang-rt-14-dev)" >&2
    return 1
  fi
  local work=$build/fuzz-work/$name artifacts=$build/fuzz-artifacts/$name logs=$build/fuzz-logs
  mkdir -p "$work" "$artifacts" "$logs"
  local seeds=()
  for dir in "$root/fuzz/corpus/$name" "$root/fuzz/regressions/$name"; do
    [[ -d $dir ]] && seeds+=("$dir")
  done
  [[ $name == open && -d $root/tests/hostile/images ]] && seeds+=("$root/tests/hostile/images")
  [[ ($name == vhd || $name == vdi || $name == vmdk || $name == qcow1) && -d $root/tests/formats/hostile/images ]] &&
    seeds+=("$root/tests/formats/hostile/images")
  local log=$logs/$name.log
  echo "fuzz_$name: running for ${seconds}s (log: $log)"
  local status=0
  # -rss_limit_mb bounds each input's memory; -timeout makes a hang a finding.
  "$bin" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
         -max_len="$(max_len_for "$name")" -print_final_stats=1 \
         -artifact_prefix="$artifacts/" "$work" "${seeds[@]}" >"$log" 2>&1 || status=$?
  local execs
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  if ((status != 0)); then
    tail -n 60 "$log" >&2
    echo "fuzz_$name: FINDING (exit $status); inputs in $artifacts/" >&2
    return 1
  fi
  echo "fuzz_$name: ${execs:-?} executions in ${seconds}s, no finding"
}

if [[ ${1:-} == --one ]]; then
  [[ $# -eq 3 ]] || { echo "usage: $0 --one NAME SECONDS" >&2; exit 2; }
  run_one "$2" "$3"
  exit
fi

seconds=${1:-600}
[[ $seconds =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS]" >&2; exit 2; }
names=()
for src in "$root"/fuzz/fuzz_*.cpp; do
  name=$(basename "$src" .cpp); names+=("${name#fuzz_}")
done
failed=0
for name in "${names[@]}"; do
  run_one "$name" "$seconds" || failed=1
done
exit $failed
