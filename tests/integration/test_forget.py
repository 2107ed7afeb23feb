"""Forgetting an organization or an install (data-subject requests) end to end:
live pings into a real collector with the bundled rules, then POST /v1/forget
and `warmline forget`, through the API while the collector runs and straight
into the data directory when none does. Checked: no trace of the forgotten
organization or install in any table (every `warmline dump` table; rank,
org_signals and named accounts through the API), the other organizations
untouched, an organization that keeps another install recomputed, a deletion
record that says what kind and how many but never whom, and the errors
(unknown target 404 / exit 3, wrong token 401 / exit 1, bad body 400,
no collector and the data directory in use exit 1). And a large
organization forgotten while another sender keeps sending: its acks keep
coming during the forget (the writer's share is in slices), and nothing of
the organization is left."""

import gzip
import json
import os
import re
import secrets
import socket
import subprocess
import threading
import time
import unittest

from harness import (CLI_BIN, CollectorCase, api_call, as_int, dump, make_ping, org_key_hex,
                     ping_of, set_options)

TABLES = ("installs", "orgs", "pings", "quarantine", "signals", "daily")

A_DOMAIN, B_DOMAIN, C_DOMAIN = "alpha.example", "bravo.example", "charlie.example"
L_DOMAIN = "large.example"
# Installs of the large organization: enough that forgetting it all at once
# would hold the writer for most of the forget (WL_TEST_FORGET_INSTALLS for
# a bench-sized run).
LARGE = int(os.environ.get("WL_TEST_FORGET_INSTALLS", "20000"))
A1, A2 = "fg-alpha-one", "fg-alpha-two"
B1 = "fg-bravo-one"
C1, C2 = "fg-charlie-one", "fg-charlie-two"
N1 = "fg-nokey-one"  # no org key: its own organization, install:fg-nokey-one


