#!/usr/bin/env bash
# SIGKILL in the middle of a write workload: qemu-img check finds at worst
# leaked clusters, and what was flushed before the kill is intact.
source "$(dirname "$0")/lib.sh"

img="$work/disk.qcow2"
sock="$work/sock"
for round in 1 2 3; do
  rm -f "$img"
  start_server "$sock" "$img" create=256M cluster-size=64K
  uri=$(uri_of "$sock")
  # Flushed data the crash must not touch.
  nbdsh -u "$uri" -c 'h.pwrite(b"\xf1" * (4 << 20), 0); h.flush()'
  # An endless allocating workload (new clusters, zeroes, trims), killed mid-way.
  "$py" - "$uri" "$round" >/dev/null 2>&1 <<'PY' &
import random, sys, nbd
h = nbd.NBD(); h.connect_uri(sys.argv[1])
rng = random.Random(int(sys.argv[2]))
MiB = 1 << 20
while True:
    off = rng.randrange(8 * MiB, 250 * MiB, 4096)
    op = rng.random()
    if op < 0.7:
        h.pwrite(rng.randbytes(rng.choice([4096, 65536, 192 * 1024])), off)
    elif op < 0.85:
        h.zero(rng.choice([4096, MiB]), off)
    else:
        h.trim(rng.choice([65536, MiB]), off)
PY
  load_pid=$!
  sleep "0.$((3 * round))"
  stop_server "$server_pid" KILL
  wait "$load_pid" 2>/dev/null || true

  status=0
  qemu-img check -f qcow2 "$img" >"$work/check" 2>&1 || status=$?
  [[ $status -eq 0 || $status -eq 3 ]] ||
    { cat "$work/check" >&2; fail "round $round: qemu-img check exited $status after SIGKILL"; }
  qemu-io -f qcow2 -r -c "read -P 0xf1 0 4M" "$img" | grep -q 'read 4194304' ||
    fail "round $round: data flushed before the kill is damaged"
done
echo "test-crash: every check passed"
