"""GET /metrics end to end: known TCP and UDP traffic (good, duplicate and
rejected pings, bad envelopes, broken frames, an oversized datagram) and a
custom rule, then the Prometheus text read with python3-prometheus-client's
parser: counts per transport and reason, group-commit histograms that agree
with groups_committed, signals by rule, sink deliveries, gauges at rest, one
HELP and TYPE per family; and the event=stats_final line still agreeing with
it."""

import os
import re
import unittest
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from harness import (IO_TIMEOUT, CollectorCase, UdpSender, encode_varint, envelope_bytes,
                     make_ping, use_only_rules, wait_until)

MAX_FRAME = 4096  # max_frame_bytes for this test: an oversized datagram fits in UDP
MAX_COUNT = 10000000  # bundled default max_count

RULES = """
[rule "metrics_big"]
when = active_users_monthly >= 100
weight = 2
description = test rule: 100 monthly active users

[rule "metrics_never"]
when = registered_users >= 9000000
description = test rule that never fires
"""

ORG_KEY = bytes(range(1, 33))


def fetch(c, path="/metrics"):
    """(status, content type, body text) of GET path on the collector's API."""
    if c.api_port is None:
        raise AssertionError("the collector's API is off (no api= port in its ready line)")
    url = "http://127.0.0.1:%d%s" % (c.api_port, path)
    try:
        with urllib.request.urlopen(url, timeout=IO_TIMEOUT) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode("utf-8", "replace")


def parse(text):
    """({family name: family}, {(sample name, sorted label items): value})."""
    families, samples = {}, {}
    for fam in text_string_to_metric_families(text):
        if fam.name in families:
            raise AssertionError("family %s appears twice" % fam.name)
        families[fam.name] = fam
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in samples:
                raise AssertionError("series %r appears twice" % (key,))
            samples[key] = s.value
    return families, samples


class Metrics:
    """Lookup of parsed samples: m("warmline_x_total", transport="udp")."""

    def __init__(self, text):
        self.text = text
        self.families, self.samples = parse(text)

    def __call__(self, name, **labels):
        key = (name, tuple(sorted(labels.items())))
        if key not in self.samples:
            raise AssertionError("no series %s%s in /metrics" % (name, labels or ""))
        return self.samples[key]

    def has(self, name, **labels):
        return (name, tuple(sorted(labels.items()))) in self.samples

    def series(self, name):
        return {k[1]: v for k, v in self.samples.items() if k[0] == name}


