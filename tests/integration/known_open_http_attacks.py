"""Issue 13's public HTTP ingest listener (off by default) reviewed as an
attacker: attacks that still WORK. Each test asserts the behaviour the
listener should have and FAILS today, so this file is not named test_*.py and
the suite does not run it; run it by hand (cd tests/integration;
PYTHONPATH=../../build/gen/python python3 -m unittest known_open_http_attacks)
and move each test into test_http_attack_review.py with its fix (issue 13).

- One anonymous GET /security naming an install that reports over TCP takes
  its sequence to the hour (about 499,000): every later TCP ping of that
  install is a "duplicate" and dropped, and its last ping becomes the
  sender's (version, counts, no org key).
"""

import unittest

from harness import make_ping
from test_http_ingest import HttpIngestCase, go_check, go_query

VICTIM = "abcdefghijkmnopqrstuwxyz12"   # an install reporting over TCP
ORG_KEY = bytes(range(32))


class TestInstallTakeover(HttpIngestCase):

    def test_anonymous_check_does_not_silence_a_tcp_install(self):
        c = self.http_collector()
        c.start()
        cl = self.client(c)
        self.assertAck(cl.request([make_ping(VICTIM, 1, org_key=ORG_KEY)]), "OK", accepted=1)
        # anyone who knows (or guesses) the id sends one check
        status, _, _ = go_check(c.http_port, go_query(VICTIM, b="1.0.0.1", uc="999999",
                                                      be="false"))
        self.assertEqual(status, 200)
        c.wait_stats(lambda s: s["http_security_queued"] == 1, what="the check queued")
        # the real server's next pings must still land
        self.assertAck(cl.request([make_ping(VICTIM, 2, org_key=ORG_KEY)]), "OK", accepted=1,
                       duplicates=0)
        self.assertAck(cl.request([make_ping(VICTIM, 3, org_key=ORG_KEY)]), "OK", accepted=1,
                       duplicates=0)
        c.stop()
        self.require_dump()
        rec = {r["install_id"]: r for r in c.dump("installs")}[VICTIM]
        self.assertEqual(int(rec["last_ping"]["seq"]), 3, "the TCP sender's last ping")
        self.assertEqual(rec["last_ping"]["registered_users"], 42)


if __name__ == "__main__":
    unittest.main()
