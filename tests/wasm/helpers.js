// Shared by the node tests of the WebAssembly module: loading it from the
// wasm build, the interop images, and running qemu-img.
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const root = path.resolve(__dirname, '../..');
const wasmDir = process.env.QCOWKIT_WASM_DIR || path.join(root, 'build-wasm/wasm');

let modulePromise = null;

// The module, built by `cmake --preset wasm && cmake --build --preset wasm`.
function loadQcowkit() {
  if (!modulePromise) {
    const js = path.join(wasmDir, 'qcowkit.js');
    const wasm = path.join(wasmDir, 'qcowkit.wasm');
    if (!fs.existsSync(js) || !fs.existsSync(wasm))
      throw new Error(`${js} is missing: build the wasm preset first (make wasm; ` +
                      'needs the Debian package emscripten)');
    const createQcowkit = require(js);
    modulePromise = createQcowkit({ wasmBinary: fs.readFileSync(wasm) });
  }
  return modulePromise;
}

// The interop images (tests/interop/make-images.sh), made once per run by
// the wasm-images CTest fixture into QCOWKIT_IMAGES_DIR.
function interopImages() {
  const dir = process.env.QCOWKIT_IMAGES_DIR;
  if (!dir) throw new Error('QCOWKIT_IMAGES_DIR is not set (run through ctest, or set it to a make-images.sh OUTDIR)');
  const tsv = path.join(dir, 'images.tsv');
  if (!fs.existsSync(tsv)) throw new Error(`${tsv} is missing: tests/interop/make-images.sh ${dir} failed?`);
  return fs.readFileSync(tsv, 'utf8').trim().split('\n').map((line) => {
    const [name, image, raw, backing] = line.split('\t');
    return { name, image, raw, backing: backing === '-' ? null : backing };
  });
}

function tool(name, pkg) {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
  } catch (e) {
    throw new Error(`${name} is missing: apt-get install ${pkg}`);
  }
  return name;
}

function qemuImg(args, options) {
  return execFileSync(tool('qemu-img', 'qemu-utils'), args, { encoding: 'utf8', ...options });
}
function qemuImgJson(args) { return JSON.parse(qemuImg([...args, '--output=json'])); }

// Scratch directories, removed when the test process exits (some hold
// hundreds of megabytes, and every run makes new ones).
const scratchDirs = [];
process.on('exit', () => {
  for (const dir of scratchDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function tmpDir(label) {
  const base = process.env.QCOWKIT_TEST_TMP || require('os').tmpdir();
  fs.mkdirSync(base, { recursive: true });
  const dir = fs.mkdtempSync(path.join(base, `${label}-`));
  scratchDirs.push(dir);
  return dir;
}

// Files compared in 1 MiB slices (they may be large).
function sameFiles(a, b) {
  const sa = fs.statSync(a).size, sb = fs.statSync(b).size;
  if (sa !== sb) return `sizes differ: ${a} is ${sa} bytes, ${b} is ${sb}`;
  const fa = fs.openSync(a, 'r'), fb = fs.openSync(b, 'r');
  try {
    const ba = Buffer.alloc(1 << 20), bb = Buffer.alloc(1 << 20);
    for (let pos = 0; pos < sa; pos += ba.length) {
      const n = fs.readSync(fa, ba, 0, ba.length, pos);
      fs.readSync(fb, bb, 0, bb.length, pos);
      const cmp = ba.subarray(0, n).compare(bb.subarray(0, n));
      if (cmp !== 0) {
        let i = 0;
        while (ba[i] === bb[i]) ++i;
        return `contents differ at offset ${pos + i}`;
      }
    }
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
  return null;
}

module.exports = { loadQcowkit, interopImages, qemuImg, qemuImgJson, tool, tmpDir, sameFiles, root };
