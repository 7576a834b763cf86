#!/usr/bin/env bash
# scripts/demo.sh (make demo): writes demo.qcow2 with qcowkit, prints the
# commands, serves it; the image is a valid 1 GiB qcow2 with data and holes.
source "$(dirname "$0")/lib.sh"
require "${DEMO_IMAGE_TOOL:?}" "(build qcowkit-make-demo-image)"

build=$(dirname "$(dirname "$PLUGIN")")
sock="$work/demo.sock"
NBDKIT="${nbdkit_cmd[*]}" BUILD_DIR="$build" DEMO_IMAGE="$work/demo.qcow2" DEMO_SOCKET="$sock" \
  bash "$repo/scripts/demo.sh" >"$work/demo.out" 2>&1 &
demo_pid=$!
server_pids+=("$demo_pid")
for i in $(seq 300); do [[ -S "$sock" ]] && break; sleep 0.1; done
[[ -S "$sock" ]] || { cat "$work/demo.out" >&2; fail "the demo did not start serving"; }
grep -q 'nbdinfo --map' "$work/demo.out" || fail "the demo does not print the nbdinfo --map command"
grep -q 'qemu-img info' "$work/demo.out" || fail "the demo does not print the qemu-img info command"

[[ $(nbdinfo --size "$(uri_of "$sock")") == 1073741824 ]] || fail "the demo image is not 1 GiB"
nbdinfo --map --json "$(uri_of "$sock")" >"$work/map.json"
"$py" - "$work/map.json" <<'PY' || fail "the demo image lacks data or holes"
import json, sys
m = json.load(open(sys.argv[1]))
data = sum(e["length"] for e in m if e["type"] == 0)
zero = sum(e["length"] for e in m if e["type"] & 2)
assert 30 << 20 <= data <= 100 << 20, f"{data} bytes of data"
assert zero >= 900 << 20, f"{zero} bytes of zeroes or holes"
PY
nbdsh -u "$(uri_of "$sock")" -c 'assert h.pread(18, 0) == b"qcowkit demo image"' || fail "the demo banner is missing"
stop_server "$demo_pid" TERM
check_clean "$work/demo.qcow2"
echo "test-demo: every check passed"
