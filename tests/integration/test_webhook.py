"""The webhook sink end to end: the real collector posts its signals to a real
HTTP receiver on loopback (http.server in a thread).

- Delivery in id order, at least once, through 503s and a stalled request
  (webhook_timeout_ms): every request carries Idempotency-Key = the JSON "id",
  a retry repeats the same key and the same body, and no signal is attempted
  before the previous one was answered 2xx.
- A clean restart re-sends nothing; new signals continue with the next ids.
- SIGTERM while a request is stalled: the collector still exits promptly,
  and the unacknowledged signal is posted again after the restart.
- kill -9 in the middle of delivery: nothing is lost, and at most the one
  signal in flight is delivered twice.
- webhook_format = slack: {"text": "..."} naming the rule's description; logs
  never show the URL's path (where webhook tokens live).
- A dead webhook (a port nobody listens on) never slows ingest, is logged as
  sink_failed, and everything arrives once a receiver listens on that port;
  nor does a webhook that accepts and never answers.

Every wait is bounded (wait_until, the harness's log waits, the watchdog)."""

import hashlib
import json
import re
import socket
import sys
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import (LOCALHOST, CollectorCase, as_int, dump_any, make_ping, parse_kv,
                     use_only_rules, wait_until)

TIMEOUT_S = 1.0                 # webhook_timeout_ms of every collector here
MAX_BACKOFF_S = 0.2             # webhook_max_backoff_ms
TICK_S = 1.0                    # the sinks thread re-reads the log this often (sinks.c)

RULE = """
[rule "big"]
when = active_users_monthly >= 100
weight = 2
description = One hundred monthly active users (webhook test)
"""

SLACK_DESCRIPTION = "Org passed 100 monthly users & <needs> a call"
SLACK_RULE = """
[rule "slackrule"]
when = active_users_monthly >= 100
weight = 3
description = %s
""" % SLACK_DESCRIPTION


def org_key(name):
    return hashlib.sha256(("webhook " + name).encode()).digest()


# --------------------------------------------------------------------------
# The receiver.

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, as a real endpoint would offer

    def log_message(self, *args):
        pass

    def _any(self):
        self.server.receiver._serve(self)

    do_POST = do_PUT = do_GET = _any


