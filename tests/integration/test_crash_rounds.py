"""Crash consistency: 20 rounds of SIGKILL under load.

Several TCP clients stream pings with acks (a window of frames in flight
each, enough to keep the writer backlogged, so that state written lazily
must be replayed after some kills); the collector is killed with SIGKILL at a random moment (seeded; the
seed is printed, WL_CRASH_SEED replays one), restarted on the same data
directory, and every client resends, in order, each frame it holds no OK ack
for. Twice during the rounds and once at the end a `warmline export --cursor`
runs. At the end, from what users can see (`warmline dump`, the signal file,
the export manifests), never from internals:

- every ping is stored exactly once (every one was acked by the end, so the
  stored set is exactly the sent set), with the fields that were sent;
- each organization's totals, installs, first/last seen, versions, editions,
  features and signal count, and each of its daily rows, equal a
  recomputation from the stored raw pings (install_ttl is a year: nothing
  expires, so the totals are the sums of each install's latest counts);
- the signals are exactly those a recomputation of the rules finds (the
  load only grows, so each rule fires once per organization, at the first
  ping that makes it true): ids 1..N, none lost, none twice, each with the
  ping that caused it; the signal file holds each once, in order;
- the export manifests list every stored ping exactly once.
"""

import collections
import gzip
import json
import math
import os
import random
import subprocess
import sys
import threading
import time
import unittest

from harness import (CLI_BIN, CollectorCase, as_int, decode_varint, dump, frame, make_ping, pb,
                     use_only_rules, wait_until)

ROUNDS = 20
N_CLIENTS = 4
INSTALLS_PER_CLIENT = 6
PINGS_PER_FRAME = 25
WINDOW = 16                      # frames in flight per connection
DAY_MS = 86400000
SCORE_EPOCH_MS = 1577836800000   # WL_SCORE_EPOCH_MS (collector/rules.h)
HALF_LIFE_MS = 14 * DAY_MS       # score_half_life_ms of the bundled config
EXPORT_AFTER_ROUNDS = (7, 14)

COUNTS = ("registered_users", "active_users_daily", "active_users_monthly", "bot_accounts",
          "guest_accounts", "teams", "public_channels", "private_channels",
          "direct_message_channels", "posts_previous_day", "incoming_webhooks",
          "outgoing_webhooks", "slash_commands", "system_admins", "posts")

# Conditions the test evaluates itself: (name, weight, predicate(totals, installs, features)).
RULES = [
    ("mau_1k", 1, lambda t, n, f: t["active_users_monthly"] >= 1000),
    ("mau_4k", 2, lambda t, n, f: t["active_users_monthly"] >= 4000),
    ("posts_2m", 3, lambda t, n, f: t["posts"] >= 2000000),
    ("two_installs", 4, lambda t, n, f: n >= 2),
    ("sso", 5, lambda t, n, f: "saml_configured" in f),
]
RULES_INI = """
[rule "mau_1k"]
when = active_users_monthly >= 1000
weight = 1
[rule "mau_4k"]
when = active_users_monthly >= 4000
weight = 2
[rule "posts_2m"]
when = posts >= 2000000
weight = 3
[rule "two_installs"]
when = installs >= 2
weight = 4
[rule "sso"]
when = has_feature(saml_configured)
weight = 5
"""


class Install:
    """One install's deterministic pings: every count grows with seq, so
    every rule's condition, once true, stays true."""

    def __init__(self, rng, name, org_key):
        self.id = name
        self.org_key = org_key           # bytes, or b"" (the install is its organization)
        self.rate = rng.randint(1, 12)
        self.sso_at = rng.choice([None, rng.randint(5, 120)])
        self.version = rng.choice(["9.10.1", "9.11.2", "10.0.0"])
        self.edition = rng.choice(["team", "enterprise"])
        self.seq = 0

    def fields(self, seq):
        r = self.rate
        cap = 9000000  # under max_count, however long a run goes; still never decreasing
        return dict(registered_users=min(10 * r * seq, cap), active_users_daily=r * seq // 3 + 1,
                    active_users_monthly=r * seq, teams=1 + seq // 50,
                    public_channels=seq % 7 + seq, posts=min(100 * r * seq, cap),
                    system_admins=1 + r % 3,
                    features=(["saml_configured"] if self.sso_at and seq >= self.sso_at
                              else []) + ["webhooks"],
                    version=self.version, edition=self.edition)

    def next_ping(self):
        self.seq += 1
        return make_ping(self.id, self.seq, org_key=self.org_key, **self.fields(self.seq))


