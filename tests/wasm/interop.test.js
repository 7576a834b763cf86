// The module against qemu-img on every image of tests/interop/make-images.sh:
// info and map agree with qemu-img, check finds them clean, conversion to raw
// gives the reference raw byte for byte, and raw or qcow2 converted to qcow2
// (plain and compressed) is clean and equal for qemu-img check and compare.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const path = require('path');
const { loadQcowkit, interopImages, qemuImg, qemuImgJson, tmpDir, sameFiles } = require('./helpers');

// Opens an interop image; its backing file, when it has one, is given too
// and found by the name the image records (the browser Host's rule).
function openEntry(qk, entry) {
  const image = qk.open(entry.image, entry.backing ? { files: [entry.backing] } : {});
  return { image, close() { image.close(); } };
}

// qemu-img's merging of map runs: same kind and, when located, contiguous.
function mergeRuns(runs) {
  const out = [];
  for (const r of runs) {
    const last = out[out.length - 1];
    if (last && last.start + last.length === r.start && last.depth === r.depth &&
        last.present === r.present && last.zero === r.zero && last.data === r.data &&
        (last.offset === undefined) === (r.offset === undefined) &&
        (last.offset === undefined || last.offset + last.length === r.offset)) {
      last.length += r.length;
    } else {
      out.push({ ...r });
    }
  }
  return out;
}
function normalise(runs, withOffsets) {
  return mergeRuns(runs.map((r) => {
    // qemu-img also asks the host file system for holes and calls data in
    // them "zero" (preallocated images); a browser File cannot tell holes.
    const n = { start: r.start, length: r.length, depth: r.depth, present: r.present,
                zero: r.data ? false : r.zero, data: r.data };
    // The engine's map gives no host offset for preallocated zero clusters
    // (qemu-img does); data offsets must match exactly.
    if (withOffsets && r.offset !== undefined && r.data) n.offset = r.offset;
    return n;
  }));
}

const entries = interopImages();

for (const entry of entries) {
  test(`${entry.name}: info matches qemu-img info`, async () => {
    const qk = await loadQcowkit();
    const opened = openEntry(qk, entry);
    try {
      const ours = opened.image.info();
      const theirs = qemuImgJson(['info', '-U', entry.image]);
      const data = theirs['format-specific'].data;
      assert.strictEqual(ours.format, theirs.format);
      assert.strictEqual(ours.virtualSize, theirs['virtual-size']);
      assert.strictEqual(ours.fileSize, fs.statSync(entry.image).size);
      assert.strictEqual(ours.clusterSize, theirs['cluster-size']);
      assert.strictEqual(ours.compat, data.compat);
      assert.strictEqual(ours.refcountBits, data['refcount-bits']);
      if (data['lazy-refcounts'] !== undefined) assert.strictEqual(ours.lazyRefcounts, data['lazy-refcounts']);
      if (data.corrupt !== undefined) assert.strictEqual(ours.corrupt, data.corrupt);  // v3 only
      if (data['compression-type']) assert.strictEqual(ours.compressionType, data['compression-type']);
      if (data['extended-l2'] !== undefined) assert.strictEqual(ours.extendedL2, data['extended-l2']);
      assert.strictEqual(ours.backingFile, theirs['backing-filename']);
      if (theirs['backing-filename-format'])
        assert.strictEqual(ours.backingFormat, theirs['backing-filename-format']);
      assert.deepStrictEqual(ours.snapshots.map((s) => ({
        id: s.id, name: s.name, 'vm-state-size': s.vmStateSize, 'date-sec': s.dateSec, 'date-nsec': s.dateNsec,
        'vm-clock-sec': Math.floor(s.vmClockNsec / 1e9), 'vm-clock-nsec': s.vmClockNsec % 1e9,
      })), (theirs.snapshots || []).map((s) => ({
        id: s.id, name: s.name, 'vm-state-size': s['vm-state-size'], 'date-sec': s['date-sec'],
        'date-nsec': s['date-nsec'], 'vm-clock-sec': s['vm-clock-sec'], 'vm-clock-nsec': s['vm-clock-nsec'],
      })));
    } finally {
      opened.close();
    }
  });

  test(`${entry.name}: map matches qemu-img map`, async () => {
    const qk = await loadQcowkit();
    const opened = openEntry(qk, entry);
    try {
      const ours = opened.image.map();
      const theirs = qemuImgJson(['map', '-U', entry.image]);
      // Host offsets inside a backing file are qemu's business, not ours.
      const withOffsets = !entry.backing;
      assert.deepStrictEqual(normalise(ours, withOffsets), normalise(theirs, withOffsets));
      const compressed = ours.filter((r) => r.compressed);
      if (/zlib|zstd/.test(entry.name)) assert.ok(compressed.length > 0, 'no compressed runs reported');
      for (const r of compressed) assert.strictEqual(r.offset, undefined);
    } finally {
      opened.close();
    }
  });

  test(`${entry.name}: check agrees with qemu-img check`, async () => {
    const qk = await loadQcowkit();
    const opened = openEntry(qk, entry);
    try {
      const ours = opened.image.check();
      let theirs;
      try {
        theirs = JSON.parse(qemuImg(['check', '-U', '--output=json', entry.image]));
      } catch (e) {
        theirs = JSON.parse(e.stdout);  // leaks or corruptions exit non-zero
      }
      assert.strictEqual(ours.corruptions, theirs.corruptions || 0);
      assert.strictEqual(ours.leaks, theirs.leaks || 0);
      assert.strictEqual(ours.allocatedClusters, theirs['allocated-clusters'] || 0);
      assert.strictEqual(ours.compressedClusters, theirs['compressed-clusters'] || 0);
    } finally {
      opened.close();
    }
  });

  test(`${entry.name}: conversion to raw equals the reference raw`, async () => {
    const qk = await loadQcowkit();
    const dir = tmpDir(`wasm-${entry.name}`);
    const out = path.join(dir, 'out.raw');
    const opened = openEntry(qk, entry);
    try {
      await opened.image.convert({ to: 'raw', output: out });
      assert.strictEqual(sameFiles(out, entry.raw), null);
    } finally {
      opened.close();
      fs.rmSync(dir, { recursive: true });
    }
  });
}

