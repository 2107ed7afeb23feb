"""The public HTTP ingest listener (issue 13's thin path), end to end: the real
collector started with `--http 127.0.0.1:0`, its port read from `event=ready`.

- A security check sent byte for byte as the vendor's Go client sends it
  (request line, Host, User-Agent, Accept-Encoding) lands as a ping of its
  install (version, edition, counts); the same check again within the hour is
  a duplicate; a check without uc/auc/tc lands with zeros; ut=1 is answered and
  not ingested.
- The operator's bulletins: the check of a version gets the bulletins that
  apply to it, each body is served by GET /bulletins/<id>; a bulletins file
  with an id used twice stops the start with the file and entry named.
- Bad input, each followed by proof that good traffic still flows: ids empty,
  too long, not printable, with %00; counts that are not counts; a query over
  http_max_query_bytes and one of 100 KB; unknown paths and methods; a request
  dribbled byte by byte past the request deadline (closed and counted); a flood
  from one address (429s counted, then recovery once the bucket refills).

Counters are read from the event=stats lines (every 100 ms) and /metrics.
"""

import http.client
import json
import os
import re
import select
import socket
import ssl
import subprocess
import time
import unittest
import urllib.parse

from harness import (COLLECTOR_BIN, LOCALHOST, Collector, CollectorCase, CollectorError,
                     IO_TIMEOUT, parse_kv)

INSTALL = "k7x3pq9s1bfj8ctw5yhzr4ud6e"      # 26 characters of the vendor's alphabet
INSTALL_2 = "ybndrfg8ejkmcpqxot1uwisza3"
INSTALL_3 = "pqxot1uwisza345h769ybndrfg"


class HttpCollector(Collector):
    """A collector with the HTTP ingest listener on an ephemeral port."""

    http_port = None

    def argv(self, *extra):
        return super().argv("--http", "%s:0" % LOCALHOST, *extra)

    def start(self, timeout=15.0):
        super().start(timeout)
        m = self.wait_for(r"\bevent=ready\b.*", timeout=1)
        hp = re.fullmatch(r"%s:(\d+)" % re.escape(LOCALHOST),
                          str(parse_kv(m.group(0)).get("http", "")))
        if not hp or int(hp.group(1)) == 0:
            raise CollectorError("%s: ready line lacks http=HOST:PORT: %s"
                                 % (self.name, m.group(0)))
        self.http_port = int(hp.group(1))
        return self

    restart = start


def go_query(install=INSTALL, b="11.6.0.1234", **over):
    """The query as Go's url.Values.Encode writes it: keys sorted, values
    escaped. over: a value replaces, None leaves the key out."""
    v = {"auc": "3", "b": b, "be": "true", "db": "postgres", "id": install, "os": "linux",
         "tc": "2", "uc": "10", "ut": "0"}
    v.update(over)
    return urllib.parse.urlencode(sorted((k, x) for k, x in v.items() if x is not None))