class MetricsEndpoint(CollectorCase):

    def setUp(self):
        super().setUp()
        c = self.collector(options={"max_frame_bytes": "%dB" % MAX_FRAME,
                                    "quarantine_per_second": 10000},
                           start=False, name="metrics")
        self.signal_file = os.path.join(c.root, "signals.ndjson")
        c.config.setdefault("sinks", {})["signal_file"] = self.signal_file
        use_only_rules(c, RULES)
        c.start()
        self.c = c

    def signal_lines(self):
        if not os.path.exists(self.signal_file):
            return 0
        with open(self.signal_file) as f:
            return f.read().count("\n")

    def scrape(self):
        status, ctype, body = fetch(self.c)
        self.assertEqual(status, 200, "GET /metrics answered %d (is the route there?): %s"
                         % (status, body[:300]))
        self.assertTrue(ctype.startswith("text/plain"), "Content-Type %r" % ctype)
        self.assertIn("version=0.0.4", ctype)
        return Metrics(body)

    def send_tcp(self):
        """Returns the bytes written on every connection."""
        sent = 0
        with self.client(self.c) as cl:
            frames = [
                # two good pings; the second fires metrics_big
                (1, [make_ping("m-tcp-a", 1, org_key=ORG_KEY, active_users_monthly=50),
                     make_ping("m-tcp-a", 2, org_key=ORG_KEY, active_users_monthly=150)]),
                # a duplicate and a good one (still over: no second signal)
                (2, [make_ping("m-tcp-a", 2, org_key=ORG_KEY, active_users_monthly=150),
                     make_ping("m-tcp-a", 3, org_key=ORG_KEY, active_users_monthly=160)]),
                # seq 0 is rejected, the other one stored
                (3, [make_ping("m-tcp-b", 0), make_ping("m-tcp-b", 1)]),
            ]
            acks = []
            for batch_id, pings in frames:
                data = envelope_bytes(pings, batch_id=batch_id)
                sent += len(encode_varint(len(data))) + len(data)
                acks.append(cl.request(pings, batch_id=batch_id))
            self.assertAck(acks[0], "OK", accepted=2, duplicates=0, rejected=0)
            self.assertAck(acks[1], "OK", accepted=1, duplicates=1, rejected=0)
            self.assertAck(acks[2], "PARTIAL", accepted=1, duplicates=0, rejected=1)
            # an envelope of an unknown version: rejected whole
            bad = envelope_bytes([make_ping("m-tcp-v2", 1)], batch_id=4, version=2)
            cl.send_raw(encode_varint(len(bad)) + bad)
            sent += len(encode_varint(len(bad))) + len(bad)
            ack = cl.read_ack()
            self.assertAck(ack, "REJECTED", batch_id=4, message_contains="envelope_version")
        # broken frames close their connections
        for data in (b"\xff" * 10, encode_varint(MAX_FRAME + 1) + b"\x08\x01"):
            with self.client(self.c) as cl:
                cl.send_raw(data)
                sent += len(data)
                self.assertTrue(cl.wait_closed(), "connection not closed after %r" % data[:4])
        return sent

    def send_udp(self):
        """Returns the bytes sent."""
        datagrams = [
            envelope_bytes([make_ping("m-udp-a", 1), make_ping("m-udp-a", 2)]),
            envelope_bytes([make_ping("m-udp-a", 2)]),                       # duplicate
            envelope_bytes([make_ping("m-udp-b", 1, registered_users=MAX_COUNT + 1),
                            make_ping("m-udp-c", 1)]),                      # one rejected
            envelope_bytes([make_ping("m-udp-z", 1)], compression=7),       # bad envelope
            b"\x00" * (MAX_FRAME + 1),                                      # too large
        ]
        with UdpSender(self.c.udp_port) as u:
            for d in datagrams:
                u.send(d)
        return len(datagrams), sum(len(d) for d in datagrams)

    def test_counts_by_transport_reason_rule_and_sink(self):
        c = self.c
        tcp_bytes = self.send_tcp()
        n_dgrams, udp_bytes = self.send_udp()
        # TCP: 4 accepted, 1 duplicate, 1 rejected; UDP: 3, 1, 1.
        c.wait_stats(lambda s: s["udp_datagrams"] == n_dgrams and s["pings_accepted"] == 7
                     and s["pings_duplicate"] == 2 and s["pings_rejected"] == 2
                     and s["batches_rejected"] == 2,
                     what="all traffic committed")
        wait_until(lambda: self.signal_lines() == 1, what="the signal in the file sink")

        # Gauges settle once the connections are closed on the server side.
        m = wait_until(lambda: (lambda m: m if m("warmline_tcp_connections_open") == 0
                                and m("warmline_sink_deliveries_total", sink="file") == 1
                                else None)(self.scrape()),
                       what="no connection open and the signal delivered")

        T = "transport"
        want = {
            ("warmline_pings_received_total", "udp"): 5,
            ("warmline_pings_received_total", "tcp"): 6,
            ("warmline_pings_received_total", "import"): 0,
            ("warmline_pings_accepted_total", "udp"): 3,
            ("warmline_pings_accepted_total", "tcp"): 4,
            ("warmline_pings_accepted_total", "import"): 0,
            ("warmline_pings_duplicate_total", "udp"): 1,
            ("warmline_pings_duplicate_total", "tcp"): 1,
            ("warmline_envelopes_received_total", "udp"): n_dgrams,
            ("warmline_envelopes_received_total", "tcp"): 6,  # 4 frames, 2 broken
            ("warmline_received_bytes_total", "udp"): udp_bytes,
            ("warmline_received_bytes_total", "tcp"): tcp_bytes,
        }
        for (name, transport), v in want.items():
            with self.subTest(name=name, transport=transport):
                self.assertEqual(m(name, transport=transport), v)
        self.assertNotIn("other", {dict(k).get(T) for k in
                                   m.series("warmline_pings_received_total")})

        rejected = {dict(k)[T] + "/" + dict(k)["reason"]: v
                    for k, v in m.series("warmline_pings_rejected_total").items() if v}
        self.assertEqual(rejected, {"tcp/seq_zero": 1, "udp/count_too_large": 1})
        self.assertEqual(m("warmline_pings_rejected_total", transport="import",
                           reason="seq_zero"), 0)
        env_rejected = {dict(k)[T] + "/" + dict(k)["reason"]: v
                        for k, v in m.series("warmline_envelopes_rejected_total").items() if v}
        self.assertEqual(env_rejected, {"tcp/envelope_version": 1, "tcp/frame_bad_varint": 1,
                                        "tcp/frame_too_large": 1,
                                        "udp/envelope_compression": 1,
                                        "udp/datagram_too_large": 1})

        # The unlabelled counters kept from the stats line.
        self.assertEqual(m("warmline_tcp_frames_total"), 4)
        self.assertEqual(m("warmline_udp_datagrams_total"), n_dgrams)
        self.assertEqual(m("warmline_tcp_closed_bad_frame_total"), 2)
        self.assertEqual(m("warmline_batches_rejected_total"), 2)
        self.assertEqual(m("warmline_tcp_connections_total"), 3)
        self.assertEqual(m("warmline_write_errors_total"), 0)
        self.assertEqual(m("warmline_quarantined_total"), 4)  # 2 envelopes, 2 pings
        self.assertFalse(m.has("warmline_pings_accepted_total"), "no unlabelled duplicate")
        self.assertIn("warmline_udp_receive_queue_drops_total",
                      {k[0] for k in m.samples})

        # Group commits: both histograms count every committed group.
        groups = m("warmline_groups_committed_total")
        self.assertGreaterEqual(groups, 1)
        for h in ("warmline_group_commit_pings", "warmline_group_commit_seconds"):
            with self.subTest(histogram=h):
                fam = m.families[h]
                self.assertEqual(fam.type, "histogram")
                buckets = sorted(((float(dict(k)["le"]), v) for k, v in
                                  m.series(h + "_bucket").items()))
                counts = [v for _, v in buckets]
                self.assertEqual(counts, sorted(counts), "buckets are cumulative")
                self.assertEqual(buckets[-1][0], float("inf"))
                self.assertEqual(buckets[-1][1], m(h + "_count"))
                self.assertEqual(m(h + "_count"), groups)
                self.assertGreaterEqual(m(h + "_sum"), 0)
        self.assertEqual(len(m.series("warmline_group_commit_pings_bucket")), 8)
        self.assertEqual(len(m.series("warmline_group_commit_seconds_bucket")), 13)
        # Every accepted ping was in a committed group; no more pings than received.
        self.assertGreaterEqual(m("warmline_group_commit_pings_sum"), 7)
        self.assertLessEqual(m("warmline_group_commit_pings_sum"), 11)

        # Signals by rule, sinks.
        self.assertEqual(m.series("warmline_signals_fired_total"),
                         {(("rule", "metrics_big"),): 1, (("rule", "metrics_never"),): 0})
        self.assertEqual(m("warmline_sink_deliveries_total", sink="file"), 1)
        self.assertEqual(m("warmline_sink_deliveries_total", sink="webhook"), 0)
        self.assertEqual(m("warmline_sink_failures_total", sink="file"), 0)

        # Gauges at rest.
        self.assertEqual(m("warmline_writer_queue_pings"), 0)
        self.assertEqual(m("warmline_installs"), 4)       # m-tcp-a, m-tcp-b, m-udp-a, m-udp-c
        self.assertEqual(m("warmline_organizations"), 4)  # ORG_KEY and three install:<id>
        self.assertEqual(m.families["warmline_database_bytes"].type, "gauge")
        self.assertGreaterEqual(m("warmline_database_bytes"), 0)

        # The format: names, one HELP and one TYPE per family, counters *_total.
        helps = re.findall(r"^# HELP (\S+) ", m.text, re.M)
        types = re.findall(r"^# TYPE (\S+) (\S+)$", m.text, re.M)
        self.assertEqual(len(helps), len(set(helps)))
        self.assertEqual(helps, [n for n, _ in types])
        for name, typ in types:
            self.assertTrue(name.startswith("warmline_"), name)
            if typ == "counter":
                self.assertTrue(name.endswith("_total"), name)

        # The stats line agrees, keys unchanged.
        stats = c.stop()
        self.assertEqual(stats["pings_accepted"], 7)
        self.assertEqual(stats["pings_duplicate"], 2)
        self.assertEqual(stats["pings_rejected"], 2)
        self.assertEqual(stats["udp_datagrams"], n_dgrams)
        self.assertEqual(stats["tcp_frames"], 4)
        self.assertEqual(stats["batches_rejected"], 2)
        self.assertEqual(stats["tcp_closed_bad_frame"], 2)
        self.assertEqual(stats["quarantined"], 4)
        self.assertEqual({k: v for k, v in stats.items() if k.startswith("rejected_")},
                         {"rejected_seq_zero": 1, "rejected_count_too_large": 1,
                          "rejected_envelope_version": 1, "rejected_envelope_compression": 1,
                          "rejected_frame_bad_varint": 1, "rejected_frame_too_large": 1,
                          "rejected_datagram_too_large": 1})
        self.assertIn("udp_receive_queue_drops", stats)
        self.assertGreaterEqual(stats["groups_committed"], groups)


if __name__ == "__main__":
    unittest.main()
