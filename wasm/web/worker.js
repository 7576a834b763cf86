// The page's worker: owns the qcowkit module and the opened image, so File
// reads (FileReaderSync) and OPFS writes (sync access handles) can be
// synchronous without freezing the page. Messages in: open (every file the
// user gave; the image is one of them, the others are what it may name as
// its backing file), convert, cancel. Messages out: info, open-error (with
// the names given), check, map, progress, converted, cancelled, error
// (each error carries the core's message and errno name). The same script
// also runs as a helper for parallel conversions (message in: part;
// out: part-progress, part-done, part-error).
'use strict';
importScripts('qcowkit.js');

const MAP_BINS = 160 * 32;  // must match the canvas grid in app.js
const OUTPUT_DIR = 'qcowkit-output';

let qk = null;
let image = null;
let currentFiles = [], currentTop = null, currentFormat;  // what helper workers open too
let abort = null;
let converting = Promise.resolve();  // the running conversion, if any

function report(type, e) {
  // A RuntimeError means the module itself died (an abort, which the core
  // is built never to reach): the next file gets a fresh module.
  if (e instanceof WebAssembly.RuntimeError) { qk = null; image = null; }
  postMessage({ type, message: e && e.message ? e.message : String(e), errno: e && e.errno });
}

async function module() {
  if (!qk) qk = await createQcowkit();
  return qk;
}

// Which of the given files is the image: `top` (a file name) when the page
// says, else the first one that opens and that no other given file names as
// its backing file (a chain dropped in any order), else the first one.
function chooseTop(q, files, top) {
  if (top && files.some((f) => f.name === top)) return top;
  if (files.length === 1) return files[0].name;
  const named = new Set(), opened = [];
  for (const f of files) {
    let probe = null;
    try {
      probe = q.open(f, { files: files.filter((g) => g !== f) });
      const info = probe.info();
      opened.push(f.name);
      if (info.backingFile) named.add(info.backingFile.split(/[\\/]/).pop());
    } catch (e) {
      /* not an image that opens on its own: not the top */
    } finally {
      if (probe) probe.close();
    }
  }
  return opened.find((n) => !named.has(n)) || files[0].name;
}

// `format`: the top image's format, when the user says (else by content).
async function open(files, top, format) {
  const q = await module();
  // A new file while converting: stop the conversion before closing its source.
  if (abort) abort.abort();
  await converting.catch(() => {});
  try { if (image) image.close(); } catch (e) { /* the old file may be gone */ }
  image = null;
  currentFiles = files;
  let file;
  try {
    currentTop = chooseTop(q, files, top);
    currentFormat = format;
    file = files.find((f) => f.name === currentTop);
    image = q.open(file, { files: files.filter((f) => f !== file), format });
  } catch (e) {
    image = null;
    postMessage({ type: 'open-error', message: e.message, errno: e.errno, name: currentTop,
                  files: files.map((f) => f.name) });
    return;
  }
  const info = image.info();
  postMessage({ type: 'info', info, name: file.name, size: file.size, files: files.map((f) => f.name) });
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
    postMessage({ type: 'check', report: null, format: info.format });
  }
}

// What the page's choices mean: the target format and its qemu-img options.
const TARGETS = {
  raw: { to: 'raw' },
  qcow2: { to: 'qcow2' },
  // What VMware, ESXi and OVF imports take.
  vmdk: { to: 'vmdk', formatOptions: { subformat: 'streamOptimized' } },
  // What Azure takes: a fixed VHD whose size is exact (force_size: no
  // CHS rounding) and a whole number of MiB.
  vhd: { to: 'vpc', formatOptions: { subformat: 'fixed', force_size: 'on' }, sizeAlignment: 1 << 20 },
};

function currentSource(snapshot) {
  const file = currentFiles.find((f) => f.name === currentTop);
  return qk.open(file, { files: currentFiles.filter((f) => f !== file), snapshot, format: currentFormat });
}

// Raw conversions of large images are split across this worker and helper
// workers (each with its own module), all writing one OPFS file through
// 'readwrite-unsafe' sync access handles. The options may lower the size
// threshold or cap the worker count (the page passes ?workers=&parallelFrom=).
const PARALLEL_FROM = 256 << 20;
// Each worker adds its own module, and a reader worker with 24 MiB of
// buffers, to the tab (a 4 GiB conversion peaked at 0.3 GiB with one, 0.35
// GiB with two; it was 0.46 and 0.72 before the reading moved to reader
// workers), and two already keep two cores busy with their readers, so two
// is the default, whatever the core count.
const DEFAULT_WORKERS = 2;
const PART_ALIGN = 4 << 20;  // parts start on the converter's chunk boundaries

