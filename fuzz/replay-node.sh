#!/usr/bin/env bash
# Runs an Emscripten-built replay driver under node over the given inputs.
#   replay-node.sh build-wasm/fuzz/fuzz-replay-NAME.js PATH...
set -euo pipefail
driver=$1; shift
if [[ ! -f "$driver" ]]; then
  echo "replay-node: $driver is missing: build the wasm preset first (make wasm)" >&2
  exit 1
fi
command -v node >/dev/null || { echo "replay-node: node is missing: apt-get install nodejs" >&2; exit 1; }
exec node "$driver" "$@"
