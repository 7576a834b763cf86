// The WebAssembly module over every hostile image, under node: each image is
// opened (read-only, as the web page does), read through, mapped and checked.
// A refusal or a failing read must be a QcowkitError with a message; an image
// the core must refuse is refused; an image it must accept opens and reads;
// and after each image the module still opens and reads the valid one.
//   node run-wasm.js BUILD-WASM/wasm/qcowkit.js IMAGES_DIR
'use strict';
const fs = require('fs');
const path = require('path');

async function main() {
  const [js, images] = process.argv.slice(2);
  const wasm = js && js.replace(/\.js$/, '.wasm');
  if (!js || !fs.existsSync(js) || !fs.existsSync(wasm)) {
    console.error(`run-wasm: ${js} is missing: build the wasm preset first (make wasm; ` +
                  'needs the Debian package emscripten)');
    process.exit(1);
  }
  const qk = await require(path.resolve(js))({ wasmBinary: fs.readFileSync(wasm) });
  const rows = fs.readFileSync(path.join(images, 'expected.tsv'), 'utf8').trim().split('\n');
  let passed = 0, failed = 0;
  const clean = (e) => e && e.name === 'QcowkitError' && typeof e.message === 'string' && e.message.length > 0;
  for (const row of rows) {
    const [name, expect, what] = row.split('\t');
    const bytes = new Uint8Array(fs.readFileSync(path.join(images, name + '.qcow2')));
    const problems = [];
    let image = null, opened = false, readFailed = false, note = '';
    try {
      image = qk.open(bytes, { format: 'qcow2' });
      opened = true;
    } catch (e) {
      if (!clean(e)) problems.push(`open threw something else than a QcowkitError: ${e && e.stack}`);
      note = e && e.message;
    }
    if (image) {
      const info = image.info();
      const size = Number(info.virtualSize !== undefined ? info.virtualSize : info.size);
      for (let pos = 0; pos < Math.min(size, 64 << 20); pos += 65536) {
        try {
          image.read(pos, Math.min(65536, size - pos));
        } catch (e) {
          if (!readFailed) note = `read: ${e && e.message}`;
          readFailed = true;
          if (!clean(e)) problems.push(`read threw something else than a QcowkitError: ${e && e.stack}`);
        }
      }
      for (const step of [() => image.map(0, size), () => image.check()]) {
        try { step(); } catch (e) { if (!clean(e)) problems.push(`map/check threw: ${e && e.stack}`); }
      }
      image.close();
    }
    // The module opens images as the page does: a backing file is read only
    // when it was given too, so an image naming one it was not given is
    // refused with a message naming that file (the CLI and the plugin open
    // such an image without its backing file instead).
    const backing = what && what.startsWith('backing file name ') ? what.slice('backing file name '.length) : null;
    if (backing) {
      if (opened) problems.push(`opened an image whose backing file was not given (${what})`);
      else if (!note.includes(`backing file '${backing}'`)) problems.push(`refused without naming the backing file: ${note}`);
    } else {
      if (expect === 'refuse' && opened) problems.push(`opened an image that must be refused (${what})`);
      if (expect === 'ok' && (!opened || readFailed)) problems.push(`could not read a valid image (${what})`);
    }
    try {
      const good = qk.open(new Uint8Array(fs.readFileSync(path.join(images, 'valid.qcow2'))), { format: 'qcow2' });
      good.read(0, 512);
      good.close();
    } catch (e) {
      problems.push(`the module stopped working afterwards: ${e && e.message}`);
    }
    if (problems.length) {
      failed++;
      console.log(`FAIL ${name}: ${problems.join('; ')}`);
    } else {
      passed++;
      console.log(`PASS ${name}: ${opened ? 'opened' : 'refused'}${note ? ` (${note})` : ''}, expected ${expect}`);
    }
  }
  console.log(`wasm: ${passed} passed, ${failed} failed`);
  process.exit(failed || !passed ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });
