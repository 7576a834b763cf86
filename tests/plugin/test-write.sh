#!/usr/bin/env bash
# Writes through NBD: nbdcopy from a raw with holes, qemu-io over the URI,
# nbdsh for trim / zero / fast zero / FUA / flush, a client without
# structured replies. Afterwards qemu-img check finds no leak or corruption
# and qemu-img compare matches the raw that got the same changes.
source "$(dirname "$0")/lib.sh"

"$py" "$here/make_sparse_raw.py" "$work/source.raw" 64 1
cp --sparse=always "$work/source.raw" "$work/mirror.raw"
img="$work/disk.qcow2"

# 1. nbdcopy a raw with holes into a new image.
with_server 'nbdcopy --flush '"$work/source.raw"' "$uri"' "$img" create=64M
check_clean "$img"
qemu-img compare -q -f qcow2 -F raw "$img" "$work/source.raw" || fail "nbdcopy: image differs"

# 2. qemu-io over the URI, and the same edits on the mirror raw.
edits=(-c "write -P 0xa1 4096 8192" -c "write -z 1048576 2097152" -c "discard 8388608 1048576"
       -c "write -P 0xb2 33553920 1024" -c "write -z -u 16777216 65536" -c "flush")
with_server 'qemu-io -f raw '"$(printf '%q ' "${edits[@]}")"' "$uri" >/dev/null' "$img"
qemu-io -f raw "${edits[@]}" "$work/mirror.raw" >/dev/null
check_clean "$img"
qemu-img compare -q -f qcow2 -F raw "$img" "$work/mirror.raw" || fail "qemu-io: image differs"

# 3. nbdsh: FUA write, trim, zero (plain, may-trim, fast), flush; mirrored in the raw.
cat >"$work/ops.py" <<'PY'
import errno, os, sys
mirror = os.open(sys.argv[1], os.O_RDWR)
MiB = 1 << 20
assert h.can_fua(), "FUA is not advertised"
assert h.can_trim() and h.can_zero() and h.can_fast_zero() and h.can_flush()
assert h.can_multi_conn(), "multi-conn is not advertised"
assert h.can_cache(), "cache is not advertised"
assert h.get_block_size(nbd.SIZE_PREFERRED) == 65536, h.get_block_size(nbd.SIZE_PREFERRED)

def both_write(data, off, flags=0):
    h.pwrite(data, off, flags)
    os.pwrite(mirror, data, off)

def both_zero(length, off):
    os.pwrite(mirror, bytes(length), off)

both_write(b"\xc3" * 65536, 2 * MiB, nbd.CMD_FLAG_FUA)
h.trim(MiB, 4 * MiB); both_zero(MiB, 4 * MiB)
h.trim(4096, 5 * MiB, nbd.CMD_FLAG_FUA); both_zero(4096, 5 * MiB)
h.zero(65536, 6 * MiB); both_zero(65536, 6 * MiB)
h.zero(3 * 65536, 7 * MiB, nbd.CMD_FLAG_NO_HOLE); both_zero(3 * 65536, 7 * MiB)
both_write(b"\x5e" * 4096, 40 * MiB)
h.flush()

# Fast zero: either done by metadata alone, or refused with ENOTSUP and
# nothing changed.
before = h.pread(MiB, 10 * MiB)
try:
    h.zero(MiB, 10 * MiB, nbd.CMD_FLAG_FAST_ZERO)
    assert h.pread(MiB, 10 * MiB) == bytes(MiB), "fast zero left data behind"
    both_zero(MiB, 10 * MiB)
except nbd.Error as e:
    assert e.errnum == errno.ENOTSUP, f"fast zero failed with {e}"
    assert h.pread(MiB, 10 * MiB) == before, "a refused fast zero changed the data"

# Reads see everything the writes did.
assert h.pread(65536, 2 * MiB) == b"\xc3" * 65536
assert h.pread(MiB, 4 * MiB) == bytes(MiB)
h.cache(MiB, 0)
# Extents: with REQ_ONE exactly one; without it, a run of them from the offset.
replies = []
def got(context, offset, entries, err):
    replies.append((offset, entries))
    return 0
h.block_status(h.get_size(), 0, got, nbd.CMD_FLAG_REQ_ONE)
assert len(replies) == 1 and len(replies[0][1]) == 2, replies
replies.clear()
h.block_status(h.get_size(), 0, got)
assert len(replies) == 1 and len(replies[0][1]) > 2, "one extent for a mixed image"
assert replies[0][1][1] == 0, "the image starts with data"
# Out of range is an error for the client, not a crash of the server.
try:
    h.pread(4096, h.get_size())
    raise AssertionError("a read past the end succeeded")
except nbd.Error:
    pass
