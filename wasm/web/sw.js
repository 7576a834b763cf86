// Caches the page and the module so it works offline once loaded. Network
// first (a rebuilt module is picked up at once), the cache when offline.
'use strict';
const CACHE = 'qcowkit-v1';
const FILES = ['./', 'index.html', 'style.css', 'app.js', 'worker.js', 'qcowkit.js', 'qcowkit.wasm'];

self.addEventListener('install', (e) => e.waitUntil(caches.open(CACHE).then((c) => c.addAll(FILES))));
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));
self.addEventListener('fetch', (e) => {
  if (e.request.method !== 'GET') return;
  e.respondWith(fetch(e.request).then((response) => {
    const copy = response.clone();
    caches.open(CACHE).then((c) => c.put(e.request, copy));
    return response;
  }).catch(() => caches.match(e.request)));
});
