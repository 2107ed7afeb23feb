"""warmline-loadgen against the real collector: a TCP run whose acks it
checks and counts; a UDP run whose loss it learns from the collector's own
/metrics (--metrics), both when nothing is lost and when the collector's
socket queue overflows (the loss must equal the kernel's drop count the
collector reports); the API's read token (--token-file); and bad uses of
the new options, each refused with a clear message and exit status 2."""

import json
import os
import subprocess
import unittest

import urllib.request

from harness import BUILD_DIR, CollectorCase, IO_TIMEOUT, set_options

LOADGEN = os.path.join(BUILD_DIR, "warmline-loadgen")


def run(*args, timeout=120):
    p = subprocess.run([LOADGEN, "--no-progress"] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout)
    report = None
    if "--json" in args and p.stdout.strip():
        report = json.loads(p.stdout.strip().splitlines()[-1])
    return p.returncode, report, p.stderr


def metric(c, name):
    """The collector's own counter warmline_NAME_total{transport="udp"}."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % c.api_port,
                                timeout=IO_TIMEOUT) as r:
        text = r.read().decode()
    prefix = 'warmline_%s_total{transport="udp"} ' % name
    for line in text.splitlines():
        if line.startswith(prefix):
            return int(line[len(prefix):])
    raise AssertionError("no %s in /metrics" % prefix)


@unittest.skipUnless(os.path.exists(LOADGEN), "warmline-loadgen is not built")
class LoadgenTest(CollectorCase):
    def test_tcp_run_acked_and_counted(self):
        c = self.collector()
        rc, rep, err = run("--tcp", "127.0.0.1:%d" % c.tcp_port, "--pings", 3000, "--batch", 50,
                           "--installs", 500, "--orgs", 50, "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual((rep["pings_sent"], rep["acks"]["received"], rep["acks"]["ok"]),
                         (3000, 60, 60))
        self.assertIsNone(rep["collector"])  # TCP: the acks tell
        self.assertEqual(c.stop()["pings_accepted"], 3000)

    def test_udp_metrics_no_loss(self):
        c = self.collector()
        url = "http://127.0.0.1:%d/metrics" % c.api_port
        rc, rep, err = run("--udp", "127.0.0.1:%d" % c.udp_port, "--pings", 5000, "--batch", 10,
                           "--installs", 500, "--metrics", url, "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(rep["collector"],
                         {"received": 5000, "accepted": 5000, "duplicates": 0, "lost": 0})
        self.assertIn("the collector received 5000 (lost 0, 0.00%), stored 5000", err)
        # A second run counts only its own pings (the counters are read before it).
        rc, rep, err = run("--udp", "127.0.0.1:%d" % c.udp_port, "--pings", 1000, "--batch", 10,
                           "--installs", 500, "--metrics", url, "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(rep["collector"]["received"], 1000)
        self.assertEqual(metric(c, "pings_accepted"), 6000)

    def test_udp_loss_is_what_the_collector_dropped(self):
        # A tiny socket queue and a burst far faster than the writer: the
        # kernel drops datagrams, and the loadgen must report exactly those.
        c = self.collector({"udp_recv_buffer": "64KiB"})
        url = "http://127.0.0.1:%d/metrics" % c.api_port
        rc, rep, err = run("--udp", "127.0.0.1:%d" % c.udp_port, "--pings", 100000, "--batch", 1,
                           "--installs", 100000, "--orgs", 1000, "--metrics", url, "--json")
        self.assertEqual(rc, 0, err)
        col = rep["collector"]
        self.assertGreater(col["lost"], 0, "nothing lost: the test did not overflow the queue")
        self.assertEqual(col["received"] + col["lost"], 100000)
        stats = c.stop()
        self.assertEqual(stats["udp_receive_queue_drops"], col["lost"])
        self.assertEqual(stats["pings_accepted"], col["accepted"])

    def test_token_file(self):
        c = self.collector(start=False)
        tok = os.path.join(c.root, "read.token")
        with open(tok, "w") as f:
            f.write("read-token-for-loadgen\n")
        set_options(c, {"read_token_file": tok})
        c.start()
        url = "http://127.0.0.1:%d/metrics" % c.api_port
        target = "127.0.0.1:%d" % c.udp_port
        rc, _, err = run("--udp", target, "--pings", 10, "--metrics", url)
        self.assertEqual(rc, 2)
        self.assertIn("HTTP 401", err)
        self.assertIn("--token-file", err)
        rc, rep, err = run("--udp", target, "--pings", 100, "--batch", 10, "--metrics", url,
                           "--token-file", tok, "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(rep["collector"]["received"], 100)

    def test_bad_uses_refused(self):
        c = self.collector()
        udp = "127.0.0.1:%d" % c.udp_port
        api = "http://127.0.0.1:%d" % c.api_port
        cases = [
            (["--tcp", "127.0.0.1:%d" % c.tcp_port, "--metrics", api + "/metrics"],
             "--metrics goes with --udp only"),
            (["--udp", udp, "--statsd", "--metrics", api + "/metrics"], "--metrics goes with --udp"),
            (["--udp", udp, "--metrics", "ftp://x/metrics"], "not an http:// or https:// URL"),
            (["--udp", udp, "--token-file", "/nonexistent"], "--token-file goes with --metrics"),
            (["--udp", udp, "--metrics", api + "/nope"], "HTTP 404"),
            (["--udp", udp, "--metrics", api + "/healthz"], "no warmline_pings_"),
            (["--udp", udp, "--metrics", api + "/metrics", "--token-file", "/nonexistent"],
             "No such file"),
            (["--udp", udp, "--metrics", "http://127.0.0.1:1/metrics"], "metrics http://127.0.0.1:1"),
        ]
        for args, msg in cases:
            rc, _, err = run(*(args + ["--pings", 10]))
            self.assertEqual(rc, 2, (args, err))
            self.assertIn(msg, err, args)
        # None of them sent anything: each stopped before its first datagram.
        self.assertEqual(c.stop()["udp_datagrams"], 0)


if __name__ == "__main__":
    unittest.main()
