// Caches the page and the module so it works offline once loaded. Network
// first (a rebuilt module is picked up at once), the cache when offline.
// Also serves streamed downloads: the page registers one (a name and a
// MessagePort whose other end the conversion worker holds), then opens
// download/ID/NAME; the response's body is the chunks the worker posts, as
// they come, so the browser saves the image while it is being made.
'use strict';
const CACHE = 'qcowkit-v1';
const FILES = ['./', 'index.html', 'style.css', 'app.js', 'worker.js', 'qcowkit.js', 'qcowkit.wasm'];
// Bytes queued in a download's body before the worker is asked to wait.
const QUEUE_BYTES = 16 << 20;
const downloads = new Map();  // id -> {name, port}

self.addEventListener('install', (e) => e.waitUntil(caches.open(CACHE).then((c) => c.addAll(FILES))));
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));

self.addEventListener('message', (e) => {
  const msg = e.data;
  if (!msg || msg.type !== 'download' || !e.ports[0]) return;
  downloads.set(msg.id, { name: msg.name, port: e.ports[0] });
  e.ports[0].postMessage({ type: 'registered' });
});

function streamedDownload(id) {
  const entry = downloads.get(id);
  if (!entry) return new Response('no such download (it ended, or the page was reloaded)', { status: 404 });
  downloads.delete(id);
  const { port, name } = entry;
  const body = new ReadableStream({
    start(controller) {
      port.onmessage = (event) => {
        const m = event.data;
        if (m.chunk) controller.enqueue(new Uint8Array(m.chunk));
        else if (m.done) { controller.close(); port.close(); }
        else if (m.error) { controller.error(new Error(m.error)); port.close(); }
      };
    },
    pull() { port.postMessage({ type: 'pull' }); },
    cancel() { port.postMessage({ type: 'cancel' }); port.close(); },
  }, new ByteLengthQueuingStrategy({ highWaterMark: QUEUE_BYTES }));
  // RFC 6266: a plain ASCII fallback and the exact name, percent-encoded.
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return new Response(body, { headers: {
    'Content-Type': 'application/octet-stream',
    'Content-Disposition': `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`,
  } });
}

self.addEventListener('fetch', (e) => {
  if (e.request.method !== 'GET') return;
  const match = new URL(e.request.url).pathname.match(/\/download\/([^/]+)\/[^/]*$/);
  if (match) return e.respondWith(streamedDownload(decodeURIComponent(match[1])));
  e.respondWith(fetch(e.request).then((response) => {
    const copy = response.clone();
    caches.open(CACHE).then((c) => c.put(e.request, copy));
    return response;
  }).catch(() => caches.match(e.request)));
});
