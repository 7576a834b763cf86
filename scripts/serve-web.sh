#!/usr/bin/env bash
# Serves the web page (build-wasm/wasm/web, made by `cmake --build --preset
# wasm`) on localhost and prints its URL. `make web` builds it first.
#   scripts/serve-web.sh [PORT]     (default 8080; QCOWKIT_WEB_PORT also works)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build-wasm/wasm/web
port=${1:-${QCOWKIT_WEB_PORT:-8080}}
if [[ ! -f $dir/qcowkit.wasm ]]; then
  echo "serve-web.sh: $dir has no qcowkit.wasm; build it with: make wasm" >&2
  exit 1
fi
command -v python3 >/dev/null || { echo "serve-web.sh: python3 is missing (apt-get install python3)" >&2; exit 1; }
echo "qcowkit web page: http://localhost:$port/  (Ctrl-C stops it)"
exec python3 -m http.server "$port" --bind 127.0.0.1 --directory "$dir"
