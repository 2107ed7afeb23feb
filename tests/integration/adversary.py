"""What an adversarial sender needs, for test_adversarial.py and bench/adversarial:

- colliding inputs for uthash's default hash (Bob Jenkins' lookup2, HASH_JEN in
  <uthash.h>), computed here and now, never stored:
  * org ids (a tag byte and the 32-byte org_key, storage/keys.h): full 32-bit
    collisions by inverting lookup2's mix, no search (colliding_org_keys);
  * printable strings whose hash falls in a chosen range of its low bits, by a
    search in C (uthash_collide.c, built with cc on first use and run through
    HASH_VALUE of the system's own <uthash.h>);
- the cost of a thread of the collector in CPU nanoseconds
  (/proc/PID/task/TID/schedstat), the writer found by its name wl-writer;
- a TCP sender that keeps a few envelopes in flight and checks every ack;
- /metrics as a dict and the collector's RSS.

Nothing here reads a wall clock to judge the collector: tests compare the CPU
the writer spent on an attack with what it spent on as many ordinary pings.
"""

import os
import random
import subprocess
import tempfile

from harness import (TcpClient, envelope_bytes, fmt_ack, frame, pb,
                     scrape_metrics, status_kib, wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
COLLIDE_SRC = os.path.join(HERE, "uthash_collide.c")

M32 = 0xFFFFFFFF
ORG_TAG_KEY = b"k"   # storage/keys.h: WL_ORG_TAG_KEY, then the 32-byte org_key
ORG_KEY_BYTES = 32


# --------------------------------------------------------------------------
# lookup2 (uthash's HASH_JEN): the mix, its inverse, and the hash.

def _mix(a, b, c):
    a = (a - b - c) & M32; a ^= c >> 13
    b = (b - c - a) & M32; b ^= (a << 8) & M32
    c = (c - a - b) & M32; c ^= b >> 13
    a = (a - b - c) & M32; a ^= c >> 12
    b = (b - c - a) & M32; b ^= (a << 16) & M32
    c = (c - a - b) & M32; c ^= b >> 5
    a = (a - b - c) & M32; a ^= c >> 3
    b = (b - c - a) & M32; b ^= (a << 10) & M32
    c = (c - a - b) & M32; c ^= b >> 15
    return a, b, c


def _unmix(a, b, c):
    """The inverse of _mix: each step changed one word from the other two,
    which it left alone, so the steps undo in reverse order."""
    c ^= b >> 15; c = (c + a + b) & M32
    b ^= (a << 10) & M32; b = (b + c + a) & M32
    a ^= c >> 3; a = (a + b + c) & M32
    c ^= b >> 5; c = (c + a + b) & M32
    b ^= (a << 16) & M32; b = (b + c + a) & M32
    a ^= c >> 12; a = (a + b + c) & M32
    c ^= b >> 13; c = (c + a + b) & M32
    b ^= (a << 8) & M32; b = (b + c + a) & M32
    a ^= c >> 13; a = (a + b + c) & M32
    return a, b, c


def _words(block):
    return [int.from_bytes(block[i:i + 4], "little") for i in (0, 4, 8)]


def _after_block(state, block):
    a, b, c = state
    w = _words(block)
    return _mix((a + w[0]) & M32, (b + w[1]) & M32, (c + w[2]) & M32)


_JEN_INIT = (0x9E3779B9, 0x9E3779B9, 0xFEEDBEEF)


def lookup2(data):
    """HASH_JEN of data, as <uthash.h> computes it (for self-checks)."""
    state, n = _JEN_INIT, len(data)
    pos = 0
    while n - pos >= 12:
        state = _after_block(state, data[pos:pos + 12])
        pos += 12
    tail = data[pos:] + bytes(12 - (n - pos))
    a, b, c = state
    w = _words(tail)
    # The last block's byte 0 of the third word is the length (its bytes 8..10
    # go in shifted up by 8).
    c = (c + n + (w[2] << 8)) & M32
    return _mix((a + w[0]) & M32, (b + w[1]) & M32, c)[2]


def colliding_org_keys(n, seed=1):
    """n distinct 32-byte org keys whose org ids (b"k" + key, 33 bytes) reach
    the same lookup2 state after their second 12-byte block, so they hash
    alike whatever follows: a full collision in uthash's org table. The first
    block (the tag and 11 key bytes) is random, the second block is solved for
    by inverting the mix, the last 9 bytes are shared."""
    rng = random.Random(seed)
    target = _unmix(rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(32))
    tail = bytes(rng.getrandbits(8) for _ in range(9))
    keys, seen = [], set()
    while len(keys) < n:
        block1 = ORG_TAG_KEY + bytes(rng.getrandbits(8) for _ in range(11))
        if block1 in seen:
            continue
        seen.add(block1)
        s1 = _after_block(_JEN_INIT, block1)
        block2 = b"".join(((t - s) & M32).to_bytes(4, "little") for t, s in zip(target, s1))
        keys.append(block1[1:] + block2 + tail)
    return keys


def org_id(key):
    return ORG_TAG_KEY + key


# --------------------------------------------------------------------------
# The C search for printable strings (uthash_collide.c).

_helper_path = None


def collide_helper():
    """Path of uthash_collide, built once per process with cc."""
    global _helper_path
    if _helper_path is None or not os.access(_helper_path, os.X_OK):
        out = os.path.join(tempfile.mkdtemp(prefix="wl-collide-"), "uthash_collide")
        r = subprocess.run(["cc", "-O2", "-o", out, COLLIDE_SRC], capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError("cc %s failed:\n%s" % (COLLIDE_SRC, r.stderr))
        _helper_path = out
    return _helper_path


def uthash_values(inputs):
    """HASH_VALUE of each bytes input, by <uthash.h> itself."""
    text = "".join(bytes(i).hex() + "\n" for i in inputs)
    r = subprocess.run([collide_helper(), "hash"], input=text, capture_output=True, text=True,
                       timeout=120, check=True)
    return [int(x) for x in r.stdout.split()]


def strings_in_range(mask, lo, hi, count, length, prefix, seed=1):
    """count distinct printable strings of length bytes starting with prefix
    whose uthash hash & mask is in [lo, hi)."""
    r = subprocess.run([collide_helper(), "search", hex(mask), str(lo), str(hi), str(count),
                        str(length), str(seed), prefix],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise AssertionError("uthash_collide search: %s" % r.stderr)
    out = r.stdout.split()
    if len(out) != count or len(set(out)) != count:
        raise AssertionError("uthash_collide search: %d strings, %d distinct, want %d"
                             % (len(out), len(set(out)), count))
    return out


# --------------------------------------------------------------------------
# Threads of the collector and their CPU time.

def thread_named(pid, name, timeout=10.0):
    """The tid of the collector's thread called name (/proc/PID/task/*/comm).
    A thread names itself once it runs: polled until it has."""
    def find():
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                    if f.read().strip() == name:
                        return int(tid)
            except OSError:
                continue
        return None
    return wait_until(find, timeout=timeout, interval=0.01,
                      what="a thread named %s in process %d" % (name, pid))


def thread_cpu_ns(pid, tid):
    """CPU time the thread has run, in ns (schedstat's first field)."""
    with open("/proc/%d/task/%d/schedstat" % (pid, tid)) as f:
        return int(f.read().split()[0])


class ThreadMeter:
    """CPU of one thread of a running collector: the writer (wl-writer) by
    default, or the main thread (the ingest loop) with name=None."""

    def __init__(self, pid, name="wl-writer"):
        self.pid = pid
        self.tid = pid if name is None else thread_named(pid, name)

    def now(self):
        return thread_cpu_ns(self.pid, self.tid)

    def measure(self, fn, *args, **kw):
        """(CPU ns the thread spent while fn ran, fn's result)."""
        t0 = self.now()
        out = fn(*args, **kw)
        return self.now() - t0, out


def rss_kib(pid, field="VmRSS"):
    return status_kib(pid, field)


def metrics(api_port):
    """{name or name{labels}: value} of GET /metrics."""
    return {name + ("{%s}" % ",".join('%s="%s"' % kv for kv in labels) if labels else ""): v
            for (name, labels), v in scrape_metrics(api_port).items()}


# --------------------------------------------------------------------------
# Traffic.

# Counts that fire none of the bundled rules on their own (mau_over_25 needs
# more than 25 monthly users): an ordinary ping costs what a ping costs.
QUIET = dict(version="9.11.2", edition="team", database_type="postgres",
             operating_system="linux", installation_type="docker", registered_users=12,
             active_users_daily=4, active_users_monthly=9, teams=1, public_channels=3,
             posts=420)
COMMON_FEATURES = ("plugins_enabled", "bleve_indexing", "custom_emoji")


def ping(install_id, seq, org_key=b"", features=COMMON_FEATURES, sent_at=None, **fields):
    """A serialized Ping with QUIET counts (fields override them)."""
    p = pb.Ping(install_id=install_id, seq=seq, org_key=org_key)
    values = dict(QUIET)
    values.update(fields)
    for k, v in values.items():
        setattr(p, k, v)
    if sent_at is not None:
        p.sent_at = sent_at
    p.features.extend(features)
    return p.SerializeToString()


def random_id(rng, prefix="o-"):
    return prefix + "%024x" % rng.getrandbits(96)


def ordinary_pings(n, rng, features=COMMON_FEATURES):
    """n first pings of fresh installs, each in a fresh organization."""
    return [ping(random_id(rng), 1, org_key=rng.randbytes(32), features=features)
            for _ in range(n)]


def envelopes(pings, max_pings=500, max_bytes=256 * 1024):
    """Serialized pings cut into lists of at most max_pings and max_bytes."""
    out, cur, size = [], [], 0
    for p in pings:
        if cur and (len(cur) == max_pings or size + len(p) + 4 > max_bytes):
            out.append(cur)
            cur, size = [], 0
        cur.append(p)
        size += len(p) + 4
    if cur:
        out.append(cur)
    return out


def send_all(port, pings, window=4, max_pings=500, timeout=120.0, compress=False):
    """Sends pings over one TCP connection in envelopes, window of them in
    flight, and waits for every ack: once it returns, the writer has applied
    and committed them all. Fails unless every ping was accepted. Returns the
    number of envelopes."""
    batches = envelopes(pings, max_pings=max_pings)
    cl = TcpClient(port, timeout=timeout)
    try:
        sent = acked = 0
        while acked < len(batches):
            while sent < len(batches) and sent - acked < window:
                cl.send_raw(frame(envelope_bytes(batches[sent], batch_id=sent + 1,
                                                 compress=compress)))
                sent += 1
            ack = cl.read_ack(timeout)
            want = len(batches[acked])
            acked += 1
            if (ack.status != pb.Ack.OK or ack.batch_id != acked or ack.accepted != want):
                raise AssertionError("envelope %d of %d pings: %s" % (acked, want, fmt_ack(ack)))
        return len(batches)
    finally:
        cl.close()
