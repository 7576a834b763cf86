#!/usr/bin/env bash
# The qcow2 filter (over nbdkit's file plugin) against every hostile image,
# with the plugin beside it: for each image both serve a private copy, a
# client asks for the size, reads the whole disk and its map, and the
# outcome is classed as refused (no export: the plugin refuses at start-up,
# the filter when the client connects), read-error (served, but reading
# fails cleanly) or ok. The filter's class must be the plugin's, except
# that the filter refuses images with a backing file (it never opens one
# unless qcow2-backing= names it) where the plugin does too without
# backing=true. Either way the server must survive and answer again.
#   run-filter.sh FILTER_SO PLUGIN_SO IMAGES_DIR
set -uo pipefail
filter=$1 plugin=$2 images=$3
fail_setup() { echo "run-filter: $*" >&2; exit 1; }
[[ -f $filter && -f $plugin ]] || fail_setup "$filter or $plugin is missing"
command -v nbdkit >/dev/null || fail_setup "nbdkit is missing: apt-get install nbdkit"
command -v nbdcopy >/dev/null || fail_setup "nbdcopy is missing: apt-get install libnbd-bin"
tmp=$(mktemp -d); server=
cleanup() { [[ -n $server ]] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# outcome NAME NBDKIT-ARGS...: prints refused, read-error or ok (or FAIL ...).
outcome() {
  local name=$1; shift
  cp "$images/$name.qcow2" "$tmp/image.qcow2"   # served read-write: never the committed file
  local sock=$tmp/sock uri="nbd+unix:///?socket=$tmp/sock"
  rm -f "$sock"
  ( ulimit -v 1048576; exec nbdkit -f -t 4 -U "$sock" --exit-with-parent "$@" ) >"$tmp/server.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do [[ -S $sock ]] && break; kill -0 "$server" 2>/dev/null || break; sleep 0.05; done
  if [[ ! -S $sock ]]; then
    wait "$server"; local status=$?; server=
    if ((status == 0 || status >= 125)) || [[ ! -s $tmp/server.log ]]; then
      echo "FAIL nbdkit ended with $status and no message"
    else
      echo refused
    fi
    return
  fi
  local result
  if ! timeout 20 nbdinfo --size "$uri" >/dev/null 2>&1; then
    result=refused
    [[ -s $tmp/server.log ]] || result="FAIL refused without a message"
  else
    timeout 20 nbdcopy "$uri" null: >/dev/null 2>&1; local copy=$?
    timeout 20 nbdinfo --map "$uri" >/dev/null 2>&1; local map=$?
    if ((copy == 124 || map == 124)); then result="FAIL reading timed out"
    elif ((copy != 0)); then result=read-error
    else result=ok
    fi
  fi
  if ! kill -0 "$server" 2>/dev/null; then
    result="FAIL nbdkit died: $(tail -n 2 "$tmp/server.log")"
  elif ! timeout 10 nbdinfo --size "$uri" >/dev/null 2>&1 && [[ $result == ok || $result == read-error ]]; then
    result="FAIL a second client got no answer"
  fi
  kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; server=
  echo "$result"
}

failed=0 passed=0
while IFS=$'\t' read -r name expect what; do
  by_plugin=$(outcome "$name" "$plugin" file="$tmp/image.qcow2")
  by_filter=$(outcome "$name" --filter="$filter" file "$tmp/image.qcow2")
  if [[ $by_filter == FAIL* ]]; then
    echo "FAIL $name ($what): filter: ${by_filter#FAIL }"; failed=$((failed + 1))
  elif [[ $by_filter != "$by_plugin" ]]; then
    echo "FAIL $name ($what): the plugin's outcome is $by_plugin, the filter's $by_filter"
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
  fi
done < "$images/expected.tsv"
echo "filter: $passed images with the plugin's outcome, $failed differ"
((failed == 0 && passed > 0))
