"""Checkpoints and reads from memory (issue 15), on the real collector.

The writer keeps installs, organizations and the current days in memory and
writes their records only at checkpoints (checkpoint_interval_ms,
checkpoint_pings, a forget, a clean stop); the API answers from memory. From
what a user sees (the API, /metrics, `warmline dump`, the log):

- an acked ping is in the next API answer (account: installs, totals,
  installs_counting, each install's last_ping, the current daily row; the hot
  list ranks an organization that crossed a rule with its current numbers)
  while warmline_state_flushes_total stays put and `warmline dump` shows no
  install or organization record yet (the raw pings and signals are there);
- checkpoint_pings N: the group that reaches N pings since the last
  checkpoint carries one, and only one (a group of more than N too);
- checkpoint_interval_ms 1s: a changed state is checkpointed by the idle
  tick, with no ping after it;
- SIGKILL in the middle of a window: the restart replays the pings stored
  since the last checkpoint (`event=writer_started ... replayed=K`) and every
  API answer equals the one before the kill; a clean stop then replays
  nothing and the answers still agree;
- an organization forgotten while its pings are not checkpointed is gone at
  once, after a SIGKILL and restart (the replay does not bring it back) and
  after a clean restart; an install forgotten so leaves its organization
  recomputed, the same after both restarts;
- an organization whose installs all moved to another inside the window is
  gone at once and after a SIGKILL (the replay's checkpoint drops its record);
- an edge ping (GET /security) not yet checkpointed, alone or over a wire
  ping of the same install, and Rudder events (POST /v1/batch): visible at
  once, the same after a SIGKILL and restart (they replay from the stored
  pings alone), and a resend after the restart stays a duplicate.

Where the records stand is read from /metrics (warmline_state_flushes_total,
warmline_checkpoint_seq, warmline_pings_since_checkpoint) and `warmline dump
state`, and checked against each other and the restart's replayed=.

Every wait polls with a deadline; nothing sleeps a fixed time.
"""

import json
import re
import secrets
import subprocess
import threading
import time

from harness import (CLI_BIN, READY_TIMEOUT, TEST_TIMEOUT, CollectorCase, api_call, as_int, dump,
                     make_ping, now_ms, org_key_hex, scrape_metrics, use_only_rules, wait_until)
from rudder_sdk import (INSTALL as RUDDER_INSTALL, activity_props, configs_props, go_batch,
                        go_track, post, server_props)
from test_http_ingest import INSTALL, INSTALL_2, HttpCollector, go_check, go_query

DAY_MS = 86400000
HOUR_MS = 3600000
RUDDER_KEY = "2k9RudderWriteKeyForTests0"
A_DOMAIN, B_DOMAIN, C_DOMAIN = "alpha.example", "bravo.example", "charlie.example"
RULES_INI = """
[rule "users_over_25"]
when = registered_users > 25
weight = 2
[rule "teams_5"]
when = teams >= 5
weight = 5
"""
# Answers' fields that change with the clock alone: the answer's time, and
# scores that decay (compared within REL_TOL).
VOLATILE = ("generated_at",)
REL_TOL = 1e-4
# The writer's idle tick comes every 10 s: a checkpoint due by time alone
# comes within that, on a loaded machine later.
IDLE_CHECKPOINT_DEADLINE = 40.0


def assert_same(tc, got, want, path="$"):
    """got == want but for VOLATILE keys (dropped) and reals (within REL_TOL:
    scores decay between two requests)."""
    if isinstance(want, float) or isinstance(got, float):
        tc.assertIsInstance(got, (int, float), path)
        tc.assertLessEqual(abs(got - want), REL_TOL * max(abs(want), 1e-300),
                           "%s: %r vs %r" % (path, got, want))
    elif isinstance(want, dict):
        tc.assertIsInstance(got, dict, path)
        gk = [k for k in got if k not in VOLATILE]
        wk = [k for k in want if k not in VOLATILE]
        tc.assertEqual(gk, wk, "%s: keys" % path)
        for k in wk:
            assert_same(tc, got[k], want[k], "%s.%s" % (path, k))
    elif isinstance(want, list):
        tc.assertIsInstance(got, list, path)
        tc.assertEqual(len(got), len(want), "%s: length (%r vs %r)" % (path, got, want))
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(tc, g, w, "%s[%d]" % (path, i))
    else:
        tc.assertEqual(got, want, path)


