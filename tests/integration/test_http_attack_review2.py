"""Issue 13's public HTTP listener reviewed as an attacker, second round: POST
/v1/batch (write keys empty: any sender), the edge pings' organization and the
security check beside TCP senders, against the real collector. Attacks the
listener withstands today, each a test that fails if its defence goes:

- gzip: two concatenated members (a whole JSON text split across them), bytes
  after the trailer and a stacked "gzip, gzip" encoding are refused and store
  nothing; a 64 MiB bomb costs the inflated cap, then 413.
- JSON: nesting of exactly http_max_json_depth passes and one more is a 400;
  exactly http_max_json_values values pass and one more is a 400 (objects of
  many keys included: a key is not a value, its value is); \\u0000 in a string
  or a key, 1e400 and 2^64 refuse the body (jansson), 2^63-1 in a count drops
  the message, -0 is 0; a duplicate "userId" is the last one (one install,
  never both); a messageId over 128 bytes, empty or not ASCII drops its message.
- messageIds: the same id under two installs is two events (a sender cannot
  make another install's event a duplicate with an id of its own), a resend
  with other contents under the same id changes nothing.
- Nothing raw of a bad message reaches a log line or the data directory: a
  userId over the limit, a messageId, a refused domain, a customer id and a
  license id of a dropped message, a SKU that is not a SKU, unknown event and
  type names, a wrong write key, an unknown encoding.
- Organization: a check from an address of the network table does not move an
  install whose organization came from a domain (a wire ping's org key); an
  X-Forwarded-For from a peer that is not a trusted proxy is not believed for
  the network table; a license event on an install reporting over TCP lasts
  until its next TCP ping; an anonymous check does not touch a TCP install's
  seq (its later TCP pings land and its last ping is theirs: this was
  known_open_http_attacks.TestInstallTakeover).
- Bodies held: three 1 MiB bodies held unfinished past max_held_bytes / 2 make
  a batch 503 (not an allocation), the deadline frees them, and batches land
  again; the collector's memory does not grow with them. A POST body dribbled
  (Content-Length or chunked) is closed unanswered at the whole-request
  deadline.
- Batches in flight: six senders of 500-message batches against
  http_max_inflight 2, then SIGTERM in the middle of it: every batch answered
  200 is in the data directory after the stop, every batch answered 503 left
  nothing, and the collector exits 0.
Found by this review and fixed since (each test failed before its fix):
- A chunked body over http_max_body_bytes was answered 503 (which both Rudder
  clients resend, the Go client ten times): now 413.
- A forged security check sent first in the hour made the install's own check
  of that hour a duplicate: now only the same check is (a digest of its fields).
- A 350-byte gzip body inflating to 2 MiB cost the listener 700x to 2,200x an
  ordinary batch's CPU per byte sent: a body now inflates to at most 64 times
  its size (and http_max_inflated_bytes), and the rate buckets count pings.
- One address holding unfinished bodies took the whole bodies' budget: an
  address may hold 4 bodies (at most a quarter of the budget).
- The messageId store was held to msgid_max_bytes only by the hourly sweep:
  the retention thread now looks every second and sweeps early.
"""

import gzip
import json
import os
import random
import secrets
import shutil
import socket
import statistics
import tempfile
import threading
import time
import unittest
import urllib.request
import uuid

from harness import (LOCALHOST, IO_TIMEOUT, make_ping, org_key_hex, parse_kv,
                     sanitized_build, status_kib)
from rudder_sdk import (activity_props, basic_auth, configs_props, go_batch, go_track,
                        license_props, post, server_props)
from test_http_ingest import HttpIngestCase, go_query, raw_request
from test_http_attack_review import dribble
from test_rudder_batch import files_holding

KEY = "any-key-works"                 # rudder_write_keys empty: any key is accepted
VICTIM = "abcdefghijkmnopqrstuwxyz12"  # an install reporting over TCP
DOMAIN_KEY = bytes(range(32))          # its org key (a domain's, hashed by its server)
OPEN = {"http_rate_per_address": "100000", "http_burst_per_address": "100000",
        "http_rate_total": "100000", "http_burst_total": "100000"}
HEADERS = {"Authorization": basic_auth(KEY), "Content-Type": "application/json"}


