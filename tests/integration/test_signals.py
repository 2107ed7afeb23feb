"""Accounts, rules and signals end to end: a 60-day history imported with the
bundled rules fires exactly the signals worked out by hand below, a second
import changes nothing, an import refuses a data directory a collector holds,
live pings fire a custom rule once, a kill -9 mid-stream neither loses nor
repeats a signal, and the signal file sink appends each signal exactly once
across restarts."""

import hashlib
import json
import os
import random
import sys
import threading
import time
import unittest

from harness import (IO_TIMEOUT, CollectorCase, as_int, dump_any, envelope_bytes, frame,
                     make_ping, org_key_hex, run_import, use_only_rules, wait_until)

MINUTE = 60 * 1000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
BASE = 1735689600000            # 2025-01-01T00:00:00Z: day 0 of the history
BASE_DAY = BASE // DAY          # its UTC day number (days since 1970-01-01)
N_DAYS = 60
HALF_LIFE = 14 * DAY            # [accounts] score_half_life_ms of the bundled config
SCORE_EPOCH = 1577836800000     # WL_SCORE_EPOCH_MS (collector/rules.h)

# Weights of the bundled rules that the history fires (collector/warmline.ini).
WEIGHTS = {"mau_over_25": 3, "second_install": 4, "mau_growth_30d": 3, "sso_interest": 5,
           "enterprise_edition_unlicensed": 2, "teams_5": 1, "channels_50": 1}

D_KEY = hashlib.sha256(b"warmline test org delta").hexdigest()  # given as a hex org_key


def at(day, minute):
    """Event time of a history ping: day N of the history, 10:00 + minute UTC."""
    return BASE + day * DAY + 10 * HOUR + minute * MINUTE


# --------------------------------------------------------------------------
# The history. Every install pings once a day at 10:00 + its minute, with
# seq = day + 1, from its first to its last day. Counts not given are 0;
# nothing comes near the thresholds of the rules not listed in EXPECTED
# (registered_users < 4500, posts < 2M, at most 30 monthly users per install).
#
# A  alpha.example (org_domain), a1:
#    monthly users 20 (days 0-9), 26 (10-13), 22 (14), 26 (15), 22 (16-19),
#    26 (20-24), 24 (25-29), 26 (30-59).
#    day 10: 20 -> 26 crosses > 25                         -> mau_over_25
#    day 14: 22 is not > 22.5 (25 less 10%): re-armed
#    day 15: crosses again 5 days after firing: inside the 7-day cooldown, no
#            signal, and the rule disarms
#    day 16: 22 again: re-armed
#    day 20: crosses 10 days after firing                 -> mau_over_25
#    day 25: 24 is still > 22.5: stays disarmed, so the crossing on day 30
#            (cooldown long over) fires nothing.
#    Growth stays under 50% (26 against at least 20: +30%).
# B  bravo.example (org_domain), b1 all days, b2 days 12-35:
#    day 12: b2's first ping makes 2 installs             -> second_install
#    day 18: b1's teams 3 -> 4, with b2's 1 = 5 teams     -> teams_5
#    b2 is silent after day 35 10:11; the first event later than 14 days after
#    that is c1's ping of day 49 10:20 (b1's of 10:10 is a minute early): b2
#    stops counting then. B's day 48 row has 2 counting installs, day 49's 1,
#    and both rules re-arm (1 < 1.8 installs, 4 < 4.5 teams) without firing.
#    B never has 10 monthly users, so its growth (4 -> 8) fires nothing.
# C  charlie.example (org_domain), c1: monthly users 12 (days 0-19), 20 (20-59).
#    growth_30d needs a day at or before 30 days ago: none until day 30, when
#    day 0 (12) gives +66.7%                              -> mau_growth_30d
#    (on day 30, not day 20 when the users grew); false from day 50 (against
#    day 20's 20), no more firing.
# D  org_key D_KEY (hex), d1 and d2 from day 0:
#    day 0: d2's first ping makes 2 installs              -> second_install
#    day 25: d2 reports saml_configured                  -> sso_interest
#    day 40: d1 runs edition "enterprise"                -> enterprise_edition_unlicensed
# E  no org_key: the organization is "install:e1":
#    day 0: 30 monthly users at its first evaluation      -> mau_over_25
#    day 33: public channels 30 -> 35, + 15 private = 50  -> channels_50

