"""Attacks on issue 15's work (state in memory, checkpointed; reads from
memory), tried against the real collector. Each test names the attack, what
it would cause if it worked, and what is expected instead.

- An organization that fires many signals inside checkpoint windows while
  the API reads its account: its signal ids wait in memory until its record
  is written (signals.c), readers merge the index with memory and make the
  index iterator again when ids left memory (index_gen). A read racing a
  checkpoint must neither miss nor repeat a signal; after a SIGKILL the
  load gives the unindexed ids back (signal_index_seq), so the account and
  the hot list answer as before the kill.
- Hot-list cursors crafted by a client: cut short, of odd length, landing
  between two rank keys, naming an organization that left, with a huge row
  count: a 400 or a page that goes on from the right place, never a crash
  or a row skipped or repeated.
- A checkpoint paced by the share of its window gone, under a steady trickle
  of pings (never idle for 20 ms): it ends, so the replay a crash leaves
  stays one window's worth.
- UDP: a burst that stops exactly when the kernel queue drains, with a
  malformed datagram inside: every datagram lands or is counted, the last
  one too (no 2 ms wait per datagram left hanging).
- Decoding into an arena: pings shaped so protobuf-c allocates many small
  blocks (repeated and unknown fields) and zlib bombs, over several
  envelopes on one connection: the budget refuses what it must, the good
  batches land, the collector lives.

Every wait polls with a deadline; nothing sleeps a fixed time to judge.
"""

import base64
import random
import socket
import threading
import time
import unittest

from harness import (LOCALHOST, CollectorCase, api_call, encode_varint, envelope_bytes, fmt_ack,
                     make_ping, pb, scrape_metrics, use_only_rules, wait_until, zlib_bomb)
from adversary import ping, send_all

# A rule that fires at every upward crossing: no cooldown, no hysteresis.
TOGGLE_RULES = """
[rule "toggle"]
when = registered_users > 25
weight = 1
cooldown = 0s
hysteresis = 0
[rule "teams_many"]
when = teams >= 5
weight = 3
cooldown = 0s
hysteresis = 0
"""


def metric(c, name):
    m = scrape_metrics(c.api_port)
    return sum(v for (n, _), v in m.items() if n == name)


def b64d(s):
    s = s.replace("-", "+").replace("_", "/")
    return base64.b64decode(s + "=" * (-len(s) % 4))


def b64e(b, like):
    s = base64.b64encode(b).decode()
    if "-" in like or "_" in like or "=" not in like:
        s = s.replace("+", "-").replace("/", "_").rstrip("=")
    return s


