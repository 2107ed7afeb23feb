"""POST /v1/batch (issue 13): RudderStack telemetry as deployed servers send it,
against the real binary.

- The Go client's requests (one message per request, as Mattermost servers with
  RudderDataplaneURL set send them) for the daily events: each lands, the
  install's state is the merge of what each event carried (a `server` event
  does not blank the counts `activity` set), configuration becomes features,
  the license marks a customer, allowed_email_domain gives the organization
  (hashed), and an identical resend changes nothing.
- The official Node SDK (@rudderstack/rudder-sdk-node, npm, lockfile), gzip on
  and off.
- One install seen through the security check and Rudder: one joined state.
- What is kept: no raw domain, customer id, license id or address anywhere in
  the data directory (every file, the WAL included) nor in any table's dump.
- Bad input, each followed by good traffic: a wrong write key, a gzip bomb,
  bodies past each cap, truncated and invalid JSON, deep nesting, 10,000
  messages, wrong types, bad userIds, unknown events.
"""

import gzip
import json
import os
import secrets
import socket
import unittest
import urllib.request
import uuid

from harness import IO_TIMEOUT, LOCALHOST, org_key_hex
from rudder_sdk import (INSTALL, activity_props, basic_auth, configs_props, go_batch,
                        go_track, license_props, node_events, post, send_with_sdk,
                        server_props)
from test_export import run_export
from test_http_ingest import HttpIngestCase, go_check, go_query

KEY = "2k9RudderWriteKeyForTests0"
INSTALL_B = "ybndrfg8ejkmcpqxot1uwisza3"


