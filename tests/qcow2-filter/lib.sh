# Shared helpers for the qcow2 filter's integration tests (sourced, not run).
# Builds on the plugin tests' helpers (tests/plugin/lib.sh: fail, require,
# check_clean, stop_server, the scratch directory and its cleanup); adds
# servers with any plugin below the filter. CTest sets FILTER (the built
# nbdkit-qcow2-filter.so), PLUGIN and TEST_TMP.
: "${FILTER:?FILTER must point at nbdkit-qcow2-filter.so}"
source "$(dirname "${BASH_SOURCE[0]}")/../plugin/lib.sh"
qcow2_filter_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# start_nbdkit SOCKET NBDKIT-ARGS...: a background nbdkit serving on SOCKET
# (waits until it listens); sets server_pid. Logs go to $work/server.log.
start_nbdkit() {
  local sock=$1; shift
  rm -f "$sock"
  "${nbdkit_cmd[@]}" -f -U "$sock" --exit-with-parent "$@" 2>>"$work/server.log" &
  server_pid=$!
  server_pids+=("$server_pid")
  local i
  for i in $(seq 300); do
    [[ -S "$sock" ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; fail "nbdkit $* exited early"; }
    sleep 0.1
  done
  fail "nbdkit did not create $sock within 30 s"
}

# serve_filter SOCKET [NBDKIT-OPTIONS...] -- PLUGIN-AND-ARGS...: the qcow2
# filter over PLUGIN (extra filters below it go before --).
serve_filter() {
  local sock=$1; shift
  local opts=()
  while [[ $1 != -- ]]; do opts+=("$1"); shift; done
  shift
  start_nbdkit "$sock" "${opts[@]}" --filter="$FILTER" "$@"
}
