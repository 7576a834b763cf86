// Debian's chromium, headless, through playwright-core (never a downloaded browser).
'use strict';
const fs = require('fs');

const CHROMIUM = process.env.QCOWKIT_CHROMIUM || '/usr/bin/chromium';

function launchChromium() {
  let playwright;
  try {
    playwright = require('playwright-core');
  } catch (e) {
    throw new Error('playwright-core is missing: run `npm ci` in tests/browser (scripts/install-deps.sh does)');
  }
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
  return playwright.chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

module.exports = { launchChromium };
