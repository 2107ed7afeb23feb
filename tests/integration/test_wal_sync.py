"""The write-ahead log's sync failing under concurrent senders (issue 15:
pipelined group commit, collector/writer_sync.h).

With durability = sync the writer writes each group with sync=0 and a second
thread fsyncs the log while the writer applies the next group; an ack OK
must still mean that a sync begun after its group's write returned. An
LD_PRELOAD shim, built here, makes fsync and fdatasync take 200 ms and fail
with EIO while a trigger file exists (a disk that stops taking writes back;
writes to the page cache, with sync=0, go on meanwhile). Four connections,
each with frames in flight, send all along:

- no frame sent after the trigger appeared is acked OK while it is there:
  RETRY_LATER, never OK (an OK would claim a sync that failed);
- once it goes, the collector recovers (event=storage_recovered) and every
  frame, resent in order by its connection, gets OK;
- after SIGKILL and a restart, every ping sent is stored exactly once (each
  was acked OK by the end; a group that landed before its sync failed is
  deduplicated by (install_id, seq) when resent).

Releasing a group's acks at its write instead of after its sync fails the
first point.
"""

import collections
import os
import subprocess
import sys
import threading
import time
import unittest

from harness import CollectorCase, as_int, dump, make_pings, pb

N_CLIENTS = 4
WINDOW = 4                     # frames in flight per connection
PINGS_PER_FRAME = 10
OK_BEFORE = 200                # frames acked before the sync starts failing
REFUSED_WHILE_FAILING = 40     # RETRY_LATER acks of frames sent after it did
RECOVER_TIMEOUT = 30.0

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

/* A slow disk that then fails: the writer's sync=0 writes go on meanwhile,
 * so acks released before their sync would show. */
static int failing(void)
{
    const char *p = getenv("WL_TEST_FAIL_SYNC_IF");
    if (p == NULL || access(p, F_OK) != 0)
        return 0;
    usleep(200000);
    return 1;
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (failing()) {
        errno = EIO;
        return -1;
    }
    if (real == NULL)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}

int fsync(int fd)
{
    static int (*real)(int);
    if (failing()) {
        errno = EIO;
        return -1;
    }
    if (real == NULL)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}
