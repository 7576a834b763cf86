// No C++ exception reaches JavaScript: every binding is guarded, so what
// the C++ library throws (std::bad_alloc when the module's memory cap is
// reached, std::length_error, anything else) comes back as an error value,
// and the module keeps working afterwards. Module.testThrow is a test-only
// binding that throws on request from inside a guarded call.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { loadQcowkit } = require('./helpers');

// A few MiB of a pattern, as a raw image.
function pattern(n) {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; ++i) b[i] = (i * 7 + (i >> 12)) & 0xff;
  return b;
}

// The module still opens, reads and converts an image.
async function stillWorks(qk) {
  const bytes = pattern(3 << 20);
  const image = qk.open(bytes);
  try {
    assert.deepStrictEqual(image.read(4096, 4096), bytes.subarray(4096, 8192));
    const out = await image.convert({ to: 'qcow2' });
    const again = qk.open(out.bytes().slice());
    try {
      assert.strictEqual(again.info().format, 'qcow2');
      assert.deepStrictEqual(again.read((3 << 20) - 512, 512), bytes.subarray((3 << 20) - 512));
    } finally {
      again.close();
    }
  } finally {
    image.close();
  }
}

test('an allocation past the memory cap is ENOMEM, not an abort', async () => {
  const qk = await loadQcowkit();
  const errno = qk.errnoTable();
  for (let i = 0; i < 3; ++i) {
    // 1.5 GiB: more than the module may ever have (MAXIMUM_MEMORY is 1 GiB).
    const r = qk.testThrow('bad_alloc', 1.5 * 2 ** 30);
    assert.ok(r.error, 'the allocation should fail: ' + JSON.stringify(r));
    assert.strictEqual(r.error.code, errno.ENOMEM);
    assert.match(r.error.message, /testThrow: out of memory/);
  }
  await stillWorks(qk);
  // A smaller one still succeeds: the memory is there to use.
  assert.strictEqual(qk.testThrow('bad_alloc', 64 << 20).value, 64 << 20);
});

test('length_error, other std::exceptions and non-standard throws are errors too', async () => {
  const qk = await loadQcowkit();
  const errno = qk.errnoTable();
  const cases = [['length_error', errno.ENOMEM, /too large to allocate/],
                 ['runtime_error', errno.EIO, /internal error: thrown on purpose/],
                 ['int', errno.EIO, /exception of unknown type/]];
  for (const [kind, code, message] of cases) {
    const r = qk.testThrow(kind, 0);
    assert.ok(r.error, kind);
    assert.strictEqual(r.error.code, code, kind);
    assert.match(r.error.message, message);
  }
  await stillWorks(qk);
});
