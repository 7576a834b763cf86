#!/usr/bin/env bash
# nbdkit with the qcow2 plugin over every hostile image. For each image a
# server starts on a private socket, with 4 worker threads and a 1 GiB
# address-space cap (thread stacks and glibc's per-thread arenas reserve
# address space: at 512 MiB nbdkit cannot even start its threads). Either the
# server refuses the image at start-up with a message, or it runs: a client
# reads the whole disk and its map (failing cleanly is fine), and afterwards
# the server is still alive and answers another client. Images that must be
# accepted must be readable end to end, except that the plugin refuses any
# image with a backing file unless told backing=true (its own policy), which
# is fine as long as it says so.
#   run-plugin.sh PLUGIN_SO IMAGES_DIR
set -uo pipefail
plugin=$1 images=$2
fail_setup() { echo "run-plugin: $*" >&2; exit 1; }
[[ -f $plugin ]] || fail_setup "$plugin is missing"
command -v nbdkit >/dev/null || fail_setup "nbdkit is missing: apt-get install nbdkit"
command -v nbdinfo >/dev/null || fail_setup "nbdinfo is missing: apt-get install libnbd-bin"
command -v nbdcopy >/dev/null || fail_setup "nbdcopy is missing: apt-get install libnbd-bin"
tmp=$(mktemp -d); server=
cleanup() { [[ -n $server ]] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
failed=0 passed=0
while IFS=$'\t' read -r name expect what; do
  cp "$images/$name.qcow2" "$tmp/image.qcow2"   # served read-write: never the committed file
  sock=$tmp/sock; rm -f "$sock"
  ( ulimit -v 1048576; exec nbdkit -f -t 4 -U "$sock" --exit-with-parent "$plugin" file="$tmp/image.qcow2" ) \
    >"$tmp/server.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do [[ -S $sock ]] && break; kill -0 "$server" 2>/dev/null || break; sleep 0.05; done
  ok=1
  if [[ ! -S $sock ]]; then
    wait "$server"; status=$?; server=
    if ((status == 0 || status >= 125)) || [[ ! -s $tmp/server.log ]]; then
      echo "FAIL $name: nbdkit ended with $status and $(wc -c <"$tmp/server.log") bytes of messages"; ok=0
    elif [[ $expect == ok ]] && ! { [[ $name == backing-* ]] && grep -q backing "$tmp/server.log"; }; then
      echo "FAIL $name: an image that must be served was refused: $(tail -n 1 "$tmp/server.log")"; ok=0
    fi
  else
    uri="nbd+unix:///?socket=$sock"
    timeout 20 nbdcopy "$uri" null: >"$tmp/client.log" 2>&1; copy_status=$?
    timeout 20 nbdinfo --map "$uri" >>"$tmp/client.log" 2>&1
    if ((copy_status == 124)); then echo "FAIL $name: reading the disk timed out"; ok=0; fi
    if [[ $expect == ok ]] && ((copy_status != 0)); then
      echo "FAIL $name: reading a valid image failed: $(tail -n 2 "$tmp/client.log")"; ok=0
    fi
    if ! kill -0 "$server" 2>/dev/null; then
      echo "FAIL $name: nbdkit died: $(tail -n 5 "$tmp/server.log")"; ok=0
    else
      # Another client still gets an answer (a size, or the image's error).
      timeout 10 nbdinfo --size "$uri" >"$tmp/again.log" 2>&1; again=$?
      if ((again == 124)) || { ((again != 0)) && [[ ! -s $tmp/again.log ]]; }; then
        echo "FAIL $name: a second client got no answer"; ok=0
      fi
      kill -0 "$server" 2>/dev/null || { echo "FAIL $name: nbdkit died serving a second client"; ok=0; }
      kill "$server" 2>/dev/null; wait "$server" 2>/dev/null
    fi
    server=
  fi
  if ((ok)); then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done < "$images/expected.tsv"
echo "plugin: $passed passed, $failed failed"
((failed == 0 && passed > 0))
