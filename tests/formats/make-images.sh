#!/usr/bin/env bash
# Makes vpc (VHD), vdi, vmdk, vhdx and qcow (version 1) images with qemu-img, each with the raw file
# qemu-img itself converts it to: what qcowkit must read back byte for byte.
# Usage: make-images.sh OUTDIR
# Writes OUTDIR/images.tsv: name <TAB> format <TAB> image <TAB> qemu-img's raw
# and leaves OUTDIR/reference.raw and OUTDIR/odd.raw, the sources the write
# tests convert.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: make-images.sh OUTDIR}
for tool in qemu-img qemu-io python3; do
  command -v "$tool" >/dev/null || { echo "make-images.sh: $tool is missing (apt-get install qemu-utils python3)" >&2; exit 1; }
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out"/*.vpc "$out"/*.vdi "$out"/*.vmdk "$out"/*.qcow "$out"/*.vhdx "$out"/*.raw
# Data, explicit zeroes, holes, odd offsets, a tail inside a block.
python3 "$here/../interop/make-reference-raw.py" "$out/reference.raw"
# A size that is not a whole number of sectors (qemu-img rounds it up).
python3 - "$out/odd.raw" <<'PY'
import random, sys
rng = random.Random(7)
with open(sys.argv[1], "wb") as f:
    f.truncate(3 * 1048576 + 7 * 512 + 100)
    f.seek(4096); f.write(bytes(rng.getrandbits(8) | 1 for _ in range(70000)))
    f.seek(3 * 1048576); f.write(bytes(rng.getrandbits(8) | 1 for _ in range(7 * 512 + 100)))
PY
: >"$out/images.tsv"

# Edits on top of the conversion: data in a hole, zeroes over data, a
# write straddling two blocks.
edits=(-c "write -P 0x5a 13631488 3072" -c "write -z 8388608 262144"
       -c "write -P 0xc3 2096640 1024" -c "write -z 0 4096")

# make NAME FORMAT SOURCE EDIT(yes|no) QEMU-IMG-OPTIONS...
make() {
  local name=$1 fmt=$2 src=$3 edit=$4; shift 4
  local img="$out/$name.$fmt"
  qemu-img convert -f raw -O "$fmt" "$@" "$src" "$img"
  if [[ $edit == yes ]]; then qemu-io -f "$fmt" "${edits[@]}" "$img" >/dev/null; fi
  qemu-img convert -f "$fmt" -O raw "$img" "$out/$name.expected.raw"
  printf '%s\t%s\t%s\t%s\n' "$name" "$fmt" "$img" "$out/$name.expected.raw" >>"$out/images.tsv"
}
# An image qemu-img created and never wrote: every block unallocated.
make_empty() {
  local name=$1 fmt=$2 size=$3; shift 3
  local img="$out/$name.$fmt"
  qemu-img create -q -f "$fmt" "$@" "$img" "$size"
  qemu-img convert -f "$fmt" -O raw "$img" "$out/$name.expected.raw"
  printf '%s\t%s\t%s\t%s\n' "$name" "$fmt" "$img" "$out/$name.expected.raw" >>"$out/images.tsv"
}

make vpc-dynamic       vpc "$out/reference.raw" yes -o subformat=dynamic
make vpc-fixed         vpc "$out/reference.raw" yes -o subformat=fixed
make vpc-force-size    vpc "$out/reference.raw" yes -o subformat=dynamic,force_size=on
make vpc-fixed-force   vpc "$out/reference.raw" no  -o subformat=fixed,force_size=on
make vpc-odd           vpc "$out/odd.raw"       no  -o subformat=dynamic
make vpc-fixed-odd     vpc "$out/odd.raw"       no  -o subformat=fixed
make_empty vpc-empty   vpc 100M
make vdi-dynamic       vdi "$out/reference.raw" yes
make vdi-static        vdi "$out/reference.raw" yes -o static=on
make vdi-odd           vdi "$out/odd.raw"       no
make vdi-static-odd    vdi "$out/odd.raw"       no  -o static=on
make_empty vdi-empty   vdi 100M
make vmdk-sparse       vmdk "$out/reference.raw" yes -o subformat=monolithicSparse
make vmdk-stream       vmdk "$out/reference.raw" no  -o subformat=streamOptimized
make vmdk-odd          vmdk "$out/odd.raw"       no
make vmdk-stream-odd   vmdk "$out/odd.raw"       no  -o subformat=streamOptimized
make_empty vmdk-empty  vmdk 100M
# Descriptor files with their extents in separate files (read only).
make vmdk-flat         vmdk "$out/reference.raw" yes -o subformat=monolithicFlat
make vmdk-2gb-sparse   vmdk "$out/reference.raw" yes -o subformat=twoGbMaxExtentSparse
make vmdk-2gb-flat     vmdk "$out/odd.raw"       no  -o subformat=twoGbMaxExtentFlat
# Two extents without 2 GiB of data (a real twoGbMaxExtent* disk needs
# more than 2 GiB for a second one): a descriptor naming two small extent
# files qemu-img made, then writes through it straddling their boundary.
for kind in Sparse Flat; do
  for half in a b; do
    qemu-img create -q -f vmdk -o subformat=twoGbMaxExtent$kind "$out/two-$kind-$half.vmdk" 3M
  done
  letter=$(tr 'SF' 'sf' <<<"${kind:0:1}")
  img="$out/vmdk-two-extents-$kind.vmdk"
  offset=""; [[ $kind == Flat ]] && offset=" 0"
  printf '# Disk DescriptorFile\nversion=1\nCID=1234abcd\nparentCID=ffffffff\ncreateType="twoGbMaxExtent%s"\n\n# Extent description\nRW 6144 %s "two-%s-a-%s001.vmdk"%s\nRW 6144 %s "two-%s-b-%s001.vmdk"%s\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = "ide"\n' \
    "$kind" "${kind^^}" "$kind" "$letter" "$offset" "${kind^^}" "$kind" "$letter" "$offset" >"$img"
  qemu-io -f vmdk -c "write -P 0x71 0 70144" -c "write -P 0x72 3112960 65536" \
          -c "write -z 3145216 1024" -c "write -P 0x73 6283264 4096" "$img" >/dev/null
  qemu-img convert -f vmdk -O raw "$img" "$out/vmdk-two-extents-$kind.expected.raw"
  printf '%s\t%s\t%s\t%s\n' "vmdk-two-extents-$kind" vmdk "$img" \
         "$out/vmdk-two-extents-$kind.expected.raw" >>"$out/images.tsv"