async function outputDir() {
  const root = navigator.storage && navigator.storage.getDirectory ? await navigator.storage.getDirectory() : null;
  if (!root || typeof FileSystemFileHandle === 'undefined' ||
      !FileSystemFileHandle.prototype.createSyncAccessHandle) return null;
  return root;
}

// Where the output goes: an OPFS file written through a sync access handle
// (never the whole image in memory), or, where OPFS is missing, memory.
// `shared` asks for a handle other workers can open at the same time; null
// when the browser cannot.
async function openOutput(name, shared) {
  const root = await outputDir();
  if (root) {
    // Earlier outputs are dropped so they do not fill the origin's quota.
    try { await root.removeEntry(OUTPUT_DIR, { recursive: true }); } catch (e) { /* none yet */ }
    const dir = await root.getDirectoryHandle(OUTPUT_DIR, { create: true });
    const handle = await dir.getFileHandle(name, { create: true });
    let access;
    if (shared) {
      try {
        access = await handle.createSyncAccessHandle({ mode: 'readwrite-unsafe' });
      } catch (e) {
        return null;
      }
    } else {
      access = await handle.createSyncAccessHandle();
    }
    return { device: new qk.devices.OpfsDevice(access), opfs: true, shared: !!shared,
             finish() { access.flush(); access.close(); } };
  }
  if (shared) return null;
  const memory = new qk.devices.MemoryDevice();
  return { device: memory, opfs: false, finish() {} };
}

async function openSharedPart(name) {
  const root = await outputDir();
  const dir = await root.getDirectoryHandle(OUTPUT_DIR);
  const handle = await dir.getFileHandle(name);
  const access = await handle.createSyncAccessHandle({ mode: 'readwrite-unsafe' });
  return { device: new qk.devices.OpfsDevice(access), finish() { access.flush(); access.close(); } };
}

// [start, end) ranges, one per worker, on PART_ALIGN boundaries.
function splitParts(size, count) {
  const step = Math.ceil(size / count / PART_ALIGN) * PART_ALIGN;
  const parts = [];
  for (let start = 0; start < size; start += step) parts.push({ start, end: Math.min(size, start + step) });
  return parts;
}

// Read-ahead statistics (bytes of large reads served and missed) summed
// over this worker's and the helpers'.
function addReadAhead(mine, others) {
  const sum = { ...mine };
  for (const o of others) for (const k in sum) sum[k] += (o && o[k]) || 0;
  return sum;
}

function progressReporter() {
  let last = 0;
  return (done, total) => {
    const now = Date.now();
    if (now - last > 50 || done === total) { last = now; postMessage({ type: 'progress', done, total }); }
  };
}