def closed_port():
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ForgetCase(CollectorCase):

    def setUp(self):
        super().setUp()
        c = self.collector(start=False)
        self.read_token = "read-" + secrets.token_hex(16)
        self.admin_token = "admin-" + secrets.token_hex(16)
        self.token_files = {}
        for name, tok in (("read", self.read_token), ("admin", self.admin_token)):
            self.token_files[name] = os.path.join(c.root, name + ".token")
            with open(self.token_files[name], "w") as f:
                f.write(tok + "\n")
        # The dumps compare the records before and after a forget: a
        # checkpoint with every group, so that the records are all the state.
        set_options(c, {"read_token_file": self.token_files["read"],
                        "admin_token_file": self.token_files["admin"],
                        "checkpoint_pings": 1})
        c.start()
        self.c = c
        self.keys = {d: org_key_hex(c.org_salt, d) for d in (A_DOMAIN, B_DOMAIN, C_DOMAIN)}
        self.ingest()

    # -- helpers -------------------------------------------------------------

    def call(self, method, path, token=None, body=None):
        headers = {"Content-Type": "application/json"} if body is not None else None
        return api_call(self.c.api_port, method, path, token=token, body=body, headers=headers)

    def forget(self, target, token=None):
        return self.call("POST", "/v1/forget", token=token or self.admin_token,
                         body=json.dumps(target).encode())

    def get(self, path):
        r = self.call("GET", path, token=self.read_token)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def ingest(self):
        """Two pings of every install; A and C have two installs (second_install
        fires), every org crosses mau_over_25; a ping of A1 and one of B1 are
        rejected (seq 0) into quarantine; named accounts for A and B."""
        k = {d: bytes.fromhex(h) for d, h in self.keys.items()}
        installs = [(A1, k[A_DOMAIN]), (A2, k[A_DOMAIN]), (B1, k[B_DOMAIN]),
                    (C1, k[C_DOMAIN]), (C2, k[C_DOMAIN]), (N1, b"")]
        with self.client(self.c) as cl:
            for seq in (1, 2):
                pings = [make_ping(i, seq, org_key=key, registered_users=40 + n + seq,
                                   active_users_monthly=30)
                         for n, (i, key) in enumerate(installs)]
                ack = cl.request(pings, batch_id=seq)
                self.assertAck(ack, "OK", accepted=len(installs))
            bad = [make_ping(A1, 0, org_key=k[A_DOMAIN]), make_ping(B1, 0, org_key=k[B_DOMAIN])]
            self.assertAck(cl.request(bad, batch_id=3), "REJECTED", rejected=2)
        csv = "domain,name,owner\n%s,Alpha Inc,ann\n%s,Bravo Corp,bob\n" % (A_DOMAIN, B_DOMAIN)
        r = self.call("PUT", "/v1/named-accounts", token=self.admin_token, body=csv.encode())
        self.assertEqual(r.status, 200, r)

    def dumps(self):
        return {t: dump(t, self.c.data_dir) for t in TABLES}

    def assertNoTrace(self, needles, tables=None):
        """No dumped record of any table, and no answer of the read API,
        mentions any of needles (org keys, install ids, domains)."""
        tables = tables or self.dumps()
        for t, records in tables.items():
            for rec in records:
                text = json.dumps(rec)
                for n in needles:
                    self.assertNotIn(n, text, "%s still holds %s: %s" % (t, n, text[:300]))
        for path in ("/v1/accounts/hot?limit=1000", "/v1/signals?limit=1000",
                     "/v1/named-accounts"):
            text = json.dumps(self.get(path))
            for n in needles:
                self.assertNotIn(n, text, "%s still shows %s" % (path, n))

    def assertNoTraceInExports(self, needles, present):
        """`warmline export` of every table into a fresh directory holds none
        of needles (and does hold present: the export is not empty). Skipped
        when this build has no export command."""
        if subprocess.run([CLI_BIN, "export", "--help"], capture_output=True).returncode != 0:
            return
        text = ""
        for table in ("pings", "signals", "daily", "accounts"):
            out = os.path.join(self.c.root, "export-" + secrets.token_hex(4))
            r = subprocess.run([CLI_BIN, "export", "--table", table, "--format", "ndjson",
                                "--out", out, "--data-dir", self.c.data_dir,
                                "--config", self.c.ini_path],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, (table, r.stderr))
            for name in sorted(os.listdir(out)):
                with open(os.path.join(out, name), "rb") as f:
                    data = f.read()
                if name.endswith(".gz"):
                    data = gzip.decompress(data)
                text += data.decode("utf-8", "replace")
        self.assertIn(present, text)
        for n in needles:
            self.assertNotIn(n, text, "an export still holds %s" % n)

    def records_of(self, tables, org=None, install=None):
        """{table: [records]} of one organization or install, for comparison."""
        out = {}
        for t, recs in tables.items():
            if t == "quarantine":
                continue
            sel = []
            for r in recs:
                if org is not None and r.get("org") == org:
                    sel.append(r)
                elif install is not None and (r.get("install_id") == install or
                                              ping_of(r).get("install_id") == install):
                    sel.append(r)
            out[t] = sel
        return out

    def cli(self, *args, env=None):
        e = dict(os.environ)
        e.pop("WARMLINE_TOKEN", None)
        e.update(env or {})
        return subprocess.run([CLI_BIN, "forget"] + list(args), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60, env=e)

    def url(self):
        return "http://127.0.0.1:%d" % self.c.api_port

    # -- tests ---------------------------------------------------------------

    def test_forget_org_through_api(self):
        a, b, c = (self.keys[d] for d in (A_DOMAIN, B_DOMAIN, C_DOMAIN))
        before = self.dumps()
        self.assertTrue(any(r["org"] == a for r in before["signals"]))
        self.assertTrue(any(a in json.dumps(r) for r in before["quarantine"]))
        self.assertIn(a, json.dumps(self.get("/v1/accounts/hot?limit=1000")))
        a_pings = sum(1 for r in before["pings"] if r["org"] == a)
        a_signals = sum(1 for r in before["signals"] if r["org"] == a)
        a_daily = sum(1 for r in before["daily"] if r["org"] == a)
        self.assertEqual(a_pings, 4)
        self.assertGreaterEqual(a_signals, 2)  # mau_over_25, second_install
        keep = {o: self.records_of(before, org=o) for o in (b, c, "install:" + N1)}

        # the wrong token, none, a bad body: nothing happens
        r = self.forget({"domain": A_DOMAIN}, token=self.read_token)
        self.assertEqual(r.status, 401, r)
        r = self.call("POST", "/v1/forget", body=b'{"domain": "alpha.example"}')
        self.assertEqual(r.status, 401, r)
        for body in (b"", b"[]", b'{"org": "xyz"}', b'{"org": "%s", "install": "x"}' % a.encode(),
                     b'{"domain": "a@b.example"}', b'{"nobody": "x"}', b'{"install": 7}'):
            r = self.call("POST", "/v1/forget", token=self.admin_token, body=body)
            self.assertEqual(r.status, 400, (body, r))
        self.assertEqual(sum(1 for r in dump("pings", self.c.data_dir) if r["org"] == a), 4)

        r = self.forget({"domain": A_DOMAIN})
        self.assertEqual(r.status, 200, r)
        got = r.json()
        self.assertEqual(got["deleted"], {"pings": 4, "installs": 2, "orgs": 1,
                                          "daily": a_daily, "signals": a_signals, "named": 1,
                                          "quarantine": 1, "signals_edited": 0})
        self.assertEqual(got["deletion"]["seq"], 1)

        after = self.dumps()
        self.assertNoTrace([a, A1, A2, A_DOMAIN], after)
        # rank and org_signals: the account is gone from hot and from lookups
        for ref in (a, "domain:" + A_DOMAIN, A1):
            r = self.call("GET", "/v1/accounts/" + ref, token=self.read_token)
            self.assertEqual(r.status, 404, (ref, r))
        # the others untouched, record for record
        for o, recs in keep.items():
            self.assertEqual(self.records_of(after, org=o), recs, o)
        self.assertEqual(len(after["pings"]), len(before["pings"]) - 4)
        self.assertEqual(len(after["signals"]), len(before["signals"]) - a_signals)
        self.assertEqual([n["domain"] for n in self.get("/v1/named-accounts")["named_accounts"]],
                         [B_DOMAIN])
        hot = {x["org"] for x in self.get("/v1/accounts/hot?limit=1000")["accounts"]}
        self.assertEqual(hot, {b, c, "install:" + N1})

        # the record: when, what kind, how many; not whom
        r = self.call("GET", "/v1/deletions", token=self.read_token)
        self.assertEqual(r.status, 401, r)  # admin only
        r = self.call("GET", "/v1/deletions", token=self.admin_token)
        self.assertEqual(r.status, 200, r)
        recs = r.json()["deletions"]
        self.assertEqual(len(recs), 1)
        self.assertEqual({k: recs[0][k] for k in ("seq", "kind", "via")},
                         {"seq": 1, "kind": "org", "via": "api"})
        self.assertEqual(recs[0]["deleted"], got["deleted"])
        for n in (a, A_DOMAIN, A1, A2):
            self.assertNotIn(n, json.dumps(recs))
        # nor the log
        self.c.wait_for(r"\bevent=forget\b.*\bkind=org\b")
        for n in (a, A_DOMAIN, A1, A2):
            self.assertEqual(self.c.find_lines(re.escape(n)), [], n)

        # and a later export, of every table it knows
        self.assertNoTraceInExports([a, A1, A2, A_DOMAIN], present=b)

        # again: nothing left to match
        r = self.forget({"org": a})
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.json()["error"]["code"], "not_found")
        r = self.forget({"install": "fg-nobody"})
        self.assertEqual(r.status, 404, r)

        # a restart loads what is left; A1 pinging again starts afresh at seq 1
        self.c.stop()
        self.c.start()
        with self.client(self.c) as cl:
            ack = cl.request([make_ping(A1, 1, org_key=bytes.fromhex(a))], batch_id=9)
            self.assertAck(ack, "OK", accepted=1)
        orgs = {r["org"]: r for r in dump("orgs", self.c.data_dir)}
        self.assertEqual(orgs[a]["install_ids"], [A1])

    def test_forget_install_of_two_install_org(self):
        c = self.keys[C_DOMAIN]
        before = self.dumps()
        c_rec = next(r for r in before["orgs"] if r["org"] == c)
        self.assertEqual(sorted(c_rec["install_ids"]), [C1, C2])
        c1_last = next(r for r in before["installs"] if r["install_id"] == C1)["last_ping"]

        r = self.forget({"install": C2})
        self.assertEqual(r.status, 200, r)
        d = r.json()["deleted"]
        self.assertEqual((d["pings"], d["installs"], d["orgs"], d["named"]), (2, 1, 0, 0))
        self.assertGreaterEqual(d["signals_edited"], 1)  # second_install listed C2

        after = self.dumps()
        self.assertNoTrace([C2], after)
        c_after = next(r for r in after["orgs"] if r["org"] == c)
        self.assertEqual(c_after["install_ids"], [C1])
        self.assertEqual(c_after["installs_counting"], 1)
        self.assertEqual(as_int(c_after["totals"]["registered_users"]),
                         as_int(c1_last["registered_users"]))
        self.assertEqual(as_int(c_after["signals"]), as_int(c_rec["signals"]))
        self.assertEqual(sum(1 for r in after["pings"] if r["org"] == c), 2)
        self.assertEqual(sum(1 for r in after["signals"] if r["org"] == c),
                         sum(1 for r in before["signals"] if r["org"] == c))
        acct = self.get("/v1/accounts/domain:" + C_DOMAIN)
        self.assertEqual([i["install_id"] for i in acct["installs"]], [C1])

    def test_cli_through_api(self):
        base = ["--url", self.url()]
        r = self.cli(*base, "--install", N1, "--token-file", self.token_files["read"])
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("token", r.stderr)
        r = self.cli(*base, "--install", N1, "--json", env={"WARMLINE_TOKEN": self.admin_token})
        self.assertEqual(r.returncode, 0, r)
        got = json.loads(r.stdout)
        self.assertEqual((got["deleted"]["pings"], got["deleted"]["installs"],
                          got["deleted"]["orgs"]), (2, 1, 1))
        self.assertNoTrace([N1])
        r = self.cli(*base, "--install", N1, "--token-file", self.token_files["admin"])
        self.assertEqual(r.returncode, 3, r)
        self.assertIn("nothing matched", r.stderr)
        r = self.cli(*base, "--org", self.keys[B_DOMAIN], "--token-file",
                     self.token_files["admin"])
        self.assertEqual(r.returncode, 0, r)
        self.assertIn("through the collector", r.stdout)
        self.assertIn(" 2 pings,", r.stdout)
        self.assertNoTrace([self.keys[B_DOMAIN], B1, B_DOMAIN])
        # usage errors
        for args in ([], ["--org", "xyz"], ["--install", N1, "--domain", A_DOMAIN],
                     ["--domain", "user@alpha.example"]):
            r = self.cli(*base, *args)
            self.assertEqual(r.returncode, 2, (args, r))

    def ingest_large(self, key, installs, pings_each=1):
        """installs installs of the organization key, pings_each pings each,
        over one connection in batches of 5,000."""
        ids = ["fg-large-%06d" % i for i in range(installs)]
        pings = [make_ping(i, s, org_key=key) for s in range(1, pings_each + 1) for i in ids]
        with self.client(self.c) as cl:
            for n, at in enumerate(range(0, len(pings), 5000)):
                part = pings[at:at + 5000]
                self.assertAck(cl.request(part, batch_id=100 + n, timeout=60), "OK",
                               accepted=len(part))

    def assertLargeGone(self, lkey):
        for t in ("installs", "orgs", "pings", "signals", "daily"):
            for rec in dump(t, self.c.data_dir):
                text = json.dumps(rec)
                self.assertNotIn(lkey, text, t)
                self.assertNotIn("fg-large-", text, t)

    def test_forget_large_org_while_ingesting(self):
        """A LARGE-install organization (built over one connection, big
        batches) is forgotten while an ordinary sender keeps sending one ping
        per frame and waiting for its ack. Its acks keep arriving during the
        forget: no gap between two of them is more than 60% of the forget's
        time (the writer's share comes in slices, with ingest between; when
        the forget was one write, one gap was 99% of it), and
        every one says OK. Afterwards nothing of the organization is left."""
        lkey = org_key_hex(self.c.org_salt, L_DOMAIN)
        self.ingest_large(bytes.fromhex(lkey), LARGE)

        acks, errors = [], []
        stop = threading.Event()
        cond = threading.Condition()
        steady = self.client(self.c)

        def send():
            seq = 0
            try:
                while not stop.is_set():
                    seq += 1
                    ack = steady.request([make_ping("fg-steady", seq)], batch_id=seq,
                                         timeout=60)
                    with cond:
                        acks.append((time.monotonic(), ack.status, ack.accepted))
                        cond.notify_all()
            except Exception as e:  # noqa: BLE001 (reported below)
                with cond:
                    errors.append(e)
                    cond.notify_all()

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        with cond:  # the sender runs
            cond.wait_for(lambda: acks or errors, timeout=60)
        t0 = time.monotonic()
        r = self.forget({"domain": L_DOMAIN})
        t1 = time.monotonic()
        with cond:  # and goes on after the forget
            cond.wait_for(lambda: errors or len([a for a in acks if a[0] > t1]) >= 3,
                          timeout=60)
        stop.set()
        sender.join(60)
        steady.close()
        self.assertEqual(errors, [])
        self.assertEqual(r.status, 200, r)
        d = r.json()["deleted"]
        self.assertEqual((d["pings"], d["installs"], d["orgs"]), (LARGE, LARGE, 1))

        # every ack OK; some during the forget, and never a long wait
        self.assertEqual([a for a in acks if a[1] != 0 or a[2] != 1], [])
        during = [a[0] for a in acks if t0 < a[0] < t1]
        self.assertGreaterEqual(len(during), 2, "no ack during a %.2fs forget" % (t1 - t0))
        marks = [t0] + during + [t1]
        gap = max(b - a for a, b in zip(marks, marks[1:]))
        self.assertLess(gap, 0.6 * (t1 - t0),
                        "an ack waited %.3fs of a %.3fs forget (%d acks during it)"
                        % (gap, t1 - t0, len(during)))
        done = self.c.wait_for(r"\bevent=forget\b.*\bkind=org\b.*\bslices=\d+")
        if os.environ.get("WL_TEST_FORGET_REPORT"):  # figures for bench notes
            print("\n%d installs: forget %.3fs, %d acks during it, longest wait %.3fs; %s"
                  % (LARGE, t1 - t0, len(during), gap, done.string.split("event=forget ")[1]))

        # nothing of it left, the steady sender's pings all there
        self.assertLargeGone(lkey)
        steady_pings = [p for p in dump("pings", self.c.data_dir)
                        if ping_of(p).get("install_id") == "fg-steady"]
        self.assertEqual(len(steady_pings), len(acks))
        self.assertEqual(self.c.find_lines(r"event=forget_resumed"), [])

    def test_forget_resumed_after_kill(self):
        """The collector is killed (SIGKILL) once a large forget has logged
        event=forget_started (its first write, with the marker, is in). The
        next start finishes it in the background (event=forget_resumed, then
        event=forget resumed=1) unless it had finished before the kill;
        either way nothing of the organization is left and there is one
        deletion record with every ping counted."""
        lkey = org_key_hex(self.c.org_salt, L_DOMAIN)
        installs = max(LARGE // 4, 1000)
        self.ingest_large(bytes.fromhex(lkey), installs, pings_each=4)
        answered = []

        def request():
            try:
                answered.append(self.forget({"domain": L_DOMAIN}).status)
            except Exception:  # noqa: BLE001 (the collector is killed under it)
                answered.append(None)

        th = threading.Thread(target=request, daemon=True)
        th.start()
        self.c.wait_for(r"\bevent=forget_started\b.*\bkind=org\b", timeout=60)
        self.c.kill()
        th.join(60)
        finished = bool(self.c.find_lines(r"\bevent=forget\b.*\bkind=org\b"))

        self.c.start()
        if not finished:
            self.c.wait_for(r"\bevent=forget_resumed\b.*\bkind=org\b")
            self.c.wait_for(r"\bevent=forget\b.*\bkind=org\b.*\bresumed=1\b", timeout=60)
        recs = self.call("GET", "/v1/deletions", token=self.admin_token).json()["deletions"]
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual(recs[0]["deleted"]["pings"], 4 * installs)
        self.assertEqual(recs[0]["deleted"]["installs"], installs)
        self.assertEqual(recs[0].get("resumed", False), not finished)
        self.assertLargeGone(lkey)
        # the others untouched, and the collector takes pings as ever
        self.assertEqual(sum(1 for r in dump("pings", self.c.data_dir)
                             if ping_of(r).get("install_id") == B1), 2)
        with self.client(self.c) as cl:
            self.assertAck(cl.request([make_ping(B1, 3)], batch_id=1), "OK", accepted=1)

    def test_cli_without_collector(self):
        a = self.keys[A_DOMAIN]
        dead = "http://127.0.0.1:%d" % closed_port()
        common = ["--url", dead, "--data-dir", self.c.data_dir, "--config", self.c.ini_path]
        # the collector holds the data directory: refused, nothing deleted
        r = self.cli(*common, "--domain", A_DOMAIN, "--org-salt-file", self.c.salt_path)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("in use", r.stderr)
        # an unreachable --url without --data-dir is an error too
        r = self.cli("--url", dead, "--install", A1)
        self.assertEqual(r.returncode, 1, r)
        self.c.stop()
        self.assertEqual(sum(1 for r in dump("pings", self.c.data_dir) if r["org"] == a), 4)

        r = self.cli(*common, "--domain", A_DOMAIN, "--org-salt-file", self.c.salt_path)
        self.assertEqual(r.returncode, 0, r)
        self.assertIn("in %s" % self.c.data_dir, r.stdout)
        self.assertRegex(r.stdout, r"deleted 4 pings, 2 installs, 1 orgs, \d+ daily, \d+ signals, "
                                   r"1 named, 1 quarantine")
        r = self.cli(*common, "--install", C2, "--csv")
        self.assertEqual(r.returncode, 0, r)
        lines = r.stdout.strip().splitlines()
        self.assertEqual(lines[0].split(",")[:3], ["pings", "installs", "orgs"])
        self.assertEqual(lines[1].split(",")[:3], ["2", "1", "0"])
        r = self.cli(*common, "--org", a)
        self.assertEqual(r.returncode, 3, r)

        self.c.start()
        self.assertNoTrace([a, A1, A2, A_DOMAIN, C2])
        orgs = {r["org"]: r for r in dump("orgs", self.c.data_dir)}
        self.assertEqual(orgs[self.keys[C_DOMAIN]]["install_ids"], [C1])
        self.assertEqual(self.c.writer_started()["installs"], 3)  # B1, C1, N1
        recs = self.call("GET", "/v1/deletions", token=self.admin_token).json()["deletions"]
        self.assertEqual([(x["seq"], x["kind"], x["via"]) for x in recs],
                         [(1, "org", "cli"), (2, "install", "cli")])


if __name__ == "__main__":
    unittest.main()
