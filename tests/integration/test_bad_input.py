"""Bad input: a table of must-not-parse inputs, each sent to the real
collector over TCP and (where it makes sense) over UDP, each followed by
proof that good traffic still flows; the counters per reason; quarantine
samples; and the collector alive after all of it.

Kinds of bad input:
  envelope  a frame whose envelope is rejected whole: Ack REJECTED, the
            connection stays open; batches_rejected and rejected_<reason>
            count 1.
  pings     a valid envelope whose every ping is invalid: Ack REJECTED with
            rejected=n; pings_rejected and rejected_<reason> count n.
  close     bytes that break the framing: that connection is closed,
            tcp_closed_bad_frame and rejected_<reason> count 1 (TCP only).
  abandon   half a frame, then the client goes away: nothing to count
            (TCP only).
"""

import random
import unittest
import zlib

from harness import (IO_TIMEOUT, CollectorCase, UdpSender, encode_varint, envelope_bytes,
                     fmt_ack, make_ping, make_pings, pb, rejected_counters, zlib_bomb)

# Limits the table is written against (the rest is the bundled default).
MAX_PINGS = 100
MAX_COUNT = 10000000          # bundled default
MAX_FRAME = 1 << 20           # bundled default max_frame_bytes
MAX_INFLATED = 8 << 20        # bundled default max_inflated_bytes
OPTIONS = {
    "max_pings_per_batch": MAX_PINGS,
    "quarantine_per_second": 10000,
}

TCP_BOMB_BYTES = 200 << 20    # 200 MB of zeros, ~200 KB of zlib
UDP_BOMB_BYTES = 60 << 20     # ~60 KB of zlib: fits one datagram


class Bad:
    def __init__(self, name, kind, reason, data=None, n=1, udp=True, batch_id=None,
                 udp_data=None):
        self.name, self.kind, self.reason, self.n = name, kind, reason, n
        self._data = data            # bytes, or a function returning them (lazy)
        self._udp_data = udp_data
        self.udp = udp and kind in ("envelope", "pings")
        self.batch_id = batch_id     # echoed in the ack when the envelope decodes

    def data(self):
        return self._data() if callable(self._data) else self._data

    def udp_data(self):
        d = self._udp_data if self._udp_data is not None else self._data
        return d() if callable(d) else d

    def expected(self):
        """Counters this input adds, once."""
        if self.kind == "envelope":
            return {"batches_rejected": 1, "pings_rejected": 0, "rejected": {self.reason: 1}}
        if self.kind == "pings":
            return {"batches_rejected": 0, "pings_rejected": self.n,
                    "rejected": {self.reason: self.n}}
        if self.kind == "close":
            return {"batches_rejected": 0, "pings_rejected": 0, "rejected": {self.reason: 1}}
        return {"batches_rejected": 0, "pings_rejected": 0, "rejected": {}}


_bombs = {}


def bomb(size):
    if size not in _bombs:
        _bombs[size] = zlib_bomb(size)
    return _bombs[size]


def good_env(batch_id=0):
    return envelope_bytes(make_pings("shape", [1, 2]), batch_id=batch_id)


def garbage():
    # Field 1 with wire type 7 (no such wire type), then noise.
    return b"\x0f" + random.Random(1234).randbytes(300)


def patched_ping(field, placeholder, replacement, **fields):
    """Serialized Ping with a string field holding bytes python-protobuf would
    refuse to serialize (e.g. invalid UTF-8): built with a placeholder of the
    same length, then patched."""
    assert len(placeholder) == len(replacement)
    value = placeholder.decode("ascii")
    p = make_ping("bad-utf8", 1, **{field: [value] if field == "features" else value}, **fields)
    raw = p.SerializeToString()
    assert raw.count(placeholder) == 1
    return raw.replace(placeholder, replacement)


def ping_envelope(pings, batch_id):
    return lambda: envelope_bytes(pings, batch_id=batch_id)


BAD_UTF8 = b"\xff\xfe\xc0\xafX\xed\xa0\x80"    # bad lead, overlong, surrogate
PLACEHOLDER = b"@@PLACE@"

