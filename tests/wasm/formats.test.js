// The module on the other formats (vmdk, vpc, vdi, vhdx, qcow), made by qemu-img
// (tests/formats/make-images.sh): info and map agree with qemu-img's, the
// contents read as qemu-img reads them, and conversions to qcow2, raw,
// vmdk (streamOptimized) and vhd (fixed, Azure-ready) pass qemu-img check
// where it checks that format and equal the source for qemu-img compare.
// Also the browser Host's rule: a backing file is read only when it was
// given, found by the name the image records, else the error names it.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const path = require('path');
const { loadQcowkit, qemuImg, qemuImgJson, tmpDir, sameFiles } = require('./helpers');

function formatImages() {
  const dir = process.env.QCOWKIT_FORMAT_IMAGES_DIR;
  if (!dir) throw new Error('QCOWKIT_FORMAT_IMAGES_DIR is not set (run through ctest, or set it to a ' +
                            'tests/formats/make-images.sh OUTDIR)');
  const tsv = path.join(dir, 'images.tsv');
  if (!fs.existsSync(tsv)) throw new Error(`${tsv} is missing: tests/formats/make-images.sh ${dir} failed?`);
  return fs.readFileSync(tsv, 'utf8').trim().split('\n').map((line) => {
    const [name, format, image, raw] = line.split('\t');
    return { name, format, image, raw };
  });
}

// [start, end, "zero,data"] per run; neighbours with the same flags merged
// (qemu-img and the core split runs differently). qemu-img also asks the
// host file system for holes and calls data in them zero (a fixed VHD's,
// a static VDI's); a browser File cannot tell holes, so data is data.
function flagRanges(runs) {
  const out = [];
  for (const r of runs) {
    const flags = [!r.data && !!r.zero, !!r.data].join(',');
    const last = out[out.length - 1];
    if (last && last[1] === r.start && last[2] === flags) last[1] = r.start + r.length;
    else out.push([r.start, r.start + r.length, flags]);
  }
  return out;
}

// The extent files a vmdk descriptor names (monolithicFlat, twoGbMaxExtent*),
// next to it: what a page user drops together with the descriptor.
function extentFiles(image) {
  const text = fs.readFileSync(image).subarray(0, 65536).toString('latin1');
  if (!text.startsWith('# Disk DescriptorFile')) return [];
  const names = [...text.matchAll(/^(?:RW|RDONLY|NOACCESS) \d+ \w+ "([^"]+)"/gm)].map((m) => m[1]);
  return names.map((n) => path.join(path.dirname(image), n));
}

const images = formatImages();

for (const entry of images) {
  test(`${entry.name}: info and map as qemu-img's, contents as qemu-img reads them`, async () => {
    const qk = await loadQcowkit();
    // With the format, as qemu-img -f: a fixed VHD is not found by content.
    const files = extentFiles(entry.image);
    const image = qk.open(entry.image, { format: entry.format, files });
    try {
      // Found by content as qemu-img finds it (a fixed VHD has no header: both call it raw).
      const detected = qk.open(entry.image, { files });
      assert.strictEqual(detected.info().format, qemuImgJson(['info', '-U', entry.image]).format);
      detected.close();
      const ours = image.info();
      const theirs = qemuImgJson(['info', '-U', '-f', entry.format, entry.image]);
      assert.strictEqual(ours.format, theirs.format);
      assert.strictEqual(ours.virtualSize, theirs['virtual-size']);
      if (theirs['cluster-size'] !== undefined) assert.strictEqual(ours.clusterSize, theirs['cluster-size']);
      const specific = theirs['format-specific'];
      if (specific) {
        assert.strictEqual(ours.formatSpecific.type, specific.type);
        for (const key of ours.formatSpecific.order)
          if (typeof specific.data[key] !== 'object')
            assert.strictEqual(ours.formatSpecific.data[key], specific.data[key], key);
      }
      assert.throws(() => image.check(), (e) => e.errno === 'ENOTSUP' && /only qcow2 is checked/.test(e.message));
      const ourMap = image.map();
      if (entry.format === 'vhdx') {
        // qemu-img 7.2's vhdx driver has no block status (it calls every
        // byte data): what ours maps as zero or a hole must read as zeroes.
        const raw = fs.readFileSync(entry.raw);
        for (const r of ourMap.filter((run) => !run.data))
          assert.ok(raw.subarray(r.start, r.start + r.length).every((b) => b === 0),
                    `${r.start}+${r.length} is mapped as zeroes but holds data`);
      } else {
        const theirMap = qemuImgJson(['map', '-U', '-f', entry.format, entry.image]);
        assert.deepStrictEqual(flagRanges(ourMap), flagRanges(theirMap));
      }
      const out = path.join(tmpDir(`wasm-${entry.name}`), 'out.raw');
      await image.convert({ to: 'raw', output: out });
      assert.strictEqual(sameFiles(out, entry.raw), null);
    } finally {
      image.close();
    }
  });
}

