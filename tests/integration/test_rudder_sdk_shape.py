"""What the official RudderStack Node SDK sends, checked against the SDK itself.

POST /v1/batch is built to what /work/shared/VENDOR-TELEMETRY.md recorded of
@rudderstack/rudder-sdk-node (pinned in rudder_node/package.json). This test
guards those assumptions: it runs the real SDK (rudder_node/send.js) against a
Python http.server on an ephemeral port that records each request and answers
as told (200 unless a status is queued), and asserts:

- gzip on (the default): POST /v1/batch, Content-Encoding: gzip, the body a
  gzip stream labelled Content-Type: application/x-www-form-urlencoded; gzip
  off: application/json, no Content-Encoding; Basic auth of `KEY:`;
- the batch shape {"batch","timestamp","sentAt"} and each message's fields
  (type, event, userId, properties as given, context.library, channel,
  _metadata, originalTimestamp, messageId, sentAt; anonymousId only when given);
- batching: the first event of a client alone in its request, then at most
  flushAt (20) per request, in order; nested configs and arrays kept as sent;
- a resend after 503 (and 429) is byte-identical, headers too; a Retry-After is
  waited; 4xx other than 429 are not retried, and a 451 is just an error: the
  SDK never asks for /cluster-info, so the collector never needs to answer 451.

It also keeps tests/fixtures/rudder/ honest: the committed captures of the
SDK (node_gzip.*, node_plain.*) must have the shape of a fresh capture, and the
Go-client fixtures (go_*) must be what rudder_sdk.go_batch builds today.
WL_UPDATE_FIXTURES=1 rewrites both from this run instead.

The collector is not involved: this is the client's side of the contract.
"""

import base64
import gzip
import http.server
import json
import os
import re
import threading
import time
import unittest

import rudder_sdk
from rudder_sdk import (INSTALL, configs_props, daily_events, go_batch, go_identify,
                        go_messages, node_events, send_with_sdk, server_props)