TABLE = [
    # -- whole envelope ----------------------------------------------------
    Bad("truncated_envelope", "envelope", "envelope_decode",
        lambda: good_env(batch_id=5)[:-7]),
    Bad("random_garbage", "envelope", "envelope_decode", garbage),
    Bad("empty_frame", "envelope", "envelope_version", b""),  # decodes as version 0
    Bad("unknown_version", "envelope", "envelope_version",
        lambda: envelope_bytes(make_pings("v2", [1]), batch_id=101, version=2), batch_id=101),
    Bad("unknown_compression", "envelope", "envelope_compression",
        lambda: envelope_bytes(make_pings("c7", [1]), batch_id=102, compression=7),
        batch_id=102),
    Bad("bad_zlib", "envelope", "inflate_failed",
        lambda: envelope_bytes(payload=b"this is not a zlib stream at all", batch_id=103,
                               compression=pb.Envelope.ZLIB), batch_id=103),
    Bad("truncated_zlib", "envelope", "inflate_failed",
        lambda: envelope_bytes(payload=zlib.compress(
            b"".join(p.SerializeToString() for p in make_pings("tz", range(1, 30))))[:-9],
            batch_id=104, compression=pb.Envelope.ZLIB), batch_id=104),
    Bad("zlib_bomb", "envelope", "inflate_too_large",
        lambda: envelope_bytes(payload=bomb(TCP_BOMB_BYTES), batch_id=105,
                               compression=pb.Envelope.ZLIB), batch_id=105,
        udp_data=lambda: envelope_bytes(payload=bomb(UDP_BOMB_BYTES), batch_id=105,
                                        compression=pb.Envelope.ZLIB)),
    Bad("payload_not_a_batch", "envelope", "batch_decode",
        lambda: envelope_bytes(payload=b"\x0f\xff\xff\xff", batch_id=106), batch_id=106),
    Bad("too_many_pings", "envelope", "batch_too_many_pings",
        lambda: envelope_bytes([make_ping("many-%03d" % i, 1) for i in range(MAX_PINGS + 1)],
                               batch_id=107), batch_id=107),
    # -- every ping invalid ------------------------------------------------
    Bad("empty_install_id", "pings", "install_id_empty",
        ping_envelope([make_ping("", 1)], 201), batch_id=201),
    Bad("install_id_too_long", "pings", "install_id_too_long",
        ping_envelope([make_ping("x" * 65, 1)], 202), batch_id=202),
    Bad("install_id_not_printable", "pings", "install_id_not_printable",
        ping_envelope([make_ping("tab\there", 1), make_ping("caf\u00e9", 1)], 203),
        n=2, batch_id=203),
    # protobuf-c keeps bytes after a NUL; C string handling would not see them.
    Bad("install_id_with_nul", "pings", "install_id_not_printable",
        ping_envelope([make_ping("nul\x00tail", 1)], 204), batch_id=204),
    Bad("org_key_31_bytes", "pings", "org_key_length",
        ping_envelope([make_ping("org31", 1, org_key=b"\x01" * 31),
                       make_ping("org33", 1, org_key=b"\x02" * 33)], 205), n=2, batch_id=205),
    Bad("seq_zero", "pings", "seq_zero", ping_envelope([make_ping("seq0", 0)], 206),
        batch_id=206),
    Bad("string_too_long", "pings", "string_too_long",
        ping_envelope([make_ping("longstr", 1, edition="e" * 129)], 207), batch_id=207),
    Bad("invalid_utf8", "pings", "string_not_utf8",
        lambda: envelope_bytes([patched_ping("version", PLACEHOLDER, BAD_UTF8),
                                patched_ping("features", PLACEHOLDER, BAD_UTF8)],
                               batch_id=208), n=2, batch_id=208),
    Bad("too_many_features", "pings", "too_many_features",
        ping_envelope([make_ping("feat", 1, features=["f%d" % i for i in range(65)])], 209),
        batch_id=209),
    Bad("count_over_max", "pings", "count_too_large",
        ping_envelope([make_ping("count32", 1, registered_users=MAX_COUNT + 1),
                       make_ping("count64", 1, posts=2**40)], 210), n=2, batch_id=210),
    # -- framing (TCP) -----------------------------------------------------
    Bad("malformed_varint", "close", "frame_bad_varint", b"\xff" * 10),
    Bad("oversized_frame", "close", "frame_too_large",
        lambda: encode_varint(MAX_FRAME + 1) + b"\x08\x01"),
    Bad("half_frame_then_disconnect", "abandon", None,
        lambda: encode_varint(200) + good_env(batch_id=9)[:50]),
]


