#!/usr/bin/env bash
# A clean shutdown flushes: unflushed writes survive SIGTERM and the parent
# going away (--exit-with-parent); the image is clean. (--run: test-run.sh.)
source "$(dirname "$0")/lib.sh"

img="$work/disk.qcow2"
sock="$work/sock"

# SIGTERM after writes that were never flushed.
start_server "$sock" "$img" create=64M
nbdsh -u "$(uri_of "$sock")" -c 'h.pwrite(b"\x3c" * (1 << 20), 1 << 20)'
stop_server "$server_pid" TERM
check_clean "$img"
expect_pattern "$img" 0x3c 1M 1M || fail "SIGTERM lost unflushed writes"

# The parent exits: nbdkit --exit-with-parent follows it and closes cleanly.
bash -c 'env LD_PRELOAD="$4" nbdkit -f -U "$1" --exit-with-parent "$2" "$3" & for i in $(seq 100); do [[ -S "$1" ]] && break; sleep 0.1; done
         nbdsh -u "nbd+unix:///?socket=$1" -c "h.pwrite(b\"\\x5a\" * 65536, 16 << 20)"' _ "$work/sock2" "$PLUGIN" "$img" "${PLUGIN_PRELOAD:-}"
for i in $(seq 100); do
  grep -q ":$(stat -c %i "$img") " /proc/locks || break
  sleep 0.1
done
check_clean "$img"
expect_pattern "$img" 0x5a 16M 64k || fail "--exit-with-parent lost writes"
echo "test-shutdown: every check passed"
