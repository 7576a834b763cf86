#!/usr/bin/env bash
# `make bench`: runs every benchmark, one after the other. Each prints its own
# table of times or IOPS and the ratios against its peer tool.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
run() { echo "== $1"; bash "$1" || { echo "bench: $1 failed" >&2; status=1; }; }

run bench/ops/bench-ops.sh
run bench/plugin/bench-plugin.sh

exit $status
