#!/usr/bin/env bash
# SIGKILL after a flush: what the flush covered is intact, and the image is
# at worst leaking (qemu-img check exit 0, or 3 for leaked clusters only,
# never 2 for corruption). Over the file plugin, and over nbd with
# blockcache under the qcow2 filter (the outer server is killed; the inner
# one, which holds the file, is stopped normally afterwards).
source "$(dirname "$0")/lib.sh"
: "${BLOCKCACHE:?BLOCKCACHE must point at nbdkit-blockcache-filter.so}"
sock=$work/outer.sock inner=$work/inner.sock
uri=$(uri_of "$sock")

# After the workload (which ends with a flush), writes that are never
# flushed land in the last 8 MiB, then the server is killed.
unflushed() {
  nbdsh -u "$uri" -c '
import os
size = h.get_size()
for i in range(64):
    h.pwrite(os.urandom(65536) * 2, size - (8 << 20) + i * 131072)
'
}

# judge NAME IMAGE REFERENCE: at worst leaks; everything but the last 8 MiB
# reads as the reference did at the flush.
judge() {
  local name=$1 img=$2 ref=$3 status=0
  qemu-img check -f qcow2 "$img" >"$work/check.log" 2>&1 || status=$?
  ((status == 0 || status == 3)) || { cat "$work/check.log" >&2; fail "$name: qemu-img check exit $status after SIGKILL"; }
  qemu-img convert -f qcow2 -O raw "$img" "$work/after.raw"
  "$py" - "$work/after.raw" "$ref" <<'PY' || fail "$name: flushed data lost after SIGKILL"
import sys
a, b = (open(p, "rb").read() for p in sys.argv[1:3])
keep = len(b) - (8 << 20)
assert len(a) == len(b), "sizes differ"
assert a[:keep] == b[:keep], "the flushed part differs"
PY
}

for setup in file nbd; do
  img=$work/$setup.qcow2
  qemu-img create -q -f qcow2 "$img" 64M
  truncate -s 256M "$img"
  if [[ $setup == file ]]; then
    serve_filter "$sock" -- file "$img"
  else
    start_nbdkit "$inner" file "$img"
    inner_pid=$server_pid
    serve_filter "$sock" -- --filter="$BLOCKCACHE" nbd socket="$inner" blockcache-size=8M
  fi
  outer_pid=$server_pid
  "$py" "$qcow2_filter_here/workload.py" "$uri" "$work/$setup.ref" --seed 7 --ops 1500 ||
    fail "$setup: workload failed"
  unflushed || fail "$setup: the unflushed writes failed"
  kill -KILL "$outer_pid"
  wait "$outer_pid" 2>/dev/null || true
  [[ $setup == file ]] || stop_server "$inner_pid"
  judge "$setup" "$img" "$work/$setup.ref"
done
echo "test-kill: flushed data survives SIGKILL over file and nbd + blockcache; images at worst leak"