class Frame:
    __slots__ = ("batch_id", "pings", "data", "acked")

    def __init__(self, batch_id, pings):
        self.batch_id = batch_id
        self.pings = pings
        self.data = frame(pb.Envelope(version=1, batch_id=batch_id,
                                      payload=pb.PingBatch(pings=pings).SerializeToString()))
        self.acked = False


class Shared:
    """What the main thread tells the clients: the current collector's port
    (a new generation after each restart), and when to finish."""

    def __init__(self):
        self.cond = threading.Condition()
        self.generation = 0
        self.port = None
        self.finishing = False
        self.stopped = False
        self.acked_frames = 0
        self.errors = []

    def publish(self, port):
        with self.cond:
            self.generation += 1
            self.port = port
            self.cond.notify_all()

    def wait_generation(self, after):
        with self.cond:
            while self.generation <= after and not self.stopped:
                self.cond.wait(0.5)
            return self.generation, self.port


class Client(threading.Thread):
    """One connection at a time, WINDOW frames in flight; a frame is done
    only on an OK ack. Anything else (RETRY_LATER, the connection dying)
    puts every frame without an OK back, in order, to be sent again."""

    def __init__(self, n, shared, installs, rng):
        super().__init__(name="crash-client-%d" % n, daemon=True)
        self.n = n
        self.shared = shared
        self.installs = installs
        self.rng = rng
        self.next_batch = n * 10**9 + 1
        self.frames = []                          # every frame made, in order
        self.to_send = collections.deque()           # to (re)send, in order
        self.resends = 0
        self.retry_later = 0
        self.connections = 0

    def make_frame(self):
        pings = []
        for _ in range(PINGS_PER_FRAME):
            pings.append(self.rng.choice(self.installs).next_ping())
        f = Frame(self.next_batch, pings)
        self.next_batch += 1
        self.frames.append(f)
        return f

    def run(self):
        try:
            self._run()
        except BaseException as e:  # reported by the test, not lost in a thread
            self.shared.errors.append("%s: %r" % (self.name, e))

    def _run(self):
        import socket
        gen = 0
        while True:
            gen, port = self.shared.wait_generation(gen)
            if self.shared.stopped:
                return
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            except OSError:
                continue  # killed again already: wait for the next one
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connections += 1
            inflight = collections.deque()
            buf = bytearray()
            done = False
            try:
                while True:
                    with self.shared.cond:
                        finishing = self.shared.finishing
                    while len(inflight) < WINDOW:
                        if self.to_send:
                            f = self.to_send.popleft()
                            self.resends += 1
                        elif not finishing:
                            f = self.make_frame()
                        else:
                            break
                        inflight.append(f)  # before the send, which may fail
                        sock.sendall(f.data)
                    if not inflight:
                        done = True
                        break
                    ack = self._read_ack(sock, buf)
                    f = inflight.popleft()
                    if ack.batch_id != f.batch_id:
                        raise AssertionError("ack for batch %d, expected %d"
                                             % (ack.batch_id, f.batch_id))
                    if ack.status == pb.Ack.OK:
                        if ack.accepted + ack.duplicates != len(f.pings) or ack.rejected:
                            raise AssertionError("OK ack with counts %d+%d+%d for %d pings"
                                                 % (ack.accepted, ack.duplicates, ack.rejected,
                                                    len(f.pings)))
                        f.acked = True
                        with self.shared.cond:
                            self.shared.acked_frames += 1
                            self.shared.cond.notify_all()
                    elif ack.status == pb.Ack.RETRY_LATER:
                        # Later frames of this connection get RETRY_LATER too
                        # until it has every ack: collect them, resend all.
                        self.retry_later += 1
                        redo = [f]
                        while inflight:
                            g = inflight.popleft()
                            a = self._read_ack(sock, buf)
                            if a.status == pb.Ack.OK:
                                raise AssertionError("OK after a RETRY_LATER on one connection")
                            redo.append(g)
                        self.to_send.extendleft(reversed(redo))
                    else:
                        raise AssertionError("unexpected ack status %s for a valid frame: %r"
                                             % (pb.Ack.Status.Name(ack.status), ack.message))
            except (OSError, EOFError):
                # The collector died: every frame without an OK goes again.
                self.to_send.extendleft(reversed(list(inflight)))
            finally:
                sock.close()
            if done:
                return

    @staticmethod
    def _read_ack(sock, buf):
        while True:
            got = decode_varint(buf)
            n, pos = got if got is not None else (None, None)
            if got is not None and len(buf) - pos >= n:
                ack = pb.Ack()
                ack.ParseFromString(bytes(buf[pos:pos + n]))
                del buf[:pos + n]
                return ack
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            buf += chunk