class CheckpointCase(CollectorCase):

    def start(self, options, http=False):
        """A collector with the two rules above and options, started."""
        if http:
            c = HttpCollector(options, name="http%d" % len(self._collectors))
            self._collectors.append(c)
        else:
            c = self.collector(options, start=False)
        use_only_rules(c, RULES_INI)
        c.start()
        self.key = {d: org_key_hex(c.org_salt, d) for d in (A_DOMAIN, B_DOMAIN, C_DOMAIN)}
        return c

    def org_key(self, domain):
        return bytes.fromhex(self.key[domain])

    def flushes(self, c):
        """Checkpoints so far (a write that carried the state records)."""
        return self.gauge(c, "warmline_state_flushes_total")

    def get(self, c, path, status=200):
        r = api_call(c.api_port, "GET", path)
        self.assertEqual(r.status, status, "GET %s: %r" % (path, r))
        return r.json()

    def send(self, cl, pings, batch_id):
        """One batch; its ack must accept every ping. (lo, hi): unix ms before
        the pings were built and after the ack, around their receive time (the
        event time of a live ping)."""
        lo = min(p.sent_at for p in pings)
        ack = cl.request(pings, batch_id=batch_id)
        self.assertAck(ack, "OK", accepted=len(pings), duplicates=0, rejected=0)
        return lo, now_ms()

    def assertWithin(self, t, span, what):
        self.assertTrue(span[0] <= t <= span[1], "%s %d not in [%d, %d]" % (what, t, *span))

    def answers(self, c, refs):
        """{ref: GET /v1/accounts/ref}, the hot list under "hot" and the
        signal log under "signals"."""
        out = {ref: self.get(c, "/v1/accounts/" + ref) for ref in refs}
        out["hot"] = self.get(c, "/v1/accounts/hot?limit=1000")
        out["signals"] = self.get(c, "/v1/signals?limit=1000")
        return out

    def dumped(self, c, table):
        self.require_dump()
        return dump(table, c.data_dir)

    def gauge(self, c, name):
        m = scrape_metrics(c.api_port)
        self.assertIn((name, ()), m, "%s missing from /metrics" % name)
        return int(m[(name, ())])

    def dump_state(self, c):
        """`warmline dump state`: where the stored records stand."""
        self.require_dump()
        r = subprocess.run([CLI_BIN, "dump", "state", "--data-dir", c.data_dir],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, "warmline dump state: %s" % r.stderr)
        out = json.loads(r.stdout)
        return {k: as_int(v) if k != "checkpoint_at_iso" and v is not None else v
                for k, v in out.items()}

    def replayed(self, c):
        ws = c.writer_started()
        self.assertIn("replayed", ws, "event=writer_started lacks replayed=")
        return ws["replayed"]


