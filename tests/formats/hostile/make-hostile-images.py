#!/usr/bin/env python3
"""Writes one hostile image per way a vpc (VHD), vdi, vmdk or qcow (v1) file can lie, plus a
valid control image of each, and expected.tsv saying what qcowkit must do:

  name <TAB> format <TAB> expectation <TAB> what

expectation is "ok" (opens and converts) or "refuse:TEXT" (opening fails
with a message containing TEXT, the problem's name). Pure Python,
deterministic: the images are committed and a test checks that this script
still makes exactly them.

  make-hostile-images.py OUTDIR
"""
import os
import struct
import sys
import zlib

# ---- VHD (big-endian) -------------------------------------------------------
VHD_BLOCK = 4096        # small blocks keep the images small
VHD_SIZE = 64 * 1024    # virtual size, by the footer (creator "qem2")


def vhd_checksum(data, at):
    return (~sum(b for i, b in enumerate(data) if not at <= i < at + 4)) & 0xFFFFFFFF


def vhd_footer(disk_type=3, data_offset=512, size=VHD_SIZE, creator=b"qem2", chs=(65535, 16, 255),
               bad_checksum=False):
    f = bytearray(512)
    f[0:8] = b"conectix"
    struct.pack_into(">IIQI", f, 8, 2, 0x10000, data_offset, 0)
    f[28:32] = creator
    struct.pack_into(">I", f, 32, 0x00050003)
    f[36:40] = b"Wi2k"
    struct.pack_into(">QQHBBI", f, 40, size, size, chs[0], chs[1], chs[2], disk_type)
    f[68:84] = bytes(range(1, 17))
    struct.pack_into(">I", f, 64, (vhd_checksum(f, 64) + (1 if bad_checksum else 0)) & 0xFFFFFFFF)
    return bytes(f)


def vhd_header(table_offset=1536, entries=VHD_SIZE // VHD_BLOCK, block=VHD_BLOCK, bad_checksum=False,
               locator=None, parent_name=b""):
    """locator: (platform code, data length, data offset) of parent locator 0."""
    h = bytearray(1024)
    h[0:8] = b"cxsparse"
    struct.pack_into(">QQIII", h, 8, 0xFFFFFFFFFFFFFFFF, table_offset, 0x10000, entries, block)
    h[64:64 + len(parent_name)] = parent_name
    if locator:
        struct.pack_into(">4sIIIQ", h, 576, locator[0], 1, locator[1], 0, locator[2])
    struct.pack_into(">I", h, 36, (vhd_checksum(h, 36) + (1 if bad_checksum else 0)) & 0xFFFFFFFF)
    return bytes(h)


