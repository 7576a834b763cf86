#!/usr/bin/env bash
# What the filter does with a plugin that fails, refuses or is read-only,
# and with images it must not write: the plugin's outcomes.
#   1. an error below reaches the client as an NBD error, and the log line
#      names the operation and the offset;
#   2. a read-only plugin below gives a read-only export (reads still work);
#   3. nbdkit -r never writes a byte of the image (not even the header);
#   4. an image marked corrupt is served read-only; one marked dirty (lazy
#      refcounts) is repaired when opened for writing, as the plugin does;
#   5. an image with a backing file is refused without qcow2-backing=, with
#      a log line saying how to give one.
source "$(dirname "$0")/lib.sh"
sock=$work/outer.sock inner=$work/inner.sock
uri=$(uri_of "$sock")
img=$work/disk.qcow2
qemu-img create -q -f qcow2 "$img" 16M
qemu-io -f qcow2 -c "write -P 0x61 0 4M" "$img" >/dev/null
truncate -s 64M "$img"

# 1. Reads fail below once the trigger file exists.
serve_filter "$sock" -- --filter=error file "$img" error-pread=EIO error-pread-rate=100% \
  error-pread-file="$work/trigger"
nbdsh -u "$uri" -c '
import errno, pathlib
assert h.pread(4096, 65536) == b"a" * 4096
pathlib.Path("'"$work/trigger"'").touch()
try:
    h.pread(4096, 1 << 20)
    raise AssertionError("a read the plugin failed succeeded")
except nbd.Error as e:
    assert e.errnum == errno.EIO, e
' || fail "an error below did not reach the client as EIO"
stop_server "$server_pid"
rm -f "$work/trigger"
grep -q "qcow2: export '': read at offset 1048576 length 4096: .*plugin read" "$work/server.log" ||
  { cat "$work/server.log" >&2; fail "the failed read is not logged with its operation and offset"; }

# 2. A read-only plugin: the nbd plugin to a server run with -r.
start_nbdkit "$inner" -r file "$img"
inner_pid=$server_pid
serve_filter "$sock" -- nbd socket="$inner"
nbdsh -u "$uri" -c '
assert h.is_read_only(), "the export is writable over a read-only plugin"
assert h.pread(512, 0) == b"a" * 512
' || fail "a read-only plugin below did not give a read-only export"
stop_server "$server_pid"
stop_server "$inner_pid"

# 3. nbdkit -r: the file is not touched.
before=$(sha256sum <"$img")
serve_filter "$sock" -r -- file "$img"
nbdcopy "$uri" null: || fail "-r: reading failed"
stop_server "$server_pid"
[[ $(sha256sum <"$img") == "$before" ]] || fail "nbdkit -r --filter=qcow2 changed the image file"

# 4. The corrupt bit (incompatible feature bit 1, header offset 72): read-only.
cp "$img" "$work/corrupt.qcow2"
printf '\x02' | dd of="$work/corrupt.qcow2" bs=1 seek=79 conv=notrunc status=none
serve_filter "$sock" -- file "$work/corrupt.qcow2"
nbdsh -u "$uri" -c '
assert h.is_read_only(), "an image marked corrupt is served writable"
assert h.pread(512, 0) == b"a" * 512
' || fail "an image marked corrupt is not served read-only"
stop_server "$server_pid"
# The dirty bit with lazy refcounts and a stale refcount: repaired on open.
qemu-img create -q -f qcow2 -o lazy_refcounts=on "$work/dirty.qcow2" 16M
qemu-io -f qcow2 -c "write -P 0x62 0 1M" -c "sigraise 9" "$work/dirty.qcow2" >/dev/null 2>&1 || true
qemu-img info --output=json "$work/dirty.qcow2" | grep -q '"dirty-flag": true' ||
  fail "setup: qemu-io did not leave the image dirty"
truncate -s 64M "$work/dirty.qcow2"
serve_filter "$sock" -- file "$work/dirty.qcow2"
nbdsh -u "$uri" -c 'assert h.pread(512, 0) == b"b" * 512; h.pwrite(b"c" * 512, 1 << 20); h.flush()' ||
  fail "a dirty image was not served read-write"
stop_server "$server_pid"
check_clean "$work/dirty.qcow2"

# 5. A backing file without qcow2-backing=.
qemu-img create -q -f qcow2 -b disk.qcow2 -F qcow2 "$work/top.qcow2" 16M
serve_filter "$sock" -r -- file "$work/top.qcow2"
nbdinfo --size "$uri" >/dev/null 2>&1 && fail "an image with a backing file was served without qcow2-backing="
stop_server "$server_pid"
grep -q "has a backing file 'disk.qcow2', which is not opened; give qcow2-backing=PATH" "$work/server.log" ||
  fail "the refusal of the backing file is not logged"
serve_filter "$sock" -r -- file "$work/top.qcow2" qcow2-backing="$img"
nbdsh -u "$uri" -c 'assert h.pread(512, 0) == b"a" * 512' || fail "qcow2-backing= is not read"
stop_server "$server_pid"
echo "test-errors: errors below, read-only plugins, -r, corrupt, dirty and backing images as the plugin"