h.flush()
os.close(mirror)
PY
with_server 'nbdsh --base-allocation -u "$uri" -c "import sys; sys.argv=[\"\", \"'"$work/mirror.raw"'\"]" -c "exec(open(\"'"$work/ops.py"'\").read())"' "$img" ||
  fail "nbdsh operations"
check_clean "$img"
qemu-img compare -q -f qcow2 -F raw "$img" "$work/mirror.raw" || fail "nbdsh: image differs"

# 4. A client without structured replies still reads and writes.
cat >"$work/nosr.py" <<'PY'
h = nbd.NBD()
h.set_request_structured_replies(False)
import os
h.connect_uri(os.environ["uri"])
assert not h.get_structured_replies_negotiated()
h.pwrite(b"\x9d" * 4096, 12 * (1 << 20))
h.flush()
assert h.pread(4096, 12 * (1 << 20)) == b"\x9d" * 4096
h.shutdown()
PY
with_server 'uri="$uri" nbdsh -n -c "exec(open(\"'"$work/nosr.py"'\").read())"' "$img" || fail "client without structured replies"
"$py" - "$work/mirror.raw" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR); os.pwrite(fd, b"\x9d" * 4096, 12 << 20); os.close(fd)
PY
check_clean "$img"
qemu-img compare -q -f qcow2 -F raw "$img" "$work/mirror.raw" || fail "--no-sr: image differs"

# 5. trim=zero only zeroes: the range reads as zeroes afterwards.
with_server 'nbdsh -u "$uri" -c "h.trim(1 << 20, 16 << 20); h.flush(); assert h.pread(1 << 20, 16 << 20) == bytes(1 << 20)"' \
  "$img" trim=zero || fail "trim=zero"
# trim=off: trim is not offered.
with_server 'nbdsh -u "$uri" -c "assert not h.can_trim()"' "$img" trim=off || fail "trim=off still offers trim"
check_clean "$img"

# 6. Read-only: writes are refused with EPERM/EROFS, and the file is untouched.
sum=$(md5sum <"$img")
with_server 'nbdsh -u "$uri" -c "
assert h.is_read_only()
try:
    h.pwrite(b\"x\" * 512, 0)
    raise AssertionError(\"write succeeded on a read-only export\")
except nbd.Error:
    pass"' -r "$img" || fail "read-only export"
[[ $(md5sum <"$img") == "$sum" ]] || fail "serving with -r changed the file"
# 7. Corruption found while serving: the client gets EIO, the log names the
# image and the offset, the server keeps serving, and stops writing.
qemu-img create -q -f qcow2 "$work/bad.qcow2" 64M
qemu-io -f qcow2 -c "write -P 0x11 0 64k" -c "write -P 0x22 32M 64k" "$work/bad.qcow2" >/dev/null
"$py" "$here/corrupt_l2_entry.py" "$work/bad.qcow2"
with_server 'nbdsh -u "$uri" -c "
import errno
try:
    h.pread(4096, 0)
    raise AssertionError(\"a read through a corrupt L2 entry succeeded\")
except nbd.Error as e:
    assert e.errnum == errno.EIO, e
assert h.pread(4, 32 << 20) == b\"\\x22\" * 4, \"the server stopped serving after the error\"
try:
    h.pwrite(b\"x\" * 4096, 16 << 20)
    raise AssertionError(\"a write to a corrupt image succeeded\")
except nbd.Error:
    pass"' "$work/bad.qcow2" 2>"$work/bad.log" || { cat "$work/bad.log" >&2; fail "runtime corruption"; }
grep -q "$work/bad.qcow2: read at offset 0 length 4096: .*corrupt" "$work/server.log" ||
  { cat "$work/server.log" >&2; fail "the server log does not name the image, offset and problem"; }

# 8. Out of space (a 1 MiB file size limit stands in for a full disk): the
# client gets ENOSPC, earlier writes are kept, and the image stays clean.
qemu-img create -q -f qcow2 "$work/full.qcow2" 64M
(
  trap '' XFSZ  # a write past the limit then fails with EFBIG instead of killing nbdkit
  ulimit -f 1024
  with_server 'nbdsh -u "$uri" -c "
import errno
failed = None
for i in range(32):
    try:
        h.pwrite(b\"s\" * 65536, i << 20)
    except nbd.Error as e:
        failed = e
        break
assert failed is not None, \"32 clusters fitted in a 1 MiB file\"
assert failed.errnum == errno.ENOSPC, failed
h.flush()
assert h.pread(65536, 0) == b\"s\" * 65536"' "$work/full.qcow2" 2>"$work/full.log"
) || { cat "$work/full.log" >&2; fail "out of space"; }
check_clean "$work/full.qcow2"

echo "test-write: every check passed"
