#!/usr/bin/env bash
# Runs every benchmark, one after the other (`make bench`). Each prints its
# own table of ratios against the peer tool; nothing here asserts a number.
# Add a line per benchmark script.
set -euo pipefail
cd "$(dirname "$0")/.."

bench/cli/bench_cli.py