def by_name(name):
    return next(b for b in TABLE if b.name == name)


def sum_expected(entries, udp=False):
    total = {"batches_rejected": 0, "pings_rejected": 0, "rejected": {}}
    for b in entries:
        e = b.expected()
        total["batches_rejected"] += e["batches_rejected"]
        total["pings_rejected"] += e["pings_rejected"]
        for r, n in e["rejected"].items():
            total["rejected"][r] = total["rejected"].get(r, 0) + n
    return total


class BadInputCase(CollectorCase):

    def good_request(self, cl, install, seq, batch_id=777, compress=False):
        """A good batch on cl must be acked OK with one ping accepted."""
        ack = cl.request([make_ping(install, seq)], batch_id=batch_id, compress=compress)
        self.assertAck(ack, "OK", accepted=1, duplicates=0, rejected=0, batch_id=batch_id)

    def send_bad_tcp(self, c, bad, cl, bystander, tag):
        """Sends one bad input on cl; checks the answer and that good
        traffic flows (on cl if it stays open, on bystander, on a new
        connection). Returns the good pings accepted."""
        accepted = 0
        data = bad.data()
        if bad.kind in ("envelope", "pings"):
            cl.send_frame(data)
            ack = cl.read_ack(timeout=IO_TIMEOUT)
            self.assertAck(ack, "REJECTED", accepted=0, duplicates=0)
            if bad.batch_id is not None:
                self.assertEqual(ack.batch_id, bad.batch_id, fmt_ack(ack))
            if bad.kind == "envelope":
                self.assertIn("envelope rejected", ack.message)
            else:
                self.assertEqual(ack.rejected, bad.n, fmt_ack(ack))
            self.assertIn(bad.reason, ack.message, fmt_ack(ack))
            # Same connection, still serving.
            self.good_request(cl, "after-%s" % tag, 1)
            accepted += 1
        elif bad.kind == "close":
            cl.send_raw(data)
            self.assertTrue(cl.wait_closed(5), "%s: connection not closed" % bad.name)
            self.assertEqual(cl.buf, bytearray(), "%s: the collector answered before closing"
                             % bad.name)
        elif bad.kind == "abandon":
            cl.send_raw(data)
            cl.close()
        # The bystander connection was not harmed; a new connection works.
        self.good_request(bystander, "bystander-%s" % tag, 1, batch_id=778, compress=True)
        with self.client(c) as fresh:
            self.good_request(fresh, "fresh-%s" % tag, 1, batch_id=779)
        return accepted + 2

    def assertCounters(self, stats, want, good_accepted):
        self.assertEqual(rejected_counters(stats), want["rejected"],
                         "rejected_<reason> counters")
        self.assertEqual(stats["batches_rejected"], want["batches_rejected"])
        self.assertEqual(stats["pings_rejected"], want["pings_rejected"])
        self.assertEqual(stats["pings_accepted"], good_accepted)


def _make_tcp_test(bad):
    def test(self):
        c = self.collector(OPTIONS)
        bystander = self.client(c)
        self.good_request(bystander, "bystander-first", 1, batch_id=1)
        victim = self.client(c)
        accepted = 1 + self.send_bad_tcp(c, bad, victim, bystander, "t")
        self.assertTrue(c.running(), "the collector exited")
        stats = c.stop()
        self.assertCounters(stats, sum_expected([bad]), accepted)
        want_closed = 1 if bad.kind == "close" else 0
        self.assertEqual(stats["tcp_closed_bad_frame"], want_closed)
        if bad.kind == "close":
            self.assertTrue(c.find_lines(r"\bevent=connection_closed\b.*\breason=%s\b"
                                         % bad.reason), "no connection_closed log line")
    test.__doc__ = "TCP: %s -> %s (%s)" % (bad.name, bad.reason, bad.kind)
    return test


