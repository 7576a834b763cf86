// The web page in headless Chromium (Debian's, driven by playwright-core):
// pick a qemu-made compressed qcow2, see the info table, the check verdict
// and the map, convert it to raw, and the download equals the reference
// raw. Then a raw file is accepted, inspected as raw and converted to qcow2,
// a backing chain is read once the user gives the backing file too (the
// error before says which file to add), a vmdk, a vhdx and a vhd are
// converted to qcow2 (and the vhd to vmdk and an Azure vhd) as qemu-img reads them, a
// qcow2 is saved while it is converted (streamed through the service worker), and
// the page works offline once loaded.
// Screenshots are kept in the build directory as test artifacts.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { serveDirectory } = require('./static-server');
const { launchChromium } = require('./chromium');
const { interopImages, qemuImg, sameFiles, tmpDir, tool } = require('../wasm/helpers');

const webDir = process.env.QCOWKIT_WEB_DIR || path.resolve(__dirname, '../../build-wasm/wasm/web');
const artifacts = process.env.QCOWKIT_ARTIFACTS || tmpDir('browser-artifacts');
fs.mkdirSync(artifacts, { recursive: true });

let server, browser, page;

test.before(async () => {
  if (!fs.existsSync(path.join(webDir, 'qcowkit.wasm')))
    throw new Error(`${webDir} has no qcowkit.wasm: build the wasm preset first (make wasm)`);
  server = await serveDirectory(webDir);
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1100, height: 1250 }, acceptDownloads: true,
                                             serviceWorkers: 'block' });
  page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(server.url);
});

test.after(async () => {
  if (browser) await browser.close();
  if (server) server.close();
});

async function pick(file) {
  await page.setInputFiles('#picker', file);
  await page.waitForSelector('#result:not([hidden])', { timeout: 30000 });
  await page.waitForFunction(() => document.querySelectorAll('#legend li').length === 4, null, { timeout: 30000 });
}
async function infoTable() {
  return page.$$eval('#info tr', (rows) => Object.fromEntries(rows.map((r) =>
    [r.querySelector('th').textContent, r.querySelector('td').textContent])));
}
async function legend() {
  return page.$$eval('#legend li', (items) => Object.fromEntries(items.map((li) =>
    [li.dataset.kind, parseFloat(li.querySelector('.pct').textContent)])));
}
function formatImage(name) {
  const dir = process.env.QCOWKIT_FORMAT_IMAGES_DIR;
  if (!dir) throw new Error('QCOWKIT_FORMAT_IMAGES_DIR is not set (run through ctest)');
  const line = fs.readFileSync(path.join(dir, 'images.tsv'), 'utf8').trim().split('\n')
    .map((l) => l.split('\t')).find((f) => f[0] === name);
  if (!line) throw new Error(`no image ${name} in ${dir}/images.tsv`);
  return { name, format: line[1], image: line[2], raw: line[3] };
}
async function convertAndDownload(to, options) {
  await page.check(`input[name="to"][value="${to}"]`);
  if (options && options.compress) await page.check('#compress');
  await page.click('#convert');
  await page.waitForSelector('#download-link', { timeout: 120000 });
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-link')]);
  const saved = path.join(artifacts, download.suggestedFilename());
  await download.saveAs(saved);
  return saved;
}

test('a compressed qcow2: info, check, map, then conversion to raw equals the reference', async () => {
  const entry = interopImages().find((e) => e.name === 'zlib');
  await pick(entry.image);
  const info = await infoTable();
  assert.strictEqual(info.Format, 'qcow2');
  assert.match(info['Virtual size'], /25,178,112 bytes/);
  assert.match(info['Cluster size'], /64 KiB/);
  assert.strictEqual(info['Compression type'], 'zlib');
  assert.strictEqual(info['Refcount bits'], '16');
  await page.waitForSelector('#check .badge:not(.pending)', { timeout: 30000 });
  assert.strictEqual(await page.textContent('#check .badge'), 'clean');
  const shares = await legend();
  assert.ok(shares.compressed > 10, `compressed share ${shares.compressed}%`);
  assert.ok(shares.unallocated > 5, `unallocated share ${shares.unallocated}%`);
  const sum = Object.values(shares).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - 100) < 0.5, `shares add up to ${sum}%`);
  // The map canvas was drawn in more than one colour.
  const colours = await page.$eval('#map', (canvas) => {
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const seen = new Set();
    for (let i = 0; i < d.length; i += 4 * 97) seen.add(d[i] + ',' + d[i + 1] + ',' + d[i + 2]);
    return seen.size;
  });
  assert.ok(colours >= 3, `the map shows ${colours} colours`);
  await page.screenshot({ path: path.join(artifacts, 'page-qcow2.png'), fullPage: true });

  const saved = await convertAndDownload('raw');
  assert.strictEqual(sameFiles(saved, entry.raw), null);
  await page.screenshot({ path: path.join(artifacts, 'page-converted.png'), fullPage: true });
});

