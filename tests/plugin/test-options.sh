#!/usr/bin/env bash
# Configuration: --dump-plugin, --help, create=, missing and hostile files,
# and the backing= rules. Every refusal must be a clear message and a normal
# exit, never a crash.
source "$(dirname "$0")/lib.sh"

# expect_refusal WHAT PATTERN NBDKIT-ARGS...: nbdkit must exit 1 (not die of a
# signal) with PATTERN in its message.
expect_refusal() {
  local what=$1 pattern=$2; shift 2
  local status=0
  timeout 30 "${nbdkit_cmd[@]}" -U - "$PLUGIN" "$@" --run true >"$work/out" 2>&1 || status=$?
  # (With a sanitizer preloaded nbdkit may hang in exit(): see stop_server.)
  [[ $status -eq 124 && -n ${PLUGIN_PRELOAD:-} ]] && status=1
  [[ $status -eq 1 ]] || { cat "$work/out" >&2; fail "$what: nbdkit exited $status, wanted 1"; }
  grep -q -- "$pattern" "$work/out" || { cat "$work/out" >&2; fail "$what: no '$pattern' in the message"; }
}

# --dump-plugin names qcowkit's version and what the build supports.
"${nbdkit_cmd[@]}" "$PLUGIN" --dump-plugin >"$work/dump"
grep -q '^qcowkit_version=[0-9]' "$work/dump" || fail "--dump-plugin has no qcowkit_version"
grep -q '^qcowkit_compression=.*zlib' "$work/dump" || fail "--dump-plugin has no compression line"
grep -q '^thread_model=parallel' "$work/dump" || fail "the thread model is not parallel"

# --help lists every option.
"${nbdkit_cmd[@]}" "$PLUGIN" --help >"$work/help"
for key in file= create= cluster-size= compat= metadata-cache= trim= backing= locking=; do
  grep -q -- "$key" "$work/help" || fail "--help does not mention $key"
done

# A missing file is an error naming it, unless create= is given.
expect_refusal "missing file" "$work/absent.qcow2: the image does not exist" "$work/absent.qcow2"
[[ ! -e "$work/absent.qcow2" ]] || fail "a refused open created the file"

# create= makes a valid image with the asked geometry (and the bare path works).
with_server 'nbdinfo --size "$uri" >'"$work/size" \
  "$work/new.qcow2" create=64M cluster-size=4K compat=1.1
[[ $(cat "$work/size") == 67108864 ]] || fail "created image serves $(cat "$work/size") bytes"
qemu-img info --output=json "$work/new.qcow2" >"$work/info"
"$py" - "$work/info" <<'PY' || fail "created image has the wrong geometry"
import json, sys
info = json.load(open(sys.argv[1]))
assert info["format"] == "qcow2", info
assert info["virtual-size"] == 64 << 20, info
assert info["cluster-size"] == 4096, info
assert info["format-specific"]["data"]["compat"] == "1.1", info
PY
check_clean "$work/new.qcow2"

# create= on an existing image serves it unchanged (never recreates).
qemu-io -f qcow2 -c "write -P 0x77 0 64k" "$work/new.qcow2" >/dev/null
with_server 'nbdinfo --size "$uri" >'"$work/size" file="$work/new.qcow2" create=1G
[[ $(cat "$work/size") == 67108864 ]] || fail "create= replaced an existing image"
expect_pattern "$work/new.qcow2" 0x77 0 64k ||
  fail "create= changed the existing data"

# Bad values are refused with the key in the message.
expect_refusal "unknown key" "unknown parameter 'colour'" "$work/new.qcow2" colour=red
expect_refusal "bad trim" "trim=sometimes" "$work/new.qcow2" trim=sometimes
expect_refusal "bad cluster size" "cluster-size=3000" "$work/x.qcow2" create=1M cluster-size=3000
expect_refusal "bad compat" "compat=2.0" "$work/x.qcow2" create=1M compat=2.0

# Not qcow2, or hostile: refused at startup with a message naming the file.
head -c 1048576 /dev/urandom >"$work/random.img"
expect_refusal "raw file" "$work/random.img: not a qcow2 image" "$work/random.img"
qemu-img create -q -f qcow2 "$work/hostile.qcow2" 64M
# cluster_bits = 40 (bytes 20-23): far beyond the 2 MiB limit.
printf '\x00\x00\x00\x28' | dd of="$work/hostile.qcow2" bs=1 seek=20 conv=notrunc status=none
expect_refusal "cluster_bits 40" "$work/hostile.qcow2" "$work/hostile.qcow2"
qemu-img create -q -f qcow2 "$work/hostile2.qcow2" 64M
# l1_table_offset (bytes 40-47) pointing far past the end of a tiny file.
printf '\x00\x7f\xff\xff\xff\xff\x00\x00' | dd of="$work/hostile2.qcow2" bs=1 seek=40 conv=notrunc status=none
expect_refusal "l1 past end" "$work/hostile2.qcow2" "$work/hostile2.qcow2"
head -c 200 "$work/new.qcow2" >"$work/truncated.qcow2"
expect_refusal "truncated header" "$work/truncated.qcow2" "$work/truncated.qcow2"

# Backing files: refused unless backing=true, and then only in the image's directory.
mkdir -p "$work/images" "$work/elsewhere"
qemu-img create -q -f raw "$work/images/base.raw" 4M
qemu-io -f raw -c "write -P 0x42 0 1M" "$work/images/base.raw" >/dev/null
qemu-img create -q -f qcow2 -b base.raw -F raw "$work/images/top.qcow2"
expect_refusal "backing without backing=true" "add backing=true" "$work/images/top.qcow2"
with_server 'nbdcopy "$uri" '"$work/read.raw" "$work/images/top.qcow2" backing=true
cmp "$work/read.raw" "$work/images/base.raw" || fail "the backing file's data is not served"

qemu-img create -q -f raw "$work/elsewhere/base.raw" 4M
qemu-img create -q -f qcow2 -b ../elsewhere/base.raw -F raw "$work/images/escape.qcow2"
expect_refusal "backing in another directory" "only files in the image's own directory" \
  "$work/images/escape.qcow2" backing=true
qemu-img create -q -f qcow2 -b /etc/passwd -F raw "$work/images/passwd.qcow2" 1M
expect_refusal "backing /etc/passwd" "refused" "$work/images/passwd.qcow2" backing=true
qemu-img create -q -f qcow2 -u -b 'json:{"file.filename":"/etc/passwd"}' -F raw "$work/images/json.qcow2" 1M
expect_refusal "backing json:" "refused" "$work/images/json.qcow2" backing=true

echo "test-options: every check passed"