def _make_udp_test(bad):
    def test(self):
        c = self.collector(OPTIONS)
        with UdpSender(c.udp_port) as u:
            u.send(bad.udp_data())
            u.send(envelope_bytes([make_ping("udp-good", 1)], batch_id=1))
        c.wait_stats(lambda s: s["pings_accepted"] >= 1 and s["udp_datagrams"] >= 2,
                     what="the good datagram after the bad one stored")
        with self.client(c) as cl:
            self.good_request(cl, "tcp-good", 1)
        self.assertTrue(c.running(), "the collector exited")
        stats = c.stop()
        self.assertEqual(stats["udp_datagrams"], 2)
        self.assertCounters(stats, sum_expected([bad]), 2)
    test.__doc__ = "UDP: %s -> %s (%s)" % (bad.name, bad.reason, bad.kind)
    return test


class BadInputTcp(BadInputCase):
    """One collector per bad input, over TCP."""


class BadInputUdp(BadInputCase):
    """One collector per bad input, over UDP."""


for _bad in TABLE:
    setattr(BadInputTcp, "test_" + _bad.name, _make_tcp_test(_bad))
    if _bad.udp:
        setattr(BadInputUdp, "test_" + _bad.name, _make_udp_test(_bad))


class BadInputAllAtOnce(BadInputCase):

    def test_whole_table_one_collector(self):
        """The whole table over TCP then UDP against one collector.

        It stays up, good traffic flows between the bad inputs, every reason
        is counted, and quarantine keeps samples."""
        c = self.collector(OPTIONS)
        accepted = 0
        bystander = self.client(c)
        self.good_request(bystander, "bystander-first", 1, batch_id=1)
        accepted += 1
        shared = self.client(c)   # one connection takes every envelope/pings input
        for i, bad in enumerate(TABLE):
            with self.subTest(transport="tcp", input=bad.name):
                cl = shared if bad.kind in ("envelope", "pings") else self.client(c)
                accepted += self.send_bad_tcp(c, bad, cl, bystander, "tcp-%d" % i)
        udp_entries = [b for b in TABLE if b.udp]
        with UdpSender(c.udp_port) as u:
            for i, bad in enumerate(udp_entries):
                u.send(bad.udp_data())
                u.send(envelope_bytes([make_ping("udp-good-%d" % i, 1)], batch_id=i))
        accepted += len(udp_entries)
        c.wait_stats(lambda s: s["udp_datagrams"] >= 2 * len(udp_entries)
                     and s["pings_accepted"] >= accepted,
                     what="every UDP datagram handled")
        with self.client(c) as cl:
            self.good_request(cl, "last", 1)
            accepted += 1
        self.assertTrue(c.running(), "the collector exited")
        self.assertAck(bystander.request([make_ping("bystander-first", 2)], batch_id=2), "OK",
                       accepted=1)
        accepted += 1

        stats = c.stop()
        want = sum_expected(TABLE)
        udp_want = sum_expected(udp_entries)
        for r, n in udp_want["rejected"].items():
            want["rejected"][r] = want["rejected"].get(r, 0) + n
        want["batches_rejected"] += udp_want["batches_rejected"]
        want["pings_rejected"] += udp_want["pings_rejected"]
        closes = [b for b in TABLE if b.kind == "close"]
        self.assertEqual(stats["tcp_closed_bad_frame"], len(closes))
        self.assertEqual(stats["udp_datagrams"], 2 * len(udp_entries))
        with self.subTest("counters per reason"):
            self.assertCounters(stats, want, accepted)
            # Every rejected envelope and every rejected ping is sampled (the
            # rate limit is raised far above this test's volume).
            self.assertEqual(stats["quarantined"],
                             want["batches_rejected"] + want["pings_rejected"])

        with self.subTest("quarantine: warmline dump quarantine"):
            self.require_dump()
            records = c.dump("quarantine")
            self.assertEqual(len(records), stats["quarantined"])
            reasons = {}
            for r in records:
                reasons.setdefault(r["reason"], set()).add(r["transport"])
            sampled = {b.reason for b in TABLE if b.kind in ("envelope", "pings")}
            self.assertEqual(set(reasons), sampled)
            for b in udp_entries:
                self.assertEqual(reasons[b.reason], {"tcp", "udp"}, b.reason)
            for r in records:
                self.assertTrue(r["peer"].startswith("127.0.0.1:"), r)
            bombs = [r for r in records if r["reason"] == "inflate_too_large"]
            self.assertTrue(all(r["sample_truncated_from"] > len(r["sample"]) // 2
                                for r in bombs), bombs)
            seqs = [r["seq"] for r in records]
            self.assertEqual(seqs, sorted(seqs))