test('a raw file: inspected as raw, converted to compressed qcow2 that qemu-img finds equal', async () => {
  const entry = interopImages().find((e) => e.name === 'v3');
  await pick(entry.raw);
  const info = await infoTable();
  assert.strictEqual(info.Format, 'raw');
  assert.strictEqual(await page.textContent('#check .badge'), 'no metadata to check (raw)');
  const saved = await convertAndDownload('qcow2', { compress: true });
  execFileSync('qemu-img', ['check', '-q', saved]);
  execFileSync('qemu-img', ['compare', '-q', '-f', 'qcow2', '-F', 'raw', saved, entry.raw]);
});

test('a qcow2 with a backing file: the error names the file to add; added, the chain converts', async () => {
  const entry = interopImages().find((e) => e.name === 'backing');
  await page.setInputFiles('#picker', entry.image);
  await page.waitForSelector('#error:not([hidden])', { timeout: 30000 });
  assert.match(await page.textContent('#error-text'), /backing-base\.qcow2.*add it too/);
  assert.ok(await page.isHidden('#result'));
  assert.ok(await page.isVisible('#error-add-files'), 'the error offers to add the file');
  await page.setInputFiles('#add-picker', entry.backing);
  await page.waitForSelector('#result:not([hidden])', { timeout: 30000 });
  assert.ok(await page.isHidden('#error'));
  const info = await infoTable();
  assert.strictEqual(info.Format, 'qcow2');
  assert.match(info['Backing file'], /backing-base\.qcow2 \(qcow2\) — read from/);
  await page.waitForFunction(() => document.querySelectorAll('#legend li').length === 4);
  const saved = await convertAndDownload('raw');
  assert.strictEqual(sameFiles(saved, entry.raw), null);
  // Both files given at once, the base first: the page finds the top image.
  await page.goto(server.url);
  await page.setInputFiles('#picker', [entry.backing, entry.image]);
  await page.waitForSelector('#result:not([hidden])', { timeout: 30000 });
  assert.strictEqual(await page.textContent('#file-name'), path.basename(entry.image));
});

test('a vmdk converts to qcow2 that qemu-img finds clean and equal', async () => {
  const entry = formatImage('vmdk-sparse');
  await page.goto(server.url);
  assert.match(await page.textContent('#formats-hint'), /VMDK.*VHD.*VDI/s);
  await pick(entry.image);
  const info = await infoTable();
  assert.strictEqual(info.Format, 'vmdk');
  assert.strictEqual(info['create-type'], 'monolithicSparse');
  assert.match(await page.textContent('#check .badge'), /not checked/);
  await page.screenshot({ path: path.join(artifacts, 'page-vmdk.png'), fullPage: true });
  const saved = await convertAndDownload('qcow2');
  assert.match(path.basename(saved), /^vmdk-sparse\.qcow2$/);
  qemuImg(['check', '-q', saved]);
  qemuImg(['compare', '-q', '-f', 'qcow2', '-F', 'raw', saved, entry.raw]);
});

test('a vhdx converts to qcow2 that qemu-img finds clean and equal', async () => {
  const entry = formatImage('vhdx-dynamic');
  await page.goto(server.url);
  await pick(entry.image);
  const info = await infoTable();
  assert.strictEqual(info.Format, 'vhdx');
  assert.match(info['Known as'], /Hyper-V/);
  const saved = await convertAndDownload('qcow2');
  qemuImg(['check', '-q', saved]);
  qemuImg(['compare', '-q', '-f', 'qcow2', '-F', 'raw', saved, entry.raw]);
});

test('a vhd converts to qcow2, to a streamOptimized vmdk and to an Azure vhd, each as qemu-img reads it', async () => {
  const entry = formatImage('vpc-dynamic');
  await page.goto(server.url);
  await pick(entry.image);
  assert.strictEqual((await infoTable()).Format, 'vpc');
  const qcow2 = await convertAndDownload('qcow2');
  qemuImg(['check', '-q', qcow2]);
  qemuImg(['compare', '-q', '-f', 'qcow2', '-F', 'raw', qcow2, entry.raw]);
  const vmdk = await convertAndDownload('vmdk');
  assert.match(path.basename(vmdk), /\.vmdk$/);
  assert.match(qemuImg(['info', '-f', 'vmdk', vmdk]), /create type: streamOptimized/);
  qemuImg(['check', '-q', '-f', 'vmdk', vmdk]);
  qemuImg(['compare', '-q', '-f', 'vmdk', '-F', 'raw', vmdk, entry.raw]);
  const vhd = await convertAndDownload('vhd');
  assert.match(path.basename(vhd), /\.converted\.vhd$|\.vhd$/);
  const size = JSON.parse(qemuImg(['info', '--output=json', '-f', 'vpc', vhd]))['virtual-size'];
  assert.strictEqual(size % (1 << 20), 0, 'an Azure vhd is a whole number of MiB');
  qemuImg(['compare', '-q', '-f', 'vpc', '-F', 'raw', vhd, entry.raw]);
});

