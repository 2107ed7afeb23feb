// bench/page_paint.js BASE RUNS CHROMIUM: loads BASE/ in Debian's chromium RUNS
// times, each in a fresh context (empty cache), and prints as JSON the time
// from navigation start to the first hot row in the DOM (a MutationObserver
// installed before the page's own script notes performance.now()), to the
// first contentful paint, and the page's transferred bytes.
'use strict';
const path = require('path');
const { chromium } = require(path.join(__dirname, '..', 'tests', 'ui', 'node_modules',
                                       'playwright-core'));

const [base, runs, exe] = [process.argv[2], Number(process.argv[3] || 20), process.argv[4]];

(async () => {
  const browser = await chromium.launch({ executablePath: exe || '/usr/bin/chromium',
                                          args: ['--no-sandbox'] });
  const rows = [], fcp = [];
  let bytes = 0, count = 0;
  for (let i = 0; i < runs + 2; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.addInitScript(() => {
      new MutationObserver((_, obs) => {
        if (document.querySelector('#hot tbody tr')) {
          window.__wl_rows_at = performance.now();
          obs.disconnect();
        }
      }).observe(document, { childList: true, subtree: true });
    });
    await page.goto(base + '/');
    await page.waitForFunction(() => window.__wl_rows_at !== undefined, null, { timeout: 60000 });
    const t = await page.evaluate(() => ({
      rows: window.__wl_rows_at,
      fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime,
      bytes: performance.getEntriesByType('resource')
        .concat(performance.getEntriesByType('navigation'))
        .filter((e) => !e.name.includes('/v1/')).reduce((s, e) => s + e.transferSize, 0),
      n: document.querySelectorAll('#hot tbody tr').length,
    }));
    if (i >= 2) { rows.push(t.rows); fcp.push(t.fcp); bytes = t.bytes; count = t.n; }
    await context.close();
  }
  await browser.close();
  const pct = (xs, p) => { const s = xs.slice().sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.round(p / 100 * (s.length - 1)))]; };
  const sum = (xs) => ({ p50: pct(xs, 50), p90: pct(xs, 90), max: pct(xs, 100) });
  console.log(JSON.stringify({ rows_ms: sum(rows), fcp_ms: sum(fcp), page_bytes: bytes,
                               rows_shown: count, runs }));
})().catch((e) => { console.error(e.message); process.exit(1); });
