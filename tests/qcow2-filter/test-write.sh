#!/usr/bin/env bash
# Random write workloads (workload.py: writes, zeroes, trims, FUA, flushes on
# two connections) through the qcow2 filter, each ending with qemu-img check
# clean and the image's contents equal to the workload's raw reference:
#   1. over the file plugin, an image qemu-img made (given room to grow);
#   2. over the nbd plugin with the blockcache filter under the qcow2 filter,
#      to a second nbdkit serving the file raw;
#   3. over a serialized plugin (noparallel filter below);
#   4. qcow2-create= over an all-zero file, then the workload;
#   5. an image with no room left: the client gets ENOSPC, the image stays clean;
#   6. an image whose last clusters are holes in the file (preallocation=
#      metadata): they are still the image's, not room to grow into;
#   7. a plugin that takes only whole 4096-byte blocks (blocksize-policy
#      filter below, refusing anything else): the filter reads and writes
#      the image's metadata and partial clusters through read-modify-write.
source "$(dirname "$0")/lib.sh"
: "${BLOCKCACHE:?BLOCKCACHE must point at nbdkit-blockcache-filter.so}"
sock=$work/outer.sock inner=$work/inner.sock
uri=$(uri_of "$sock")

# new_image NAME: a 64 MiB qcow2 image with some data, in a 256 MiB file
# (NBD exports cannot grow: the room is given up front).
new_image() {
  local img=$work/$1.qcow2
  qemu-img create -q -f qcow2 "$img" 64M
  qemu-io -f qcow2 -c "write -P 0x33 0 3M" -c "write -P 0x44 40M 1M" "$img" >/dev/null
  truncate -s 256M "$img"
  echo "$img"
}

# judge NAME IMAGE REFERENCE: qemu-img check clean, contents equal.
judge() {
  check_clean "$2"
  qemu-img compare -q -f qcow2 -F raw "$2" "$3" || fail "$1: the image differs from the workload's reference"
}

# 1. file
img=$(new_image file)
serve_filter "$sock" -- file "$img"
"$py" "$qcow2_filter_here/workload.py" "$uri" "$work/file.ref" --seed 1 || fail "file: workload failed"
stop_server "$server_pid"
judge file "$img" "$work/file.ref"

# 2. nbd, with blockcache between the qcow2 filter and the plugin
img=$(new_image nbd)
start_nbdkit "$inner" file "$img"
inner_pid=$server_pid
serve_filter "$sock" -- --filter="$BLOCKCACHE" nbd socket="$inner" blockcache-size=4M
"$py" "$qcow2_filter_here/workload.py" "$uri" "$work/nbd.ref" --seed 2 --ops 3000 ||
  fail "nbd + blockcache: workload failed"
stop_server "$server_pid"
stop_server "$inner_pid"
judge "nbd + blockcache" "$img" "$work/nbd.ref"

# 3. a serialized plugin below (the whole server then runs one request at a time)
img=$(new_image serial)
serve_filter "$sock" -- --filter=noparallel file "$img" serialize=all-requests
"$py" "$qcow2_filter_here/workload.py" "$uri" "$work/serial.ref" --seed 3 --ops 800 ||
  fail "noparallel: workload failed"
stop_server "$server_pid"
judge noparallel "$img" "$work/serial.ref"

# 4. qcow2-create= on an all-zero file; a second server start serves it as it is
truncate -s 100M "$work/created.qcow2"
serve_filter "$sock" -- file "$work/created.qcow2" qcow2-create=32M
[[ $(nbdinfo --size "$uri") == 33554432 ]] || fail "qcow2-create=32M: the export is not 32M"
"$py" "$qcow2_filter_here/workload.py" "$uri" "$work/created.ref" --seed 4 --ops 500 ||
  fail "qcow2-create: workload failed"
stop_server "$server_pid"
judge qcow2-create "$work/created.qcow2" "$work/created.ref"
serve_filter "$sock" -- file "$work/created.qcow2" qcow2-create=32M
qemu-img compare -q -f raw -F raw "$uri" "$work/created.ref" ||
  fail "qcow2-create= on an existing image did not serve it as it is"
stop_server "$server_pid"
# ... and never overwrites data that is not an image.
head -c 1M /dev/urandom >"$work/data.img"
cp "$work/data.img" "$work/data.orig"
serve_filter "$sock" -- file "$work/data.img" qcow2-create=32M
nbdinfo --size "$uri" >/dev/null 2>&1 && fail "qcow2-create= served a plugin holding other data"
stop_server "$server_pid"
cmp -s "$work/data.img" "$work/data.orig" || fail "qcow2-create= changed a plugin holding other data"
grep -q "neither a qcow2 image nor all zeroes" "$work/server.log" ||
  fail "the refusal to overwrite data is not logged"

# 5. No room: an image in a file of its own size, written past it.
qemu-img create -q -f qcow2 "$work/full.qcow2" 64M
serve_filter "$sock" -- file "$work/full.qcow2"
nbdsh -u "$uri" -c '
import errno
try:
    h.pwrite(b"f" * 65536, 1 << 20)
    raise AssertionError("a write needing a new cluster fitted in a full plugin")
except nbd.Error as e:
    assert e.errnum == errno.ENOSPC, e
h.flush()
' || fail "a full plugin does not give ENOSPC"
stop_server "$server_pid"
check_clean "$work/full.qcow2"
grep -q "write at offset 1048576 length 65536: .*plugin below holds" "$work/server.log" ||
  fail "the ENOSPC is not logged with the operation and offset"
# 6. Preallocated metadata: every data cluster is allocated, most of them
# holes in the file up to its end. The workload writes into them.
qemu-img create -q -f qcow2 -o preallocation=metadata "$work/prealloc.qcow2" 32M
qemu-io -f qcow2 -c "write -P 0x55 0 64k" "$work/prealloc.qcow2" >/dev/null
truncate -s 128M "$work/prealloc.qcow2"
serve_filter "$sock" -- file "$work/prealloc.qcow2"
"$py" "$qcow2_filter_here/workload.py" "$uri" "$work/prealloc.ref" --seed 6 --ops 800 ||
  fail "prealloc: workload failed"
stop_server "$server_pid"
judge preallocation=metadata "$work/prealloc.qcow2" "$work/prealloc.ref"

# 7. Whole blocks only below: every request that is not 4096-aligned fails
# at the plugin (blocksize-error-policy=error), so the image opens, takes
# the workload and odd-sized writes, and stays clean only if the filter
# never sends one.
img=$(new_image blocks)
serve_filter "$sock" -- --filter=blocksize-policy file "$img" \
  blocksize-minimum=4096 blocksize-preferred=65536 blocksize-error-policy=error
"$py" "$qcow2_filter_here/workload.py" "$uri" "$work/blocks.ref" --seed 7 --ops 800 ||
  fail "4096-byte blocks below: workload failed"
REF="$work/blocks.ref" nbdsh -u "$uri" -c '
import os
ref = open(os.environ["REF"], "r+b")
for i, (off, n) in enumerate([(1, 1), (4095, 2), (70000, 9999), (5 << 20, 3)]):
    data = bytes([0x61 + i]) * n
    h.pwrite(data, off)
    ref.seek(off); ref.write(data)
h.flush()
' || fail "4096-byte blocks below: odd-sized writes failed"
stop_server "$server_pid"
judge "4096-byte blocks below" "$img" "$work/blocks.ref"

echo "test-write: workloads over file, nbd + blockcache, noparallel, a created image and whole-block plugins are clean"
