#!/usr/bin/env python3
"""Writes one hostile qcow2 image per class of the "Hostile input" list in
shared/docs/qcow2-notes.md, plus expected.tsv saying what the core must do
with each. Pure Python, deterministic: the images are committed and a test
checks that this script still makes exactly them.

  make-hostile-images.py OUTDIR

Every image starts as a small valid one (512-byte clusters: header, refcount
table, refcount block, L1, L2, one data cluster; 32 KiB virtual) and then
breaks one thing. Expectations (any of several, separated by '|'):
  refuse      opening fails, read-only and read-write, with a message
  refuse-rw   opens read-only, read-write is refused with a message
  corrupt     opens; check reports corruption (or a read fails cleanly)
  read-error  opens; reading some range fails with a message
  ok          opens and reads; nothing is followed outside the image
"""
import os
import struct
import sys
import zlib

MAGIC = 0x514649FB
COPIED = 1 << 63
COMPRESSED = 1 << 62


class Image:
    """A minimal valid v3 image, laid out cluster by cluster."""

    def __init__(self, cluster_bits=9, size=32 << 10, clusters_of_data=1, version=3,
                 compression_type=0):
        self.cb = cluster_bits
        self.cs = 1 << cluster_bits
        self.version = version
        self.size = size
        self.compression_type = compression_type
        self.header_length = 112 if version == 3 else 72
        self.incompatible = 8 if compression_type else 0
        self.compatible = 0
        self.autoclear = 0
        self.refcount_order = 4
        self.crypt = 0
        self.backing = (0, 0)
        self.extensions = []  # (type, bytes)
        self.nb_snapshots, self.snapshots_offset = 0, 0
        # Layout by cluster index.
        self.reftable_at = 1 * self.cs
        self.refblock_at = 2 * self.cs
        self.l1_at = 3 * self.cs
        self.l2_at = 4 * self.cs
        self.data_at = 5 * self.cs
        self.n_clusters = 5 + clusters_of_data
        self.refcount_table_clusters = 1
        l2_entries = self.cs // 8
        self.l1_size = max(1, -(-size // (l2_entries * self.cs)))
        self.l1 = [self.l2_at | COPIED] + [0] * (self.l1_size - 1)
        self.l2 = [0] * l2_entries
        for i in range(clusters_of_data):
            self.l2[i] = (self.data_at + i * self.cs) | COPIED
        self.reftable = [self.refblock_at]
        self.refcounts = [1] * self.n_clusters
        self.data = bytes((i * 3 + 1) & 0xFF for i in range(self.cs * clusters_of_data))
        self.tail = b""  # appended after the last cluster
        # Where the tables really are; the header fields above may lie.
        self.real_reftable, self.real_l1 = self.reftable_at, self.l1_at

    def header(self):
        h = struct.pack(">IIQIIQIIQQIIQ", MAGIC, self.version, self.backing[0], self.backing[1],
                        self.cb, self.size, self.crypt, self.l1_size, self.l1_at,
                        self.reftable_at, self.refcount_table_clusters, self.nb_snapshots,
                        self.snapshots_offset)
        if self.version == 3:
            h += struct.pack(">QQQII", self.incompatible, self.compatible, self.autoclear,
                             self.refcount_order, self.header_length)
            h += bytes([self.compression_type]) + bytes(7)
        h = h[:self.header_length] if self.header_length <= len(h) else h
        h = h.ljust(self.header_length, b"\0")
        for ext in self.extensions:
            ext_type, payload = ext[0], ext[1]
            declared = ext[2] if len(ext) > 2 else len(payload)  # a lie, when given
            h += struct.pack(">II", ext_type, declared) + payload
            h += bytes((8 - len(payload) % 8) % 8)
        h += bytes(8)  # end of extensions
        return h

    def build(self):
        out = bytearray(self.n_clusters * self.cs)
        h = self.header()  # may be longer than a cluster: that is the point then
        out[0:len(h)] = h
        for i, e in enumerate(self.reftable):
            struct.pack_into(">Q", out, self.real_reftable + 8 * i, e)
        for i, r in enumerate(self.refcounts):
            struct.pack_into(">H", out, self.refblock_at + 2 * i, r)
        for i, e in enumerate(self.l1):
            struct.pack_into(">Q", out, self.real_l1 + 8 * i, e)
        for i, e in enumerate(self.l2):
            struct.pack_into(">Q", out, self.l2_at + 8 * i, e)
        out[self.data_at:self.data_at + len(self.data)] = self.data
        return bytes(out) + self.tail

    def count_tail(self):
        """Gives the clusters the tail covers a refcount, as a writer would."""
        self.refcounts += [1] * (-(-len(self.tail) // self.cs))

    def put_backing_name(self, name):
        # The name goes after the header and its extensions, inside cluster 0.
        self.backing = (len(self.header()), len(name))
        self._backing_name = name

    def build_with_backing(self):
        out = bytearray(self.build())
        off, n = self.backing
        out[off:off + n] = self._backing_name
        return bytes(out)


def raw_deflate(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -12)
    return c.compress(data) + c.flush()


def zstd_rle_frame(total, byte=0):
    """A zstd frame of RLE blocks, made by hand: `total` bytes of `byte` from a
    few bytes of input (the decoder has to stop at one cluster)."""
    frame = struct.pack("<I", 0xFD2FB528) + bytes([0x00, 0x38])  # no content size, 128 KiB window
    while total > 0:
        n = min(total, 128 << 10)
        total -= n
        last = 1 if total == 0 else 0
        header = (n << 3) | (1 << 1) | last
        frame += header.to_bytes(3, "little") + bytes([byte])
    return frame


def compressed_entry(img, byte_offset, sectors):
    x = 62 - (img.cb - 8)
    return COMPRESSED | (sectors << x) | byte_offset


def cases():
    """Yields (name, expectation, what it breaks, bytes)."""
    def plain(mutate, **kw):
        img = Image(**kw)
        mutate(img)
        return img.build()

    yield "valid", "ok", "the unbroken base image (a control)", Image().build()
    # size * count overflows
    yield "l1-size-overflow", "refuse", "l1_size 0xffffffff: l1_size * 8 overflows 32 bits", \
        plain(lambda i: setattr(i, "l1_size", 0xFFFFFFFF))
    yield "refcount-table-clusters-overflow", "refuse", "refcount_table_clusters 0xffffffff", \
        plain(lambda i: setattr(i, "refcount_table_clusters", 0xFFFFFFFF))
    yield "snapshot-count-overflow", "refuse", "nb_snapshots 0xffffffff at an offset near 2^63", \
        plain(lambda i: (setattr(i, "nb_snapshots", 0xFFFFFFFF), setattr(i, "snapshots_offset", 0x7FFFFFFFFFFFFE00)))
    # offsets near 2^63 or 2^56
    yield "l1-offset-near-2-63", "refuse", "l1_table_offset 0x7ffffffffffffe00", \
        plain(lambda i: setattr(i, "l1_at", 0x7FFFFFFFFFFFFE00))
    yield "reftable-offset-near-2-63", "refuse", "refcount_table_offset 0x7ffffffffffffe00", \
        plain(lambda i: setattr(i, "reftable_at", 0x7FFFFFFFFFFFFE00))
    def data_near_2_56(i):
        i.l2[1] = 0x00FFFFFFFFFFFE00 | COPIED
    yield "data-offset-near-2-56", "corrupt|read-error", "an L2 entry pointing at 2^56 - 512", \
        plain(data_near_2_56)
    def l2_near_2_56(i):
        i.l1[0] = 0x00FFFFFFFFFFFE00 | COPIED
    yield "l2-offset-near-2-56", "refuse|corrupt|read-error", "an L1 entry pointing at 2^56 - 512", \
        plain(l2_near_2_56)
    # unaligned offsets
    yield "l1-offset-unaligned", "refuse", "l1_table_offset not cluster aligned", \
        plain(lambda i: setattr(i, "l1_at", 3 * 512 + 8))
    yield "reftable-offset-unaligned", "refuse", "refcount_table_offset not cluster aligned", \
        plain(lambda i: setattr(i, "reftable_at", 512 + 8))
    def l2_unaligned(i):
        i.l1[0] = (i.l2_at + 512) | COPIED  # 1 KiB clusters: 512 is unaligned
    yield "l2-offset-unaligned", "refuse|corrupt|read-error", "an L1 entry not cluster aligned (1 KiB clusters)", \
        plain(l2_unaligned, cluster_bits=10)
    def data_unaligned(i):
        i.l2[0] = (i.data_at + 512) | COPIED
    yield "data-offset-unaligned", "corrupt|read-error", "an L2 entry not cluster aligned (1 KiB clusters)", \
        plain(data_unaligned, cluster_bits=10)
    def refblock_unaligned(i):
        i.reftable[0] = i.refblock_at + 512
    yield "refblock-offset-unaligned", "refuse|corrupt", "a refcount block not cluster aligned (1 KiB clusters)", \
        plain(refblock_unaligned, cluster_bits=10)
    # tables overlapping the header or each other
    yield "l1-overlaps-header", "refuse|corrupt", "l1_table_offset 0", plain(lambda i: setattr(i, "l1_at", 0))
    yield "reftable-overlaps-header", "refuse|corrupt", "refcount_table_offset 0", \
        plain(lambda i: setattr(i, "reftable_at", 0))
    yield "l1-overlaps-reftable", "refuse|corrupt", "the L1 table and the refcount table in one cluster", \
        plain(lambda i: setattr(i, "l1_at", i.reftable_at))
    def data_on_header(i):
        i.l2[0] = 0 | COPIED  # "offset 0" with COPIED: an allocation at the header
        i.l2[1] = compressed_entry(i, 0, 0)  # compressed data "at" offset 0
    yield "cluster-at-offset-0", "corrupt|read-error", "L2 entries allocated at offset 0 (the header)", \
        plain(data_on_header)
    # L2 tables shared or pointing at L1 or refcount blocks
    def l2_shared(i):
        i.l1 = [i.l2_at | COPIED, i.l2_at | COPIED]
    yield "l2-shared", "refuse|corrupt", "two L1 entries share one L2 table", plain(l2_shared, size=64 << 10)
    yield "l2-is-l1", "refuse|corrupt", "the L2 table is the L1 table", \
        plain(lambda i: i.l1.__setitem__(0, i.l1_at | COPIED))
    yield "l2-is-refcount-block", "refuse|corrupt", "the L2 table is the refcount block", \
        plain(lambda i: i.l1.__setitem__(0, i.refblock_at | COPIED))
    yield "data-is-l1", "corrupt", "a data cluster is the L1 table", \
        plain(lambda i: i.l2.__setitem__(0, i.l1_at | COPIED))
    # zero-sized tables
    yield "refcount-table-clusters-0", "refuse", "refcount_table_clusters 0", \
        plain(lambda i: setattr(i, "refcount_table_clusters", 0))
    yield "l1-size-0", "refuse", "l1_size 0 with a non-zero virtual size", plain(lambda i: setattr(i, "l1_size", 0))
    # reserved bits
    yield "l1-reserved-bits", "refuse|corrupt|read-error", "an L1 entry with reserved bits set", \
        plain(lambda i: i.l1.__setitem__(0, i.l1[0] | 0x1))
    yield "l2-reserved-bits", "corrupt|read-error", "an L2 entry with reserved bits set", \
        plain(lambda i: i.l2.__setitem__(0, i.l2[0] | 0x2))
    yield "reftable-reserved-bits", "refuse|corrupt", "a refcount table entry with reserved bits set", \
        plain(lambda i: i.reftable.__setitem__(0, i.reftable[0] | 0x1))
    # compressed descriptors past the end, bombs, truncated streams
    def compressed_past_eof(i):
        i.l2[0] = compressed_entry(i, 6 * i.cs + 100, 3)
    yield "compressed-past-eof", "read-error|corrupt", "a compressed descriptor reaching past the end of the file", \
        plain(compressed_past_eof)
    def deflate_bomb(i):
        stream = raw_deflate(bytes(4 << 20))[:1024]  # 512-byte clusters: at most 2 sectors
        i.tail = stream
        i.count_tail()
        i.l2[0] = compressed_entry(i, 6 * i.cs, 1)
    yield "deflate-bomb", "read-error|ok", "deflate stream of 4 MiB for a 512-byte cluster", plain(deflate_bomb)
    def zstd_bomb(i):
        stream = zstd_rle_frame(16 << 20)  # 518 bytes: fits the 2 sectors allowed
        i.tail = stream
        i.count_tail()
        i.l2[0] = compressed_entry(i, 6 * i.cs, 1)
    yield "zstd-bomb", "read-error|ok", "zstd frame of 16 MiB (RLE blocks) for a 512-byte cluster", \
        plain(zstd_bomb, compression_type=1)
    def deflate_truncated(i):
        stream = raw_deflate(bytes(range(256)) * 2)[:20]
        i.tail = stream
        i.count_tail()
        i.l2[0] = compressed_entry(i, 6 * i.cs, 0)
    yield "deflate-truncated", "read-error", "a deflate stream cut short", plain(deflate_truncated)
    def zstd_truncated(i):
        i.tail = zstd_rle_frame(300)[:-1]
        i.count_tail()
        i.l2[0] = compressed_entry(i, 6 * i.cs, 0)
    yield "zstd-truncated", "read-error", "a zstd frame that ends before its last block", \
        plain(zstd_truncated, compression_type=1)
    # header extensions
    yield "extension-past-cluster-0", "refuse", "an extension length reaching past cluster 0", \
        plain(lambda i: i.extensions.append((0x12345678, bytes(8), 0x10000)))
    yield "extension-duplicated", "refuse", "two backing format extensions", \
        plain(lambda i: i.extensions.extend([(0xE2792ACA, b"raw"), (0xE2792ACA, b"qcow2")]))
    yield "extension-data-file-duplicated", "refuse", "two external data file name extensions", \
        plain(lambda i: (i.extensions.extend([(0x44415441, b"a.raw"), (0x44415441, b"b.raw")]),
                         setattr(i, "incompatible", 4)))
    # feature bits
    yield "unknown-incompatible-bit", "refuse", "incompatible feature bit 40", \
        plain(lambda i: setattr(i, "incompatible", 1 << 40))
    yield "corrupt-bit", "refuse-rw", "the corrupt bit (incompatible bit 1)", \
        plain(lambda i: setattr(i, "incompatible", 2))
    def dirty_leaky(i):
        i.incompatible = 1
        i.compatible = 1  # lazy refcounts
        i.refcounts[5] = 0  # stale: the data cluster is not counted yet
    yield "dirty-bit", "ok", "the dirty bit with lazy refcounts and a stale refcount", plain(dirty_leaky)
    yield "dirty-bit-without-lazy", "ok|refuse|refuse-rw", "the dirty bit without lazy refcounts", \
        plain(lambda i: setattr(i, "incompatible", 1))
    yield "encrypted-aes", "refuse", "crypt_method 1 (AES)", plain(lambda i: setattr(i, "crypt", 1))
    yield "encrypted-luks", "refuse", "crypt_method 2 (LUKS)", plain(lambda i: setattr(i, "crypt", 2))
    yield "version-4", "refuse", "version 4", plain(lambda i: setattr(i, "version", 4))
    yield "cluster-bits-30", "refuse", "cluster_bits 30", plain(lambda i: setattr(i, "cb", 30))
    yield "cluster-bits-8", "refuse", "cluster_bits 8", plain(lambda i: setattr(i, "cb", 8))
    yield "refcount-order-7", "refuse", "refcount_order 7", plain(lambda i: setattr(i, "refcount_order", 7))
    yield "header-length-past-cluster", "refuse", "header_length larger than the cluster", \
        plain(lambda i: setattr(i, "header_length", 1024))
    yield "header-length-unaligned", "refuse", "header_length not a multiple of 8", \
        plain(lambda i: setattr(i, "header_length", 105))
    yield "compression-type-unknown", "refuse", "compression_type 2 with its incompatible bit", \
        plain(lambda i: (setattr(i, "compression_type", 2), setattr(i, "incompatible", 8)))
    yield "compression-type-without-bit", "refuse", "compression_type 1 without incompatible bit 3", \
        plain(lambda i: (setattr(i, "compression_type", 1), setattr(i, "incompatible", 0)))
    yield "extended-l2-small-clusters", "refuse", "extended L2 with 512-byte clusters", \
        plain(lambda i: setattr(i, "incompatible", 16))
    # sizes
    yield "l1-too-small", "refuse", "l1_size 1 for a virtual size needing 4 L2 tables", \
        plain(lambda i: setattr(i, "size", 128 << 10))
    yield "exabyte-claim", "refuse", "a 3 KiB file claiming a 1 EiB virtual size", \
        plain(lambda i: setattr(i, "size", 1 << 60))
    yield "truncated-header", "refuse", "a file that ends inside the header", Image().build()[:50]
    # file names that would make a reader open other files
    for tag, name in (("json", b'json:{"file.filename":"/etc/shadow"}'), ("etc-passwd", b"/etc/passwd"),
                      ("dotdot", b"../x")):
        img = Image()
        img.put_backing_name(name)
        yield f"backing-{tag}", "ok", f"backing file name {name.decode()}", img.build_with_backing()
    yield "backing-name-too-long", "refuse", "backing_file_size 1024", \
        plain(lambda i: setattr(i, "backing", (200, 1024)))
    yield "backing-offset-past-cluster-0", "refuse", "backing_file_offset outside cluster 0", \
        plain(lambda i: setattr(i, "backing", (4096, 8)))
    for tag, name in (("etc-passwd", b"/etc/passwd"), ("dotdot", b"../x")):
        yield f"data-file-{tag}", "refuse", f"external data file name {name.decode()}", \
            plain(lambda i, name=name: (i.extensions.append((0x44415441, name)), setattr(i, "incompatible", 4)))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make-hostile-images.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    lines = []
    for name, expect, what, data in cases():
        with open(os.path.join(out, name + ".qcow2"), "wb") as f:
            f.write(data)
        lines.append(f"{name}\t{expect}\t{what}\n")
    with open(os.path.join(out, "expected.tsv"), "w") as f:
        f.writelines(lines)


if __name__ == "__main__":
    main()
