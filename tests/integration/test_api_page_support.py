"""What the sales-ops page needs of the API (issue 14), against the real
collector over real HTTP:

- GET /v1/accounts/hot paged by cursor (`next`, sent back as `after`): 1,200
  organizations imported with `warmline import`, walked page by page, come
  back each once, in the rank index's order (score, then org id, highest
  first), ranked 1..n across pages, with their versions and editions; the
  filters page the same way; a bad cursor is a 400 that says why; an
  organization whose score rises while a client pages moves to the top and
  is not shown twice; a request stopped by its bound on index entries read
  says where to go on.
- GET /v1/rules lists the bundled rules as the configuration says them.
- Without tokens (loopback only) the listener answers requests that name it
  (Host, and Origin when sent) and takes the body types its routes read; a
  foreign Origin, a rebound Host or a text/plain body are refused. With
  tokens the bearer token is the protection, as before.
"""

import base64
import http.client
import json
import os
import re
import secrets
import subprocess
import time

from harness import (CLI_BIN, DEFAULT_INI, IO_TIMEOUT, LOCALHOST, Collector, CollectorCase,
                     make_ping, org_key_hex, run_import, set_options)

DAY = 86400 * 1000
N_ORGS = 1200
ENTERPRISE = 4           # every 4th organization runs the enterprise edition


