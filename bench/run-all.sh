#!/usr/bin/env bash
# Runs every benchmark, one after another. Each prints its own ratios.
set -euo pipefail
cd "$(dirname "$0")"
./run-filter.sh