test('parallel raw conversion (three workers, one OPFS file) equals the reference', async () => {
  const entry = interopImages().find((e) => e.name === 'zstd');
  await page.goto(server.url + '?workers=3&parallelFrom=0');
  await pick(entry.image);
  const saved = await convertAndDownload('raw');
  assert.strictEqual(await page.getAttribute('#download-link', 'data-workers'), '3');
  // The page's own count of the conversion's seconds, which the benchmark reports.
  const seconds = Number(await page.getAttribute('#download-link', 'data-seconds'));
  assert.ok(seconds > 0 && seconds < 120, `data-seconds is ${seconds}`);
  assert.strictEqual(sameFiles(saved, entry.raw), null);
});

test('cancel stops a conversion: no download, and the page can convert again', async () => {
  const entry = interopImages().find((e) => e.name === 'zlib');
  await page.goto(server.url);
  await pick(entry.image);
  await page.check('input[name="to"][value="raw"]');
  // Both clicks in one task: the cancel reaches the worker right after the
  // convert request, before the conversion can finish on its own.
  await page.evaluate(() => {
    document.getElementById('convert').click();
    document.getElementById('cancel').click();
  });
  await page.waitForSelector('#convert:not([disabled])');
  assert.ok(await page.isHidden('#progress'), 'the progress bar is gone');
  assert.ok(await page.isHidden('#download'), 'nothing is offered for download');
  assert.ok(await page.isHidden('#error'), 'a cancel is not an error');
  const saved = await convertAndDownload('raw');
  assert.strictEqual(sameFiles(saved, entry.raw), null);
});

test('an encrypted image shows the error from the core, and the page keeps working', async () => {
  const entry = interopImages().find((e) => e.name === 'zlib');
  const bytes = fs.readFileSync(entry.image);
  bytes.writeUInt32BE(1, 32);  // crypt_method 1: AES
  const hostile = path.join(artifacts, 'encrypted.qcow2');
  fs.writeFileSync(hostile, bytes);
  await page.goto(server.url);
  await page.setInputFiles('#picker', hostile);
  await page.waitForSelector('#error:not([hidden])', { timeout: 30000 });
  assert.match(await page.textContent('#error'), /encrypted/);
  assert.ok(await page.isHidden('#result'));
  await pick(entry.image);
  assert.ok(await page.isHidden('#error'));
  assert.strictEqual((await infoTable()).Format, 'qcow2');
});

test('save while converting: a compressed qcow2 streamed through the service worker, nothing staged', async () => {
  const entry = formatImage('vmdk-sparse');
  const context = await browser.newContext({ serviceWorkers: 'allow', acceptDownloads: true });
  try {
    const p = await context.newPage();
    p.on('pageerror', (e) => console.error('page error:', e.message));
    await p.goto(server.url);
    // The service worker takes the page over once active (clients.claim).
    await p.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: 30000 });
    await p.setInputFiles('#picker', entry.image);
    await p.waitForSelector('#result:not([hidden])', { timeout: 30000 });
    await p.check('input[name="to"][value="qcow2"]');
    await p.waitForSelector('#stream:not([disabled])', { timeout: 10000 });
    await p.check('#compress');
    await p.check('#stream');
    const [download] = await Promise.all([p.waitForEvent('download', { timeout: 120000 }), p.click('#convert')]);
    assert.strictEqual(download.suggestedFilename(), 'vmdk-sparse.qcow2');
    const saved = path.join(artifacts, 'streamed-' + download.suggestedFilename());
    await download.saveAs(saved);
    assert.strictEqual(await download.failure(), null);
    await p.waitForSelector('#streamed', { timeout: 30000 });
    qemuImg(['check', '-q', saved]);
    qemuImg(['compare', '-q', '-f', 'qcow2', '-F', 'raw', saved, entry.raw]);
    const info = JSON.parse(qemuImg(['info', '--output=json', saved]));
    assert.strictEqual(info.format, 'qcow2');
    // Written as a stream: nothing went to the site's private storage.
    const staged = await p.evaluate(async () => {
      const names = [];
      for await (const name of (await navigator.storage.getDirectory()).keys()) names.push(name);
      return names;
    });
    assert.deepStrictEqual(staged, []);
  } finally {
    await context.close();
  }
});

