"""Issue 13's public HTTP ingest listener (off by default) reviewed as an
attacker: attacks that still WORK. Each test asserts the behaviour the
listener should have and FAILS today, so this file is not named test_*.py and
the suite does not run it; run it by hand (cd tests/integration;
WL_BUILD_DIR=../../build PYTHONPATH=../../build/gen/python
python3 -m unittest known_open_http_attacks) and move each test into
test_http_attack_review2.py with its fix (issue 13).

- A body over http_max_body_bytes sent chunked (no Content-Length) whose
  crossing chunk is larger than what was kept is answered 503 "too many
  bodies held: send the batch again", not 413: both Rudder clients resend a
  5xx (the Go client ten times), the same oversized bytes each time.
- The messageId store is held to msgid_max_bytes only by the retention
  thread's sweep, once per retention_check_ms (1 h): in between it grows at
  the writer's rate. 50,000 ids against a 1 MiB budget: the next sweep found
  2.4x the budget and evicted 28,000 (about 51 bytes an id; one address at
  its default 5 batches/s of 2,000 messages adds 1.8 GB an hour against the
  default 64 MiB, and the sweep then sorts one 8-byte time per id in memory).
- An anonymous security check of an install id, sent first in the hour,
  makes the install's own check of that hour a duplicate: the sender's counts
  stand, the real ones are dropped (24 requests a day silence the channel).
- CPU per byte: a 350-byte gzip body that inflates to 2 MiB of "{}," costs
  the listener 17 to 36 ms (rate limits count requests, not bytes): 700x to
  2,200x an ordinary batch's CPU per byte sent (three runs on a loaded box);
  eight addresses within their default buckets, 7.9 KB/s in all, took 0.61
  CPU-seconds a second and a check's p90 answer from 0.33 to 227 ms.
- One address holding unfinished bodies takes the whole bodies' budget
  (max_held_bytes / 2): every other address's batch is answered 503 until
  the deadline, and again once the holder reconnects.
"""

import gzip
import json
import os
import random
import socket
import statistics
import unittest
import uuid

from harness import LOCALHOST, IO_TIMEOUT, parse_kv
from rudder_sdk import activity_props, basic_auth, go_track, post, server_props
from test_http_ingest import HttpIngestCase, go_query, raw_request

KEY = "any-key-works"
OPEN = {"http_rate_per_address": "100000", "http_burst_per_address": "100000",
        "http_rate_total": "100000", "http_burst_total": "100000"}
HEADERS = {"Authorization": basic_auth(KEY), "Content-Type": "application/json"}


def one_message(install, **props):
    return {"type": "track", "event": "activity", "userId": install,
            "messageId": str(uuid.uuid4()), "properties": props or {"teams": 3}}


def body_of(*messages):
    return json.dumps({"batch": list(messages)}).encode()


class OpenCase(HttpIngestCase):

    def open_collector(self, options=None):
        opts = dict(OPEN)
        opts.update(options or {})
        c = self.http_collector(opts)
        c.start()
        return c

    def installs(self, c):
        self.require_dump()
        return {r["install_id"]: r for r in c.dump("installs")}


class TestChunkedBodyOverTheCap(OpenCase):

    def test_chunked_body_over_the_cap_is_413(self):
        c = self.open_collector({"http_max_body_bytes": "64KiB"})
        body = b" " * (100 << 10)
        req = (b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
               % (basic_auth(KEY).encode(), len(body), body))
        status, _, answer = raw_request(c.http_port, req)
        self.assertEqual(status, 413, "a body over the cap must not be sent again: %r"
                         % (answer,))
        c.stop()


class TestMessageIdBudget(OpenCase):

    def test_store_held_to_its_budget_between_sweeps(self):
        c = self.open_collector({"msgid_max_bytes": "1MiB"})
        for b in range(25):     # 50,000 ids of ~51 bytes: 2.4x the budget
            msgs = [dict(one_message("floodfloodfloodfloodflood%d" % (b % 3)),
                         messageId=uuid.uuid4().hex) for _ in range(2000)]
            status, _, answer = post(c.http_port, body_of(*msgs), HEADERS)
            self.assertEqual(status, 200, answer)
        c.stop()
        # the retention thread sweeps once as it starts: what it finds is what the
        # store held while the collector ran
        c.start()
        swept = parse_kv(c.wait_for(r"\bevent=msgids_swept\b.*").group(0))
        c.stop()
        self.assertEqual(int(swept["evicted"]), 0,
                         "the store held %d ids over its budget between sweeps"
                         % int(swept["evicted"]))
        self.assertLessEqual(int(swept["kept_bytes"]), 1 << 20)