class TestReadsFromMemory(CheckpointCase):

    def test_acked_pings_are_read_from_memory_before_any_checkpoint(self):
        c = self.start({"checkpoint_interval_ms": "1h", "checkpoint_pings": 1000000})
        a, b = self.key[A_DOMAIN], self.key[B_DOMAIN]
        base = self.flushes(c)
        cl = self.client(c)

        # a1 alone: 10 registered users, no rule true
        t1 = self.send(cl, [make_ping("a1", 1, org_key=self.org_key(A_DOMAIN),
                                      registered_users=10, teams=1)], 1)
        acc = self.get(c, "/v1/accounts/domain:" + A_DOMAIN)
        self.assertEqual((acc["org"], acc["installs_total"], acc["installs_counting"]),
                         (a, 1, 1))
        self.assertEqual(acc["totals"]["registered_users"], 10)
        self.assertEqual(acc["first_seen"], acc["last_seen"])
        self.assertWithin(acc["last_seen"], t1, "last_seen")
        inst = acc["installs"][0]
        self.assertEqual((inst["install_id"], inst["counting"], inst["last_seq"]),
                         ("a1", True, 1))
        self.assertEqual((inst["last_ping"]["seq"], inst["last_ping"]["registered_users"]),
                         (1, 10))
        self.assertEqual([(d["day"], d["totals"]["registered_users"], d["installs"],
                           d["installs_total"]) for d in acc["daily"]],
                         [(t1[1] // DAY_MS, 10, 1, 1)], "the current day's row, from memory")
        self.assertEqual(acc["signals"], [])
        self.assertNotIn(a, [x["org"] for x in self.get(c, "/v1/accounts/hot")["accounts"]])

        # a2: the organization has 30 registered users, users_over_25 fires
        t2 = self.send(cl, [make_ping("a2", 1, org_key=self.org_key(A_DOMAIN),
                                      registered_users=20, teams=1)], 2)
        acc = self.get(c, "/v1/accounts/a2")
        self.assertEqual((acc["org"], acc["installs_total"], acc["installs_counting"]),
                         (a, 2, 2))
        self.assertEqual(acc["totals"]["registered_users"], 30)
        self.assertEqual([i["install_id"] for i in acc["installs"]], ["a1", "a2"])
        self.assertEqual([s["rule"] for s in acc["signals"]], ["users_over_25"])
        self.assertEqual(acc["daily"][-1]["day"], t2[1] // DAY_MS)
        self.assertEqual((acc["daily"][-1]["totals"]["registered_users"],
                          acc["daily"][-1]["installs"]), (30, 2))
        hot = self.get(c, "/v1/accounts/hot")["accounts"]
        self.assertEqual([(x["org"], x["rank"]) for x in hot], [(a, 1)])
        self.assertEqual((hot[0]["installs"], hot[0]["installs_counting"],
                          hot[0]["totals"]["registered_users"]), (2, 2, 30))
        self.assertWithin(hot[0]["last_seen"], t2, "the hot list's last_seen")
        self.assertEqual([r["rule"] for r in hot[0]["reasons"]], ["users_over_25"])

        # a1 again (32 users), and bravo crossing teams_5 (weight 5: ranked first)
        p3 = make_ping("a1", 2, org_key=self.org_key(A_DOMAIN), registered_users=12, teams=1)
        t3 = self.send(cl, [p3], 3)
        self.send(cl, [make_ping("b1", 1, org_key=self.org_key(B_DOMAIN), registered_users=5,
                                 teams=6)], 4)
        acc = self.get(c, "/v1/accounts/" + a)
        self.assertEqual(acc["totals"]["registered_users"], 32)
        a1 = acc["installs"][0]
        self.assertEqual((a1["install_id"], a1["last_seq"]), ("a1", 2))
        self.assertWithin(a1["last_seen"], t3, "a1's last_seen")
        self.assertEqual((a1["last_ping"]["seq"], a1["last_ping"]["registered_users"],
                          a1["last_ping"]["sent_at"]), (2, 12, p3.sent_at))
        self.assertEqual(acc["daily"][-1]["totals"]["registered_users"], 32)
        self.assertEqual(len(acc["signals"]), 1, "an edge, not a level: it fires once")
        hot = self.get(c, "/v1/accounts/hot")["accounts"]
        self.assertEqual([(x["org"], x["rank"]) for x in hot], [(b, 1), (a, 2)])
        self.assertEqual([x["totals"]["registered_users"] for x in hot], [5, 32])
        self.assertEqual(hot[0]["totals"]["teams"], 6)

        # no checkpoint: the records are not on disk, the raw pings and signals are
        self.assertEqual(self.flushes(c), base, "a checkpoint ran inside the window")
        self.assertEqual(self.dumped(c, "installs"), [])
        self.assertEqual(self.dumped(c, "orgs"), [])
        self.assertEqual(len(self.dumped(c, "pings")), 4)
        self.assertEqual(sorted(s["rule"] for s in self.dumped(c, "signals")),
                         ["teams_5", "users_over_25"])

        # the clean stop writes them
        before = self.answers(c, ["a1", "b1"])
        c.stop()
        installs = {r["install_id"]: r for r in self.dumped(c, "installs")}
        self.assertEqual(sorted(installs), ["a1", "a2", "b1"])
        self.assertEqual(int(installs["a1"]["last_ping"]["seq"]), 2)
        c.start()
        self.assertEqual(self.replayed(c), 0)
        assert_same(self, self.answers(c, ["a1", "b1"]), before)


class TestCheckpointPings(CheckpointCase):

    def test_the_group_that_reaches_n_pings_carries_one_checkpoint(self):
        n = 5
        c = self.start({"checkpoint_interval_ms": "1h", "checkpoint_pings": n})
        base = self.flushes(c)
        cl = self.client(c)
        ids = iter("p%d" % i for i in range(100))
        batch = iter(range(1, 100))
        at = {"stored": 0, "checkpoint": 0, "flushes": 0}  # what the collector should say
        on_disk, in_memory = set(), set()

        def group(size, carries):
            pings = [make_ping(next(ids), 1, registered_users=3) for _ in range(size)]
            span = self.send(cl, pings, next(batch))
            at["stored"] += size
            in_memory.update(p.install_id for p in pings)
            if carries:
                at["checkpoint"] = at["stored"]
                at["flushes"] += 1
                on_disk.update(in_memory)
            since = at["stored"] - at["checkpoint"]
            what = "after a group of %d, %d since the checkpoint" % (size, since)
            # counted before the ack goes: at once (polled only for a slow scrape)
            wait_until(lambda: self.flushes(c) >= base + at["flushes"], timeout=10, what=what)
            self.assertEqual(self.flushes(c), base + at["flushes"], what)
            self.assertEqual((self.gauge(c, "warmline_checkpoint_seq"),
                              self.gauge(c, "warmline_pings_since_checkpoint")),
                             (at["checkpoint"], since), what)
            if carries:
                self.assertGreaterEqual(self.gauge(c, "warmline_checkpoint_records"),
                                        2 * len(on_disk & in_memory), "an install and its org")
            state = self.dump_state(c)
            self.assertEqual((state["ingest_seq"], state["checkpoint_seq"],
                              state["pings_after_checkpoint"]),
                             (at["stored"], at["checkpoint"], since), what)
            if carries:
                self.assertWithin(state["checkpoint_at"], span, "checkpoint_at")
            self.assertEqual({r["install_id"] for r in self.dumped(c, "installs")}, on_disk,
                             what)
            for p in pings:  # each is read from memory whatever the disk holds
                acc = self.get(c, "/v1/accounts/" + p.install_id)
                self.assertEqual(acc["installs"][0]["last_ping"]["seq"], 1)
            if carries:
                in_memory.clear()
            return pings

        group(1, False)
        group(2, False)                 # 3 since the start
        group(2, True)                  # 5: this group carries it
        group(1, False)
        group(3, False)                 # 4 since
        group(1, True)                  # 5
        big = group(2 * n + 1, True)    # one group of 11: one checkpoint, not two
        group(n - 1, False)             # the count starts again after the big one
        # duplicates are not pings since the checkpoint: 11 of them carry none
        ack = cl.request(big, batch_id=next(batch))
        self.assertAck(ack, "OK", accepted=0, duplicates=len(big))
        self.assertEqual((self.flushes(c), self.gauge(c, "warmline_pings_since_checkpoint")),
                         (base + at["flushes"], n - 1))
        c.stop()
        self.assertEqual(len(self.dumped(c, "installs")), at["stored"])
        self.assertEqual(self.dump_state(c)["pings_after_checkpoint"], 0)


class TestCheckpointInterval(CheckpointCase):

    # the idle tick's wait on top of the usual (the watchdog still ends a hang)
    test_timeout = TEST_TIMEOUT + IDLE_CHECKPOINT_DEADLINE

    def test_a_changed_state_is_checkpointed_without_further_pings(self):
        c = self.start({"checkpoint_interval_ms": "1s", "checkpoint_pings": 1000000})
        cl = self.client(c)
        # A ping's own group carries the checkpoint when the last one is 1 s
        # old: send until one leaves the state changed and not checkpointed.
        before = self.flushes(c)
        for seq in range(1, 31):
            self.send(cl, [make_ping("t1", seq, registered_users=seq)], seq)
            after = self.flushes(c)
            if after == before:
                break
            before = after
        else:
            self.fail("30 pings in a row each carried a checkpoint: none left a window open")
        on_disk = {r["install_id"]: int(r["last_ping"]["seq"]) for r in self.dumped(c, "installs")}
        self.assertNotEqual(on_disk.get("t1"), seq, "ping %d checkpointed with its group" % seq)
        self.assertEqual(self.get(c, "/v1/accounts/t1")["installs"][0]["last_seq"], seq)

        # no ping now: the idle tick checkpoints the changed state
        t0 = time.monotonic()
        wait_until(lambda: self.flushes(c) > before, timeout=IDLE_CHECKPOINT_DEADLINE,
                   interval=0.2, what="a checkpoint with no ping after the change")
        waited = time.monotonic() - t0
        self.assertEqual(self.flushes(c), before + 1)
        on_disk = {r["install_id"]: int(r["last_ping"]["seq"]) for r in self.dumped(c, "installs")}
        self.assertEqual(on_disk.get("t1"), seq, "checkpointed after %.1fs" % waited)
        # nothing changed since: the next SIGKILL has nothing to replay
        c.kill()
        c.start()
        self.assertEqual(self.replayed(c), 0)
        self.assertEqual(self.get(c, "/v1/accounts/t1")["installs"][0]["last_seq"], seq)


class TestCrashMidWindow(CheckpointCase):

    def test_sigkill_replays_the_window_and_answers_do_not_change(self):
        c = self.start({"checkpoint_interval_ms": "1h", "checkpoint_pings": 10})
        ka, kb, kc = (self.org_key(d) for d in (A_DOMAIN, B_DOMAIN, C_DOMAIN))
        base = self.flushes(c)
        cl = self.client(c)
        seq = {}

        def ping(install, key, **fields):
            seq[install] = seq.get(install, 0) + 1
            return make_ping(install, seq[install], org_key=key, **fields)

        # 10 pings (4 + 3 + 3): the third group carries a checkpoint
        self.send(cl, [ping("a1", ka, registered_users=10, teams=1),
                       ping("b1", kb, registered_users=3, teams=2),
                       ping("n1", b"", registered_users=4, teams=1),
                       ping("a1", ka, registered_users=11, teams=1)], 1)
        self.send(cl, [ping("b1", kb, registered_users=3, teams=3),
                       ping("n1", b"", registered_users=5, teams=1),
                       ping("a2", ka, registered_users=9, teams=1)], 2)
        self.assertEqual(self.flushes(c), base)
        self.send(cl, [ping("a1", ka, registered_users=12, teams=1),
                       ping("b1", kb, registered_users=3, teams=4),
                       ping("n1", b"", registered_users=6, teams=1)], 3)
        wait_until(lambda: self.flushes(c) == base + 1, timeout=10,
                   what="the checkpoint at 10 pings")
        # 7 more (3 + 4): rules cross (alpha 30 users, bravo 5 teams, n1 26
        # users), a new organization, a new day row's numbers; no checkpoint
        window = [[ping("a2", ka, registered_users=18, teams=1),
                   ping("b1", kb, registered_users=3, teams=5),
                   ping("c1", kc, registered_users=2, teams=1)],
                  [ping("n1", b"", registered_users=26, teams=1),
                   ping("c2", kc, registered_users=1, teams=1),
                   ping("a1", ka, registered_users=13, teams=1),
                   ping("c1", kc, registered_users=7, teams=1)]]
        for i, pings in enumerate(window):
            self.send(cl, pings, 10 + i)
        k = sum(len(p) for p in window)
        self.assertEqual(self.flushes(c), base + 1, "a checkpoint inside the window")
        refs = ["domain:" + A_DOMAIN, "domain:" + B_DOMAIN, "domain:" + C_DOMAIN, "a1", "a2",
                "b1", "c1", "c2", "n1", "install:n1"]
        want = self.answers(c, refs)
        hot = [x["org"] for x in want["hot"]["accounts"]]
        self.assertEqual(hot[:1], [self.key[B_DOMAIN]], "teams_5 (weight 5) first")
        self.assertEqual(sorted(hot[1:]), sorted([self.key[A_DOMAIN], "install:n1"]))
        self.assertEqual(want["domain:" + C_DOMAIN]["installs_total"], 2)
        self.assertEqual(want["a1"]["totals"]["registered_users"], 31)
        installs_on_disk = {r["install_id"] for r in self.dumped(c, "installs")}
        self.assertNotIn("c1", installs_on_disk, "c1 is only in the window")
        self.assertEqual((self.gauge(c, "warmline_checkpoint_seq"),
                          self.gauge(c, "warmline_pings_since_checkpoint")), (10, k))
        state = self.dump_state(c)
        self.assertEqual((state["ingest_seq"], state["checkpoint_seq"],
                          state["pings_after_checkpoint"]), (10 + k, 10, k))

        cl.close()
        c.kill()
        c.start()
        self.assertEqual(self.replayed(c), k, "the pings since the last checkpoint")
        # the replayed window is checkpointed before anything else
        state = self.dump_state(c)
        self.assertEqual((state["checkpoint_seq"], state["pings_after_checkpoint"]), (10 + k, 0))
        self.assertEqual(self.gauge(c, "warmline_checkpoint_seq"), 10 + k)
        ws = c.writer_started()
        self.assertEqual((ws["installs"], ws["orgs"]), (6, 4))
        assert_same(self, self.answers(c, refs), want)
        # the window's pings are known: resent, they are duplicates
        cl = self.client(c)
        ack = cl.request(window[1], batch_id=20)
        self.assertAck(ack, "OK", accepted=0, duplicates=len(window[1]))
        assert_same(self, self.answers(c, refs), want)
        cl.close()

        c.stop()
        c.start()
        self.assertEqual(self.replayed(c), 0, "a clean stop leaves nothing to replay")
        assert_same(self, self.answers(c, refs), want)
        on_disk = {r["install_id"]: int(r["last_ping"]["seq"]) for r in self.dumped(c, "installs")}
        self.assertEqual(on_disk, seq, "every install's latest ping in its record")


    def test_kills_while_the_restart_replays_change_nothing(self):
        c = self.start({"checkpoint_interval_ms": "1h", "checkpoint_pings": 1000000})
        ka, kb = self.org_key(A_DOMAIN), self.org_key(B_DOMAIN)
        cl = self.client(c)
        # a window long enough that a kill can land inside its replay
        k = 0
        for seq in range(1, 11):
            # ids in arrival order = key order (see test_account_installs_keep_their_order)
            pings = [make_ping("a%03d" % i, seq, org_key=ka, registered_users=seq + i % 7)
                     for i in range(1, 101)]
            pings += [make_ping("b%03d" % i, seq, org_key=kb, teams=seq + i % 3)
                      for i in range(1, 101)]
            self.send(cl, pings, seq)
            k += len(pings)
        refs = ["domain:" + A_DOMAIN, "domain:" + B_DOMAIN, "a001", "a100", "b001", "b100"]
        want = self.answers(c, refs)
        self.assertEqual(self.dump_state(c)["pings_after_checkpoint"], k)
        cl.close()
        c.kill()
        # killed again while it loads, replays and checkpoints what it replayed
        for pattern in (r"\bevent=networks_loaded\b", r"\bevent=networks_loaded\b",
                        r"\bevent=writer_started\b"):
            self.kill_while_starting(c, pattern)
        c.start()
        self.assertIn(self.replayed(c), (0, k), "all of the window, or none (checkpointed)")
        self.assertEqual(self.dump_state(c)["pings_after_checkpoint"], 0)
        assert_same(self, self.answers(c, refs), want)
        c.stop()
        c.start()
        self.assertEqual(self.replayed(c), 0)
        assert_same(self, self.answers(c, refs), want)

    def kill_while_starting(self, c, pattern):
        """Starts c and SIGKILLs it once its log shows pattern (or it is
        ready, or it exited), whichever comes first."""
        old = c.proc

        def killer():
            wait_until(lambda: c.proc is not old, timeout=READY_TIMEOUT, interval=0.001,
                       what="the process started")
            try:
                c.wait_for(pattern + "|\\bevent=ready\\b", timeout=READY_TIMEOUT)
            except AssertionError:
                pass  # it exited first: nothing to kill
            c.proc.kill()

        t = threading.Thread(target=killer, daemon=True)
        t.start()
        try:
            c.start()
        except AssertionError:
            pass  # killed before event=ready
        t.join(READY_TIMEOUT)
        self.assertFalse(t.is_alive(), "the killer thread hangs")
        c.kill()


    def test_account_installs_keep_their_order_across_restarts(self):
        """The account's installs list is the same answer after a restart as
        before it: the organization's installs in id order (its first
        WL_ORG_INSTALL_IDS_MAX ids, when it has more), whatever order they
        came in or loaded in. Memory keeps them in arrival order and a
        restart loads them in key order: before the record and the account
        view listed the smallest ids sorted, [z9, a1, m5, a10, a2] before a
        restart became [a1, a10, a2, m5, z9] after it."""
        c = self.start({"checkpoint_interval_ms": "1h", "checkpoint_pings": 1000000})
        ka = self.org_key(A_DOMAIN)
        cl = self.client(c)
        ids = ["z9", "a1", "m5", "a10", "a2"]
        self.send(cl, [make_ping(i, 1, org_key=ka) for i in ids], 1)
        refs = ["domain:" + A_DOMAIN, "a1"]
        want = self.answers(c, refs)
        self.assertEqual([i["install_id"] for i in want["a1"]["installs"]], sorted(ids),
                         "live: id order, not arrival order")
        cl.close()
        c.kill()
        c.start()
        self.assertEqual(self.replayed(c), len(ids))
        assert_same(self, self.answers(c, refs), want)
        c.stop()
        c.start()
        assert_same(self, self.answers(c, refs), want)


class TestForgetNotCheckpointed(CheckpointCase):

    def test_a_forgotten_org_stays_gone_after_sigkill_and_restart(self):
        c = self.start({"checkpoint_interval_ms": "1h", "checkpoint_pings": 1000000})
        a, b = self.key[A_DOMAIN], self.key[B_DOMAIN]
        ka, kb = self.org_key(A_DOMAIN), self.org_key(B_DOMAIN)
        base = self.flushes(c)
        cl = self.client(c)
        self.send(cl, [make_ping("a1", 1, org_key=ka, registered_users=20),
                       make_ping("a2", 1, org_key=ka, registered_users=20),
                       make_ping("b1", 1, org_key=kb, registered_users=3, teams=6)], 1)
        self.send(cl, [make_ping("a1", 2, org_key=ka, registered_users=21)], 2)
        self.assertEqual(self.get(c, "/v1/accounts/domain:" + A_DOMAIN)["installs_total"], 2)
        self.assertEqual(self.flushes(c), base, "the pings are not checkpointed")
        self.assertEqual(self.dumped(c, "orgs"), [])

        r = api_call(c.api_port, "POST", "/v1/forget",
                     body=json.dumps({"domain": A_DOMAIN}).encode(),
                     headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)
        d = r.json()["deleted"]
        self.assertEqual((d["pings"], d["installs"], d["orgs"]), (3, 2, 1), d)
        needles = [a, A_DOMAIN]  # install ids this short would match anything

        def assert_gone(when):
            for ref in (a, "domain:" + A_DOMAIN, "a1", "a2", "install:a1"):
                self.get(c, "/v1/accounts/" + ref, status=404)
            hot = self.get(c, "/v1/accounts/hot?limit=1000")
            self.assertEqual([x["org"] for x in hot["accounts"]], [b], when)
            self.assertEqual([s["org"] for s in self.get(c, "/v1/signals")["signals"]], [b],
                             when)
            for t in ("installs", "orgs", "pings", "signals", "daily"):
                text = json.dumps(self.dumped(c, t))
                for n in (a, '"a1"', '"a2"'):
                    self.assertNotIn(n, text, "%s: %s holds %s" % (when, t, n))

        assert_gone("at once")
        # b pings on after the forget: the restart has a window to replay
        self.send(cl, [make_ping("b1", 2, org_key=kb, registered_users=4, teams=6)], 3)
        want = self.answers(c, ["b1", b])
        cl.close()

        c.kill()
        c.start()
        self.assertEqual(self.replayed(c), 1, "the ping since the forget's checkpoint")
        self.assertEqual(c.writer_started()["orgs"], 1)
        assert_gone("after SIGKILL and restart")
        assert_same(self, self.answers(c, ["b1", b]), want)
        self.assertEqual([x for x in needles if c.find_lines(re.escape(x))], [],
                         "the log names the forgotten organization")

        c.stop()
        c.start()
        self.assertEqual(self.replayed(c), 0)
        assert_gone("after a clean restart")
        assert_same(self, self.answers(c, ["b1", b]), want)


    def test_a_forgotten_install_stays_gone_and_its_org_recomputed(self):
        c = self.start({"checkpoint_interval_ms": "1h", "checkpoint_pings": 1000000})
        cc, kc, kb = self.key[C_DOMAIN], self.org_key(C_DOMAIN), self.org_key(B_DOMAIN)
        cl = self.client(c)
        self.send(cl, [make_ping("c1", 1, org_key=kc, registered_users=20, teams=1),
                       make_ping("c2", 1, org_key=kc, registered_users=10, teams=3),
                       make_ping("b1", 1, org_key=kb, registered_users=3, teams=1)], 1)
        self.assertEqual(self.get(c, "/v1/accounts/" + cc)["totals"]["registered_users"], 30)
        self.assertEqual(self.dumped(c, "installs"), [], "nothing checkpointed yet")

        r = api_call(c.api_port, "POST", "/v1/forget", body=json.dumps({"install": "c2"}).encode(),
                     headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)
        d = r.json()["deleted"]
        self.assertEqual((d["pings"], d["installs"], d["orgs"]), (1, 1, 0), d)
        self.assertGreaterEqual(d["signals_edited"], 1, "users_over_25 listed c2")
        refs = ["c1", "domain:" + C_DOMAIN, "b1"]

        def assert_gone(when):
            for ref in ("c2", "install:c2"):
                self.get(c, "/v1/accounts/" + ref, status=404)
            acc = self.get(c, "/v1/accounts/" + cc)
            self.assertEqual([i["install_id"] for i in acc["installs"]], ["c1"], when)
            self.assertEqual((acc["installs_total"], acc["totals"]["registered_users"],
                              acc["totals"]["teams"]), (1, 21, 1), when)
            self.assertEqual(acc["daily"][-1]["totals"]["registered_users"], 21, when)
            self.assertNotIn('"c2"', json.dumps(self.answers(c, refs)), when)
            for t in ("installs", "orgs", "pings", "signals", "daily"):
                self.assertNotIn('"c2"', json.dumps(self.dumped(c, t)), "%s: %s" % (when, t))

        # c1 pings on after the forget: the restart has a window to replay
        self.send(cl, [make_ping("c1", 2, org_key=kc, registered_users=21, teams=1)], 2)
        assert_gone("at once")
        want = self.answers(c, refs)
        cl.close()

        c.kill()
        c.start()
        self.assertEqual(self.replayed(c), 1, "the ping since the forget's checkpoint")
        assert_gone("after SIGKILL and restart")
        assert_same(self, self.answers(c, refs), want)
        c.stop()
        c.start()
        self.assertEqual(self.replayed(c), 0)
        assert_gone("after a clean restart")
        assert_same(self, self.answers(c, refs), want)


class TestEdgePingNotCheckpointed(CheckpointCase):

    def test_an_edge_ping_is_read_from_memory_and_replayed(self):
        c = self.start({"checkpoint_interval_ms": "1h", "checkpoint_pings": 1000000},
                       http=True)
        base = self.flushes(c)
        status, _, _ = go_check(c.http_port, go_query(INSTALL, uc="10", auc="3", tc="2"))
        self.assertEqual(status, 200)
        c.wait_stats(lambda s: s["pings_accepted"] == 1, what="the check stored")
        org = "install:" + INSTALL
        acc = self.get(c, "/v1/accounts/" + INSTALL)
        self.assertEqual((acc["org"], acc["installs_total"], acc["installs_counting"]),
                         (org, 1, 1))
        self.assertEqual((acc["totals"]["registered_users"], acc["totals"]["active_users_daily"],
                          acc["totals"]["teams"]), (10, 3, 2))
        last = acc["installs"][0]["last_ping"]
        self.assertEqual((last["install_id"], last["seq"], last["version"], last["edition"],
                          last["registered_users"]), (INSTALL, 1, "11.6.0", "enterprise", 10))
        self.assertEqual(acc["daily"][-1]["totals"]["registered_users"], 10)
        # an install that sent a wire ping (alpha's key, a feature) then a check:
        # the check's counts merge over the wire ping, the organization stays
        cl = self.client(c)
        self.send(cl, [make_ping(INSTALL_2, 1, org_key=self.org_key(A_DOMAIN),
                                 registered_users=50, features=["saml_configured"])], 1)
        cl.close()
        status, _, _ = go_check(c.http_port, go_query(INSTALL_2, uc="60", auc="4", tc="3"))
        self.assertEqual(status, 200)
        c.wait_stats(lambda s: s["pings_accepted"] == 3, what="the second check stored")
        mixed = self.get(c, "/v1/accounts/" + INSTALL_2)
        self.assertEqual(mixed["org"], self.key[A_DOMAIN])
        last = mixed["installs"][0]["last_ping"]
        self.assertEqual((last["registered_users"], last["active_users_daily"], last["teams"],
                          last["version"]), (60, 4, 3, "11.6.0"))
        self.assertEqual(mixed["totals"]["registered_users"], 60)
        self.assertEqual(self.flushes(c), base)
        self.assertEqual(self.dumped(c, "installs"), [])
        refs = [INSTALL, org, INSTALL_2, "domain:" + A_DOMAIN]
        want = self.answers(c, refs)

        c.kill()
        c.start()
        self.assertEqual(self.replayed(c), 3)
        assert_same(self, self.answers(c, refs), want)

        # the writer's seq for the install goes on from the replayed check
        hour0 = time.time() * 1000 // HOUR_MS
        status, _, _ = go_check(c.http_port, go_query(INSTALL, uc="11", auc="3", tc="2"))
        self.assertEqual(status, 200)
        c.wait_stats(lambda s: s["pings_accepted"] == 1, what="the next check stored")
        status, _, _ = go_check(c.http_port, go_query(INSTALL, uc="11", auc="3", tc="2"))
        self.assertEqual(status, 200)
        if time.time() * 1000 // HOUR_MS == hour0:  # the same check in the same hour
            c.wait_stats(lambda s: s["pings_duplicate"] == 1, what="the repeat a duplicate")
        else:
            c.wait_stats(lambda s: s["pings_accepted"] + s["pings_duplicate"] == 2,
                         what="the repeat counted")
        last = self.get(c, "/v1/accounts/" + INSTALL)["installs"][0]["last_ping"]
        self.assertEqual((last["seq"], last["registered_users"]), (2, 11))
        c.kill()
        c.start()
        self.assertGreaterEqual(self.replayed(c), 1)
        want = self.answers(c, [INSTALL, org])
        self.assertEqual(want[INSTALL]["installs"][0]["last_ping"]["seq"], 2)
        c.stop()
        c.start()
        self.assertEqual(self.replayed(c), 0)
        assert_same(self, self.answers(c, [INSTALL, org]), want)

    def test_rudder_events_in_the_window_replay_and_resends_stay_duplicates(self):
        c = self.start({"checkpoint_interval_ms": "1h", "checkpoint_pings": 1000000,
                        "rudder_write_keys": RUDDER_KEY}, http=True)
        domain = "ck%s.example" % secrets.token_hex(4)
        org = org_key_hex(c.org_salt, domain)
        sent = []
        for event, props in (
                ("activity", activity_props(registered_users=57, active_users_daily=12,
                                            active_users_monthly=40)),
                ("server", server_props(version="10.11.0", edition="true")),
                ("configs", configs_props(saml=True, ldap=False,
                                          allowed_email_domain=[domain]))):
            req = go_batch([go_track(event, props, user_id=RUDDER_INSTALL)],
                           write_key=RUDDER_KEY)
            status, _, body = post(c.http_port, req.body, req.headers)
            self.assertEqual((status, json.loads(body)["accepted"]), (200, 1), body)
            sent.append(req)
        # answered after the write: in the next read, though not checkpointed
        acc = self.get(c, "/v1/accounts/" + RUDDER_INSTALL)
        self.assertEqual(acc["org"], org)
        last = acc["installs"][0]["last_ping"]
        self.assertEqual((last["registered_users"], last["active_users_monthly"],
                          last["version"]), (57, 40, "10.11.0"))
        self.assertIn("saml_configured", last["features"])
        self.assertEqual(self.dumped(c, "installs"), [])
        refs = [RUDDER_INSTALL, org]
        want = self.answers(c, refs)

        c.kill()
        c.start()
        self.assertEqual(self.replayed(c), 3)
        assert_same(self, self.answers(c, refs), want)
        for req in sent:  # the client resends what it may not have seen answered
            status, _, body = post(c.http_port, req.body, req.headers)
            self.assertEqual((status, json.loads(body)["duplicates"]), (200, 1), body)
        assert_same(self, self.answers(c, refs), want)
        c.stop()
        c.start()
        self.assertEqual(self.replayed(c), 0)
        assert_same(self, self.answers(c, refs), want)
        self.assertEqual(len(self.dumped(c, "pings")), 3, "the resends stored nothing")


class TestEmptiedOrgNotCheckpointed(CheckpointCase):

    def test_an_org_whose_installs_all_moved_in_the_window_stays_gone(self):
        c = self.start({"checkpoint_interval_ms": "1h", "checkpoint_pings": 3})
        a, b, cc = (self.key[d] for d in (A_DOMAIN, B_DOMAIN, C_DOMAIN))
        ka, kb, kc = (self.org_key(d) for d in (A_DOMAIN, B_DOMAIN, C_DOMAIN))
        cl = self.client(c)
        # 3 pings: a checkpoint with alpha's record (m1, x1; users_over_25 fired)
        self.send(cl, [make_ping("m1", 1, org_key=ka, registered_users=30),
                       make_ping("x1", 1, org_key=ka, registered_users=1),
                       make_ping("y1", 1, org_key=kc, registered_users=1)], 1)
        orgs = {r["org"]: r for r in self.dumped(c, "orgs")}
        self.assertEqual(sorted(orgs[a]["install_ids"]), ["m1", "x1"])
        # the window: both move to bravo (org keys changed), alpha is left empty
        self.send(cl, [make_ping("m1", 2, org_key=kb, registered_users=30)], 2)
        self.assertEqual(self.get(c, "/v1/accounts/" + a)["installs_total"], 1)
        self.send(cl, [make_ping("x1", 2, org_key=kb, registered_users=1)], 3)
        refs = [b, cc, "m1", "x1", "y1", "domain:" + B_DOMAIN]

        def assert_alpha_gone(when):
            for ref in (a, "domain:" + A_DOMAIN):
                self.get(c, "/v1/accounts/" + ref, status=404)
            hot = [x["org"] for x in self.get(c, "/v1/accounts/hot?limit=1000")["accounts"]]
            self.assertNotIn(a, hot, when)
            self.assertIn(b, hot, when)
            acc = self.get(c, "/v1/accounts/m1")
            self.assertEqual((acc["org"], [i["install_id"] for i in acc["installs"]]),
                             (b, ["m1", "x1"]), when)

        assert_alpha_gone("at once")
        # the checkpoint behind still lists alpha: the dump says it is behind
        self.assertIn(a, {r["org"] for r in self.dumped(c, "orgs")})
        self.assertEqual(self.dump_state(c)["pings_after_checkpoint"], 2)
        want = self.answers(c, refs)
        cl.close()

        c.kill()
        c.start()
        self.assertEqual(self.replayed(c), 2)
        assert_alpha_gone("after SIGKILL and restart")
        assert_same(self, self.answers(c, refs), want)
        self.assertNotIn(a, {r["org"] for r in self.dumped(c, "orgs")},
                         "the replay's checkpoint leaves the emptied org's record")
        c.stop()
        c.start()
        self.assertEqual(self.replayed(c), 0)
        assert_alpha_gone("after a clean restart")
        assert_same(self, self.answers(c, refs), want)