def one_message(install="k7x3pq9s1bfj8ctw5yhzr4ud6e", **props):
    return {"type": "track", "event": "activity", "userId": install,
            "messageId": str(uuid.uuid4()), "properties": props or {"teams": 3}}


def body_of(*messages):
    return json.dumps({"batch": list(messages)}).encode()


class BatchCase(HttpIngestCase):

    def open_collector(self, options=None):
        opts = dict(OPEN)
        opts.update(options or {})
        c = self.http_collector(opts)
        c.start()
        return c

    def raw(self, c, body, headers=None):
        """(status, parsed answer or raw bytes) of one POST /v1/batch."""
        h = {"Authorization": basic_auth(KEY), "Content-Type": "application/json"}
        h.update(headers or {})
        status, _, data = post(c.http_port, body, h)
        try:
            return status, json.loads(data)
        except ValueError:
            return status, data

    def good(self, c, install="goodgoodgoodgoodgoodgood26"):
        """A batch of one event lands."""
        status, doc = self.raw(c, body_of(one_message(install)))
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["accepted"], 1, doc)

    def check(self, c, install, xff=None, **over):
        h = "X-Forwarded-For: %s\r\n" % xff if xff else ""
        req = ("GET /security?%s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n"
               % (go_query(install, **over), h)).encode()
        self.assertEqual(raw_request(c.http_port, req)[0], 200)

    def installs(self, c):
        self.require_dump()
        return {r["install_id"]: r for r in c.dump("installs")}


class TestGzipTricks(BatchCase):

    def test_concatenated_members_trailing_bytes_and_stacked_encodings_refused(self):
        c = self.open_collector({"http_max_body_bytes": "64KiB",
                                 "http_max_inflated_bytes": "256KiB"})
        whole = body_of(one_message("splitsplitsplitsplitsplit1"))
        half = len(whole) // 2
        gz = {"Content-Encoding": "gzip"}
        cases = [
            # each member alone is not JSON; together they are one good batch
            ("two members", gzip.compress(whole[:half]) + gzip.compress(whole[half:]), gz, 400),
            ("a member then junk", gzip.compress(whole) + b"\0\0", gz, 400),
            ("a member then an empty one", gzip.compress(whole) + gzip.compress(b""), gz, 400),
            ("gzip, gzip", gzip.compress(gzip.compress(whole)),
             {"Content-Encoding": "gzip, gzip"}, 415),
            ("gzip twice, labelled once", gzip.compress(gzip.compress(whole)), gz, 400),
            ("a 64 MiB bomb", gzip.compress(b" " * (64 << 20), 9), gz, 413),
        ]
        for what, body, headers, want in cases:
            with self.subTest(what):
                self.assertEqual(self.raw(c, body, headers)[0], want)
            self.good(c)
        st = c.stop()
        self.assertEqual(st["pings_accepted"], len(cases), "only the good batches landed")
        self.assertNotIn("splitsplitsplitsplitsplit1", self.installs(c))


