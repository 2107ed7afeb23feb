"""Adversarial senders (issue 12, cases 2, 3, 4 and 6) against the real collector:
no input may cost more than its size.

Each test sends an attack and the same number of ordinary pings (fresh
installs in fresh organizations, a few common features, counts that fire no
rule) and compares the CPU the writer thread (wl-writer) spent on each,
measured from /proc/PID/task/TID/schedstat around a stream whose every ack was
read (an ack means the writer applied and committed the envelope). Ratios,
not wall clocks, so the tests hold on a loaded machine and under the
sanitizers. The bound is 4x here (the bench step, bench/adversarial, aims at
2x at full size); the code before issue 12 (2268924) measured 9x to 40x.

- 2a: organization ids that collide fully under uthash's default hash
  (computed by inverting lookup2's mix, adversary.py), then ordinary
  organizations after the attack, compared with a collector never attacked
  (before issue 12 the table stopped growing for good: uthash's noexpand).
- 2b: printable install ids whose hashes share a narrow range of low bits
  (one long probe run in the install table), found by a C search.
- 2c: feature strings whose hashes share their low 10 bits (one bucket of the
  interned-string table).
- 3: one organization holding tens of thousands of distinct features, then
  ordinary pings into it; and a rule's feature still tallied (its signal
  fires) once the organization is past max_org_features.
- 4: one install moving between a 50,000-install organization and another.
- 6: one install sending new feature names and a new version every ping:
  warmline_interned_bytes stays what its latest ping references, drops when
  the install is forgotten; RSS growth per ping against ordinary pings
  (normal build only: AddressSanitizer keeps freed memory in quarantine).

WL_ADV_VERBOSE=1 prints every measured figure."""

import json
import os
import random
import sys
import unittest

from harness import CollectorCase, api_call, sanitized_build, wait_until
from adversary import (ThreadMeter, colliding_org_keys, metrics, ordinary_pings, org_id, ping,
                       random_id, rss_kib, send_all, strings_in_range, uthash_values)

RATIO_MAX = 4.0        # attack / ordinary writer CPU per ping
AFTER_MAX = 2.0        # ordinary pings after an attack / before it
VERBOSE = os.environ.get("WL_ADV_VERBOSE") == "1"

# Quiet, fast ingest: acks wait for the write, not for an fsync.
OPTIONS = {"durability": "async"}


def say(what, **figures):
    if VERBOSE:
        sys.stderr.write("[adversarial] %s %s\n" % (what, " ".join(
            "%s=%s" % (k, ("%.2f" % v) if isinstance(v, float) else v)
            for k, v in figures.items())))


