#!/usr/bin/env bash
# The blockcache filter against nbdkit's cache filter and no filter (fio).
# BENCH_SECONDS sets the length of each row (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/filter/filter_bench.py --filter build/filter/nbdkit-blockcache-filter.so "$@"
