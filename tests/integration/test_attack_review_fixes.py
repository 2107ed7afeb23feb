"""Attacks from the review of issue 12's work that the collector did not
withstand when they were found (each failed on dfaa282, all but the
stalled-buffers one on e37595b too), kept as regression tests with the fixes:

- An organization's feature tallies past max_org_features: one ping with one
  new feature into a real organization that already has max_org_features
  distinct features caps its tallies, and from then on every real install
  that pings again (with the very features it had) loses its feature from
  the account: the tally entry goes at the install's -1 and the +1 that
  follows is refused by the cap. The account's feature list empties.
- A forgotten install's version and edition stay listed by an organization
  it had left (pre-existing: 2268924 kept them too).
- The CLI's --csv and a sender's install id holding ';': in a spreadsheet
  whose list separator is ';' (the default in much of Europe), the text after
  it opens as a cell of its own, which starts with '=' and is evaluated.
- TCP input buffers past 128 KiB count toward max_held_bytes and take at
  most half of it (dfaa282): connections that begin 1 MiB frames and stall
  fill that half; an honest client whose frame needs a larger buffer waits
  for room with its frame timeout running, and is closed as a slow sender
  (in the same sweep as the stalled ones, or after newer stalled
  connections, woken first, took the room they left).
- The same tallies after a restart: they are rebuilt by walking the install
  table, whose order is its keyed hash (random per process), so which
  features an organization past the cap lists changes at every restart,
  with no ping changing anything.

The fixes: each install remembers which of its features (and its edition)
its organization tallied, so counts stay exact with no sticky cap, and a
re-ping gives back and takes again its own places; an organization record's
lists seed its tables at load, so a restart lists the same; an organization's
versions and editions are those its installs run now; --csv quotes a formula
after ';', ',' or TAB inside a field too; a frame larger than the base buffer
gets its whole room at once or waits holding nothing past the base, with its
clock stopped, and waiters get room oldest first."""

import random
import socket
import subprocess
import unittest

from harness import (CLI_BIN, LOCALHOST, CollectorCase, api_call, encode_varint,
                     envelope_bytes, frame, make_ping)
from adversary import ping, send_all

OPTIONS = {"durability": "async", "max_org_features": 8}  # the smallest cap allowed


