// The page's scenarios in Debian's chromium, one browser for all of them.
// Started by test_ui.py with a JSON file: the collectors' addresses, the
// tokens, the hot list as the API answered it, the organizations' ids.
// Prints `ok NAME` or `FAIL NAME: why` per scenario; exit 1 if any failed.
// `@fire` on stdout asks the wrapper to make a signal fire (one line back).
'use strict';

const fs = require('fs');
const path = require('path');
const readline = require('readline');
const { chromium } = require('playwright-core');

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const WAIT = 20000; // ms for one thing to show (a readiness wait, not a figure)

const replies = [];
let waiting = null;
readline.createInterface({ input: process.stdin }).on('line', (l) => {
  if (waiting) { const w = waiting; waiting = null; w(l); } else replies.push(l);
});
function ask(action) {
  process.stdout.write('@' + action + '\n');
  return replies.length ? Promise.resolve(replies.shift())
                        : new Promise((resolve) => { waiting = resolve; });
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

function eq(a, b, what) {
  const x = JSON.stringify(a), y = JSON.stringify(b);
  if (x !== y) throw new Error(what + ': got ' + x + ', want ' + y);
}

let current = null; // the scenario's latest page, for what it showed when it failed

const shortOrg = (org) => (/^[0-9a-f]{64}$/.test(org) ? org.slice(0, 12) + '\u2026' : org);

// A fresh context (empty sessionStorage) and page that records console
// errors, uncaught exceptions and CSP violations; allowed: regexes of
// console errors the scenario expects (a 401 it provokes).
async function open(browser, allowed = []) {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  current = page;
  const problems = [];
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const t = m.text();
    if (/Content.Security.Policy/i.test(t) || !allowed.some((r) => r.test(t)))
      problems.push('console error: ' + t + ' (' + m.location().url + ')');
  });
  page.on('pageerror', (e) => problems.push('uncaught: ' + e.message));
  page.on('dialog', (d) => d.accept());
  await page.addInitScript(() => {
    window.__wl_csp = [];
    document.addEventListener('securitypolicyviolation',
      (e) => window.__wl_csp.push(e.violatedDirective + ' ' + e.blockedURI));
  });
  page.problems = problems;
  page.done = async (shot) => {
    if (shot) await page.screenshot({ path: path.join(cfg.out, shot + '.png'), fullPage: true });
    const csp = await page.evaluate(() => window.__wl_csp);
    for (const v of csp) problems.push('CSP violation: ' + v);
    await context.close();
    check(problems.length === 0, problems.join('; '));
  };
  return page;
}

async function hotOrgs(page) {
  return page.$$eval('#hot tbody tr', (rows) => rows.map((r) => r.dataset.org));
}

async function hotScores(page) {
  return page.$$eval('#hot tbody td.score', (c) => c.map((x) => Number(x.textContent)));
}

// Waits until the element sel exists and its text matches re.
async function shows(page, sel, re) {
  await page.waitForFunction(([s, src]) => {
    const e = document.querySelector(s);
    return e !== null && new RegExp(src).test(e.textContent);
  }, [sel, re.source], { timeout: WAIT });
}

async function waitRows(page, n) {
  await page.waitForFunction((k) => document.querySelectorAll('#hot tbody tr').length === k,
                             n, { timeout: WAIT });
}

