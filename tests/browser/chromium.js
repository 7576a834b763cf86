// Debian's chromium, headless, through playwright-core (never a downloaded browser).
'use strict';
const fs = require('fs');

const CHROMIUM = process.env.QCOWKIT_CHROMIUM || '/usr/bin/chromium';

const ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
              '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function playwrightChromium() {
  let playwright;
  try {
    playwright = require('playwright-core');
  } catch (e) {
    throw new Error('playwright-core is missing: run `npm ci` in tests/browser (scripts/install-deps.sh does)');
  }
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
  return playwright.chromium;
}

// A browser with a fresh temporary profile (playwright makes and removes it).
function launchChromium() {
  return playwrightChromium().launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
}

// A context on a profile directory of our own choosing, e.g. to find the
// browser's processes by it.
function launchPersistent(userDataDir, options) {
  return playwrightChromium().launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM, headless: true, args: ARGS, ...options });
}

module.exports = { launchChromium, launchPersistent };