class Adversarial(CollectorCase):
    test_timeout = 600  # several times the normal build's time under the sanitizers

    def start(self, **options):
        opts = dict(OPTIONS)
        opts.update(options)
        c = self.collector(opts)
        return c, ThreadMeter(c.pid)

    def writer_cost(self, c, meter, pings, **kw):
        """Writer CPU ns spent on pings, sent and every ack read."""
        ns, _ = meter.measure(send_all, c.tcp_port, pings, **kw)
        return ns

    def ratio(self, what, attack_ns, attack_n, base_ns, base_n, bound=RATIO_MAX):
        """A check of the attack's writer CPU per ping against the ordinary
        pings': call it to assert (so that every figure is measured, and
        printed with WL_ADV_VERBOSE=1, before the first assertion)."""
        per_attack, per_base = attack_ns / attack_n, base_ns / base_n
        ratio = per_attack / per_base
        say(what, attack_us_per_ping=per_attack / 1e3, ordinary_us_per_ping=per_base / 1e3,
            ratio=ratio)
        return lambda: self.assertLessEqual(
            ratio, bound, "%s: the writer spent %.1f us per attacking ping, %.1f us per "
            "ordinary ping (%.1fx, bound %.1fx)"
            % (what, per_attack / 1e3, per_base / 1e3, ratio, bound))

    def assertRatio(self, *args, **kw):
        self.ratio(*args, **kw)()

    # -- 2: hash tables keyed by sender bytes ---------------------------------

    def test_2a_colliding_org_keys(self):
        n = 40000
        rng = random.Random(0x2a)
        keys = colliding_org_keys(n, seed=rng.getrandbits(32))
        # The keys do collide under the hash the old table used, and are distinct.
        self.assertEqual(len(set(uthash_values([org_id(k) for k in keys[:2000]]))), 1)
        self.assertEqual(len(set(keys)), n)
        attack = [ping(random_id(rng, "a-"), 1, org_key=k) for k in keys]

        # A collector never attacked: the cost of n ordinary pings.
        c0, m0 = self.start()
        base = self.writer_cost(c0, m0, ordinary_pings(n, rng))
        c0.stop()

        c, meter = self.start()
        cost = self.writer_cost(c, meter, attack)
        after = self.writer_cost(c, meter, ordinary_pings(n, rng))
        checks = [self.ratio("2a colliding org keys", cost, n, base, n),
                  # Ordinary organizations created after the attack cost what
                  # they cost on a collector never attacked: no table stopped
                  # growing.
                  self.ratio("2a ordinary orgs after the attack", after, n, base, n,
                             bound=AFTER_MAX)]
        for check in checks:
            check()
        stats = c.stop()
        self.assertEqual(stats["pings_accepted"], 2 * n)

    def test_2b_colliding_install_ids(self):
        n = 40000
        rng = random.Random(0x2b)
        # Hashes within 1,024 consecutive values of their low 18 bits: whatever
        # the install table's size up to 2^18 slots, one run of probes.
        ids = strings_in_range(0x3FFFF, 0, 1024, n, 40, "inst-", seed=rng.getrandbits(32))
        keys = [rng.randbytes(32) for _ in ids]
        attack = [ping(i, 1, org_key=k) for i, k in zip(ids, keys)]
        c, meter = self.start()
        base = self.writer_cost(c, meter, ordinary_pings(n, rng))
        cost = self.writer_cost(c, meter, attack)
        # A second ping of some attacking installs: lookups, not inserts.
        again = [ping(i, 2, org_key=k) for i, k in zip(ids[::8], keys[::8])]
        cost2 = self.writer_cost(c, meter, again)
        checks = [self.ratio("2b colliding install ids", cost, n, base, n),
                  self.ratio("2b colliding install ids, second pings", cost2, len(again),
                             base, n)]
        for check in checks:
            check()
        self.assertEqual(c.stop()["pings_accepted"], 2 * n + len(again))

    def test_2c_colliding_feature_strings(self):
        per_ping, n_pings = 64, 320
        n = per_ping * n_pings
        rng = random.Random(0x2c)
        # Equal low 10 bits: one bucket of the interned-string table as long
        # as it has at most 1,024 buckets (uthash stops doubling it after two
        # doublings that spread nothing).
        names = strings_in_range(0x3FF, 0x155, 0x156, n, 24, "feat-", seed=rng.getrandbits(32))
        attack = [ping(random_id(rng, "c-"), 1, org_key=rng.randbytes(32),
                       features=names[i * per_ping:(i + 1) * per_ping]) for i in range(n_pings)]
        # The ordinary pings of this case carry as many new names, at random.
        plain = ["feat-%019x" % rng.getrandbits(76) for _ in range(n)]
        ordinary = [ping(random_id(rng), 1, org_key=rng.randbytes(32),
                         features=plain[i * per_ping:(i + 1) * per_ping]) for i in range(n_pings)]
        c0, m0 = self.start()
        base = self.writer_cost(c0, m0, ordinary, max_pings=100)
        c0.stop()
        c, meter = self.start()
        cost = self.writer_cost(c, meter, attack, max_pings=100)
        self.assertRatio("2c colliding feature strings", cost, n_pings, base, n_pings)
        self.assertEqual(c.stop()["pings_accepted"], n_pings)

    # -- 3: per-organization feature tallies ------------------------------------

    def test_3_feature_tallies(self):
        rng = random.Random(3)
        target = rng.randbytes(32)
        # 1,024 installs of one organization with 64 distinct features each:
        # 65,536 features, past any per-organization cap.
        setup = [ping("t-%04d" % i, 1, org_key=target,
                      features=["f%05d-%s" % (i * 64 + j, "x" * 8) for j in range(64)])
                 for i in range(1024)]
        c, meter = self.start()
        send_all(c.tcp_port, setup, max_pings=128)
        n = 1000
        base = self.writer_cost(c, meter, ordinary_pings(n, rng))
        # 100 installs join it, then ping again: ordinary pings, each one's
        # features leaving and entering the organization's tallies.
        into = [ping("t-new-%03d" % (i % 100), 1 + i // 100, org_key=target)
                for i in range(n)]
        cost = self.writer_cost(c, meter, into)
        self.assertRatio("3 ordinary pings into a crowded organization", cost, n, base, n)
        m = metrics(c.api_port)
        say("3 counters", untallied=m.get("warmline_features_untallied_total"))
        self.assertGreater(m.get("warmline_features_untallied_total", 0), 0,
                           "features past max_org_features are counted")

        # A rule tests saml_configured (the bundled sso_interest): a real ping
        # with it into the crowded organization still fires its signal.
        send_all(c.tcp_port, [ping("t-real", 1, org_key=target,
                                   features=["saml_configured"])])
        r = api_call(c.api_port, "GET", "/v1/signals?limit=1000")
        self.assertEqual(r.status, 200, r)
        fired = [s for s in r.json()["signals"] if s.get("rule") == "sso_interest"]
        self.assertEqual([s.get("org") for s in fired], [target.hex()],
                         "the crowded organization's has_feature(saml_configured) signal")
        c.stop()

    # -- 4: an install moving between organizations ------------------------------

    def test_4_install_moving(self):
        rng = random.Random(4)
        big, other = rng.randbytes(32), rng.randbytes(32)
        n_big, n = 50000, 2000
        c, meter = self.start()
        setup = [ping("b-%05d" % i, 1, org_key=big) for i in range(n_big)]
        setup.append(ping("other-stays", 1, org_key=other))  # other never empties
        send_all(c.tcp_port, setup)
        base = self.writer_cost(c, meter, ordinary_pings(n, rng))
        moves = [ping("mover", s, org_key=big if s % 2 else other) for s in range(1, n + 1)]
        cost = self.writer_cost(c, meter, moves)
        self.assertRatio("4 install moving in and out of a 50,000-install org", cost, n, base, n)
        c.stop()

    # -- 6: interned strings and feature sets ------------------------------------

    def test_6_interned_memory(self):
        rng = random.Random(6)
        n = 3000
        c, meter = self.start()
        asan = sanitized_build()
        send_all(c.tcp_port, ordinary_pings(200, rng))  # warm: tables and buffers exist
        g0 = metrics(c.api_port).get("warmline_interned_bytes")

        rss0 = rss_kib(c.pid)
        send_all(c.tcp_port, ordinary_pings(n, rng))
        rss_ordinary = rss_kib(c.pid) - rss0

        def churn(seqs):
            # Short names: what the old intern table kept per name (its
            # handle, the bytes, a tally entry) was about ten times the name.
            return [ping("churner", s, version="9.%d.%d" % (s, rng.getrandbits(20)),
                         features=["%06x%02x" % (s * 64 + j, rng.getrandbits(8))
                                   for j in range(64)])
                    for s in seqs]

        rss1 = rss_kib(c.pid)
        send_all(c.tcp_port, churn(range(1, 501)), max_pings=100)
        g1 = metrics(c.api_port).get("warmline_interned_bytes")
        send_all(c.tcp_port, churn(range(501, n + 1)), max_pings=100)
        rss_attack = rss_kib(c.pid) - rss1
        g2 = metrics(c.api_port).get("warmline_interned_bytes")
        say("6 interned bytes", before=g0, after_500=g1, after_all=g2)
        say("6 RSS growth", ordinary_bytes_per_ping=rss_ordinary * 1024.0 / n,
            attack_bytes_per_ping=rss_attack * 1024.0 / n, asan=asan)

        if not asan:
            # A churning ping carries about 700 bytes of names; RSS may grow by
            # what the write buffers keep of them, less than an ordinary ping's
            # new install and organization, not by everything ever interned
            # (about 7 KB per ping before issue 12).
            self.assertLessEqual(rss_attack, 1.5 * rss_ordinary,
                                 "RSS grew %d KiB over %d churning pings, %d KiB over as many "
                                 "ordinary ones" % (rss_attack, n, rss_ordinary))

        self.assertIsNotNone(g2, "/metrics has no warmline_interned_bytes gauge")
        # What one ping references (64 names of 8 bytes and a version), with
        # room for the bookkeeping of each: not growing with the pings.
        self.assertLessEqual(g2 - g0, 32 * 1024, "interned bytes grew %d over %d pings"
                             % (g2 - g0, n))
        self.assertLessEqual(g2, g1 + 8 * 1024, "interned bytes grew from %d to %d" % (g1, g2))

        r = api_call(c.api_port, "POST", "/v1/forget", body=json.dumps(
            {"install": "churner"}).encode(), headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)

        # The writer publishes the gauge after its next group: polled.
        def released():
            g = metrics(c.api_port).get("warmline_interned_bytes")
            return [g] if g <= g0 + 1024 else None
        try:
            g3 = wait_until(released, timeout=10, what="interned bytes released")[0]
        except AssertionError:
            g3 = metrics(c.api_port).get("warmline_interned_bytes")  # the checks below say
        say("6 interned bytes after forget", after_forget=g3)
        self.assertLess(g3, g2, "forgetting the install released nothing")
        self.assertLessEqual(g3, g0 + 1024, "interned bytes %d after the forget, %d before the "
                             "churn" % (g3, g0))
        c.stop()


if __name__ == "__main__":
    unittest.main()
