#!/usr/bin/env bash
# Every kind of image qemu-img makes reads identical through the qcow2
# filter over three plugins: file, curl (file:// URL) and nbd (a second
# nbdkit serving the file raw). qemu-img compare over each NBD URI against
# the reference raw; over `file`, the extent map must also agree with
# qemu-img map. The backing-file image is served with qcow2-backing=.
source "$(dirname "$0")/lib.sh"

bash "$repo/tests/interop/make-images.sh" "$work/images" >/dev/null
inner=$work/inner.sock outer=$work/outer.sock
uri=$(uri_of "$outer")
count=0
while IFS=$'\t' read -r name image raw backing; do
  extra=()
  [[ $backing == - ]] || extra+=("qcow2-backing=$backing")

  serve_filter "$outer" -r -- file "$image" "${extra[@]}"
  qemu-img compare -q -f raw -F raw "$uri" "$raw" || fail "$name: differs through the file plugin"
  nbdinfo --map --json "$uri" >"$work/nbd.json"
  stop_server "$server_pid"
  qemu-img map -f qcow2 --output=json "$image" >"$work/qemu.json"
  "$py" "$repo/tests/plugin/compare_maps.py" "$work/nbd.json" "$work/qemu.json" ||
    fail "$name: nbdinfo --map through the filter disagrees with qemu-img map"

  serve_filter "$outer" -r -- curl "file://$image" "${extra[@]}"
  qemu-img compare -q -f raw -F raw "$uri" "$raw" || fail "$name: differs through the curl plugin"
  stop_server "$server_pid"

  start_nbdkit "$inner" -r file "$image"
  inner_pid=$server_pid
  serve_filter "$outer" -r -- nbd socket="$inner" "${extra[@]}"
  qemu-img compare -q -f raw -F raw "$uri" "$raw" || fail "$name: differs through the nbd plugin"
  stop_server "$server_pid"
  stop_server "$inner_pid"
  count=$((count + 1))
done <"$work/images/images.tsv"
[[ $count -ge 20 ]] || fail "only $count images were checked"

# The internal snapshot reads as it was (qcow2-snapshot=), through curl.
snap=$work/images/snapshot.qcow2
serve_filter "$outer" -r -- curl "file://$snap" qcow2-snapshot=before-edits
nbdcopy "$uri" "$work/snap.raw"
stop_server "$server_pid"
qemu-img convert -O raw -l snapshot.name=before-edits "$snap" "$work/snap-qemu.raw"
cmp -s "$work/snap.raw" "$work/snap-qemu.raw" ||
  fail "qcow2-snapshot=before-edits does not read as qemu-img reads the snapshot"
cmp -s "$work/snap.raw" "$work/images/snapshot.raw" &&
  fail "qcow2-snapshot=before-edits reads as the current contents"
# A smallest metadata cache still serves correctly.
IFS=$'\t' read -r _ image raw _ < <(grep -P '^c512\t' "$work/images/images.tsv")
serve_filter "$outer" -r -- file "$image" qcow2-metadata-cache=64K
qemu-img compare -q -f raw -F raw "$uri" "$raw" || fail "qcow2-metadata-cache=64K: differs"
stop_server "$server_pid"
echo "test-read-interop: $count images read identical through file, curl and nbd"
