#!/usr/bin/env bash
# snapshot=NAME: the plugin serves an internal snapshot read-only, byte for
# byte as qemu-img reads it, also when the client asks for write access;
# unknown names and snapshot= with create= are refused at startup.
source "$(dirname "$0")/lib.sh"

image=$work/snap.qcow2
qemu-img create -q -f qcow2 "$image" 16M
qemu-io -c 'write -P 0x11 0 1M' -c 'write -P 0x22 8M 64k' "$image" >/dev/null
qemu-img snapshot -c before "$image"
qemu-io -c 'write -P 0x33 0 512k' -c 'write -P 0x44 12M 64k' "$image" >/dev/null
qemu-img snapshot -c after "$image"
qemu-io -c 'write -P 0x55 4M 64k' "$image" >/dev/null
for name in before after 1; do
  qemu-img convert -O raw -l "snapshot.name=$name" "$image" "$work/$name.raw" 2>/dev/null ||
    qemu-img convert -O raw -l "snapshot.id=$name" "$image" "$work/$name.raw"
done
cmp -s "$work/before.raw" "$work/after.raw" && fail "the two snapshots should differ"

for name in before after 1; do
  with_server '
    set -e
    qemu-img compare -q -f raw -F raw "$uri" '"$work/$name.raw"' || { echo "bytes differ" >&2; exit 1; }
    nbdinfo --json "$uri" >'"$work/info.json"'
  ' "$image" "snapshot=$name" || fail "snapshot=$name: served bytes differ from qemu-img's view"
  grep -q '"is_read_only": true' "$work/info.json" || fail "snapshot=$name: the export is writable"
done

# A write through the snapshot export is refused; the image is unchanged.
sum=$(sha256sum <"$image")
with_server '
  nbdsh -u "$uri" -c "
try:
    h.pwrite(b\"x\" * 512, 0)
except nbd.Error:
    exit(0)
exit(1)
"' "$image" snapshot=before || fail "a write through snapshot= was accepted"
[[ $(sha256sum <"$image") == "$sum" ]] || fail "serving a snapshot changed the image"
check_clean "$image"

# Bad input: refused at startup with a message naming the problem.
out=$("${nbdkit_cmd[@]}" -f -U "$work/bad.sock" "$PLUGIN" "$image" snapshot=nosuch --run true 2>&1) &&
  fail "snapshot=nosuch started"
grep -q "nosuch" <<<"$out" || fail "snapshot=nosuch: no message naming it: $out"
out=$("${nbdkit_cmd[@]}" -f -U "$work/bad.sock" "$PLUGIN" "$work/new.qcow2" create=1M snapshot=x --run true 2>&1) &&
  fail "snapshot= with create= started"
grep -q "create" <<<"$out" || fail "snapshot= with create=: unclear message: $out"
echo "test-snapshot: 3 snapshots served read-only, bad input refused"