def vhd_dynamic(footer=None, header=None, bat=None, blocks=1):
    """Footer copy, sparse header, BAT (block 0 allocated), blocks, footer."""
    footer = footer or vhd_footer()
    header = header or vhd_header()
    entries = VHD_SIZE // VHD_BLOCK
    first = 2048 // 512  # the first block's sector, after the BAT
    if bat is None:
        bat = [first + i * ((512 + VHD_BLOCK) // 512) for i in range(blocks)]
        bat += [0xFFFFFFFF] * (entries - blocks)
    table = b"".join(struct.pack(">I", e) for e in bat).ljust(512, b"\xff")
    data = b""
    for i in range(blocks):
        data += b"\xff" * 512 + bytes(((i * 7 + k) % 251) + 1 for k in range(VHD_BLOCK))
    return footer + header + table + data + footer


def vhd_fixed(footer=None, size=VHD_SIZE):
    data = bytes((k % 253) + 1 for k in range(size))
    return data + (footer or vhd_footer(disk_type=2, data_offset=0xFFFFFFFFFFFFFFFF, size=size))


# ---- VDI (little-endian) ----------------------------------------------------
MIB = 1 << 20


def vdi(blocks=2, disk_size=2 * MIB, bmap=None, offset_bmap=512, offset_data=1024, version=0x10001,
        block_size=MIB, image_type=1, parent=False, sector_size=512, data=b""):
    h = bytearray(512)
    h[0:35] = b"<<< QEMU VM Virtual Disk Image >>>\n"
    struct.pack_into("<IIII", h, 64, 0xBEDA107F, version, 0x180, image_type)
    struct.pack_into("<II", h, 340, offset_bmap, offset_data)
    struct.pack_into("<I", h, 360, sector_size)
    struct.pack_into("<QIIII", h, 368, disk_size, block_size, 0, blocks, 0)
    h[392:408] = bytes(range(1, 17))
    if parent:
        h[440:456] = bytes(range(17, 33))
    if bmap is None:
        bmap = [0xFFFFFFFF] * min(blocks, 128)
    table = b"".join(struct.pack("<I", e) for e in bmap).ljust(512, b"\0")
    return bytes(h) + table + data


# ---- VMDK (little-endian) ---------------------------------------------------
GRAIN = 8  # sectors: 4 KiB grains keep the images small
DESCRIPTOR = (b'# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n'
              b'createType="%s"\n\n# Extent description\nRW 128 SPARSE "x.vmdk"\n')


def vmdk(capacity=128, grain=GRAIN, version=1, flags=3, gt_entries=512, desc_offset=1, desc_size=2,
         gd_offset=3, compress=0, check=b"\n \r\n", descriptor=None, gd=None, gt=None, grains=1,
         stream=False, marker_size=None, grain_data=None, tail=b"", rgd_offset=0):
    h = bytearray(512)
    struct.pack_into("<IIIQQQQIQQQ", h, 0, 0x564D444B, version, flags, capacity, grain,
                     desc_offset, desc_size, gt_entries, rgd_offset, gd_offset, 8)
    h[73:77] = check
    struct.pack_into("<H", h, 77, compress)
    if descriptor is None:
        descriptor = DESCRIPTOR % (b"streamOptimized" if stream else b"monolithicSparse")
    desc = descriptor.ljust(1024, b"\0")[:1024]
    table = gd if gd is not None else [4]
    gd_bytes = b"".join(struct.pack("<I", e) for e in table).ljust(512, b"\0")
    data = b""
    entries = []
    for i in range(grains):
        payload = bytes(((i * 5 + k) % 251) + 1 for k in range(grain * 512))
        sector = 8 + len(data) // 512
        entries.append(sector)
        if stream:
            packed = grain_data if grain_data is not None else zlib.compress(payload)
            size = marker_size if marker_size is not None else len(packed)
            record = struct.pack("<QI", i * grain, size) + packed
            data += record.ljust((len(record) + 511) // 512 * 512, b"\0")
        else:
            data += payload
    gt_entries_list = gt if gt is not None else entries + [0] * (512 - len(entries))
    gt_bytes = b"".join(struct.pack("<I", e) for e in gt_entries_list).ljust(2048, b"\0")
    return bytes(h) + desc + gd_bytes + gt_bytes + data + tail


STREAM = dict(version=3, flags=0x30003, compress=1, stream=True)


# ---- qcow version 1 (big-endian) ---------------------------------------------
def raw_deflate(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -12)
    return c.compress(data) + c.flush()


def qcow1(size=64 * 1024, cluster_bits=12, l2_bits=9, l1_offset=48, l2=None, backing=0, crypt=0,
          l1=None, compressed=False, packed=None):
    """Header, L1 (one entry) at 48, an L2 table at 512, one data cluster at 4608."""
    h = struct.pack(">IIQIIQBBHIQ", 0x514649FB, 1, backing, 0, 0, size, cluster_bits, l2_bits, 0,
                    crypt, l1_offset)
    cluster = 1 << min(cluster_bits, 12)  # the data written; the header may claim more
    l1_entries = l1 if l1 is not None else [512]
    body = h + b"".join(struct.pack(">Q", e) for e in l1_entries)
    body = body.ljust(512, b"\0")
    table_bytes = 8 << min(l2_bits, 9)  # the real table; the header may claim more
    data_at = 512 + table_bytes
    if compressed or packed is not None:
        if packed is None:
            packed = raw_deflate(bytes((k % 7) + 1 for k in range(cluster)))
        first = (1 << 63) | (len(packed) << (63 - cluster_bits)) | data_at
        data = packed
    else:
        first = data_at
        data = bytes((k % 251) + 1 for k in range(cluster))
    entries = l2 if l2 is not None else [first]
    table = b"".join(struct.pack(">Q", e) for e in entries).ljust(table_bytes, b"\0")
    return body + table + data

IMAGES = [
    # VHD: the valid controls.
    ("vhd-valid", "vpc", "ok", "a dynamic VHD with one 4 KiB block", vhd_dynamic()),
    ("vhd-fixed-valid", "vpc", "ok", "a fixed VHD", vhd_fixed()),
    # Checksums.
    ("vhd-footer-checksum", "vpc", "refuse:bad checksum", "footer checksum off by one",
     vhd_dynamic(footer=vhd_footer(bad_checksum=True))),
    ("vhd-header-checksum", "vpc", "refuse:sparse header: bad checksum", "sparse header checksum off by one",
     vhd_dynamic(header=vhd_header(bad_checksum=True))),
    ("vhd-fixed-checksum", "vpc", "refuse:bad checksum", "fixed footer checksum off by one",
     vhd_fixed(footer=vhd_footer(disk_type=2, data_offset=0xFFFFFFFFFFFFFFFF, bad_checksum=True))),
    # Tables.
    ("vhd-bat-past-eof", "vpc", "refuse:BAT at offset", "the BAT starts past the end of the file",
     vhd_dynamic(header=vhd_header(table_offset=1 << 40))),
    ("vhd-huge-bat", "vpc", "refuse:over the 64 MiB limit", "a BAT of 2^32-1 entries",
     vhd_dynamic(header=vhd_header(entries=0xFFFFFFFF))),
    ("vhd-bat-too-small", "vpc", "refuse:too small", "fewer BAT entries than the disk has blocks",
     vhd_dynamic(header=vhd_header(entries=3))),
    ("vhd-block-past-eof", "vpc", "refuse:points past the end", "a BAT entry beyond the file",
     vhd_dynamic(bat=[4, 0x7FFFFFFF] + [0xFFFFFFFF] * 14)),
    ("vhd-block-on-headers", "vpc", "refuse:overlaps the headers", "a block at sector 0",
     vhd_dynamic(bat=[0] + [0xFFFFFFFF] * 15)),
    ("vhd-blocks-overlap", "vpc", "refuse:overlap in the file", "two BAT entries naming one block",
     vhd_dynamic(bat=[4, 4] + [0xFFFFFFFF] * 14)),
    ("vhd-block-size", "vpc", "refuse:not a power of two", "a block size of 1000",
     vhd_dynamic(header=vhd_header(block=1000))),
    ("vhd-header-past-eof", "vpc", "refuse:sparse header offset", "the sparse header past the end",
     vhd_dynamic(footer=vhd_footer(data_offset=1 << 50))),
    # Sizes and kinds.
    ("vhd-too-large", "vpc", "refuse:2040 GiB", "a 3 TiB disk",
     vhd_dynamic(footer=vhd_footer(size=3 << 40))),
    ("vhd-fixed-short", "vpc", "refuse:in a file of only", "a fixed footer claiming 1 GiB",
     vhd_fixed(footer=vhd_footer(disk_type=2, data_offset=0xFFFFFFFFFFFFFFFF, size=1 << 30))),
    ("vhd-differencing", "vpc", "refuse:differencing VHD names no parent",
     "a differencing disk naming no parent", vhd_dynamic(footer=vhd_footer(disk_type=4))),
    ("vhd-differencing-locator-past-eof", "vpc", "refuse:parent locator",
     "a differencing disk whose W2ru locator lies past the end",
     vhd_dynamic(footer=vhd_footer(disk_type=4), header=vhd_header(locator=(b"W2ru", 24, 1 << 40)))),
    ("vhd-differencing-locator-huge", "vpc", "refuse:parent locator",
     "a differencing disk whose W2ku locator is 4 GiB long",
     vhd_dynamic(footer=vhd_footer(disk_type=4), header=vhd_header(locator=(b"W2ku", 0xFFFFFFFF, 2048)))),
    ("vhd-differencing-parent-json", "vpc", "refuse:which is not opened",
     "a differencing disk whose parent is json:{...}",
     vhd_dynamic(footer=vhd_footer(disk_type=4),
                 header=vhd_header(parent_name='json:{"file":"/etc/passwd"}'.encode("utf-16-be")))),
    ("vhd-type-unknown", "vpc", "refuse:disk type", "disk type 7",
     vhd_dynamic(footer=vhd_footer(disk_type=7))),
    ("vhd-truncated", "vpc", "refuse:too small for a VHD footer", "a 100-byte file", vhd_footer()[:100]),
    # VDI: the valid control (empty: a written block would make it 1 MiB).
    ("vdi-valid", "vdi", "ok", "a dynamic VDI with no block written", vdi()),
    ("vdi-bmap-past-eof", "vdi", "refuse:block map at offset", "the block map past the end",
     vdi(offset_bmap=1 << 30, offset_data=(1 << 30) + 512)),
    ("vdi-huge-blocks", "vdi", "refuse:over the limit", "2^32-1 blocks",
     vdi(blocks=0xFFFFFFFF)),
    ("vdi-block-past-eof", "vdi", "refuse:points past the end", "a block map entry beyond the file",
     vdi(bmap=[1, 0xFFFFFFFF])),
    ("vdi-entry-out-of-range", "vdi", "refuse:past the 2 the image has", "a data block index 5 of 2",
     vdi(bmap=[5, 0xFFFFFFFF])),
    ("vdi-shared-block", "vdi", "refuse:named by two block map entries", "two entries naming one block",
     vdi(bmap=[0, 0], data=bytes(MIB))),
    ("vdi-disk-too-large", "vdi", "refuse:needs more than its", "a disk larger than its blocks",
     vdi(disk_size=3 * MIB)),
    ("vdi-version", "vdi", "refuse:VDI version", "version 2.0", vdi(version=0x20000)),
    ("vdi-block-size", "vdi", "refuse:VDI block size", "4 KiB blocks", vdi(block_size=4096)),
    ("vdi-differencing", "vdi", "refuse:differencing", "a parent UUID", vdi(parent=True)),
    ("vdi-type-unknown", "vdi", "refuse:image type", "an undo image", vdi(image_type=3)),
    ("vdi-data-on-bmap", "vdi", "refuse:overlaps the block map", "the data area over the block map",
     vdi(offset_data=512)),
    ("vdi-sector-size", "vdi", "refuse:sector size", "4096-byte sectors", vdi(sector_size=4096)),
    ("vdi-odd-size", "vdi", "refuse:whole number of sectors", "a disk size of 1000000 bytes",
     vdi(disk_size=1000000)),
    ("vdi-truncated", "vdi", "refuse:too small for a VDI header", "a header cut short", vdi()[:300]),
    # VMDK: the valid controls.
    ("vmdk-valid", "vmdk", "ok", "a monolithicSparse extent with one 4 KiB grain", vmdk()),
    ("vmdk-stream-valid", "vmdk", "ok", "a streamOptimized extent with two grains", vmdk(grains=2, **STREAM)),
    # Descriptors.
    ("vmdk-descriptor-loop", "vmdk", "refuse:the image itself", "a descriptor file naming itself as its extent",
     b'# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\n'
     b'RW 128 FLAT "vmdk-descriptor-loop.vmdk" 0\n'),
    ("vmdk-descriptor-garbage", "vmdk", "refuse:no createType", "a descriptor of random bytes",
     vmdk(descriptor=bytes((k * 37 + 11) % 256 or 1 for k in range(1024)))),
    ("vmdk-descriptor-past-eof", "vmdk", "refuse:embedded descriptor", "the descriptor past the end",
     vmdk(desc_offset=1 << 40)),
    ("vmdk-descriptor-huge", "vmdk", "refuse:over 1 MiB", "a 1 GiB descriptor", vmdk(desc_size=1 << 21)),
    ("vmdk-parent", "vmdk", "refuse:differencing", "a parent named in the descriptor",
     vmdk(descriptor=DESCRIPTOR % b"monolithicSparse" + b'parentFileNameHint="base.vmdk"\n')),
    ("vmdk-flat-type", "vmdk", "refuse:create type", "an embedded descriptor saying monolithicFlat",
     vmdk(descriptor=DESCRIPTOR % b"monolithicFlat")),
    # Tables.
    ("vmdk-gd-past-eof", "vmdk", "refuse:grain directory", "the grain directory past the end",
     vmdk(gd_offset=1 << 30)),
    ("vmdk-gt-past-eof", "vmdk", "refuse:grain table 0", "a grain table past the end", vmdk(gd=[1 << 30])),
    ("vmdk-grain-past-eof", "vmdk", "refuse:points past the end", "a grain past the end",
     vmdk(gt=[8, 1 << 30])),
    ("vmdk-grain-over-table", "vmdk", "refuse:overlaps grain table 0",
     "a grain entry naming the grain table itself (a write there would rewrite the table)", vmdk(gt=[4])),
    ("vmdk-grains-overlap", "vmdk", "refuse:overlap in the file", "two grains sharing sectors",
     vmdk(grains=2, gt=[8, 12])),
    ("vmdk-tables-overlap", "vmdk", "refuse:overlap in the file", "two grain tables at one sector",
     vmdk(capacity=8192, gd=[4, 4])),
    ("vmdk-redundant-directory-overlap", "vmdk", "refuse:overlap in the file",
     "the redundant grain directory at the grain directory's sector (its table updates would land there)",
     vmdk(rgd_offset=3)),
    ("vmdk-huge-capacity", "vmdk", "refuse:over the 64 MiB limit", "2^39 sectors of 4 KiB grains",
     vmdk(capacity=1 << 39)),
    ("vmdk-grain-size", "vmdk", "refuse:not a power of two", "grains of 3 sectors", vmdk(grain=3)),
    ("vmdk-gt-entries", "vmdk", "refuse:not supported (512 are)", "1024 entries per grain table",
     vmdk(gt_entries=1024)),
    ("vmdk-version", "vmdk", "refuse:VMDK version", "version 4", vmdk(version=4)),
    ("vmdk-newline", "vmdk", "refuse:newline check bytes", "damaged by a text-mode transfer",
     vmdk(check=b"\n \n\n")),
    ("vmdk-footer-missing", "vmdk", "refuse:footer", "the directory 'at the end' but no footer",
     vmdk(gd_offset=0xFFFFFFFFFFFFFFFF, **STREAM)),
    # Compressed grains.
    ("vmdk-stream-corrupt", "vmdk", "refuse:corrupt", "a grain of bytes that are not zlib",
     vmdk(grain_data=bytes(range(1, 200)), **STREAM)),
    ("vmdk-stream-marker-huge", "vmdk", "refuse:does not fit the file", "a marker claiming 2 GiB of grain",
     vmdk(marker_size=1 << 31, **STREAM)),
    ("vmdk-stream-bomb", "vmdk", "refuse:more than the expected", "a grain inflating past its 4 KiB",
     vmdk(grain_data=zlib.compress(bytes(1 << 20)), **STREAM)),
    ("vmdk-compress-unknown", "vmdk", "refuse:compression algorithm", "compression algorithm 7",
     vmdk(version=3, flags=0x30003, compress=7, stream=True)),
    # qcow version 1: the valid controls.
    ("qcow1-valid", "qcow", "ok", "one 4 KiB cluster", qcow1()),
    ("qcow1-compressed-valid", "qcow", "ok", "one compressed cluster", qcow1(compressed=True)),
    ("qcow1-l1-past-eof", "qcow", "refuse:L1 table at offset", "the L1 table past the end",
     qcow1(l1_offset=1 << 40)),
    ("qcow1-l2-past-eof", "qcow", "refuse:L2 table 0", "an L2 table past the end", qcow1(l1=[1 << 40])),
    ("qcow1-cluster-past-eof", "qcow", "refuse:points past the end", "a cluster past the end",
     qcow1(l2=[1 << 40])),
    ("qcow1-compressed-past-eof", "qcow", "refuse:reaches past the end", "a compressed cluster past the end",
     qcow1(l2=[(1 << 63) | (100 << 51) | (1 << 40)])),
    ("qcow1-huge-size", "qcow", "refuse:out of range", "a size of 2^60 bytes", qcow1(size=1 << 60)),
    ("qcow1-huge-tables", "qcow", "refuse:over the 64 MiB limit", "512-byte clusters over 2^40 bytes",
     qcow1(size=1 << 40, cluster_bits=9)),
    ("qcow1-cluster-bits", "qcow", "refuse:cluster bits", "cluster bits of 30", qcow1(cluster_bits=30)),
    ("qcow1-l2-bits", "qcow", "refuse:L2 bits", "L2 bits of 40", qcow1(l2_bits=40)),
    ("qcow1-backing", "qcow", "refuse:backing file", "a backing file", qcow1(backing=200)),
    ("qcow1-encrypted", "qcow", "refuse:encrypted", "AES encryption", qcow1(crypt=1)),
    ("qcow1-compressed-bomb", "qcow", "refuse:more than the expected", "a cluster inflating past 4 KiB",
     qcow1(packed=raw_deflate(bytes(1 << 16)))),
]


def main(out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "expected.tsv"), "w") as tsv:
        for name, fmt, expect, what, data in IMAGES:
            with open(os.path.join(out, "%s.%s" % (name, fmt)), "wb") as f:
                f.write(data)
            tsv.write("%s\t%s\t%s\t%s\n" % (name, fmt, expect, what))


if __name__ == "__main__":
    main(sys.argv[1])
