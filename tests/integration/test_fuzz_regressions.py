"""Fuzz findings, end to end: the inputs kept in tests/fuzz/corpus as
regress_*, sent to the real collector, which must refuse them, keep
serving, and start again afterwards with every stored record readable.

Field number 0: protobuf-c accepted a Ping (or PingBatch) field written as
the two-byte tag 0x80 0x00 and stored the ping packed again with a tag its
own decoder refuses. The ack said OK; `warmline dump` skipped the records
and the collector refused to restart ("installs: record for 'i-1' does not
decode"). One datagram from anyone was enough.
"""

import os
import unittest

from harness import CollectorCase, dump, make_ping, rejected_counters

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus")


def regress(target, name):
    with open(os.path.join(CORPUS, target, name), "rb") as f:
        return f.read()


FIELD0 = [regress("envelope", "regress_field_number_0"),
          regress("envelope", "regress_field_number_0_batch")]


class FieldNumberZero(CollectorCase):
    def test_refused_over_tcp_and_udp_and_the_collector_restarts(self):
        c = self.collector()
        cl = self.client(c)
        for data in FIELD0:
            cl.send_frame(data)
            ack = cl.read_ack()
            self.assertAck(ack, "REJECTED", accepted=0, batch_id=7)
        for data in FIELD0:
            c.send_udp(data)
        # the connection stays open and good input still lands
        self.assertAck(cl.request([make_ping("good", 1)], batch_id=8), "OK", accepted=1)
        c.wait_stats(lambda s: rejected_counters(s).get("batch_decode", 0) == 4,
                     what="4 batches rejected as batch_decode (2 TCP, 2 UDP)")

        stats = c.stop()
        self.assertEqual(int(stats["pings_accepted"]), 1)
        c.start()  # failed with "installs: record for 'i-1' does not decode"
        self.assertEqual(int(c.writer_started()["installs"]), 1)
        self.assertEqual([r["install_id"] for r in dump("installs", c.data_dir)], ["good"])
        self.assertEqual(len(dump("pings", c.data_dir)), 1)
        c.stop()


if __name__ == "__main__":
    unittest.main()