class TestCheckPreemption(OpenCase):

    def check(self, c, install, **over):
        req = ("GET /security?%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
               % go_query(install, **over)).encode()
        self.assertEqual(raw_request(c.http_port, req)[0], 200)

    def test_a_forged_check_does_not_silence_the_real_one(self):
        c = self.open_collector()
        victim = "abcdefghijkmnopqrstuwxyz12"
        self.check(c, victim, uc="1", auc="1", tc="1")      # the attacker, first in the hour
        c.wait_stats(lambda s: s["pings_accepted"] == 1, what="the forged check stored")
        self.check(c, victim, uc="50", auc="20", tc="3")    # the install itself
        c.wait_stats(lambda s: s["pings_accepted"] + s["pings_duplicate"] == 2,
                     what="the real check handled")
        c.stop()
        p = self.installs(c)[victim]["last_ping"]
        self.assertEqual((p["registered_users"], p["active_users_daily"]), (50, 20),
                         "the install's own check of the hour was dropped as a duplicate")


class TestCpuPerByteSent(OpenCase):

    def cpu(self, c):
        with open("/proc/%d/stat" % c.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def cost_per_kib(self, c, bodies, headers, rounds=3):
        """Median over rounds of the collector's CPU seconds per KiB sent."""
        out = []
        for _ in range(rounds):
            before, sent = self.cpu(c), 0
            for body in bodies:
                status, _, answer = post(c.http_port, body, headers)
                self.assertIn(status, (200, 413), answer)   # refusing it is a fix too
                sent += len(body)
            c.wait_stats(lambda s: s["http_batch_events_queued"] == s["pings_accepted"] +
                         s["pings_duplicate"], what="the writer caught up")
            out.append((self.cpu(c) - before) / (sent / 1024))
        return statistics.median(out)

    def test_a_gzip_body_costs_no_more_per_byte_than_a_batch(self):
        c = self.open_collector()
        rng = random.Random(13)
        ordinary = []
        for _ in range(60):     # the daily events of 20 installs (~12 KB, plain JSON)
            msgs = []
            for _ in range(10):
                install = "%026d" % rng.randrange(10 ** 25)
                msgs += [go_track("activity", activity_props(), user_id=install),
                         go_track("server", server_props(), user_id=install)]
            ordinary.append(body_of(*msgs))
        per_kib_ordinary = self.cost_per_kib(c, ordinary, HEADERS)
        # 350 bytes on the wire, 2 MiB of JSON within every bound once inflated
        crafted = gzip.compress(b'{"batch":[],"x":[' + b",".join([b"{}"] * 99000) + b"]}", 9)
        per_kib_crafted = self.cost_per_kib(c, [crafted] * 40,
                                            dict(HEADERS, **{"Content-Encoding": "gzip"}))
        c.stop()
        ratio = per_kib_crafted / per_kib_ordinary
        self.assertLess(ratio, 20, "CPU per KiB sent: %.0f us crafted vs %.0f us ordinary "
                        "(%.0fx)" % (per_kib_crafted * 1e6, per_kib_ordinary * 1e6, ratio))


class TestBodiesBudgetPerAddress(OpenCase):

    def test_one_address_cannot_take_every_body(self):
        c = self.open_collector({"max_held_bytes": "4MiB", "http_request_deadline_ms": "15s"})
        held = []
        for _ in range(3):     # 3 MiB of unfinished bodies from 127.0.0.1 (2 MiB share)
            s = socket.create_connection((LOCALHOST, c.http_port), timeout=IO_TIMEOUT)
            self._sockets.append(s)
            s.sendall(("POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
                       "Content-Length: %d\r\n\r\n" % (basic_auth(KEY), 1 << 20))
                      .encode())
            s.sendall(b" " * ((1 << 20) - 10))
            held.append(s)
        # the holder itself is refused once its bodies are in (with a share per address too)
        for _ in range(200):
            status, _, _ = post(c.http_port, body_of(one_message("holderholderholderholder26")),
                                HEADERS)
            if status == 503:
                break
        self.assertEqual(status, 503, "the held bodies never filled the budget")
        # another address's ordinary batch
        body = body_of(one_message("otheraddressotheraddress26"))
        req = (b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\n"
               b"Connection: close\r\n\r\n%s" % (basic_auth(KEY).encode(), len(body), body))
        with socket.create_connection((LOCALHOST, c.http_port), timeout=IO_TIMEOUT,
                                      source_address=("127.0.0.2", 0)) as s:
            s.sendall(req)
            answer = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
        c.stop()
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"),
                        "127.0.0.1's unfinished bodies refuse 127.0.0.2's batch: %r"
                        % answer[:120])


if __name__ == "__main__":
    unittest.main()
