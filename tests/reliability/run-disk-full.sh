#!/usr/bin/env bash
# Runs the disk-full test on a 4 MiB tmpfs mounted in a private mount
# namespace: the kernel's own ENOSPC, nothing to clean up afterwards (the
# mount dies with the namespace), nothing visible to the rest of the machine.
# As root `unshare --mount` is enough; otherwise a user namespace maps us to
# root inside it. Either way a refused mount fails the test, saying why.
#   run-disk-full.sh DRIVER
set -euo pipefail
driver=$1
command -v unshare >/dev/null || { echo "disk-full: unshare is missing: apt-get install util-linux" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/qcowkit-disk-full.XXXXXX")
trap 'rmdir "$dir" 2>/dev/null || true' EXIT
if [[ $(id -u) -eq 0 ]]; then ns=(unshare --mount); else ns=(unshare --user --map-root-user --mount); fi
# The mount is private to the namespace (--propagation private is unshare's default).
# Not exec'd: the trap above removes the mount point afterwards.
"${ns[@]}" sh -c '
  mount -t tmpfs -o size=4m qcowkit-disk-full "$1" || {
    echo "disk-full: mounting a 4 MiB tmpfs at $1 was refused; this test needs root or unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)" >&2
    exit 1
  }
  exec "$2" "$1"' sh "$dir" "$driver"