class DatagramTooLarge(BadInputCase):

    def test_datagram_over_max_frame_bytes(self):
        c = self.collector({"max_frame_bytes": "1KiB", "max_inflated_bytes": "1KiB"})
        big = envelope_bytes([make_ping("big-%03d" % i, 1) for i in range(40)], batch_id=1)
        self.assertGreater(len(big), 1024)
        with UdpSender(c.udp_port) as u:
            u.send(big)
            u.send(envelope_bytes([make_ping("small", 1)], batch_id=2))
        c.wait_stats(lambda s: s["udp_datagrams"] >= 2 and s["pings_accepted"] >= 1,
                     what="the small datagram stored")
        # Over TCP the same frame closes the connection.
        with self.client(c) as cl:
            cl.send_frame(big)
            self.assertTrue(cl.wait_closed(5))
        stats = c.stop()
        self.assertEqual(rejected_counters(stats),
                         {"datagram_too_large": 1, "frame_too_large": 1})
        self.assertEqual(stats["pings_accepted"], 1)
        self.assertEqual(stats["batches_rejected"], 0)


class Shape(unittest.TestCase):
    """The table's inputs are what they claim to be, checked with
    python-protobuf, so that a collector failure is not a test bug."""

    def test_inputs_decode_as_described(self):
        def parses(data):
            e = pb.Envelope()
            try:
                e.ParseFromString(data)
                return True
            except Exception:
                return False
        self.assertFalse(parses(by_name("truncated_envelope").data()))
        self.assertFalse(parses(by_name("random_garbage").data()))
        env = pb.Envelope()
        env.ParseFromString(by_name("unknown_compression").data())
        self.assertEqual((env.version, env.compression), (1, 7))
        env.ParseFromString(by_name("zlib_bomb").data())
        self.assertLess(len(env.payload), MAX_FRAME)
        self.assertEqual(len(zlib.decompressobj().decompress(env.payload, MAX_INFLATED + 1)),
                         MAX_INFLATED + 1)
        self.assertLess(len(by_name("zlib_bomb").udp_data()), 65507)
        env.ParseFromString(by_name("zlib_bomb").udp_data())
        self.assertEqual(len(zlib.decompressobj().decompress(env.payload, MAX_INFLATED + 1)),
                         MAX_INFLATED + 1)
        env.ParseFromString(by_name("invalid_utf8").data())
        self.assertEqual(env.payload.count(BAD_UTF8), 2)
        self.assertNotIn(PLACEHOLDER, env.payload)
        with self.assertRaises(UnicodeDecodeError):
            BAD_UTF8.decode("utf-8")
        for i in range(len(BAD_UTF8)):  # invalid from every starting byte on
            with self.assertRaises(UnicodeDecodeError):
                BAD_UTF8[i:].decode("utf-8")
        self.assertEqual(by_name("malformed_varint").data(), b"\xff" * 10)


if __name__ == "__main__":
    unittest.main()
