"""The HTTP API end to end: the 60-day history of test_signals.py, shifted to
end yesterday, imported with the bundled rules; then a collector on that data
answers over real HTTP. Checked: the hot ranking and its scores against scores
computed here from the signals, reasons that add up to each score, the
filters; one account by org key, domain, install id; the signal log paged to
its end; named accounts (CSV upload, list, delete, a bad line, a body too
large); bearer tokens; parameter errors; and queries racing live ingest."""

import json
import os
import random
import re
import secrets
import socket
import subprocess
import threading
import time
import unittest
import urllib.parse

import test_signals as hist
from harness import (IO_TIMEOUT, LOCALHOST, READY_TIMEOUT, Collector, CollectorCase, api_call,
                     as_int, dump_any, make_ping, org_key_hex, parse_kv, run_import,
                     set_options)

DAY = hist.DAY
HL = hist.HALF_LIFE
WEIGHTS = hist.WEIGHTS


def shifted_history():
    """(pings, shift in ms): the history moved by whole days so that its last
    day is yesterday (UTC)."""
    today = int(time.time() * 1000) // DAY
    shift = (today - 1 - (hist.BASE_DAY + hist.N_DAYS - 1)) * DAY
    pings = hist.history_pings()
    for p in pings:
        p["sent_at"] += shift
    return pings, shift


def import_history(c):
    """Imports the shifted history into c's data dir; returns the shift."""
    pings, shift = shifted_history()
    path = os.path.join(c.root, "history.ndjson")
    with open(path, "w") as f:
        for p in pings:
            f.write(json.dumps(p) + "\n")
    r = run_import(path, c.data_dir, org_salt_file=c.salt_path)
    if r.returncode != 0 or "%d accepted" % len(pings) not in r.stderr:
        raise AssertionError("import failed: exit %d\n%s" % (r.returncode, r.stderr))
    return shift


def expected_scores(signals, now):
    """{org: sum of weight * 2^((fired_at - now) / half_life)}."""
    out = {}
    for s in signals:
        out[s["org"]] = out.get(s["org"], 0.0) + s["weight"] * 2.0 ** (
            (as_int(s["fired_at"]) - now) / HL)
    return out


def iso_day(ms):
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))