class AttackReview15(CollectorCase):
    test_timeout = 300

    def account(self, c, org):
        r = api_call(c.api_port, "GET", "/v1/accounts/" + org.hex())
        self.assertEqual(r.status, 200, r)
        return r.json()

    def reason_ids(self, acc):
        return [x["id"] for x in acc.get("signals") or []]

    def hot(self, c, query=""):
        r = api_call(c.api_port, "GET", "/v1/accounts/hot" + query)
        return r

    def hot_orgs(self, c, limit=100):
        r = self.hot(c, "?limit=%d" % limit)
        self.assertEqual(r.status, 200, r)
        return [(a["org"], [x["signal_id"] for x in a["reasons"]]) for a in r.json()["accounts"]]

    # ------------------------------------------------------------------
    def test_signals_racing_checkpoints_then_sigkill(self):
        """Attack: one organization fires a signal with nearly every ping
        (a rule with no cooldown crossed up and down) while 6,000 other
        organizations keep each checkpoint (every 100 ms) busy in slices,
        and a client reads the account over and over.
        Would cause: a read between a checkpoint's index write and the ids
        leaving memory (or an iterator made before it) missing signals or
        listing one twice; a SIGKILL losing the unindexed ids (the account
        then shows fewer reasons than before it).
        Expected: every answer's reasons are distinct, never fewer than the
        previous answer's, all of them at the end; after SIGKILL and restart
        (and again after a clean restart) the same reasons and hot list."""
        rng = random.Random(1501)
        hot_org = rng.randbytes(32)
        c = self.collector({"durability": "async", "checkpoint_interval_ms": "100ms"},
                           start=False)
        use_only_rules(c, TOGGLE_RULES)
        c.start()
        others = [rng.randbytes(32) for _ in range(6000)]

        stop = threading.Event()
        problems, reads = [], [0]

        def reader():
            last = 0
            while not stop.is_set():
                r = api_call(c.api_port, "GET", "/v1/accounts/" + hot_org.hex())
                if r.status == 404:
                    continue
                if r.status != 200:
                    problems.append("status %d" % r.status)
                    return
                ids = [x["id"] for x in r.json().get("signals") or []]
                reads[0] += 1
                if len(set(ids)) != len(ids):
                    problems.append("a signal twice: %r" % ids)
                if len(ids) < last:
                    problems.append("signals went from %d to %d" % (last, len(ids)))
                last = max(last, len(ids))
                h = api_call(c.api_port, "GET", "/v1/accounts/hot?limit=3")
                if h.status != 200:
                    problems.append("hot status %d" % h.status)
                    return
                for a in h.json()["accounts"]:
                    rids = [x["signal_id"] for x in a["reasons"]]
                    if len(set(rids)) != len(rids):
                        problems.append("a reason twice: %r" % rids)
                    # the newest 100, the rest counted in reasons_omitted
                    listed = len(rids) + a.get("reasons_omitted", {}).get("signals", 0)
                    if a["org"] == hot_org.hex() and listed < last:
                        problems.append("hot reasons %d, the account had %d" % (listed, last))

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        fires = 0
        seq = 0
        for rnd in range(240):
            batch = []
            for k in range(4):
                seq += 1
                users = 30 if (seq % 2) else 10
                fires += users == 30
                batch.append(ping("hot-inst", seq, org_key=hot_org, registered_users=users))
            for o in others[rnd % 40 * 150:(rnd % 40 + 1) * 150]:
                batch.append(ping("o-" + o.hex()[:16], rnd // 40 + 1, org_key=o))
            for o in others[:200]:  # keep 200 organizations dirty in every window
                batch.append(ping("o-" + o.hex()[:16] + "-b", rnd + 1, org_key=o))
            send_all(c.tcp_port, batch)
        self.assertGreater(reads[0], 10, "reads beside the pings")
        stop.set()
        t.join(60)
        self.assertEqual(problems, [])
        before = self.reason_ids(self.account(c, hot_org))
        self.assertEqual(len(before), fires, "every firing is a reason")
        self.assertEqual(sorted(before), before, "in the order they fired")
        hot_before = self.hot_orgs(c)
        self.assertEqual(hot_before[0][0], hot_org.hex())

        c.kill()
        c.start()
        self.assertEqual(self.reason_ids(self.account(c, hot_org)), before, "after SIGKILL")
        self.assertEqual(self.hot_orgs(c), hot_before, "hot list after SIGKILL")
        c.stop()
        c.start()
        self.assertEqual(self.reason_ids(self.account(c, hot_org)), before, "after a clean stop")
        self.assertEqual(self.hot_orgs(c), hot_before, "hot list after a clean stop")
        c.stop()

    # ------------------------------------------------------------------
    def test_crafted_hot_cursors(self):
        """Attack: a client edits the `after` cursor of GET /v1/accounts/hot:
        cuts it (every length from 0 to its own), adds bytes, moves its score
        so it falls between two rank keys, names an organization that was
        forgotten since, sets the row count to 2^32-1, sends version bytes
        the collector never wrote.
        Would cause: a read past the rank key's buffer, a crash, a page that
        skips or repeats an organization, a row number that wraps.
        Expected: 400 bad_parameter or 200; a cursor between two keys goes on
        from the next lower one; a forgotten organization's cursor goes on
        from where it stood; the collector answers afterwards."""
        rng = random.Random(1502)
        c = self.collector({"durability": "async"}, start=False)
        use_only_rules(c, TOGGLE_RULES)
        c.start()
        orgs = [rng.randbytes(32) for _ in range(6)]
        batch = []
        # organization i fires i+1 times: distinct scores, a strict order
        for i, o in enumerate(orgs):
            for s in range(2 * (i + 1)):
                batch.append(ping("inst-%d" % i, s + 1, org_key=o,
                                  registered_users=30 if s % 2 == 0 else 10))
        send_all(c.tcp_port, batch)
        full = [a["org"] for a in self.hot(c, "?limit=100").json()["accounts"]]
        self.assertEqual(full, [o.hex() for o in reversed(orgs)])

        first = self.hot(c, "?limit=2").json()
        cur = first["next"]
        raw = b64d(cur)
        self.assertGreater(len(raw), 13)

        def page(after_bytes):
            q = "?limit=100&after=" + b64e(after_bytes, cur)
            return self.hot(c, q)

        for n in range(len(raw) + 1):
            r = page(raw[:n])
            self.assertIn(r.status, (200, 400), (n, r))
        for extra in (b"\0", b"\xff" * 7, bytes(300)):
            r = page(raw + extra)
            self.assertIn(r.status, (200, 400), (len(extra), r))
        for v in range(256):
            r = page(bytes([v]) + raw[1:])
            self.assertIn(r.status, (200, 400), (v, r))
        # an organization named by an install id ('i' + up to 64 bytes), of
        # every length and any bytes, around the rank's keys
        head_len = len(raw) - (8 + 1 + 32)
        for n in range(0, 70):
            k = raw[:head_len + 8] + b"i" + bytes(rng.getrandbits(8) for _ in range(n))
            r = page(k)
            self.assertIn(r.status, (200, 400), (n, r))
            if r.status == 200:
                got = [a["org"] for a in r.json()["accounts"]]
                self.assertEqual(got, full[len(full) - len(got):], (n, got))

        # between two keys: the score of the second row, nudged up or down
        # by one in its last byte (rank keys: 8 score bytes, then the org)
        head = len(raw) - (8 + 1 + 32)
        for delta in (1, -1):
            k = bytearray(raw)
            last = head + 7
            k[last] = (k[last] + delta) & 0xFF
            r = page(bytes(k))
            self.assertEqual(r.status, 200, r)
            got = [a["org"] for a in r.json()["accounts"]]
            # The answer goes on from the first key past the cursor's: no
            # organization twice and, after it, the exact tail of the list.
            self.assertEqual(got, full[len(full) - len(got):], (delta, got))
            self.assertTrue(set(got).isdisjoint(full[:1]), (delta, got))

        # the row count at its largest: ranks go on from it, no wrap
        k = bytearray(raw)
        k[1:5] = b"\xff\xff\xff\xff"
        r = page(bytes(k))
        self.assertEqual(r.status, 200, r)
        ranks = [a["rank"] for a in r.json()["accounts"]]
        self.assertEqual([a["org"] for a in r.json()["accounts"]], full[2:])
        self.assertTrue(all(x > 0 for x in ranks), ranks)

        # the organization the cursor names is forgotten: the page goes on
        named = full[1]
        fr = api_call(c.api_port, "POST", "/v1/forget",
                      ('{"org": "%s"}' % named).encode(),
                      headers={"Content-Type": "application/json"})
        self.assertEqual(fr.status, 200, fr)
        r = page(raw)
        self.assertEqual(r.status, 200, r)
        self.assertEqual([a["org"] for a in r.json()["accounts"]], full[2:])
        self.assertEqual(self.hot(c, "?limit=100").status, 200)
        c.stop()

    # ------------------------------------------------------------------
    def test_checkpoint_ends_under_a_steady_trickle(self):
        """Attack: a sender keeps the writer from ever being idle for 20 ms
        (a ping every few ms) right after a burst that makes the
        checkpoint's work large (8,000 organizations), under
        checkpoint_interval_ms 1s.
        Would cause: slices handed out only as the pace allows, never the
        idle rate, and a checkpoint that never ends: the window (and the
        replay after a crash) grows without bound.
        Expected: checkpoints keep ending (warmline_checkpoint_seq passes
        the burst while the trickle goes on)."""
        rng = random.Random(1503)
        c = self.collector({"durability": "async", "checkpoint_interval_ms": "1s"})
        burst = [ping("b-%05d" % i, 1, org_key=rng.randbytes(32)) for i in range(8000)]
        send_all(c.tcp_port, burst)
        burst_seq = 8000  # a fresh store: the burst holds ingest sequences 1 to 8000
        done = [False]
        sent = [0]

        def trickle():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            org = rng.randbytes(32)
            while not done[0]:
                sent[0] += 1
                s.sendto(envelope_bytes([ping("trickle", sent[0], org_key=org)]),
                         (LOCALHOST, c.udp_port))
                time.sleep(0.004)
            s.close()

        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        try:
            wait_until(lambda: metric(c, "warmline_checkpoint_seq") >= burst_seq, timeout=120,
                       interval=0.2, what="a checkpoint past the burst under the trickle")
            seen = metric(c, "warmline_checkpoint_seq")
            wait_until(lambda: metric(c, "warmline_checkpoint_seq") > seen, timeout=120,
                       interval=0.2, what="another checkpoint under the trickle")
        finally:
            done[0] = True
            t.join(30)
        self.assertGreater(sent[0], 0)
        c.stop()

    # ------------------------------------------------------------------
    def test_udp_burst_ending_as_the_queue_drains(self):
        """Attack: bursts of datagrams of every short length (1 to 70), each
        ending exactly when the collector could have drained its queue, a
        malformed datagram inside each, nothing sent after the last.
        Would cause: the last datagrams of a run waiting for a next one that
        never comes (stored late or never), or the bad one taking its run.
        Expected: every good datagram is accepted, each bad one rejected
        alone."""
        c = self.collector({"durability": "async"})
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sockets.append(s)
        good = bad = 0
        base = metric(c, "warmline_pings_accepted_total")
        for n in (1, 2, 3, 7, 31, 63, 64, 65, 70):
            for i in range(n):
                if i == n // 2:
                    s.sendto(b"\x0a\xff\xff\xff\xff\x0f" + bytes(20), (LOCALHOST, c.udp_port))
                    bad += 1
                s.sendto(envelope_bytes([make_ping("udp-%d-%d" % (n, i), 1)]),
                         (LOCALHOST, c.udp_port))
                good += 1
            want = base + good
            wait_until(lambda: metric(c, "warmline_pings_accepted_total") >= want, timeout=30,
                       what="burst of %d landed" % n)
        self.assertEqual(metric(c, "warmline_pings_accepted_total"), base + good)
        wait_until(lambda: metric(c, "warmline_batches_rejected_total") >= bad, timeout=30,
                   what="every malformed datagram counted")
        c.stop()

    # ------------------------------------------------------------------
    def test_arena_shapes_and_bombs_on_one_connection(self):
        """Attack: envelopes shaped for the arena's accounting, round after
        round: (a) 100 pings each with 16 features of 60 bytes and 80
        unknown fields (protobuf-c's scanning scratch, 1 KiB past 16 fields,
        comes and goes: the chunk give-back of f828693); (b) a zlib bomb;
        (c) a ping naming one feature 64 times; (d) the costliest shape the
        walk allows, compressed: 10,000 pings (max_pings) of 114 fields,
        112 of them empty unknown ones (envelope.h: about 10 x the inflated
        size counted); (e) an honest batch.
        Would cause: a give-back check that trusts sender bytes (a crash, or
        under ASan a report), a budget that refuses what the walk accepted
        (batch_over_budget), held bytes never given back.
        Expected: (a), (c), (d) and (e) accepted whole, the bomb refused
        alone, warmline_held_bytes back to 0 after each round, the API
        answers. (RSS grows about 4.5 MB a round here with the installs and
        kept pings constant: RocksDB's memtable taking the stored pings,
        bounded by its write buffer; not the decoder's.) Run under the
        sanitizer build too (WL_BUILD_DIR): no report."""
        c = self.collector({"durability": "async"})

        def unknown_ping(i, rnd):
            raw = make_ping("arena-%d" % i, rnd + 1,
                            features=["f%02d-" % k + "x" * 56 for k in range(16)]
                            ).SerializeToString()
            for k in range(80):
                raw += encode_varint(((1000 + k) << 3) | 2) + b"\x08" + bytes(8)
            return raw

        def widest_ping(i, rnd):
            raw = make_ping("wide-%d" % i, rnd + 1, defaults=False).SerializeToString()
            for k in range(112):
                raw += encode_varint(((1000 + k) << 3) | 2) + b"\x00"
            return raw

        for rnd in range(6):  # the same installs each round: the state stays its size
            cl = self.client(c)
            ack = cl.request([unknown_ping(i, rnd) for i in range(100)], batch_id=1 + rnd * 10)
            self.assertEqual(ack.accepted, 100, fmt_ack(ack))
            try:
                cl.send_frame(envelope_bytes(payload=zlib_bomb(64 << 20),
                                             compression=pb.Envelope.ZLIB,
                                             batch_id=2 + rnd * 10))
                bomb = cl.try_read_ack(timeout=10)
                self.assertTrue(bomb is None or bomb.accepted == 0, fmt_ack(bomb))
            except OSError:
                pass
            cl = self.client(c)
            ack = cl.request([make_ping("rep", rnd + 1, features=["r"] * 64)],
                             batch_id=3 + rnd * 10)
            self.assertEqual(ack.accepted, 1, fmt_ack(ack))
            ack = cl.request([widest_ping(i, rnd) for i in range(10000)], compress=True,
                             batch_id=4 + rnd * 10)
            self.assertEqual(ack.accepted, 10000, fmt_ack(ack))
            honest = [make_ping("honest-%d" % i, rnd + 1) for i in range(200)]
            ack = cl.request(honest, batch_id=5 + rnd * 10)
            self.assertEqual(ack.accepted, 200, fmt_ack(ack))
            # what the decoders hold is given back once the batches are written
            wait_until(lambda: metric(c, "warmline_held_bytes") == 0, timeout=30,
                       what="held bytes back to 0 after round %d" % rnd)
        self.assertEqual(api_call(c.api_port, "GET", "/v1/accounts/hot").status, 200)
        c.stop()

    # ------------------------------------------------------------------
    def test_signals_survive_kill_rounds_mid_checkpoint(self):
        """Attack (or a crash at the worst moment): rounds of pings that fire
        signals in 300 organizations and keep 3,000 others dirty, with
        checkpoints every 100 ms (most of a window in slices), each round
        ended by SIGKILL as soon as its last ack is in.
        Would cause: ids that waited in memory lost (fired after
        signal_index_seq's checkpoint began, their organization's record
        not yet rewritten), or given back twice (indexed and in memory), or
        to an organization they do not belong to.
        Expected: after every restart each organization lists exactly the
        signals it listed before the kill, and the hot list is the same."""
        rng = random.Random(1506)
        c = self.collector({"durability": "async", "checkpoint_interval_ms": "100ms"},
                           start=False)
        use_only_rules(c, TOGGLE_RULES)
        c.start()
        firing = [rng.randbytes(32) for _ in range(300)]
        others = [rng.randbytes(32) for _ in range(3000)]
        seq = 0
        for rnd in range(4):
            batch = []
            for s in range(2):
                seq += 1
                for i, o in enumerate(firing):
                    batch.append(ping("f-%d" % i, seq, org_key=o,
                                      registered_users=30 if seq % 2 else 10,
                                      teams=5 if (seq + i) % 4 < 2 else 1))
            batch += [ping("x-%d" % i, rnd + 1, org_key=o) for i, o in enumerate(others)]
            send_all(c.tcp_port, batch)
            want = {o: self.reason_ids(self.account(c, o)) for o in firing[::15]}
            self.assertTrue(all(want.values()), "every firing organization has signals")
            hot = self.hot_orgs(c, 200)
            c.kill()
            c.start()
            for o, ids in want.items():
                got = self.reason_ids(self.account(c, o))
                self.assertEqual(got, ids, "round %d, %s" % (rnd, o.hex()[:12]))
            self.assertEqual(self.hot_orgs(c, 200), hot, "round %d" % rnd)
        c.stop()

    # ------------------------------------------------------------------
    def test_hot_filter_matching_nothing_over_a_large_rank(self):
        """Attack: 110,000 ranked organizations and GET /v1/accounts/hot with
        a rule filter that none of them matches (each visit loads the
        organization's signals from the index and the writer's memory).
        Would cause: a request that walks the whole rank (work growing with
        the number of organizations) while holding the state's lock, the
        writer (and TCP acks) waiting on it.
        Expected: the page stops at HOT_MAX_VISITS (100,000) entries with
        truncated true and a cursor; the cursor's page walks the rest and
        ends (next null). Measured (RelWithDebInfo, 2 shared cores): about
        0.7 s a page; TCP acks beside four such requests in a loop stay
        under 10 ms."""
        rng = random.Random(1507)
        c = self.collector({"durability": "async"}, start=False)
        use_only_rules(c, TOGGLE_RULES)
        c.start()
        send_all(c.tcp_port, [ping("i%06d" % i, 1, org_key=rng.randbytes(32),
                                   registered_users=30) for i in range(110000)], window=8)
        r = self.hot(c, "?limit=1&rule=teams_many")
        self.assertEqual(r.status, 200, r)
        j = r.json()
        self.assertEqual((j["accounts"], j["truncated"]), ([], True))
        self.assertIsNotNone(j["next"])
        r = self.hot(c, "?limit=1&rule=teams_many&after=" + j["next"])
        self.assertEqual(r.status, 200, r)
        j = r.json()
        self.assertEqual((j["accounts"], j["truncated"], j["next"]), ([], False, None))
        c.stop()

    # ------------------------------------------------------------------
    def test_forget_while_signal_ids_wait_in_memory(self):
        """Attack (on the forget promise): an organization fires signals and
        is forgotten before any checkpoint, so its signals' index entries
        exist only as ids in the writer's memory; an install named in another
        organization's fresh signals is forgotten the same way. Then SIGKILL
        and restart.
        Would cause: a forget that finds an organization's signals through
        the index leaving those the index does not name yet (the signal
        records outlive the forget, in /v1/signals, exports, and after the
        restart given back to nobody or to a revived organization); a
        forgotten install still named by a signal not yet in the index.
        Expected: /v1/signals names neither the forgotten organization nor
        the forgotten install, before and after the SIGKILL."""
        rng = random.Random(1508)
        c = self.collector({"durability": "async"}, start=False)
        use_only_rules(c, TOGGLE_RULES)
        c.start()
        gone, kept = rng.randbytes(32), rng.randbytes(32)
        batch = []
        for s in range(1, 7):
            batch.append(ping("gone-inst", s, org_key=gone, registered_users=30 if s % 2 else 10))
            batch.append(ping("kept-inst", s, org_key=kept, registered_users=30 if s % 2 else 10))
            batch.append(ping("secret-install-77", s, org_key=kept, teams=5 if s % 2 else 1))
        send_all(c.tcp_port, batch)

        def signals_text():
            r = api_call(c.api_port, "GET", "/v1/signals?limit=1000")
            self.assertEqual(r.status, 200, r)
            return r.body.decode() if isinstance(r.body, bytes) else str(r.body)

        text = signals_text()
        self.assertIn(gone.hex(), text)
        self.assertIn("secret-install-77", text)
        for body in ('{"org": "%s"}' % gone.hex(), '{"install": "secret-install-77"}'):
            r = api_call(c.api_port, "POST", "/v1/forget", body.encode(),
                         headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 200, (body, r))
        for when in ("after the forgets", "after SIGKILL and restart"):
            text = signals_text()
            self.assertNotIn(gone.hex(), text, when)
            self.assertNotIn("secret-install-77", text, when)
            self.assertIn(kept.hex(), text, when)
            r = api_call(c.api_port, "GET", "/v1/accounts/" + gone.hex())
            self.assertEqual(r.status, 404, (when, r))
            if when.startswith("after the"):
                c.kill()
                c.start()
        c.stop()

    # ------------------------------------------------------------------
    # FINDING (low, older than issue 15: 2821357 had it), fixed: a hot query's
    # work grew with each visited organization's signal count. Each of its up to
    # HOT_MAX_VISITS visits loads and decodes every signal the organization
    # ever had (to filter by rule or since, and to list its reasons), so the
    # bound is 100,000 x signals per organization. Measured: 2,000
    # organizations of 50 signals, rule filter matching none: 0.36 s (180 us
    # an organization, 3.6 us a signal); at the visit cap that is 18 s for
    # one request, and grows with the organizations' age (7-day cooldowns,
    # 15 bundled rules: up to about 780 signals a year each). Now the filter
    # reads the rule states in memory and the reasons are the newest 100.
    def test_hot_filter_cost_does_not_grow_with_signal_history(self):
        """Attack: an API client sends GET /v1/accounts/hot?rule=<a rule no
        organization fired> over organizations with a long signal history.
        Would cause: every visit loads all of an organization's signals, so
        one request's CPU is HOT_MAX_VISITS x signals per organization.
        Expected: the same query costs about the same (within 3x) whether
        each organization has 1 signal or 40 (the collector's CPU for the
        request, from /proc, each the least of three runs)."""
        rng = random.Random(1509)
        c = self.collector({"durability": "async"}, start=False)
        use_only_rules(c, TOGGLE_RULES)
        c.start()
        orgs = [rng.randbytes(32) for _ in range(2000)]

        def cpu_of_query():
            best = None
            for _ in range(3):
                t0 = process_cpu_ticks(c.pid)
                r = self.hot(c, "?limit=1&rule=teams_many")
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["accounts"], [])
                t = process_cpu_ticks(c.pid) - t0
                best = t if best is None else min(best, t)
            return max(best, 1)

        seq = 0

        def fire_round():
            nonlocal seq
            for users in (30, 10):
                seq += 1
                send_all(c.tcp_port, [ping("h%05d" % i, seq, org_key=o, registered_users=users)
                                      for i, o in enumerate(orgs)], window=8)

        fire_round()
        one = cpu_of_query()
        for _ in range(39):
            fire_round()
        acc = self.account(c, orgs[0])
        self.assertEqual(len(self.reason_ids(acc)), 40)
        forty = cpu_of_query()
        self.assertLess(forty, 3 * one + 5, "CPU ticks: %d with 1 signal each, %d with 40"
                        % (one, forty))
        # the filter still finds what fired (from memory), with its reasons
        hot = self.hot(c, "?limit=2&rule=toggle").json()
        self.assertEqual(len(hot["accounts"]), 2)
        for a in hot["accounts"]:
            self.assertEqual(len(a["reasons"]), 40)
            self.assertNotIn("reasons_omitted", a)
        self.assertEqual(self.hot(c, "?limit=2&rule=toggle&since=%d" % (2 ** 52)).json()
                         ["accounts"], [])
        c.stop()

    def test_hot_reasons_are_the_newest_hundred(self):
        """Attack: an organization with a long history listed by the hot list.
        Would cause: every signal it ever had in the answer (13 MB for 1,000
        rows of 50). Expected: its newest 100 reasons, the rest summed up in
        reasons_omitted, so that reasons and omitted points still add up to
        the score."""
        c = self.collector({"durability": "async"}, start=False)
        use_only_rules(c, TOGGLE_RULES)
        c.start()
        org = bytes(range(32))
        seq = 0
        for _ in range(105):
            for users in (30, 10):
                seq += 1
                send_all(c.tcp_port, [ping("long-1", seq, org_key=org, registered_users=users)])
        self.assertEqual(len(self.reason_ids(self.account(c, org))), 105)
        hot = self.hot(c, "?limit=1&rule=toggle").json()["accounts"]
        self.assertEqual(len(hot), 1)
        a = hot[0]
        self.assertEqual(len(a["reasons"]), 100)
        ids = [r["signal_id"] for r in a["reasons"]]
        self.assertEqual(ids, sorted(ids, reverse=True))
        self.assertEqual(ids[-1], ids[0] - 99, "the newest hundred")
        self.assertEqual(a["reasons_omitted"]["signals"], 5)
        self.assertAlmostEqual(sum(r["points"] for r in a["reasons"]) +
                               a["reasons_omitted"]["points"], a["score"],
                               delta=1e-9 * a["score"])
        c.stop()


def process_cpu_ticks(pid):
    """utime + stime of the process, in clock ticks (/proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])