const scenarios = {
  // The landing view: the API's rows in its order, with reasons, as text.
  async hot(browser) {
    const page = await open(browser);
    const res = await page.goto(cfg.base + '/');
    const h = res.headers();
    check(/script-src 'self'/.test(h['content-security-policy'] || ''), 'CSP header: ' +
          h['content-security-policy']);
    eq(h['x-content-type-options'], 'nosniff', 'nosniff');
    eq(h['referrer-policy'], 'no-referrer', 'Referrer-Policy');
    check(cfg.hot.length >= 5, 'the history gives at least 5 hot accounts');
    await waitRows(page, Math.min(cfg.hot.length, 50));
    eq(await hotOrgs(page), cfg.hot.slice(0, 50).map((a) => a.org), 'rows in the API order');
    const scores = await hotScores(page);
    for (let i = 1; i < scores.length; i++)
      check(scores[i - 1] >= scores[i], 'scores descend: ' + scores.join(' '));
    const cells = await page.$$eval('#hot tbody tr', (rows) => rows.map((r) => ({
      account: r.querySelector('td.account').textContent,
      reasons: [...r.querySelectorAll('ul.reasons li')].map((li) => li.textContent),
    })));
    cfg.hot.slice(0, 50).forEach((a, i) => {
      eq(cells[i].account, a.named ? a.named.name : shortOrg(a.org), 'account cell ' + i);
      check(a.reasons.length > 0, 'the API gives reasons for ' + a.org);
      check(cells[i].reasons.length === Math.min(3, a.reasons.length), 'reasons of ' + a.org);
      check(cells[i].reasons[0].startsWith(a.reasons[0].description || a.reasons[0].rule),
            'first reason of ' + a.org + ': ' + cells[i].reasons[0]);
    });
    await page.done('hot');
  },

  // The CSP is enforced, and the checks above would see a violation: an
  // inline script and a foreign image put into the page are refused.
  async csp(browser) {
    const page = await open(browser);
    await page.goto(cfg.base + '/');
    await waitRows(page, Math.min(cfg.hot.length, 50));
    await page.evaluate(() => {
      const s = document.createElement('script');
      s.textContent = 'window.__wl_inline = 1';
      document.body.append(s);
      const i = document.createElement('img');
      i.src = 'http://example.invalid/x.png';
      document.body.append(i);
    });
    await page.waitForFunction(() => window.__wl_csp.length >= 2, null, { timeout: WAIT });
    check(await page.evaluate(() => window.__wl_inline === undefined), 'inline script ran');
    const seen = await page.evaluate(() => window.__wl_csp.splice(0));
    check(seen.some((v) => v.startsWith('script-src')), 'script-src violation seen: ' + seen);
    check(seen.some((v) => v.startsWith('img-src')), 'img-src violation seen: ' + seen);
    check(page.problems.some((p) => /Content Security Policy/.test(p)), 'console saw it too');
    page.problems.splice(0);
    await page.done();
  },

  // Sorting by a column, both ways, and back to rank.
  async sort(browser) {
    const page = await open(browser);
    await page.goto(cfg.base + '/');
    await waitRows(page, Math.min(cfg.hot.length, 50));
    const byInstalls = cfg.hot.slice().sort((x, y) => y.installs - x.installs || x.rank - y.rank);
    await page.click('th[data-col="installs"] button');
    eq(await hotOrgs(page), byInstalls.map((a) => a.org), 'installs, most first');
    eq(await page.getAttribute('th[data-col="installs"]', 'aria-sort'), 'descending', 'aria-sort');
    await page.click('th[data-col="installs"] button');
    const asc = cfg.hot.slice().sort((x, y) => x.installs - y.installs || x.rank - y.rank);
    eq(await hotOrgs(page), asc.map((a) => a.org), 'installs, fewest first');
    await page.click('th[data-col="score"] button');
    const s = await hotScores(page);
    for (let i = 1; i < s.length; i++) check(s[i - 1] >= s[i], 'score, highest first');
    await page.click('th[data-col="rank"] button');
    await page.click('th[data-col="rank"] button');
    eq(await hotOrgs(page), cfg.hot.map((a) => a.org), 'rank, first first');
    await page.done('sorted');
  },

  // The rule filter and the minimum score ask the API again.
  async filter(browser) {
    const page = await open(browser);
    await page.goto(cfg.base + '/');
    await waitRows(page, Math.min(cfg.hot.length, 50));
    const rule = 'mau_over_25';
    const want = cfg.hot.filter((a) => a.reasons.some((r) => r.rule === rule)).map((a) => a.org);
    check(want.length >= 1 && want.length < cfg.hot.length, 'the rule picks some rows');
    await page.selectOption('#filter-rule', rule);
    await waitRows(page, want.length);
    eq(await hotOrgs(page), want, 'rows with ' + rule);
    await page.selectOption('#filter-rule', '');
    await waitRows(page, cfg.hot.length);
    const cut = (cfg.hot[1].score + cfg.hot[2].score) / 2;
    await page.fill('#filter-min-score', String(cut));
    await page.dispatchEvent('#filter-min-score', 'change');
    await waitRows(page, 2);
    eq(await hotOrgs(page), cfg.hot.slice(0, 2).map((a) => a.org), 'min_score ' + cut);
    await page.fill('#filter-min-score', '1000000');
    await page.dispatchEvent('#filter-min-score', 'change');
    await page.waitForSelector('#empty', { timeout: WAIT });
    await page.done('filtered');
  },

  // A row opens the account: installs, signals, a chart with points and marks.
  async account(browser) {
    const page = await open(browser);
    await page.goto(cfg.base + '/');
    await waitRows(page, Math.min(cfg.hot.length, 50));
    const D = cfg.orgs.D;
    await page.click(`#hot tbody tr[data-org="${D}"]`);
    await page.waitForSelector('#installs tbody tr', { timeout: WAIT });
    eq(await page.evaluate(() => location.hash), '#/accounts/' + D, 'shareable URL');
    const texts = (c) => c.map((x) => x.textContent);
    const ids = await page.$$eval('#installs tbody tr td:first-child', texts);
    eq(ids.slice().sort(), ['d1', 'd2'], 'installs of D');
    const rules = await page.$$eval('#signals tbody tr td:nth-child(2)', texts);
    eq(rules.slice().sort(), ['enterprise_edition_unlicensed', 'second_install', 'sso_interest'],
       'signals of D');
    check(!/null|undefined|NaN/.test(await page.textContent('#view')), 'no null shown');
    const points = await page.$$eval('#chart circle.point', (c) => c.length);
    check(points >= 30, 'chart points: ' + points);
    const marks = await page.$$eval('#chart line.signal', (c) => c.length);
    eq(marks, 3, 'signal days marked');
    await page.done('account');
    // a shorter history: the last 30 days (one signal day among them)
    const p3 = await open(browser);
    await p3.goto(cfg.base + '/#/accounts/' + D);
    await p3.waitForSelector('#chart circle.point', { timeout: WAIT });
    await p3.selectOption('#chart-days', '30');
    await p3.waitForFunction(() => location.hash.endsWith('?days=30') &&
      document.querySelectorAll('#chart circle.point').length > 0 &&
      document.querySelectorAll('#chart circle.point').length <= 30, null, { timeout: WAIT });
    eq(await p3.$$eval('#chart line.signal', (c) => c.length), 1, 'signal days in 30 days');
    await p3.done('account-30-days');
    // the same URL opened directly
    const p2 = await open(browser);
    await p2.goto(cfg.base + '/#/accounts/' + D);
    await p2.waitForSelector('#installs tbody tr', { timeout: WAIT });
    await p2.done();
  },

  // Domain search goes through the API's domain: lookup.
  async search(browser) {
    const page = await open(browser);
    await page.goto(cfg.base + '/');
    await waitRows(page, Math.min(cfg.hot.length, 50));
    await page.fill('#search-domain', 'Alpha.Example');
    await page.press('#search-domain', 'Enter');
    await page.waitForFunction((h) => location.hash === h, '#/accounts/' + cfg.orgs.A,
                               { timeout: WAIT });
    await page.waitForSelector('#installs tbody tr', { timeout: WAIT });
    await page.done();
  },

  // Further pages come from the API's cursor (next, sent back as after=).
  async paging(browser) {
    const page = await open(browser);
    await page.goto(cfg.base + '/#/?limit=2');
    await waitRows(page, 2);
    for (let n = 4; n < cfg.hot.length + 2; n += 2) {
      await page.click('#more');
      await waitRows(page, Math.min(n, cfg.hot.length));
    }
    eq(await hotOrgs(page), cfg.hot.map((a) => a.org), 'every page, in order');
    const ranks = await page.$$eval('#hot tbody tr td:first-child',
                                    (c) => c.map((x) => x.textContent));
    eq(ranks, cfg.hot.map((a, i) => String(i + 1)), 'ranks across pages');
    eq(await page.$$eval('#more', (b) => b.length), 0, 'no more button after the last page');
    await page.done('paging');
  },

  // A signal that fires while the feed is open shows without a reload.
  async feed(browser) {
    const page = await open(browser);
    await page.goto(cfg.base + '/#/signals');
    await page.waitForSelector('#feed tbody tr', { timeout: WAIT });
    const before = await page.$$eval('#feed tbody tr', (r) => r.map((x) => x.dataset.id));
    await page.evaluate(() => { window.__wl_same_page = 1; });
    const answer = await ask('fire');
    check(answer.startsWith('fired'), 'the wrapper fired: ' + answer);
    await page.waitForFunction((n) => document.querySelectorAll('#feed tbody tr').length > n,
                               before.length, { timeout: WAIT });
    const top = await page.$eval('#feed tbody tr', (r) => [...r.cells].map((c) => c.textContent));
    eq(top[1], shortOrg(cfg.orgs.C), 'the new signal\'s account');
    eq(top[2], 'second_install', 'the new signal\'s rule');
    check(await page.evaluate(() => window.__wl_same_page === 1), 'no reload');
    await page.done('feed');
  },

  // Named accounts through the page (no tokens): a name that is HTML shows
  // as text and runs nothing; the CSV download is formula-safe.
  async xss(browser) {
    const page = await open(browser);
    await page.goto(cfg.base + '/#/named');
    await page.waitForSelector('#named-upload', { timeout: WAIT });
    const csv = 'domain,name,owner\n' +
      'alpha.example,"' + cfg.xssName.replace(/"/g, '""') + '",<b>owner</b>\n' +
      'bravo.example,"=HYPERLINK(""http://x"")",@sam\n';
    await page.setInputFiles('#named-file', { name: 'crm.csv', mimeType: 'text/csv',
                                              buffer: Buffer.from(csv) });
    await page.click('#named-upload button[type=submit]');
    await page.waitForSelector('#named tbody tr', { timeout: WAIT });
    eq(await page.$eval('#named tr[data-domain="alpha.example"] td.name', (c) => c.textContent),
       cfg.xssName, 'the name as text');
    await page.goto(cfg.base + '/#/');
    await page.waitForFunction((org) => {
      const r = document.querySelector(`#hot tbody tr[data-org="${org}"] td.account`);
      return r && r.textContent.length > 20;
    }, cfg.orgs.A, { timeout: WAIT });
    eq(await page.$eval(`#hot tbody tr[data-org="${cfg.orgs.A}"] td.account`, (c) => c.textContent),
       cfg.xssName, 'the hot row shows the name as text');
    eq(await page.$$eval('#view img', (i) => i.length), 0, 'no img element');
    check(await page.evaluate(() => window.__wl_xss === undefined), 'nothing ran');
    const [dl] = await Promise.all([page.waitForEvent('download', { timeout: WAIT }),
                                    page.click('#download-csv')]);
    const text = fs.readFileSync(await dl.path(), 'utf8');
    fs.writeFileSync(path.join(cfg.out, 'hot.csv'), text);
    const lines = text.trim().split('\r\n');
    eq(lines.length, cfg.hot.length + 1, 'CSV rows');
    check(lines[0].startsWith('"rank","org","name"'), 'CSV header: ' + lines[0]);
    const bravo = lines.find((l) => l.includes(cfg.orgs.B));
    check(bravo && bravo.includes('"\'=HYPERLINK(""http://x"")","\'@sam"'),
          'formula-safe cells: ' + bravo);
    await page.goto(cfg.base + '/#/accounts/' + cfg.orgs.A);
    await page.waitForSelector('#account-title', { timeout: WAIT });
    eq(await page.textContent('#account-title'), cfg.xssName, 'account title as text');
    check(await page.evaluate(() => window.__wl_xss === undefined), 'nothing ran');
    await page.done('xss');
  },

  // With tokens: the page asks for one, keeps it for the session, asks for
  // the admin token when an upload needs it; a bad CSV shows the API's words.
  async tokens(browser) {
    const page = await open(browser, [/status of 40[01]/]);
    await page.goto(cfg.tokenBase + '/');
    await page.waitForSelector('#token-form:not([hidden])', { timeout: WAIT });
    await page.fill('#token-input', 'wrong-token');
    await page.click('#token-form button');
    await shows(page, '#token-why', /wrong token/);
    await page.fill('#token-input', cfg.readToken);
    await page.click('#token-form button');
    await waitRows(page, Math.min(cfg.hot.length, 50));
    eq(await page.evaluate(() => sessionStorage.getItem('warmline.token')), cfg.readToken,
       'token in sessionStorage');
    await page.screenshot({ path: path.join(cfg.out, 'tokens-hot.png') });
    await page.goto(cfg.tokenBase + '/#/named');
    await page.waitForSelector('#named-upload', { timeout: WAIT });
    const upload = async (csv) => {
      await page.setInputFiles('#named-file', { name: 'crm.csv', mimeType: 'text/csv',
                                                buffer: Buffer.from(csv) });
      await page.click('#named-upload button[type=submit]');
    };
    await upload('domain,name,owner\ncharlie.example,Charlie Corp,dana\n');
    await page.waitForSelector('#token-form:not([hidden])', { timeout: WAIT });
    check(/admin token/.test(await page.textContent('#token-why')), 'asks for the admin token');
    await page.fill('#token-input', cfg.adminToken);
    await page.click('#token-form button');
    await page.waitForSelector('#named-upload', { timeout: WAIT });
    await upload('domain,name,owner\ncharlie.example,Charlie Corp,dana\n');
    await page.waitForSelector('#named tr[data-domain="charlie.example"]', { timeout: WAIT });
    await upload('domain,name,owner\nfine.example,Fine,x\nnot a domain,Bad,y\n');
    await shows(page, '#status', /line 3/);
    const msg = await page.textContent('#status');
    check(/bad_csv/.test(msg), 'the API\'s error code: ' + msg);
    await page.screenshot({ path: path.join(cfg.out, 'named-bad-csv.png') });
    await page.goto(cfg.tokenBase + '/#/');
    await page.waitForFunction(() => [...document.querySelectorAll('#hot td.account')]
      .some((c) => c.textContent === 'Charlie Corp'), null, { timeout: WAIT });
    await page.goto(cfg.tokenBase + '/#/named');
    await page.click('#named tr[data-domain="charlie.example"] button.delete');
    await page.waitForSelector('#empty', { timeout: WAIT });
    await page.screenshot({ path: path.join(cfg.out, 'named.png') });
    // forgetting the token asks for one again
    await page.click('#token-clear');
    await page.waitForSelector('#token-form:not([hidden])', { timeout: WAIT });
    eq(await page.evaluate(() => sessionStorage.getItem('warmline.token')), null, 'forgotten');
    check(await page.isHidden('#token-clear'), 'no forget button without a token');
    await page.done();
  },

  // No data yet: the views say what to do.
  async empty(browser) {
    const page = await open(browser);
    await page.goto(cfg.emptyBase + '/');
    await page.waitForSelector('#empty', { timeout: WAIT });
    check(/Point your servers/.test(await page.textContent('#empty')), 'hot: what to do');
    await page.click('#nav-signals');
    await shows(page, '#empty', /No signal yet/);
    await page.click('#nav-named');
    await shows(page, '#empty', /Upload the CRM/);
    await page.done('empty');
  },

  // The collector stops while the page is open: the page says so.
  async unreachable(browser) {
    const page = await open(browser, [/ERR_CONNECTION_REFUSED/]);
    await page.goto(cfg.emptyBase + '/');
    await page.waitForSelector('#empty', { timeout: WAIT });
    const answer = await ask('stop');
    check(answer.startsWith('stopped'), 'the wrapper stopped the collector: ' + answer);
    await page.click('#nav-signals');
    await shows(page, '#status', /did not answer/);
    check(/running/.test(await page.textContent('#status')), 'says what to check');
    await page.done('unreachable');
  },
};

(async () => {
  let browser;
  try {
    browser = await chromium.launch({ executablePath: cfg.chromium, args: ['--no-sandbox'] });
  } catch (e) {
    console.log('FAIL launch: chromium (' + cfg.chromium + ') did not start: ' + e.message);
    process.exit(1);
  }
  let failed = 0;
  const only = cfg.only ? cfg.only.split(',') : Object.keys(scenarios);
  for (const name of only) {
    const t0 = Date.now();
    try {
      await scenarios[name](browser);
      console.log('ok ' + name + ' (' + (Date.now() - t0) + ' ms)');
    } catch (e) {
      failed++;
      let shown = '';
      try {
        shown = ' [the page said: ' + (await current.textContent('#status', { timeout: 1000 })) +
                '] [at ' + current.url() + ']';
        await current.screenshot({ path: path.join(cfg.out, 'FAILED-' + name + '.png') });
      } catch (x) { /* closed */ }
      console.log('FAIL ' + name + ': ' + (e && e.stack ? e.stack : e) + shown);
    }
  }
  await browser.close();
  process.exit(failed ? 1 : 0);
})();
