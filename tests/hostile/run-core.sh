#!/usr/bin/env bash
# Runs the core over every committed hostile image, each in a fresh process
# with a 256 MiB address-space cap and a 10 s limit, and compares the outcome
# with expected.tsv.
#   run-core.sh DRIVER IMAGES_DIR
set -uo pipefail
driver=$1 images=$2
[[ -x $driver ]] || { echo "run-core: $driver is missing" >&2; exit 1; }
failed=0 count=0
while IFS=$'\t' read -r name expect what; do
  count=$((count + 1))
  ( ulimit -v 262144; exec timeout 10 "$driver" "$images/$name.qcow2" "$expect" ) > "${TMPDIR:-/tmp}/hostile.$$" 2>&1
  status=$?
  if ((status != 0)); then
    failed=$((failed + 1))
    echo "FAIL $name ($what): exit $status$( ((status == 124)) && echo ', timed out')"
    cat "${TMPDIR:-/tmp}/hostile.$$"
  else
    tail -n 1 "${TMPDIR:-/tmp}/hostile.$$"
  fi
done < "$images/expected.tsv"
rm -f "${TMPDIR:-/tmp}/hostile.$$"
((count > 0)) || { echo "run-core: no images listed in $images/expected.tsv" >&2; exit 1; }
echo "$((count - failed)) passed, $failed failed"
((failed == 0))
