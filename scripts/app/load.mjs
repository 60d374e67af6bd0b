// The app's first load on a phone over a slow network (docs/benchmarks.md, "The app's
// first load"): Debian's Chromium through playwright-core at 390x844, a cold cache each
// run, Chrome DevTools' "Slow 4G" network (562.5 ms latency, 180,000 B/s down, 84,375 B/s
// up) and, with CPU_SLOWDOWN (default 4), the CPU slowed as Lighthouse does for a
// mid-range phone. Per run: the bytes transferred until the join screen answers input
// (compressed, headers included, as the network carried them), and the times to
// DOMContentLoaded, load and interactive (the join form's first field visible and
// enabled, the module graph run). Prints one JSON line per run, then the medians.
//
// Usage: node load.mjs BASE_URL [RUNS]
import { chromium } from 'playwright-core';

const BASE = process.argv[2];
const RUNS = Number(process.argv[3] || 5);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SLOWDOWN = Number(process.env.CPU_SLOWDOWN || 4);
const SLOW_4G = { offline: false, latency: 562.5, downloadThroughput: 180000, uploadThroughput: 84375 };

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const runs = [];
for (let i = 0; i < RUNS; i += 1) {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  await cdp.send('Network.emulateNetworkConditions', SLOW_4G);
  if (SLOWDOWN > 1) await cdp.send('Emulation.setCPUThrottlingRate', { rate: SLOWDOWN });
  let bytes = 0;
  const files = new Map();
  const urls = new Map();
  cdp.on('Network.requestWillBeSent', (e) => urls.set(e.requestId, e.request.url));
  cdp.on('Network.loadingFinished', (e) => {
    bytes += e.encodedDataLength;
    const u = new URL(urls.get(e.requestId) || 'about:blank');
    files.set(u.pathname, e.encodedDataLength);
  });
  const t0 = Date.now();
  await page.goto(`${BASE}/`, { waitUntil: 'commit' });
  await page.waitForSelector('#j-name:not([disabled])', { state: 'visible', timeout: 120000 });
  const interactive = Date.now() - t0;
  await page.waitForLoadState('load');
  const nav = await page.evaluate(() => {
    const n = performance.getEntriesByType('navigation')[0];
    return { dcl: Math.round(n.domContentLoadedEventEnd), load: Math.round(n.loadEventEnd) };
  });
  const run = { run: i + 1, interactive_ms: interactive, dom_content_loaded_ms: nav.dcl, load_ms: nav.load, bytes, files: Object.fromEntries(files) };
  console.log(JSON.stringify(run));
  runs.push(run);
  await context.close();
}
await browser.close();

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
console.log(JSON.stringify({
  runs: RUNS,
  cpu_slowdown: SLOWDOWN,
  network: 'Slow 4G (562.5 ms, 180,000 B/s down)',
  median_bytes: median(runs.map((r) => r.bytes)),
  median_interactive_ms: median(runs.map((r) => r.interactive_ms)),
  median_dom_content_loaded_ms: median(runs.map((r) => r.dom_content_loaded_ms)),
  median_load_ms: median(runs.map((r) => r.load_ms)),
}));
