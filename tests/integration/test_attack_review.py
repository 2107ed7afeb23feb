"""Attacks tried in the review of issue 12's work that the collector withstands,
kept as regression tests (the ones it does not withstand yet are in
test_attack_review_failing.py until they are fixed).

- Connections that begin large frames and stop, so that their input buffers
  hold what the byte budget allows: they are still closed by frame_timeout,
  their room is returned, and a large frame is read and acked after.
- Ping wire that the walk before decoding and protobuf-c could read
  differently (a features field that is not length-delimited, a multi-byte
  tag of field 0, a group, a ping that is a varint, more features or fields
  than a ping may have, a NUL in a feature): rejected alone or with their
  envelope, never a crash, and the pings beside them are counted as their
  ack says.
- An Envelope of hundreds of thousands of unknown fields (protobuf-c keeps
  each, a few dozen bytes apiece): answered within the decode budget, the
  collector's RSS and an ordinary client's acks unaffected.
- Reference counts of interned strings through a ping that repeats one
  feature 64 times, moves its install between organizations, and is
  forgotten: the interned gauges end where they began, the tallies stay
  consistent (an organization lists the feature once, none once empty).
- A rule's feature in an organization whose tallies were capped by a
  sender, then pinged again by its install: still tallied."""

import random
import socket
import unittest

from harness import (LOCALHOST, CollectorCase, api_call, encode_varint,
                     envelope_bytes, frame, make_ping, pb, sanitized_build, wait_until)
from adversary import metrics, ping, rss_kib, send_all

KiB = 1 << 10
MiB = 1 << 20
OPTIONS = {"durability": "async"}