class TestJsonTricks(BatchCase):

    def test_bounds_exact_and_one_past(self):
        c = self.open_collector({"http_max_json_depth": 32, "http_max_json_values": 1000})

        def nested(depth):
            # batch object (1) + its array (2) + depth - 2 objects, innermost a number
            return (b'{"batch":[' + b'{"a":' * (depth - 2) + b"1" + b"}" * (depth - 2) + b"]}")
        self.assertEqual(self.raw(c, nested(32))[0], 200)
        status, doc = self.raw(c, nested(33))
        self.assertEqual((status, doc["error"]["message"]),
                         (400, "JSON nested deeper than http_max_json_depth"))

        def many_keys(n):
            # the root, the array, the message, its properties, 3 strings, then n numbers
            props = ",".join('"k%d":1' % i for i in range(n))
            return ('{"batch":[{"type":"track","event":"activity","userId":"manykeys",'
                    '"properties":{%s}}]}' % props).encode()
        self.assertEqual(self.raw(c, many_keys(1000 - 7)), (200, {
            "accepted": 1, "duplicates": 0, "rejected": 0, "dropped": 0, "ignored": 0}))
        status, doc = self.raw(c, many_keys(1000 - 6))
        self.assertEqual((status, doc["error"]["message"]),
                         (400, "more JSON values than http_max_json_values"))
        self.good(c)
        c.stop()

    def test_strings_numbers_and_duplicate_keys(self):
        c = self.open_collector()
        prefix = b'{"batch":[{"type":"track","event":"activity",'
        refused = [
            ("NUL in a userId", prefix + b'"userId":"nulnul\\u0000x","properties":{}}]}'),
            ("NUL in a key", prefix + b'"userId":"nulkey","properties":{"te\\u0000ams":1}}]}'),
            ("1e400", prefix + b'"userId":"bignum","properties":{"teams":1e400}}]}'),
            ("2^64", prefix + b'"userId":"bignum","properties":{"posts":18446744073709551616}}]}'),
            ("a BOM", b"\xef\xbb\xbf" + body_of(one_message())),
            ("two texts", body_of(one_message()) + b" " + body_of(one_message())),
        ]
        for what, body in refused:
            with self.subTest(what):
                status, doc = self.raw(c, body)
                self.assertEqual((status, doc["error"]["message"]), (400, "body is not JSON"))
                self.good(c)
        dropped = [
            ("2^63-1 posts", one_message("overmaxover", posts=2 ** 63 - 1)),
            ("a real count", one_message("realcount", teams=1.0)),
            ("-0.0", one_message("negzeroreal", teams=-0.0)),
            ("messageId of 129", dict(one_message("longmsgid"), messageId="m" * 129)),
            ("empty messageId", dict(one_message("emptymsgid"), messageId="")),
            ("messageId not ASCII", dict(one_message("utfmsgid"), messageId="\u00e9t\u00e9")),
            ("userId a number", dict(one_message(), userId=7)),
        ]
        for what, msg in dropped:
            with self.subTest(what):
                status, doc = self.raw(c, body_of(msg))
                self.assertEqual((status, doc["dropped"], doc["accepted"]), (200, 1, 0))
        # -0 is the integer 0; a duplicate key is the last one, never both installs
        self.assertEqual(self.raw(c, prefix + b'"userId":"negzero","properties":{"teams":-0}}]}')
                         [1]["accepted"], 1)
        self.assertEqual(self.raw(c, prefix + b'"userId":"dupfirst","userId":"duplast",'
                                  b'"properties":{"teams":4}}]}')[1]["accepted"], 1)
        self.assertEqual(self.raw(c, b'{"batch":[],"batch":[' + body_of(one_message("dupbatch"))
                                  [len(b'{"batch": ['):-2] + b"]}")[1]["accepted"], 1)
        st = c.stop()
        self.assertEqual(st["pings_accepted"], len(refused) + 3)
        got = self.installs(c)
        self.assertEqual(got["negzero"]["last_ping"].get("teams", 0), 0)
        self.assertEqual(got["duplast"]["last_ping"]["teams"], 4)
        self.assertIn("dupbatch", got)
        for gone in ("dupfirst", "overmaxover", "realcount", "negzeroreal", "longmsgid",
                     "emptymsgid", "utfmsgid", "bignum", "nulkey"):
            self.assertNotIn(gone, got)

    def test_message_ids_are_per_install_and_a_changed_resend_changes_nothing(self):
        c = self.open_collector()
        mid = str(uuid.uuid4())
        first = dict(one_message("midinstallmidinstallmida26", teams=5), messageId=mid)
        other = dict(one_message("midinstallmidinstallmidb26", teams=6), messageId=mid)
        changed = dict(first, properties={"teams": 999})
        self.assertEqual(self.raw(c, body_of(first))[1]["accepted"], 1)
        self.assertEqual(self.raw(c, body_of(other))[1]["accepted"], 1)
        self.assertEqual(self.raw(c, body_of(changed))[1]["duplicates"], 1)
        self.assertEqual(self.raw(c, body_of(other))[1]["duplicates"], 1)
        c.stop()
        got = self.installs(c)
        self.assertEqual(got["midinstallmidinstallmida26"]["last_ping"]["teams"], 5)
        self.assertEqual(got["midinstallmidinstallmidb26"]["last_ping"]["teams"], 6)


