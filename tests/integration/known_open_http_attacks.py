"""Issue 13's public HTTP ingest listener (off by default) reviewed as an
attacker: attacks that still WORK. Each test asserts the behaviour the
listener should have and FAILS today, so this file is not named test_*.py and
the suite does not run it; run it by hand (cd tests/integration;
PYTHONPATH=../../build/gen/python python3 -m unittest known_open_http_attacks)
and move each test into test_http_attack_review.py with its fix (issue 13).

- One anonymous GET /security naming an install that reports over TCP takes
  its sequence to the hour (about 499,000): every later TCP ping of that
  install is a "duplicate" and dropped, and its last ping becomes the
  sender's (version, counts, no org key).
- Checks from many addresses, each within its bucket (5 a second, a burst of
  50), have no cap in all: a flood from 127.1.0.0/16 (loopback limited like
  any address) keeps up to http_max_inflight (4096) one-ping jobs ahead of
  every TCP sender's batch in the writer's queue, and the TCP sender's ack
  waits grow many times over.
- A query of 300 parameters (1.3 KB, under http_max_query_bytes and
  http_max_header_bytes) runs libmicrohttpd's connection pool dry while it
  splits the arguments: its 431 is logged but never sent, and the connection
  hangs unanswered, holding its slot until the deadline or the inactivity
  timeout (1,000 headers, 5 KB, are answered 431 at once).
"""

import socket
import statistics
import threading
import time
import unittest

from harness import LOCALHOST, IO_TIMEOUT, make_ping
from test_http_ingest import HttpIngestCase, go_check, go_query, raw_request

VICTIM = "abcdefghijkmnopqrstuwxyz12"   # an install reporting over TCP
ORG_KEY = bytes(range(32))


class TestInstallTakeover(HttpIngestCase):

    def test_anonymous_check_does_not_silence_a_tcp_install(self):
        c = self.http_collector()
        c.start()
        cl = self.client(c)
        self.assertAck(cl.request([make_ping(VICTIM, 1, org_key=ORG_KEY)]), "OK", accepted=1)
        # anyone who knows (or guesses) the id sends one check
        status, _, _ = go_check(c.http_port, go_query(VICTIM, b="1.0.0.1", uc="999999",
                                                      be="false"))
        self.assertEqual(status, 200)
        c.wait_stats(lambda s: s["http_security_queued"] == 1, what="the check queued")
        # the real server's next pings must still land
        self.assertAck(cl.request([make_ping(VICTIM, 2, org_key=ORG_KEY)]), "OK", accepted=1,
                       duplicates=0)
        self.assertAck(cl.request([make_ping(VICTIM, 3, org_key=ORG_KEY)]), "OK", accepted=1,
                       duplicates=0)
        c.stop()
        self.require_dump()
        rec = {r["install_id"]: r for r in c.dump("installs")}[VICTIM]
        self.assertEqual(int(rec["last_ping"]["seq"]), 3, "the TCP sender's last ping")
        self.assertEqual(rec["last_ping"]["registered_users"], 42)


class TestDistributedFlood(HttpIngestCase):

    def tcp_waits(self, c, n, first_seq):
        """Ack waits (seconds) of n one-ping batches sent one after another."""
        cl = self.client(c)
        waits = []
        for i in range(n):
            t = time.perf_counter()
            self.assertAck(cl.request([make_ping("tcp%05d" % (i % 50), first_seq + i)]), "OK")
            waits.append(time.perf_counter() - t)
        cl.close()
        return waits

    def test_checks_from_many_addresses_do_not_stall_tcp_senders(self):
        c = self.http_collector({"limit_loopback": "on", "http_rate_per_address": 5,
                                 "http_burst_per_address": 50})
        c.start()
        base = self.tcp_waits(c, 300, 1)
        stop, sent = threading.Event(), [0] * 4

        def flood(k):
            n = 0
            while not stop.is_set():
                # a fresh address for each 45 checks (pipelined on one
                # connection): every one within its bucket
                src = "127.1.%d.%d" % (k * 60 + (n // 11250) % 60, (n // 45) % 250 + 1)
                s = socket.create_connection((LOCALHOST, c.http_port), timeout=IO_TIMEOUT,
                                             source_address=(src, 0))
                s.sendall(b"".join(("GET /security?%s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (
                    go_query("f%d-%d" % (k, n + i)), "Connection: close\r\n" if i == 44 else ""))
                    .encode() for i in range(45)))
                while s.recv(65536):
                    pass
                s.close()
                n += 45
            sent[k] = n

        threads = [threading.Thread(target=flood, args=(k,), daemon=True) for k in range(4)]
        for t in threads:
            t.start()
        c.wait_stats(lambda s: s["http_security_queued"] >= 2000, what="the flood under way")
        during = self.tcp_waits(c, 300, 1000)
        stop.set()
        for t in threads:
            t.join()
        st = c.stop()
        self.assertEqual(st["http_rate_limited"], 0, "every address stayed within its bucket")
        b50, d50 = statistics.median(base), statistics.median(during)
        b90, d90 = sorted(base)[270], sorted(during)[270]
        b99, d99 = sorted(base)[296], sorted(during)[296]
        print("checks sent %d queued %d; TCP ack wait median %.2f -> %.2f ms, p90 %.2f -> "
              "%.2f ms, p99 %.2f -> %.2f ms" % (sum(sent), st["http_security_queued"],
                                                b50 * 1e3, d50 * 1e3, b90 * 1e3, d90 * 1e3,
                                                b99 * 1e3, d99 * 1e3))
        # a public port with anonymous senders must not multiply the TCP
        # senders' waits (1 ms: a floor under a quiet machine's median)
        self.assertLessEqual(d50, 3 * max(b50, 0.001))


class TestManyParameters(HttpIngestCase):

    def test_many_parameters_answered_not_hung(self):
        c = self.http_collector({"http_timeout_ms": "60s", "http_request_deadline_ms": "2s"})
        c.start()
        for n in (40, 300, 450):
            with self.subTest(params=n):
                req = ("GET /security?%s%s HTTP/1.1\r\nHost: x\r\n\r\n"
                       % (go_query(), "&a=1" * n)).encode()
                status, _, body = raw_request(c.http_port, req)
                self.assertIn(status, (400, 414, 431), "no answer to %d parameters" % n)
        st = c.stop()
        self.assertEqual(st["http_closed_deadline"], 0, "closed by the deadline, unanswered")


if __name__ == "__main__":
    unittest.main()