// Each output as the page makes it (and vhdx, through the JS API), from a
// vmdk, a vhd, a vdi and a vhdx.
const OUTPUTS = [
  { label: 'qcow2', options: { to: 'qcow2' }, format: 'qcow2', check: true },
  { label: 'qcow2 compressed', options: { to: 'qcow2', compress: true }, format: 'qcow2', check: true },
  { label: 'raw', options: { to: 'raw' }, format: 'raw' },
  { label: 'vmdk streamOptimized', options: { to: 'vmdk', formatOptions: { subformat: 'streamOptimized' } },
    format: 'vmdk', check: true, createType: 'streamOptimized' },
  { label: 'vhdx', options: { to: 'vhdx' }, format: 'vhdx', check: true },
  { label: 'vhd fixed for Azure', format: 'vpc', azure: true,
    options: { to: 'vpc', formatOptions: { subformat: 'fixed', force_size: 'on' }, sizeAlignment: 1 << 20 } },
];
for (const source of ['vmdk-sparse', 'vpc-dynamic', 'vdi-odd', 'vhdx-odd']) {
  for (const output of OUTPUTS) {
    test(`${source} converted to ${output.label}: qemu-img check and compare agree`, async () => {
      const entry = images.find((e) => e.name === source);
      const qk = await loadQcowkit();
      const image = qk.open(entry.image);
      const out = path.join(tmpDir(`wasm-out-${source}`), 'out.' + output.format);
      try {
        await image.convert({ ...output.options, output: out });
      } finally {
        image.close();
      }
      const info = qemuImgJson(['info', '-f', output.format, out]);
      assert.strictEqual(info.format, output.format);
      if (output.check) qemuImg(['check', '-q', '-f', output.format, out]);
      if (output.createType) assert.strictEqual(info['format-specific'].data['create-type'], output.createType);
      if (output.azure) {
        assert.strictEqual(info['virtual-size'] % (1 << 20), 0, 'a whole number of MiB');
        assert.ok(info['virtual-size'] >= qemuImgJson(['info', entry.raw])['virtual-size']);
        // Fixed: the data, then the 512-byte footer.
        assert.strictEqual(fs.statSync(out).size, info['virtual-size'] + 512);
      }
      // The same size (but the Azure VHD's, longer and zero-filled), the same contents.
      if (!output.azure) assert.strictEqual(info['virtual-size'], fs.statSync(entry.raw).size);
      qemuImg(['compare', '-q', '-f', output.format, '-F', 'raw', out, entry.raw]);
    });
  }
}

test('a format option the format does not know is refused, naming it', async () => {
  const qk = await loadQcowkit();
  const image = qk.open(images.find((e) => e.name === 'vdi-dynamic').image);
  try {
    await assert.rejects(image.convert({ to: 'vmdk', formatOptions: { subformat: 'nonsense' } }),
                         (e) => e.errno === 'EINVAL' && /nonsense/.test(e.message));
    await assert.rejects(image.convert({ to: 'vhdz' }), (e) => e.errno === 'EINVAL' && /unknown target format 'vhdz'/.test(e.message));
    await assert.rejects(image.convert({ to: 'vmdk', compress: true }), /compression needs a qcow2 destination/);
  } finally {
    image.close();
  }
});

test('a backing file is read only when given, found by the name the image records', async () => {
  const qk = await loadQcowkit();
  const dir = tmpDir('wasm-chain');
  const base = path.join(dir, 'base.qcow2'), top = path.join(dir, 'top.qcow2');
  const expected = images.find((e) => e.name === 'vmdk-sparse');
  qemuImg(['convert', '-f', 'vmdk', '-O', 'qcow2', expected.image, base]);
  qemuImg(['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', top]);
  // Not given: the error says which file to add.
  assert.throws(() => qk.open(top), (e) => e.errno === 'EPERM' && /base\.qcow2/.test(e.message) &&
                                           /add it too/.test(e.message));
  // Given under another name: still not found.
  assert.throws(() => qk.open(top, { files: [{ name: 'other.qcow2', source: base }] }), /base\.qcow2/);
  // Two files of one name are refused.
  assert.throws(() => qk.open(top, { files: [base, base] }), /two files are named 'base\.qcow2'/);
  // Given: the chain reads as qemu-img reads it.
  const image = qk.open(top, { files: [{ name: 'base.qcow2', source: fs.readFileSync(base) }] });
  try {
    assert.strictEqual(image.info().backingFile, 'base.qcow2');
    const out = path.join(dir, 'chain.raw');
    await image.convert({ to: 'raw', output: out });
    assert.strictEqual(sameFiles(out, expected.raw), null);
  } finally {
    image.close();
  }
});
