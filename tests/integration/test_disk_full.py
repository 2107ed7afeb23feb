"""Disk full: the collector's data directory on a small filesystem.

The filesystem is, in order of preference: a small tmpfs mounted for the
test; an ext4 image mounted through a loop device; or, when this machine
allows no mount, RLIMIT_FSIZE lowered on the running collector (prlimit),
which makes every write past the limit fail with EFBIG. The test prints
which one it used (WL_DISKFULL_METHOD=tmpfs|loop|rlimit forces one) and
never skips.

A ballast file, put in while the collector is down, leaves it 2 MiB; once
that is full (the frames sent before are acked):
- a frame the collector cannot store gets RETRY_LATER, never OK: every OK
  ack of the whole test is found stored, after a crash and after a clean
  restart;
- the API keeps serving: /healthz 200, /readyz 200 (the collector is up and
  answers every frame; storage trouble shows in /metrics, not in readiness),
  reads such as /v1/signals 200, /metrics counts the failed writes
  (warmline_write_errors_total);
- the log says why: event=write_failed error="...No space left on device..."
  (or "File too large" under RLIMIT_FSIZE);
- when the ballast goes, the collector recovers by itself (event=
  storage_recovered): the frames it refused are resent and get OK, new
  frames get OK, and every acked ping is stored exactly once.
"""

import collections
import os
import resource
import subprocess
import sys
import time
import unittest

from prometheus_client.parser import text_string_to_metric_families

from harness import CollectorCase, api_call, as_int, dump, make_pings, pb

FS_BYTES = 24 << 20
LEAVE_BYTES = 2 << 20           # free when the collector starts again
PINGS_PER_FRAME = 50
MAX_FILL_FRAMES = 4000          # the WAL may hold preallocated room: send until refused
RECOVER_TIMEOUT = 20.0

# Ignore SIGXFSZ, then become the collector (same pid): under RLIMIT_FSIZE a
# write past the limit then fails with EFBIG instead of killing the process.
_IGNORE_XFSZ = ("import os, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                "os.execv(sys.argv[1], sys.argv[1:])")


def _run(argv):
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)


