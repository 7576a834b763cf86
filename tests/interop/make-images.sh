#!/usr/bin/env bash
# Makes every kind of qcow2 image qemu-img 7.2 can write, each with the raw
# file it must read back as. Usage: make-images.sh OUTDIR
# Writes OUTDIR/images.tsv: name <TAB> qcow2 path <TAB> reference raw <TAB> backing image or -
# Each image is converted from the reference raw, then changed with qemu-io
# (data, zero writes, discards) while the same changes go to its own raw.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: make-images.sh OUTDIR}
for tool in qemu-img qemu-io python3; do
  command -v "$tool" >/dev/null || { echo "make-images.sh: $tool is missing (apt-get install qemu-utils python3)" >&2; exit 1; }
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
python3 "$here/make-reference-raw.py" "$out/reference.raw"
: >"$out/images.tsv"

# The same edits, applied to an image and to its reference raw.
edits=(-c "write -P 0x5a 5242880 3072" -c "write -z 8388608 262144"
       -c "write -P 0xc3 14680064 65536" -c "write -z -u 9437184 2097152"
       -c "write -z 1048576 4096" -c "write -P 0x11 25161728 512")

# make_image NAME CONVERT-OPTIONS...: convert, edit, and register.
make_image() {
  local name=$1; shift
  local img="$out/$name.qcow2" raw="$out/$name.raw"
  qemu-img convert -f raw -O qcow2 "$@" "$out/reference.raw" "$img"
  cp --sparse=always "$out/reference.raw" "$raw"
  qemu-io -f qcow2 "${edits[@]}" "$img" >/dev/null
  qemu-io -f raw "${edits[@]}" "$raw" >/dev/null
  qemu-img compare -q -f qcow2 -F raw "$img" "$raw"
  printf '%s\t%s\t%s\t-\n' "$name" "$img" "$raw" >>"$out/images.tsv"
}

make_image v2           -o compat=0.10
make_image v3           -o compat=1.1
make_image c512         -o cluster_size=512
make_image c4k          -o cluster_size=4096
make_image c64k         -o cluster_size=65536
make_image c2m          -o cluster_size=2M
make_image rc1          -o refcount_bits=1
make_image rc8          -o refcount_bits=8
make_image rc16         -o refcount_bits=16
make_image rc64         -o refcount_bits=64
make_image c512-rc64    -o cluster_size=512,refcount_bits=64
make_image lazy         -o lazy_refcounts=on
make_image prealloc-metadata -o preallocation=metadata
make_image prealloc-full     -o preallocation=full
make_image zlib         -c -o compression_type=zlib
make_image zstd         -c -o compression_type=zstd
make_image zlib-c4k     -c -o compression_type=zlib,cluster_size=4096
make_image extl2        -o extended_l2=on,cluster_size=64k
make_image extl2-c2m    -o extended_l2=on,cluster_size=2M

# An internal snapshot, then more writes: the active layer must read as the
# new data and the snapshot must survive.
make_image snapshot -o compat=1.1
qemu-img snapshot -c before-edits "$out/snapshot.qcow2"
snap_edits=(-c "write -P 0x77 0 131072" -c "write -P 0x78 10485760 65536" -c "write -z 3145728 4096")
qemu-io -f qcow2 "${snap_edits[@]}" "$out/snapshot.qcow2" >/dev/null
qemu-io -f raw "${snap_edits[@]}" "$out/snapshot.raw" >/dev/null
qemu-img compare -q -f qcow2 -F raw "$out/snapshot.qcow2" "$out/snapshot.raw"

# A backing chain: base (qcow2) <- top (qcow2, some new data and zeroes).
qemu-img convert -f raw -O qcow2 "$out/reference.raw" "$out/backing-base.qcow2"
qemu-img create -q -f qcow2 -b backing-base.qcow2 -F qcow2 "$out/backing-top.qcow2" "$(stat -c %s "$out/reference.raw")"
cp --sparse=always "$out/reference.raw" "$out/backing.raw"
chain_edits=(-c "write -P 0x42 65536 131072" -c "write -z 8388608 65536" -c "write -P 0x43 13631488 4096")
qemu-io -f qcow2 "${chain_edits[@]}" "$out/backing-top.qcow2" >/dev/null
qemu-io -f raw "${chain_edits[@]}" "$out/backing.raw" >/dev/null
qemu-img compare -q -f qcow2 -F raw "$out/backing-top.qcow2" "$out/backing.raw"
printf '%s\t%s\t%s\t%s\n' backing "$out/backing-top.qcow2" "$out/backing.raw" "$out/backing-base.qcow2" >>"$out/images.tsv"

echo "make-images.sh: $(wc -l <"$out/images.tsv") images in $out"
