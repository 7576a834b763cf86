"""CRC-32C as VHDX checksums use it, for the scripts that build or edit vhdx
files (make-vhdx-dirty.py, hostile/make-hostile-vhdx.py)."""
import struct

_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def sealed(buf):
    """`buf` with its checksum (bytes 4-7, counted as zeroes) filled in."""
    buf = bytearray(buf)
    struct.pack_into("<I", buf, 4, 0)
    struct.pack_into("<I", buf, 4, crc32c(bytes(buf)))
    return bytes(buf)
