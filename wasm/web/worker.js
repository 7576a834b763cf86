// The page's worker: owns the qcowkit module and the opened image, so File
// reads (FileReaderSync) and OPFS writes (sync access handles) can be
// synchronous without freezing the page. Messages in: open, convert,
// cancel. Messages out: info, check, map, progress, converted, cancelled,
// error (each error carries the core's message and errno name).
'use strict';
importScripts('qcowkit.js');

const MAP_BINS = 160 * 32;  // must match the canvas grid in app.js
const OUTPUT_DIR = 'qcowkit-output';

let qk = null;
let image = null;
let base = null;  // the backing image, when the user picked one
let abort = null;
let converting = Promise.resolve();  // the running conversion, if any

function report(type, e) {
  postMessage({ type, message: e && e.message ? e.message : String(e), errno: e && e.errno });
}

async function module() {
  if (!qk) qk = await createQcowkit();
  return qk;
}

async function open(file, backing) {
  const q = await module();
  // A new file while converting: stop the conversion before closing its source.
  if (abort) abort.abort();
  await converting.catch(() => {});
  for (const old of [image, base]) {
    try { if (old) old.close(); } catch (e) { /* the old file may be gone */ }
  }
  image = base = null;
  try {
    if (backing) base = q.open(backing);
    image = q.open(file, { backing: base || undefined });
  } catch (e) {
    return report('error', e);
  }
  const info = image.info();
  postMessage({ type: 'info', info, name: file.name, size: file.size });
  // Let the info paint before the slower walks.
  await new Promise((r) => setTimeout(r, 0));
  try {
    postMessage({ type: 'map', summary: image.mapSummary(MAP_BINS) });
  } catch (e) {
    report('map-error', e);
  }
  if (info.format === 'qcow2') {
    try {
      postMessage({ type: 'check', report: image.check() });
    } catch (e) {
      report('check-error', e);
    }
  } else {
    postMessage({ type: 'check', report: null });
  }
}

// Where the output goes: an OPFS file written through a sync access handle
// (never the whole image in memory), or, where OPFS is missing, memory.
async function openOutput(name) {
  const root = navigator.storage && navigator.storage.getDirectory ? await navigator.storage.getDirectory() : null;
  if (root && typeof FileSystemFileHandle !== 'undefined' &&
      FileSystemFileHandle.prototype.createSyncAccessHandle) {
    // Earlier outputs are dropped so they do not fill the origin's quota.
    try { await root.removeEntry(OUTPUT_DIR, { recursive: true }); } catch (e) { /* none yet */ }
    const dir = await root.getDirectoryHandle(OUTPUT_DIR, { create: true });
    const handle = await dir.getFileHandle(name, { create: true });
    const access = await handle.createSyncAccessHandle();
    return { device: new qk.devices.OpfsDevice(access), opfs: true,
             finish() { access.flush(); access.close(); } };
  }
  const memory = new qk.devices.MemoryDevice();
  return { device: memory, opfs: false, finish() {} };
}

async function convert(options) {
  if (!image) return report('error', new Error('open an image first'));
  const name = options.name;
  const output = await openOutput(name);
  abort = new AbortController();
  let last = 0;
  try {
    await image.convert({ to: options.to, compress: options.compress, clusterSize: options.clusterSize,
                          output: output.device, signal: abort.signal }, (done, total) => {
      const now = Date.now();
      if (now - last > 50 || done === total) { last = now; postMessage({ type: 'progress', done, total }); }
    });
    const size = output.device.size();
    output.finish();
    if (output.opfs) {
      postMessage({ type: 'converted', name, size, dir: OUTPUT_DIR });
    } else {
      const bytes = output.device.bytes().slice();
      postMessage({ type: 'converted', name, size, bytes }, [bytes.buffer]);
    }
  } catch (e) {
    try { output.finish(); } catch (ignored) { /* already closed */ }
    report(e && e.errno === 'ECANCELED' ? 'cancelled' : 'error', e);
  } finally {
    abort = null;
  }
}

onmessage = (event) => {
  const msg = event.data;
  const run = msg.type === 'open' ? open(msg.file, msg.backing)
            : msg.type === 'convert' ? (converting = convert(msg))
            : msg.type === 'cancel' ? Promise.resolve(abort && abort.abort())
            : Promise.reject(new Error('unknown message ' + msg.type));
  run.catch((e) => report('error', e));
};
