#!/usr/bin/env bash
# Four connections writing disjoint ranges at once. multi-conn is promised,
# so one flush on ONE connection must make every connection's finished
# writes durable: the server is then SIGKILLed and the file must hold them.
source "$(dirname "$0")/lib.sh"

img="$work/disk.qcow2"
sock="$work/sock"
start_server "$sock" "$img" create=128M

cat >"$work/writers.py" <<'PY'
import sys, threading, nbd
uri, expected_path = sys.argv[1], sys.argv[2]
MiB = 1 << 20
REGION = 32 * MiB
handles = []
for i in range(4):
    h = nbd.NBD()
    h.connect_uri(uri)
    assert h.can_multi_conn(), "the server does not advertise multi-conn"
    handles.append(h)

def pattern(conn, chunk):
    return bytes([(conn * 37 + chunk) % 251 + 1]) * 65536

def writer(conn):
    h = handles[conn]
    for chunk in range(REGION // 65536):
        # Every other chunk, so the image has holes between writes too.
        if chunk % 3 == 2:
            continue
        h.pwrite(pattern(conn, chunk), conn * REGION + chunk * 65536)

threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
handles[3].flush()   # one flush, on one connection
with open(expected_path, "wb") as f:
    f.truncate(4 * REGION)
    for conn in range(4):
        for chunk in range(REGION // 65536):
            if chunk % 3 != 2:
                f.seek(conn * REGION + chunk * 65536)
                f.write(pattern(conn, chunk))
PY
"$py" "$work/writers.py" "$(uri_of "$sock")" "$work/expected.raw" || fail "concurrent writers"
stop_server "$server_pid" KILL
qemu-img check -f qcow2 "$img" >"$work/check" 2>&1 || [[ $? -eq 3 ]] ||
  { cat "$work/check" >&2; fail "corruption after four writers and SIGKILL"; }
qemu-img compare -q -f qcow2 -F raw "$img" "$work/expected.raw" ||
  fail "writes from other connections were not made durable by one flush"

# nbdcopy with four connections into a fresh image, then compared.
"$py" "$here/make_sparse_raw.py" "$work/source.raw" 128 7
with_server 'nbdcopy --connections=4 --flush '"$work/source.raw"' "$uri"' "$work/copy.qcow2" create=128M
check_clean "$work/copy.qcow2"
qemu-img compare -q -f qcow2 -F raw "$work/copy.qcow2" "$work/source.raw" || fail "nbdcopy -C 4: image differs"
echo "test-multi-conn: every check passed"