def _a1(d):
    mau = (20 if d < 10 else 26 if d < 14 else 22 if d == 14 else 26 if d == 15 else
           22 if d < 20 else 26 if d < 25 else 24 if d < 30 else 26)
    return dict(registered_users=60, active_users_daily=8, active_users_monthly=mau, teams=1,
                public_channels=10, private_channels=2, posts=5000)


def _b1(d):
    return dict(registered_users=10, active_users_daily=2, active_users_monthly=4,
                teams=3 if d < 18 else 4, public_channels=3, private_channels=1, posts=100)


def _b2(d):
    return dict(registered_users=10, active_users_daily=2, active_users_monthly=4, teams=1,
                public_channels=3, private_channels=1, posts=100)


def _c1(d):
    return dict(registered_users=40, active_users_daily=5,
                active_users_monthly=12 if d < 20 else 20, teams=2, public_channels=8,
                private_channels=2, posts=2000)


def _d1(d):
    return dict(registered_users=15, active_users_daily=3, active_users_monthly=5, teams=1,
                public_channels=4, private_channels=1, posts=300,
                edition="team" if d < 40 else "enterprise")


def _d2(d):
    return dict(registered_users=15, active_users_daily=3, active_users_monthly=5, teams=1,
                public_channels=4, private_channels=1, posts=300,
                features=["saml_configured"] if d >= 25 else [])


def _e1(d):
    return dict(registered_users=35, active_users_daily=9, active_users_monthly=30, teams=2,
                public_channels=30 if d < 33 else 35, private_channels=15, posts=800)


# install_id, organization ("A".."E"), how the ping names it, minute, days, counts
INSTALLS = [
    ("a1", "A", ("org_domain", "alpha.example"), 0, range(0, 60), _a1),
    ("b1", "B", ("org_domain", "Bravo.Example"), 10, range(0, 60), _b1),
    ("b2", "B", ("org_domain", "bravo.example"), 11, range(12, 36), _b2),
    ("c1", "C", ("org_domain", "charlie.example"), 20, range(0, 60), _c1),
    ("d1", "D", ("org_key", D_KEY), 30, range(0, 60), _d1),
    ("d2", "D", ("org_key", D_KEY), 31, range(0, 60), _d2),
    ("e1", "E", None, 40, range(0, 60), _e1),
]

# (organization, rule, fired_at, the install whose ping fired it), in event order.
EXPECTED = [
    ("D", "second_install", at(0, 31), "d2"),
    ("E", "mau_over_25", at(0, 40), "e1"),
    ("A", "mau_over_25", at(10, 0), "a1"),
    ("B", "second_install", at(12, 11), "b2"),
    ("B", "teams_5", at(18, 10), "b1"),
    ("A", "mau_over_25", at(20, 0), "a1"),
    ("D", "sso_interest", at(25, 31), "d2"),
    ("C", "mau_growth_30d", at(30, 20), "c1"),
    ("E", "channels_50", at(33, 40), "e1"),
    ("D", "enterprise_edition_unlicensed", at(40, 30), "d1"),
]
LAST_EVENT = at(N_DAYS - 1, 40)  # e1's ping of day 59: the latest event time


def history_pings():
    """Every ping of the history as an NDJSON-ready dict, in event order."""
    out = []
    for install, _, org, minute, days, counts in INSTALLS:
        for d in days:
            p = dict(install_id=install, seq=d + 1, sent_at=at(d, minute), version="9.11.2",
                     edition="team", database_type="postgres", operating_system="linux",
                     installation_type="docker")
            p.update(counts(d))
            if org is not None:
                p[org[0]] = org[1]
            out.append(p)
    out.sort(key=lambda p: p["sent_at"])
    return out


def org_ids(salt):
    """{"A": org id as dumps print it, ...}"""
    return {"A": org_key_hex(salt, "alpha.example"), "B": org_key_hex(salt, "bravo.example"),
            "C": org_key_hex(salt, "charlie.example"), "D": D_KEY, "E": "install:e1"}


