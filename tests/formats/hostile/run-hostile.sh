#!/usr/bin/env bash
# The qcowkit CLI over every hostile vpc, vdi and vmdk image: `convert -O raw`
# (which opens and reads everything) and `info`, each in its own process
# under a 256 MiB address-space cap and 10 s. None may die of a signal or
# time out; an image that must be refused makes convert fail with a message
# naming the problem (expected.tsv), a valid one converts to what qemu-img
# reads (when qemu-img is there).
#   run-hostile.sh QCOWKIT IMAGES_DIR
set -uo pipefail
cli=$1 images=$2
[[ -x $cli ]] || { echo "run-hostile: $cli is missing" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
failed=0 passed=0
run() {  # run ARGS...: sets $status; $tmp/err holds stderr
  rm -f "$tmp/out.raw"
  ( ulimit -v 262144; exec timeout 10 "$cli" "$@" ) >"$tmp/stdout" 2>"$tmp/err"
  status=$?
}
while IFS=$'\t' read -r name fmt expect what; do
  image=$images/$name.$fmt
  ok=1
  for args in "info -f $fmt" "info" "map -f $fmt"; do
    run $args "$image"
    if ((status >= 124)); then echo "FAIL $name: '$args' died or timed out (exit $status)"; ok=0; fi
    if ((status != 0)) && [[ ! -s $tmp/err ]]; then echo "FAIL $name: '$args' failed without a message"; ok=0; fi
  done
  run convert -f "$fmt" -O raw "$image" "$tmp/out.raw"
  case $expect in
    ok)
      if ((status != 0)); then
        echo "FAIL $name ($what): refused: $(cat "$tmp/err")"; ok=0
      elif command -v qemu-img >/dev/null; then
        # The controls are what qemu-img reads too.
        qemu-img convert -f "$fmt" -O raw "$image" "$tmp/theirs.raw" &&
          cmp -s "$tmp/out.raw" "$tmp/theirs.raw" ||
          { echo "FAIL $name ($what): reads differently from qemu-img"; ok=0; }
        rm -f "$tmp/theirs.raw"
      fi ;;
    refuse:*)
      want=${expect#refuse:}
      if ((status == 0)); then
        echo "FAIL $name ($what): accepted"; ok=0
      elif ((status >= 124)); then
        echo "FAIL $name ($what): died or timed out (exit $status)"; ok=0
      elif ! grep -qF -- "$want" "$tmp/err"; then
        echo "FAIL $name ($what): message does not say '$want': $(cat "$tmp/err")"; ok=0
      fi ;;
  esac
  if ((ok)); then passed=$((passed + 1)); echo "ok $name"; else failed=$((failed + 1)); fi
done < "$images/expected.tsv"
echo "hostile formats: $passed passed, $failed failed"
((failed == 0 && passed > 0))
