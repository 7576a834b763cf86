#!/usr/bin/env python3
"""Writes a raw disk image for the wasm conversion benchmark: per MiB, 40 %
random bytes (incompressible), 40 % text-like bytes (compress about 3:1)
and 20 % holes, in a fixed pseudo-random order. Usage: SIZE_MIB OUTPUT"""
import os
import random
import sys


def main(size_mib, path):
    rng = random.Random(7)
    words = [bytes(rng.choice(b"etaoinshrdlu") for _ in range(rng.randint(2, 9))) for _ in range(400)]
    text = b" ".join(rng.choice(words) for _ in range(200000))[: 1 << 20]
    with open(path, "wb") as f:
        f.truncate(size_mib << 20)
        for mib in range(size_mib):
            kind = rng.randrange(10)
            if kind >= 8:
                continue  # a hole
            f.seek(mib << 20)
            if kind < 4:
                f.write(os.urandom(1 << 20))
            else:
                shift = rng.randrange(1 << 19)
                f.write((text[shift:] + text[:shift])[: 1 << 20])


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
