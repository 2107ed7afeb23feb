"""`warmline dump` says which checkpoint the state records are from (issue 15).

The collector keeps installs, organizations and current days in memory and
writes them only at checkpoints (checkpoint_interval_ms, checkpoint_pings, a
clean stop). `warmline dump state` prints where the checkpoint stands, and a
dump of installs, orgs or daily names it on stderr (stdout stays JSON lines).
Each test checks the printed checkpoint against what the collector itself
says: the gauges warmline_checkpoint_seq and warmline_pings_since_checkpoint,
the counter warmline_state_flushes_total, and after a SIGKILL the replay the
next start logs (event=writer_started replayed=N)."""

import hashlib
import json
import re
import subprocess
import time

from harness import CLI_BIN, CollectorCase, as_int, make_ping, now_ms, scrape_metrics

K1 = hashlib.sha256(b"warmline dump checkpoint org one").digest()
K2 = hashlib.sha256(b"warmline dump checkpoint org two").digest()
STATE_KEYS = ["ingest_seq", "checkpoint_seq", "checkpoint_at", "checkpoint_at_iso",
              "pings_after_checkpoint"]
LINE = re.compile(r"^warmline dump: (\w+) as of checkpoint state_seq=(\d+) at (\S+|\(time not "
                  r"recorded\)); (\d+) pings stored since are in the collector's memory only$")


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