async function convert(options) {
  if (!image) return report('error', new Error('open an image first'));
  // Made before the first await, so a cancel that arrives while the output
  // is being opened is not lost.
  abort = new AbortController();
  const name = options.name;
  // An internal snapshot is converted from a read-only view of it.
  let source = image;
  const target = TARGETS[options.to];
  if (!target) return report('error', new Error('unknown output format ' + options.to));
  try {
    if (options.snapshot) source = currentSource(options.snapshot);
  } catch (e) {
    abort = null;
    return report('error', e);
  }
  if (options.stream) return convertStreamed(source, options);
  const size = source.info().virtualSize;
  const workers = Math.max(1, Math.min(options.workers ||
                                       Math.min(DEFAULT_WORKERS, navigator.hardwareConcurrency || 1), 8));
  const parallelFrom = options.parallelFrom !== undefined ? options.parallelFrom : PARALLEL_FROM;
  let output = null;
  if (options.to === 'raw' && workers > 1 && size >= parallelFrom && size > PART_ALIGN)
    output = await openOutput(name, true);
  const parallel = !!output;
  if (!output) output = await openOutput(name, false);
  const helpers = [];
  const helperReadAhead = [];  // what each helper's read-ahead served
  try {
    if (parallel) {
      await convertInParts(output, size, workers, helpers);
    } else {
      await source.convert({ ...target, compress: options.to === 'qcow2' && options.compress,
                             clusterSize: options.clusterSize, fileName: name,
                             output: output.device, signal: abort.signal }, progressReporter());
    }
    const outSize = output.device.size();
    output.finish();
    const readAhead = addReadAhead(source.readAheadStats(), helperReadAhead);
    if (output.opfs) {
      postMessage({ type: 'converted', name, size: outSize, dir: OUTPUT_DIR, workers: parallel ? helpers.length + 1 : 1,
                    readAhead });
    } else {
      const bytes = output.device.bytes().slice();
      postMessage({ type: 'converted', name, size: outSize, bytes, workers: 1, readAhead }, [bytes.buffer]);
    }
  } catch (e) {
    try { output.finish(); } catch (ignored) { /* already closed */ }
    report(e && e.errno === 'ECANCELED' ? 'cancelled' : 'error', e);
  } finally {
    for (const h of helpers) h.terminate();
    if (source !== image) source.close();
    abort = null;
  }

  async function convertInParts(out, total, count, spawned) {
    out.device.truncate(0);  // a fresh file of the right size reads as zeroes
    out.device.truncate(total);
    const parts = splitParts(total, count);
    const done = new Array(parts.length).fill(0);
    const reportProgress = progressReporter();
    const sum = () => done.reduce((a, b) => a + b, 0);
    const helperRuns = parts.slice(1).map((part, i) => new Promise((resolve, reject) => {
      const helper = new Worker('worker.js');
      spawned.push(helper);
      helper.onmessage = (event) => {
        const msg = event.data;
        if (msg.type === 'part-progress') { done[i + 1] = msg.done; reportProgress(sum(), total); }
        else if (msg.type === 'part-done') { helperReadAhead.push(msg.readAhead); resolve(); }
        else if (msg.type === 'part-error') reject(Object.assign(new Error(msg.message), { errno: msg.errno }));
      };
      helper.onerror = (e) => reject(new Error('a helper worker failed: ' + e.message));
      helper.postMessage({ type: 'part', files: currentFiles, top: currentTop, format: currentFormat,
                           snapshot: options.snapshot,
                           name, part });
    }));
    const cancelled = new Promise((resolve, reject) => abort.signal.addEventListener('abort', () =>
      reject(Object.assign(new Error('conversion cancelled'), { errno: 'ECANCELED' }))));
    const mine = source.convert({ to: 'raw', output: out.device, part: parts[0], signal: abort.signal },
                               (d) => { done[0] = d; reportProgress(sum(), total); });
    await Promise.race([Promise.all([mine, ...helperRuns]), cancelled]);
  }
}

// A qcow2 image written front to back by the core's stream writer, each
// chunk posted to `options.port` as it is produced: the page's service
// worker serves them as a download (sw.js), so nothing is staged in OPFS or
// memory. The service worker says 'pull' when its queue has room (the
// StreamDevice waits for that once 32 MiB are outstanding) and 'cancel'
// when the user stops the download.
async function convertStreamed(source, options) {
  const port = options.port;
  const output = new qk.devices.StreamDevice((bytes) => port.postMessage({ chunk: bytes.buffer }, [bytes.buffer]));
  port.onmessage = (event) => {
    if (event.data.type === 'cancel') abort.abort();
    output.consumed();  // a pull, or a cancel that must not leave us waiting
  };
  abort.signal.addEventListener('abort', () => output.consumed());
  try {
    await source.convert({ to: 'qcow2', stream: true, compress: !!options.compress,
                           clusterSize: options.clusterSize, output, signal: abort.signal },
                         progressReporter());
    port.postMessage({ done: true });
    postMessage({ type: 'converted', name: options.name, size: output.length, streamed: true, workers: 1 });
  } catch (e) {
    port.postMessage({ error: String((e && e.message) || e) });
    report(e && e.errno === 'ECANCELED' ? 'cancelled' : 'error', e);
  } finally {
    port.close();
    if (source !== image) source.close();
    abort = null;
  }
}

// A helper worker: converts one part into the shared OPFS file.
async function convertPart(msg) {
  const q = await module();
  let source = null, out = null;
  try {
    const file = msg.files.find((f) => f.name === msg.top);
    source = q.open(file, { files: msg.files.filter((f) => f !== file), format: msg.format,
                            snapshot: msg.snapshot || undefined });
    out = await openSharedPart(msg.name);
    await source.convert({ to: 'raw', output: out.device, part: msg.part },
                         (done) => postMessage({ type: 'part-progress', done }));
    out.finish();
    out = null;
    postMessage({ type: 'part-done', readAhead: source.readAheadStats() });
  } catch (e) {
    report('part-error', e);
  } finally {
    if (out) try { out.finish(); } catch (ignored) { /* closing anyway */ }
    if (source) source.close();
  }
}

onmessage = (event) => {
  const msg = event.data;
  const run = msg.type === 'open' ? open(msg.files, msg.top, msg.format)
            : msg.type === 'convert' ? (converting = convert(msg))
            : msg.type === 'part' ? convertPart(msg)
            : msg.type === 'cancel' ? Promise.resolve(abort && abort.abort())
            : Promise.reject(new Error('unknown message ' + msg.type));
  run.catch((e) => report('error', e));
};