def org_pings(now):
    """One ping per organization, two days ago, a minute apart in groups of
    three (equal times: equal scores, ordered by org id). Each fires
    mau_over_25 (3 points); the enterprise ones enterprise_edition_unlicensed
    too (2 points)."""
    base = now - 2 * DAY
    out = []
    for i in range(N_ORGS):
        out.append(dict(install_id="p%d" % i, seq=1, sent_at=base + (i // 3) * 60000,
                        version="9.%d.0" % (i % 5),
                        edition="enterprise" if i % ENTERPRISE == 0 else "team",
                        database_type="postgres", operating_system="linux",
                        installation_type="docker", registered_users=40,
                        active_users_daily=10, active_users_monthly=30, teams=1,
                        public_channels=3, private_channels=1, posts=500,
                        org_domain="org%d.example" % i))
    return out


def expected_order(pings, salt):
    """Org ids in the rank index's order: 5 points above 3 (the times lie
    within a day, far less than the half-life that 5/3 would take), then the
    newest first, then the highest org id."""
    rows = [(p["edition"] == "enterprise", p["sent_at"], org_key_hex(salt, p["org_domain"]))
            for p in pings]
    return [org for _, _, org in sorted(rows, reverse=True)]


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw_call(port, method, path, body=None, headers=None, timeout=IO_TIMEOUT):
    """One request with exactly these headers (http.client adds Host unless
    given, and Content-Length; no Content-Type of its own). (status, doc)."""
    conn = http.client.HTTPConnection(LOCALHOST, port, timeout=timeout)
    try:
        h = dict(headers or {})
        conn.putrequest(method, path, skip_host="Host" in h, skip_accept_encoding=True)
        for k, v in h.items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
        try:
            doc = json.loads(data) if data else None
        except ValueError:
            doc = data
        return r.status, doc
    finally:
        conn.close()


def write_tokens(c):
    toks = {"read": "read-" + secrets.token_hex(16), "admin": "admin-" + secrets.token_hex(16)}
    paths = {}
    for name, tok in toks.items():
        paths[name] = os.path.join(c.root, name + ".token")
        with open(paths[name], "w") as f:
            f.write(tok + "\n")
    set_options(c, {"read_token_file": paths["read"], "admin_token_file": paths["admin"]})
    return toks


class PageSupportCase(CollectorCase):
    c = None
    token = None

    def setUp(self):
        super().setUp()
        self.addCleanup(self._print_log_on_failure)

    def _print_log_on_failure(self):
        if self.c is not None and self._failed():
            import sys
            sys.stderr.write("\n" + self.c.log_tail(40) + "\n")

    def call(self, method, path, body=None, headers=None, token="default",
             timeout=IO_TIMEOUT):
        h = dict(headers or {})
        tok = self.token if token == "default" else token
        if tok is not None:
            h["Authorization"] = "Bearer " + tok
        return raw_call(self.c.api_port, method, path, body=body, headers=h, timeout=timeout)

    def get(self, path, status=200, timeout=IO_TIMEOUT):
        st, doc = self.call("GET", path, timeout=timeout)
        self.assertEqual(st, status, doc)
        return doc

    def assertRefused(self, got, status, code, *in_message):
        st, doc = got
        self.assertEqual(st, status, doc)
        self.assertEqual(doc["error"]["code"], code, doc)
        for text in in_message:
            self.assertIn(text, doc["error"]["message"], doc)

    def walk(self, query, limit):
        """Every row of the hot list with the query, page by page: (rows,
        pages)."""
        rows, pages, after = [], 0, None
        while True:
            q = "limit=%d%s%s" % (limit, "&" + query if query else "",
                                  "&after=" + after if after else "")
            page = self.get("/v1/accounts/hot?" + q)
            pages += 1
            self.assertLessEqual(len(page["accounts"]), limit)
            self.assertFalse(page["truncated"], page)
            scores = [a["score"] for a in page["accounts"]]
            self.assertEqual(scores, sorted(scores, reverse=True), "a page in score order")
            rows += page["accounts"]
            if page["next"] is None:
                return rows, pages
            self.assertIsInstance(page["next"], str)
            self.assertRegex(page["next"], r"^[A-Za-z0-9_-]+$", "base64url, no padding")
            after = page["next"]
            self.assertLess(pages, 2 * N_ORGS, "paging ends")


class HotPaging(PageSupportCase):
    """Tokens set; 1,200 organizations imported; nothing live."""

    @classmethod
    def setUpClass(cls):
        c = Collector(name="page-api")
        cls.addClassCleanup(c.close)
        cls.pings = org_pings(int(time.time() * 1000))
        path = os.path.join(c.root, "orgs.ndjson")
        with open(path, "w") as f:
            for p in cls.pings:
                f.write(json.dumps(p) + "\n")
        r = run_import(path, c.data_dir, org_salt_file=c.salt_path)
        if r.returncode != 0 or "%d accepted" % N_ORGS not in r.stderr:
            raise AssertionError("import failed: exit %d\n%s" % (r.returncode, r.stderr))
        cls.tokens = write_tokens(c)
        cls.token = cls.tokens["read"]
        c.start()
        cls.addClassCleanup(c.stop)  # before close: exit 0 (under the sanitizers, clean)
        cls.c = c
        cls.order = expected_order(cls.pings, c.org_salt)
        cls.by_org = {org_key_hex(c.org_salt, p["org_domain"]): p for p in cls.pings}

    def test_paging_gives_every_org_once_in_order(self):
        for limit in (97, 1000, 400):
            with self.subTest(limit=limit):
                rows, pages = self.walk("", limit)
                got = [a["org"] for a in rows]
                self.assertEqual(len(got), len(set(got)), "no organization twice")
                self.assertEqual(got, self.order, "every organization once, in rank order")
                self.assertEqual(pages, -(-N_ORGS // limit), "a full last page has no next")
                self.assertEqual([a["rank"] for a in rows], list(range(1, N_ORGS + 1)),
                                 "ranks go on across pages")

    def test_rows_carry_versions_and_editions(self):
        page = self.get("/v1/accounts/hot?limit=200")
        self.assertEqual(len(page["accounts"]), 200)
        for a in page["accounts"]:
            p = self.by_org[a["org"]]
            self.assertEqual((a["versions"], a["editions"]), ([p["version"]], [p["edition"]]),
                             a)

    def test_filters_page_too(self):
        ent = [o for o in self.order if self.by_org[o]["edition"] == "enterprise"]
        self.assertEqual(len(ent), N_ORGS // ENTERPRISE)
        rows, _ = self.walk("rule=enterprise_edition_unlicensed", 64)
        self.assertEqual([a["org"] for a in rows], ent)
        self.assertEqual([a["rank"] for a in rows], list(range(1, len(ent) + 1)))
        # min_score: the 5-point organizations score above 4, the others below 3;
        # the walk ends where the scores go under it (next null)
        rows, pages = self.walk("min_score=4", 100)
        self.assertEqual([a["org"] for a in rows], ent)
        self.assertEqual(pages, 3)
        # a page exactly full with nothing after it under the filter ends next time
        page = self.get("/v1/accounts/hot?min_score=4&limit=%d" % len(ent))
        self.assertEqual(len(page["accounts"]), len(ent))
        self.assertIsNone(page["next"], "nothing is left above min_score")

    def test_last_page_and_positions(self):
        page = self.get("/v1/accounts/hot?limit=1000")
        nxt = page["next"]
        raw = unb64(nxt)
        self.assertEqual(raw[0], 1, "the cursor's version")
        self.assertEqual(int.from_bytes(raw[1:5], "big"), 1000, "the rank of its last row")
        self.assertEqual(raw[5 + 8 + 1:].hex(), page["accounts"][-1]["org"])
        rest = self.get("/v1/accounts/hot?limit=1000&after=" + nxt)
        self.assertEqual(len(rest["accounts"]), N_ORGS - 1000)
        self.assertIsNone(rest["next"])
        self.assertEqual([a["rank"] for a in rest["accounts"]], list(range(1001, N_ORGS + 1)))
        # a position below every row: nothing
        bottom = bytes([1]) + (7).to_bytes(4, "big") + b"\x00" * 8 + b"k" + b"\x00" * 32
        end = self.get("/v1/accounts/hot?after=" + b64(bottom))
        self.assertEqual((end["accounts"], end["next"]), ([], None))
        # above every row: the list from the top, ranked from the cursor's rank
        top = bytes([1]) + (7).to_bytes(4, "big") + b"\xff" * 8 + b"k" + b"\xff" * 32
        page = self.get("/v1/accounts/hot?limit=3&after=" + b64(top))
        self.assertEqual([a["org"] for a in page["accounts"]], self.order[:3])
        self.assertEqual([a["rank"] for a in page["accounts"]], [8, 9, 10])

    def test_bad_cursor_is_400(self):
        good = unb64(self.get("/v1/accounts/hot?limit=2")["next"])
        wrong_version = bytes([2]) + good[1:]
        wrong_tag = good[:5 + 8] + b"x" + good[5 + 9:]
        short_key = good[:5 + 8 + 1 + 31]
        install = good[:5 + 8] + b"i"            # an install tag with no id
        for after, why in (("", "empty"), ("!!!!", "not base64url"),
                           (b64(good) + "=", "padding"), ("AAAA", "too short"),
                           (b64(good)[:-1] + "/", "base64, not base64url"),
                           (b64(good + b"\x00" * 200), "too long"),
                           ("A" * 8000, "very long"),
                           (b64(wrong_version), "another version"),
                           (b64(wrong_tag), "not an org id"),
                           (b64(short_key), "an org key one byte short"),
                           (b64(install), "an install tag alone"),
                           (b64(good)[:-2] + "%00", "a NUL"),
                           (b64(good) + "%0a", "a newline")):
            with self.subTest(why=why):
                st, doc = self.call("GET", "/v1/accounts/hot?after=" + after)
                self.assertEqual(st, 400, doc)
                err = doc["error"]
                self.assertEqual(err["code"], "bad_parameter")
                self.assertTrue(err["message"].startswith("after: expected a cursor"), err)
                self.assertLess(len(err["message"]), 300, "a bad value is not echoed whole")
        st, doc = self.call("GET", "/v1/accounts/hot?after=%s&after=%s" % (b64(good), b64(good)))
        self.assertEqual((st, doc["error"]["message"]), (400, "after: given more than once"))

    def test_rules(self):
        with open(DEFAULT_INI) as f:
            names = re.findall(r'^\[rule "([^"]+)"\]', f.read(), re.M)
        self.assertGreater(len(names), 5)
        rules = self.get("/v1/rules")["rules"]
        self.assertEqual([r["name"] for r in rules], names, "the bundled rules, in order")
        by = {r["name"]: r for r in rules}
        self.assertEqual(by["mau_over_25"], {
            "name": "mau_over_25", "weight": 3.0, "cooldown_ms": 7 * DAY, "hysteresis": 0.1,
            "when": "active_users_monthly > 25 and not has_feature(licensed)",
            "description": "Passed 25 monthly active users: a team scaling past the free sweet "
                           "spot needs user management and SSO"})
        self.assertEqual(by["mau_growth_30d"]["cooldown_ms"], 30 * DAY)
        self.assertIn("growth_30d(active_users_monthly) >= 50", by["mau_growth_30d"]["when"])
        self.assertEqual(by["sso_interest"]["weight"], 5.0)
        # the reasons of the hot list name rules this lists
        for a in self.get("/v1/accounts/hot?limit=20")["accounts"]:
            for r in a["reasons"]:
                self.assertEqual(r["description"], by[r["rule"]]["description"])
        self.assertRefused(self.call("GET", "/v1/rules", token=None), 401, "unauthorized")
        self.assertRefused(self.call("GET", "/v1/rules?x=1"), 400, "bad_parameter",
                           "unknown parameter 'x'")
        st, doc = self.call("GET", "/v1/rules", token=self.tokens["admin"])
        self.assertEqual((st, len(doc["rules"])), (200, len(names)))

    def test_with_tokens_host_and_origin_are_not_checked(self):
        """With tokens the bearer token is the protection: a foreign Host,
        Origin or body type changes nothing (as before)."""
        admin = self.tokens["admin"]
        st, doc = self.call("GET", "/v1/accounts/hot?limit=1",
                            headers={"Host": "evil.example", "Origin": "http://evil.example"})
        self.assertEqual(st, 200, doc)
        st, doc = self.call("PUT", "/v1/named-accounts", body=b"domain,name,owner\n",
                            headers={"Origin": "http://evil.example",
                                     "Content-Type": "text/plain"}, token=admin)
        self.assertEqual(st, 200, doc)
        self.assertRefused(self.call("PUT", "/v1/named-accounts", body=b"domain,name,owner\n",
                                     headers={"Content-Type": "text/csv"}), 401,
                           "unauthorized")


class HotVisitBound(PageSupportCase):
    """No tokens; 101,000 organizations, only the lowest-ranked of them
    matching rule=teams_5: one request reads at most 100,000 rank entries,
    answers truncated with a next that goes on from the last one read, and
    the next page finds the match."""

    N = 101000
    # 100,000 index entries are read in one request: 1.4 s here, several
    # times that under the sanitizers on a loaded machine
    test_timeout = max(CollectorCase.test_timeout, 300)
    SLOW = 120

    @classmethod
    def setUpClass(cls):
        c = Collector(name="page-bound")
        cls.addClassCleanup(c.close)
        base = int(time.time() * 1000) - 2 * DAY
        path = os.path.join(c.root, "orgs.ndjson")
        with open(path, "w") as f:
            for i in range(cls.N):
                # i = 0 alone has 5 teams (4 points, not 3), and is 8 days older
                # (more than the 0.42 half-lives 4/3 takes): the lowest score
                f.write(json.dumps(dict(
                    install_id="v%d" % i, seq=1,
                    sent_at=base + i * 1000 if i else base - 8 * DAY, version="9.1.0",
                    edition="team", active_users_monthly=30, registered_users=40,
                    teams=5 if i == 0 else 1, org_domain="v%d.example" % i)) + "\n")
        r = run_import(path, c.data_dir, org_salt_file=c.salt_path, timeout=300)
        if r.returncode != 0 or "%d accepted" % cls.N not in r.stderr:
            raise AssertionError("import failed: exit %d\n%s" % (r.returncode, r.stderr))
        c.start(timeout=cls.SLOW)  # it loads 101,000 organizations
        cls.addClassCleanup(c.stop)  # before close: exit 0 (under the sanitizers, clean)
        cls.c = c

    def test_truncated_page_goes_on(self):
        first = self.get("/v1/accounts/hot?rule=teams_5&limit=10", timeout=self.SLOW)
        self.assertEqual((first["accounts"], first["truncated"]), ([], True),
                         json.dumps(first)[:300])
        self.assertIsNotNone(first["next"], "a truncated page says where to go on")
        raw = unb64(first["next"])
        self.assertEqual(int.from_bytes(raw[1:5], "big"), 0, "no row found yet")
        rest = self.get("/v1/accounts/hot?rule=teams_5&limit=10&after=" + first["next"],
                        timeout=self.SLOW)
        self.assertFalse(rest["truncated"])
        self.assertIsNone(rest["next"])
        want = org_key_hex(self.c.org_salt, "v0.example")
        self.assertEqual([(a["org"], a["rank"]) for a in rest["accounts"]], [(want, 1)])
        # unfiltered, the bound does not bite: a page reads limit entries
        page = self.get("/v1/accounts/hot?limit=1000")
        self.assertEqual((len(page["accounts"]), page["truncated"]), (1000, False))


class ScoresMoveWhilePaging(PageSupportCase):
    """No tokens; 1,200 organizations; a live ping raises one from the
    bottom to the top between two pages."""

    @classmethod
    def setUpClass(cls):
        c = Collector(name="page-live")
        cls.addClassCleanup(c.close)
        cls.pings = org_pings(int(time.time() * 1000))
        path = os.path.join(c.root, "orgs.ndjson")
        with open(path, "w") as f:
            for p in cls.pings:
                f.write(json.dumps(p) + "\n")
        r = run_import(path, c.data_dir, org_salt_file=c.salt_path)
        if r.returncode != 0:
            raise AssertionError("import failed: exit %d\n%s" % (r.returncode, r.stderr))
        c.start()
        cls.addClassCleanup(c.stop)  # before close: exit 0 (under the sanitizers, clean)
        cls.c = c
        cls.order = expected_order(cls.pings, c.org_salt)

    def test_a_risen_org_is_not_shown_twice(self):
        first = self.get("/v1/accounts/hot?limit=100")
        risen = self.order[-1]        # the lowest
        p = next(p for p in self.pings if org_key_hex(self.c.org_salt, p["org_domain"]) == risen)
        with self.client(self.c) as cl:
            ack = cl.request([make_ping(p["install_id"], 2, org_key=bytes.fromhex(risen),
                                        edition=p["edition"], active_users_monthly=600)],
                             batch_id=1)
            self.assertEqual(ack.accepted, 1, ack)
        # the walk goes on from the first page's cursor
        rows, after = list(first["accounts"]), first["next"]
        while after is not None:
            page = self.get("/v1/accounts/hot?limit=100&after=" + after)
            rows += page["accounts"]
            after = page["next"]
        got = [a["org"] for a in rows]
        self.assertEqual(len(got), len(set(got)), "no organization twice")
        self.assertNotIn(risen, got, "it moved above the cursor: on no later page")
        self.assertEqual(got, [o for o in self.order if o != risen])
        top = self.get("/v1/accounts/hot?limit=1")["accounts"][0]
        self.assertEqual((top["org"], top["rank"]), (risen, 1), "a fresh first page shows it")
        self.assertEqual([r["rule"] for r in top["reasons"]][:4],
                         ["active_users_500", "active_users_300", "active_users_200",
                          "active_users_100"])


class NoTokenGuard(PageSupportCase):
    """No tokens: the listener answers requests that name it; state-changing
    ones carry the body type their route reads."""

    @classmethod
    def setUpClass(cls):
        c = Collector(name="page-guard")
        cls.addClassCleanup(c.close)
        c.start()
        cls.addClassCleanup(c.stop)  # before close: exit 0 (under the sanitizers, clean)
        cls.c = c
        cls.port = c.api_port
        cls.own = ["127.0.0.1:%d" % c.api_port, "localhost:%d" % c.api_port,
                   "LOCALHOST:%d" % c.api_port, "[::1]:%d" % c.api_port]

    CSV = b"domain,name,owner\nacme.example,Acme,ann\n"

    def put_named(self, headers):
        return self.call("PUT", "/v1/named-accounts", body=self.CSV, headers=headers)

    def named(self):
        return self.get("/v1/named-accounts")["named_accounts"]

    def test_foreign_origin_host_or_body_type_refused(self):
        csv = {"Content-Type": "text/csv"}
        refused = [
            ({**csv, "Origin": "http://evil.example"}, 403, "forbidden_origin"),
            ({**csv, "Origin": "null"}, 403, "forbidden_origin"),
            ({**csv, "Origin": "https://127.0.0.1:%d" % self.port}, 403, "forbidden_origin"),
            ({**csv, "Origin": "http://127.0.0.1:%d.evil.example" % self.port}, 403,
             "forbidden_origin"),
            ({**csv, "Origin": "http://127.0.0.1:%d" % (self.port ^ 1)}, 403,
             "forbidden_origin"),
            ({**csv, "Origin": "http://127.0.0.1"}, 403, "forbidden_origin"),
            ({**csv, "Host": "evil.example"}, 403, "forbidden_host"),
            ({**csv, "Host": "evil.example:%d" % self.port}, 403, "forbidden_host"),
            ({**csv, "Host": "127.0.0.1:%d" % (self.port ^ 1)}, 403, "forbidden_host"),
            ({**csv, "Host": "127.0.0.1"}, 403, "forbidden_host"),
            ({**csv, "Host": "127.0.0.1:%d " % self.port + "x" * 300}, 403, "forbidden_host"),
            ({"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
            ({"Content-Type": "application/x-www-form-urlencoded"}, 415,
             "unsupported_media_type"),
            ({"Content-Type": "multipart/form-data; boundary=x"}, 415, "unsupported_media_type"),
            ({"Content-Type": "application/json"}, 415, "unsupported_media_type"),
            ({"Content-Type": "text/csvx"}, 415, "unsupported_media_type"),
            ({}, 415, "unsupported_media_type"),
        ]
        for headers, status, code in refused:
            with self.subTest(headers=headers):
                st, doc = self.put_named(headers)
                self.assertEqual((st, doc["error"]["code"]), (status, code), doc)
                self.assertLess(len(doc["error"]["message"]), 300)
        self.assertEqual(self.named(), [], "nothing refused was applied")
        # the same from the listener's own origin, and the CLI's way
        for own in self.own:
            with self.subTest(origin=own):
                st, doc = self.put_named({"Content-Type": "text/csv; charset=utf-8",
                                          "Origin": "http://" + own, "Host": own})
                self.assertEqual(st, 200, doc)
        self.assertEqual([n["domain"] for n in self.named()], ["acme.example"])
        st, doc = self.put_named({"Content-Type": "TEXT/CSV"})
        self.assertEqual(st, 200, doc)

    def test_delete_and_forget_and_networks(self):
        self.assertRefused(self.call("DELETE", "/v1/named-accounts/acme.example",
                                     headers={"Origin": "http://evil.example"}), 403,
                           "forbidden_origin", "http://evil.example")
        self.assertRefused(self.call("POST", "/v1/forget", body=b'{"install":"x"}',
                                     headers={"Content-Type": "text/plain"}), 415,
                           "unsupported_media_type", "application/json")
        self.assertRefused(self.call("POST", "/v1/forget", body=b'{"install":"x"}',
                                     headers={"Content-Type": "application/json",
                                              "Origin": "http://evil.example"}), 403,
                           "forbidden_origin")
        self.assertRefused(self.call("PUT", "/v1/networks", body=b"10.0.0.0/8,a.example\n",
                                     headers={"Content-Type": "text/plain"}), 415,
                           "unsupported_media_type", "text/csv")
        self.assertRefused(self.call("PUT", "/v1/networks", body=b"10.0.0.0/8,a.example\n",
                                     headers={"Content-Type": "text/csv",
                                              "Host": "evil.example"}), 403, "forbidden_host")
        st, doc = self.call("GET", "/v1/networks")
        self.assertEqual((st, doc["networks"]), (200, []), doc)

    def test_reads_refuse_a_rebound_host(self):
        for path in ("/v1/accounts/hot", "/v1/signals", "/v1/rules", "/v1/named-accounts",
                     "/metrics", "/v1/accounts/domain:acme.example"):
            with self.subTest(path=path):
                self.assertRefused(self.call("GET", path, headers={"Host": "evil.example"}),
                                   403, "forbidden_host", "evil.example")
                self.assertRefused(self.call("GET", path, headers={
                    "Host": "attacker.example:%d" % self.port}), 403, "forbidden_host")
                self.assertRefused(self.call("GET", path, headers={
                    "Origin": "http://evil.example"}), 403, "forbidden_origin")
        for own in self.own:
            with self.subTest(host=own):
                st, doc = self.call("GET", "/v1/accounts/hot", headers={"Host": own})
                self.assertEqual(st, 200, doc)
                st, doc = self.call("GET", "/v1/rules", headers={
                    "Host": own, "Origin": "http://" + own})
                self.assertEqual(st, 200, doc)
        # health answers whoever asks: it says nothing
        st, doc = self.call("GET", "/healthz", headers={"Host": "evil.example"})
        self.assertEqual((st, doc), (200, {"status": "ok"}))

    def test_cli_still_works(self):
        path = os.path.join(self.c.root, "named.csv")
        with open(path, "w") as f:
            f.write("domain,name,owner\ncli.example,Cli Corp,cat\n")
        url = "http://127.0.0.1:%d" % self.port
        for args in (["named-accounts", "import", path], ["named-accounts", "delete",
                                                          "cli.example"]):
            r = subprocess.run([CLI_BIN] + args + ["--url", url], capture_output=True,
                               text=True, timeout=60, stdin=subprocess.DEVNULL)
            self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([CLI_BIN, "hot", "--json", "--url", "http://localhost:%d" % self.port],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()
