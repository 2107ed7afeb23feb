"""The messageId store, once at its budget, is not scanned again every
second while nothing arrives (found by the third review of the HTTP listener:
the early sweep's threshold was under the budget a sweep leaves, so the
retention thread rescanned the whole store each second for 48 hours, a third
of a core at 64 MiB). A CPU measure over idle windows, so not in the suite:

  cd tests/integration && WL_BUILD_DIR=<build> PYTHONPATH=<build>/gen/python \\
      /usr/bin/python3 -m unittest -v check_msgid_sweep_idle
"""

import os
import time
import unittest
import uuid

from rudder_sdk import basic_auth, post
from test_http_ingest import HttpIngestCase

KEY = "any-key-works"
HEADERS = {"Authorization": basic_auth(KEY), "Content-Type": "application/json"}


def one_message(install, **props):
    return {"type": "track", "event": "activity", "userId": install,
            "messageId": str(uuid.uuid4()), "properties": props or {"teams": 3}}


def body_of(*messages):
    import json
    return json.dumps({"batch": list(messages)}).encode()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TestSweepEverySecondAtTheBudget(HttpIngestCase):

    def test_a_store_at_its_budget_is_not_scanned_every_second(self):
        c = self.http_collector({"msgid_max_bytes": "8MiB", "http_rate_per_address": 100000,
                                 "http_burst_per_address": 100000, "http_rate_total": 100000,
                                 "http_burst_total": 100000})
        c.start()
        before = cpu_seconds(c.pid)
        time.sleep(3)                     # idle, measured
        idle_before = cpu_seconds(c.pid) - before
        sent = 0
        while sent < 180000:              # ~9 MiB of ids: past the budget once
            msgs = [dict(one_message("budgetbudgetbudgetbudget%02d" % (sent % 7)),
                         messageId=uuid.uuid4().hex) for _ in range(2000)]
            status, _, answer = post(c.http_port, body_of(*msgs), HEADERS)
            self.assertEqual(status, 200, answer)
            sent += 2000
        c.wait_for(r"\bevent=msgids_swept\b.*evicted=[1-9]", timeout=30)
        c.wait_stats(lambda s: s["pings_accepted"] == sent, what="the writer caught up")
        before = cpu_seconds(c.pid)
        time.sleep(3)                     # idle again: nothing arrives, nothing to sweep
        idle_after = cpu_seconds(c.pid) - before
        c.stop()
        self.assertLess(idle_after, 3 * idle_before + 0.05,
                        "idle CPU over 3 s: %.2f s once the store reached its budget, %.2f s "
                        "before" % (idle_after, idle_before))


if __name__ == "__main__":
    unittest.main()