class ApiCase(CollectorCase):
    """One collector per class, started once; its log is printed when a test
    fails."""

    c = None

    def setUp(self):
        super().setUp()
        self.addCleanup(self._print_log_on_failure)

    def _print_log_on_failure(self):
        if self.c is not None and self._failed():
            import sys
            sys.stderr.write("\n" + self.c.log_tail(40) + "\n")

    def call(self, method, path, token=None, body=None, headers=None):
        return api_call(self.c.api_port, method, path, body=body, token=token, headers=headers)

    def assertError(self, r, status, code, *in_message):
        self.assertEqual(r.status, status, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"), r)
        err = r.json().get("error")
        self.assertIsInstance(err, dict, r)
        self.assertEqual(err.get("code"), code, r)
        for text in in_message:
            self.assertIn(text, err.get("message", ""), r)
        return err


class ApiQueries(ApiCase):
    """Tokens set, a 4 KiB body limit; the imported history, nothing live."""

    @classmethod
    def setUpClass(cls):
        c = Collector(name="api")
        cls.addClassCleanup(c.close)
        cls.shift = import_history(c)
        cls.read_token = "read-" + secrets.token_hex(16)
        cls.admin_token = "admin-" + secrets.token_hex(16)
        paths = {}
        for name, tok in (("read", cls.read_token), ("admin", cls.admin_token)):
            paths[name] = os.path.join(c.root, name + ".token")
            with open(paths[name], "w") as f:
                f.write(tok + "\n")
        set_options(c, {"read_token_file": paths["read"], "admin_token_file": paths["admin"],
                        "api_max_body_bytes": "4KiB"})
        c.start()
        if c.api_port is None:
            raise AssertionError("the ready line names no api address:\n" + c.log_tail())
        cls.c = c
        cls.orgs = hist.org_ids(c.org_salt)
        cls.names = {v: k for k, v in cls.orgs.items()}

    def get(self, path, token=None, status=200):
        r = self.call("GET", path, token=token or self.read_token)
        self.assertEqual(r.status, status, r)
        return r.json()

    def at(self, day, minute):
        """Event time of the shifted history."""
        return hist.at(day, minute) + self.shift

    def all_signals(self, limit=3):
        out, after = [], 0
        while True:
            page = self.get("/v1/signals?after=%d&limit=%d" % (after, limit))
            if not page["signals"]:
                self.assertEqual(page["next_after"], after)
                return out
            self.assertLessEqual(len(page["signals"]), limit)
            out += page["signals"]
            self.assertEqual(page["next_after"], page["signals"][-1]["id"])
            after = page["next_after"]

    def hot(self, query=""):
        return self.get("/v1/accounts/hot" + query)

    # -- hot ---------------------------------------------------------------

    def test_hot_ranking_scores_and_reasons(self):
        signals = self.all_signals()
        by_org = {}
        for s in signals:
            by_org.setdefault(s["org"], []).append(s)
        t0 = int(time.time() * 1000)
        h = self.hot()
        now = h["generated_at"]
        self.assertLessEqual(abs(now - t0), 5000)
        self.assertEqual((h["half_life_ms"], h["truncated"]), (HL, False))
        want = expected_scores(signals, now)
        got = [a["org"] for a in h["accounts"]]
        self.assertEqual(got, sorted(want, key=lambda o: -want[o]))
        # Decay scales every score alike: the order is the hand-worked one.
        self.assertEqual([self.names[o] for o in got], ["D", "C", "A", "B", "E"])
        self.assertEqual([a["rank"] for a in h["accounts"]], [1, 2, 3, 4, 5])
        for a in h["accounts"]:
            with self.subTest(org=self.names[a["org"]]):
                self.assertAlmostEqual(a["score"], want[a["org"]], delta=1e-9 * want[a["org"]])
                reasons = a["reasons"]
                # Every point explained: the reasons add up to the score.
                self.assertAlmostEqual(sum(r["points"] for r in reasons), a["score"],
                                       delta=1e-9 * a["score"])
                mine = by_org[a["org"]]
                self.assertEqual([r["signal_id"] for r in reasons],
                                 [s["id"] for s in reversed(mine)], "newest first")
                for r, s in zip(reasons, reversed(mine)):
                    self.assertEqual({k: r[k] for k in ("rule", "description", "weight",
                                                        "fired_at", "fired_at_iso", "terms")},
                                     {k: s[k] for k in ("rule", "description", "weight",
                                                        "fired_at", "fired_at_iso", "terms")})
                    self.assertAlmostEqual(
                        r["points"], s["weight"] * 2.0 ** ((s["fired_at"] - now) / HL),
                        delta=1e-12)
                if a["named"] is not None:
                    self.assertEqual(set(a["named"]), {"domain", "name", "owner"})
                for k in ("first_seen", "last_seen", "editions", "features", "totals"):
                    self.assertIn(k, a)
        acc = {self.names[a["org"]]: a for a in h["accounts"]}
        self.assertEqual({k: (a["installs"], a["installs_counting"]) for k, a in acc.items()},
                         {"A": (1, 1), "B": (2, 1), "C": (1, 1), "D": (2, 2), "E": (1, 1)})
        self.assertEqual(sorted(acc["D"]["editions"]), ["enterprise", "team"])
        self.assertEqual(acc["D"]["features"], ["saml_configured"])
        self.assertEqual(acc["B"]["totals"]["teams"], 4)
        self.assertEqual(acc["A"]["last_seen"], self.at(59, 0))
        self.assertEqual(acc["A"]["first_seen"], self.at(0, 0))

    def test_hot_filters(self):
        full = self.hot()["accounts"]
        order = [a["org"] for a in full]
        names = lambda h: [self.names[a["org"]] for a in h["accounts"]]

        two = self.hot("?limit=2")
        self.assertEqual([a["org"] for a in two["accounts"]], order[:2])
        self.assertEqual([a["rank"] for a in two["accounts"]], [1, 2])
        self.assertEqual(len(self.hot("?limit=1000")["accounts"]), 5)

        cut = (full[2]["score"] + full[3]["score"]) / 2
        self.assertEqual([a["org"] for a in self.hot("?min_score=%r" % cut)["accounts"]],
                         order[:3])
        self.assertEqual(self.hot("?min_score=%r" % (full[0]["score"] * 2))["accounts"], [])
        self.assertEqual(len(self.hot("?min_score=0")["accounts"]), 5)

        self.assertEqual(names(self.hot("?rule=second_install")), ["D", "B"])
        self.assertEqual(names(self.hot("?rule=mau_over_25")), ["A", "E"])
        self.assertEqual(self.hot("?rule=no_such_rule")["accounts"], [])

        # since: a date is its 00:00 UTC; C fired on day 30 at 10:20, E on 33, D on 40.
        self.assertEqual(names(self.hot("?since=" + iso_day(self.at(30, 0)))), ["D", "C", "E"])
        after_c = time.strftime("%Y-%m-%dT10:25:00Z", time.gmtime(self.at(30, 0) / 1000))
        self.assertEqual(names(self.hot("?since=" + after_c)), ["D", "E"])
        self.assertEqual(names(self.hot("?since=%d" % self.at(33, 40))), ["D", "E"],
                         "at or after: E's signal fired at exactly since")
        self.assertEqual(names(self.hot("?since=%d" % (self.at(33, 40) + 1))), ["D"])
        # rule and since together: one signal of that rule at or after since.
        self.assertEqual(names(self.hot("?rule=mau_over_25&since=" + iso_day(self.at(15, 0)))),
                         ["A"])
        self.assertEqual(names(self.hot("?rule=second_install&since=%d&limit=1"
                                        % self.at(0, 0))), ["D"])

    # -- one account -------------------------------------------------------

    def test_account_by_key_domain_and_install(self):
        a_hex = self.orgs["A"]
        acc = self.get("/v1/accounts/" + a_hex)
        acc_now = int(time.time() * 1000)
        self.assertEqual(acc["org"], a_hex)
        signals = [s for s in self.all_signals(limit=1000) if s["org"] == a_hex]
        self.assertEqual(acc["signals"], signals, "the org's signals, oldest first")
        self.assertEqual([s["rule"] for s in acc["signals"]], ["mau_over_25", "mau_over_25"])
        self.assertAlmostEqual(acc["score"], expected_scores(signals, acc_now)[a_hex],
                               delta=1e-3 * acc["score"])
        self.assertEqual(acc["installs_counting"], 1)
        self.assertEqual(acc["installs_total"], len(acc["installs"]))
        self.assertEqual((acc["first_seen"], acc["last_seen"]), (self.at(0, 0), self.at(59, 0)))
        self.assertEqual(acc["versions"], ["9.11.2"])
        self.assertEqual(acc["totals"]["active_users_monthly"], 26)
        self.assertEqual(len(acc["installs"]), 1)
        inst = acc["installs"][0]
        self.assertEqual((inst["install_id"], inst["counting"], inst["last_seq"],
                          inst["first_seen"], inst["last_seen"]),
                         ("a1", True, 60, self.at(0, 0), self.at(59, 0)))
        self.assertEqual((inst["last_ping"]["install_id"], inst["last_ping"]["seq"],
                          inst["last_ping"]["active_users_monthly"]), ("a1", 60, 26))
        # daily: the last 90 days by default, oldest first; the history's 60.
        self.assertEqual(len(acc["daily"]), 60)
        self.assertEqual([d["date"] for d in acc["daily"]][:1], [iso_day(self.at(0, 0))])
        self.assertEqual(acc["daily"][-1]["date"], iso_day(self.at(59, 0)))
        self.assertEqual([d["day"] for d in acc["daily"]],
                         list(range(acc["daily"][0]["day"], acc["daily"][0]["day"] + 60)))
        self.assertEqual(acc["daily"][10]["totals"]["active_users_monthly"], 26)
        self.assertEqual((acc["daily"][0]["installs"], acc["daily"][0]["installs_total"]), (1, 1))
        # days=7: today (no row yet) and the 6 days before it.
        week = self.get("/v1/accounts/%s?days=7" % a_hex)["daily"]
        self.assertEqual([d["date"] for d in week], [d["date"] for d in acc["daily"][-6:]])
        self.assertEqual(len(self.get("/v1/accounts/%s?days=1" % a_hex)["daily"]), 0)
        self.assertEqual(len(self.get("/v1/accounts/%s?days=3650" % a_hex)["daily"]), 60)

        with self.subTest("domain:, case-insensitive, percent-encoded"):
            for ref in ("domain:alpha.example", "domain:ALPHA.Example",
                        urllib.parse.quote("domain:alpha.example", safe="")):
                d = self.get("/v1/accounts/" + ref)
                self.assertEqual((d["org"], d["signals"]), (a_hex, signals), ref)
            self.assertError(self.call("GET", "/v1/accounts/domain:nobody.example",
                                       token=self.read_token), 404, "not_found")
            self.assertError(self.call("GET", "/v1/accounts/domain:bob@alpha.example",
                                       token=self.read_token), 400, "bad_org", "domain")

        with self.subTest("install ids"):
            b = self.get("/v1/accounts/b2")  # an install with an org key: its org
            self.assertEqual(b["org"], self.orgs["B"])
            self.assertEqual({i["install_id"]: i["counting"] for i in b["installs"]},
                             {"b1": True, "b2": False})  # b2 silent since day 35
            self.assertEqual(b["installs_counting"], 1)
            self.assertEqual(self.get("/v1/accounts/b1")["org"], self.orgs["B"])
            e = self.get("/v1/accounts/e1")  # no org key: the install is the org
            self.assertEqual(e["org"], "install:e1")
            self.assertEqual([s["rule"] for s in e["signals"]], ["mau_over_25", "channels_50"])
            same = self.get("/v1/accounts/install:e1")
            self.assertEqual({k: v for k, v in same.items() if k != "score"},
                             {k: v for k, v in e.items() if k != "score"})
            d = self.get("/v1/accounts/" + self.orgs["D"].upper())
            self.assertEqual(d["org"], self.orgs["D"])
            self.assertEqual([s["rule"] for s in d["signals"]],
                             ["second_install", "sso_interest", "enterprise_edition_unlicensed"])

        with self.subTest("unknown"):
            for ref in ("nope", "install:nope", "0" * 64, "x" * 200):
                self.assertError(self.call("GET", "/v1/accounts/" + ref, token=self.read_token),
                                 404, "not_found")

    # -- the signal log ----------------------------------------------------

    def test_signals_paging(self):
        want = dump_any("signals", self.c.data_dir)
        self.assertEqual(len(want), len(hist.EXPECTED))
        for limit in (1, 3, 100):
            with self.subTest(limit=limit):
                self.assertEqual(self.all_signals(limit=limit), want,
                                 "the API's signals are the dump's, in id order")
        page = self.get("/v1/signals")
        self.assertEqual((len(page["signals"]), page["next_after"]), (10, 10))
        page = self.get("/v1/signals?after=8")
        self.assertEqual([s["id"] for s in page["signals"]], [9, 10])
        self.assertEqual(self.get("/v1/signals?after=999"), {"signals": [], "next_after": 999})
        got = [(s["org"], s["rule"], s["fired_at"]) for s in want]
        self.assertEqual(got, [(self.orgs[o], rule, t + self.shift)
                               for o, rule, t, _ in hist.EXPECTED])

    # -- named accounts ----------------------------------------------------

    def put_csv(self, text, token=None):
        return self.call("PUT", "/v1/named-accounts", token=token or self.admin_token,
                         body=text.encode("utf-8"), headers={"Content-Type": "text/csv"})

    def named(self):
        return self.get("/v1/named-accounts")["named_accounts"]

    def test_named_accounts(self):
        csv = ('Domain,NAME,owner\r\n'
               'alpha.example,"Alpha, Inc.","Ann ""The Closer"" Lee"\r\n'
               '  Bravo.Example ,Bravo Corp,bob@sales.example\r\n'
               'unseen.example,"Two\r\nLines",carol\r\n')
        t0 = int(time.time() * 1000)
        r = self.put_csv(csv)
        self.assertEqual((r.status, r.json()), (200, {"imported": 3, "removed": 0}), r)
        table = self.named()
        self.assertEqual([(n["domain"], n["name"], n["owner"], n["org"]) for n in table], [
            ("alpha.example", "Alpha, Inc.", 'Ann "The Closer" Lee', self.orgs["A"]),
            ("bravo.example", "Bravo Corp", "bob@sales.example", self.orgs["B"]),
            ("unseen.example", "Two\r\nLines", "carol",
             org_key_hex(self.c.org_salt, "unseen.example")),
        ])
        for n in table:
            self.assertTrue(t0 - 1000 <= n["updated_at"] <= t0 + 60000, n)

        # The labels show up where the organizations do.
        label_a = {"domain": "alpha.example", "name": "Alpha, Inc.",
                   "owner": 'Ann "The Closer" Lee'}
        hot = {self.names[a["org"]]: a["named"] for a in self.hot()["accounts"]}
        self.assertEqual(hot, {"A": label_a, "B": {"domain": "bravo.example",
                                                   "name": "Bravo Corp",
                                                   "owner": "bob@sales.example"},
                               "C": None, "D": None, "E": None})
        self.assertEqual(self.get("/v1/accounts/a1")["named"], label_a)
        self.assertEqual(self.get("/v1/accounts/domain:alpha.example")["named"], label_a)

        with self.subTest("a bad line: 400 naming it, nothing changes"):
            for text, where in (
                    ("domain,name,owner\nok.example,a,b\nbob@x.example,c,d\n",
                     ("line 3", "domain")),
                    ("domain,name,owner\nok.example,a,b\nbad.example,c\n", ("line 3", "3 fields")),
                    ("domain,name,owner\nok.example,a,b\nx.example,\"open\n", ("line 3", "quoted")),
                    ("domain,name,owner\nok.example,a\"b,c\n", ("line 2", "quote")),
                    ("domain,name,owner\nok.example,a,b\nOK.example,c,d\n",
                     ("line 3", "line 2")),
                    ("domain,owner,name\nok.example,a,b\n", ("line 1", "header")),
                    ("", ("line 1", "header")),
                    ("domain,name,owner\n\"\",a,b\n", ("line 2", "domain"))):
                r = self.put_csv(text)
                self.assertError(r, 400, "bad_csv", *where)
            self.assertEqual(self.named(), table)

        with self.subTest("a body over api_max_body_bytes: 413, nothing changes"):
            big = "domain,name,owner\n" + "".join("d%d.example,n,o\n" % i for i in range(400))
            self.assertGreater(len(big), 4096)
            self.assertError(self.put_csv(big), 413, "body_too_large")
            chunks = [big[i:i + 1000].encode() for i in range(0, len(big), 1000)]
            r = self.call("PUT", "/v1/named-accounts", token=self.admin_token,
                          body=iter(chunks), headers={"Content-Type": "text/csv"})
            self.assertError(r, 413, "body_too_large")  # chunked: no Content-Length
            self.assertEqual(self.named(), table)

        with self.subTest("delete"):
            r = self.call("DELETE", "/v1/named-accounts/Unseen.Example", token=self.admin_token)
            self.assertEqual((r.status, r.body), (204, b""), r)
            self.assertEqual([n["domain"] for n in self.named()],
                             ["alpha.example", "bravo.example"])
            self.assertError(self.call("DELETE", "/v1/named-accounts/unseen.example",
                                       token=self.admin_token), 404, "not_found")

        with self.subTest("a second upload replaces the table"):
            r = self.put_csv("domain,name,owner\nalpha.example,Alpha,ann\ncharlie.example,C,c\n")
            self.assertEqual(r.json(), {"imported": 2, "removed": 1}, r)
            self.assertEqual([(n["domain"], n["name"]) for n in self.named()],
                             [("alpha.example", "Alpha"), ("charlie.example", "C")])
            self.assertIsNone(self.get("/v1/accounts/b1")["named"])
            r = self.put_csv("domain,name,owner\r\n")
            self.assertEqual(r.json(), {"imported": 0, "removed": 2}, r)
            self.assertEqual(self.named(), [])

    # -- auth, errors ------------------------------------------------------

    def test_auth(self):
        for path in ("/v1/accounts/hot", "/v1/signals", "/v1/named-accounts", "/metrics",
                     "/v1/accounts/a1"):
            with self.subTest(path=path):
                self.assertError(self.call("GET", path), 401, "unauthorized")
                self.assertError(self.call("GET", path, token="wrong-" + self.read_token), 401,
                                 "unauthorized")
                self.assertEqual(self.call("GET", path, token=self.read_token).status, 200)
                self.assertEqual(self.call("GET", path, token=self.admin_token).status, 200)
        r = self.call("GET", "/v1/signals", headers={"Authorization": self.read_token})
        self.assertError(r, 401, "unauthorized")  # not "Bearer <token>"
        self.assertError(self.put_csv("domain,name,owner\n", token=self.read_token), 401,
                         "unauthorized")
        self.assertError(self.call("DELETE", "/v1/named-accounts/alpha.example",
                                   token=self.read_token), 401, "unauthorized")
        self.assertError(self.call("PUT", "/v1/named-accounts", body=b"domain,name,owner\n"),
                         401, "unauthorized")
        m = self.call("GET", "/metrics", token=self.read_token)
        self.assertTrue(m.headers["content-type"].startswith("text/plain; version=0.0.4"), m)
        self.assertIn(b"# TYPE ", m.body)
        for path in ("/healthz", "/readyz"):  # no token needed
            r = self.call("GET", path)
            self.assertEqual(r.status, 200, r)
        self.assertEqual(self.call("GET", "/healthz").json(), {"status": "ok"})

    def test_bad_parameters(self):
        cases = [
            ("/v1/accounts/hot?limit=0", "limit", "'0'"),
            ("/v1/accounts/hot?limit=abc", "limit", "'abc'"),
            ("/v1/accounts/hot?limit=1001", "limit", "1000"),
            ("/v1/accounts/hot?limit=", "limit", "''"),
            ("/v1/accounts/hot?limit=-1", "limit", "'-1'"),
            ("/v1/accounts/hot?min_score=x", "min_score", "'x'"),
            ("/v1/accounts/hot?min_score=-1", "min_score", "'-1'"),
            ("/v1/accounts/hot?min_score=nan", "min_score", "'nan'"),
            ("/v1/accounts/hot?since=garbage", "since", "'garbage'"),
            ("/v1/accounts/hot?since=2026-02-30", "since", "'2026-02-30'"),
            ("/v1/accounts/hot?since=2026-11-01T12:00:00", "since", "T12"),
            ("/v1/accounts/hot?rule=a%20b", "rule", "'a b'"),
            ("/v1/accounts/hot?foo=1", "'foo'", "limit"),
            ("/v1/accounts/hot?limit=1&limit=2", "limit", "more than once"),
            ("/v1/accounts/a1?days=0", "days", "3650"),
            ("/v1/accounts/a1?days=3651", "days", "'3651'"),
            ("/v1/accounts/a1?limit=5", "'limit'", "days"),
            ("/v1/signals?limit=0", "limit", "'0'"),
            ("/v1/signals?after=x", "after", "'x'"),
            ("/v1/signals?before=1", "'before'", "after"),
            ("/v1/named-accounts?x=1", "'x'", "none"),
        ]
        for path, *parts in cases:
            with self.subTest(path=path):
                err = self.assertError(self.call("GET", path, token=self.read_token), 400,
                                       "bad_parameter", *parts)
                if not parts[0].startswith("'"):
                    self.assertTrue(err["message"].startswith(parts[0] + ":"), err)
        for since in ("2026-11-01", "2026-11-01T12:00:00Z", "2026-11-01T12:00Z",
                      "2026-11-01T12:00:00.250Z", "2026-11-01T13:00:00+01:00", "1793534400000"):
            with self.subTest(since=since):
                self.hot("?since=" + urllib.parse.quote(since))

    def test_unknown_paths_and_methods(self):
        for path in ("/v1", "/v1/accounts", "/v1/accounts/", "/v1/signals/1", "/v2/x",
                     "/metrics/x"):
            with self.subTest(path=path):
                self.assertError(self.call("GET", path, token=self.read_token), 404,
                                 "not_found")
        for method, path, allow in (("POST", "/v1/signals", "GET"),
                                    ("DELETE", "/v1/accounts/hot", "GET"),
                                    ("POST", "/v1/named-accounts", "GET, PUT"),
                                    ("GET", "/v1/named-accounts/alpha.example", "DELETE"),
                                    ("POST", "/healthz", "GET")):
            with self.subTest(method=method, path=path):
                r = self.call(method, path, token=self.read_token,
                              body=b"" if method == "POST" else None)
                self.assertError(r, 405, "method_not_allowed")
                self.assertEqual(r.headers.get("allow"), allow)


class ApiUnderLoad(ApiCase):
    """No tokens (loopback): queries from 8 threads while live pings fire
    signals over TCP."""

    THREADS = 8
    REQUESTS = 50
    NEW_ORGS = 200

    @classmethod
    def setUpClass(cls):
        c = Collector(name="api-load")
        cls.addClassCleanup(c.close)
        import_history(c)
        c.start()
        cls.c = c
        cls.orgs = hist.org_ids(c.org_salt)

    def check_hot(self, h):
        accounts = h["accounts"]
        self.assertEqual([a["rank"] for a in accounts], list(range(1, len(accounts) + 1)))
        scores = [a["score"] for a in accounts]
        self.assertEqual(scores, sorted(scores, reverse=True))
        for a in accounts:  # one snapshot: the index and the signals agree
            self.assertAlmostEqual(sum(r["points"] for r in a["reasons"]), a["score"],
                                   delta=1e-9 * a["score"])

    def test_queries_during_ingest(self):
        self.assertEqual(self.call("GET", "/v1/signals").status, 200, "open without tokens")
        targets = list(self.orgs.values()) + ["a1", "b2", "e1", "domain:charlie.example"]
        failures = []
        counts = set()              # accounts seen by hot?limit=1000
        first_full = threading.Event()
        done = threading.Event()

        def worker(i):
            rnd = random.Random(i)
            n = 0
            try:
                # At least REQUESTS each, and on until the ingest is over.
                while (n < self.REQUESTS or not done.is_set()) and n < 5000:
                    n += 1
                    if n % 2 == 0:
                        limit = 1000 if n % 4 == 0 else 5
                        r = self.call("GET", "/v1/accounts/hot?limit=%d" % limit)
                        if r.status != 200:
                            failures.append(r)
                            continue
                        h = r.json()
                        self.check_hot(h)
                        if limit == 1000:
                            counts.add(len(h["accounts"]))
                            first_full.set()
                    else:
                        ref = rnd.choice(targets)
                        r = self.call("GET", "/v1/accounts/" + urllib.parse.quote(ref))
                        if r.status != 200 or "org" not in r.json():
                            failures.append(r)
            except Exception as e:  # noqa: BLE001 - reported below
                failures.append(repr(e))

        def ingest():
            try:
                if not first_full.wait(10):
                    raise AssertionError("no hot answer before the ingest")
                with self.client(self.c) as cl:
                    for b in range(self.NEW_ORGS // 10):
                        pings = [make_ping("live-%d" % (b * 10 + i), 1,
                                           org_key=secrets.token_bytes(32),
                                           active_users_monthly=30) for i in range(10)]
                        ack = cl.request(pings, batch_id=b + 1)
                        if ack.accepted != 10:
                            failures.append("ack %r" % ack)
            except Exception as e:  # noqa: BLE001
                failures.append(repr(e))
            finally:
                done.set()

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(self.THREADS)]
        threads.append(threading.Thread(target=ingest))
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertFalse(any(t.is_alive() for t in threads), "threads stuck")
        self.assertEqual(failures[:5], [])
        elapsed = time.monotonic() - t0
        # The queries raced the ingest: they saw the history alone, and all of it.
        self.assertIn(5, counts)
        self.assertIn(self.NEW_ORGS + 5, counts)

        # Every live org crossed mau_over_25 once: the API sees all of them.
        page = self.call("GET", "/v1/signals?after=10&limit=1000").json()
        self.assertEqual(len(page["signals"]), self.NEW_ORGS)
        self.assertEqual({s["rule"] for s in page["signals"]}, {"mau_over_25"})
        h = self.call("GET", "/v1/accounts/hot?limit=1000").json()
        self.assertEqual(len(h["accounts"]), self.NEW_ORGS + 5)
        self.check_hot(h)
        self.assertEqual({a["org"] for a in h["accounts"][-5:]}, set(self.orgs.values()),
                         "fresh signals outrank the history")
        self.assertLess(elapsed, 30, "%d queries in %.1fs" % (self.THREADS * self.REQUESTS,
                                                              elapsed))


class ApiWithoutSalt(ApiCase):
    """No org salt file: domain lookups and named-account writes answer 503."""

    @classmethod
    def setUpClass(cls):
        c = Collector(name="api-nosalt")
        cls.addClassCleanup(c.close)
        set_options(c, {"org_salt_file": os.path.join(c.root, "missing_salt")})
        c.start()
        cls.c = c

    def test_no_salt(self):
        self.assertError(self.call("GET", "/v1/accounts/domain:alpha.example"), 503,
                         "no_org_salt", "missing_salt")
        self.assertError(self.call("PUT", "/v1/named-accounts", body=b"domain,name,owner\n",
                                   headers={"Content-Type": "text/csv"}),
                         503, "no_org_salt")
        self.assertError(self.call("DELETE", "/v1/named-accounts/alpha.example"), 503,
                         "no_org_salt")
        r = self.call("GET", "/v1/named-accounts")
        self.assertEqual((r.status, r.json()), (200, {"named_accounts": []}), r)
        r = self.call("GET", "/v1/accounts/hot")
        self.assertEqual((r.status, r.json()["accounts"]), (200, []), r)
        self.assertTrue(self.c.find_lines(r"event=api_no_org_salt"))


class TokenFiles(CollectorCase):
    """The collector reads its token files with the CLI's strict rules
    (collector/token.h): a token with a NUL (which once shortened it
    silently), a control character, a space, a second line or fewer than 16
    characters stops the start with the file and the reason, and a good token
    with one trailing CRLF is the token."""

    def start_with(self, content):
        c = Collector(name="api-token")
        self.addCleanup(c.close)
        path = os.path.join(c.root, "read.token")
        with open(path, "wb") as f:
            f.write(content)
        set_options(c, {"read_token_file": path})
        return c, path

    def test_bad_token_files_refused(self):
        good = b"read-" + secrets.token_hex(16).encode()
        for content, why in ((good[:8] + b"\0" + good[8:], "a NUL byte (0x00) at byte 9"),
                             (good + b"\0\n", "a NUL byte"),
                             (good[:8] + b"\x1b" + good[8:], "a control character (0x1b)"),
                             (good + b"\t\n", "a control character (0x09)"),
                             (b" " + good + b"\n", "a space"),
                             (good + b"\n\n", "a line break"),
                             (b"short-token\n", "at least 16 characters")):
            with self.subTest(content=content):
                c, path = self.start_with(content)
                r = subprocess.run(c.argv(), stdin=subprocess.DEVNULL, capture_output=True,
                                   timeout=READY_TIMEOUT, cwd=c.root)
                err = r.stderr.decode("utf-8", "replace")
                self.assertNotEqual(r.returncode, 0, err)
                self.assertNotIn("event=ready", err)
                line = [l for l in err.splitlines() if "event=start_failed" in l]
                self.assertEqual(len(line), 1, err)
                kv = parse_kv(line[0])
                self.assertEqual(kv.get("stage"), "api", line[0])
                self.assertIn("read_token_file %s: " % path, kv.get("error", ""), line[0])
                self.assertIn(why, kv.get("error", ""), line[0])
                self.assertNotIn(good[9:].decode(), err)  # the token is never printed

    def test_crlf_token_is_the_token(self):
        good = "read-" + secrets.token_hex(16)
        c, _ = self.start_with(good.encode() + b"\r\n")
        c.start()
        self.assertEqual(api_call(c.api_port, "GET", "/v1/signals", token=good).status, 200)
        self.assertEqual(api_call(c.api_port, "GET", "/v1/signals", token=good[:8]).status, 401)
        c.stop()


class HttpServerMessages(CollectorCase):
    """libmicrohttpd's own messages (here: one per request with an HTTP
    version it does not support) reach stderr only as key=value lines,
    event=http_server_message listener=api msg="...", at most
    WL_HTTP_LOG_BURST (10) at once and WL_HTTP_LOG_RATE (10) a second; the
    lines left out are counted and reported as suppressed=N on the next line
    that goes out (or at the stop), so lines + suppressed = messages."""

    BURST, RATE = 10, 10

    def bad_request(self, port):
        with socket.create_connection((LOCALHOST, port), timeout=IO_TIMEOUT) as s:
            s.sendall(b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n")
            reply = s.recv(64)
        # MHD logs before it answers: once the answer is here, the message
        # has been written or counted out.
        self.assertTrue(reply.startswith(b"HTTP/1.1 505"), reply)

    def test_flood_is_key_value_and_rate_limited(self):
        c = Collector(name="api-mhd-log")
        self.addCleanup(c.close)
        c.start()
        rx = r"\bevent=http_server_message\b"
        since = len(c.lines)
        flood = 300
        t0 = time.monotonic()
        for _ in range(flood):
            self.bad_request(c.api_port)
        sent = flood
        # One more at a time (a token refills in 1/RATE s) until the line
        # that reports what was left out.
        while not any("suppressed=" in l for l in c.find_lines(rx)):
            self.assertLess(sent, flood + 1000, c.log_tail())
            self.bad_request(c.api_port)
            sent += 1
        # Another flood, and a stop: what is still left out is reported then.
        for _ in range(flood):
            self.bad_request(c.api_port)
        sent += flood
        elapsed = time.monotonic() - t0
        c.stop()
        with c._cond:
            lines = c.lines[since:]
        msgs = [parse_kv(l) for l in lines if re.search(rx, l)]
        self.assertGreaterEqual(len(msgs), self.BURST)
        self.assertLessEqual(len(msgs), self.BURST + self.RATE * elapsed + 1,
                             "%d lines in %.2fs" % (len(msgs), elapsed))
        last = [parse_kv(l) for l in lines
                if re.search(r"\bevent=http_server_messages_suppressed\b", l)]
        self.assertEqual(len(last), 1, "\n".join(lines[-20:]))
        self.assertEqual(last[0]["listener"], "api")
        suppressed = sum(int(m.get("suppressed", 0)) for m in msgs + last)
        self.assertEqual(len(msgs) + suppressed, sent)
        for m in msgs:
            self.assertEqual((m["level"], m["listener"]), ("warn", "api"), m)
            self.assertIn("HTTP response code is 505", m["msg"])
        for l in lines:  # nothing from libmicrohttpd outside our lines
            self.assertRegex(l, r"^ts=\S+ level=[a-z]+ event=[a-z_]+( |$)")
            self.assertFalse(re.search(r"[\x00-\x1f\x7f]", l), repr(l))


if __name__ == "__main__":
    unittest.main()
