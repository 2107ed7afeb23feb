"""The network table (issue 13, "Organization identity") against the real
binary: PUT /v1/networks as admin, GET /v1/networks with the read token and
its pages, 401 without the right token, bad CSV lines answered 400 naming the
line (never a domain), its own body cap (api_max_networks_bytes, not
api_max_body_bytes), a replace seen whole or not at all by concurrent
readers, no raw domain anywhere in the data directory or the log (a named
account's domain, which is stored on purpose, proves the search sees one),
the table kept across a restart, and `warmline networks import|list`."""

import csv
import http.client
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import unittest
import urllib.error
import urllib.request

from harness import CLI_BIN, LOCALHOST, CollectorCase, have_cli, org_key_hex

CLI_TIMEOUT = 60


class NetworksCase(CollectorCase):
    """A collector with read and admin tokens and its API on a loopback
    port; api_max_body_bytes at its floor so that a body the networks route
    takes would be refused by any other."""

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="wl-net-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.read_token, self.admin_token = secrets.token_hex(20), secrets.token_hex(20)
        self.read_file = os.path.join(self.tmp, "read.token")
        self.admin_file = os.path.join(self.tmp, "admin.token")
        with open(self.read_file, "w") as f:
            f.write(self.read_token + "\n")
        with open(self.admin_file, "w") as f:
            f.write(self.admin_token + "\n")
        self.c = self.collector(
            {"read_token_file": self.read_file, "admin_token_file": self.admin_file},
            extra_ini="[api]\napi_max_body_bytes = 1KiB\napi_max_networks_bytes = 256KiB\n")
        self.url = "http://%s:%d" % (LOCALHOST, self.c.api_port)
        # a clean stop: exit code 0 (under the sanitizers, no leak or error at exit)
        self.addCleanup(lambda: self.c.running() and self.c.stop())

    def api(self, path, method="GET", body=None, token=None):
        """(status, parsed JSON or the raw body) of one request."""
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if token is not None:
            req.add_header("Authorization", "Bearer " + token)
        if body is not None:
            req.add_header("Content-Type", "text/csv")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                data = r.read()
                return r.status, (json.loads(data) if data else None)
        except urllib.error.HTTPError as e:
            data = e.read()
            try:
                return e.code, json.loads(data)
            except ValueError:
                return e.code, data

    def put(self, text, token="admin"):
        return self.api("/v1/networks", "PUT", text.encode(),
                        self.admin_token if token == "admin" else token)

    def put_ok(self, text):
        status, doc = self.put(text)
        self.assertEqual(status, 200, "PUT /v1/networks: %s %s" % (status, doc))
        return doc

    def listing(self, token=None, limit=None):
        """Every row of GET /v1/networks, page by page."""
        rows, after, pages = [], None, 0
        while True:
            q = []
            if limit is not None:
                q.append("limit=%d" % limit)
            if after is not None:
                q.append("after=" + urllib.request.quote(after, safe=""))
            status, doc = self.api("/v1/networks" + ("?" + "&".join(q) if q else ""),
                                   token=token or self.read_token)
            self.assertEqual(status, 200, "GET /v1/networks: %s %s" % (status, doc))
            rows += doc["networks"]
            pages += 1
            if doc["next_after"] is None:
                return rows, pages
            self.assertEqual(doc["next_after"], rows[-1]["cidr"])
            after = doc["next_after"]

    def org(self, domain):
        return org_key_hex(self.c.org_salt, domain)

    def gauge(self, name):
        req = urllib.request.Request(self.url + "/metrics")
        req.add_header("Authorization", "Bearer " + self.read_token)
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
        m = re.search(r"^warmline_%s (\d+)$" % name, text, re.M)
        self.assertIsNotNone(m, "no warmline_%s in /metrics" % name)
        return int(m.group(1))