"""


class Sender(threading.Thread):
    """One connection: keeps WINDOW frames in flight, reads acks in order;
    after a RETRY_LATER it lets the frames in flight come back (they are
    refused too: the connection is poisoned) and resends, in order, every
    frame it holds no OK for, after a short back-off."""

    def __init__(self, case, c, n, shared):
        super().__init__(daemon=True)
        self.case, self.n, self.s = case, n, shared
        self.cl = case.client(c)
        self.sent = {}          # batch_id -> pings
        self.ok = set()
        self.after = set()      # sent once the sync was failing
        self.refused_after = 0
        self.bad = []           # problems found (asserted by the main thread)
        self.next = n * 1000000 + 1

    def new_frame(self):
        bid = self.next
        self.next += 1
        self.sent[bid] = make_pings("c%d-%07d" % (self.n, bid), range(1, PINGS_PER_FRAME + 1))
        return bid

    def run(self):
        try:
            self._run()
        except Exception as e:  # reported by the main thread
            self.bad.append("client %d: %r" % (self.n, e))

    def _run(self):
        resend = collections.deque()
        inflight = collections.deque()
        retry = []
        while True:
            producing = not self.s["stop"].is_set()
            while not retry and len(inflight) < WINDOW and (resend or producing):
                bid = resend.popleft() if resend else self.new_frame()
                if self.s["failing"].is_set():
                    self.after.add(bid)
                self.cl.send_batch(self.sent[bid], batch_id=bid)
                inflight.append(bid)
            if not inflight:
                if not retry:
                    return  # stopped, and every frame acked OK
                resend.extendleft(reversed(retry))
                retry = []
                time.sleep(0.05)  # the client's back-off before it resends
                continue
            ack = self.cl.read_ack()
            bid = inflight.popleft()
            if ack.batch_id != bid:
                self.bad.append("ack for %d, expected %d" % (ack.batch_id, bid))
                return
            if ack.status == pb.Ack.OK:
                if bid in self.after and not self.s["healing"].is_set():
                    self.bad.append("batch %d sent while the sync failed was acked OK" % bid)
                self.ok.add(bid)
                with self.s["lock"]:
                    self.s["oks"] += 1
            elif ack.status == pb.Ack.RETRY_LATER:
                if bid in self.after and not self.s["healing"].is_set():
                    with self.s["lock"]:
                        self.s["refused_after"] += 1
                retry.append(bid)
            else:
                self.bad.append("batch %d: %s %r" % (bid, pb.Ack.Status.Name(ack.status),
                                                    ack.message))
                return


class WalSyncFails(CollectorCase):
    test_timeout = 150

    def build_shim(self, root):
        src = os.path.join(root, "failsync.c")
        lib = os.path.join(root, "failsync.so")
        with open(src, "w") as f:
            f.write(SHIM)
        r = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", lib, src, "-ldl"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, "cannot build the shim: %s" % r.stderr)
        return lib

    def wait_count(self, shared, key, n, what, timeout=RECOVER_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            with shared["lock"]:
                if shared[key] >= n:
                    return
            self.assertLess(time.monotonic(), deadline, "%s: %d of %d within %.0fs"
                            % (what, shared[key], n, timeout))
            time.sleep(0.02)

    def test_failed_sync_never_acked_ok_then_recovers_exactly_once(self):
        self.require_dump()
        c = self.collector({"install_ttl_ms": "365d", "durability": "sync"}, start=False,
                           name="walsync")
        lib = self.build_shim(c.root)
        trigger = os.path.join(c.root, "fail-sync")
        argv = c.argv
        # Under AddressSanitizer (make sanitize) the shim comes before ASan's
        # runtime in the preload list, which ASan refuses unless told.
        asan = os.environ.get("ASAN_OPTIONS", "")
        asan = (asan + ":" if asan else "") + "verify_asan_link_order=0"
        c.argv = lambda *extra: (["/usr/bin/env", "LD_PRELOAD=" + lib, "ASAN_OPTIONS=" + asan,
                                  "WL_TEST_FAIL_SYNC_IF=" + trigger] + argv(*extra))
        c.start()

        shared = {"lock": threading.Lock(), "oks": 0, "refused_after": 0,
                  "failing": threading.Event(), "healing": threading.Event(),
                  "stop": threading.Event()}
        senders = [Sender(self, c, n, shared) for n in range(N_CLIENTS)]
        for s in senders:
            s.start()
        self.wait_count(shared, "oks", OK_BEFORE, "frames acked OK before the failure")

        # ---- the sync fails: nothing sent from now on may be acked OK ----
        failed_from = len(c.lines)
        open(trigger, "w").close()
        shared["failing"].set()
        self.wait_count(shared, "refused_after", REFUSED_WHILE_FAILING,
                        "RETRY_LATER acks while the sync failed")
        c.wait_for(r"\bevent=write_failed\b.*", timeout=10, since=failed_from)

        # ---- it works again: every frame is resent until OK ----
        recovered_from = len(c.lines)
        shared["healing"].set()
        os.unlink(trigger)
        with shared["lock"]:
            oks = shared["oks"]
        self.wait_count(shared, "oks", oks + 100, "frames acked OK after the failure")
        shared["stop"].set()
        deadline = time.monotonic() + RECOVER_TIMEOUT
        for s in senders:
            s.join(max(0.1, deadline - time.monotonic()))
            self.assertFalse(s.is_alive(), "client %d still has frames refused" % s.n)
        self.assertEqual([p for s in senders for p in s.bad], [])
        c.wait_for(r"\bevent=storage_recovered\b", timeout=5, since=recovered_from)
        self.assertTrue(c.running())
        for s in senders:
            self.assertEqual(s.ok, set(s.sent), "client %d: a frame was never acked" % s.n)
        failures = [l for l in c.lines if " event=write_failed " in l]
        sys.stderr.write("\ntest_wal_sync: %d frames, %d refused while the sync failed, %d "
                         "failed writes or syncs, first: %s\n"
                         % (sum(len(s.sent) for s in senders), shared["refused_after"],
                            len(failures), failures[0][:200] if failures else "-"))

        # ---- after a crash, every ping sent is stored exactly once ----
        want = {(p.install_id, p.seq) for s in senders for ps in s.sent.values() for p in ps}
        c.kill()
        c.start()
        c.stop()
        keys = collections.Counter((p["install_id"], as_int(p["seq"]))
                                   for p in dump("pings", c.data_dir))
        self.assertEqual([k for k, n in keys.items() if n > 1], [])
        self.assertEqual(set(keys) - want, set())
        self.assertEqual(want - set(keys), set())


if __name__ == "__main__":
    unittest.main()
