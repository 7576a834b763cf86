#!/usr/bin/env node
// Converts IMAGE to raw on the real web page in headless Chromium: picks the
// file, clicks Convert, waits for the download link (the output is then
// complete in the Origin Private File System). Prints the conversion's
// seconds as the page counts and shows them (observedSeconds: from the
// click until this script noticed the link) and peak resident memory: of all of Chromium's
// processes, sampled every 100 ms, and of the renderer that holds the tab,
// its kernel high-water mark.
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

// The memory of a process tree, read from /proc (spawning `ps` ten times a
// second would take CPU from the conversion being timed). Each process:
// {pid, ppid, rss (bytes now), renderer (runs a tab)}.
const PAGE_BYTES = 4096;
function processTree(root) {
  const table = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    try {
      // The command name in parentheses may hold spaces: fields start after it.
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const rss = Number(fs.readFileSync(`/proc/${name}/statm`, 'utf8').split(' ')[1]) * PAGE_BYTES;
      // Chromium rewrites a child's command line as one string, spaces between.
      const renderer = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split(/[\0 ]/).includes('--type=renderer');
      table.push({ pid: Number(name), ppid, rss, renderer });
    } catch (e) { /* exited meanwhile */ }
  }
  const inTree = new Set([root]);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of table) if (inTree.has(p.ppid) && !inTree.has(p.pid)) { inTree.add(p.pid); grew = true; }
  }
  return table.filter((p) => inTree.has(p.pid));
}
function treeRss(root) {
  const mine = processTree(root);
  return { all: mine.reduce((sum, p) => sum + p.rss, 0),
           renderer: Math.max(0, ...mine.filter((p) => p.renderer).map((p) => p.rss)) };
}
// The renderers' peak resident memory since resetRendererPeaks(): the
// kernel's high-water mark (VmHWM), which sampling can miss between samples.
function resetRendererPeaks(root) {
  for (const p of processTree(root)) if (p.renderer) fs.writeFileSync(`/proc/${p.pid}/clear_refs`, '5');
}
function rendererPeak(root) {
  let peak = 0;
  for (const p of processTree(root).filter((q) => q.renderer)) {
    const hwm = /VmHWM:\s+([0-9]+) kB/.exec(fs.readFileSync(`/proc/${p.pid}/status`, 'utf8'));
    if (hwm) peak = Math.max(peak, Number(hwm[1]) * 1024);
  }
  return peak;
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
    resetRendererPeaks(pid);
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
    const observedSeconds = (Date.now() - start) / 1000;
    clearInterval(sampler);
    // The page's own count, from its click handler to the worker's report
    // that the output is complete (what the page shows): Playwright
    // polls for a selector at growing intervals (up to half a second), so
    // when it notices the link says more about the polling than the page.
    const seconds = Number(await page.$eval('#download-link', (a) => a.dataset.seconds));
    peak.renderer = Math.max(peak.renderer, rendererPeak(pid));
    const size = await page.$eval('#download-link', (a) => a.textContent);
    console.log(JSON.stringify({ seconds, observedSeconds, peakRssBytes: peak.all, peakRendererRssBytes: peak.renderer,
                                 rendererRssBeforeBytes: before.renderer, output: size }));
  } finally {
    await context.close();
    server.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
})().catch((e) => { console.error(e.message); process.exit(1); });