done
make qcow-plain        qcow "$out/reference.raw" yes
# Compressed qcow clusters: qemu-img 7.2 compresses only single-cluster
# writes into qcow (convert -c fails), so qemu-io writes them one by one.
qemu-img create -q -f qcow "$out/qcow-compressed.qcow" 3M
qemu-io -f qcow -c "write -c -P 0x33 0 4k" -c "write -c -P 0x34 4k 4k" \
        -c "write -c -P 0x35 1M 4k" -c "write -P 0x36 2M 8k" "$out/qcow-compressed.qcow" >/dev/null
qemu-img convert -f qcow -O raw "$out/qcow-compressed.qcow" "$out/qcow-compressed.expected.raw"
printf '%s\t%s\t%s\t%s\n' qcow-compressed qcow "$out/qcow-compressed.qcow" \
       "$out/qcow-compressed.expected.raw" >>"$out/images.tsv"
make qcow-odd          qcow "$out/odd.raw"       no
make_empty qcow-empty  qcow 100M
# vhdx: qemu-img's default block size for small disks (8 MiB), the smallest
# and largest block sizes, fixed with blocks in place (block_state_zero=off)
# and with ZERO blocks (qemu-img's default), an odd size.
make vhdx-dynamic      vhdx "$out/reference.raw" yes
make vhdx-1m           vhdx "$out/reference.raw" yes -o block_size=1M
make vhdx-256m         vhdx "$out/reference.raw" yes -o block_size=256M
make vhdx-fixed        vhdx "$out/reference.raw" yes -o subformat=fixed,block_state_zero=off
make vhdx-fixed-zero   vhdx "$out/reference.raw" no  -o subformat=fixed
make vhdx-odd          vhdx "$out/odd.raw"       no  -o block_size=1M,log_size=2M
make_empty vhdx-empty  vhdx 100M
# A vhdx with a log to replay (dirty.tsv: name, image, qemu-img's raw after
# its own replay by check -r all, which needs a writable copy).
qemu-img create -q -f vhdx -o block_size=1M,block_state_zero=off "$out/vhdx-dirty.vhdx" 8M
# qemu-io dies by SIGKILL here on purpose; make-vhdx-dirty.py fails if it wrote no log.
(qemu-io -f vhdx -t unsafe -c "write -P 0x11 0 4k" -c "write -P 0x22 3M 64k" -c "sigraise 9" \
         "$out/vhdx-dirty.vhdx" >/dev/null 2>&1 || true) 2>/dev/null
python3 "$here/make-vhdx-dirty.py" "$out/vhdx-dirty.vhdx"
cp "$out/vhdx-dirty.vhdx" "$out/vhdx-dirty-replayed.vhdx"
qemu-img check -q -r all -f vhdx "$out/vhdx-dirty-replayed.vhdx" >/dev/null
qemu-img convert -f vhdx -O raw "$out/vhdx-dirty-replayed.vhdx" "$out/vhdx-dirty.expected.raw"
printf '%s\t%s\t%s\n' vhdx-dirty "$out/vhdx-dirty.vhdx" "$out/vhdx-dirty.expected.raw" >"$out/dirty.tsv"
echo "make-images.sh: $(wc -l <"$out/images.tsv") images in $out"
