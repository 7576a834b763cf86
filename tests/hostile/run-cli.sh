#!/usr/bin/env bash
# The qcowkit CLI over every hostile image: `info`, `check` and `map`, each in
# its own process under a 256 MiB address-space cap and 10 s. None may die
# of a signal or time out; a non-zero exit must come with a message on
# stderr; an image the core must refuse makes `map` fail, one it must accept
# makes `info` and `map` succeed.
#   run-cli.sh QCOWKIT_BINARY IMAGES_DIR
set -uo pipefail
cli=$1 images=$2
[[ -x $cli ]] || { echo "run-cli: $cli is missing" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
failed=0 passed=0
run() {  # run NAME VERB ARGS...: sets $status; $tmp/err holds stderr
  local name=$1; shift
  ( ulimit -v 262144; exec timeout 10 "$cli" "$@" ) >"$tmp/out" 2>"$tmp/err"
  status=$?
  if ((status == 124)); then
    echo "FAIL $name: '$*' timed out"; return 1
  elif ((status >= 125)); then
    echo "FAIL $name: '$*' died (exit $status)"; cat "$tmp/err"; return 1
  elif ((status != 0)) && [[ ! -s $tmp/err ]]; then
    echo "FAIL $name: '$*' exit $status without a message"; return 1
  fi
  return 0
}
while IFS=$'\t' read -r name expect what; do
  image=$images/$name.qcow2
  ok=1
  for verb in info check map; do
    run "$name" "$verb" -f qcow2 "$image" || ok=0
    declare "status_$verb=$status"
    cp "$tmp/err" "$tmp/$verb-err"
  done
  # `info` may describe a header it would not open (qemu-img does too, e.g.
  # the external data file's name); `map` needs the whole image open.
  case $expect in
    refuse) ((status_map != 0)) || { echo "FAIL $name: map accepted an image that must be refused ($what)"; ok=0; } ;;
    ok) ((status_info == 0 && status_map == 0)) ||
          { echo "FAIL $name: a valid image was refused: $(cat "$tmp/info-err" "$tmp/map-err")"; ok=0; } ;;
  esac
  if ((ok)); then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done < "$images/expected.tsv"
echo "cli: $passed passed, $failed failed"
((failed == 0 && passed > 0))
