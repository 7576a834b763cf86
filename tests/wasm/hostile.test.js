// Bad input through the module: every case is a thrown QcowkitError with the
// core's message, and the module keeps working afterwards.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const path = require('path');
const { loadQcowkit, interopImages, qemuImg, tmpDir } = require('./helpers');

const good = () => interopImages().find((e) => e.name === 'zlib');

function header(patch) {
  const bytes = new Uint8Array(fs.readFileSync(good().image));
  const view = new DataView(bytes.buffer);
  patch(view, bytes);
  return bytes;
}

function assertStillWorks(qk) {
  const image = qk.open(fs.readFileSync(good().image));
  assert.strictEqual(image.info().format, 'qcow2');
  assert.strictEqual(image.read(0, 512).length, 512);
  image.close();
}

const cases = [
  ['not a qcow2 (forced)', () => new Uint8Array(1 << 20).fill(0x41), { format: 'qcow2' }],
  ['version 4', () => header((v) => v.setUint32(4, 4)), {}],
  ['cluster_bits 30', () => header((v) => v.setUint32(20, 30)), {}],
  ['encrypted (AES)', () => header((v) => v.setUint32(32, 1)), {}],
  ['encrypted (LUKS)', () => header((v) => v.setUint32(32, 2)), {}],
  ['l1_size too small for the size', () => header((v) => v.setUint32(36, 0)), {}],
  ['a tiny file claiming an exabyte', () => header((v) => v.setBigUint64(24, 1n << 60n)), {}],
  ['unknown incompatible feature', () => header((v) => v.setBigUint64(72, 1n << 40n)), {}],
  ['L1 table past the end of the file', () => header((v) => v.setBigUint64(40, 1n << 40n)), {}],
  ['truncated header', () => header(() => {}).subarray(0, 50), {}],
];

for (const [name, make, options] of cases) {
  test(`${name}: refused with the core's message`, async () => {
    const qk = await loadQcowkit();
    assert.throws(() => qk.open(make(), options), (e) => {
      assert.strictEqual(e.name, 'QcowkitError');
      assert.ok(e.message.length > 10, `message too short: ${e.message}`);
      assert.ok(typeof e.errno === 'string' && e.errno.startsWith('E'));
      return true;
    });
    assertStillWorks(qk);
  });
}

test('a truncated image opens, then reading past the cut fails with an offset', async () => {
  const qk = await loadQcowkit();
  const bytes = new Uint8Array(fs.readFileSync(good().image));
  const cut = bytes.subarray(0, 1 << 20);
  let image;
  try {
    image = qk.open(cut);
  } catch (e) {
    assert.strictEqual(e.name, 'QcowkitError');  // refusing at open is fine too
    return assertStillWorks(qk);
  }
  await assert.rejects(image.convert({ to: 'raw' }), (e) => e.name === 'QcowkitError' && /\d/.test(e.message));
  image.close();
  assertStillWorks(qk);
});

test('corrupt compressed clusters fail the read, not the module', async () => {
  const qk = await loadQcowkit();
  const entry = good();
  const bytes = new Uint8Array(fs.readFileSync(entry.image));
  const probe = qk.open(bytes.slice());
  const run = probe.map().find((r) => r.compressed);
  probe.close();
  assert.ok(run, 'the zlib image has compressed clusters');
  // Scribble over everything after the metadata: compressed data included.
  const damaged = bytes.slice();
  for (let i = 1 << 20; i < damaged.length; i += 7) damaged[i] ^= 0x5a;
  const image = qk.open(damaged);
  let failures = 0;
  for (let off = 0; off < image.info().virtualSize; off += 1 << 20) {
    try { image.read(off, 65536); } catch (e) { assert.strictEqual(e.name, 'QcowkitError'); ++failures; }
  }
  assert.ok(failures > 0, 'damaged compressed clusters all decoded');
  image.close();
  assertStillWorks(qk);
});

test('randomly damaged metadata: every outcome is a result or a QcowkitError, never an abort', async () => {
  const qk = await loadQcowkit();
  const entry = interopImages().find((e) => e.name === 'zlib-c4k');
  const original = new Uint8Array(fs.readFileSync(entry.image));
  let seed = 20261121;
  const rand = (n) => { seed = (seed * 1103515245 + 12345) >>> 0; return (seed >>> 8) % n; };
  let refused = 0, converted = 0;
  for (let round = 0; round < 60; ++round) {
    const bytes = original.slice();
    // Header, L1, refcount table and the first L2 tables live in the first 256 KiB.
    for (let k = 0, n = 1 + rand(8); k < n; ++k) bytes[rand(256 << 10)] = rand(256);
    try {
      const image = qk.open(bytes);
      try {
        image.info();
        image.map();
        await image.convert({ to: 'raw' });
        ++converted;
      } finally {
        image.close();
      }
    } catch (e) {
      assert.strictEqual(e.name, 'QcowkitError', `round ${round}: ${e.stack}`);
      ++refused;
    }
  }
  assert.strictEqual(refused + converted, 60);
  assertStillWorks(qk);
});

// The hostile vpc, vdi, vmdk and qcow images of tests/formats/hostile (the
// CLI's list, with what each refusal must say): each is refused with that
// message or, for the controls, reads as qemu-img reads it; never an abort.
test('hostile images of the other formats: refused with the CLI\'s messages, controls read', async () => {
  const qk = await loadQcowkit();
  const dir = path.join(__dirname, '../formats/hostile/images');
  const lines = fs.readFileSync(path.join(dir, 'expected.tsv'), 'utf8').trim().split('\n');
  const tmp = tmpDir('wasm-hostile-formats');
  let refused = 0;
  for (const line of lines) {
    const [name, format, expect] = line.split('\t');
    const file = path.join(dir, `${name}.${format}`);
    const attempt = async () => {
      // By name, as the page passes a dropped File: a descriptor naming
      // itself is then known for what it is.
      const image = qk.open({ name: path.basename(file), source: fs.readFileSync(file) }, { format });
      try {
        image.info();
        image.map();
        return await image.convert({ to: 'raw' });
      } finally {
        image.close();
      }
    };
    if (expect === 'ok') {
      const out = await attempt();
      const theirs = path.join(tmp, name + '.raw');
      qemuImg(['convert', '-f', format, '-O', 'raw', file, theirs]);
      assert.deepStrictEqual(Buffer.from(out.bytes()), fs.readFileSync(theirs), name);
    } else {
      // The CLI opens no backing file unless asked and says so; the page
      // follows names among the files given, so it refuses a json: parent
      // for what it is.
      const want = expect === 'refuse:which is not opened' ? 'is not a plain file name'
                                                          : expect.replace(/^refuse:/, '');
      // A deflate bomb: the JS codec words it its own way.
      const pattern = want === 'more than the expected' ? /more than/ : new RegExp(want.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
      await assert.rejects(attempt(), (e) => e instanceof qk.QcowkitError && pattern.test(e.message),
                           `${name}: should be refused saying '${want}'`);
      ++refused;
    }
  }
  assert.ok(refused > 40, `only ${refused} refusals`);
  assertStillWorks(qk);
});