class AttackReview(CollectorCase):
    test_timeout = 300

    def ordinary_ok(self, c, install, seq):
        cl = self.client(c)
        ack = cl.request([make_ping(install, seq)], batch_id=seq)
        self.assertAck(ack, "OK", accepted=1, batch_id=seq)
        cl.close()

    # -- input buffers held by frames that never finish -------------------------

    def test_stalled_large_frames_are_closed_and_their_room_returned(self):
        """Attack: four TCP connections each declare a 1 MiB frame and send
        part of it (448 KiB then up to 512 KiB on two, 256 KiB on two: each
        buffer full at a doubling), then go silent, under a 1 MiB
        max_held_bytes (input buffers may hold half of it).
        Risk: buffers that count toward the byte budget and cannot grow make
        their connection wait for room (not reading); a waiting connection
        that is never timed out, or a charge not returned when it closes,
        leaves the room taken for good and no larger frame is read again.
        Expected: at least one connection waits for room (the budget is
        full), every stalled connection is closed (reason=frame_timeout),
        the warmline_held_bytes gauge is back to 0, and then an ordinary
        client's 300 KB envelope (a buffer past 128 KiB) is acked."""
        c = self.collector(dict(OPTIONS, max_held_bytes="1MiB", max_frame_bytes="1MiB",
                                frame_timeout_ms="1s"))
        body = encode_varint(MiB - 16) + bytes(MiB)
        stalled = []
        for size in (448 * KiB, 448 * KiB):
            s = socket.create_connection((LOCALHOST, c.tcp_port))
            self._sockets.append(s)
            s.sendall(body[:size])
            stalled.append(s)
        for s in stalled:
            s.sendall(body[448 * KiB:512 * KiB])
        for _ in range(2):
            s = socket.create_connection((LOCALHOST, c.tcp_port))
            self._sockets.append(s)
            s.sendall(body[:256 * KiB])
            stalled.append(s)
        wait_until(lambda: len(c.find_lines(r"event=connection_closed reason=frame_timeout"))
                   >= len(stalled), timeout=60,
                   what="every stalled connection closed by frame_timeout")
        m = metrics(c.api_port)
        self.assertGreaterEqual(m.get("warmline_tcp_budget_waits_total", 0), 1,
                                "no connection waited for room: the attack did not fill it")
        wait_until(lambda: metrics(c.api_port).get("warmline_held_bytes") == 0,
                   what="warmline_held_bytes back to 0")

        # 4,000 pings of about 80 bytes: a frame of about 300 KB.
        pings = [make_ping("large-%04d" % i, 1) for i in range(4000)]
        data = envelope_bytes(pings, batch_id=7)
        self.assertGreater(len(data), 256 * KiB)
        cl = self.client(c, timeout=60)
        cl.send_raw(frame(data))
        self.assertAck(cl.read_ack(timeout=60), "OK", accepted=4000, batch_id=7)
        self.ordinary_ok(c, "after-stall", 1)
        c.stop()

    # -- the wire walk and protobuf-c -------------------------------------------

    def test_walk_and_decoder_agree_on_odd_pings(self):
        """Attack: pings whose wire the walk before decoding might count one
        way and protobuf-c decode another: features (field 25) as a varint, a
        field 0 written as a two-byte tag, a group, a ping that is not
        length-delimited, 65 features, 115 fields, a NUL in a feature.
        Risk: a ping the walk lets through that protobuf-c decodes into more
        than the budget foresaw, or an index mismatch between the walk's
        per-ping reasons and the decoded pings (the wrong ping rejected).
        Expected: a ping that does not decode takes its envelope with it
        (REJECTED, nothing stored); a ping over the limits or with a NUL is
        rejected alone and the others beside it are accepted; the collector
        serves an ordinary ping afterwards."""
        c = self.collector(OPTIONS)
        cl = self.client(c)
        good = make_ping("odd-good", 1).SerializeToString()
        whole = {
            "features_varint": good + encode_varint(25 << 3 | 0) + b"\x05",
            "field0_two_byte_tag": good + b"\x80\x00\x01",
            "group": good + encode_varint(26 << 3 | 3) + encode_varint(26 << 3 | 4),
        }
        bid = 0
        for name, raw in whole.items():
            bid += 1
            cl.send_raw(frame(envelope_bytes([make_ping("odd-a-%d" % bid, 1), raw],
                                             batch_id=bid)))
            ack = cl.read_ack()
            with self.subTest(shape=name):
                self.assertAck(ack, "REJECTED", accepted=0, batch_id=bid)
        bid += 1
        payload = b"\x08\x01" + b"\x0a" + encode_varint(len(good)) + good  # pings = 1 (varint)
        cl.send_raw(frame(pb.Envelope(version=1, payload=payload,
                                      batch_id=bid).SerializeToString()))
        self.assertAck(cl.read_ack(), "REJECTED", accepted=0, batch_id=bid)

        alone = {
            "65_features": make_ping("odd-f", 1, features=["f%d" % i for i in range(65)]),
            "115_fields": make_ping("odd-n", 1).SerializeToString()
            + (encode_varint(10 << 3) + b"\x01") * 115,
            "nul_feature": make_ping("odd-z", 1, features=["a\x00b"]),
        }
        for name, bad in alone.items():
            bid += 1
            pings = [make_ping("odd-before-%d" % bid, 1), bad, make_ping("odd-after-%d" % bid, 1)]
            cl.send_raw(frame(envelope_bytes(pings, batch_id=bid)))
            ack = cl.read_ack()
            with self.subTest(shape=name):
                self.assertAck(ack, "PARTIAL", accepted=2, rejected=1, batch_id=bid)
        cl.close()
        self.ordinary_ok(c, "odd-after-all", 1)
        c.stop()

    # -- an Envelope of unknown fields -----------------------------------------

    def test_envelope_of_unknown_fields(self):
        """Attack: one 800 KB Envelope made of 400,000 unknown two-byte fields
        (field 5, varint 0) around a valid payload, sent 4 times.
        Risk: protobuf-c keeps every unknown field (a struct and a copy each,
        tens of bytes for two on the wire), tens of MB per envelope.
        Expected: every one answered (the Envelope's decode budget refuses it:
        REJECTED), RSS within a few MiB of the baseline (normal build), an
        ordinary client served after."""
        c = self.collector(OPTIONS)
        self.ordinary_ok(c, "unknown-warm", 1)
        rss0 = rss_kib(c.pid)
        env = envelope_bytes([make_ping("unknown-x", 1)], batch_id=1)
        data = env + b"\x28\x00" * 400000
        cl = self.client(c, timeout=60)
        for i in range(4):
            cl.send_raw(frame(data))
        for i in range(4):
            ack = cl.read_ack(timeout=60)
            self.assertAck(ack, "REJECTED", accepted=0)
        grew = rss_kib(c.pid) - rss0
        if not sanitized_build():
            self.assertLess(grew, 24 * KiB, "RSS grew %d KiB over 4 envelopes" % grew)
        cl.close()
        self.ordinary_ok(c, "unknown-after", 1)
        c.stop()

    # -- reference counts through repeats, moves and forgets --------------------

    def test_repeated_feature_moves_and_forget(self):
        """Attack: one install's pings repeat one feature 64 times, the install
        moves between two organizations and back, then it is forgotten.
        Risk: a reference taken per repeat and dropped once (or the
        reverse): a string freed while a tally or list holds it (a crash or
        garbage in the account), or never freed (interned memory that grows).
        Expected: the organization it is in lists the feature once, the one
        it left lists none; after the forget the interned gauges are back to
        what they were before it pinged; the collector serves on."""
        rng = random.Random(125)
        a, b = rng.randbytes(32), rng.randbytes(32)
        c = self.collector(OPTIONS)
        send_all(c.tcp_port, [ping("rep-anchor-a", 1, org_key=a, features=["anchor"]),
                              ping("rep-anchor-b", 1, org_key=b, features=["anchor"])])
        wait_until(lambda: metrics(c.api_port).get("warmline_interned_strings") is not None,
                   what="the interned gauges")
        m0 = metrics(c.api_port)
        seq = 0
        for org in (a, b, a, b, a):
            seq += 1
            send_all(c.tcp_port, [ping("rep-mover", seq, org_key=org,
                                       features=["repeated-feature"] * 64)])
        acc_a = api_call(c.api_port, "GET", "/v1/accounts/" + a.hex()).json()
        acc_b = api_call(c.api_port, "GET", "/v1/accounts/" + b.hex()).json()
        self.assertEqual(sorted(acc_a.get("features", [])), ["anchor", "repeated-feature"])
        self.assertEqual(sorted(acc_b.get("features", [])), ["anchor"])

        r = api_call(c.api_port, "POST", "/v1/forget", b'{"install": "rep-mover"}',
                     headers={"Content-Type": "application/json"})
        self.assertIn(r.status, (200, 202), r)

        def back():
            m = metrics(c.api_port)
            return (m.get("warmline_interned_strings") == m0.get("warmline_interned_strings")
                    and m.get("warmline_interned_bytes") == m0.get("warmline_interned_bytes"))
        # The writer publishes the gauges after its next group: ping to make one.
        for i in range(1, 50):
            send_all(c.tcp_port, [ping("rep-anchor-a", 1 + i, org_key=a, features=["anchor"])])
            if back():
                break
        m1 = metrics(c.api_port)
        self.assertEqual((m1.get("warmline_interned_strings"), m1.get("warmline_interned_bytes")),
                         (m0.get("warmline_interned_strings"), m0.get("warmline_interned_bytes")))
        acc_a = api_call(c.api_port, "GET", "/v1/accounts/" + a.hex()).json()
        self.assertEqual(sorted(acc_a.get("features", [])), ["anchor"])
        self.ordinary_ok(c, "rep-after", 1)
        c.stop()

    # -- a rule's feature in a capped organization ------------------------------

    def test_rule_feature_survives_capped_reping(self):
        """Attack: a sender caps a real organization's tallies (8 junk
        features at max_org_features 8) after its install reported
        saml_configured, which the bundled sso_interest rule tests; the real
        install then pings again, twice, with the same features.
        Risk: the rule's feature leaves the tally at the install's -1 and is
        refused at its +1 (the cap), so has_feature(saml_configured) turns
        false and the organization's signals are suppressed.
        Expected: saml_configured stays in the account's features through
        the re-pings (rule operands are always tallied)."""
        org = random.Random(126).randbytes(32)
        c = self.collector(dict(OPTIONS, max_org_features=8))
        send_all(c.tcp_port, [ping("saml-real", 1, org_key=org, features=["saml_configured"])])
        send_all(c.tcp_port, [ping("saml-junk", 1, org_key=org,
                                   features=["junk-%d" % i for i in range(12)])])
        for seq in (2, 3):
            send_all(c.tcp_port, [ping("saml-real", seq, org_key=org,
                                       features=["saml_configured"])])
            acc = api_call(c.api_port, "GET", "/v1/accounts/" + org.hex()).json()
            self.assertIn("saml_configured", acc.get("features", []), "after ping %d" % seq)
        c.stop()


if __name__ == "__main__":
    unittest.main()
