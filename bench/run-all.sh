#!/usr/bin/env bash
# `make bench`: runs every benchmark, one after the other. Each prints its own
# table of times or IOPS and the ratios against its peer tool; nothing here
# asserts a number. A benchmark whose script is not in the tree is skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
run() {
  [[ -f "$2" ]] || return 0
  echo "== $2"
  "$@" || { echo "bench: $2 failed" >&2; status=1; }
}

run bash bench/ops/bench-ops.sh
run bash bench/run-filter.sh
run python3 bench/cli/bench_cli.py
run bash bench/plugin/bench-plugin.sh
run bash bench/qcow2-filter/bench-qcow2-filter.sh
run bash bench/wasm/bench_wasm.sh

exit $status
