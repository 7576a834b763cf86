#!/usr/bin/env bash
# Generates the seed corpora in fuzz/corpus/ from small images made by
# qemu-img / qemu-io and from raw files. Deterministic except for snapshot
# timestamps; the output is committed (keep it a few hundred KiB in total).
#   scripts/make-fuzz-corpus.sh [OUTDIR]     default: fuzz/corpus
# Needs the Debian packages qemu-utils, zstd and python3.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/fuzz/corpus}
for tool in qemu-img qemu-io zstd python3; do
  if ! command -v $tool >/dev/null; then
    pkg=$tool; [[ $tool == qemu-* ]] && pkg=qemu-utils
    echo "make-fuzz-corpus: $tool is missing: apt-get install $pkg" >&2; exit 1
  fi
done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
rm -rf "$out/open" "$out/ops" "$out/codec" "$out/cache"
mkdir -p "$out/open" "$out/ops" "$out/codec" "$out/cache"

# --- fuzz_open: whole image files -------------------------------------------
# $1 name, $2 create options, $3.. qemu-io commands
image() {
  local name=$1 opts=$2; shift 2
  local f=$out/open/$name.qcow2
  qemu-img create -q -f qcow2 -o "$opts" "$f" 64K
  local args=()
  for c in "$@"; do args+=(-c "$c"); done
  ((${#args[@]})) && qemu-io -f qcow2 "${args[@]}" "$f" >/dev/null
  return 0
}
image v3-512-empty cluster_size=512
image v3-512-data cluster_size=512 "write -P 0xaa 0 3k" "write -z 8k 2k" "discard 1k 512"
image v2-512-data cluster_size=512,compat=0.10 "write -P 0x55 1k 4k" "write -z 12k 1k"
image v3-4k-data cluster_size=4k "write -P 0x11 0 6k" "write -P 0x22 40k 1k"
image refcount1 cluster_size=512,refcount_bits=1 "write -P 0x33 0 2k"
image refcount64 cluster_size=512,refcount_bits=64 "write -P 0x44 2k 2k"
image lazy-dirty cluster_size=512,lazy_refcounts=on "write -P 0x66 0 1k"
image extended-l2 cluster_size=16k,extended_l2=on "write -P 0x77 2k 1k" "write -z 20k 1k"
image backing-name cluster_size=512,backing_file=/etc/passwd,backing_fmt=raw
# The data file name is recorded as given: make it relative, so the image is
# the same on every run.
(cd "$tmp" && qemu-img create -q -f qcow2 -o cluster_size=512,data_file=ext.raw d.qcow2 64K &&
 qemu-io -f qcow2 -c "write -P 0x12 0 1k" d.qcow2 >/dev/null)
mv "$tmp/d.qcow2" "$out/open/data-file-name.qcow2"
image snapshot cluster_size=512 "write -P 0x13 0 2k"
qemu-img snapshot -c snap1 "$out/open/snapshot.qcow2"
qemu-io -f qcow2 -c "write -P 0x14 512 1k" "$out/open/snapshot.qcow2" >/dev/null
# The lazy image was closed cleanly; mark it dirty (incompatible bit 0) the
# way a crash would leave it.
printf '\x01' | dd of="$out/open/lazy-dirty.qcow2" bs=1 seek=79 conv=notrunc status=none
# Compressed clusters, deflate and zstd.
python3 - "$tmp/raw" <<'PY'
import sys
with open(sys.argv[1], "wb") as f:
    for i in range(64):
        f.write(bytes([(i * 7 + j // 50) & 0xff for j in range(1024)]))
PY
qemu-img convert -q -c -O qcow2 -o cluster_size=4k "$tmp/raw" "$out/open/compressed-deflate.qcow2"
qemu-img convert -q -c -O qcow2 -o cluster_size=4k,compression_type=zstd "$tmp/raw" \
  "$out/open/compressed-zstd.qcow2"
head -c 3000 "$tmp/raw" > "$out/open/raw-not-qcow2"

# --- fuzz_ops: operation programs (geometry bytes, then operations) ----------
python3 - "$out/ops" <<'PY'
import random, sys
out = sys.argv[1]
for n in range(24):
    rng = random.Random(n)
    prog = bytearray([n % 256, rng.randrange(256)])  # geometry, compression
    prog += bytes(rng.randrange(256) for _ in range(2 + 40 * (1 + n % 6)))
    with open(f"{out}/program-{n:02d}", "wb") as f:
        f.write(prog)
PY

# --- fuzz_cache: cache options (2 bytes), memory bound, size, then operations
python3 - "$out/cache" <<'PY'
import random, sys
out = sys.argv[1]
for n in range(16):
    rng = random.Random(1000 + n)
    prog = bytearray([n * 9 % 256, n * 37 % 256, rng.randrange(60), rng.randrange(256), rng.randrange(8)])
    prog += bytes(rng.randrange(256) for _ in range(30 * (1 + n % 5)))
    with open(f"{out}/program-{n:02d}", "wb") as f:
        f.write(prog)
PY

# --- fuzz_codec: mode byte, then streams or plain data -----------------------
python3 - "$out/codec" "$tmp" <<'PY'
import random, sys, zlib, subprocess
out, tmp = sys.argv[1], sys.argv[2]
rng = random.Random(7)
plain = bytes((i // 37) & 0xff for i in range(6000))
def raw_deflate(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -12)
    return c.compress(data) + c.flush()
def zstd(data):
    with open(f"{tmp}/plain", "wb") as f:
        f.write(data)
    return subprocess.run(["zstd", "-q", "-c", f"{tmp}/plain"], check=True, capture_output=True).stdout
def put(name, data):
    with open(f"{out}/{name}", "wb") as f:
        f.write(data)
# mode 0/1: a stream straight into deflate (0) or zstd (1), after the output
# size: a byte for its bit width (9 + b % 13), then the size - 1 below that
OUT4K = bytes([4]) + (4095).to_bytes(2, "little")
put("deflate-stream", bytes([0]) + OUT4K + raw_deflate(plain[:4096]))
put("zstd-stream", bytes([1]) + OUT4K + zstd(plain[:4096]))
put("deflate-truncated", bytes([0]) + OUT4K + raw_deflate(plain[:4096])[:40])
put("zstd-two-frames", bytes([1]) + OUT4K + zstd(plain[:2048]) + zstd(plain[2048:4096]))
put("zstd-bomb", bytes([1]) + OUT4K + zstd(bytes(1 << 20)))
put("deflate-bomb", bytes([0]) + OUT4K + raw_deflate(bytes(1 << 20)))
# mode 2/3: round trips
put("deflate-roundtrip", bytes([2]) + plain[:3000])
put("zstd-roundtrip", bytes([3]) + bytes(rng.randrange(4) for _ in range(3000)))
# mode 4/5: a hostile descriptor in an image, stream appended
for shape in (0x08, 0x09, 0x0c, 0x0d, 0x19, 0x00):
    stream = zstd(plain[:4096]) if shape & 4 else raw_deflate(plain[:4096])
    put(f"descriptor-{shape:02x}", bytes([4, shape]) + rng.randbytes(8) + stream)
PY
du -sh "$out"