class TestNothingRawOfBadMessages(BatchCase):

    def test_bad_messages_leave_no_trace(self):
        c = self.open_collector({"rudder_write_keys": KEY})
        m = "zqmark"
        msgs = [
            dict(one_message(m + "u" * 70)),
            dict(one_message("trace1"), messageId=m + "m" * 130),
            {"type": "track", "event": "configs", "userId": "trace2",
             "properties": {"config_wrangler": {"allowed_email_domain": [m + "@bad.example",
                                                                         m + "ok.example"]}}},
            {"type": "track", "event": "license", "userId": "trace3",
             "properties": {"customer_id": m + "cust", "license_id": m + "lic",
                            "edition": m + "E20!"}},
            {"type": "track", "event": "license", "userId": "trace4",
             "properties": {"customer_id": 5, "license_id": m + "lic4"}},
            {"type": "track", "event": m + "event", "userId": "trace5", "properties": {}},
            {"type": m + "type", "event": "x", "userId": "trace6"},
            {"type": "track", "event": "configs", "userId": "trace7",
             "properties": {"config_wrangler": {"allowed_email_domain": m + "str.example"}}},
            {"type": "track", "event": "configs", "userId": "trace8",
             "properties": {"config_wrangler": {"allowed_email_domain": [m + "x.example", 5]}}},
            {"type": "track", "event": "server", "userId": "trace9",
             "properties": {"version": m + "\u00e9", "operating_system": m + "os"}},
        ]
        self.assertEqual(self.raw(c, body_of(*msgs)), (200, {
            "accepted": 2, "duplicates": 0, "rejected": 0, "dropped": 6, "ignored": 2}))
        self.assertEqual(self.raw(c, (m + "notjson").encode())[0], 400)
        self.assertEqual(post(c.http_port, body_of(*msgs),
                              {"Authorization": basic_auth(m + "key")})[0], 401)
        self.assertEqual(self.raw(c, b"{}", {"Content-Encoding": m})[0], 415)
        c.stop()
        self.assertEqual([l for l in c.lines if m in l], [])
        self.assertEqual(files_holding(c.data_dir, [m])[m], [])
        got = self.installs(c)
        self.assertEqual(sorted(got), ["trace2", "trace3"])
        self.assertEqual(got["trace2"]["org"], org_key_hex(c.org_salt, m + "ok.example"))
        self.assertEqual(got["trace3"]["last_ping"].get("features"), ["licensed"],
                         "a SKU that is not one is left out")