def decayed(signals, now):
    """{org: sum of weight * 2^((fired_at - now) / half_life)}."""
    out = {}
    for s in signals:
        out[s["org"]] = out.get(s["org"], 0.0) + s["weight"] * 2.0 ** (
            (as_int(s["fired_at"]) - now) / HALF_LIFE)
    return out


def score_from_log2(score_log2, now):
    """An organization's score at now from its stored score_log2."""
    return 2.0 ** (score_log2 - (now - SCORE_EPOCH) / HALF_LIFE)


def state_dumps(data_dir, tables=("signals", "orgs", "daily", "pings", "installs")):
    return {t: dump_any(t, data_dir) for t in tables}


class HistoryImport(CollectorCase):
    """warmline import of the history with the bundled rules."""

    def setUp(self):
        super().setUp()
        self.require_dump()
        # Never started: a temp dir, an org salt, a data dir.
        self.c = self.collector(start=False, name="history")
        self.history = os.path.join(self.c.root, "history.ndjson")
        self.pings = history_pings()
        with open(self.history, "w") as f:
            for p in self.pings:
                f.write(json.dumps(p) + "\n")
        self.orgs = org_ids(self.c.org_salt)
        r = self.do_import()
        self.assertEqual(r.returncode, 0, "import: exit %d\n%s" % (r.returncode, r.stderr))
        self.assertIn("%d accepted, 0 duplicates, 0 rejected" % len(self.pings), r.stderr)

    def do_import(self):
        return run_import(self.history, self.c.data_dir, org_salt_file=self.c.salt_path)

    def test_signals_orgs_daily_and_scores(self):
        signals = dump_any("signals", self.c.data_dir)
        got = [(s["org"], s["rule"], as_int(s["fired_at"])) for s in signals]
        want = [(self.orgs[o], rule, t) for o, rule, t, _ in EXPECTED]
        names = {v: k for k, v in self.orgs.items()}
        self.assertEqual(sorted(got, key=lambda x: (x[2], x[1])), want,
                         "signals (org, rule, day of the history):\n  got  %s\n  want %s" % (
                             [(names.get(o, o), r, (t - BASE) / DAY) for o, r, t in got],
                             [(o, r, (t - BASE) / DAY) for o, r, t, _ in EXPECTED]))
        self.assertEqual([as_int(s["id"]) for s in signals], list(range(1, len(EXPECTED) + 1)),
                         "signal ids are 1..N in key order")
        self.assertEqual(got, want, "ids follow event order")

        # Each signal names the ping that fired it, and explains itself.
        pings = {as_int(p["ingest_seq"]): p for p in dump_any("pings", self.c.data_dir)}
        self.assertEqual(len(pings), len(self.pings))
        for s, (org, rule, t, install) in zip(signals, EXPECTED):
            with self.subTest(signal=s["id"], rule=rule):
                self.assertEqual(s["weight"], WEIGHTS[rule])
                self.assertEqual(s["fired_at_iso"],
                                 time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t / 1000)))
                p = pings.get(as_int(s["ingest_seq"]))
                self.assertIsNotNone(p, "ingest_seq %s is not a stored ping" % s["ingest_seq"])
                self.assertEqual((p["install_id"], as_int(p["sent_at"]), p["org"]),
                                 (install, t, self.orgs[org]))
                self.assertIn(install, s["install_ids"])
        terms = {(s["rule"], s["org"]): s["terms"] for s in signals}
        growth = terms[("mau_growth_30d", self.orgs["C"])]
        self.assertEqual([(x["metric"], x["op"], x["threshold"]) for x in growth],
                         [("growth_30d(active_users_monthly)", ">=", 50),
                          ("active_users_monthly", ">=", 10),
                          ("has_feature", "==", 0)])  # not has_feature(licensed)
        self.assertAlmostEqual(growth[0]["value"], (20 - 12) / 12 * 100, places=6)
        self.assertEqual(growth[1]["value"], 20)
        self.assertEqual([(x["metric"], x["value"]) for x in terms[("teams_5", self.orgs["B"])]],
                         [("teams", 5)])
        self.assertEqual(
            [(x["metric"], x["value"]) for x in terms[("channels_50", self.orgs["E"])]],
            [("public_channels+private_channels", 50)])
        # (op of these terms left out: the code writes "==", records.proto and
        # signal_json.h say "edition" / "has_feature".)
        self.assertEqual(
            [(x["metric"], x["value"], x.get("text")) for x in
             terms[("enterprise_edition_unlicensed", self.orgs["D"])]],
            [("edition", 1, "enterprise")])
        self.assertEqual(
            [(x["metric"], x["value"], x.get("text")) for x in
             terms[("sso_interest", self.orgs["D"])]],
            [("has_feature", 1, "saml_configured"), ("has_feature", 0, "ldap_configured")])
        b_second = [s for s in signals if s["rule"] == "second_install"
                    and s["org"] == self.orgs["B"]][0]
        self.assertEqual(sorted(b_second["install_ids"]), ["b1", "b2"])

        # Organizations at the end: b2 no longer counts.
        orgs = {o["org"]: o for o in dump_any("orgs", self.c.data_dir)}
        self.assertEqual(set(orgs), set(self.orgs.values()))
        b = orgs[self.orgs["B"]]
        self.assertEqual(sorted(b["install_ids"]), ["b1", "b2"])
        self.assertEqual(b["installs_counting"], 1, b)
        self.assertEqual({k: as_int(b["totals"][k]) for k in
                          ("active_users_monthly", "teams", "public_channels", "registered_users")},
                         {"active_users_monthly": 4, "teams": 4, "public_channels": 3,
                          "registered_users": 10}, b)
        d = orgs[self.orgs["D"]]
        self.assertEqual(d["installs_counting"], 2)
        self.assertEqual(sorted(d["editions"]), ["enterprise", "team"])
        self.assertEqual(d["features"], ["saml_configured"])
        for letter, n in (("A", 2), ("B", 2), ("C", 1), ("D", 3), ("E", 2)):
            self.assertEqual(as_int(orgs[self.orgs[letter]]["signals"]), n, letter)
        self.assertEqual(orgs[self.orgs["A"]]["day"], BASE_DAY + N_DAYS - 1)

        # Daily rows: B has 2 counting installs through day 48 (b2 silent
        # since day 35), 1 from day 49.
        daily = {(r["org"], r["day"]): r for r in dump_any("daily", self.c.data_dir)}
        brow = lambda d: daily.get((self.orgs["B"], BASE_DAY + d))
        for day, counting, total, mau, teams in ((11, 1, 1, 4, 3), (12, 2, 2, 8, 4),
                                                 (18, 2, 2, 8, 5), (35, 2, 2, 8, 5),
                                                 (48, 2, 2, 8, 5), (49, 1, 2, 4, 4),
                                                 (59, 1, 2, 4, 4)):
            with self.subTest(daily="B", day=day):
                r = brow(day)
                self.assertIsNotNone(r, "no daily row for B on day %d" % day)
                self.assertEqual((r["installs"], r["installs_total"],
                                  as_int(r["totals"]["active_users_monthly"]),
                                  as_int(r["totals"]["teams"])),
                                 (counting, total, mau, teams), r)
        self.assertEqual(brow(48)["date"], "2025-02-18")
        self.assertEqual(brow(49)["date"], "2025-02-19")
        self.assertEqual(sum(1 for (o, _) in daily if o == self.orgs["B"]), N_DAYS)

        # Scores: stored score_log2 against the decayed weights at the last event.
        want_scores = decayed(signals, LAST_EVENT)
        got_scores = {o: score_from_log2(r["score_log2"], LAST_EVENT) for o, r in orgs.items()}
        for o, w in want_scores.items():
            self.assertLess(abs(got_scores[o] - w), 1e-6 * w,
                            "score of %s: stored %r, computed %r" % (names[o], got_scores[o], w))
        rank_want = sorted(want_scores, key=lambda o: -want_scores[o])
        rank_got = sorted(orgs, key=lambda o: -orgs[o]["score_log2"])
        self.assertEqual([names[o] for o in rank_got], [names[o] for o in rank_want])
        self.assertEqual([names[o] for o in rank_want], ["D", "C", "A", "B", "E"],
                         "the hand-computed order (check EXPECTED)")

    def test_second_import_is_all_duplicates(self):
        before = state_dumps(self.c.data_dir)
        r = self.do_import()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("0 accepted, %d duplicates, 0 rejected" % len(self.pings), r.stderr)
        after = state_dumps(self.c.data_dir)
        for table in before:
            self.assertEqual(after[table], before[table], "%s changed" % table)
        self.assertEqual(len(after["signals"]), len(EXPECTED))

    def test_import_day_by_day_matches_one_import(self):
        # 60 imports, one per day: every day starts from what the previous
        # import left on disk (installs, orgs, rule states, the daily history
        # that growth_30d reads back), and must end where one import ends.
        data2 = os.path.join(self.c.root, "data-daily")
        for d in range(N_DAYS):
            part = os.path.join(self.c.root, "day%02d.ndjson" % d)
            with open(part, "w") as f:
                for p in self.pings:
                    if BASE + d * DAY <= p["sent_at"] < BASE + (d + 1) * DAY:
                        f.write(json.dumps(p) + "\n")
            r = run_import(part, data2, org_salt_file=self.c.salt_path)
            self.assertEqual(r.returncode, 0, "day %d: %s" % (d, r.stderr))
        whole, daily = state_dumps(self.c.data_dir), state_dumps(data2)
        for table in ("pings",):  # received_at is the wall clock of each import
            for rows in (whole[table], daily[table]):
                for r in rows:
                    r.pop("received_at")
        for table in whole:
            self.assertEqual(daily[table], whole[table], "%s differs" % table)

    def test_import_refuses_while_a_collector_runs(self):
        tables = ("signals", "pings", "installs")
        before = state_dumps(self.c.data_dir, tables)
        self.c.start()
        self.assertEqual(self.c.writer_started()["signal_seq"], len(EXPECTED))
        r = self.do_import()
        self.assertEqual(r.returncode, 2, "import beside a collector: exit %d\n%s"
                         % (r.returncode, r.stderr))
        self.assertIn("in use", r.stderr)
        self.assertIn(self.c.data_dir, r.stderr)
        self.assertEqual(state_dumps(self.c.data_dir, tables), before, "while running")
        self.c.stop()
        self.assertEqual(state_dumps(self.c.data_dir, tables), before, "after stopping")


