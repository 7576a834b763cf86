#!/usr/bin/env python3
"""Writes the reference raw image the interop images are made from.

The layout mixes what a qcow2 reader must get right: data at odd sizes and
offsets, runs of explicit zero bytes, holes, scattered small writes, and a
tail that ends inside a cluster for every cluster size (the size is not a
multiple of 64 KiB). Contents are deterministic.
"""
import random
import sys

KIB = 1024
MIB = 1024 * KIB
SIZE = 24 * MIB + 12 * KIB


def main(path):
    rng = random.Random(20261121)

    def data(n):
        return bytes(rng.getrandbits(8) | 1 for _ in range(n))

    with open(path, "wb") as f:
        f.truncate(SIZE)

        def put(offset, payload):
            f.seek(offset)
            f.write(payload)

        put(0, data(1 * MIB))                       # data from the first byte
        put(1 * MIB, bytes(1 * MIB))                # explicit zeroes
        # 2M..3M: hole
        put(3 * MIB, data(4 * KIB))
        for i in range(64):                         # scattered 4K writes, 4M..8M
            put(4 * MIB + i * 64 * KIB + 512 * (i % 7), data(4 * KIB))
        put(8 * MIB, data(4 * MIB))                 # a large data run
        # 12M..16M: hole
        put(16 * MIB + 512, data(100 * KIB + 512))  # odd size, odd start
        put(20 * MIB - 3 * KIB, data(6 * KIB))      # crosses a 2M and 64K boundary
        put(SIZE - 12 * KIB, data(12 * KIB))        # the short tail


if __name__ == "__main__":
    main(sys.argv[1])
