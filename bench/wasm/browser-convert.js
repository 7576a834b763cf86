#!/usr/bin/env node
// Converts IMAGE to raw on the real web page in headless Chromium: picks the
// file, clicks Convert, waits for the download link (the output is then
// complete in the Origin Private File System). Prints the seconds from the
// click to the link, and the peak resident memory of all Chromium processes
// sampled every 100 ms (all processes, and the renderer that holds the tab).
// QCOWKIT_BENCH_PAGE_QUERY (e.g. "?workers=1") is appended to the page URL.
// Usage: browser-convert.js IMAGE
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { serveDirectory } = require('../../tests/browser/static-server');
const { launchPersistent } = require('../../tests/browser/chromium');
const os = require('os');

const webDir = process.env.QCOWKIT_WEB_DIR || path.resolve(__dirname, '../../build-wasm/wasm/web');

// Resident memory of a process tree, in bytes: all of it, and the largest
// renderer (the tab: page and worker live there).
function treeRss(pid) {
  const table = execFileSync('ps', ['-e', '-o', 'pid=,ppid=,rss=,args='], { encoding: 'utf8' })
    .trim().split('\n').map((l) => {
      const [p, pp, rss, ...args] = l.trim().split(/\s+/);
      return { pid: Number(p), ppid: Number(pp), rss: Number(rss) * 1024, renderer: args.includes('--type=renderer') };
    });
  const inTree = new Set([pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of table) if (inTree.has(p.ppid) && !inTree.has(p.pid)) { inTree.add(p.pid); grew = true; }
  }
  const mine = table.filter((p) => inTree.has(p.pid));
  return { all: mine.reduce((sum, p) => sum + p.rss, 0),
           renderer: Math.max(0, ...mine.filter((p) => p.renderer).map((p) => p.rss)) };
}

(async () => {
  const [image] = process.argv.slice(2);
  const server = await serveDirectory(webDir);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'qcowkit-bench-profile-'));
  const context = await launchPersistent(profile, { serviceWorkers: 'block' });
  try {
    const page = await context.newPage();
    await page.goto(server.url + (process.env.QCOWKIT_BENCH_PAGE_QUERY || ''));
    await page.setInputFiles('#picker', image);
    await page.waitForSelector('#check .badge:not(.pending)', { timeout: 600000 });
    await page.check('input[name="to"][value="raw"]');
    // The browser's own process (the parent of the renderers), found by our profile.
    const pid = Number(execFileSync('pgrep', ['-o', '-f', `user-data-dir=${profile}`], { encoding: 'utf8' }).trim());
    const before = treeRss(pid);
    let start = Date.now();
    const peak = { ...before };
    const sampler = setInterval(() => {
      try {
        const now = treeRss(pid);
        peak.all = Math.max(peak.all, now.all);
        peak.renderer = Math.max(peak.renderer, now.renderer);
        if (process.env.QCOWKIT_BENCH_TRACE) console.error(`rss ${Date.now() - start} ms: tab ${now.renderer >> 20} MiB`);
      } catch (e) { /* the browser is exiting */ }
    }, 100);
    start = Date.now();
    await page.click('#convert');
    await page.waitForSelector('#download-link', { timeout: 3600000 });
    const seconds = (Date.now() - start) / 1000;
    clearInterval(sampler);
    const size = await page.$eval('#download-link', (a) => a.textContent);
    console.log(JSON.stringify({ seconds, peakRssBytes: peak.all, peakRendererRssBytes: peak.renderer,
                                 rendererRssBeforeBytes: before.renderer, output: size }));
  } finally {
    await context.close();
    server.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
})().catch((e) => { console.error(e.message); process.exit(1); });