class TestOrganizationFromTheEdge(BatchCase):
    """An install reporting over TCP with a domain's org key, a network table
    mapping 127.0.0.0/8 and 10.0.0.0/8, and anonymous HTTP senders."""

    def collector_with_networks(self, options=None):
        tmp = tempfile.mkdtemp(prefix="wl-r2-")
        self.addCleanup(shutil.rmtree, tmp, True)
        admin = secrets.token_hex(20)
        with open(os.path.join(tmp, "admin.token"), "w") as f:
            f.write(admin + "\n")
        opts = {"admin_token_file": os.path.join(tmp, "admin.token")}
        opts.update(options or {})
        c = self.open_collector(opts)
        req = urllib.request.Request("http://%s:%d/v1/networks" % (LOCALHOST, c.api_port),
                                     data=b"127.0.0.0/8,corp-a.example\n"
                                          b"10.0.0.0/8,corp-b.example\n", method="PUT")
        req.add_header("Authorization", "Bearer " + admin)
        req.add_header("Content-Type", "text/csv")
        with urllib.request.urlopen(req, timeout=IO_TIMEOUT) as r:
            self.assertEqual(r.status, 200)
        return c

    def test_network_and_forwarded_addresses_move_nothing_they_should_not(self):
        c = self.collector_with_networks()
        cl = self.client(c)
        self.assertAck(cl.request([make_ping(VICTIM, 1, org_key=DOMAIN_KEY)]), "OK", accepted=1)
        self.check(c, VICTIM, uc="999")                 # from 127.0.0.1: corp-a's network
        self.check(c, "newinstallnewinstallnew111", xff="10.1.1.1")   # nobody trusts 127.0.0.1
        c.wait_stats(lambda s: s["pings_accepted"] == 3, what="both checks stored")
        c.stop()
        got = self.installs(c)
        self.assertEqual(got[VICTIM]["org"], DOMAIN_KEY.hex(),
                         "a network's key does not move an install whose org is a domain's")
        self.assertEqual(got["newinstallnewinstallnew111"]["org"],
                         org_key_hex(c.org_salt, "corp-a.example"),
                         "the peer's network, not the one its X-Forwarded-For names")

    def test_edge_pings_do_not_stick_on_a_tcp_install(self):
        c = self.open_collector()
        cl = self.client(c)
        self.assertAck(cl.request([make_ping(VICTIM, 1, org_key=DOMAIN_KEY)]), "OK", accepted=1)
        # anyone who knows (or guesses) the id: a check, then a license event
        self.check(c, VICTIM, b="1.0.0.1", uc="999999", be="false")
        c.wait_stats(lambda s: s["http_security_queued"] == 1, what="the check queued")
        self.assertEqual(self.raw(c, body_of(dict(one_message(VICTIM), event="license",
                                                  properties=license_props())))[1]["accepted"],
                         1)
        # the real server's next pings still land, and its last ping is theirs
        self.assertAck(cl.request([make_ping(VICTIM, 2, org_key=DOMAIN_KEY)]), "OK",
                       accepted=1, duplicates=0)
        self.assertAck(cl.request([make_ping(VICTIM, 3, org_key=DOMAIN_KEY)]), "OK",
                       accepted=1, duplicates=0)
        c.stop()
        rec = self.installs(c)[VICTIM]
        self.assertEqual(int(rec["last_ping"]["seq"]), 3, "the TCP sender's last ping")
        self.assertEqual(rec["last_ping"]["registered_users"], 42)
        self.assertNotIn("licensed", rec["last_ping"].get("features", []))
        self.assertEqual(rec["org"], DOMAIN_KEY.hex())


class TestBodiesHeld(BatchCase):

    def test_unfinished_bodies_past_the_budget_refused_then_freed(self):
        c = self.open_collector({"max_held_bytes": "4MiB", "http_max_connections_per_address": 0,
                                 "http_request_deadline_ms": "2s", "http_timeout_ms": "10s"})
        self.good(c)
        rss0 = status_kib(c.pid)
        held = []
        for _ in range(3):     # 3 MiB of unfinished bodies against a 2 MiB share
            s = socket.create_connection((LOCALHOST, c.http_port), timeout=IO_TIMEOUT)
            self._sockets.append(s)
            s.sendall(("POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
                       "Content-Length: %d\r\n\r\n" % (basic_auth(KEY), 1 << 20)).encode())
            s.sendall(b" " * ((1 << 20) - 10))
            held.append(s)
        c.wait_stats(lambda s: s["http_requests"] >= 4, what="the held requests seen")
        status = None
        # until the third body's bytes are in (no counter tells: on a busy
        # machine that took more than 50 requests' time)
        deadline = time.monotonic() + IO_TIMEOUT
        while time.monotonic() < deadline:
            status, doc = self.raw(c, body_of(one_message()))
            if status == 503:
                break
        self.assertEqual(status, 503, "a batch past the bodies' budget is not taken")
        self.assertEqual(doc["error"]["code"], "unavailable")
        c.wait_stats(lambda s: s["http_closed_deadline"] == 3, what="the deadline freed them")
        for s in held:
            s.settimeout(IO_TIMEOUT)
            try:
                got = s.recv(4096)
            except ConnectionResetError:
                got = b""
            self.assertEqual(got, b"", "a held body is closed unanswered")
        self.good(c, "afterafterafterafterafter2")
        if not sanitized_build():
            self.assertLess(status_kib(c.pid) - rss0, 16 * 1024)
        st = c.stop()
        self.assertGreaterEqual(st["http_batch_unavailable"], 1)

    def test_dribbled_post_bodies_closed_at_the_deadline(self):
        c = self.open_collector({"http_request_deadline_ms": "1s", "http_timeout_ms": "10s"})
        head = ("POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
                % basic_auth(KEY)).encode()
        for what, extra, first in (("content-length", b"Content-Length: 100000\r\n\r\n", b""),
                                   ("chunked", b"Transfer-Encoding: chunked\r\n\r\n",
                                    b"100000\r\n")):
            with self.subTest(what):
                s = socket.create_connection((LOCALHOST, c.http_port), timeout=IO_TIMEOUT)
                self._sockets.append(s)
                s.sendall(head + extra + first)
                sent, got = dribble(s, b" ")
                self.assertEqual(got, b"", "%s: closed unanswered" % what)
                self.assertLess(sent, 100, "%s: closed only after %d bytes" % (what, sent))
                s.close()
                self.good(c)
        c.wait_stats(lambda st: st["http_closed_deadline"] == 2, what="both deadlines counted")
        c.stop()