def raw_request(port, data, timeout=IO_TIMEOUT):
    """Sends data on a fresh connection and reads the answer to its end.
    Returns (status, {lower-cased header: value}, body), status None when the
    connection was closed without an answer."""
    with socket.create_connection((LOCALHOST, port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            head, sep, body = buf.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if m and len(body) >= int(m.group(1)):
                    break
    if not buf.startswith(b"HTTP/1."):
        return None, {}, b""
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def go_check(port, query):
    """GET /security exactly as the Go client sends it (http.DefaultClient:
    Host, User-Agent, Accept-Encoding, in that order)."""
    req = ("GET /security?%s HTTP/1.1\r\n"
           "Host: securityupdatecheck.mattermost.com\r\n"
           "User-Agent: Go-http-client/1.1\r\n"
           "Accept-Encoding: gzip\r\n\r\n" % query).encode("latin-1")
    return raw_request(port, req)


def get(port, target, method="GET"):
    req = ("%s %s HTTP/1.1\r\nHost: x\r\nUser-Agent: Go-http-client/1.1\r\n"
           "Content-Length: 0\r\n\r\n" % (method, target)).encode("latin-1")
    return raw_request(port, req)


class HttpIngestCase(CollectorCase):

    def http_collector(self, options=None, name=None):
        opts = {"http_request_deadline_ms": "15s"}
        opts.update(options or {})
        c = HttpCollector(opts, name=name or "http%d" % len(self._collectors))
        self._collectors.append(c)
        return c

    def good(self, c, install=INSTALL, **over):
        """A good check answers 200 with a JSON array."""
        status, headers, body = go_check(c.http_port, go_query(install, **over))
        self.assertEqual(status, 200, "a good check after bad input: %r" % (body,))
        self.assertEqual(headers.get("content-type"), "application/json")
        self.assertIsInstance(json.loads(body), list)
        return json.loads(body)

    def metrics(self, c):
        with socket.create_connection((LOCALHOST, c.api_port), timeout=IO_TIMEOUT) as s:
            s.sendall(b"GET /metrics HTTP/1.0\r\nHost: %s:%d\r\n\r\n"
                      % (LOCALHOST.encode(), c.api_port))  # no tokens: the listener's own
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        out = {}
        for line in buf.decode().split("\r\n\r\n", 1)[1].splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
        return out


class TestSecurityCheck(HttpIngestCase):

    def test_checks_land_repeat_is_duplicate_test_run_is_not_ingested(self):
        c = self.http_collector()
        c.start()
        # as the Go client sends it: a ping of its install
        self.assertEqual(self.good(c), [])
        c.wait_stats(lambda s: s["pings_accepted"] == 1 and s["http_security_queued"] == 1,
                     what="the first check stored")
        # the same check again within the hour: the writer's duplicate
        self.assertEqual(self.good(c), [])
        c.wait_stats(lambda s: s["pings_duplicate"] == 1 and s["pings_accepted"] == 1,
                     what="the repeat counted a duplicate")
        # uc, auc and tc may each be missing
        self.good(c, INSTALL_2, uc=None, auc=None, tc=None, be="false", b="11.6.0.dev",
                  db="mysql")
        # ut=1: a test run, answered and not ingested
        self.good(c, INSTALL_3, ut="1")
        s = c.wait_stats(lambda s: s["pings_accepted"] == 2 and s["http_security_test_run"] == 1,
                         what="the second install stored, the test run counted")
        self.assertEqual(s["http_security_queued"], 3)
        self.assertEqual(s["http_security_bad_request"], 0)

        m = self.metrics(c)
        self.assertEqual(m.get('warmline_pings_accepted_total{transport="http"}'), 2.0)
        self.assertEqual(m.get('warmline_pings_duplicate_total{transport="http"}'), 1.0)
        self.assertEqual(m.get("warmline_http_security_test_run_total"), 1.0)

        self.require_dump()
        c.stop()  # its checkpoint writes the install records
        installs = {r["install_id"]: r["last_ping"] for r in c.dump("installs")}
        self.assertEqual(set(installs), {INSTALL, INSTALL_2}, "ut=1 must not be ingested")
        p = installs[INSTALL]
        self.assertEqual((p["version"], p["edition"], p["database_type"],
                          p["operating_system"]), ("11.6.0", "enterprise", "postgres", "linux"))
        self.assertEqual((p["registered_users"], p["active_users_daily"], p["teams"]),
                         (10, 3, 2))
        self.assertEqual(p["org_key"], "")
        self.assertEqual(int(p["seq"]), 1, "the writer's seq: its first edge ping")
        p = installs[INSTALL_2]
        self.assertEqual((p["version"], p["edition"], p["database_type"]),
                         ("11.6.0", "team", "mysql"))
        self.assertEqual((p["registered_users"], p["active_users_daily"], p["teams"]),
                         (0, 0, 0))
        # the sender's address is stored nowhere
        for rec in c.dump("pings"):
            self.assertNotIn("127.0.0.1", json.dumps(rec))


class TestBulletins(HttpIngestCase):

    def test_bulletins_answered_and_served(self):
        c = self.http_collector()
        folder = os.path.join(c.root, "bulletins")
        os.mkdir(folder)
        body = b"<p>Upgrade to 11.6.1: MMSA-2026-001 fixes a login bypass.</p>\n"
        with open(os.path.join(folder, "mmsa1.html"), "wb") as f:
            f.write(body)
        with open(os.path.join(folder, "old.html"), "wb") as f:
            f.write(b"<p>old</p>")
        path = os.path.join(folder, "bulletins.json")
        with open(path, "w") as f:
            json.dump([{"id": "MMSA-2026-001", "applies_to_version": "11.6.0",
                        "body_file": "mmsa1.html"},
                       {"id": "MMSA-2025-009", "applies_to_version": "10.11.0",
                        "body_file": "old.html"}], f)
        c2 = HttpCollector({"bulletins_file": path}, name="bulletins")
        self._collectors.append(c2)
        c2.start()
        self.assertEqual(self.good(c2, b="11.6.0.dev"),
                         [{"id": "MMSA-2026-001", "applies_to_version": "11.6.0"}])
        self.assertEqual(self.good(c2, INSTALL_2, b="10.11.0.77"),
                         [{"id": "MMSA-2025-009", "applies_to_version": "10.11.0"}])
        self.assertEqual(self.good(c2, INSTALL_3, b="11.5.2.1"), [])
        # a test run still gets its bulletins
        self.assertEqual(len(self.good(c2, INSTALL_3, b="11.6.0.9", ut="1")), 1)
        status, headers, got = get(c2.http_port, "/bulletins/MMSA-2026-001")
        self.assertEqual((status, got), (200, body))
        self.assertTrue(headers["content-type"].startswith("text/html"))
        status, _, _ = get(c2.http_port, "/bulletins/MMSA-2099-404")
        self.assertEqual(status, 404)
        c2.wait_stats(lambda s: s["http_bulletins_served"] == 1 and s["http_not_found"] == 1,
                      what="bulletin counters")
        c2.stop()

        # an id used twice: the start fails naming the file and the entry
        with open(path, "w") as f:
            json.dump([{"id": "A", "applies_to_version": "1.0.0", "body_file": "old.html"},
                       {"id": "A", "applies_to_version": "1.0.1", "body_file": "old.html"}], f)
        with self.assertRaises(CollectorError):
            c2.start()
        line = c2.wait_for(r"event=start_failed.*", timeout=1).group(0)
        self.assertIn("stage=http", line)
        self.assertIn(path, line)
        self.assertIn("entry 2", line)
        self.assertIn("used twice", line)
        # --check-config says so too
        r = subprocess.run([COLLECTOR_BIN, "--config", c2.ini_path, "--check-config"],
                           capture_output=True, timeout=IO_TIMEOUT)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"entry 2", r.stderr)
        # not JSON: the line is named
        with open(path, "w") as f:
            f.write('[\n{"id": "A",\n')
        with self.assertRaises(CollectorError):
            c2.start()
        line = c2.wait_for(r"event=start_failed.*", timeout=1).group(0)
        self.assertRegex(line, re.escape(path) + r": line \d+")


class TestBadInput(HttpIngestCase):

    def test_bad_queries_paths_and_methods(self):
        c = self.http_collector()
        c.start()
        self.good(c)
        bad = [
            ("id empty", go_query("")),
            ("id too long", go_query("a" * 65)),
            ("id not printable", go_query("ab\x01cd")),
            ("id with %00", "id=abc%00def&b=11.6.0.1"),
            ("id missing", go_query(None)),
            ("id twice", go_query() + "&id=other"),
            ("uc not a count", go_query(uc="ten")),
            ("auc negative", go_query(auc="-1")),
            ("tc over max_count", go_query(tc="99999999999")),
            ("be not a bool", go_query(be="yes")),
            ("b not printable", go_query(b="11.6.0\n")),
            ("too many parameters", go_query() + "".join("&x%d=1" % i for i in range(40))),
        ]
        for what, query in bad:
            with self.subTest(what):
                status, _, body = go_check(c.http_port, query)
                self.assertEqual(status, 400, "%s: %r" % (what, body))
                self.assertEqual(json.loads(body)["error"]["code"], "bad_request")
                self.good(c)
        s = c.wait_stats(lambda s: s["http_security_bad_request"] == len(bad),
                         what="every bad query counted")
        self.assertEqual(s["pings_accepted"], 1)

        # a query over http_max_query_bytes (2 KiB), within the header cap: 414, counted
        status, _, _ = go_check(c.http_port, go_query(os="x" * 8000))
        self.assertEqual(status, 414)
        self.good(c)
        c.wait_stats(lambda s: s["http_query_too_long"] == 1, what="the long query counted")
        # 100 KB: over the header cap (16 KiB), libmicrohttpd refuses it itself
        status, _, _ = go_check(c.http_port, go_query(os="x" * 100000))
        self.assertEqual(status, 414)
        self.good(c)
        # a header over the cap: the same
        status, _, _ = raw_request(c.http_port, ("GET /security?%s HTTP/1.1\r\nHost: x\r\n"
                                                 "X-Big: %s\r\n\r\n" % (go_query(), "y" * 20000))
                                   .encode())
        self.assertEqual(status, 431)
        self.good(c)
        # its messages go through the rate-limited logger, under this listener's name
        c.wait_for(r"event=http_server_message listener=http ")

        # unknown paths 404, a known path with another method 405
        for target, method, want in (("/v1/batches", "POST", 404), ("/", "GET", 404),
                                     ("/security/x", "GET", 404), ("/bulletins/", "GET", 404),
                                     ("/security?" + go_query(), "POST", 405),
                                     ("/security?" + go_query(), "PUT", 405),
                                     ("/security?" + go_query(), "DELETE", 405),
                                     ("/v1/batch", "GET", 405)):
            with self.subTest(method=method, target=target[:20]):
                status, headers, _ = get(c.http_port, target, method)
                self.assertEqual(status, want)
                if want == 405:
                    self.assertEqual(headers.get("allow"),
                                     "POST" if target == "/v1/batch" else "GET")
                self.good(c)
        s = c.wait_stats(lambda s: s["http_not_found"] == 4 and
                         s["http_method_not_allowed"] == 4, what="404s and 405s counted")
        self.assertEqual(s["pings_accepted"], 1, "no bad input became a ping")
        c.stop()

    def test_dribbled_request_closed_at_the_deadline(self):
        # inactivity timeout 10 s, request deadline 1 s: a sender writing one
        # byte every 50 ms never trips the first, the second closes it
        c = self.http_collector({"http_request_deadline_ms": "1s", "http_timeout_ms": "10s"})
        c.start()
        s = socket.create_connection((LOCALHOST, c.http_port), timeout=IO_TIMEOUT)
        self._sockets.append(s)
        line = ("GET /security?%s HTTP/1.1\r\nHost: x\r\nX-Slow: " % go_query()).encode()
        s.sendall(line)
        sent, closed = 0, False
        while sent < 400:  # 400 bytes at 50 ms: 20 s, twice the inactivity timeout
            try:
                s.send(b"a")
            except OSError:
                closed = True
                break
            sent += 1
            r, _, _ = select.select([s], [], [], 0.05)
            if r:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                self.assertEqual(data, b"", "the dribbler must get no answer")
                closed = True
                break
        self.assertTrue(closed, "the connection was not closed after %d bytes" % sent)
        # closed by the deadline (1 s = 20 bytes), long before the inactivity timeout
        self.assertLess(sent, 100, "closed only after %d bytes" % sent)
        c.wait_stats(lambda st: st["http_closed_deadline"] == 1, what="the deadline counted")
        self.good(c)
        # the deadline is per request: on one kept-alive connection, three
        # checks 0.6 s apart (1.2 s in all, past the 1 s deadline) are answered
        conn = http.client.HTTPConnection(LOCALHOST, c.http_port, timeout=IO_TIMEOUT)
        for i in range(3):
            if i:
                time.sleep(0.6)
            conn.request("GET", "/security?" + go_query(INSTALL_2))
            r = conn.getresponse()
            self.assertEqual((r.status, r.read()), (200, b"[]"))
            self.assertNotEqual(r.getheader("Connection"), "close")
        conn.close()
        st = c.stop()
        self.assertEqual(st["http_closed_deadline"], 1)

    def test_flood_from_one_address_is_rate_limited_then_recovers(self):
        c = self.http_collector({"limit_loopback": "on", "http_rate_per_address": 2,
                                 "http_burst_per_address": 5})
        c.start()
        statuses = []
        for i in range(40):  # a burst of 5, 2 more a second: most of 40 are refused
            status, headers, _ = go_check(c.http_port, go_query())
            statuses.append(status)
            if status == 429:
                self.assertGreaterEqual(int(headers["retry-after"]), 1)
        limited = statuses.count(429)
        self.assertEqual(statuses.count(200) + limited, len(statuses), statuses)
        self.assertGreaterEqual(limited, 10, statuses)
        c.wait_stats(lambda s: s["http_rate_limited"] == limited, what="429s counted")
        # the bucket refills: poll until a check is answered again
        for _ in range(200):
            status, _, _ = go_check(c.http_port, go_query())
            if status == 200:
                break
            time.sleep(0.05)
        self.assertEqual(status, 200, "no recovery after the bucket refilled")
        c.stop()


def check_from(port, xff=(), install=INSTALL):
    """A check with one X-Forwarded-For header per item of xff."""
    headers = "".join("X-Forwarded-For: %s\r\n" % v for v in xff)
    req = ("GET /security?%s HTTP/1.1\r\nHost: x\r\nUser-Agent: Go-http-client/1.1\r\n%s"
           "Connection: close\r\n\r\n" % (go_query(install), headers)).encode("latin-1")
    return raw_request(port, req)[0]


class TestTrustedProxies(HttpIngestCase):
    """Behind a reverse proxy every request comes from the proxy: with the
    proxy in http_trusted_proxies, the client named by its X-Forwarded-For has
    a bucket of its own; nobody else's X-Forwarded-For is believed."""

    LIMITS = {"limit_loopback": "on", "http_rate_per_address": 1,
              "http_burst_per_address": 5, "http_max_connections_per_address": 0}

    def drain(self, c, xff):
        """Checks from xff until one is refused 429; returns how many passed."""
        passed = 0
        for _ in range(30):
            status = check_from(c.http_port, xff)
            if status == 429:
                return passed
            self.assertEqual(status, 200)
            passed += 1
        self.fail("no 429 after 30 checks from %r" % (xff,))

    def test_forwarded_clients_get_their_own_buckets(self):
        opts = dict(self.LIMITS, http_trusted_proxies="192.0.2.0/24, 127.0.0.1/32")
        c = self.http_collector(opts)
        c.start()
        # the burst of 5 (the bucket refills 1 a second: a slow machine may pass one more)
        passed = self.drain(c, ["203.0.113.9"])
        self.assertIn(passed, (5, 6, 7))
        # another client behind the same proxy still passes, and so does the proxy itself
        self.assertEqual(check_from(c.http_port, ["203.0.113.10"]), 200)
        self.assertEqual(check_from(c.http_port, ["2001:db8::10"]), 200)
        self.assertEqual(check_from(c.http_port, []), 200)
        # the rightmost untrusted entry is the client: a forged left part changes nothing
        self.assertEqual(check_from(c.http_port, ["198.51.100.1, 203.0.113.9"]), 429)
        self.assertEqual(check_from(c.http_port, ["203.0.113.9, 192.0.2.5"]), 429)
        self.assertEqual(check_from(c.http_port, ["203.0.113.9", "192.0.2.5"]), 429)
        # several headers are one list, joined in order
        self.assertEqual(check_from(c.http_port, ["203.0.113.9", "203.0.113.11"]), 200)
        # garbage, an empty header, 10,000 bytes of entries: answered, none a bucket of its
        # own choosing (garbage stops the walk at the proxy: 127.0.0.1's bucket)
        for xff in (["garbage"], [""], ["unknown, 203.0.113.12"],
                    [", ".join("203.0.%d.%d" % (i // 250, i % 250 + 1) for i in range(700))],
                    ["x" * 10000]):
            with self.subTest(xff=xff[0][:30]):
                self.assertIn(check_from(c.http_port, xff), (200, 429))
        # 20,000 bytes: over the header cap
        self.assertEqual(check_from(c.http_port, ["1.2.3.4, " * 2500]), 431)
        self.good(c, INSTALL_2)
        c.stop()
        # no forwarded address reaches a log line
        log = "\n".join(c.lines)
        self.assertNotIn("203.0.113", log)
        self.assertNotIn("2001:db8", log)

    def test_untrusted_peer_xff_ignored(self):
        c = self.http_collector(dict(self.LIMITS, http_trusted_proxies="192.0.2.0/24"))
        c.start()
        # 127.0.0.1 is not trusted: every X-Forwarded-For is the sender's word, ignored,
        # so distinct ones share the one bucket of the peer
        passed = 0
        for i in range(30):
            status = check_from(c.http_port, ["203.0.113.%d" % (i + 1)])
            if status == 429:
                break
            passed += 1
        self.assertIn(passed, (5, 6, 7))
        self.assertEqual(check_from(c.http_port, ["203.0.113.200"]), 429)
        self.assertEqual(check_from(c.http_port, []), 429)
        c.stop()

    def test_bad_trusted_proxies_fail_the_start(self):
        for bad, what in (("10.0.0.1/8", "host bits"), ("10.0.0.0/33", "is not"),
                          ("127.0.0.1/32, proxy.example", "is not")):
            with self.subTest(bad=bad):
                c = self.http_collector({"http_trusted_proxies": bad})
                with self.assertRaises(CollectorError):
                    c.start()
                line = c.wait_for(r"event=start_failed.*", timeout=1).group(0)
                self.assertIn("stage=http", line)
                self.assertIn("http_trusted_proxies", line)
                self.assertIn(what, line)
                r = subprocess.run([COLLECTOR_BIN, "--config", c.ini_path, "--check-config"],
                                   capture_output=True, timeout=IO_TIMEOUT)
                self.assertEqual(r.returncode, 2)
                self.assertIn(b"http_trusted_proxies", r.stderr)


def make_cert(folder, name="tls", cn="localhost"):
    """A self-signed EC certificate for 127.0.0.1 and localhost, made by the
    openssl CLI: (cert path, key path)."""
    cert, key = os.path.join(folder, name + ".crt"), os.path.join(folder, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=IO_TIMEOUT)
    return cert, key


class TestTls(HttpIngestCase):

    def test_https_serves_checks_plain_http_gets_nothing(self):
        c = self.http_collector()
        cert, key = make_cert(c.root)
        c2 = self.http_collector({"http_tls_cert_file": cert, "http_tls_key_file": key,
                                  "http_request_deadline_ms": "1s"}, name="tls")
        c2.start()
        line = c2.wait_for(r"event=http_started.*", timeout=1).group(0)
        self.assertEqual(str(parse_kv(line)["https"]), "1")
        ctx = ssl.create_default_context(cafile=cert)
        conn = http.client.HTTPSConnection(LOCALHOST, c2.http_port, context=ctx,
                                           timeout=IO_TIMEOUT)
        for install in (INSTALL, INSTALL_2):  # two requests on one kept-alive TLS connection
            conn.request("GET", "/security?" + go_query(install),
                         headers={"User-Agent": "Go-http-client/1.1"})
            r = conn.getresponse()
            self.assertEqual((r.status, r.getheader("Content-Type"), r.read()),
                             (200, "application/json", b"[]"))
        self.assertIn(conn.sock.version(), ("TLSv1.2", "TLSv1.3"))
        conn.close()
        c2.wait_stats(lambda s: s["pings_accepted"] == 2, what="both checks stored")
        # plain HTTP to the TLS port: no answer, the connection closed
        status, _, _ = raw_request(c2.http_port, ("GET /security?%s HTTP/1.1\r\nHost: x\r\n"
                                                  "\r\n" % go_query()).encode())
        self.assertIsNone(status)
        # a client that trusts another CA refuses the certificate
        other, _ = make_cert(c.root, "other")
        with self.assertRaises(ssl.SSLError):
            with socket.create_connection((LOCALHOST, c2.http_port), timeout=IO_TIMEOUT) as s:
                ssl.create_default_context(cafile=other).wrap_socket(s,
                                                                     server_hostname=LOCALHOST)
        # a connection that never finishes its handshake is shut by the deadline
        s = socket.create_connection((LOCALHOST, c2.http_port), timeout=IO_TIMEOUT)
        self._sockets.append(s)
        s.sendall(b"\x16\x03\x01\x00")  # the start of a ClientHello, never finished
        self.assertEqual(s.recv(100), b"")
        c2.wait_stats(lambda st: st["http_closed_deadline"] >= 1, what="the deadline counted")
        # and good checks still flow
        conn = http.client.HTTPSConnection(LOCALHOST, c2.http_port, context=ctx,
                                           timeout=IO_TIMEOUT)
        conn.request("GET", "/security?" + go_query(INSTALL_3))
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()
        c2.stop()

    def test_handshakes_take_tokens_before_the_handshake(self):
        """A TLS handshake costs the listener a key exchange and a signature
        before any request: each connection takes a token at accept, so a
        sender opening connections and never asking anything is limited too."""
        c = self.http_collector()
        cert, key = make_cert(c.root)
        c2 = self.http_collector({"http_tls_cert_file": cert, "http_tls_key_file": key,
                                  "limit_loopback": "on", "http_rate_per_address": 1,
                                  "http_burst_per_address": 5}, name="tlsrate")
        c2.start()
        ctx = ssl.create_default_context(cafile=cert)
        done = refused = 0
        for _ in range(40):
            try:
                with socket.create_connection((LOCALHOST, c2.http_port),
                                              timeout=IO_TIMEOUT) as s:
                    ctx.wrap_socket(s, server_hostname=LOCALHOST).close()
                done += 1
            except (ssl.SSLError, OSError):
                refused += 1
            if refused >= 5:
                break
        self.assertGreaterEqual(refused, 5, "handshakes past the bucket must be refused")
        self.assertLessEqual(done, 10, "a burst of 5 and 1 a second")
        c2.wait_stats(lambda st: st["http_rate_limited"] >= refused, what="refusals counted")
        # the bucket refills: a check over HTTPS is answered again
        for _ in range(100):
            try:
                conn = http.client.HTTPSConnection(LOCALHOST, c2.http_port, context=ctx,
                                                   timeout=IO_TIMEOUT)
                conn.request("GET", "/security?" + go_query())
                status = conn.getresponse().status
                conn.close()
            except (ssl.SSLError, OSError):
                status = None
            if status == 200:
                break
            time.sleep(0.1)
        self.assertEqual(status, 200, "no recovery after the bucket refilled")
        c2.stop()

    def test_bad_tls_files_fail_the_start_naming_them(self):
        c = self.http_collector()
        cert, key = make_cert(c.root)
        other_cert, other_key = make_cert(c.root, "other")
        garbage = os.path.join(c.root, "garbage.pem")
        with open(garbage, "wb") as f:
            f.write(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                    b"-----END CERTIFICATE-----\n")
        missing = os.path.join(c.root, "missing.pem")
        cases = [
            ("a missing certificate", missing, key, "http_tls_cert_file", missing),
            ("a garbage certificate", garbage, key, "http_tls_cert_file", garbage),
            ("a key for a certificate", cert, cert, "http_tls_key_file", cert),
            ("a garbage key", cert, garbage, "http_tls_key_file", garbage),
            ("a key of another certificate", cert, other_key, "http_tls_key_file", other_key),
            ("a folder", c.root, key, "http_tls_cert_file", c.root),
        ]
        for what, cf, kf, option, named in cases:
            with self.subTest(what):
                bad = self.http_collector({"http_tls_cert_file": cf, "http_tls_key_file": kf},
                                          name="badtls")
                with self.assertRaises(CollectorError):
                    bad.start()
                line = bad.wait_for(r"event=start_failed.*", timeout=1).group(0)
                self.assertIn("stage=http", line)
                self.assertIn(option, line)
                self.assertIn(named, line)
                r = subprocess.run([COLLECTOR_BIN, "--config", bad.ini_path, "--check-config"],
                                   capture_output=True, timeout=IO_TIMEOUT)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(option.encode(), r.stderr)
                self.assertIn(named.encode(), r.stderr)
        # only one of the two: the configuration says so
        bad = self.http_collector({"http_tls_cert_file": cert}, name="halftls")
        with self.assertRaises(CollectorError):
            bad.start()
        # and the good pair passes --check-config
        good = self.http_collector({"http_tls_cert_file": cert, "http_tls_key_file": key},
                                   name="goodtls")
        r = subprocess.run([COLLECTOR_BIN, "--config", good.ini_path, "--check-config"],
                           capture_output=True, timeout=IO_TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