class DumpCheckpoint(CollectorCase):
    test_timeout = 120

    def setUp(self):
        super().setUp()
        self.require_dump()
        self.batch = 0

    def run_dump(self, table, data_dir, *extra):
        return subprocess.run([CLI_BIN, "dump", table, "--data-dir", data_dir] + list(extra),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)

    def state(self, c):
        r = self.run_dump("state", c.data_dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 1, r.stdout)
        s = json.loads(lines[0])
        self.assertEqual(list(s), STATE_KEYS)
        if s["checkpoint_at"] is None:
            self.assertIsNone(s["checkpoint_at_iso"])
        else:
            self.assertEqual(s["checkpoint_at_iso"], iso(s["checkpoint_at"]))
        return s

    def checkpoint_lines(self, c, want_seq, want_at, want_after):
        """Dumps of the state tables name the checkpoint; the raw ones do not."""
        for table in ("installs", "orgs", "daily"):
            r = self.run_dump(table, c.data_dir)
            self.assertEqual(r.returncode, 0, r.stderr)
            m = LINE.match(r.stderr.rstrip("\n"))
            self.assertIsNotNone(m, r.stderr)
            self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
            self.assertEqual(m.group(1), table)
            self.assertEqual(int(m.group(2)), want_seq)
            self.assertEqual(m.group(3), iso(want_at) if want_at else "(time not recorded)")
            self.assertEqual(int(m.group(4)), want_after)
        for table in ("pings", "signals", "quarantine"):
            r = self.run_dump(table, c.data_dir)
            self.assertEqual((r.returncode, r.stderr), (0, ""), table)

    def send(self, cl, install, seqs, org_key=K1):
        self.batch += 1
        ack = cl.request([make_ping(install, s, org_key=org_key) for s in seqs],
                         batch_id=self.batch)
        self.assertAck(ack, "OK", accepted=len(seqs))

    def gauges(self, c):
        m = scrape_metrics(c.api_port)
        return (int(m[("warmline_checkpoint_seq", ())]),
                int(m[("warmline_pings_since_checkpoint", ())]),
                int(m[("warmline_state_flushes_total", ())]))

    def test_between_checkpoints_then_clean_stop(self):
        c = self.collector({"checkpoint_interval_ms": "1h"}, name="window")
        with self.client(c) as cl:
            self.send(cl, "d-1", [1, 2, 3])
            self.send(cl, "d-2", [1, 2], org_key=K2)
        s = self.state(c)
        self.assertEqual(self.gauges(c), (0, 5, 0))
        self.assertEqual(s, {"ingest_seq": 5, "checkpoint_seq": 0, "checkpoint_at": None,
                             "checkpoint_at_iso": None, "pings_after_checkpoint": 5})
        # The records are a checkpoint behind: none yet, and the dump says so.
        self.checkpoint_lines(c, 0, None, 5)
        self.assertEqual(self.run_dump("orgs", c.data_dir).stdout, "")
        self.assertEqual(len(self.run_dump("pings", c.data_dir).stdout.splitlines()), 5)

        before = now_ms()
        c.stop()  # the final checkpoint
        after = now_ms()
        s = self.state(c)
        self.assertEqual((s["ingest_seq"], s["checkpoint_seq"], s["pings_after_checkpoint"]),
                         (5, 5, 0))
        self.assertTrue(before <= s["checkpoint_at"] <= after, (before, s, after))
        self.checkpoint_lines(c, 5, s["checkpoint_at"], 0)
        self.assertEqual(len(self.run_dump("orgs", c.data_dir).stdout.splitlines()), 2)
        c.start()
        self.assertEqual(as_int(c.writer_started()["replayed"]), 0)
        self.assertEqual(self.gauges(c)[:2], (5, 0))

    def test_checkpoint_every_group(self):
        c = self.collector({"checkpoint_pings": 1}, name="every")
        before = now_ms()
        with self.client(c) as cl:
            for i in range(4):
                self.send(cl, "e-1", [2 * i + 1, 2 * i + 2])
        after = now_ms()
        s = self.state(c)
        self.assertEqual(self.gauges(c), (8, 0, 4))
        self.assertEqual((s["ingest_seq"], s["checkpoint_seq"], s["pings_after_checkpoint"]),
                         (8, 8, 0))
        self.assertTrue(before <= s["checkpoint_at"] <= after, (before, s, after))
        self.checkpoint_lines(c, 8, s["checkpoint_at"], 0)
        installs = [json.loads(l)
                    for l in self.run_dump("installs", c.data_dir).stdout.splitlines()]
        self.assertEqual([(i["install_id"], as_int(i["last_seq"])) for i in installs],
                         [("e-1", 8)])

    def test_sigkill_in_the_middle_of_a_window(self):
        c = self.collector({"checkpoint_interval_ms": "1h"}, name="killed")
        with self.client(c) as cl:
            self.send(cl, "k-1", [1, 2, 3])
        c.stop()
        stopped = self.state(c)
        self.assertEqual(stopped["checkpoint_seq"], 3)
        c.start()
        with self.client(c) as cl:
            self.send(cl, "k-1", [4, 5])
            self.send(cl, "k-2", [1, 2], org_key=K2)
        self.assertEqual(self.gauges(c), (3, 4, 0))
        live = self.state(c)
        c.kill()  # mid-window: 4 acked pings the records do not hold

        s = self.state(c)
        self.assertEqual(s, live)
        self.assertEqual(s, {"ingest_seq": 7, "checkpoint_seq": 3,
                             "checkpoint_at": stopped["checkpoint_at"],
                             "checkpoint_at_iso": stopped["checkpoint_at_iso"],
                             "pings_after_checkpoint": 4})
        self.checkpoint_lines(c, 3, stopped["checkpoint_at"], 4)
        orgs = self.run_dump("orgs", c.data_dir).stdout.splitlines()
        self.assertEqual(len(orgs), 1, "org two is in no checkpoint yet")

        # The restart replays exactly the pings the dump said were not in the records.
        c.start()
        self.assertEqual(as_int(c.writer_started()["replayed"]), s["pings_after_checkpoint"])
        seq, since, _ = self.gauges(c)
        after = self.state(c)
        self.assertEqual((seq, since), (after["checkpoint_seq"], after["pings_after_checkpoint"]))
        self.assertEqual((after["ingest_seq"], after["checkpoint_seq"]), (7, 7))

    def test_bad_arguments(self):
        c = self.collector(name="args", start=False)
        for argv in (["stat"], ["state", "orgs"], ["--limit", "x", "state"]):
            r = subprocess.run([CLI_BIN, "dump"] + argv + ["--data-dir", c.data_dir],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 2, (argv, r.stderr))
            self.assertEqual(r.stdout, "")
        r = subprocess.run([CLI_BIN, "dump", "--help"], capture_output=True, text=True,
                           timeout=60)
        self.assertIn("installs|orgs|pings|quarantine|signals|daily|state", r.stdout)
        self.assertIn("pings_after_checkpoint", r.stdout)
        # A data directory that holds no database: exit 2, nothing on stdout.
        r = self.run_dump("state", c.data_dir + "-missing")
        self.assertEqual((r.returncode, r.stdout), (2, ""), r.stderr)
