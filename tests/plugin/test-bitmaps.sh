#!/usr/bin/env bash
# Persistent dirty bitmaps are maintained through the plugin: after writes,
# zeroes and trims and a clean shutdown, qemu-img check is clean, the
# bitmaps are consistent (not in use), and qemu-nbd exports each bitmap with
# every touched range dirty (at its granularity) and nothing else. A server
# killed mid-session leaves them marked in use, as QEMU does after a crash.
source "$(dirname "$0")/lib.sh"
require qemu-nbd qemu-utils

image=$work/bitmaps.qcow2
qemu-img create -q -f qcow2 "$image" 64M
qemu-img bitmap --add "$image" fine
qemu-img bitmap --add -g 1M "$image" coarse

with_server '
  qemu-io -f raw -c "write -P 2 1M 4k" -c "write -P 3 10M 200k" -c "discard 20M 1M" \
          -c "write -z 30M 64k" "$uri" >/dev/null
' "$image" || fail "writes through the plugin failed"
out=$(qemu-img check "$image" 2>&1) || fail "qemu-img check after bitmap writes: $out"
grep -q "No errors were found" <<<"$out" || fail "qemu-img check: $out"
info=$(qemu-img info --output=json "$image")
grep -q '"in-use"' <<<"$info" && fail "bitmaps still in use after a clean shutdown: $info"
grep -c '"auto"' <<<"$info" | grep -qx 2 || fail "the two bitmaps are not both enabled: $info"

# dirty_map BITMAP: "offset length" for each dirty run qemu-nbd reports.
dirty_map() {
  local sock=$work/qemu-nbd.sock
  rm -f "$sock"
  qemu-nbd -r -k "$sock" -B "$1" -f qcow2 "$image" &
  local pid=$!
  for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.1; done
  nbdinfo --map="qemu:dirty-bitmap:$1" "nbd+unix:///?socket=$sock" | awk '$4 == "dirty" {print $1, $2}'
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
want_fine=$'1048576 65536\n10485760 262144\n20971520 1048576\n31457280 65536'
got=$(dirty_map fine)
[[ $got == "$want_fine" ]] || fail "bitmap 'fine' dirty ranges: got [$got], want [$want_fine]"
want_coarse=$'1048576 1048576\n10485760 1048576\n20971520 1048576\n31457280 1048576'
got=$(dirty_map coarse)
[[ $got == "$want_coarse" ]] || fail "bitmap 'coarse' dirty ranges: got [$got], want [$want_coarse]"

# A server killed after writing leaves the bitmaps in use (inconsistent).
sock=$work/kill.sock
start_server "$sock" "$image"
qemu-io -f raw -c "write -P 4 40M 4k" "$(uri_of "$sock")" >/dev/null || fail "write before the kill failed"
stop_server "$server_pid" KILL
info=$(qemu-img info --output=json "$image")
grep -q '"in-use"' <<<"$info" || fail "bitmaps not marked in use after a killed server: $info"
out=$(qemu-img check "$image" 2>&1); status=$?
((status == 0 || status == 3)) || fail "qemu-img check after the kill found corruption: $out"
echo "test-bitmaps: two bitmaps maintained, in-use after a kill"
