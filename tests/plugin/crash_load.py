#!/usr/bin/python3
"""The load and the verdict of test-crash.sh.

  crash_load.py load URI SEED STATE READY KILLED
      Up to 16 writes, zeroes and trims in flight at once (never two on one
      4 KiB block), with a flush now and then, until the server dies. Writes
      READY once it has made progress (writes and flushes done), so the test
      kills a server that is busy. When requests start failing it checks that
      the test had announced the kill (KILLED exists: any earlier failure is a
      real error), counts the requests that were in flight, and saves what it
      knows in STATE.
  crash_load.py verify STATE RAW
      RAW is the image converted after the kill. Every 4 KiB block the load
      touched holds the last value a completed flush covered, or one written
      after it (a write in flight at the kill included): nothing else. Blocks
      below 4 MiB hold 0xf1 (flushed before the load), the others zeroes.
      Prints how many blocks hold a value newer than their last flush.
"""
import hashlib
import os
import pickle
import random
import sys

BLOCK = 4096
MiB = 1 << 20
QUEUE = 16
FLUSHED_PREFIX = 4 * MiB   # 0xf1, flushed by the test before the load starts
LOAD_START = 8 * MiB


def digest(data):
    return hashlib.blake2b(data, digest_size=8).digest()


ZERO = digest(bytes(BLOCK))


def load(uri, seed, state_path, ready_path, killed_path):
    import nbd
    rng = random.Random(seed)
    h = nbd.NBD()
    h.connect_uri(uri)
    size = h.get_size()
    history = {}      # block -> digests of every value given to it, in issue order
    floor = {}        # block -> index in history of the last value a flush covered
    busy = set()      # blocks with a request in flight
    inflight = {}     # cookie -> (kind, blocks, buffer, index per block)
    uncovered = []    # (block, index) of completed changes no flush has covered yet
    flushes = {}      # flush cookie -> the (block, index) it covers
    counts = dict(writes=0, zeroes=0, trims=0, flushes=0, completed_writes=0)
    ready = False
    since_flush = 0
    in_flight_at_death = None
    error = None

    def issue():
        nonlocal since_flush
        if since_flush >= 24 and not flushes:
            cookie = h.aio_flush()
            flushes[cookie] = uncovered[:]
            uncovered.clear()
            since_flush = 0
            counts["flushes"] += 1
            return
        op = rng.random()
        for _ in range(20):  # an offset whose blocks are all idle
            if op < 0.75:
                kind, length = "write", rng.choice([BLOCK, 16 * BLOCK, 48 * BLOCK])
            elif op < 0.88:
                kind, length = "zero", rng.choice([BLOCK, MiB])
            else:
                kind, length = "trim", rng.choice([16 * BLOCK, MiB])
            offset = rng.randrange(LOAD_START, size - length, BLOCK)
            blocks = range(offset // BLOCK, (offset + length) // BLOCK)
            if not any(b in busy for b in blocks):
                break
        else:
            return
        buf = None
        if kind == "write":
            data = rng.randbytes(length)
            values = [digest(data[i:i + BLOCK]) for i in range(0, length, BLOCK)]
            buf = nbd.Buffer.from_bytearray(bytearray(data))
        else:
            values = [ZERO] * len(blocks)
        # Recorded before the request goes out: once sent it may land.
        indexes = []
        for b, v in zip(blocks, values):
            history.setdefault(b, []).append(v)
            indexes.append(len(history[b]) - 1)
            busy.add(b)
        if kind == "write":
            cookie = h.aio_pwrite(buf, offset)
        elif kind == "zero":
            cookie = h.aio_zero(length, offset)
        else:
            cookie = h.aio_trim(length, offset)
        counts[kind + ("s" if kind != "zero" else "es")] += 1
        inflight[cookie] = (kind, list(blocks), buf, indexes)
        since_flush += 1

    try:
        while True:
            for _ in range(QUEUE - len(inflight)):
                issue()
            h.poll(-1)
            for cookie in list(inflight):
                if h.aio_command_completed(cookie):
                    kind, blocks, _, indexes = inflight.pop(cookie)
                    for b, i in zip(blocks, indexes):
                        busy.discard(b)
                        uncovered.append((b, i))
                    if kind == "write":
                        counts["completed_writes"] += 1
            for cookie in list(flushes):
                if h.aio_command_completed(cookie):
                    for b, i in flushes.pop(cookie):
                        floor[b] = max(floor.get(b, -1), i)
            if not ready and counts["completed_writes"] >= 300 and counts["flushes"] >= 4 and not flushes:
                open(ready_path, "w").close()
                ready = True
    except nbd.Error as e:
        error = str(e)
        in_flight_at_death = sum(1 for kind, *_ in inflight.values() if kind != "flush")
    if not os.path.exists(killed_path):
        sys.exit(f"FAIL: a request failed while the server was alive: {error}")
    with open(state_path, "wb") as f:
        pickle.dump(dict(history=history, floor=floor, counts=counts, size=size,
                         in_flight_at_death=in_flight_at_death, error=error), f)
    print(f"load: {counts}, {in_flight_at_death} requests in flight at the kill ({error})")


def verify(state_path, raw_path):
    with open(state_path, "rb") as f:
        state = pickle.load(f)
    history, floor = state["history"], state["floor"]
    problems = []
    newer = 0
    f1 = digest(b"\xf1" * BLOCK)
    with open(raw_path, "rb") as f:
        raw = f.read()
    if len(raw) != state["size"]:
        sys.exit(f"FAIL: the image is {len(raw)} bytes, not {state['size']}")
    for b in range(state["size"] // BLOCK):
        now = digest(raw[b * BLOCK:(b + 1) * BLOCK])
        if b in history:
            start = floor.get(b, -1)
            allowed = ([ZERO] if start < 0 else []) + history[b][max(start, 0):]
            flushed = ZERO if start < 0 else history[b][start]
            if now not in allowed:
                problems.append(f"block {b} (offset {b * BLOCK}): holds a value that is neither "
                                f"its last flushed one nor any of the {len(allowed) - 1} written after it"
                                + (" (zeroes)" if now == ZERO else ""))
            elif now != flushed:
                newer += 1
        elif b * BLOCK < FLUSHED_PREFIX:
            if now != f1:
                problems.append(f"block {b}: flushed 0xf1 data is gone")
        elif now != ZERO:
            problems.append(f"block {b} (offset {b * BLOCK}): never written, yet holds data")
    for p in problems[:20]:
        print("FAIL: " + p, file=sys.stderr)
    if problems:
        sys.exit(f"FAIL: {len(problems)} blocks hold what no write put there")
    print(newer)


if __name__ == "__main__":
    if sys.argv[1] == "load":
        load(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6])
    elif sys.argv[1] == "verify":
        verify(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: crash_load.py load|verify ...")
