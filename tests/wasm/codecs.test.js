// The JS codecs the module plugs into the core (wasm/js/codecs.js): raw
// deflate decode and encode, zstd decode, bounded and strict about lengths.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const zlib = require('zlib');
const { execFileSync } = require('child_process');
const { loadQcowkit, tool } = require('./helpers');

// Compressible, but not trivially: a cluster's worth of text-like bytes.
function sample(n, seed) {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; ++i) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = 97 + ((x >>> 16) % 7);
  }
  return out;
}
function zstdCompress(data) {
  return new Uint8Array(execFileSync(tool('zstd', 'zstd'), ['-q', '-c', '-3'], { input: data }));
}

test('deflate: QEMU-style raw deflate decodes exactly, ignoring sector padding', async () => {
  const { codecs } = await loadQcowkit();
  const data = sample(65536, 1);
  const packed = zlib.deflateRawSync(data, { windowBits: 12 });
  const padded = new Uint8Array(packed.length + 300).fill(0xa5);
  padded.set(packed);
  const out = new Uint8Array(65536);
  codecs.inflateRaw(padded, out);
  assert.deepStrictEqual(out, data);
});

test('deflate: a stream longer than the cluster, shorter, or cut off fails', async () => {
  const { codecs } = await loadQcowkit();
  const data = sample(65536, 2);
  const packed = zlib.deflateRawSync(data);
  assert.throws(() => codecs.inflateRaw(packed, new Uint8Array(4096)), /more than 4096 bytes/);
  assert.throws(() => codecs.inflateRaw(packed, new Uint8Array(65537)), /ends after 65536 of 65537/);
  assert.throws(() => codecs.inflateRaw(packed.subarray(0, packed.length >> 1), new Uint8Array(65536)),
                /corrupt deflate stream/);
  // A bomb: 64 MiB of zeroes in ~64 KiB of input, decoded into one cluster.
  const bomb = zlib.deflateRawSync(Buffer.alloc(64 << 20));
  assert.throws(() => codecs.inflateRaw(bomb, new Uint8Array(65536)), /more than 65536 bytes/);
});

test('deflate: encoding uses a 4 KiB window that zlib with windowBits 12 reads', async () => {
  const { codecs } = await loadQcowkit();
  // Repeats 8 KiB apart: a 32 KiB-window encoder would reference them.
  const block = sample(8192, 3);
  const data = new Uint8Array(65536);
  for (let i = 0; i < 8; ++i) data.set(block, i * 8192);
  const packed = codecs.deflateRaw(data, 65536);
  assert.ok(packed && packed.length < 65536);
  const back = zlib.inflateRawSync(packed, { windowBits: 12 });
  assert.deepStrictEqual(new Uint8Array(back), data);
  // Incompressible data does not fit: the caller stores it plainly.
  const noise = new Uint8Array(require('crypto').randomBytes(65536));
  assert.strictEqual(codecs.deflateRaw(noise, 65536), null);
});

test('zstd: a frame decodes exactly; what follows it (the next cluster) is not read', async () => {
  const { codecs } = await loadQcowkit();
  const data = sample(65536, 4);
  const frame = zstdCompress(data);
  const next = zstdCompress(sample(65536, 5));
  const input = new Uint8Array(frame.length + next.length + 100);
  input.set(frame);
  input.set(next, frame.length);
  const out = new Uint8Array(65536);
  codecs.zstdDecode(input, out);
  assert.deepStrictEqual(out, data);
});

test('zstd: several frames fill one cluster', async () => {
  const { codecs } = await loadQcowkit();
  const data = sample(65536, 6);
  const a = zstdCompress(data.subarray(0, 20000)), b = zstdCompress(data.subarray(20000));
  const input = new Uint8Array(a.length + b.length);
  input.set(a);
  input.set(b, a.length);
  const out = new Uint8Array(65536);
  codecs.zstdDecode(input, out);
  assert.deepStrictEqual(out, data);
});

test('zstd: truncated, oversized, garbage and hostile-window input fail', async () => {
  const { codecs } = await loadQcowkit();
  const data = sample(65536, 7);
  const frame = zstdCompress(data);
  assert.throws(() => codecs.zstdDecode(frame.subarray(0, frame.length - 10), new Uint8Array(65536)),
                /runs past the end|ends inside/);
  assert.throws(() => codecs.zstdDecode(frame, new Uint8Array(4096)), /more than the 4096-byte cluster/);
  assert.throws(() => codecs.zstdDecode(frame, new Uint8Array(65536 + 512)), /not a zstd frame|ends/);
  assert.throws(() => codecs.zstdDecode(new Uint8Array(64).fill(7), new Uint8Array(4096)), /not a zstd frame/);
  // A frame header asking for a 2 GiB window (no content size, not single segment).
  const hostile = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa8, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00]);
  assert.throws(() => codecs.zstdDecode(hostile, new Uint8Array(4096)), /window/);
});
