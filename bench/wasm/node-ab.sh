#!/usr/bin/env bash
# Two builds of the module side by side: their sizes, and the seconds each
# takes to convert the same qcow2 to raw in node (bench/wasm/node-convert.js),
# RUNS times each, alternating, best and median printed. For a build flag's
# cost (e.g. -fwasm-exceptions): copy one build's qcowkit.js + qcowkit.wasm
# aside, rebuild, compare.
#   bench/wasm/node-ab.sh DIR_A DIR_B IMAGE.qcow2 [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
a=${1:?usage: node-ab.sh DIR_A DIR_B IMAGE [RUNS]} b=${2:?} image=${3:?} runs=${4:-5}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for dir in "$a" "$b"; do
  [[ -f $dir/qcowkit.wasm && -f $dir/qcowkit.js ]] || { echo "node-ab.sh: no qcowkit.js/.wasm in $dir" >&2; exit 1; }
done
declare -A times
for ((i = 0; i < runs; i++)); do
  for dir in "$a" "$b"; do
    t=$(QCOWKIT_WASM_DIR=$dir node bench/wasm/node-convert.js "$image" "$out/out.raw" |
        node -e "process.stdin.on('data', d => console.log(JSON.parse(d).seconds))")
    times[$dir]+="$t "
    rm -f "$out/out.raw"
  done
done
size=$(stat -c %s "$image")
for dir in "$a" "$b"; do
  python3 - "$dir" "$(stat -c %s "$dir/qcowkit.wasm")" "$(stat -c %s "$dir/qcowkit.js")" "$size" ${times[$dir]} <<'PY'
import statistics, sys
d, wasm, js, size, *t = sys.argv[1:]
t = sorted(float(x) for x in t)
print(f"{d}: qcowkit.wasm {int(wasm)} bytes, qcowkit.js {int(js)} bytes; "
      f"qcow2->raw best {t[0]:.2f} s, median {statistics.median(t):.2f} s "
      f"({int(size) / 2**20 / t[0]:.0f} MiB/s of file at best)")
PY
done