test('once loaded, the page works offline (service worker cache)', async () => {
  const context = await browser.newContext({ serviceWorkers: 'allow' });
  try {
    const offline = await context.newPage();
    await offline.goto(server.url);
    await offline.evaluate(() => navigator.serviceWorker.ready);
    // The first visit installed the cache; go offline and load it again.
    await context.setOffline(true);
    await offline.reload();
    const entry = interopImages().find((e) => e.name === 'zlib');
    await offline.setInputFiles('#picker', entry.image);
    await offline.waitForSelector('#result:not([hidden])', { timeout: 30000 });
    assert.strictEqual(await offline.textContent('#info td'), 'qcow2');
  } finally {
    await context.close();
  }
});

test('an image with an internal snapshot lists it, and converts it as qemu-img does', async () => {
  const entry = interopImages().find((e) => e.name === 'snapshot');
  await page.goto(server.url);
  await pick(entry.image);
  assert.match(await page.textContent('#snapshots'), /before-edits \(id 1, \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, vm state 0 B\)/);
  await page.screenshot({ path: path.join(artifacts, 'page-snapshot.png'), fullPage: true });
  // The snapshot, not the current state: it differs from the current state.
  await page.selectOption('#convert-snapshot', '1');
  const saved = await convertAndDownload('raw');
  assert.match(path.basename(saved), /snapshot-1\.raw$/);
  const reference = path.join(tmpDir('page-snapshot'), 'before-edits.raw');
  qemuImg(['convert', '-U', '-l', 'snapshot.id=1', '-O', 'raw', entry.image, reference]);
  assert.strictEqual(sameFiles(saved, reference), null);
  const current = path.join(path.dirname(reference), 'current.raw');
  qemuImg(['convert', '-U', '-O', 'raw', entry.image, current]);
  assert.notStrictEqual(sameFiles(saved, current), null, 'the snapshot should differ from the current state');
});

// Large reads come from a reader worker streaming the file ahead of the
// conversion (wasm/js/read-ahead.js): the bytes must be exactly the file's,
// in order or not, with one worker or several.
function readAheadImages() {
  const dir = tmpDir('read-ahead');
  const crypto = require('crypto');
  // 48 MiB of random data, written front to back: one stream serves it.
  const randomRaw = path.join(dir, 'random.raw');
  const fd = fs.openSync(randomRaw, 'w');
  for (let i = 0; i < 48; ++i) fs.writeSync(fd, crypto.randomBytes(1 << 20));
  fs.closeSync(fd);
  const random = path.join(dir, 'random.qcow2');
  qemuImg(['convert', '-f', 'raw', '-O', 'qcow2', randomRaw, random]);
  // 64 MiB, each MiB its own byte, written in the order 32-47, 0-31,
  // 48-63: the file holds them in that order, so converting in guest order
  // jumps back in the file while the stream is still reading ahead into
  // the last part (the stream starts again there), then forward to it.
  const swapped = path.join(dir, 'swapped.qcow2');
  const swappedRaw = path.join(dir, 'swapped.raw');
  qemuImg(['create', '-q', '-f', 'qcow2', swapped, '64M']);
  const range = (from, n) => [...Array(n).keys()].map((i) => from + i);
  const order = [...range(32, 16), ...range(0, 32), ...range(48, 16)];
  const writes = order.flatMap((mib) => ['-c', `write -P ${mib + 1} ${mib}M 1M`]);
  execFileSync(tool('qemu-io', 'qemu-utils'), ['-f', 'qcow2', ...writes, swapped], { stdio: 'ignore' });
  fs.writeFileSync(swappedRaw, Buffer.concat(range(0, 64).map((mib) => Buffer.alloc(1 << 20, mib + 1))));
  return { random, randomRaw, swapped, swappedRaw };
}

test('large reads are read ahead by a reader worker, in file order or not, with one worker or two', async () => {
  const images = readAheadImages();
  const link = async (name) => Number(await page.getAttribute('#download-link', name));
  for (const query of ['?workers=1', '?workers=2&parallelFrom=0']) {
    await page.goto(server.url + query);
    await pick(images.random);
    const saved = await convertAndDownload('raw');
    assert.strictEqual(sameFiles(saved, images.randomRaw), null, query);
    const served = await link('data-read-ahead-served');
    assert.ok(served >= 16 << 20, `${query}: the read-ahead served ${served} bytes of 48 MiB`);
  }
  await page.goto(server.url + '?workers=1');
  await pick(images.swapped);
  const saved = await convertAndDownload('raw');
  assert.strictEqual(sameFiles(saved, images.swappedRaw), null);
  assert.ok(await link('data-read-ahead-restarts') >= 1, 'the jump back in the file restarts the stream');
  assert.ok(await link('data-read-ahead-served') > 0, 'and the stream then serves the rest');
});