TABLE_A = ("cidr,domain\n"
           "10.0.0.0/8,acme-a.example\n"
           "10.1.0.0/16,globex-a.example\n"
           "2001:db8::/32,acme-a.example\n")
TABLE_B = ("192.168.0.0/16,initech-b.example\n"
           "10.1.0.0/16,globex-a.example\n")


class TestPutAndGet(NetworksCase):

    def test_admin_puts_reader_lists(self):
        # a named account for one of the organizations: its label comes along
        status, _ = self.api("/v1/named-accounts", "PUT",
                             b"domain,name,owner\nglobex-a.example,Globex,sam\n",
                             self.admin_token)
        self.assertEqual(status, 200)
        doc = self.put_ok(TABLE_A)
        self.assertEqual(doc, {"imported": 3, "removed": 0})
        rows, _ = self.listing()
        self.assertEqual([r["cidr"] for r in rows], ["10.0.0.0/8", "10.1.0.0/16", "2001:db8::/32"])
        self.assertEqual([r["org"] for r in rows],
                         [self.org("acme-a.example"), self.org("globex-a.example"),
                          self.org("acme-a.example")])
        self.assertIsNone(rows[0]["named"])
        self.assertEqual(rows[1]["named"]["name"], "Globex")
        # the admin token reads too
        self.assertEqual(self.listing(token=self.admin_token)[0], rows)
        self.assertTrue(self.c.find_lines(r"event=networks_imported prefixes=3 removed=0"))
        self.assertEqual(self.gauge("network_prefixes"), 3)
        self.assertGreater(self.gauge("network_table_bytes"), 0)

    def test_tokens(self):
        for token in (None, "", self.read_token, "x" * 40):
            status, doc = self.put(TABLE_A, token=token)
            self.assertEqual(status, 401, "PUT with %r: %s" % (token, doc))
        req = urllib.request.Request(self.url + "/v1/networks", data=TABLE_A.encode(),
                                     method="PUT")
        try:
            urllib.request.urlopen(req, timeout=10)
            self.fail("PUT without Authorization was taken")
        except urllib.error.HTTPError as e:
            self.assertEqual(e.code, 401)
        status, _ = self.api("/v1/networks")
        self.assertEqual(status, 401)
        status, _ = self.api("/v1/networks", token="y" * 40)
        self.assertEqual(status, 401)
        self.assertEqual(self.listing()[0], [], "a refused PUT changed the table")
        status, doc = self.api("/v1/networks", "DELETE", token=self.admin_token)
        self.assertEqual(status, 405)

    def test_pages(self):
        text = "".join("10.%d.%d.0/24,org%d.example\n" % (i // 256, i % 256, i % 7)
                       for i in range(2500))
        self.assertEqual(self.put_ok(text)["imported"], 2500)
        rows, pages = self.listing(limit=1000)
        self.assertEqual(pages, 3)
        self.assertEqual(len(rows), 2500)
        self.assertEqual(rows[0]["cidr"], "10.0.0.0/24")
        self.assertEqual(rows[-1]["cidr"], "10.9.195.0/24")
        self.assertEqual(len({r["cidr"] for r in rows}), 2500)
        self.assertEqual(self.listing()[1], 25)  # the default page is 100
        # after a CIDR that is not in the table: the next one
        status, doc = self.api("/v1/networks?limit=2&after=10.0.0.128/25", token=self.read_token)
        self.assertEqual([r["cidr"] for r in doc["networks"]], ["10.0.1.0/24", "10.0.2.0/24"])
        for bad in ("after=10.0.0.1/24", "after=acme.example", "limit=0", "limit=1001", "x=1"):
            status, doc = self.api("/v1/networks?" + bad, token=self.read_token)
            self.assertEqual(status, 400, bad)
            self.assertNotIn("acme", json.dumps(doc))


class TestBadInput(NetworksCase):

    CASES = [
        ("cidr,domain\n10.0.0.0/8,acme-x.example\n10.0.0.1/8,secret1.example\n",
         "line 3: cidr: host bits set past /8: the network is 10.0.0.0/8"),
        ("10.0.0.0/8,secret1.example\nsecret2.example,10.0.0.0/8\n", "line 2: cidr: not an IPv4"),
        ("10.0.0.0/8,secret1.example\n\n10.0.0.0/8,secret2.example\n",
         "line 3: 10.0.0.0/8 is already on line 1 with another domain"),
        ("10.0.0.0/8,bob@secret1.example\n", "line 1: domain: an email address"),
        ("10.0.0.0/8,\n", "line 1: domain: empty"),
        ("10.0.0.0/8,secret1.example,extra\n", "line 1: expected 2 fields"),
        ("10.0.0.0/33,secret1.example\n", "line 1: cidr: the prefix length"),
        ("::ffff:10.0.0.0/104,secret1.example\n", "line 1: cidr: an IPv4-mapped"),
        ("10.0.0.0/8,\"secret1.example\n", "line 1:"),
        ("", "line 1: the body is empty"),
    ]

    def test_bad_lines_answered_400_naming_the_line(self):
        self.put_ok(TABLE_A)
        before = self.listing()[0]
        for text, want in self.CASES:
            status, doc = self.put(text)
            self.assertEqual(status, 400, "%r: %s %s" % (text, status, doc))
            self.assertEqual(doc["error"]["code"], "bad_csv")
            self.assertIn(want, doc["error"]["message"], text)
            self.assertNotIn("secret", json.dumps(doc), "the answer quotes a domain")
        self.assertEqual(self.listing()[0], before, "a refused import changed the table")
        log = "\n".join(self.c.lines)
        self.assertNotIn("secret", log)
        self.assertNotIn("acme-a", log)

    def test_own_body_cap(self):
        # over api_max_body_bytes (1 KiB), under api_max_networks_bytes: taken
        text = "".join("10.%d.%d.0/24,org.example\n" % (i // 256, i % 256) for i in range(200))
        self.assertGreater(len(text), 1024)
        self.assertEqual(self.put_ok(text)["imported"], 200)
        # ... where another PUT of that size is refused at its own cap
        status, doc = self.api("/v1/named-accounts", "PUT",
                               ("domain,name,owner\n" + "a.example,x,y\n" * 100).encode(),
                               self.admin_token)
        self.assertEqual(status, 413)
        self.assertIn("api_max_body_bytes", doc["error"]["message"])
        # over api_max_networks_bytes (256 KiB): 413, declared or not
        big = ("10.0.0.0/8,org.example\n" * 12000).encode()
        self.assertGreater(len(big), 256 * 1024)
        status, doc = self.api("/v1/networks", "PUT", big, self.admin_token)
        self.assertEqual(status, 413)
        self.assertIn("api_max_networks_bytes", doc["error"]["message"])
        # chunked, no Content-Length: read past the cap, then 413
        conn = http.client.HTTPConnection(LOCALHOST, self.c.api_port, timeout=30)
        conn.request("PUT", "/v1/networks", body=(big[i:i + 65536]
                                                  for i in range(0, len(big), 65536)),
                     headers={"Authorization": "Bearer " + self.admin_token},
                     encode_chunked=True)
        r = conn.getresponse()
        self.assertEqual(r.status, 413)
        self.assertIn(b"api_max_networks_bytes", r.read())
        conn.close()
        self.assertEqual(len(self.listing()[0]), 200, "the refused body changed the table")


class TestReplace(NetworksCase):

    def test_replace_is_whole(self):
        self.put_ok(TABLE_A)
        doc = self.put_ok(TABLE_B)
        self.assertEqual(doc, {"imported": 2, "removed": 2})  # 10.1/16 stays
        rows, _ = self.listing()
        self.assertEqual([(r["cidr"], r["org"]) for r in rows],
                         [("10.1.0.0/16", self.org("globex-a.example")),
                          ("192.168.0.0/16", self.org("initech-b.example"))])
        # the header row alone empties it
        self.assertEqual(self.put_ok("cidr,domain\n"), {"imported": 0, "removed": 2})
        self.assertEqual(self.listing()[0], [])

    def test_readers_see_one_table_or_the_other(self):
        """Replaces alternate between two tables of 600 prefixes (no common
        prefix) while readers list one page of 1,000: every page is all of
        one table."""
        a = "".join("10.0.%d.0/24,a%d.example\n" % (i % 256, i) for i in range(256)) + \
            "".join("10.1.%d.0/24,a.example\n" % i for i in range(256)) + \
            "".join("10.2.%d.0/24,a.example\n" % i for i in range(88))
        b = "".join("172.16.%d.0/24,b.example\n" % i for i in range(256)) + \
            "".join("172.17.%d.0/24,b%d.example\n" % (i, i) for i in range(256)) + \
            "".join("172.18.%d.0/24,b.example\n" % i for i in range(88))
        self.put_ok(a)
        stop = threading.Event()
        seen, errors = {"a": 0, "b": 0}, []

        def reader():
            while not stop.is_set():
                status, doc = self.api("/v1/networks?limit=1000", token=self.read_token)
                if status != 200:
                    errors.append("GET: %s" % status)
                    return
                firsts = {r["cidr"].split(".")[0] for r in doc["networks"]}
                if len(doc["networks"]) != 600 or len(firsts) != 1:
                    errors.append("a mixed or partial page: %d rows, %s"
                                  % (len(doc["networks"]), sorted(firsts)))
                    return
                seen["a" if firsts == {"10"} else "b"] += 1

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            for i in range(12):
                self.put_ok(b if i % 2 == 0 else a)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertEqual(errors, [])
        self.assertGreater(seen["a"] + seen["b"], 0)


def files_holding(root, needles):
    """{needle: [files under root whose bytes hold it]}."""
    found = {n: [] for n in needles}
    for d, _, names in os.walk(root):
        for name in names:
            path = os.path.join(d, name)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:  # a log rotated or a file compacted away meanwhile
                continue
            for n in needles:
                if n.encode() in data:
                    found[n].append(os.path.relpath(path, root))
    return found


class TestStorage(NetworksCase):

    def test_no_raw_domain_stored_and_kept_across_restart(self):
        domains = ["zq%s.example" % secrets.token_hex(6) for _ in range(3)]
        named_domain = "named%s.example" % secrets.token_hex(6)
        status, _ = self.api("/v1/named-accounts", "PUT",
                             ("domain,name,owner\n%s,N,o\n" % named_domain).encode(),
                             self.admin_token)
        self.assertEqual(status, 200)
        self.put_ok("cidr,domain\n10.0.0.0/8,%s\n10.9.0.0/16,%s\n2001:db8::/32,%s\n"
                    "192.0.2.0/24,%s\n" % (domains[0], domains[1], domains[2], named_domain))
        rows, _ = self.listing()
        self.assertEqual(len(rows), 4)
        # the write-ahead log holds every batch as written: the named account's
        # domain is there (stored on purpose), the table's are not
        found = files_holding(self.c.data_dir, domains + [named_domain])
        self.assertTrue(found[named_domain], "the search sees no domain at all")
        for d in domains:
            self.assertEqual(found[d], [], "%s is stored raw" % d)
        self.c.stop()
        self.c.start()
        self.url = "http://%s:%d" % (LOCALHOST, self.c.api_port)  # a new ephemeral port
        self.assertTrue(self.c.find_lines(r"event=networks_loaded prefixes=4\b"))
        self.assertEqual(self.listing()[0], rows)
        self.assertEqual(self.gauge("network_prefixes"), 4)
        found = files_holding(self.c.data_dir, domains)
        for d in domains:
            self.assertEqual(found[d], [], "%s is stored raw" % d)
        log = "\n".join(line for run in self.c.runs for line in run)
        for d in domains + [named_domain]:
            self.assertNotIn(d, log)


def run_cli(*args, token=None, stdin=None):
    env = {k: v for k, v in os.environ.items() if k != "WARMLINE_TOKEN"}
    if token is not None:
        env["WARMLINE_TOKEN"] = token
    r = subprocess.run([CLI_BIN] + list(args), input=stdin, capture_output=True,
                       timeout=CLI_TIMEOUT, env=env)
    r.stdout = r.stdout.decode("utf-8")
    r.stderr = r.stderr.decode("utf-8", "replace")
    return r


class TestCli(NetworksCase):

    def setUp(self):
        super().setUp()
        if not have_cli():
            self.fail("%s is missing: build first" % CLI_BIN)

    def cli(self, *args, token=None, code=0, stdin=None):
        r = run_cli(*(list(args) + ["--url", self.url]), token=token, stdin=stdin)
        self.assertEqual(r.returncode, code, "warmline %s: exit %d\n%s"
                         % (" ".join(args), r.returncode, r.stderr))
        return r

    def test_import_and_list(self):
        path = os.path.join(self.tmp, "nets.csv")
        text = "".join("10.%d.%d.0/24,org%d.example\n" % (i // 256, i % 256, i % 3)
                       for i in range(1500))
        with open(path, "w") as f:
            f.write(text)
        r = self.cli("networks", "import", path, "--token-file", self.admin_file)
        self.assertIn("imported 1500 prefix(es)", r.stdout)
        r = self.cli("networks", "import", path, "--json", token=self.admin_token)
        self.assertEqual(json.loads(r.stdout), {"imported": 1500, "removed": 0})
        r = self.cli("networks", "list", "--csv", "--token-file", self.read_file)
        got = list(csv.reader(io.StringIO(r.stdout)))
        self.assertEqual(got[0], ["cidr", "org", "name"])
        self.assertEqual(len(got), 1501)  # every page
        self.assertEqual(got[1], ["10.0.0.0/24", self.org("org0.example"), ""])
        r = self.cli("networks", "list", "--json", token=self.read_token)
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        self.assertEqual(len(lines), 1500)
        self.assertEqual(lines[-1]["cidr"], "10.5.219.0/24")
        r = self.cli("networks", "list", token=self.read_token)
        self.assertEqual(len(r.stdout.splitlines()), 1501)
        # from standard input; a bad line: exit 2 with the line, nothing changed
        r = self.cli("networks", "import", "-", token=self.admin_token, code=2,
                     stdin=b"10.0.0.0/8,a.example\n10.0.0.1/8,secret.example\n")
        self.assertIn("line 2", r.stderr)
        self.assertNotIn("secret", r.stderr)
        # the read token cannot import
        r = self.cli("networks", "import", path, token=self.read_token, code=1)
        self.assertIn("the token was refused", r.stderr)
        self.assertEqual(len(self.cli("networks", "list", "--json",
                                      token=self.read_token).stdout.splitlines()), 1500)

    def test_usage(self):
        r = run_cli("networks", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("warmline networks import FILE.csv | list", r.stdout)
        self.assertEqual(run_cli("networks").returncode, 2)
        self.assertEqual(run_cli("networks", "frob").returncode, 2)
        self.assertEqual(run_cli("networks", "import").returncode, 2)
        self.assertEqual(run_cli("networks", "list", "extra").returncode, 2)
        empty = os.path.join(self.tmp, "empty.csv")
        open(empty, "w").close()
        r = run_cli("networks", "import", empty, "--url", self.url)
        self.assertEqual(r.returncode, 2)
        self.assertIn("empty", r.stderr)
        self.assertIn("networks", run_cli("help").stdout)


if __name__ == "__main__":
    unittest.main()
