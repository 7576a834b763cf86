#!/usr/bin/env node
// Converts IMAGE to raw OUT with the WebAssembly module in node and prints
// the seconds it took (module load excluded). Usage: node-convert.js IMAGE OUT
'use strict';
const fs = require('fs');
const path = require('path');

const wasmDir = process.env.QCOWKIT_WASM_DIR || path.resolve(__dirname, '../../build-wasm/wasm');

(async () => {
  const [image, out] = process.argv.slice(2);
  const qk = await require(path.join(wasmDir, 'qcowkit.js'))({
    wasmBinary: fs.readFileSync(path.join(wasmDir, 'qcowkit.wasm')) });
  const start = process.hrtime.bigint();
  const img = qk.open(image);
  await img.convert({ to: 'raw', output: out });
  img.close();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(JSON.stringify({ seconds, wasmHeapBytes: qk.HEAPU8.length }));
})().catch((e) => { console.error(e.message); process.exit(1); });
