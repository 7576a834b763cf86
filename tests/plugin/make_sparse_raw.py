#!/usr/bin/env python3
"""Writes a sparse raw file: SIZE bytes, with pseudo-random data in some
regions and holes elsewhere. usage: make_sparse_raw.py PATH SIZE_MIB SEED"""
import os
import random
import sys

path, size_mib, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
MiB = 1 << 20
with open(path, "wb") as f:
    f.truncate(size_mib * MiB)
    # Regions of every alignment: whole MiBs, odd 4K runs, single sectors.
    for _ in range(size_mib // 2):
        start = rng.randrange(0, size_mib * MiB // 512) * 512
        length = rng.choice([512, 4096, 65536, 3 * 4096, MiB])
        length = min(length, size_mib * MiB - start)
        f.seek(start)
        f.write(rng.randbytes(length))