class Receiver:
    """An HTTP server on 127.0.0.1 recording every request, in arrival order,
    as a dict: n (1-based), method, path, headers ({lower-case name: [values]}),
    body (bytes), t (monotonic arrival), status (answered), outcome ("ok": a
    2xx was sent, "failed": another status, "stalled": held past the
    collector's timeout, "incomplete": the body was cut).

    fail: request numbers answered 503 (and the first fail_first requests);
    stall: request numbers held stall_s seconds (then answered 200, to a
    client that has given up); hold_s: every other answer is delayed this
    long (so that a crash can land while a request is in flight); status:
    the answer otherwise (switch it at any time).

    sock: a socket already bound (not listening): the server listens on it
    only when start() is called, so that until then its port refuses."""

    def __init__(self, fail=(), fail_first=0, stall=(), stall_s=TIMEOUT_S + 0.6, hold_s=0.0,
                 sock=None):
        self.fail = set(fail) | set(range(1, fail_first + 1))
        self.stall = set(stall)
        self.stall_s = stall_s
        self.hold_s = hold_s
        self.status = 200
        self.cond = threading.Condition()
        self.requests = []
        self._closing = threading.Event()
        self._thread = None
        if sock is None:
            self.server = ThreadingHTTPServer((LOCALHOST, 0), _Handler)
        else:
            self.server = ThreadingHTTPServer(sock.getsockname(), _Handler,
                                              bind_and_activate=False)
            self.server.socket.close()
            self.server.socket = sock
            self.server.server_address = sock.getsockname()
            self.server.server_name, self.server.server_port = sock.getsockname()[:2]
        self.server.daemon_threads = True
        self.server.receiver = self
        self.port = self.server.server_address[1]
        self._activated = sock is None

    def url(self, path="/hook"):
        return "http://%s:%d%s" % (LOCALHOST, self.port, path)

    def start(self):
        if not self._activated:
            self.server.server_activate()  # listen() on the reserved socket
            self._activated = True
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def close(self):
        self._closing.set()  # wakes stalled and held handlers
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(5)
        self.server.server_close()

    def _serve(self, h):
        n_bytes = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(n_bytes) if n_bytes else b""
        headers = {}
        for k, v in h.headers.items():
            headers.setdefault(k.lower(), []).append(v)
        with self.cond:
            rec = dict(n=len(self.requests) + 1, method=h.command, path=h.path,
                       headers=headers, body=body, t=time.monotonic(), status=None,
                       outcome=None)
            self.requests.append(rec)
            n = rec["n"]
            self.cond.notify_all()
            status = 503 if n in self.fail else self.status
            if n in self.stall:
                rec["outcome"] = "stalled"   # known now: the client gives up first
        if len(body) < n_bytes:
            with self.cond:
                rec["outcome"] = "incomplete"
                self.cond.notify_all()
            h.close_connection = True
            return
        if n in self.stall:
            self._closing.wait(self.stall_s)
            outcome, status = "stalled", 200
        else:
            if self.hold_s:
                self._closing.wait(self.hold_s)
            outcome = "ok" if 200 <= status < 300 else "failed"
        with self.cond:
            rec["status"], rec["outcome"] = status, outcome
            self.cond.notify_all()
        reply = b"ok\n" if outcome == "ok" else b"not now\n"
        try:
            h.send_response(status)
            h.send_header("Content-Type", "text/plain")
            h.send_header("Content-Length", str(len(reply)))
            h.end_headers()
            h.wfile.write(reply)
            h.wfile.flush()
        except OSError:
            h.close_connection = True   # the client gave up (timeout) or died

    # -- reading what arrived ----------------------------------------------

    def snapshot(self):
        with self.cond:
            return [dict(r) for r in self.requests]

    def wait_delivered(self, ids, timeout=10.0):
        """Waits until every id of ids has been answered 2xx at least once;
        returns the snapshot."""
        want = set(ids)
        deadline = time.monotonic() + timeout
        while True:
            reqs = self.snapshot()
            if want <= {key_of(r) for r in reqs if r["outcome"] == "ok"}:
                return reqs
            if time.monotonic() >= deadline:
                raise AssertionError("signals %s not all delivered within %.1fs; requests: %s"
                                     % (sorted(want), timeout, self.summary()))
            time.sleep(0.02)

    def summary(self, last=40):
        reqs = self.snapshot()
        out = ["#%d key=%s %s" % (r["n"], r["headers"].get("idempotency-key"), r["outcome"])
               for r in reqs[-last:]]
        return out if len(reqs) <= last else ["(%d before)" % (len(reqs) - last)] + out


def key_of(rec):
    """The request's Idempotency-Key as an int (None when absent or repeated)."""
    v = rec["headers"].get("idempotency-key")
    if v is None or len(v) != 1 or not re.fullmatch(r"[0-9]+", v[0].strip()):
        return None
    return int(v[0].strip())


def ok_ids(reqs):
    """Ids answered 2xx, in arrival order (repeats kept)."""
    return [key_of(r) for r in reqs if r["outcome"] == "ok"]


def first_ok_order(reqs):
    seen, out = set(), []
    for i in ok_ids(reqs):
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