class SmallFs:
    """A small filesystem at path, filled and freed on demand."""

    def __init__(self, root, method=None):
        self.root = root
        self.path = os.path.join(root, "small")
        self.image = os.path.join(root, "small.img")
        self.ballast = os.path.join(self.path, "ballast")
        self.mounted = False
        self.pid = None
        os.mkdir(self.path)
        tried = []
        for m in ([method] if method else ["tmpfs", "loop", "rlimit"]):
            why = getattr(self, "_setup_" + m)()
            if why is None:
                self.method = m
                self.tried = tried
                return
            tried.append("%s: %s" % (m, why))
        raise AssertionError("no small filesystem could be made: %s" % "; ".join(tried))

    def _setup_tmpfs(self):
        r = _run(["mount", "-t", "tmpfs", "-o", "size=%d" % FS_BYTES, "tmpfs", self.path])
        if r.returncode != 0:
            return r.stderr.strip() or "mount exit %d" % r.returncode
        self.mounted = True
        return None

    def _setup_loop(self):
        with open(self.image, "wb") as f:
            f.truncate(FS_BYTES)
        r = _run(["mkfs.ext4", "-q", "-F", "-m", "0", self.image])
        if r.returncode != 0:
            return "mkfs.ext4: " + (r.stderr.strip() or "exit %d" % r.returncode)
        r = _run(["mount", "-o", "loop", self.image, self.path])
        if r.returncode != 0:
            return r.stderr.strip() or "mount exit %d" % r.returncode
        self.mounted = True
        return None

    def _setup_rlimit(self):
        return None  # a plain directory; the limit goes on the process

    def wrap(self, argv):
        """The collector's argv, through a SIGXFSZ-ignoring exec under rlimit."""
        if self.method != "rlimit":
            return argv
        return ["/usr/bin/python3", "-c", _IGNORE_XFSZ] + argv

    def describe(self):
        if self.method == "rlimit":
            return "RLIMIT_FSIZE on the collector (no mount possible: %s)" % "; ".join(self.tried)
        kind = "tmpfs" if self.method == "tmpfs" else "ext4 image on a loop device"
        return "%s of %d MiB at %s" % (kind, FS_BYTES >> 20, self.path)

    def avail(self):
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave):
        """While the collector is down: a ballast file takes all but leave
        bytes (RocksDB preallocates its WAL on ext4, taking whatever is free
        when it opens: the ballast must come first to be space that can
        return)."""
        if self.method == "rlimit":
            return
        chunk = bytes(1 << 20)
        with open(self.ballast, "wb", buffering=0) as f:
            while self.avail() > leave:
                f.write(chunk[:min(len(chunk), self.avail() - leave)])
        if not 0 < self.avail() <= leave + 65536:
            raise AssertionError("%s: %d bytes free, wanted %d" % (self.path, self.avail(), leave))

    def clamp(self, pid):
        """Under rlimit (the collector running): no file may grow any more."""
        if self.method == "rlimit":
            self.pid = pid
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))

    def free(self):
        if self.method == "rlimit":
            resource.prlimit(self.pid, resource.RLIMIT_FSIZE,
                             (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            return
        os.unlink(self.ballast)

    def close(self):
        if self.mounted:
            r = _run(["umount", self.path])
            if r.returncode != 0:
                _run(["umount", "-l", self.path])
            self.mounted = False


def write_errors(c):
    r = api_call(c.api_port, "GET", "/metrics")
    if r.status != 200:
        raise AssertionError("/metrics: %r" % r)
    for fam in text_string_to_metric_families(r.body.decode("utf-8")):
        for s in fam.samples:
            if s.name == "warmline_write_errors_total":
                return int(s.value)
    raise AssertionError("no warmline_write_errors_total in /metrics")


class DiskFull(CollectorCase):
    test_timeout = 120

    def test_full_disk_retry_later_api_up_recovers(self):
        self.require_dump()
        c = self.collector({"install_ttl_ms": "365d"}, start=False, name="diskfull")
        fs = SmallFs(c.root, os.environ.get("WL_DISKFULL_METHOD") or None)

        def cleanup():
            c.kill()
            fs.close()
        self.addCleanup(cleanup)
        sys.stderr.write("\ntest_disk_full: data directory on %s\n" % fs.describe())
        c.data_dir = os.path.join(fs.path, "data")
        argv = c.argv
        c.argv = lambda *extra: fs.wrap(argv(*extra))
        c.start()

        acked = {}                 # batch_id -> pings, every OK of the test
        sent = {}                  # batch_id -> pings, everything sent
        next_id = [1]

        def new_frame(prefix):
            bid = next_id[0]
            next_id[0] += 1
            sent[bid] = make_pings("%s-%05d" % (prefix, bid), range(1, PINGS_PER_FRAME + 1))
            return bid

        def request(cl, bid):
            ack = cl.request(sent[bid], batch_id=bid)
            if ack.status == pb.Ack.OK:
                self.assertEqual(ack.accepted + ack.duplicates, PINGS_PER_FRAME)
                acked[bid] = sent[bid]
            elif ack.status != pb.Ack.RETRY_LATER:
                self.fail("batch %d: %s %r" % (bid, pb.Ack.Status.Name(ack.status),
                                               ack.message))
            return ack.status

        with self.client(c) as cl:
            for _ in range(10):
                self.assertEqual(request(cl, new_frame("before")), pb.Ack.OK)
        # The ballast goes in while the collector is down (as a disk filled
        # by something else would be), then it starts with little room.
        c.stop()
        fs.fill(LEAVE_BYTES)
        c.start()
        cl = self.client(c)
        errors_before = write_errors(c)
        self.assertEqual(errors_before, 0)

        # ---- full ----
        fs.clamp(c.pid)
        refused = []
        for _ in range(MAX_FILL_FRAMES):
            bid = new_frame("full")
            if request(cl, bid) == pb.Ack.RETRY_LATER:
                refused.append(bid)
                break
        self.assertTrue(refused, "no RETRY_LATER after %d frames on a full filesystem"
                        % MAX_FILL_FRAMES)
        # Still full: more frames, on this and on a new connection, are
        # refused too (an OK would have to be durable: checked at the end).
        cl2 = self.client(c)
        for conn in (cl, cl2, cl, cl2):
            bid = new_frame("full")
            if request(conn, bid) == pb.Ack.RETRY_LATER:
                refused.append(bid)
        self.assertGreaterEqual(len(refused), 3, "frames got OK on a full filesystem")

        why = c.wait_for(r"\bevent=write_failed\b.*", timeout=5).group(0)
        want = "File too large" if fs.method == "rlimit" else "No space left on device"
        self.assertIn(want, why)
        self.assertEqual(api_call(c.api_port, "GET", "/healthz").status, 200)
        self.assertEqual(api_call(c.api_port, "GET", "/readyz").status, 200)
        self.assertEqual(api_call(c.api_port, "GET", "/v1/signals?after=0").status, 200)
        r = api_call(c.api_port, "GET", "/v1/accounts/before-00001")
        self.assertEqual(r.status, 200, r)
        self.assertGreater(write_errors(c), errors_before)
        self.assertTrue(c.running())

        # ---- space returns ----
        recovered_from = len(c.lines)
        fs.free()
        deadline = time.monotonic() + RECOVER_TIMEOUT
        attempts = 0
        for bid in refused:  # the client resends, in order, until OK
            while request(cl, bid) != pb.Ack.OK:
                attempts += 1
                self.assertLess(time.monotonic(), deadline,
                                "batch %d still refused %.0fs after space returned"
                                % (bid, RECOVER_TIMEOUT))
                time.sleep(0.1)  # the client's back-off between resends
        c.wait_for(r"\bevent=storage_recovered\b", timeout=5, since=recovered_from)
        for _ in range(5):
            self.assertEqual(request(cl2, new_frame("after")), pb.Ack.OK)
        self.assertEqual(sorted(acked), sorted(sent), "a frame was never acked")
        sys.stderr.write("test_disk_full: %d frames acked before the first refusal, %d refused "
                         "while full, %d refused resends after space returned, write errors "
                         "%d\n" % (len([b for b in acked if b < refused[0]]), len(refused),
                                   attempts, write_errors(c)))

        # ---- nothing acked is lost: after a clean restart, and after a crash ----
        want_keys = {(p.install_id, p.seq) for ps in acked.values() for p in ps}
        for how in ("stop", "kill"):  # stop first: the run that reopened exits cleanly
            with self.subTest(restart=how):
                if how == "kill":
                    c.kill()
                else:
                    c.stop()
                c.start()
                c.stop()
                keys = collections.Counter((p["install_id"], as_int(p["seq"]))
                                           for p in dump("pings", c.data_dir))
                self.assertEqual([k for k, n in keys.items() if n > 1], [])
                self.assertEqual(set(keys), want_keys)
                c.start()


if __name__ == "__main__":
    unittest.main()