KEY = "TESTWRITEKEY123"
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "fixtures", "rudder")
UPDATE = os.environ.get("WL_UPDATE_FIXTURES") == "1"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class Capture(http.server.ThreadingHTTPServer):
    """Records every request (method, path, headers in order, raw body, arrival time) and
    answers the queued statuses first, then 200 "OK"."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests = []
        self.plan = []                  # (status, {header: value}) answered in order
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()             # bound and listening already: nothing to await

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]

    def close(self):
        self.shutdown()
        self.server_close()
        self.thread.join()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive, as the SDK's agent expects

    def log_message(self, *args):
        pass

    def _serve(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        srv = self.server
        with srv.lock:
            srv.requests.append({"method": self.command, "path": self.path,
                                 "headers": list(self.headers.items()), "body": body,
                                 "t": time.monotonic()})
            status, extra = srv.plan.pop(0) if srv.plan else (200, {})
        reply = b"OK" if status == 200 else b"no"
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_POST = do_GET = do_PUT = _serve


def header(req, name):
    """The values of one header, case-insensitive, in order."""
    return [v for k, v in req["headers"] if k.lower() == name.lower()]


def one(req, name):
    vals = header(req, name)
    if len(vals) != 1:
        raise AssertionError("want one %s header, got %r in %r" % (name, vals, req["headers"]))
    return vals[0]


def decoded(req):
    """The JSON of a request body, gunzipped when Content-Encoding says gzip."""
    body = req["body"]
    if header(req, "Content-Encoding") == ["gzip"]:
        body = gzip.decompress(body)
    return json.loads(body)


class SdkShapeTest(unittest.TestCase):
    def setUp(self):
        rudder_sdk.sdk_installed()      # raises with the command to run: never a skip
        self.srv = Capture()
        self.addCleanup(self.srv.close)

    def send(self, events, **kw):
        rc, err = send_with_sdk(self.srv.url, KEY, events, **kw)
        return rc, err

    def assert_sent(self, events, **kw):
        rc, err = self.send(events, **kw)
        self.assertEqual(rc, 0, "send.js failed: %s" % err)

    def check_message(self, m, event, props, user=INSTALL):
        self.assertEqual(m["type"], "track")
        self.assertEqual(m["event"], event)
        self.assertEqual(m["userId"], user)
        self.assertEqual(m["properties"], props)
        self.assertEqual(m["context"], {"library": {"name": "analytics-node",
                                                    "version": rudder_sdk.SDK_VERSION}})
        self.assertEqual(m["channel"], "server")
        self.assertEqual(set(m["_metadata"]), {"nodeVersion"})
        self.assertRegex(m["originalTimestamp"], ISO_MS)
        self.assertRegex(m["sentAt"], ISO_MS)
        self.assertRegex(m["messageId"], UUID)

    # -- one event, gzip on and off ---------------------------------------------------

    def test_gzip_default(self):
        props = server_props()
        self.assert_sent(node_events([("server", props)]))
        self.assertEqual(len(self.srv.requests), 1)
        req = self.srv.requests[0]
        self.assertEqual((req["method"], req["path"]), ("POST", "/v1/batch"))
        self.assertEqual(one(req, "Content-Encoding"), "gzip")
        self.assertEqual(one(req, "Content-Type"), "application/x-www-form-urlencoded")
        self.assertEqual(one(req, "Authorization"),
                         "Basic " + base64.b64encode(KEY.encode() + b":").decode())
        self.assertEqual(one(req, "User-Agent"), "analytics-node/%s" % rudder_sdk.SDK_VERSION)
        self.assertEqual(int(one(req, "Content-Length")), len(req["body"]))
        self.assertEqual(req["body"][:3], b"\x1f\x8b\x08")
        self.assertEqual(header(req, "Transfer-Encoding"), [])
        body = decoded(req)
        self.assertEqual(list(body), ["batch", "timestamp", "sentAt"])
        self.assertRegex(body["timestamp"], ISO_MS)
        self.assertEqual(len(body["batch"]), 1)
        m = body["batch"][0]
        self.check_message(m, "server", props)
        self.assertNotIn("anonymousId", m)
        self.assertEqual(m["sentAt"], body["sentAt"])
        # rudder_sdk.node_batch (the shape without the SDK) builds the same
        built, hdrs = rudder_sdk.node_batch([rudder_sdk.node_message("server", props)], True,
                                            KEY)
        built = json.loads(gzip.decompress(built))
        self.assertEqual(list(built), list(body))
        self.assertEqual(list(built["batch"][0]), list(m))
        self.assertEqual([(k, v) for k, v in hdrs.items()],
                         [(k, v) for k, v in req["headers"] if k in hdrs])
        keep_node_fixture("node_gzip", req, self)

    def test_gzip_off(self):
        props = server_props(version="9.11.2", system_admins=None)
        self.assert_sent(node_events([("server", props)], anonymous=True), gzip=False)
        self.assertEqual(len(self.srv.requests), 1)
        req = self.srv.requests[0]
        self.assertEqual((req["method"], req["path"]), ("POST", "/v1/batch"))
        self.assertEqual(header(req, "Content-Encoding"), [])
        self.assertEqual(one(req, "Content-Type"), "application/json")
        self.assertEqual(one(req, "Authorization"),
                         "Basic " + base64.b64encode(KEY.encode() + b":").decode())
        self.assertEqual(int(one(req, "Content-Length")), len(req["body"]))
        body = json.loads(req["body"])
        self.assertEqual(list(body), ["batch", "timestamp", "sentAt"])
        m = body["batch"][0]
        self.check_message(m, "server", props)
        self.assertEqual(m["anonymousId"], INSTALL)
        built, hdrs = rudder_sdk.node_batch(
            [rudder_sdk.node_message("server", props, anonymous=True)], False, KEY)
        self.assertEqual(list(json.loads(built)["batch"][0]), list(m))
        self.assertEqual([(k, v) for k, v in hdrs.items()],
                         [(k, v) for k, v in req["headers"] if k in hdrs])
        keep_node_fixture("node_plain", req, self)

    # -- batching --------------------------------------------------------------------

    def test_daily_set_in_one_request(self):
        pairs = daily_events(licensed=True, config={"saml": True, "allowed_email_domain":
                                                    ["example.com", "example.org"]})
        self.assert_sent(node_events(pairs, message_ids=[
            "00000000-0000-4000-8000-00000000000%d" % n for n in range(len(pairs))]),
            one_request=True)
        self.assertEqual(len(self.srv.requests), 1)
        batch = decoded(self.srv.requests[0])["batch"]
        self.assertEqual([m["event"] for m in batch], ["activity", "configs", "license",
                                                       "server"])
        for m, (event, props) in zip(batch, pairs):
            self.check_message(m, event, props)
        self.assertEqual([m["messageId"] for m in batch],
                         ["00000000-0000-4000-8000-00000000000%d" % n for n in range(4)])
        self.assertEqual(batch[1]["properties"]["config_wrangler"]["allowed_email_domain"],
                         ["example.com", "example.org"])
        self.assertIs(batch[1]["properties"]["config_saml"]["enable"], True)

    def test_sdk_batching(self):
        """Without --one-request: the first event alone, then flushAt (20) at most."""
        pairs = [("activity", {"registered_users": n}) for n in range(25)]
        self.assert_sent(node_events(pairs))
        sizes = [len(decoded(r)["batch"]) for r in self.srv.requests]
        self.assertEqual(sizes[0], 1, sizes)
        self.assertLessEqual(max(sizes), 20, sizes)
        self.assertEqual(sum(sizes), 25, sizes)
        seen = [m["properties"]["registered_users"]
                for r in self.srv.requests for m in decoded(r)["batch"]]
        self.assertEqual(seen, list(range(25)))

    # -- resends -------------------------------------------------------------------

    def resend_case(self, status, gz):
        self.srv.plan = [(status, {})]
        self.assert_sent(node_events([("configs", configs_props(ldap=True))]), gzip=gz)
        self.assertEqual(len(self.srv.requests), 2)
        first, again = self.srv.requests
        self.assertEqual(again["body"], first["body"])
        self.assertEqual(again["headers"], first["headers"])
        self.assertEqual(again["path"], "/v1/batch")

    def test_resend_after_503_is_byte_identical(self):
        self.resend_case(503, True)

    def test_resend_after_503_plain_is_byte_identical(self):
        self.resend_case(503, False)

    def test_resend_after_429_is_byte_identical(self):
        self.resend_case(429, True)

    def test_retries_give_up_after_three(self):
        self.srv.plan = [(503, {})] * 10
        rc, err = self.send(node_events([("server", server_props())]), retry_delay_ms=10)
        self.assertEqual(rc, 1)
        self.assertIn("status=503", err)
        self.assertEqual(len(self.srv.requests), 4)     # the request and 3 retries
        self.assertEqual(len({r["body"] for r in self.srv.requests}), 1)

    def test_retry_after_is_waited(self):
        """The SDK's delay is max(exponential, Retry-After): a 503 with Retry-After: 1
        holds this client back at least a second (a lower bound, never a limit)."""
        self.srv.plan = [(503, {"Retry-After": "1"})]
        self.assert_sent(node_events([("server", server_props())]))
        self.assertEqual(len(self.srv.requests), 2)
        gap = self.srv.requests[1]["t"] - self.srv.requests[0]["t"]
        self.assertGreaterEqual(gap, 0.95)

    def test_4xx_not_retried_and_451_never_needed(self):
        for status in (400, 401, 404, 413, 451):
            with self.subTest(status=status):
                self.srv.requests.clear()
                self.srv.plan = [(status, {})]
                rc, err = self.send(node_events([("server", server_props())]))
                self.assertEqual(rc, 1, err)
                self.assertIn("status=%d" % status, err)
                self.assertEqual([(r["method"], r["path"]) for r in self.srv.requests],
                                 [("POST", "/v1/batch")])

    def test_sdk_refuses_malformed_events_itself(self):
        """Events the SDK's validation refuses never reach the wire (send those with
        rudder_sdk.post); the good ones of the same run are sent."""
        good = node_events([("server", server_props())])
        bad = [{"type": "track", "userId": INSTALL, "properties": {}},          # no event
               {"type": "track", "event": "server", "properties": {}}]         # no id
        rc, err = self.send(bad + good)
        self.assertEqual(rc, 1)
        self.assertEqual(err.count("refused_by_sdk"), 2, err)
        sent = [m for r in self.srv.requests for m in decoded(r)["batch"]]
        self.assertEqual([m["event"] for m in sent], ["server"])

    def test_key_never_on_stderr(self):
        self.srv.plan = [(401, {})]
        rc, err = self.send(node_events([("server", server_props())]))
        self.assertEqual(rc, 1)
        self.assertNotIn(KEY, err)
        self.assertNotIn(base64.b64encode(KEY.encode() + b":").decode(), err)

    # -- the committed fixtures --------------------------------------------------------

    def test_go_fixtures_are_current(self):
        for name, req in go_fixtures().items():
            with self.subTest(fixture=name):
                path = os.path.join(FIXTURES, name)
                if UPDATE:
                    write_fixture(path, req.body, {"method": "POST", "path": "/v1/batch",
                                                   "headers": list(req.headers.items())})
                    continue
                with open(path + ".body", "rb") as f:
                    self.assertEqual(f.read(), req.body,
                                     "%s.body is stale: WL_UPDATE_FIXTURES=1" % path)
                with open(path + ".headers.json") as f:
                    self.assertEqual(json.load(f)["headers"],
                                     [list(h) for h in req.headers.items()])


# The Go client's requests of one v10.11 server, fixed ids and times so that the bytes are
# reproducible: one message per request (RudderDataplaneURL overridden), as it sends them.
GO_T0 = "2026-12-01T10:00:00.001Z"


def go_fixtures():
    def ids(tag, n):
        return "6f1c2b9e-0000-4000-8000-%s%06d" % (tag, n)

    out = {}
    msgs = [go_identify(message_id=ids("a00000", 0), timestamp=GO_T0)]
    pairs = daily_events(licensed=True, config={"saml": True, "cluster": True,
                                                "allowed_email_domain": ["example.com"]})
    for n, m in enumerate(go_messages(pairs), start=1):
        m["messageId"], m["timestamp"] = ids("a00000", n), GO_T0
        msgs.append(m)
    names = ["identify"] + [e for e, _ in pairs]
    for n, (name, m) in enumerate(zip(names, msgs)):
        out["go_v10_11_%d_%s" % (n, name)] = go_batch(
            [m], message_id=ids("b00000", n), sent_at="2026-12-01T10:00:05.012345Z")
    old = daily_events(version="10.2.0", nested=False)
    for n, (event, props) in enumerate(old):
        m = go_messages([(event, props)])[0]
        m["messageId"], m["timestamp"] = ids("c00000", n), GO_T0
        out["go_v10_2_%02d_%s" % (n, event)] = go_batch(
            [m], message_id=ids("d00000", n), sent_at="2026-12-01T10:00:05.5Z")
    return out


def write_fixture(path, body, meta):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".body", "wb") as f:
        f.write(body)
    lines = ["{"]
    for k, v in meta.items():
        if k == "headers":
            rows = ",\n".join("  " + json.dumps(list(h)) for h in v)
            lines.append(' "headers": [\n%s\n ],' % rows)
        else:
            lines.append(" %s: %s," % (json.dumps(k), json.dumps(v)))
    lines[-1] = lines[-1].rstrip(",")
    with open(path + ".headers.json", "w") as f:
        f.write("\n".join(lines) + "\n}\n")


def keep_node_fixture(name, req, case):
    """Writes the capture (WL_UPDATE_FIXTURES=1) or checks the committed one has its shape:
    the same header names in the same order, the same encoding, the same JSON keys."""
    path = os.path.join(FIXTURES, name)
    meta = {"method": req["method"], "path": req["path"], "headers": req["headers"],
            "note": "captured from %s %s by test_rudder_sdk_shape.py; Host is the capture "
                    "server's" % (rudder_sdk.SDK_PACKAGE, rudder_sdk.SDK_VERSION)}
    if UPDATE:
        write_fixture(path, req["body"], meta)
        return
    with open(path + ".headers.json") as f:
        kept = json.load(f)
    with open(path + ".body", "rb") as f:
        kept_body = f.read()
    case.assertEqual([k for k, _ in kept["headers"]], [k for k, _ in req["headers"]],
                     "%s: header names moved: WL_UPDATE_FIXTURES=1" % path)
    for k in ("Content-Type", "Content-Encoding", "User-Agent"):
        case.assertEqual(header({"headers": kept["headers"]}, k), header(req, k), k)
    old = decoded({"headers": kept["headers"], "body": kept_body})
    new = decoded(req)
    case.assertEqual(list(old), list(new))
    case.assertEqual(list(old["batch"][0]), list(new["batch"][0]))


if __name__ == "__main__":
    unittest.main()