class TestBatchesInFlight(BatchCase):

    def test_answered_200_is_durable_503_left_nothing_through_a_stop(self):
        c = self.open_collector({"http_max_inflight": 2, "http_max_connections_per_address": 0})
        answers, lock, stop = [], threading.Lock(), threading.Event()

        def sender(k):
            for b in range(40):
                if stop.is_set():
                    return
                ids = ["s%02db%02dm%03d" % (k, b, i) for i in range(500)]
                try:
                    status, doc = self.raw(c, body_of(*[one_message(i) for i in ids]))
                except OSError:
                    status, doc = None, None   # the stop closed it: unknown, not checked
                with lock:
                    answers.append((status, doc, ids))
        threads = [threading.Thread(target=sender, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        c.wait_stats(lambda s: s["http_batch_stored"] >= 10, what="ten batches stored")
        c.terminate()
        stop.set()
        for t in threads:
            t.join(IO_TIMEOUT)
        self.assertEqual(c.wait_exit(), 0)
        got = self.installs(c)
        ok = [a for a in answers if a[0] == 200]
        refused = [a for a in answers if a[0] == 503]
        self.assertGreaterEqual(len(ok), 10)
        self.assertGreater(len(refused), 0, "six senders past http_max_inflight 2")
        for status, doc, ids in ok:
            self.assertEqual(doc["accepted"], 500, doc)
            self.assertEqual([i for i in ids if i not in got], [], "a 200 batch lost")
        for status, doc, ids in refused:
            self.assertEqual([i for i in ids if i in got], [], "a 503 batch stored")
        answered = {i for a in answers if a[0] in (200, None) for i in a[2]}
        self.assertEqual([i for i in got if i not in answered], [],
                         "only the batches answered 200 (or cut by the stop)")


# Found by the second review and fixed (they were known_open_http_attacks.py).

class TestChunkedBodyOverTheCap(BatchCase):

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


class TestCheckPreemption(BatchCase):

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


class TestCpuPerByteSent(BatchCase):

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


class TestBodiesBudgetPerAddress(BatchCase):

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
        # the holder itself is refused once its bodies are in (with a share per address
        # too): polled by asking, as long as the server takes to read them
        deadline = time.monotonic() + 2 * IO_TIMEOUT
        while time.monotonic() < deadline:
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


class TestMessageIdBudget(BatchCase):

    def test_store_swept_early_when_ids_arrive_faster_than_the_schedule(self):
        # retention_check_ms 1h: only the early sweep can keep the store near
        # its budget; the per-ping buckets let 10,000 ids a second in
        c = self.open_collector({"msgid_max_bytes": "1MiB", "http_rate_total": "10000",
                                 "http_burst_total": "10000"})
        sent = 0
        while sent < 40000:     # ~2 MiB of ids: twice the budget
            msgs = [dict(one_message("floodfloodfloodfloodflood%d" % (sent % 3)),
                         messageId=uuid.uuid4().hex) for _ in range(2000)]
            status, headers, answer = post(c.http_port, body_of(*msgs), HEADERS)
            if status == 429:   # the buckets count ids: wait as told
                time.sleep(float(headers.get("retry-after", "1")))
                continue
            self.assertEqual(status, 200, answer)
            sent += 2000
        # swept while running, long before the hourly schedule
        swept = parse_kv(c.wait_for(r"\bevent=msgids_swept\b.*evicted=[1-9].*",
                                    timeout=10).group(0))
        self.assertLessEqual(int(swept["kept_bytes"]), 1 << 20)
        c.stop()

if __name__ == "__main__":
    unittest.main()