// Every internal snapshot of every image, opened as a snapshot and
// converted, reads as qemu-img converts it (-l snapshot.id=ID).
for (const entry of entries.filter((e) => !e.backing)) {
  const snapshots = qemuImgJson(['info', '-U', entry.image]).snapshots || [];
  for (const snap of snapshots) {
    test(`${entry.name}: snapshot ${snap.name} converts as qemu-img converts it`, async () => {
      const qk = await loadQcowkit();
      const dir = tmpDir(`wasm-${entry.name}-snap`);
      const ours = path.join(dir, 'ours.raw'), theirs = path.join(dir, 'theirs.raw');
      qemuImg(['convert', '-U', '-l', `snapshot.id=${snap.id}`, '-O', 'raw', entry.image, theirs]);
      const image = qk.open(entry.image, { snapshot: snap.id });
      try {
        assert.strictEqual(image.info().virtualSize, fs.statSync(theirs).size);
        await image.convert({ to: 'raw', output: ours });
        assert.strictEqual(sameFiles(ours, theirs), null);
        assert.throws(() => qk.open(entry.image, { snapshot: 'no-such-snapshot' }), /ENOENT|no snapshot|not found/i);
      } finally {
        image.close();
        fs.rmSync(dir, { recursive: true });
      }
    });
  }
}

// qemu-img check (exit 0 = clean) and compare (exit 0 = equal) on our output.
function assertCleanAndEqual(qcow2, raw) {
  qemuImg(['check', '-q', qcow2]);
  qemuImg(['compare', '-q', '-f', 'qcow2', '-F', 'raw', qcow2, raw]);
}

for (const variant of [{ compress: false, clusterSize: 65536 }, { compress: true, clusterSize: 65536 },
                       { compress: true, clusterSize: 4096 }, { compress: false, clusterSize: 2 << 20 }]) {
  const label = `${variant.compress ? 'compressed' : 'plain'}, ${variant.clusterSize}-byte clusters`;
  test(`raw to qcow2 (${label}): qemu-img check is clean and compare equal`, async () => {
    const qk = await loadQcowkit();
    const reference = entries.find((e) => e.name === 'v3').raw;
    const dir = tmpDir('wasm-to-qcow2');
    const out = path.join(dir, 'out.qcow2');
    const image = qk.open(reference);
    try {
      await image.convert({ to: 'qcow2', output: out, ...variant });
      assertCleanAndEqual(out, reference);
      const info = qemuImgJson(['info', out]);
      assert.strictEqual(info['cluster-size'], variant.clusterSize);
      if (variant.compress) {
        const map = qemuImgJson(['map', out]);
        // Compressed data has no host offset in qemu-img map.
        assert.ok(map.some((r) => r.data && r.offset === undefined), 'no compressed cluster written');
        assert.ok(fs.statSync(out).size < fs.statSync(reference).size / 2);
      }
    } finally {
      image.close();
      fs.rmSync(dir, { recursive: true });
    }
  });
}