def org_of(install):
    return install.org_key.hex() if install.org_key else "install:" + install.id


def run_export(data_dir, out, config, table="pings"):
    r = subprocess.run([CLI_BIN, "export", "--data-dir", data_dir, "--config", config,
                        "--table", table, "--format", "ndjson", "--out", out,
                        "--cursor", "crash"], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("export %s: exit %d\nstdout: %s\nstderr: %s"
                             % (table, r.returncode, r.stdout, r.stderr))
    return r


def exported_rows(out, table):
    """(manifests in order, every row of every listed file, in order)."""
    ms = []
    for name in os.listdir(out):
        if name.startswith("manifest-%s-crash-" % table) and name.endswith(".json"):
            with open(os.path.join(out, name)) as f:
                ms.append(json.load(f))
    ms.sort(key=lambda m: m["first"])
    rows = []
    for m in ms:
        for fi in m["files"]:
            with open(os.path.join(out, fi["name"]), "rb") as f:
                text = gzip.decompress(f.read()).decode("utf-8")
            got = [json.loads(l) for l in text.split("\n") if l]
            if len(got) != fi["rows"]:
                raise AssertionError("%s: %d rows, manifest says %d"
                                     % (fi["name"], len(got), fi["rows"]))
            rows.extend(got)
    return ms, rows


class CrashRounds(CollectorCase):
    test_timeout = 240  # ~25 s here; several times that under the sanitizers

    def test_twenty_sigkills_lose_nothing_acked(self):
        self.require_dump()
        seed = int(os.environ.get("WL_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))
        sys.stderr.write("\ntest_crash_rounds: seed %d (WL_CRASH_SEED=%d replays it)\n"
                         % (seed, seed))
        rng = random.Random(seed)

        c = self.collector({"install_ttl_ms": "365d", "durability": "sync"}, start=False,
                           name="crash")
        sig_path = os.path.join(c.root, "signals.ndjson")
        c.config.setdefault("sinks", {})["signal_file"] = sig_path
        use_only_rules(c, RULES_INI)
        out = os.path.join(c.root, "export")

        # Organizations of 1 to 4 installs spread over the clients (one
        # install, one client: its seqs stay in order); some installs have
        # no org key and are organizations of their own.
        all_installs = []
        per_client = [[] for _ in range(N_CLIENTS)]
        for i in range(N_CLIENTS * INSTALLS_PER_CLIENT):
            all_installs.append(i)
        rng.shuffle(all_installs)
        made = []
        k = 0
        while k < len(all_installs):
            size = rng.randint(1, 4)
            members = all_installs[k:k + size]
            k += size
            key = rng.randbytes(32) if rng.random() < 0.85 or size > 1 else b""
            for idx in members:
                inst = Install(rng, "crash-%02d" % idx, key)
                per_client[idx % N_CLIENTS].append(inst)
                made.append(inst)
        by_id = {i.id: i for i in made}

        shared = Shared()
        clients = [Client(n, shared, per_client[n], random.Random(rng.random()))
                   for n in range(N_CLIENTS)]
        for cl in clients:
            cl.start()

        def stop_clients():
            with shared.cond:
                shared.stopped = True
                shared.cond.notify_all()
        self.addCleanup(stop_clients)

        kills = []
        for rnd in range(1, ROUNDS + 1):
            c.start()
            shared.publish(c.tcp_port)
            with shared.cond:
                base = shared.acked_frames
            want = base + rng.randint(5, 60)
            with shared.cond:
                ok = shared.cond.wait_for(lambda: shared.acked_frames >= want or shared.errors,
                                          timeout=20)
            self.assertTrue(ok, "round %d: no progress to %d acked frames" % (rnd, want))
            self.assertEqual(shared.errors, [])
            if rnd in EXPORT_AFTER_ROUNDS:
                run_export(c.data_dir, out, c.ini_path)   # beside live ingest
            time.sleep(rng.uniform(0, 0.03))  # the random moment, not a wait for anything
            c.kill()
            with shared.cond:
                kills.append(shared.acked_frames - base)

        # The last restart: clients resend what is left and stop.
        c.start()
        with shared.cond:
            shared.finishing = True
        shared.publish(c.tcp_port)
        for cl in clients:
            cl.join(timeout=60)
            self.assertFalse(cl.is_alive(), "%s did not finish" % cl.name)
        self.assertEqual(shared.errors, [])
        sent = [f for cl in clients for f in cl.frames]
        self.assertTrue(all(f.acked for f in sent))
        sys.stderr.write("test_crash_rounds: %d kills, %d frames (%d pings) acked, %d resent, "
                         "acked per round %s\n"
                         % (len(kills), len(sent), sum(len(f.pings) for f in sent),
                            sum(cl.resends for cl in clients), kills))

        # Pings and signals are final once every frame is acked; the signal
        # file catches up in the background.
        pings = dump("pings", c.data_dir)
        signals = dump("signals", c.data_dir)
        ids = [as_int(s["id"]) for s in signals]

        def file_ids():
            if not os.path.exists(sig_path):
                return []
            with open(sig_path, "rb") as f:
                return [as_int(json.loads(l)["id"]) for l in f.read().split(b"\n")[:-1]]
        wait_until(lambda: len(file_ids()) >= len(ids), timeout=15,
                   what="%d signals in the signal file" % len(ids))
        c.stop()
        self.assertEqual(dump("signals", c.data_dir), signals)

        # ---- every ping exactly once ----
        keys = collections.Counter((p["install_id"], as_int(p["seq"])) for p in pings)
        dups = [k for k, n in keys.items() if n > 1]
        self.assertEqual(dups, [], "pings stored more than once")
        want_keys = {(p.install_id, p.seq) for f in sent for p in f.pings}
        self.assertEqual(set(keys) - want_keys, set(), "stored pings nobody sent")
        self.assertEqual(want_keys - set(keys), set(), "acked pings lost")
        seqs = [as_int(p["ingest_seq"]) for p in pings]
        self.assertEqual(len(set(seqs)), len(seqs), "an ingest_seq twice")
        pings.sort(key=lambda p: as_int(p["ingest_seq"]))
        for p in pings:
            inst = by_id[p["install_id"]]
            f = inst.fields(as_int(p["seq"]))
            got = {k: (as_int(p[k]) if k in COUNTS else p[k]) for k in f}
            self.assertEqual(got, {k: v for k, v in f.items()}, p)
            self.assertEqual(p["org"], org_of(inst), p)

        # ---- recompute organizations, days and signals from the raw pings ----
        orgs = {}
        expected_signals = []
        for p in pings:
            oid = p["org"]
            o = orgs.setdefault(oid, dict(latest={}, first={}, last={}, day=0, daily={},
                                          fired=set(), versions=set(), editions=set()))
            at = as_int(p["received_at"])
            iid = p["install_id"]
            o["latest"][iid] = p
            o["first"].setdefault(iid, at)
            o["first"][iid] = min(o["first"][iid], at)
            o["last"][iid] = max(o["last"].get(iid, at), at)
            o["versions"].add(p["version"])
            o["editions"].add(p["edition"])
            o["day"] = max(o["day"], at // DAY_MS)
            totals = {k: sum(as_int(q[k]) for q in o["latest"].values()) for k in COUNTS}
            features = set().union(*(q["features"] for q in o["latest"].values()))
            n = len(o["latest"])
            o["totals"], o["features"] = totals, features
            o["daily"][o["day"]] = (totals, n)
            for name, weight, pred in RULES:
                if name not in o["fired"] and pred(totals, n, features):
                    o["fired"].add(name)
                    expected_signals.append(dict(org=oid, rule=name, weight=weight,
                                                 ingest_seq=as_int(p["ingest_seq"]),
                                                 fired_at=at, installs=sorted(o["latest"])))

        dumped_orgs = {o["org"]: o for o in dump("orgs", c.data_dir)}
        self.assertEqual(set(dumped_orgs), set(orgs))
        score = collections.defaultdict(float)
        n_signals = collections.Counter()
        for s in signals:
            score[s["org"]] += as_int(s["weight"]) * 2 ** (
                (as_int(s["fired_at"]) - SCORE_EPOCH_MS) / HALF_LIFE_MS)
            n_signals[s["org"]] += 1
        for oid, o in orgs.items():
            d = dumped_orgs[oid]
            with self.subTest(org=oid):
                self.assertEqual({k: as_int(v) for k, v in d["totals"].items()}, o["totals"])
                self.assertEqual(sorted(d["install_ids"]), sorted(o["latest"]))
                self.assertEqual(as_int(d["installs_counting"]), len(o["latest"]))
                self.assertEqual(as_int(d["first_seen"]), min(o["first"].values()))
                self.assertEqual(as_int(d["last_seen"]), max(o["last"].values()))
                self.assertEqual(set(d["versions"]), o["versions"])
                self.assertEqual(set(d["editions"]), o["editions"])
                self.assertEqual(set(d["features"]), o["features"])
                self.assertEqual(as_int(d["signals"]), len(o["fired"]))
                if o["fired"]:
                    self.assertAlmostEqual(d["score_log2"], math.log2(score[oid]), places=6)

        daily = collections.defaultdict(dict)
        for r in dump("daily", c.data_dir):
            daily[r["org"]][as_int(r["day"])] = r
        self.assertEqual(set(daily), set(orgs))
        for oid, o in orgs.items():
            self.assertEqual(set(daily[oid]), set(o["daily"]), oid)
            for day, (totals, n) in o["daily"].items():
                r = daily[oid][day]
                self.assertEqual({k: as_int(v) for k, v in r["totals"].items()}, totals,
                                 (oid, day))
                self.assertEqual((as_int(r["installs"]), as_int(r["installs_total"])), (n, n),
                                 (oid, day))

        # ---- signals: none lost, none twice ----
        self.assertEqual(ids, list(range(1, len(ids) + 1)), "signal ids not 1..N")
        self.assertGreater(len(ids), 0, "the load fired no rule")
        got = sorted((s["org"], s["rule"], as_int(s["ingest_seq"])) for s in signals)
        want = sorted((e["org"], e["rule"], e["ingest_seq"]) for e in expected_signals)
        self.assertEqual(got, want)
        cause = {e["ingest_seq"]: e for e in expected_signals}
        for s in signals:
            e = cause[as_int(s["ingest_seq"])]
            self.assertEqual(as_int(s["fired_at"]), e["fired_at"], s)
            self.assertEqual(sorted(s["install_ids"]), e["installs"], s)
        # The file sink: every signal once, in id order.
        self.assertEqual(file_ids(), ids)

        # ---- export: every stored ping in exactly one manifest ----
        run_export(c.data_dir, out, c.ini_path)
        ms, rows = exported_rows(out, "pings")
        self.assertGreaterEqual(len(ms), 2, "the exports during the rounds wrote manifests")
        self.assertEqual(ms[0]["first"], 1)
        for a, b in zip(ms, ms[1:]):
            self.assertEqual(b["first"], a["last"] + 1, "manifest ranges leave a gap")
        got = collections.Counter(as_int(r["ingest_seq"]) for r in rows)
        self.assertEqual([s for s, n in got.items() if n > 1], [], "a row in two manifests")
        self.assertEqual(set(got), set(seqs))
        self.assertEqual(sorted((r["install_id"], as_int(r["seq"])) for r in rows),
                         sorted(keys))
        sys.stderr.write("test_crash_rounds: %d pings, %d organizations, %d signals, "
                         "%d export manifests\n" % (len(pings), len(orgs), len(ids), len(ms)))


if __name__ == "__main__":
    unittest.main()