def files_holding(root, needles):
    """{needle: [files under root whose bytes hold it]}."""
    found = {n: [] for n in needles}
    for d, _, names in os.walk(root):
        for name in names:
            try:
                with open(os.path.join(d, name), "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue
            for n in needles:
                if n.encode() in data:
                    found[n].append(name)
    return found


class RudderCase(HttpIngestCase):

    def rudder_collector(self, options=None):
        opts = {"rudder_write_keys": KEY, "http_rate_per_address": "1000",
                "http_burst_per_address": "1000"}
        opts.update(options or {})
        c = self.http_collector(opts)
        c.start()
        return c

    def send(self, c, event, props, install=INSTALL, message_id=None, key=KEY):
        req = go_batch([go_track(event, props, user_id=install, message_id=message_id)],
                       write_key=key)
        status, _, body = post(c.http_port, req.body, req.headers)
        return status, (json.loads(body) if body else None), req

    def ok(self, c, event, props, install=INSTALL, **want):
        status, doc, req = self.send(c, event, props, install)
        self.assertEqual(status, 200, doc)
        for k, v in want.items():
            self.assertEqual(doc[k], v, "%s of %s: %r" % (k, event, doc))
        return req

    def installs(self, c):
        self.require_dump()
        return {r["install_id"]: r for r in c.dump("installs")}


class TestGoClient(RudderCase):

    def test_daily_events_merge_and_resend_changes_nothing(self):
        c = self.rudder_collector()
        domain = "zq%s.example" % secrets.token_hex(5)
        self.ok(c, "activity", activity_props(registered_users=57, active_users_daily=12,
                                              active_users_monthly=40), accepted=1)
        self.ok(c, "server", server_props(version="10.11.0", edition="true"), accepted=1)
        configs = self.ok(c, "configs", configs_props(saml=True, ldap=False,
                                                      allowed_email_domain=[domain,
                                                                            "other.example"]),
                          accepted=1)
        self.ok(c, "license", license_props(customer_id="cust-secret-77", edition="e20"),
                accepted=1)
        # the Go client resends the identical bytes after a timeout
        status, _, body = post(c.http_port, configs.body, configs.headers)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["duplicates"], 1)
        self.assertEqual(json.loads(body)["accepted"], 0)
        # unknown events are answered 200, counted, not stored
        self.ok(c, "plugins", {"enabled_plugins": 3}, accepted=0, ignored=1)
        s = c.wait_stats(lambda s: s["pings_accepted"] == 4, what="four events stored")
        self.assertEqual(s["http_batch_events_ignored"], 1)
        c.stop()
        rec = self.installs(c)[INSTALL]
        p = rec["last_ping"]
        self.assertEqual((p["registered_users"], p["active_users_daily"],
                          p["active_users_monthly"]), (57, 12, 40),
                         "a server event must not blank the counts activity set")
        self.assertEqual((p["version"], p["edition"], p["database_type"]),
                         ("10.11.0", "enterprise", "postgres"))
        self.assertEqual(sorted(p.get("features", [])),
                         ["license_e20", "licensed", "saml_configured"])
        self.assertEqual(rec["org"], org_key_hex(c.org_salt, domain),
                         "the first allowed_email_domain, hashed")
        self.assertEqual(int(rec["edge_seq"]), 4)
        self.assertEqual(int(rec.get("last_seq", 0)), 0)
        # nothing raw of the domains, the customer or the license anywhere
        needles = [domain, "other.example", "cust-secret-77", "lic-2b8d4c6a", LOCALHOST]
        found = files_holding(c.data_dir, needles)
        for n in needles:
            self.assertEqual(found[n], [], "%s stored raw" % n)
        for table in ("installs", "orgs", "pings", "quarantine", "signals", "daily"):
            text = json.dumps(c.dump(table))
            for n in needles:
                self.assertNotIn(n, text, "%s in %s" % (n, table))
        # and the warehouse export of every table, both formats
        out = os.path.join(c.root, "export")
        for table in ("pings", "signals", "daily", "accounts"):
            for fmt in ("ndjson", "csv"):
                r = run_export(c.data_dir, table, fmt, os.path.join(out, fmt))
                self.assertEqual(r.returncode, 0, r.stderr)
        found = files_holding(out, needles)
        self.assertTrue(os.listdir(os.path.join(out, "ndjson")))
        for n in needles:
            self.assertEqual(found[n], [], "%s in the export" % n)

    def test_resend_after_restart_is_a_duplicate(self):
        c = self.rudder_collector()
        _, doc, req = self.send(c, "activity", activity_props(active_users_monthly=30))
        self.assertEqual(doc["accepted"], 1)
        c.stop()
        c.start()
        status, _, body = post(c.http_port, req.body, req.headers)
        self.assertEqual((status, json.loads(body)["duplicates"]), (200, 1))
        c.stop()
        pings = [p for p in c.dump("pings")]
        self.assertEqual(len(pings), 1, "the resend stored nothing")

    def test_forget_takes_the_message_ids(self):
        c = self.rudder_collector()
        _, doc, req = self.send(c, "activity", activity_props(active_users_monthly=30))
        self.assertEqual(doc["accepted"], 1)
        self.ok(c, "server", server_props(), install=INSTALL_B, accepted=1)
        body = json.dumps({"install": INSTALL}).encode()
        r = urllib.request.Request("http://%s:%d/v1/forget" % (LOCALHOST, c.api_port),
                                   data=body, method="POST",
                                   headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(r, timeout=60) as resp:
            self.assertEqual(resp.status, 200)
        # its messageIds went with it: the same bytes again are new data
        status, _, data = post(c.http_port, req.body, req.headers)
        self.assertEqual((status, json.loads(data)["accepted"]), (200, 1))
        c.stop()
        self.assertEqual(sorted(self.installs(c)), sorted([INSTALL, INSTALL_B]))

    def test_check_and_rudder_join_on_the_install(self):
        c = self.rudder_collector()
        self.ok(c, "activity", activity_props(registered_users=50, active_users_daily=9,
                                              active_users_monthly=33), accepted=1)
        status, _, _ = go_check(c.http_port, go_query(INSTALL, uc="61", auc="14", tc="4",
                                                      b="11.6.0.99"))
        self.assertEqual(status, 200)
        c.wait_stats(lambda s: s["pings_accepted"] == 2, what="the check stored")
        c.stop()
        p = self.installs(c)[INSTALL]["last_ping"]
        self.assertEqual((p["registered_users"], p["active_users_daily"], p["teams"]),
                         (61, 14, 4), "the check's uc, auc, tc")
        self.assertEqual(p["active_users_monthly"], 33, "monthly actives from Rudder kept")
        self.assertEqual(p["version"], "11.6.0")


class TestDefaultRules(RudderCase):

    def test_security_check_only_fires_daily_rule_and_customers_are_skipped(self):
        c = self.rudder_collector()
        # seen only through the security check: no monthly actives
        status, _, _ = go_check(c.http_port, go_query(INSTALL_B, uc="40", auc="12", tc="2"))
        self.assertEqual(status, 200)
        # a licensed server past 25 monthly actives: an existing customer
        self.ok(c, "license", license_props(), accepted=1)
        self.ok(c, "activity", activity_props(active_users_monthly=40), accepted=1)
        # an unlicensed one: a prospect
        self.ok(c, "activity", activity_props(active_users_monthly=40), install="x" * 26,
                accepted=1)
        c.wait_stats(lambda s: s["pings_accepted"] == 4, what="all stored")
        c.stop()
        self.require_dump()
        fired = {(r["org"], r["rule"]) for r in c.dump("signals")}
        self.assertIn(("install:" + INSTALL_B, "users_over_25_daily"), fired)
        self.assertIn(("install:" + "x" * 26, "mau_over_25"), fired)
        self.assertNotIn(("install:" + INSTALL, "mau_over_25"), fired, "a customer")
        self.assertNotIn(("install:" + "x" * 26, "users_over_25_daily"), fired,
                         "monthly actives known: the daily rule stands aside")


def check_from(port, source, xff=None, install=INSTALL, **over):
    """GET /security from a chosen loopback source address (127.0.0.x), with an
    X-Forwarded-For when given. Returns the status."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(IO_TIMEOUT)
        s.bind((source, 0))
        s.connect((LOCALHOST, port))
        head = "GET /security?%s HTTP/1.1\r\nHost: x\r\n" % go_query(install, **over)
        if xff:
            head += "X-Forwarded-For: %s\r\n" % xff
        s.sendall((head + "Connection: close\r\n\r\n").encode())
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return int(buf.split()[1])


class TestNetworkTable(RudderCase):

    def test_network_gives_the_organization_a_domain_overrides(self):
        c = self.rudder_collector({"http_trusted_proxies": "127.0.0.1/32"})
        net_domain, loop_domain = "zqnet%s.example" % secrets.token_hex(4), "zqloop.example"
        body = ("cidr,domain\n10.20.0.0/16,%s\n127.0.0.2/32,%s\n"
                % (net_domain, loop_domain)).encode()
        req = urllib.request.Request("http://%s:%d/v1/networks" % (LOCALHOST, c.api_port),
                                     data=body, method="PUT",
                                     headers={"Content-Type": "text/csv"})
        with urllib.request.urlopen(req, timeout=30) as r:
            self.assertEqual(r.status, 200)
        # behind the trusted proxy: the forwarded client's network
        self.assertEqual(check_from(c.http_port, "127.0.0.1", xff="10.20.3.4"), 200)
        # straight from 127.0.0.2 (not a trusted proxy: its XFF is not believed)
        self.assertEqual(check_from(c.http_port, "127.0.0.2", xff="10.20.3.4",
                                    install=INSTALL_B), 200)
        c.wait_stats(lambda s: s["pings_accepted"] == 2, what="both checks")
        c.stop()
        got = self.installs(c)
        self.assertEqual(got[INSTALL]["org"], org_key_hex(c.org_salt, net_domain))
        self.assertTrue(got[INSTALL]["org_by_network"])
        self.assertEqual(got[INSTALL_B]["org"], org_key_hex(c.org_salt, loop_domain))
        # a domain moves the install; a network does not move it back
        c.start()
        domain = "zqdom%s.example" % secrets.token_hex(4)
        self.ok(c, "configs", configs_props(allowed_email_domain=[domain]), accepted=1)
        # (a second check within the hour would be a duplicate: a Rudder event
        # through the trusted proxy carries the network's organization too)
        req = go_batch([go_track("server", server_props(version="11.7.0"))], write_key=KEY)
        h = dict(req.headers, **{"X-Forwarded-For": "10.20.9.9"})
        status, _, _ = post(c.http_port, req.body, h)
        self.assertEqual(status, 200)
        c.wait_stats(lambda s: s["pings_accepted"] == 2, what="the two events")
        c.stop()
        rec = self.installs(c)[INSTALL]
        self.assertEqual(rec["org"], org_key_hex(c.org_salt, domain))
        self.assertFalse(rec["org_by_network"])
        self.assertEqual(rec["last_ping"]["version"], "11.7.0", "the event still landed")
        found = files_holding(c.data_dir, [net_domain, loop_domain, domain, "10.20."])
        for n, files in found.items():
            self.assertEqual(files, [], "%s stored raw" % n)


class TestNodeSdk(RudderCase):

    def test_sdk_gzip_on_and_off(self):
        c = self.rudder_collector()
        url = "http://%s:%d" % (LOCALHOST, c.http_port)
        for gz, install in ((True, INSTALL), (False, INSTALL_B)):
            with self.subTest(gzip=gz):
                events = node_events([("server", server_props(version="9.11.2")),
                                      ("activity", activity_props(active_users_monthly=26)),
                                      ("configs", configs_props(ldap=True, cluster=True)),
                                      ("license", license_props(edition="e10"))],
                                     user_id=install)
                rc, err = send_with_sdk(url, KEY, events, gzip=gz, retries=0)
                self.assertEqual(rc, 0, err)
        c.wait_stats(lambda s: s["pings_accepted"] == 8, what="both installs' events")
        # a wrong key is refused, and the SDK says so
        rc, err = send_with_sdk(url, "not-the-key", node_events([("server", server_props())]),
                                retries=0)
        self.assertNotEqual(rc, 0)
        self.assertIn("401", err)
        s = c.stop()
        self.assertEqual(s["http_batch_unauthorized"], 1)
        got = self.installs(c)
        for install in (INSTALL, INSTALL_B):
            p = got[install]["last_ping"]
            self.assertEqual((p["version"], p["active_users_monthly"]), ("9.11.2", 26))
            self.assertEqual(sorted(p["features"]), ["cluster_enabled", "ldap_configured",
                                                     "license_e10", "licensed"])


class TestBadInput(RudderCase):

    def good(self, c, install=INSTALL):
        """Good traffic still flows."""
        status, doc, _ = self.send(c, "activity", activity_props(), install=install,
                                   message_id=str(uuid.uuid4()))
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["accepted"], 1)

    def raw(self, c, body, headers=None, key=KEY):
        h = {"Authorization": basic_auth(key), "Content-Type": "application/json"}
        h.update(headers or {})
        status, _, data = post(c.http_port, body, h)
        return status, data

    def test_each_bad_body_refused_and_good_traffic_flows(self):
        c = self.rudder_collector({"http_max_body_bytes": "64KiB",
                                   "http_max_inflated_bytes": "256KiB"})
        one = json.loads(go_batch([go_track("activity", activity_props())]).body)
        cases = [
            ("wrong write key", self.raw(c, json.dumps(one).encode(), key="wrong")[0], 401),
            ("no auth", post(c.http_port, b"{}", {"Content-Type": "application/json"})[0],
             401),
            ("gzip bomb", self.raw(c, gzip.compress(b"[" * 0 + b" " * (8 << 20)),
                                   {"Content-Encoding": "gzip"})[0], 413),
            ("body over the cap", self.raw(c, b" " * (65 << 10))[0], 413),
            ("not gzip", self.raw(c, b"\x1f\x8bnot gzip", {"Content-Encoding": "gzip"})[0],
             400),
            ("brotli", self.raw(c, b"{}", {"Content-Encoding": "br"})[0], 415),
            ("truncated", self.raw(c, json.dumps(one).encode()[:-7])[0], 400),
            ("not JSON", self.raw(c, b"\xff\xfe garbage")[0], 400),
            ("not an object", self.raw(c, b"[1,2,3]")[0], 400),
            ("no batch", self.raw(c, b'{"sentAt":"x"}')[0], 400),
            ("deep nesting", self.raw(c, b'{"batch":[' + b"[" * 5000 + b"]" * 5000 + b"]}")[0],
             400),
            ("10,000 messages", self.raw(c, json.dumps({"batch": [{}] * 10000}).encode())[0],
             400),
        ]
        for what, status, want in cases:
            with self.subTest(what):
                self.assertEqual(status, want)
            self.good(c)
        s = c.stop()
        self.assertEqual(s["http_batch_unauthorized"], 2)
        self.assertEqual(s["http_batch_too_large"], 2)
        self.assertGreaterEqual(s["http_batch_bad_request"], 8)

    def test_bad_messages_dropped_the_rest_land(self):
        c = self.rudder_collector()
        good = go_track("activity", activity_props(active_users_monthly=31))
        bad = [
            go_track("activity", activity_props(), user_id=""),                 # empty
            go_track("activity", activity_props(), user_id="x" * 65),           # too long
            go_track("activity", activity_props(), user_id="tab\there"),        # not printable
            go_track("activity", dict(activity_props(), registered_users="57")),  # wrong types
            go_track("activity", dict(activity_props(), active_users_daily=-1)),
            go_track("activity", dict(activity_props(), teams=1.5)),
            go_track("activity", dict(activity_props(), posts=True)),
            go_track("server", dict(server_props(), version=7)),
            go_track("server", dict(server_props(), edition="maybe")),
            go_track("configs", configs_props(saml="yes")),
        ]
        req = go_batch(bad + [good, go_track("a_feature_event", {"user_actual_id": "u1"})],
                       write_key=KEY)
        doc = json.loads(req.body)
        doc["batch"].insert(0, "a string, not a message")
        bad.append(doc["batch"][0])
        status, _, body = post(c.http_port, json.dumps(doc).encode(),
                               {k: v for k, v in req.headers.items() if k != "Content-Length"})
        self.assertEqual(status, 200, body)
        doc = json.loads(body)
        self.assertEqual((doc["accepted"], doc["dropped"], doc["ignored"]),
                         (1, len(bad), 1), doc)
        c.stop()
        got = self.installs(c)
        self.assertEqual(list(got), [INSTALL])
        self.assertEqual(got[INSTALL]["last_ping"]["active_users_monthly"], 31)


if __name__ == "__main__":
    unittest.main()
