# Shared helpers for the plugin's integration tests (sourced, not run).
# Each test gets PLUGIN (the built .so) and TEST_TMP from CTest.
set -euo pipefail

: "${PLUGIN:?PLUGIN must point at nbdkit-qcow2-plugin.so}"
: "${TEST_TMP:?TEST_TMP must name a scratch directory}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

fail() { echo "FAIL: $*" >&2; exit 1; }

# require TOOL PACKAGE...: a missing tool fails the test, naming the package.
require() {
  local tool=$1 pkg=$2
  command -v "$tool" >/dev/null || fail "$tool is missing: apt-get install $pkg"
}
require nbdkit nbdkit
require nbdinfo libnbd-bin
require nbdcopy libnbd-bin
require nbdsh libnbd-bin
require qemu-img qemu-utils
require qemu-io qemu-utils
# The nbd module is in Debian's python (python3-libnbd), not in other pythons on PATH.
py=/usr/bin/python3
[[ -x $py ]] || py=$(command -v python3) || fail "python3 is missing: apt-get install python3"
# nbdsh starts with "#!/usr/bin/env python3": make that python the one with nbd.
mkdir -p "$TEST_TMP/bin"
ln -sf "$py" "$TEST_TMP/bin/python3"
export PATH="$TEST_TMP/bin:$PATH"
"$py" -c 'import nbd' 2>/dev/null || fail "python3 nbd module is missing: apt-get install python3-libnbd"

# nbdkit is not built with sanitizers: under `make asan` / `make tsan` the
# plugin's sanitizer runtime (PLUGIN_PRELOAD) must be loaded into nbdkit
# first, and only into nbdkit (the shells --run would start crash under TSan,
# so the tests serve in the background instead of with --run).
nbdkit_cmd=(env "LD_PRELOAD=${PLUGIN_PRELOAD:-}" nbdkit)

mkdir -p "$TEST_TMP"
work=$(mktemp -d "$TEST_TMP/plugin-XXXXXX")
server_pids=()
cleanup() {
  local pid
  for pid in "${server_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${server_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# start_server SOCKET PLUGIN-ARGS...: a background server; sets server_pid.
# It dies with this script (--exit-with-parent) and on cleanup.
start_server() {
  local sock=$1; shift
  rm -f "$sock"  # a killed server leaves its socket behind
  "${nbdkit_cmd[@]}" -f -U "$sock" --exit-with-parent "$PLUGIN" "$@" 2>>"$work/server.log" &
  server_pid=$!
  server_pids+=("$server_pid")
  local i
  for i in $(seq 300); do
    [[ -S "$sock" ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; fail "nbdkit exited early"; }
    sleep 0.1
  done
  fail "nbdkit did not create $sock within 30 s"
}

# stop_server PID [SIGNAL]: signals the server and waits (bounded) for it.
stop_server() {
  local pid=$1 sig=${2:-TERM} i
  # 30 s; 10 s with a sanitizer preloaded, where a hang in exit is expected.
  local tenths=300
  [[ -z ${PLUGIN_PRELOAD:-} ]] || tenths=100
  kill "-$sig" "$pid" 2>/dev/null || true
  for i in $(seq "$tenths"); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  # With a sanitizer runtime preloaded, nbdkit can hang in exit() inside
  # libp11-kit's destructor (glibc's locale lock), after the plugin has
  # closed the image: the image checks that follow still judge the shutdown.
  if [[ -n ${PLUGIN_PRELOAD:-} ]]; then
    wait "$pid" 2>/dev/null || true
    echo "note: nbdkit (pid $pid) hung in exit with a sanitizer preloaded; killed" >&2
    return 0
  fi
  fail "nbdkit (pid $pid) did not stop within $((tenths / 10)) s of SIG$sig"
}

uri_of() { echo "nbd+unix:///?socket=$1"; }

# with_server 'CMD' PLUGIN-ARGS...: serves PLUGIN-ARGS on a private socket
# while CMD runs in bash (with $uri and $unixsocket set), then stops the
# server with SIGTERM. Returns CMD's status; fails if the server does not start.
with_server() {
  local cmd=$1; shift
  local sock="$work/with-server.sock" status=0
  start_server "$sock" "$@"
  uri=$(uri_of "$sock") unixsocket=$sock timeout 300 bash -c "$cmd" || status=$?
  stop_server "$server_pid" TERM
  return $status
}

# check_clean IMAGE: qemu-img check finds neither corruption nor leaks.
check_clean() {
  local out
  out=$(qemu-img check -f qcow2 "$1" 2>&1) || fail "qemu-img check $1: $out"
}

# expect_pattern IMAGE PATTERN OFFSET LENGTH [QEMU-IO-OPTIONS...]: qemu-io
# reads the range read-only and verifies every byte is PATTERN. Fails unless
# qemu-io exits 0, prints no "Pattern verification failed" (it still prints
# "read N/N bytes" after one), and reports reading exactly LENGTH bytes.
# Returns 1 (after printing qemu-io's output) so callers can add context.
expect_pattern() {
  local image=$1 pattern=$2 offset=$3 length=$4; shift 4
  local out status=0 bytes
  out=$(qemu-io -f qcow2 -r "$@" -c "read -P $pattern $offset $length" "$image" 2>&1) || status=$?
  bytes=$(numfmt --from=iec "${length^^}") || fail "expect_pattern: bad length $length"
  if [[ $status -ne 0 ]] || grep -qi 'verification failed\|error\|failed' <<<"$out" ||
     ! grep -q "^read $bytes/$bytes bytes at offset" <<<"$out"; then
    echo "qemu-io read -P $pattern $offset $length on $image (exit $status):" >&2
    echo "$out" >&2
    return 1
  fi
}
