"""UDP at moderate rates (collector/ingest_udp.c): a short run of datagrams waits up to a few
milliseconds for the next ones before it goes to the writer, and reads pause meanwhile when the
kernel queue is large. Nothing may be lost or stuck by that: a lone datagram is stored though
nothing follows it, and short runs with pauses between them all land (the socket drops none), a
bad ping among them rejected alone."""

import time
import unittest

from harness import CollectorCase, UdpSender, envelope_bytes, make_ping


def socket_drops(port):
    """The kernel's drop count for the collector's UDP socket (/proc/net/udp), or None."""
    want = ":%04X" % port
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1].endswith(want):
                return int(fields[-1])
    return None


class UdpPacing(CollectorCase):

    def test_a_lone_datagram_is_stored(self):
        c = self.collector()
        with UdpSender(c.udp_port) as u:
            u.send(envelope_bytes([make_ping("udp-lone", 1)], batch_id=1))
        # nothing follows it: only the timer can hand it to the writer
        c.wait_stats(lambda s: s["pings_accepted"] >= 1, what="pings_accepted >= 1")
        stats = c.stop()
        self.assertEqual(stats["pings_accepted"], 1)
        self.assertEqual(stats["udp_datagrams"], 1)

    def test_short_runs_all_land(self):
        c = self.collector()
        n, bad = 3000, {1234, 2345}
        with UdpSender(c.udp_port) as u:
            for i in range(n):
                p = make_ping("udp-pace-%d" % i, 1)
                if i in bad:
                    p.version = "1.2\x003"  # a NUL inside a string: this ping alone is rejected
                u.send(envelope_bytes([p, make_ping("udp-pace-b-%d" % i, 1)], batch_id=i + 1))
                if i % 3 == 2:
                    time.sleep(0.0005)  # runs of a few datagrams, the queue drained between
        want = 2 * n - len(bad)
        c.wait_stats(lambda s: s["pings_accepted"] >= want, what="pings_accepted >= %d" % want)
        drops = socket_drops(c.udp_port)
        stats = c.stop()
        self.assertEqual(stats["udp_datagrams"], n)
        self.assertEqual(stats["pings_accepted"], want)
        self.assertEqual(stats["pings_rejected"], len(bad))
        if drops is not None:
            self.assertEqual(drops, 0)


if __name__ == "__main__":
    unittest.main()
