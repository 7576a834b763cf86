// The JS API on raw images and its error paths: needs no qcow2 engine.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const path = require('path');
const { loadQcowkit, tmpDir, sameFiles } = require('./helpers');

function pattern(n) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 3) out[i] = (i * 31) & 0xff;
  return out;
}

test('a raw image: info, map and read', async () => {
  const qk = await loadQcowkit();
  const bytes = pattern(3 << 20);
  const image = qk.open(bytes);
  try {
    const info = image.info();
    assert.strictEqual(info.format, 'raw');
    assert.strictEqual(info.virtualSize, bytes.length);
    assert.strictEqual(info.fileSize, bytes.length);
    assert.deepStrictEqual(image.map(), [{ start: 0, length: bytes.length, depth: 0, present: true,
                                           zero: false, data: true, compressed: false, offset: 0 }]);
    assert.deepStrictEqual(image.read(1000003, 4099), bytes.subarray(1000003, 1000003 + 4099));
    const summary = image.mapSummary(16);
    assert.strictEqual(summary.totals.data, bytes.length);
    assert.strictEqual(summary.totals.unallocated, 0);
  } finally {
    image.close();
  }
});

test('a raw image has no snapshots to open', async () => {
  const qk = await loadQcowkit();
  assert.throws(() => qk.open(pattern(1 << 20), { snapshot: '1' }), /raw image has no internal snapshots/);
});

test('raw to raw conversion is byte-identical, through files, with progress', async () => {
  const qk = await loadQcowkit();
  const dir = tmpDir('wasm-raw');
  const src = path.join(dir, 'in.raw'), dst = path.join(dir, 'out.raw');
  const bytes = pattern((9 << 20) + 1234);  // not a whole number of sectors
  fs.writeFileSync(src, bytes);
  const image = qk.open(src);
  const seen = [];
  await image.convert({ to: 'raw', output: dst, stepBytes: 4 << 20 }, (done, total) => seen.push([done, total]));
  image.close();
  assert.strictEqual(sameFiles(src, dst), null);
  assert.ok(seen.length >= 3, `progress was reported ${seen.length} times`);
  assert.deepStrictEqual(seen[seen.length - 1], [bytes.length, bytes.length]);
  for (let i = 1; i < seen.length; ++i) assert.ok(seen[i][0] >= seen[i - 1][0]);
  fs.rmSync(dir, { recursive: true });
});

test('a cancelled conversion stops with ECANCELED and the module keeps working', async () => {
  const qk = await loadQcowkit();
  const image = qk.open(pattern(16 << 20));
  const abort = new AbortController();
  await assert.rejects(image.convert({ to: 'raw', signal: abort.signal, stepBytes: 4 << 20 },
                                     (done) => { if (done >= 4 << 20) abort.abort(); }),
                       (e) => e.name === 'QcowkitError' && e.errno === 'ECANCELED');
  const out = await image.convert({ to: 'raw' });
  assert.strictEqual(out.size(), 16 << 20);
  // Closing the source under a running conversion is refused, not a crash.
  const running = image.convert({ to: 'raw', stepBytes: 4 << 20 });
  assert.throws(() => image.close(), (e) => e.errno === 'EBUSY');
  await running;
  image.close();
});

test('bad arguments and failing devices come back as QcowkitError, never an abort', async () => {
  const qk = await loadQcowkit();
  assert.throws(() => qk.open(42), (e) => e.errno === 'EINVAL' && /cannot open/.test(e.message));
  assert.throws(() => qk.open(new Uint8Array(16), { format: 'vmdkx' }),
                (e) => e.errno === 'EINVAL' && /unknown format 'vmdkx'/.test(e.message));
  // A format the module knows, forced on bytes that are not one: refused, not a crash.
  for (const format of ['vmdk', 'vpc', 'vdi', 'qcow'])
    assert.throws(() => qk.open(new Uint8Array(16), { format }), (e) => e instanceof qk.QcowkitError, format);
  const image = qk.open(pattern(1 << 20));
  assert.throws(() => image.read((1 << 20) - 10, 20), (e) => e.errno === 'ERANGE' && /beyond the end/.test(e.message));
  assert.throws(() => image.read(-1, 2), (e) => e.errno === 'EINVAL');
  assert.throws(() => image.check(), (e) => e.errno === 'ENOTSUP');
  await assert.rejects(image.convert({ to: 'vhd' }), /unknown target format 'vhd'/);
  await assert.rejects(image.convert({ to: 'raw', compress: true }), /compression needs a qcow2/);
  // A device whose reads fail mid-way: the JS error text reaches the caller.
  const failing = { readOnly: true, size: () => 1 << 20,
                    read(offset) { if (offset > 0) throw new Error('disk unplugged'); } };
  const broken = qk.open(failing, { format: 'raw' });
  assert.throws(() => broken.read(4096, 512), (e) => e.errno === 'EIO' && /read failed at offset 4096: disk unplugged/.test(e.message));
  broken.close();
  // Writing into a read-only destination fails cleanly too.
  await assert.rejects(image.convert({ to: 'raw', output: new qk.devices.BytesDevice(new Uint8Array(0)) }),
                       (e) => e.errno === 'EROFS');
  assert.deepStrictEqual(image.read(0, 4), pattern(4));
  image.close();
  assert.throws(() => image.info(), (e) => e.errno === 'EBADF');
});

test('numbers that are not byte offsets are refused by the module itself', async () => {
  const qk = await loadQcowkit();
  const image = qk.open(pattern(1 << 20));
  const native = image.native;  // below the JS API's own checks
  for (const bad of [-1, 0.5, NaN, 2 ** 60]) {
    assert.match(native.read(bad, 16).error.message, /read offset must be a whole number/);
    assert.match(native.map(0, bad).error.message, /map length must be a whole number/);
  }
  const odd = { readOnly: true, size: () => 10.5, read() {} };
  assert.throws(() => qk.open(odd, { format: 'raw' }), /not a whole number of bytes/);
  image.close();
});
