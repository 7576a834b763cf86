#!/usr/bin/env bash
# nbdkit --run: when the command ends, the server flushes and closes the
# image cleanly, and nbdkit's exit status is the command's.
source "$(dirname "$0")/lib.sh"

img="$work/disk.qcow2"
timeout 120 "${nbdkit_cmd[@]}" -U - "$PLUGIN" "$img" create=64M \
  --run 'nbdsh -u "$uri" -c "h.pwrite(b\"\\x4d\" * 65536, 8 << 20)"' || fail "nbdkit --run"
check_clean "$img"
expect_pattern "$img" 0x4d 8M 64k || fail "the end of --run lost writes"
status=0
timeout 120 "${nbdkit_cmd[@]}" -U - "$PLUGIN" "$img" --run 'exit 7' || status=$?
[[ $status -eq 7 ]] || fail "nbdkit --run exited $status, not the command's 7"
check_clean "$img"
echo "test-run: every check passed"