test('zstd qcow2 to compressed qcow2: qemu-img check is clean and compare equal', async () => {
  const qk = await loadQcowkit();
  const entry = entries.find((e) => e.name === 'zstd');
  const dir = tmpDir('wasm-recompress');
  const out = path.join(dir, 'out.qcow2');
  const image = qk.open(entry.image);
  try {
    await image.convert({ to: 'qcow2', compress: true, output: out });
    assertCleanAndEqual(out, entry.raw);
  } finally {
    image.close();
    fs.rmSync(dir, { recursive: true });
  }
});

test('zlib qcow2 to raw in three parts (as parallel workers do) equals the reference', async () => {
  const qk = await loadQcowkit();
  const entry = entries.find((e) => e.name === 'zlib');
  const dir = tmpDir('wasm-parts');
  const out = path.join(dir, 'out.raw');
  const size = fs.statSync(entry.raw).size;
  fs.writeFileSync(out, '');
  fs.truncateSync(out, size);
  const chunk = 4 << 20;
  const cuts = [0, 2 * chunk, 5 * chunk, size];
  const images = cuts.slice(1).map(() => qk.open(entry.image));
  try {
    // Interleaved like concurrent workers: all parts in flight at once.
    await Promise.all(images.map((image, i) => image.convert({
      to: 'raw', output: new qk.devices.NodeFileDevice(out, { write: true }),
      part: { start: cuts[i], end: cuts[i + 1] }, stepBytes: chunk })));
    assert.strictEqual(sameFiles(out, entry.raw), null);
    await assert.rejects(images[0].convert({ to: 'raw', output: out, part: { start: 1000, end: chunk } }),
                         (e) => e.errno === 'EINVAL' && /aligned/.test(e.message));
    const small = new qk.devices.MemoryDevice();
    await assert.rejects(images[0].convert({ to: 'raw', output: small, part: { start: 0, end: chunk } }),
                         (e) => e.errno === 'EINVAL' && /must already be/.test(e.message));
    await assert.rejects(images[0].convert({ to: 'qcow2', output: small, part: { start: 0, end: chunk } }),
                         (e) => e.errno === 'EINVAL' && /only be converted to raw/.test(e.message));
  } finally {
    for (const image of images) image.close();
    fs.rmSync(dir, { recursive: true });
  }
});

test('a qcow2 streamed onto appends only (plain and compressed) is clean, equal, and waits for its consumer', async () => {
  const qk = await loadQcowkit();
  const entry = entries.find((e) => e.name === 'zlib');
  const dir = tmpDir('wasm-stream');
  const image = qk.open(entry.image);
  try {
    for (const compress of [false, true]) {
      const chunks = [];
      let waits = 0;
      // A consumer that says it has room only now and then: the conversion
      // must wait for it (drain) and still produce every byte in order.
      const output = new qk.devices.StreamDevice((bytes) => chunks.push(bytes), { limit: 64 << 10 });
      const drain = output.drain.bind(output);
      output.drain = () => {
        const p = drain();
        if (output.outstanding > output.limit) { ++waits; setTimeout(() => output.consumed(), 1); }
        return p;
      };
      await image.convert({ to: 'qcow2', stream: true, compress, output, stepBytes: 4 << 20 });
      const out = path.join(dir, `streamed-${compress}.qcow2`);
      fs.writeFileSync(out, Buffer.concat(chunks));
      assert.strictEqual(fs.statSync(out).size, output.length);
      assertCleanAndEqual(out, entry.raw);
      assert.ok(waits > 0, 'the conversion never waited for its consumer');
    }
    // A cluster size qcow2 does not allow is refused, streamed or not.
    for (const stream of [true, false])
      await assert.rejects(image.convert({ to: 'qcow2', stream, clusterSize: 3000, output: new qk.devices.MemoryDevice() }),
                           (e) => e.errno === 'EINVAL' && /not a power of two/.test(e.message));
    // Only qcow2 streams; a device that is not empty is refused.
    await assert.rejects(image.convert({ to: 'raw', stream: true, output: new qk.devices.StreamDevice(() => {}) }),
                         (e) => e.errno === 'EINVAL' && /only qcow2/.test(e.message));
    const used = new qk.devices.MemoryDevice();
    used.write(0, new Uint8Array(512));
    await assert.rejects(image.convert({ to: 'qcow2', stream: true, output: used }),
                         (e) => e.errno === 'EINVAL' && /start empty/.test(e.message));
    // A StreamDevice refuses anything but the next bytes.
    const strict = new qk.devices.StreamDevice(() => {});
    strict.truncate(1024);
    assert.throws(() => strict.write(512, new Uint8Array(16)), (e) => e.errno === 'ESPIPE');
  } finally {
    image.close();
    fs.rmSync(dir, { recursive: true });
  }
});