class WebhookCase(CollectorCase):
    test_timeout = 40

    def receiver(self, **kw):
        r = Receiver(**kw)
        self.addCleanup(r.close)
        return r

    def webhook_collector(self, url, rules=RULE, fmt="json", **options):
        self.require_dump()
        opts = {"webhook_url": url, "webhook_format": fmt,
                "webhook_timeout_ms": "%dms" % (TIMEOUT_S * 1000),
                "webhook_max_backoff_ms": "%dms" % (MAX_BACKOFF_S * 1000)}
        opts.update(options)
        c = self.collector(opts, start=False)
        use_only_rules(c, rules)
        c.start()
        self.assertEqual(c.writer_started()["rules"], 1)
        return c

    def fire(self, c, names, batch_id):
        """One batch in which each named (new) organization crosses the rule:
        one signal each, in this order. Returns their org ids (hex)."""
        pings = [make_ping("wh-" + n, 1, org_key=org_key(n), active_users_monthly=150)
                 for n in names]
        with self.client(c) as cl:
            self.assertAck(cl.request(pings, batch_id=batch_id), "OK", accepted=len(pings))
        return [org_key(n).hex() for n in names]

    def sinks_started(self, c):
        return parse_kv(c.wait_for(r"\bevent=sinks_started\b.*", timeout=5).group(0))

    def check_requests(self, reqs, path="/hook", json_body=True):
        """What every request must be: a POST to path, one Idempotency-Key,
        JSON; with json_body, the key is the body's "id". Retries of a key
        carry the same body."""
        bodies = {}
        for r in reqs:
            with self.subTest(request=r["n"]):
                self.assertEqual((r["method"], r["path"]), ("POST", path))
                self.assertNotEqual(r["outcome"], "incomplete", r)
                k = key_of(r)
                self.assertIsNotNone(k, "Idempotency-Key missing, repeated or not a number: %r"
                                     % r["headers"].get("idempotency-key"))
                ctype = r["headers"].get("content-type", [""])
                self.assertEqual(len(ctype), 1)
                self.assertTrue(ctype[0].startswith("application/json"), ctype)
                body = json.loads(r["body"].decode("utf-8"))
                if json_body:
                    self.assertEqual(as_int(body["id"]), k,
                                     "Idempotency-Key %s vs body id %r" % (k, body.get("id")))
                if k in bodies:
                    self.assertEqual(r["body"], bodies[k],
                                     "a retry of signal %d posted a different body" % k)
                bodies[k] = r["body"]
        return bodies

    def check_in_order_once(self, reqs):
        """One run without a crash: keys never go back, and every id is
        answered 2xx exactly once, by its last attempt (no next signal is
        tried before the previous one was acknowledged)."""
        keys = [key_of(r) for r in reqs]
        self.assertEqual(keys, sorted(keys), "attempts out of id order: %s" % keys)
        for k in sorted(set(keys)):
            attempts = [r for r in reqs if key_of(r) == k]
            oks = [r["n"] for r in attempts if r["outcome"] == "ok"]
            self.assertEqual(len(oks), 1, "signal %d answered 2xx %d times" % (k, len(oks)))
            self.assertEqual(oks[0], attempts[-1]["n"],
                             "signal %d attempted again after its 2xx" % k)

    def assert_quiet(self, rec, since, seconds, what):
        """No request after index since for seconds (polled, bounded)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            extra = rec.snapshot()[since:]
            if extra:
                self.fail("%s: unexpected requests %s" % (
                    what, ["#%d key=%s" % (r["n"], key_of(r)) for r in extra]))
            time.sleep(0.05)


class WebhookDelivery(WebhookCase):

    def test_in_order_retries_idempotency_and_clean_restart(self):
        # Requests: #1 #2 (id 1) 503, #3 ok; #4 (id 2) 503, #5 ok; #6 (id 3)
        # stalled past the 1 s timeout, #7 ok; then ids 4..6.
        rec = self.receiver(fail={1, 2, 4}, stall={6}).start()
        c = self.webhook_collector(rec.url())
        started = self.sinks_started(c)
        self.assertEqual((started["webhook"], started["webhook_format"],
                          started["webhook_cursor"]), (LOCALHOST, "json", 0), started)
        k = 6
        orgs = self.fire(c, ["a%d" % i for i in range(k)], batch_id=1)
        reqs = rec.wait_delivered(range(1, k + 1))

        self.assertEqual(first_ok_order(reqs), list(range(1, k + 1)))
        self.assertEqual([(r["n"], key_of(r), r["outcome"]) for r in reqs],
                         [(1, 1, "failed"), (2, 1, "failed"), (3, 1, "ok"),
                          (4, 2, "failed"), (5, 2, "ok"), (6, 3, "stalled"), (7, 3, "ok"),
                          (8, 4, "ok"), (9, 5, "ok"), (10, 6, "ok")])
        bodies = self.check_requests(reqs)
        self.check_in_order_once(reqs)

        # The bodies are the signals as stored (signal_json.h's shape).
        stored = wait_until(lambda: (lambda s: s if len(s) == k else None)(
            dump_any("signals", c.data_dir)), what="%d signals visible to dump" % k)
        self.assertEqual([as_int(s["id"]) for s in stored], list(range(1, k + 1)))
        self.assertEqual([s["org"] for s in stored], orgs)
        for s in stored:
            with self.subTest(signal=s["id"]):
                self.assertEqual(json.loads(bodies[as_int(s["id"])]), s)
                self.assertEqual((s["rule"], s["weight"]), ("big", 2))
        for i in (1, 2, 3):
            self.assertNotIn(b"\n", bodies[i], "one line of JSON")

        # Retries: backoff capped at 200 ms (less up to a quarter), never early;
        # the stalled attempt is abandoned after webhook_timeout_ms, not 10 s.
        t = {r["n"]: r["t"] for r in reqs}
        for a, b in ((1, 2), (2, 3), (4, 5)):
            gap = t[b] - t[a]
            self.assertTrue(0.1 <= gap <= 2.5, "retry gap #%d -> #%d: %.3fs" % (a, b, gap))
        gap = t[7] - t[6]
        self.assertTrue(TIMEOUT_S - 0.1 <= gap <= TIMEOUT_S + 2.5,
                        "stalled #6 -> retry #7: %.3fs (timeout %.1fs)" % (gap, TIMEOUT_S))

        # Each failure is logged (host only), the recovery too.
        failed = [parse_kv(l) for l in c.find_lines(r"\bevent=sink_failed\b.*\bsink=webhook\b")]
        self.assertEqual([(f["id"], f["attempt"]) for f in failed],
                         [(1, 1), (1, 2), (2, 1), (3, 1)], failed)
        self.assertEqual({f["host"] for f in failed}, {LOCALHOST})
        self.assertEqual([f["status"] for f in failed[:3]], [503, 503, 503])
        self.assertTrue(all(f["retry_in_ms"] <= MAX_BACKOFF_S * 1000 for f in failed), failed)

        with self.subTest("clean restart re-sends nothing"):
            c.stop()
            self.assertTrue(c.find_lines(r"\bevent=sinks_stopped\b.*\bwebhook_cursor=%d\b" % k),
                            c.log_tail())
            before = len(rec.snapshot())
            c.start()
            self.assertEqual(self.sinks_started(c)["webhook_cursor"], k)
            # The sink posts at once when it starts, and again every tick.
            self.assert_quiet(rec, before, 2 * TICK_S + 0.3, "after a clean restart")

        with self.subTest("new signals continue with the next ids"):
            orgs += self.fire(c, ["b0", "b1"], batch_id=2)
            reqs = rec.wait_delivered([k + 1, k + 2])
            after = reqs[before:]
            self.assertEqual([(key_of(r), r["outcome"]) for r in after],
                             [(k + 1, "ok"), (k + 2, "ok")])
            self.check_requests(reqs)
            self.check_in_order_once(reqs)
            self.assertEqual([json.loads(r["body"])["org"] for r in after], orgs[k:])
            c.stop()

    def test_sigterm_while_a_request_stalls(self):
        # #1 (id 1) is held 5 s: the collector gives up after 1 s and must
        # stop promptly; id 1 was never acknowledged, so it is posted again.
        rec = self.receiver(stall={1}, stall_s=5.0).start()
        c = self.webhook_collector(rec.url())
        self.fire(c, ["s0", "s1"], batch_id=1)
        wait_until(lambda: len(rec.snapshot()) >= 1, what="the first request")
        t0 = time.monotonic()
        c.stop(timeout=10)
        took = time.monotonic() - t0
        self.assertLess(took, TIMEOUT_S + 3.0, "SIGTERM with a stalled webhook: %.1fs" % took)
        self.assertTrue(c.find_lines(r"\bevent=sinks_stopped\b.*\bwebhook_cursor=0\b"),
                        c.log_tail())
        first = rec.snapshot()
        self.assertEqual([key_of(r) for r in first], [1], "nothing past id 1 before the stop")

        c.start()
        self.assertEqual(self.sinks_started(c)["webhook_cursor"], 0)
        reqs = rec.wait_delivered([1, 2])
        self.assertEqual([(key_of(r), r["outcome"]) for r in reqs],
                         [(1, "stalled"), (1, "ok"), (2, "ok")])
        self.check_requests(reqs)   # same body for id 1 across the restart
        c.stop()

    def test_kill9_mid_delivery_loses_nothing(self):
        # Each answer is held 30 ms, so the kill lands while a POST is in flight.
        k = 30
        rec = self.receiver(hold_s=0.03).start()
        c = self.webhook_collector(rec.url())
        self.fire(c, ["k%d" % i for i in range(k)], batch_id=1)
        wait_until(lambda: len(ok_ids(rec.snapshot())) >= 8, what="8 deliveries")
        c.kill()
        before = rec.snapshot()
        acked = ok_ids(before)
        m = max(acked)
        self.assertLess(m, k, "everything was delivered before the kill: test too slow to bite")
        self.assertEqual(first_ok_order(before), list(range(1, m + 1)))

        c.start()
        cursor = self.sinks_started(c)["webhook_cursor"]
        reqs = rec.wait_delivered(range(1, k + 1))
        self.check_requests(reqs)
        after = reqs[len(before):]
        self.assertEqual(first_ok_order(reqs), list(range(1, k + 1)), "first deliveries in order")
        counts = {}
        for i in ok_ids(reqs):
            counts[i] = counts.get(i, 0) + 1
        dups = sorted(i for i, n in counts.items() if n > 1)
        sys.stderr.write("\n[test_webhook kill9] killed after %d acknowledged posts (highest id "
                         "%d); cursor at restart %d; ids delivered twice: %s\n"
                         % (len(acked), m, cursor, dups or "none"))
        self.assertIn(cursor, (m - 1, m), "the saved cursor vs the last 2xx before the kill")
        self.assertLessEqual(len(dups), 1, "more than the one signal in flight repeated: %s" % dups)
        if dups:
            # The one in flight at the kill: the last 2xx seen before it (the
            # collector may have died before saving it), or the next one, which
            # the receiver can still answer after the snapshot was taken.
            self.assertIn(dups, ([m], [m + 1]), "only the signal in flight at the kill may repeat")
        self.assertIn(key_of(after[0]), (m, m + 1),
                      "the restart resumes at the last unsaved signal or the next one")
        keys = [key_of(r) for r in after]
        self.assertEqual(keys, sorted(keys), "attempts after the restart out of order")
        self.assertEqual([as_int(s["id"]) for s in dump_any("signals", c.data_dir)],
                         list(range(1, k + 1)))
        c.stop()


class SlackFormat(WebhookCase):

    def test_slack_text_names_the_description(self):
        token = "T0K3N-secret-path-xyz"
        path = "/hook/" + token
        rec = self.receiver(fail={1}).start()
        c = self.webhook_collector(rec.url(path), rules=SLACK_RULE, fmt="slack")
        started = self.sinks_started(c)
        self.assertEqual((started["webhook"], started["webhook_format"]), (LOCALHOST, "slack"))
        orgs = self.fire(c, ["sl0", "sl1"], batch_id=1)
        reqs = rec.wait_delivered([1, 2])
        self.check_requests(reqs, path=path, json_body=False)
        self.check_in_order_once(reqs)
        self.assertEqual([(key_of(r), r["outcome"]) for r in reqs],
                         [(1, "failed"), (1, "ok"), (2, "ok")])
        for r in reqs[1:]:
            i = key_of(r)
            body = json.loads(r["body"].decode("utf-8"))
            with self.subTest(signal=i):
                self.assertEqual(list(body), ["text"], body)
                text = body["text"]
                self.assertIsInstance(text, str)
                self.assertNotIn("\n", text)
                # Slack reads &, < and > as markup: the description comes escaped.
                escaped = (SLACK_DESCRIPTION.replace("&", "&amp;").replace("<", "&lt;")
                           .replace(">", "&gt;"))
                self.assertIn(escaped, text)
                self.assertIn("slackrule", text)
                self.assertIn(orgs[i - 1], text)
                self.assertTrue(re.search(r"\bsignal %d\b" % i, text), text)
        # The URL's path (a webhook's token) never reaches the logs.
        wait_until(lambda: c.find_lines(r"\bevent=sink_failed\b"), what="a sink_failed line")
        c.stop()
        leaks = [l for run in c.runs for l in run if token in l]
        self.assertEqual(leaks, [], "webhook token in the logs")


class DeadWebhook(WebhookCase):

    def test_dead_webhook_never_slows_ingest_then_delivers_all(self):
        # Reserve a port: bound, not listening, so connections are refused
        # until the receiver listens on this very socket (no race).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOCALHOST, 0))
        rec = self.receiver(sock=sock)   # closes sock at cleanup
        c = self.webhook_collector(rec.url())
        n = 200
        lat = []
        t0 = time.monotonic()
        with self.client(c) as cl:
            for i in range(n):
                p = make_ping("wh-dead%d" % i, 1, org_key=org_key("dead%d" % i),
                              active_users_monthly=150)
                t = time.monotonic()
                self.assertAck(cl.request([p], batch_id=i + 1, timeout=5), "OK", accepted=1)
                lat.append(time.monotonic() - t)
        total = time.monotonic() - t0
        sys.stderr.write("\n[test_webhook dead] %d batches acked in %.2fs (slowest %.0f ms)\n"
                         % (n, total, max(lat) * 1000))
        self.assertLess(total, 15.0, "%d batches with a dead webhook took %.1fs" % (n, total))
        self.assertLess(max(lat), 2.0, "one ack took %.2fs" % max(lat))

        # Failures logged, for the first signal only, attempts counting up.
        wait_until(lambda: len(c.find_lines(r"\bevent=sink_failed\b.*\bsink=webhook\b")) >= 3,
                   what="3 webhook sink_failed lines")
        failed = [parse_kv(l) for l in c.find_lines(r"\bevent=sink_failed\b.*\bsink=webhook\b")]
        self.assertEqual({f["id"] for f in failed}, {1}, failed[:5])
        self.assertEqual([f["attempt"] for f in failed], list(range(1, len(failed) + 1)))
        self.assertTrue(all(f["status"] == 0 and f["host"] == LOCALHOST for f in failed),
                        failed[:3])
        self.assertEqual(rec.snapshot(), [])

        rec.start()   # now the port answers
        reqs = rec.wait_delivered(range(1, n + 1), timeout=20)
        self.assertEqual(first_ok_order(reqs), list(range(1, n + 1)))
        self.check_requests(reqs)
        self.check_in_order_once(reqs)
        self.assertEqual(len(reqs), n, "one request per signal once the receiver is up")
        resumed = c.wait_for(r"\bevent=sink_resumed\b.*\bsink=webhook\b.*", timeout=5)
        self.assertEqual(parse_kv(resumed.group(0))["id"], 1)
        c.stop()

    def test_stalled_webhook_never_slows_ingest(self):
        # Every request is held past the collector's timeout until released:
        # the sinks thread sits in curl while TCP batches keep being acked.
        rec = self.receiver(stall=range(1, 1000)).start()
        c = self.webhook_collector(rec.url())
        self.fire(c, ["st0"], batch_id=1)
        wait_until(lambda: rec.snapshot(), what="the first (stalled) request")
        n, lat = 200, []
        t0 = time.monotonic()
        with self.client(c) as cl:
            for i in range(n):
                p = make_ping("wh-slow%d" % i, 1, active_users_monthly=10)  # fires nothing
                t = time.monotonic()
                self.assertAck(cl.request([p], batch_id=i + 2, timeout=5), "OK", accepted=1)
                lat.append(time.monotonic() - t)
        total = time.monotonic() - t0
        sys.stderr.write("\n[test_webhook stalled] %d batches acked in %.2fs (slowest %.0f ms)\n"
                         % (n, total, max(lat) * 1000))
        self.assertLess(total, 15.0)
        self.assertLess(max(lat), 2.0, "one ack took %.2fs" % max(lat))
        wait_until(lambda: len(rec.snapshot()) >= 2, timeout=TIMEOUT_S + 5,
                   what="a retry after the stalled attempt timed out")
        with rec.cond:
            rec.stall.clear()   # from now on, answer
        reqs = rec.wait_delivered([1])
        self.assertEqual({key_of(r) for r in reqs}, {1})
        self.assertEqual(reqs[-1]["outcome"], "ok")
        self.assertTrue(all(r["outcome"] == "stalled" for r in reqs[:-1]))
        self.check_requests(reqs)
        timeouts = [parse_kv(l) for l in c.find_lines(r"\bevent=sink_failed\b.*\bsink=webhook\b")]
        self.assertTrue(timeouts and all(f["id"] == 1 and f["status"] == 0 for f in timeouts),
                        timeouts)
        c.stop()


if __name__ == "__main__":
    unittest.main()