def org_key_bytes(name):
    return hashlib.sha256(name.encode()).digest()


BIG_RULE = """
[rule "big"]
when = active_users_monthly >= 100
weight = 2
description = 100 monthly active users (test rule)
"""


def signals_of(c):
    return dump_any("signals", c.data_dir)


class LiveSignals(CollectorCase):

    def test_live_pings_fire_once_visible_while_running(self):
        self.require_dump()
        c = self.collector(start=False)
        use_only_rules(c, BIG_RULE)
        c.start()
        self.assertEqual(c.writer_started()["rules"], 1)
        x, y = org_key_bytes("live-x"), org_key_bytes("live-y")
        with self.client(c) as cl:
            self.assertAck(cl.request([make_ping("live-x", 1, org_key=x, active_users_monthly=80),
                                       make_ping("live-y", 1, org_key=y, active_users_monthly=50)],
                                      batch_id=1), "OK", accepted=2)
            t0 = int(time.time() * 1000)
            self.assertAck(cl.request([make_ping("live-x", 2, org_key=x,
                                                 active_users_monthly=120)], batch_id=2),
                           "OK", accepted=1)
            t1 = int(time.time() * 1000)
            # Still over (and over again): edges only, no second signal.
            self.assertAck(cl.request([make_ping("live-x", 3, org_key=x, active_users_monthly=130),
                                       make_ping("live-y", 2, org_key=y, active_users_monthly=99),
                                       make_ping("live-x", 4, org_key=x,
                                                 active_users_monthly=200)],
                                      batch_id=3), "OK", accepted=3)

        # A dump is a secondary instance that catches up when it opens: poll.
        wait_until(lambda: len(c.dump("pings")) == 6, what="6 pings visible to dump")
        running = signals_of(c)
        self.assertEqual(len(running), 1, running)
        s = running[0]
        self.assertEqual((as_int(s["id"]), s["org"], s["rule"], s["weight"]),
                         (1, x.hex(), "big", 2))
        self.assertTrue(t0 - 1000 <= as_int(s["fired_at"]) <= t1 + 1000, (t0, s, t1))
        self.assertEqual(s["install_ids"], ["live-x"])
        self.assertEqual([(t["metric"], t["value"], t["op"], t["threshold"]) for t in s["terms"]],
                         [("active_users_monthly", 120, ">=", 100)])
        stored = {as_int(p["ingest_seq"]): p for p in c.dump("pings")}
        p = stored[as_int(s["ingest_seq"])]
        self.assertEqual((p["install_id"], as_int(p["seq"])), ("live-x", 2))
        c.stop()
        self.assertEqual(signals_of(c), running)