class AttackReviewFixes(CollectorCase):
    test_timeout = 300

    def features(self, c, org):
        r = api_call(c.api_port, "GET", "/v1/accounts/" + org.hex())
        self.assertEqual(r.status, 200, r)
        return sorted(r.json().get("features", []))

    def test_capped_org_keeps_features_when_installs_ping_again(self):
        """Attack: a sender who can guess a real organization's key sends one
        ping of a fresh install with one feature no install of it has, once
        the organization has max_org_features distinct features.
        Causes: the tallies are capped; then each real install's next ping
        (same features as before) takes its feature out (count 1 -> 0, entry
        erased) and cannot put it back (capped): after one round of ordinary
        pings the account lists no feature at all. One ping erases what sales
        sees of an organization.
        Expected: an install that pings again with the features it had keeps
        them tallied; only features the tallies never held are left out."""
        org = random.Random(121).randbytes(32)
        c = self.collector(OPTIONS)
        real = ["real-feature-%d" % i for i in range(8)]
        send_all(c.tcp_port, [ping("real-%d" % i, 1, org_key=org, features=[f])
                              for i, f in enumerate(real)])
        self.assertEqual(self.features(c, org), real)

        send_all(c.tcp_port, [ping("attacker-1", 1, org_key=org, features=["junk"])])
        self.assertEqual(self.features(c, org), real, "the junk feature is left out (capped)")

        send_all(c.tcp_port, [ping("real-%d" % i, 2, org_key=org, features=[f])
                              for i, f in enumerate(real)])
        self.assertEqual(self.features(c, org), real,
                         "the real installs pinged again with the same features")
        c.stop()

    def test_restart_keeps_tallied_features(self):
        """Attack (or plain bad luck): an organization with more distinct
        features than max_org_features, then a restart.
        Causes: the load rebuilds the tallies in the install table's order (a
        keyed hash, random per process), not in the order the pings came, so
        the features the account lists after the restart (once anything
        rewrites its record) are a random subset, different at each restart:
        the state after a restart is not what the live writer had.
        Expected: the same features listed before and after a restart (a
        newcomer pinging a feature that was tallied adds to it)."""
        org = random.Random(122).randbytes(32)
        c = self.collector(OPTIONS)
        send_all(c.tcp_port, [ping("inst-%02d" % i, 1, org_key=org, features=["feat-%02d" % i])
                              for i in range(24)])
        live = self.features(c, org)
        self.assertEqual(live, ["feat-%02d" % i for i in range(8)], "the first 8 are tallied")
        for n in range(2):
            c.stop()
            c.start()
            # A new install with a feature the live state tallied: the
            # organization's record is written again from the loaded tallies.
            send_all(c.tcp_port, [ping("newcomer-%d" % n, 1, org_key=org,
                                       features=["feat-00"])])
            self.assertEqual(self.features(c, org), live, "after restart %d" % (n + 1))
        c.stop()

    def test_forgotten_install_leaves_nothing_in_an_org_it_left(self):
        """Attack (on the forget promise): an install pings into organization
        B with a version and an edition of its own, moves to organization A,
        and is then forgotten (POST /v1/forget {"install": ...}).
        Causes: since moves are O(1), B keeps what it saw of the install
        (its version and edition stay in B's versions and editions, and in
        the interned strings); the forget rebuilds those lists only for the
        organization the install is in at the time, so the strings it sent
        outlive its forget in B's record, the API and exports.
        Expected: once the install is forgotten, no organization lists a
        version or edition that only it reported."""
        rng = random.Random(123)
        a, b = rng.randbytes(32), rng.randbytes(32)
        c = self.collector({"durability": "async"})
        send_all(c.tcp_port, [ping("stays-in-b", 1, org_key=b)])
        send_all(c.tcp_port, [ping("mover", 1, org_key=b, version="mover-version-77",
                                   edition="mover-edition")])
        send_all(c.tcp_port, [ping("mover", 2, org_key=a)])
        r = api_call(c.api_port, "POST", "/v1/forget", b'{"install": "mover"}',
                     headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)
        send_all(c.tcp_port, [ping("stays-in-b", 2, org_key=b)])  # B's record written again
        for org in (a, b):
            acc = api_call(c.api_port, "GET", "/v1/accounts/" + org.hex()).json()
            self.assertNotIn("mover-version-77", acc.get("versions") or [], org.hex())
            self.assertNotIn("mover-edition", acc.get("editions") or [], org.hex())
        c.stop()

    def test_signals_csv_formula_after_semicolon(self):
        """Attack: an install id (any printable ASCII, chosen by the sender)
        such as 'x;=2+5' in a ping that fires a rule (saml_configured for the
        bundled sso_interest), so that it lands in the signal's install_ids;
        then someone runs `warmline signals --csv` and opens the file.
        Causes: the field starts with 'x' and holds no ',' or '"', so it is
        printed as is; a spreadsheet that splits on ';' (the list separator of
        many locales, where CSV files open on ';') reads a cell '=2+5,1' and
        evaluates it: the CSV injection issue 12 closed for a field's first
        character, open again after a ';'.
        Expected: under either separator, no cell of the output starts with
        =, +, -, @ (or a tab or CR)."""
        c = self.collector({"durability": "async"})
        cl = self.client(c)
        ack = cl.request([make_ping("x;=2+5", 1, org_key=random.Random(124).randbytes(32),
                                    features=["saml_configured"])], batch_id=1)
        self.assertEqual(ack.accepted, 1, ack)
        r = subprocess.run([CLI_BIN, "signals", "--csv", "--url",
                            "http://127.0.0.1:%d" % c.api_port],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("x;", r.stdout)
        for line in r.stdout.splitlines()[1:]:
            for sep in (",", ";"):
                for cell in line.split(sep)[1:]:
                    self.assertFalse(cell[:1] in ("=", "+", "-", "@", "\t", "\r"),
                                     "a cell %r when %r separates: %r" % (cell, sep, line))
        c.stop()

    def test_large_frame_served_while_buffers_are_stalled(self):
        """Attack: under max_held_bytes 1 MiB (input buffers may hold 512 KiB
        of it past their first 128 KiB each), two TCP connections begin a
        1 MiB frame and stall at 512 KiB of it: the buffers' half is full.
        An honest client then sends a 300 KB envelope, and two more stalled
        connections begin before the first two time out (an attacker
        renewing its hold every frame_timeout, 128 MiB per 30 s at the
        defaults).
        Causes: the honest connection cannot grow its buffer past 128 KiB, so
        it waits for room (budget_waits) while its frame timeout runs; it is
        closed as a slow sender in the sweep that closes the first stalled
        ones, or, if it survives it, the newer stalled connections (woken
        first: the list is newest first) take the room. Every honest frame
        over 128 KiB fails while the attacker renews its hold.
        Expected: the honest envelope is acked (a connection waiting for
        buffer room is not timed out for the wait, or it gets room before
        connections that came after it, or stalled buffers are reclaimed)."""
        KiB, MiB = 1 << 10, 1 << 20
        c = self.collector({"durability": "async", "max_held_bytes": "1MiB",
                            "max_frame_bytes": "1MiB", "frame_timeout_ms": "1s"})
        body = encode_varint(MiB - 16) + bytes(MiB)

        def stall(n):
            out = []
            for _ in range(n):
                s = socket.create_connection((LOCALHOST, c.tcp_port))
                self._sockets.append(s)
                s.sendall(body[:448 * KiB])
                out.append(s)
            for s in out:
                s.sendall(body[448 * KiB:512 * KiB])
            return out

        stall(2)
        pings = [make_ping("honest-%04d" % i, 1) for i in range(4000)]
        data = envelope_bytes(pings, batch_id=9)
        self.assertGreater(len(data), 256 * KiB)
        cl = self.client(c, timeout=30)
        cl.send_raw(frame(data))
        stall(2)
        ack = cl.read_ack(timeout=30)  # today: the connection is closed (reset)
        self.assertEqual((ack.status, ack.accepted, ack.batch_id), (0, 4000, 9), ack)
        c.stop()


if __name__ == "__main__":
    unittest.main()
