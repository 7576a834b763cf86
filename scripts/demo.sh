#!/usr/bin/env bash
# `make demo`: makes demo.qcow2 (1 GiB: some data, some zeroes, holes) with
# qcowkit itself when it is missing, prints what to type to look at it, then
# serves it with the qcow2 plugin in the foreground until Ctrl-C.
#   DEMO_IMAGE=path    the image (default: ./demo.qcow2)
#   DEMO_SOCKET=path   serve on a Unix socket instead of localhost:10809
#   NBDKIT=command     the nbdkit to run (default: nbdkit)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
plugin="$build/plugin/nbdkit-qcow2-plugin.so"
maker="$build/plugin/qcowkit-make-demo-image"
image=${DEMO_IMAGE:-demo.qcow2}

for f in "$plugin" "$maker"; do
  [[ -x "$f" || -f "$f" ]] || { echo "demo: $f is missing; run 'make build' first" >&2; exit 1; }
done
if [[ ! -e "$image" ]]; then
  echo "demo: writing $image with qcowkit (1 GiB virtual; data, zeroes and holes)"
  "$maker" "$image"
fi

if [[ -n "${DEMO_SOCKET:-}" ]]; then
  uri="nbd+unix:///?socket=$DEMO_SOCKET"
  listen=(-U "$DEMO_SOCKET")
else
  uri="nbd://localhost:10809"
  listen=(-i 127.0.0.1 -p 10809)
fi

echo
echo "Serving $image at $uri (Ctrl-C stops the server). In another terminal:"
echo
show() { printf '  %-58s # %s\n' "$1" "$2"; }
show "nbdinfo '$uri'" "size, block sizes, what is supported"
show "nbdinfo --map '$uri'" "which ranges are data, zeroes, holes"
show "qemu-img info -U $image" "qemu's view of the file (-U: it is in use)"
show "qemu-img map -U --output=json $image" "where each range lives in the file"
show "nbdcopy '$uri' demo.raw" "copy it out (holes stay holes)"
show "nbdsh -u '$uri' -c 'print(h.pread(80, 0))'" "read the first bytes"
echo
# shellcheck disable=SC2086  # NBDKIT may be a command with arguments
exec ${NBDKIT:-nbdkit} -f "${listen[@]}" "$plugin" "$image"
