#!/usr/bin/env bash
# QEMU-compatible locking, both ways, against the real qemu-io / qemu-img:
# qemu cannot write (or even open without -U) an image the plugin serves,
# and the plugin refuses, naming the file, an image qemu is writing.
source "$(dirname "$0")/lib.sh"

img="$work/disk.qcow2"
qemu-img create -q -f qcow2 "$img" 64M
sock="$work/sock"

# 1. While nbdkit serves read-write, qemu-io must not write.
start_server "$sock" "$img"
nbdsh -u "$(uri_of "$sock")" -c 'h.pwrite(b"\x11" * 4096, 0); h.flush()'
if out=$(qemu-io -f qcow2 -c "write -P 0x22 0 4096" "$img" 2>&1); then
  fail "qemu-io wrote to an image the plugin serves: $out"
fi
grep -q 'lock' <<<"$out" || fail "qemu-io failed for another reason: $out"
# Nor open it read-only without -U (it would read stale metadata) ...
if qemu-img info "$img" >/dev/null 2>&1; then fail "qemu-img info opened a served image without -U"; fi
# ... while -U (force share) still works, as it does against QEMU itself.
qemu-img info -U "$img" >/dev/null || fail "qemu-img info -U failed on a served image"
stop_server "$server_pid"
# Once the server is gone, qemu can write again: the locks went with it.
qemu-io -f qcow2 -c "write -P 0x22 4096 4096" "$img" >/dev/null || fail "the locks outlived the server"

# 2. While qemu-io holds the image read-write, nbdkit refuses it, naming the file.
mkfifo "$work/qemu-io.in"
qemu-io -f qcow2 "$img" <"$work/qemu-io.in" >/dev/null 2>&1 &
qemu_pid=$!
exec 3>"$work/qemu-io.in"   # qemu-io runs until fd 3 closes
inode=$(stat -c %i "$img")
for i in $(seq 300); do grep -q ":$inode " /proc/locks && break; sleep 0.1; done
grep -q ":$inode " /proc/locks || fail "qemu-io did not lock the image within 30 s"
status=0
timeout 60 "${nbdkit_cmd[@]}" -U - "$PLUGIN" "$img" --run true >"$work/out" 2>&1 || status=$?
[[ $status -ne 0 ]] || fail "nbdkit served an image qemu-io is writing"
grep -q "$img: the image is in use" "$work/out" || { cat "$work/out" >&2; fail "unclear lock message"; }
# Read-only is refused too: qemu-io (a writer) does not share consistent reads of metadata in flux.
status=0
timeout 60 "${nbdkit_cmd[@]}" -r -U - "$PLUGIN" "$img" --run true >"$work/out" 2>&1 || status=$?
[[ $status -ne 0 ]] || fail "nbdkit -r served an image qemu-io is writing"
# locking=false is the explicit way around it (like QEMU's locking=off).
with_server 'nbdinfo --size "$uri" >/dev/null' -r "$img" locking=false ||
  fail "locking=false did not bypass the lock"
exec 3>&-
wait "$qemu_pid" || true

# 3. Readers share: nbdkit -r and qemu-io -r on the same image at once.
start_server "$sock" -r "$img"
expect_pattern "$img" 0x11 0 4096 ||
  fail "qemu-io -r could not read next to a read-only server"
stop_server "$server_pid"
check_clean "$img"
echo "test-locking: every check passed"
