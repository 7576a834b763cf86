#!/usr/bin/env bash
# SIGKILL in the middle of a write workload. The server runs with a tiny
# metadata cache (64K: 16 tables of 4 KiB clusters), so L2 tables and
# refcount blocks are evicted to the file all the time and the kill finds
# metadata half written, not all of it still in memory. The load
# (crash_load.py) keeps up to 16 writes, zeroes and trims in flight and
# flushes now and then; the test asserts it ran (writes and flushes done, and
# requests in flight at the kill). Afterwards: qemu-img check finds no
# corruption (leaks are allowed), the data flushed before the load is intact,
# and every block the load touched holds its last flushed value or one
# written after it.
source "$(dirname "$0")/lib.sh"

img="$work/disk.qcow2"
sock="$work/sock"
load="$here/crash_load.py"
newer_total=0
for round in 1 2 3; do
  rm -f "$img" "$work/ready" "$work/killed" "$work/state"
  start_server "$sock" "$img" create=128M cluster-size=4K metadata-cache=64K
  uri=$(uri_of "$sock")
  # Flushed data the crash must not touch.
  nbdsh -u "$uri" -c 'h.pwrite(b"\xf1" * (4 << 20), 0); h.flush()'
  "$py" "$load" load "$uri" "$round" "$work/state" "$work/ready" "$work/killed" \
    >"$work/load.log" 2>&1 &
  load_pid=$!
  for i in $(seq 600); do
    [[ -e $work/ready ]] && break
    kill -0 "$load_pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -e $work/ready ]] || { cat "$work/load.log" >&2; fail "round $round: the load did not get going"; }
  sleep "0.$((2 * round))"   # somewhere in the middle of it
  touch "$work/killed"
  stop_server "$server_pid" KILL
  status=0
  timeout 60 tail --pid="$load_pid" -f /dev/null || fail "round $round: the load did not stop after the kill"
  wait "$load_pid" || status=$?
  cat "$work/load.log"
  [[ $status -eq 0 ]] || fail "round $round: the load failed (exit $status)"
  in_flight=$("$py" -c 'import pickle,sys; s=pickle.load(open(sys.argv[1],"rb")); print(s["in_flight_at_death"] or 0)' "$work/state")
  [[ $in_flight -gt 0 ]] || fail "round $round: no request was in flight at the kill"

  status=0
  qemu-img check -f qcow2 "$img" >"$work/check" 2>&1 || status=$?
  [[ $status -eq 0 || $status -eq 3 ]] ||
    { cat "$work/check" >&2; fail "round $round: qemu-img check exited $status after SIGKILL"; }
  expect_pattern "$img" 0xf1 0 4M || fail "round $round: data flushed before the kill is damaged"
  qemu-img convert -f qcow2 -O raw "$img" "$work/after.raw" || fail "round $round: qemu-img convert"
  newer=$("$py" "$load" verify "$work/state" "$work/after.raw") || fail "round $round: data lost by the kill"
  echo "round $round: qemu-img check exit $status; $newer blocks hold writes newer than their last flush"
  newer_total=$((newer_total + newer))
  rm -f "$work/after.raw"
done
# Some writes the kill caught unflushed are there after it: their data and
# the metadata naming it did reach the file in the middle of the workload.
[[ $newer_total -gt 0 ]] || fail "no unflushed write reached the file: the kill tested nothing"
echo "test-crash: every check passed"
