#!/usr/bin/env bash
# Runs the crash explorer (reliability_tests "[explorer]") for longer than
# `make test` does: SECONDS in total, shared evenly between the kinds, each
# going through seeds 1, 2, 3, ... until its share is spent. A finding stops
# that kind and prints its seed; replay it with QCOWKIT_EXPLORER_SEED=N.
#   scripts/crash-explore.sh [SECONDS] [BUILD_DIR]
# (`make crash-explore SECONDS=600`, `make tsan-explorer` for the TSan build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
total=${1:-600}
build=${2:-$root/build}
[[ $total =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS] [BUILD_DIR]" >&2; exit 2; }
bin=$build/tests/reliability/reliability_tests
[[ -x $bin ]] || { echo "crash-explore: $bin is missing (build reliability_tests first)" >&2; exit 1; }
kinds=$("$bin" --list-test-names-only "[explorer]" | grep -c '^explorer:' || true)
((kinds > 0)) || { echo "crash-explore: no [explorer] tests in $bin" >&2; exit 1; }
share=$((total / kinds))
((share > 0)) || share=1
echo "crash-explore: $kinds kinds, ${share}s each"
export QCOWKIT_TEST_TMP=${QCOWKIT_TEST_TMP:-$build/tests/reliability/tmp}
QCOWKIT_EXPLORER_SECONDS=$share exec "$bin" "[explorer]"