CRASH_RULE = """
[rule "crash"]
when = active_users_monthly >= 100
weight = 1
description = crash test rule
"""


class CrashSignals(CollectorCase):

    def test_kill9_mid_stream_no_lost_or_repeated_signal(self):
        self.require_dump()
        seed = int(os.environ.get("WL_TEST_SEED", random.randrange(1 << 30)))
        sys.stderr.write("\n[test_signals crash] WL_TEST_SEED=%d\n" % seed)
        rnd = random.Random(seed)
        n_orgs = 400
        keys = [org_key_bytes("crash-%d" % i) for i in range(n_orgs)]
        # Batch b: org b-1 crosses (its seq 2, 150 users) and org b starts
        # below the threshold (its seq 1, 50 users): a crossing's org was
        # created by the previous batch, which a crash may or may not keep.
        batches = []
        for b in range(n_orgs + 1):
            pings = []
            if b >= 1:
                pings.append(make_ping("crash-%d" % (b - 1), 2, org_key=keys[b - 1],
                                       active_users_monthly=150))
            if b < n_orgs:
                pings.append(make_ping("crash-%d" % b, 1, org_key=keys[b],
                                       active_users_monthly=50))
            batches.append(pings)
        frames = [frame(envelope_bytes(p, batch_id=i + 1)) for i, p in enumerate(batches)]

        c = self.collector({"durability": "sync"}, start=False)
        use_only_rules(c, CRASH_RULE)
        c.start()
        kill_after = rnd.randrange(1, n_orgs // 2)
        acked_ok = set()
        with self.client(c) as cl:
            def sender():
                try:
                    for f in frames:
                        cl.send_raw(f)
                except OSError:
                    pass  # the collector died under us
            t = threading.Thread(target=sender, daemon=True)
            t.start()
            while len(acked_ok) < kill_after:
                ack = cl.read_ack()
                self.assertAck(ack, "OK", batch_id=len(acked_ok) + 1)
                acked_ok.add(ack.batch_id)
            c.kill()
            t.join(IO_TIMEOUT)
        self.assertFalse(t.is_alive(), "sender thread stuck")

        c.restart()
        # Right after the crash: a crossing ping is stored iff its signal is.
        pings = c.dump("pings")
        crossings = {p["org"]: as_int(p["ingest_seq"]) for p in pings if as_int(p["seq"]) == 2}
        sigs = signals_of(c)
        sys.stderr.write("[test_signals crash] killed after %d acks; %d batches' crossings "
                         "stored, %d signals\n" % (kill_after, len(crossings), len(sigs)))
        self.assertGreaterEqual(len(crossings), kill_after - 1)
        self.assertEqual(sorted(s["org"] for s in sigs), sorted(crossings),
                         "orgs with a signal vs orgs whose crossing ping is stored")
        self.assertEqual([as_int(s["id"]) for s in sigs], list(range(1, len(sigs) + 1)))
        loaded = c.writer_started()
        self.assertEqual(loaded["signal_seq"], len(sigs), loaded)

        # Resend everything (acked batches are duplicates).
        with self.client(c) as cl:
            cl.send_raw(b"".join(frames))
            for i, p in enumerate(batches):
                ack = cl.read_ack()
                self.assertAck(ack, "OK", batch_id=i + 1)
                self.assertEqual(ack.accepted + ack.duplicates, len(p))
                if i + 1 in acked_ok:
                    self.assertEqual(ack.accepted, 0,
                                     "batch %d was acked before the crash" % (i + 1))
        c.stop()

        pings = c.dump("pings")
        self.assertEqual(sorted((p["install_id"], as_int(p["seq"])) for p in pings),
                         sorted(("crash-%d" % i, s) for i in range(n_orgs) for s in (1, 2)))
        by_seq = {as_int(p["ingest_seq"]): p for p in pings}
        sigs = signals_of(c)
        self.assertEqual([as_int(s["id"]) for s in sigs], list(range(1, n_orgs + 1)),
                         "ids contiguous, no gap, no repeat")
        per_org = {}
        for s in sigs:
            per_org.setdefault(s["org"], []).append(s)
        self.assertEqual(set(per_org), {k.hex() for k in keys})
        repeated = {o: [x["id"] for x in v] for o, v in per_org.items() if len(v) != 1}
        self.assertEqual(repeated, {}, "orgs with more than one signal")
        for s in sigs:
            self.assertEqual(s["rule"], "crash")
            p = by_seq.get(as_int(s["ingest_seq"]))
            self.assertIsNotNone(p, "signal %s: ingest_seq %s is no stored ping"
                                 % (s["id"], s["ingest_seq"]))
            self.assertEqual((p["org"], as_int(p["seq"]), p["install_id"]),
                             (s["org"], 2, s["install_ids"][0]), s)
        seqs = [as_int(s["ingest_seq"]) for s in sigs]
        self.assertEqual(seqs, sorted(seqs), "signal ids follow ingest order")


class SignalFileSink(CollectorCase):

    def read_lines(self, path):
        """The complete lines of the signal file, as JSON."""
        if not os.path.exists(path):
            return []
        with open(path, "rb") as f:
            data = f.read()
        return [json.loads(l) for l in data.split(b"\n")[:-1] if l.strip()]

    def wait_ids(self, path, ids, timeout=10.0):
        wait_until(lambda: len(self.read_lines(path)) >= len(ids), timeout=timeout,
                   what="%d lines in %s" % (len(ids), path))
        lines = self.read_lines(path)
        self.assertEqual([as_int(l["id"]) for l in lines], ids, lines)
        return lines

    def cross(self, c, name, batch_id):
        """One organization crossing the rule: one signal."""
        key = org_key_bytes(name)
        with self.client(c) as cl:
            self.assertAck(cl.request([make_ping(name, 1, org_key=key, active_users_monthly=10),
                                       make_ping(name, 2, org_key=key,
                                                 active_users_monthly=150)],
                                      batch_id=batch_id), "OK", accepted=2)
        return key.hex()

    def test_file_sink_exactly_once_across_restarts(self):
        self.require_dump()
        c = self.collector(start=False)
        path = os.path.join(c.root, "signals.ndjson")
        c.config.setdefault("sinks", {})["signal_file"] = path
        use_only_rules(c, BIG_RULE)
        c.start()
        orgs = [self.cross(c, "sink-%d" % i, i + 1) for i in range(3)]
        lines = self.wait_ids(path, [1, 2, 3])
        self.assertEqual([l["org"] for l in lines], orgs)
        self.assertEqual({l["rule"] for l in lines}, {"big"})
        # The file's lines are the log's records.
        wait_until(lambda: len(signals_of(c)) == 3, what="3 signals visible to dump")
        self.assertEqual(lines, signals_of(c))

        with self.subTest("clean restart: nothing appended again"):
            c.stop()
            c.start()
            orgs.append(self.cross(c, "sink-3", 4))
            lines = self.wait_ids(path, [1, 2, 3, 4])
            self.assertEqual(lines[3]["org"], orgs[3])

        with self.subTest("kill -9 and restart: nothing appended again"):
            c.kill()
            c.start()
            orgs.append(self.cross(c, "sink-4", 5))
            lines = self.wait_ids(path, [1, 2, 3, 4, 5])
            self.assertEqual([l["org"] for l in lines], orgs)
            c.stop()
            self.assertEqual(self.read_lines(path), signals_of(c))
            with open(path, "rb") as f:
                self.assertTrue(f.read().endswith(b"\n"))


if __name__ == "__main__":
    unittest.main()
