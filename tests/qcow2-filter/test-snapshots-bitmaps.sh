#!/usr/bin/env bash
# Writing through the qcow2 filter keeps what the image holds besides its
# current contents, as the plugin does: internal snapshots still read as
# they did (their clusters are copied on write, not overwritten), and
# persistent dirty bitmaps record every touched range and are consistent
# after a clean shutdown (qemu-nbd exports them as dirty at their
# granularity). qemu-img check clean throughout.
source "$(dirname "$0")/lib.sh"
require qemu-nbd qemu-utils
sock=$work/outer.sock
uri=$(uri_of "$sock")
image=$work/image.qcow2
qemu-img create -q -f qcow2 "$image" 64M
qemu-io -f qcow2 -c "write -P 0x21 0 2M" -c "write -P 0x22 10M 1M" "$image" >/dev/null
qemu-img snapshot -c before "$image"
qemu-img convert -O raw -l snapshot.name=before "$image" "$work/before.raw"
qemu-img bitmap --add "$image" fine
truncate -s 256M "$image"

serve_filter "$sock" -- file "$image"
qemu-io -f raw -c "write -P 2 1M 4k" -c "write -P 3 10M 200k" -c "discard 20M 1M" \
        -c "write -z 30M 64k" "$uri" >/dev/null || fail "writes through the filter failed"
stop_server "$server_pid"
check_clean "$image"

qemu-img snapshot -l "$image" | grep -q before || fail "the snapshot is gone"
qemu-img convert -O raw -l snapshot.name=before "$image" "$work/after.raw"
cmp -s "$work/before.raw" "$work/after.raw" || fail "the snapshot no longer reads as it did"
expect_pattern "$image" 2 1M 4k || fail "the current contents do not hold the write"
expect_pattern "$image" 0x21 1052672 4096 || fail "the current contents lost the data beside the write"

info=$(qemu-img info --output=json "$image")
grep -q '"in-use"' <<<"$info" && fail "the bitmap is still in use after a clean shutdown: $info"
qsock=$work/qemu-nbd.sock
qemu-nbd -r -k "$qsock" -B fine -f qcow2 "$image" &
qpid=$!
for _ in $(seq 100); do [[ -S $qsock ]] && break; sleep 0.1; done
got=$(nbdinfo --map=qemu:dirty-bitmap:fine "nbd+unix:///?socket=$qsock" | awk '$4 == "dirty" {print $1, $2}')
kill "$qpid" 2>/dev/null || true  # qemu-nbd ends with its only client
wait "$qpid" 2>/dev/null || true
want=$'1048576 65536\n10485760 262144\n20971520 1048576\n31457280 65536'
[[ $got == "$want" ]] || fail "bitmap dirty ranges: got [$got], want [$want]"
echo "test-snapshots-bitmaps: snapshot intact, bitmap maintained through the filter"
