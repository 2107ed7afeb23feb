// Warmline's sales-ops page: plain JavaScript, no framework, no bundler.
// Every value that came from the API is put on the page with textContent
// (el() below), never as HTML. The API is the only data source; the token,
// when the collector has one, lives in sessionStorage and goes out as
// Authorization: Bearer.
'use strict';

(() => {
  const TOKEN_KEY = 'warmline.token';
  const PAGE = 50;            // hot rows asked for at a time (#/?limit=N: 1 to 1000)
  const FEED_KEEP = 200;      // signals the feed keeps on screen
  const FEED_POLL_MS = 2000;
  const DAYS = 90;            // the account page's history (#/accounts/<org>?days=N)
  const DAY_CHOICES = [30, 90, 180, 365];

  const $ = (sel) => document.querySelector(sel);
  let timer = null;           // the feed's poll
  let generation = 0;         // bumps on each route: late answers of an old view are dropped

  // ---- DOM, text only ----

  // el('td', {className: 'num'}, 'text', child, ...): strings become text nodes.
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'dataset') Object.assign(e.dataset, v);
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'attrs') for (const [a, x] of Object.entries(v)) e.setAttribute(a, x);
      else e[k] = v;
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function setView(...children) {
    $('#view').replaceChildren(...children.filter((c) => c !== null && c !== undefined));
  }

  function status(text, isError) {
    const s = $('#status');
    s.textContent = text || '';
    s.className = isError ? 'error' : '';
  }

  // ---- the API ----

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, opts = {}) {
    const headers = Object.assign({}, opts.headers || {});
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    let res;
    try {
      res = await fetch(path, { method: opts.method || 'GET', headers, body: opts.body,
                                cache: 'no-store', credentials: 'omit' });
    } catch (e) {
      throw new ApiError(0, 'unreachable', 'The collector did not answer (' + e.message +
        '). Check that warmline-collector is running and that this address reaches its API.');
    }
    if (res.status === 204) return null;
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      const err = (body && body.error) || {};
      throw new ApiError(res.status, err.code || 'http_' + res.status,
                         err.message || res.statusText || 'HTTP ' + res.status);
    }
    return body;
  }

  // Shows what went wrong and what to do; a 401 asks for the token.
  function showError(e, admin) {
    if (e.status === 401) {
      askToken(admin ? 'This needs the admin token (the API said: ' + e.message + ').'
                     : 'This collector needs a token (the API said: ' + e.message + '). ' +
                       'Paste the read or admin token.');
      status('Waiting for a token.', true);
      return;
    }
    status((e.status ? 'Error ' + e.status + ' ' + e.code + ': ' : '') + e.message, true);
  }

  function askToken(why) {
    $('#token-why').textContent = why;
    $('#token-form').hidden = false;
    $('#token-input').focus();
  }

  // ---- formatting ----

  function shortOrg(org) {
    return /^[0-9a-f]{64}$/.test(org) ? org.slice(0, 12) + '\u2026' : org;
  }

  function num(v) {
    if (v === null || v === undefined || v === '') return '';
    const n = Number(v);
    return Number.isFinite(n) ? n.toLocaleString('en-US') : String(v);
  }

  function score(v) {
    const n = Number(v);
    return Number.isFinite(n) ? (n >= 100 ? n.toFixed(0) : n.toFixed(2)) : '';
  }

  function when(ms) {
    const n = Number(ms);
    if (!n) return '';
    return new Date(n).toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
  }

  function mau(totals) {
    return totals ? Number(totals.active_users_monthly || 0) : 0;
  }

  function reasonText(r) {
    const what = r.description || r.rule || '';
    return r.fired_at ? what + ' (' + when(r.fired_at).slice(0, 10) + ')' : what;
  }

  function accountName(a) {
    return a.named && a.named.name ? a.named.name : shortOrg(a.org);
  }

  function list(v) {
    return Array.isArray(v) ? v.join(', ') : '';
  }

  // A CSV cell as the CLI's --csv writes it: quoted, and a cell starting with
  // = + - @ TAB or CR prefixed with ' so that a spreadsheet does not run it.
  // formula-safe as the CLI's --csv (tools/table.c): a cell starting with
  // = + - @ TAB CR, or such a character after ; , or TAB inside it (where a
  // spreadsheet splitting on them starts a cell), gets a ' before it
  function csvCell(v) {
    let s = v === null || v === undefined ? '' : String(v);
    if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;
    s = s.replace(/([;,\t])(?=[=+\-@\t\r])/g, "$1'");
    return '"' + s.replace(/"/g, '""') + '"';
  }

  function download(name, text, type) {
    const url = URL.createObjectURL(new Blob([text], { type }));
    const a = el('a', { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  // ---- hot accounts ----

  const HOT_COLUMNS = [
    { key: 'rank', label: 'Rank', num: true, value: (a) => a.rank },
    { key: 'account', label: 'Account', value: (a) => accountName(a).toLowerCase() },
    { key: 'owner', label: 'Owner', value: (a) => (a.named && a.named.owner) || '' },
    { key: 'score', label: 'Score', num: true, value: (a) => Number(a.score) },
    { key: 'installs', label: 'Installs', num: true, value: (a) => Number(a.installs) },
    { key: 'mau', label: 'Monthly users', num: true, value: (a) => mau(a.totals) },
    { key: 'versions', label: 'Versions / editions',
      value: (a) => list(a.versions) + ' ' + list(a.editions) },
    { key: 'last_seen', label: 'Last seen', value: (a) => Number(a.last_seen) },
    { key: 'reasons', label: 'Top reasons', value: (a) => (a.reasons || []).length },
  ];

  const hot = { rows: [], next: null, sort: null, dir: 1, rule: '', minScore: '', rules: null,
                limit: PAGE };

  function hotQuery(after) {
    const q = new URLSearchParams({ limit: String(hot.limit) });
    if (hot.rule) q.set('rule', hot.rule);
    if (hot.minScore !== '') q.set('min_score', hot.minScore);
    if (after) q.set('after', after);
    return '/v1/accounts/hot?' + q.toString();
  }

  function sortedRows() {
    const rows = hot.rows.slice();
    if (!hot.sort) return rows;
    const col = HOT_COLUMNS.find((c) => c.key === hot.sort);
    rows.sort((x, y) => {
      const a = col.value(x), b = col.value(y);
      return (a < b ? -1 : a > b ? 1 : 0) * hot.dir || x.rank - y.rank;
    });
    return rows;
  }

  function hotRow(a) {
    const name = a.named && a.named.name
      ? el('span', {}, a.named.name)
      : el('span', { className: 'key', title: a.org }, shortOrg(a.org));
    const reasons = el('ul', { className: 'reasons' },
      (a.reasons || []).slice(0, 3).map((r) => el('li', {}, reasonText(r))));
    return el('tr', { className: 'row', dataset: { org: a.org },
                      onclick: () => {
                        location.hash = '#/accounts/' + encodeURIComponent(a.org);
                      } },
      el('td', { className: 'num' }, a.rank),
      el('td', { className: 'account' }, name),
      el('td', {}, (a.named && a.named.owner) || ''),
      el('td', { className: 'num score' }, score(a.score)),
      el('td', { className: 'num' }, num(a.installs)),
      el('td', { className: 'num' }, num(mau(a.totals))),
      el('td', {}, [list(a.versions), list(a.editions)].filter(Boolean).join(' \u00b7 ')),
      el('td', {}, when(a.last_seen)),
      el('td', {}, reasons));
  }

  function hotTable() {
    const head = el('tr', {}, HOT_COLUMNS.map((c) => {
      const th = el('th', { className: c.num ? 'num' : '', dataset: { col: c.key } },
        el('button', { type: 'button', onclick: () => {
          if (hot.sort === c.key) hot.dir = -hot.dir;
          else { hot.sort = c.key; hot.dir = c.num || c.key === 'last_seen' ? -1 : 1; }
          renderHot();
        } }, c.label));
      if (hot.sort === c.key)
        th.setAttribute('aria-sort', hot.dir > 0 ? 'ascending' : 'descending');
      return th;
    }));
    return el('table', { id: 'hot' }, el('thead', {}, head),
              el('tbody', {}, sortedRows().map(hotRow)));
  }

  function hotCsv() {
    const cols = ['rank', 'org', 'name', 'owner', 'score', 'installs', 'monthly_users',
                  'versions', 'editions', 'last_seen', 'reasons'];
    const lines = [cols.map(csvCell).join(',')];
    for (const a of sortedRows()) {
      lines.push([a.rank, a.org, a.named ? a.named.name : '', a.named ? a.named.owner : '',
                  score(a.score), a.installs, mau(a.totals), list(a.versions), list(a.editions),
                  a.last_seen ? new Date(Number(a.last_seen)).toISOString() : '',
                  (a.reasons || []).map(reasonText).join('; ')].map(csvCell).join(','));
    }
    return lines.join('\r\n') + '\r\n';
  }

  function ruleOptions() {
    const names = new Set(hot.rules || []);
    if (!hot.rules) for (const a of hot.rows) for (const r of a.reasons || []) names.add(r.rule);
    if (hot.rule) names.add(hot.rule);
    return [el('option', { value: '' }, 'any rule')].concat(
      [...names].sort().map((n) => el('option', { value: n, selected: n === hot.rule }, n)));
  }

  function hotToolbar() {
    const rule = el('select', { id: 'filter-rule', onchange: (e) => {
      hot.rule = e.target.value; loadHot();
    } }, ruleOptions());
    const min = el('input', { id: 'filter-min-score', type: 'number', min: '0', step: 'any',
                              value: hot.minScore, onchange: (e) => {
      hot.minScore = e.target.value.trim(); loadHot();
    } });
    const domain = el('input', { id: 'search-domain', type: 'search', placeholder: 'example.com',
                                 autocomplete: 'off' });
    const search = el('form', { id: 'search-form', onsubmit: (e) => {
      e.preventDefault(); findDomain(domain.value.trim());
    } }, el('label', {}, 'Find by domain', domain));
    return el('div', { className: 'toolbar' },
      el('label', {}, 'Rule', rule), el('label', {}, 'Minimum score', min), search,
      el('button', { id: 'download-csv', type: 'button', onclick: () =>
        download('warmline-hot.csv', hotCsv(), 'text/csv') }, 'Download CSV'));
  }

  function renderHot() {
    const parts = [hotToolbar()];
    if (hot.rows.length === 0) {
      parts.push(el('p', { id: 'empty' }, hot.rule || hot.minScore !== ''
        ? 'No account matches these filters.'
        : 'No hot accounts yet. Point your servers\u2019 usage pings at this collector (see ' +
          'the README, \u201cSending pings\u201d); accounts show here once a rule fires.'));
    } else {
      parts.push(hotTable());
    }
    if (hot.next) {
      parts.push(el('p', {}, el('button', { id: 'more', type: 'button', onclick: moreHot },
                                 'Show more')));
    }
    setView(...parts);
  }

  async function loadHot() {
    const g = generation;
    status('Loading hot accounts\u2026');
    try {
      if (hot.rules === null) {
        hot.rules = undefined;   // being asked
        api('/v1/rules').then((b) => {
          hot.rules = (b.rules || []).map((r) => r.name);
          if (g === generation && $('#filter-rule'))
            $('#filter-rule').replaceChildren(...ruleOptions());
        }, () => { hot.rules = null; }); // asked again next time (a 401 before the token)
      }
      const body = await api(hotQuery(null));
      if (g !== generation) return;
      hot.rows = body.accounts || [];
      hot.next = body.next || null;
      status('');
      renderHot();
    } catch (e) {
      if (g === generation) { hot.rows = []; setView(hotToolbar()); showError(e); }
    }
  }

  async function moreHot() {
    const g = generation;
    try {
      const body = await api(hotQuery(hot.next));
      if (g !== generation) return;
      for (const a of body.accounts || []) hot.rows.push(a); // ranks go on across pages
      hot.next = body.next || null;
      renderHot();
    } catch (e) { showError(e); }
  }

  async function findDomain(d) {
    if (!d) return;
    try {
      const a = await api('/v1/accounts/' + encodeURIComponent('domain:' + d) + '?days=1');
      location.hash = '#/accounts/' + encodeURIComponent(a.org);
    } catch (e) {
      if (e.status === 404) status('No account for that domain yet.', true);
      else showError(e);
    }
  }

  // ---- one account ----

  // An SVG line chart of the daily rows: monthly active users (left axis),
  // installs (dashed, same scale when small), and a mark on each signal day.
  function chart(daily, signals) {
    const NS = 'http://www.w3.org/2000/svg';
    const s = (tag, attrs, text) => {
      const e = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
      if (text !== undefined) e.textContent = text;
      return e;
    };
    const W = 900, H = 220, L = 44, R = 10, T = 10, B = 26;
    const svg = s('svg', { class: 'chart', id: 'chart', viewBox: `0 0 ${W} ${H}`,
                           role: 'img', 'aria-label': 'daily monthly active users' });
    if (daily.length === 0) {
      svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no daily history'));
      return svg;
    }
    const days = daily.map((d) => Number(d.day));
    const d0 = Math.min(...days), d1 = Math.max(...days, d0 + 1);
    const users = daily.map((d) => mau(d.totals));
    const inst = daily.map((d) => Number(d.installs || 0));
    const top = Math.max(1, ...users, ...inst);
    const x = (day) => L + (day - d0) / (d1 - d0) * (W - L - R);
    const y = (v) => T + (1 - v / top) * (H - T - B);
    svg.append(s('line', { class: 'axis', x1: L, y1: y(0), x2: W - R, y2: y(0) }));
    svg.append(s('text', { x: L - 4, y: y(top) + 4, 'text-anchor': 'end' }, String(top)));
    svg.append(s('text', { x: L - 4, y: y(0), 'text-anchor': 'end' }, '0'));
    svg.append(s('text', { x: L, y: H - 6 }, daily[0].date));
    svg.append(s('text', { x: W - R, y: H - 6, 'text-anchor': 'end' },
                 daily[daily.length - 1].date));
    const fired = new Set((signals || []).map((g) => Math.floor(Number(g.fired_at) / 86400000)));
    for (const day of fired) {
      if (day < d0 || day > d1) continue;
      svg.append(s('line', { class: 'signal', x1: x(day), y1: T, x2: x(day), y2: y(0) }));
      svg.append(s('circle', { class: 'signal-dot', cx: x(day), cy: T + 3, r: 3 }));
    }
    const path = (vals) => days.map((d, i) => (i ? 'L' : 'M') + x(d).toFixed(1) + ' ' +
                                              y(vals[i]).toFixed(1)).join(' ');
    svg.append(s('path', { class: 'installs', d: path(inst) }));
    svg.append(s('path', { class: 'users', d: path(users) }));
    days.forEach((d, i) => {
      const c = s('circle', { class: 'point', cx: x(d), cy: y(users[i]), r: 2.2 });
      c.append(s('title', {}, daily[i].date + ': ' + users[i] + ' monthly users, ' + inst[i] +
                              ' installs'));
      svg.append(c);
    });
    return svg;
  }

  function card(label, value) {
    return el('div', { className: 'card' }, el('b', {}, value), label);
  }

  function renderAccount(a, days) {
    const title = a.named && a.named.name ? a.named.name : a.org;
    const installs = a.installs || [];
    const signals = (a.signals || []).slice()
      .sort((x, y) => Number(y.fired_at) - Number(x.fired_at));
    const counting = Number(a.installs_counting || 0);
    const instRows = installs.map((i) => {
      const p = i.last_ping || {};
      return el('tr', {}, el('td', { className: 'key' }, i.install_id),
        el('td', {}, p.version || ''), el('td', {}, p.edition || ''),
        el('td', {}, p.database_type || ''),
        el('td', { className: 'num' }, num(p.active_users_monthly)),
        el('td', {}, when(i.last_seen)), el('td', {}, i.counting ? 'yes' : 'no'));
    });
    const sigRows = signals.map((g) => el('tr', {},
      el('td', {}, when(g.fired_at)), el('td', {}, g.rule || ''),
      el('td', {}, g.description || '')));
    setView(
      el('p', {}, el('a', { href: '#/' }, '\u2190 Hot accounts')),
      el('h2', { id: 'account-title' }, title),
      a.named ? el('p', { className: 'muted' }, 'Owner: ', a.named.owner || '\u2014', ' \u00b7 ',
                   a.named.domain || '') : null,
      el('p', { className: 'key muted' }, a.org),
      el('div', { className: 'cards' }, card('score', score(a.score)),
         card('installs counting', num(counting)), card('monthly users', num(mau(a.totals))),
         card('first seen', when(a.first_seen).slice(0, 10)),
         card('last seen', when(a.last_seen).slice(0, 10))),
      el('h3', {}, 'Daily active users, last ',
         el('select', { id: 'chart-days', onchange: (e) => {
           location.hash = '#/accounts/' + encodeURIComponent(a.org) + '?days=' + e.target.value;
         } }, DAY_CHOICES.concat(DAY_CHOICES.includes(days) ? [] : [days]).map((d) =>
           el('option', { value: String(d), selected: d === days }, String(d)))), ' days'),
      el('p', { className: 'legend muted' }, el('span', {}, '\u2014 monthly active users'),
         el('span', {}, '- - installs'), el('span', {}, '| a signal fired')),
      chart(a.daily || [], signals),
      el('h3', {}, 'Installs (' + installs.length + ')'),
      installs.length < Number(a.installs_total ?? counting) ? el('p', { id: 'more-installs' },
        'This organization has ' + num(a.installs_total ?? counting) + ' installs; the ' +
        'collector lists ' + installs.length + ' of them.') : null,
      el('table', { id: 'installs' }, el('thead', {}, el('tr', {},
        ['Install', 'Version', 'Edition', 'Database', 'Monthly users', 'Last seen', 'Counting']
          .map((h) => el('th', {}, h)))), el('tbody', {}, instRows)),
      el('h3', {}, 'Signals (' + signals.length + ')'),
      signals.length ? el('table', { id: 'signals' }, el('thead', {}, el('tr', {},
        ['Fired', 'Rule', 'Reason'].map((h) => el('th', {}, h)))), el('tbody', {}, sigRows))
        : el('p', {}, 'No signal has fired for this account.'));
  }

  async function loadAccount(org, days) {
    const g = generation;
    status('Loading the account\u2026');
    setView();
    try {
      const a = await api('/v1/accounts/' + encodeURIComponent(org) + '?days=' + days);
      if (g !== generation) return;
      status('');
      renderAccount(a, days);
    } catch (e) {
      if (g !== generation) return;
      if (e.status === 404) status('No such account: ' + org + '.', true);
      else showError(e);
    }
  }

  // ---- the signal feed ----

  const feed = { after: 0, signals: [] };

  function feedRow(g) {
    return el('tr', { dataset: { id: String(g.id) } },
      el('td', {}, when(g.fired_at)),
      el('td', {}, el('a', { href: '#/accounts/' + encodeURIComponent(g.org) }, shortOrg(g.org))),
      el('td', {}, g.rule || ''), el('td', {}, g.description || ''));
  }

  function renderFeed() {
    setView(el('h2', {}, 'Signals'),
      el('p', { className: 'muted' }, 'Newest first; new signals appear while this page is open.'),
      feed.signals.length === 0
        ? el('p', { id: 'empty' }, 'No signal yet. Signals fire when an account\u2019s pings ' +
                                   'cross a rule (see the README, \u201cRules\u201d).')
        : el('table', { id: 'feed' }, el('thead', {}, el('tr', {},
            ['Fired', 'Account', 'Rule', 'Reason'].map((h) => el('th', {}, h)))),
            el('tbody', {}, feed.signals.map(feedRow))));
  }

  // Reads the log from feed.after on; at most 10 pages a poll.
  async function pollFeed(g) {
    let changed = false;
    for (let i = 0; i < 10; i++) {
      const body = await api('/v1/signals?limit=1000&after=' + feed.after);
      if (g !== generation) return;
      const got = body.signals || [];
      if (got.length) {
        feed.signals = got.slice().reverse().concat(feed.signals).slice(0, FEED_KEEP);
        changed = true;
      }
      feed.after = Number(body.next_after || feed.after);
      if (got.length < 1000) break;
    }
    if (changed) renderFeed();
  }

  async function loadFeed() {
    const g = generation;
    status('Loading signals\u2026');
    try {
      await pollFeed(g);
      if (g !== generation) return;
      status('');
      renderFeed();
      const tick = async () => {
        if (g !== generation) return;
        try { await pollFeed(g); status(''); } catch (e) { if (g === generation) showError(e); }
        if (g === generation) timer = setTimeout(tick, FEED_POLL_MS);
      };
      timer = setTimeout(tick, FEED_POLL_MS);
    } catch (e) {
      if (g === generation) showError(e);
    }
  }

  // ---- named accounts ----

  function renderNamed(rows) {
    const file = el('input', { id: 'named-file', type: 'file', accept: '.csv,text/csv' });
    const upload = el('form', { id: 'named-upload', onsubmit: async (e) => {
      e.preventDefault();
      const f = file.files[0];
      if (!f) { status('Choose the CRM\u2019s CSV file first (domain,name,owner).', true); return; }
      if (!confirm('The upload replaces the whole named-accounts table with ' + f.name +
                   '. Go on?')) return;
      try {
        const r = await api('/v1/named-accounts', { method: 'PUT', body: await f.text(),
                                                    headers: { 'Content-Type': 'text/csv' } });
        status('Imported ' + r.imported + ' named accounts (' + r.removed + ' removed).');
        loadNamed(true);
      } catch (err) { showError(err, true); }
    } }, el('label', {}, 'CRM CSV (domain,name,owner) ', file),
       el('button', { type: 'submit' }, 'Upload (replaces the table)'));
    const body = rows.map((r) => el('tr', { dataset: { domain: r.domain } },
      el('td', {}, r.domain), el('td', { className: 'name' }, r.name), el('td', {}, r.owner),
      el('td', {}, el('a', { href: '#/accounts/' + encodeURIComponent(r.org) }, shortOrg(r.org))),
      el('td', {}, el('button', { type: 'button', className: 'delete', onclick: async () => {
        if (!confirm('Delete the named account ' + r.domain + '?')) return;
        try {
          await api('/v1/named-accounts/' + encodeURIComponent(r.domain), { method: 'DELETE' });
          status('Deleted ' + r.domain + '.');
          loadNamed(true);
        } catch (err) { showError(err, true); }
      } }, 'Delete'))));
    setView(el('h2', {}, 'Named accounts'), upload,
      rows.length === 0 ? el('p', { id: 'empty' }, 'No named accounts. Upload the CRM\u2019s CSV ' +
                                                   'to show account names and owners.')
        : el('table', { id: 'named' }, el('thead', {}, el('tr', {},
            ['Domain', 'Name', 'Owner', 'Organization', ''].map((h) => el('th', {}, h)))),
            el('tbody', {}, body)));
  }

  async function loadNamed(keepStatus) {
    const g = generation;
    if (!keepStatus) status('Loading named accounts\u2026');
    try {
      const b = await api('/v1/named-accounts');
      if (g !== generation) return;
      if (!keepStatus) status('');
      renderNamed(b.named_accounts || []);
    } catch (e) {
      if (g === generation) showError(e);
    }
  }

  // ---- routes ----

  function route() {
    generation++;
    clearTimeout(timer);
    $('#token-form').hidden = true;
    status('');
    setView(); // nothing of the last view stays clickable while the next one loads
    $('#token-clear').hidden = !sessionStorage.getItem(TOKEN_KEY);
    const h = location.hash || '#/';
    for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', false);
    let m;
    if ((m = /^#\/accounts\/([^?]+)(?:\?days=(\d+))?$/.exec(h))) {
      const days = Number(m[2] || DAYS);
      let org = null;
      try {
        org = decodeURIComponent(m[1]);
      } catch (e) { // a malformed link: said, not thrown
        status('No such account: the link is not well formed.', 'error');
      }
      if (org !== null) loadAccount(org, days >= 1 && days <= 3650 ? days : DAYS);
    } else if (h === '#/signals') {
      $('#nav-signals').classList.add('active');
      feed.after = 0;
      feed.signals = [];
      loadFeed();
    } else if (h === '#/named') {
      $('#nav-named').classList.add('active');
      loadNamed(false);
    } else {
      $('#nav-hot').classList.add('active');
      const n = Number(new URLSearchParams(h.split('?')[1] || '').get('limit'));
      hot.limit = Number.isInteger(n) && n >= 1 && n <= 1000 ? n : PAGE;
      loadHot();
    }
  }

  $('#token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('#token-input').value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $('#token-input').value = '';
    route();
  });
  $('#token-clear').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    route();
  });
  window.addEventListener('hashchange', route);
  route();
})();
