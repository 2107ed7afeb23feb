"""Ingest: good traffic over UDP and TCP reaches storage, acks say so only once
it is durable, duplicates are recognised, and connections are managed
(limits, idle timeout, clean shutdown)."""

import signal
import socket
import sys
import threading
import time
import unittest
import zlib

from harness import (CLOSED, IO_TIMEOUT, LOCALHOST, CollectorCase, TcpClient, UdpSender, as_int,
                     dumped_ping_keys, envelope_bytes, frame, make_ping, make_pings, pb)


def keys_of(pings):
    return {(p.install_id, p.seq) for p in pings}


class UdpDelivery(CollectorCase):

    def test_udp_datagrams_are_stored(self):
        c = self.collector()
        sent = []
        datagrams = 0
        with UdpSender(c.udp_port) as u:
            for seq in range(1, 31):                      # one ping per datagram
                p = make_ping("udp-single", seq)
                u.send(envelope_bytes([p], batch_id=seq))
                sent.append(p)
                datagrams += 1
            multi = [make_ping("udp-multi-%d" % k, 1) for k in range(10)]
            u.send(envelope_bytes(multi, batch_id=100))  # ten installs in one datagram
            sent += multi
            datagrams += 1
            zipped = make_pings("udp-zlib", range(1, 6))
            u.send(envelope_bytes(zipped, batch_id=101, compress=True))
            sent += zipped
            datagrams += 1

        c.wait_stats(lambda s: s["pings_accepted"] >= len(sent),
                     what="pings_accepted >= %d" % len(sent))

        # Arrival, proved through dedup: the same pings over TCP are duplicates.
        with self.client(c) as cl:
            again = [make_ping("udp-single", 30), make_ping("udp-multi-3", 1),
                     make_ping("udp-zlib", 5)]
            self.assertAck(cl.request(again, batch_id=1), "OK", accepted=0, duplicates=3,
                           rejected=0, batch_id=1)

        stats = c.stop()
        self.assertEqual(stats["udp_datagrams"], datagrams)
        self.assertEqual(stats["pings_accepted"], len(sent))
        self.assertEqual(stats["pings_duplicate"], 3)
        self.assertEqual(stats["pings_rejected"], 0)
        self.assertEqual(stats["batches_rejected"], 0)

        with self.subTest("on disk: warmline dump pings"):
            self.require_dump()
            self.assertEqual(dumped_ping_keys(c.dump("pings")), keys_of(sent))


class TcpDelivery(CollectorCase):

    def test_tcp_batches_plain_and_zlib_are_acked(self):
        c = self.collector()
        sent = []
        with self.client(c) as cl:
            plain = make_pings("tcp-plain", range(1, 11))
            self.assertAck(cl.request(plain, batch_id=11), "OK", accepted=10, duplicates=0,
                           rejected=0, batch_id=11)
            sent += plain

            zipped = make_pings("tcp-zlib", range(1, 11))
            self.assertAck(cl.request(zipped, batch_id=12, compress=True), "OK", accepted=10,
                           duplicates=0, rejected=0, batch_id=12)
            sent += zipped

            # Inflates to well over one 64 KiB inflate step.
            big = [make_ping("tcp-big-%04d" % i, 1, features=["saml_configured"])
                   for i in range(2000)]
            self.assertAck(cl.request(big, batch_id=13, compress=True), "OK", accepted=2000,
                           batch_id=13)
            sent += big

            top = make_pings("tcp-id", [1])
            self.assertAck(cl.request(top, batch_id=2**64 - 1), "OK", accepted=1,
                           batch_id=2**64 - 1)
            sent += top

            # An empty batch is a valid envelope: OK, nothing counted.
            self.assertAck(cl.request([], batch_id=14), "OK", accepted=0, duplicates=0,
                           rejected=0, batch_id=14)

        stats = c.stop()
        self.assertEqual(stats["tcp_frames"], 5)
        self.assertEqual(stats["pings_accepted"], len(sent))
        self.assertEqual(stats["batches_rejected"], 0)

        with self.subTest("on disk: warmline dump pings"):
            self.require_dump()
            self.assertEqual(dumped_ping_keys(c.dump("pings")), keys_of(sent))

    def test_half_closed_connection_gets_every_ack_then_the_close(self):
        # Twenty frames in one write, then the client's write side shut: the
        # acks of a round go out together (one write a connection), and the
        # last round's must go before the collector's own shutdown, not be
        # dropped with it.
        c = self.collector()
        n_frames = 20
        with TcpClient(c.tcp_port) as cl:
            cl.send_raw(b"".join(
                frame(envelope_bytes(make_pings("half-%02d" % f, [1, 2]), batch_id=500 + f))
                for f in range(n_frames)))
            cl.sock.shutdown(socket.SHUT_WR)
            acks = [cl.read_ack() for _ in range(n_frames)]
            self.assertNotIn(CLOSED, acks, "the connection closed before its last ack")
            self.assertEqual([a.batch_id for a in acks], [500 + f for f in range(n_frames)])
            for a in acks:
                self.assertAck(a, "OK", accepted=2, duplicates=0, rejected=0)
            self.assertEqual(cl.read_message(), CLOSED)
        stats = c.stop()
        self.assertEqual(stats["pings_accepted"], 2 * n_frames)

    def test_many_concurrent_connections_ack_in_frame_order(self):
        n_conn, n_frames, n_pings = 50, 5, 5
        c = self.collector()
        barrier = threading.Barrier(n_conn, timeout=IO_TIMEOUT)
        results, errors = {}, []
        lock = threading.Lock()

        def worker(k):
            try:
                with TcpClient(c.tcp_port) as cl:
                    with lock:
                        self._sockets.append(cl.sock)
                    barrier.wait()
                    # Frames 0..3: fresh pings; frame 4 repeats frame 0, so its
                    # ack must count duplicates: acks are tied to their frames,
                    # not only to their batch_ids. All in one write: pipelined.
                    bodies = [make_pings("conc-%02d-%d" % (k, f), range(1, n_pings + 1))
                              for f in range(n_frames - 1)]
                    bodies.append(bodies[0])
                    stream = b"".join(
                        frame(envelope_bytes(b, batch_id=k * 1000 + f, compress=(f % 2 == 1)))
                        for f, b in enumerate(bodies))
                    cl.send_raw(stream)
                    acks = [cl.read_ack() for _ in range(n_frames)]
                with lock:
                    results[k] = acks
            except Exception as e:  # reported below, with the connection number
                with lock:
                    errors.append("connection %d: %r" % (k, e))
                barrier.abort()

        threads = [threading.Thread(target=worker, args=(k,), daemon=True)
                   for k in range(n_conn)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self.assertFalse([t for t in threads if t.is_alive()], "client threads still running")
        self.assertEqual(errors, [])
        self.assertEqual(len(results), n_conn)
        for k, acks in sorted(results.items()):
            self.assertEqual([a.batch_id for a in acks], [k * 1000 + f for f in range(n_frames)],
                             "connection %d: acks out of frame order" % k)
            for f, a in enumerate(acks):
                if f < n_frames - 1:
                    self.assertAck(a, "OK", accepted=n_pings, duplicates=0, rejected=0)
                else:
                    self.assertAck(a, "OK", accepted=0, duplicates=n_pings, rejected=0)

        stats = c.stop()
        self.assertEqual(stats["tcp_connections"], n_conn)
        self.assertEqual(stats["tcp_refused"], 0)
        self.assertEqual(stats["tcp_frames"], n_conn * n_frames)
        self.assertEqual(stats["pings_accepted"], n_conn * (n_frames - 1) * n_pings)
        self.assertEqual(stats["pings_duplicate"], n_conn * n_pings)


class Durability(CollectorCase):

    def test_ok_ack_survives_kill9(self):
        # durability=sync acks after the WAL fsync; async after the write.
        # A SIGKILL (not a power cut) must lose neither.
        for mode in ("sync", "async"):
            with self.subTest(durability=mode):
                c = self.collector({"durability": mode}, name="collector-" + mode)
                self.assertEqual(c.writer_started()["durability"], mode)
                first = make_pings("durable", range(1, 51)) + [make_ping("durable-2", 1)]
                zipped = make_pings("durable-z", range(1, 11))
                with self.client(c) as cl:
                    self.assertAck(cl.request(first, batch_id=1), "OK", accepted=51)
                    self.assertAck(cl.request(zipped, batch_id=2, compress=True), "OK",
                                   accepted=10)
                    c.kill()  # straight after the ack: no shutdown code runs
                self.assertEqual(c.last_rc, -signal.SIGKILL)
                self.assertFalse(c.find_lines(r"\bevent=stats_final\b"))

                c.restart()
                loaded = c.writer_started()
                self.assertEqual(loaded["ingest_seq"], 61, loaded)
                self.assertEqual(loaded["installs"], 3, loaded)
                with self.client(c) as cl:
                    self.assertAck(cl.request(first, batch_id=3), "OK", accepted=0,
                                   duplicates=51)
                    self.assertAck(cl.request(zipped, batch_id=4, compress=True), "OK",
                                   accepted=0, duplicates=10)
                    self.assertAck(cl.request([make_ping("durable", 51)], batch_id=5), "OK",
                                   accepted=1, duplicates=0)
                c.stop()
                with self.subTest(durability=mode, check="on disk: warmline dump"):
                    self.require_dump()
                    self.assertEqual(dumped_ping_keys(c.dump("pings")),
                                     keys_of(first + zipped) | {("durable", 51)})
                    installs = {r["install_id"]: as_int(r["last_seq"])
                                for r in c.dump("installs")}
                    self.assertEqual(installs, {"durable": 51, "durable-2": 1, "durable-z": 10})

    def test_kill9_with_frames_in_flight_keeps_every_acked_ping(self):
        c = self.collector({"durability": "sync"})
        n_frames, per = 200, 20
        batches = [make_pings("inflight-%03d" % b, range(1, per + 1)) for b in range(n_frames)]
        acked = []
        with self.client(c) as cl:
            cl.send_raw(b"".join(frame(envelope_bytes(b, batch_id=i + 1))
                                 for i, b in enumerate(batches)))
            while len(acked) < 30:
                ack = cl.read_ack()
                self.assertAck(ack, "OK", accepted=per, batch_id=len(acked) + 1)
                acked.append(ack.batch_id)
            c.kill()  # later frames are queued, being written, or unread
        c.restart()
        loaded = c.writer_started()
        self.assertGreaterEqual(loaded["ingest_seq"], len(acked) * per, loaded)
        with self.client(c) as cl:
            for bid in acked:
                self.assertAck(cl.request(batches[bid - 1], batch_id=bid), "OK", accepted=0,
                               duplicates=per)
        c.stop()
        with self.subTest("on disk: warmline dump pings"):
            self.require_dump()
            on_disk = dumped_ping_keys(c.dump("pings"))
            for bid in acked:
                self.assertLessEqual(keys_of(batches[bid - 1]), on_disk)


class Dedup(CollectorCase):

    def test_resend_and_lower_seq_are_duplicates(self):
        c = self.collector()
        first = make_pings("dedup-a", range(1, 6)) + make_pings("dedup-b", range(1, 4))
        with self.client(c) as cl:
            self.assertAck(cl.request(first, batch_id=1), "OK", accepted=8, duplicates=0)
            # The same batch again: nothing new.
            self.assertAck(cl.request(first, batch_id=2), "OK", accepted=0, duplicates=8)
            # Lower and equal seqs are duplicates; higher ones are accepted.
            mixed = [make_ping("dedup-a", 2), make_ping("dedup-a", 5), make_ping("dedup-a", 6),
                     make_ping("dedup-b", 1), make_ping("dedup-c", 1)]
            self.assertAck(cl.request(mixed, batch_id=3), "OK", accepted=2, duplicates=3)
            # Within one batch: a repeat of a seq just accepted is a duplicate,
            # and a lower seq after a higher one too.
            within = [make_ping("dedup-d", 7), make_ping("dedup-d", 7), make_ping("dedup-d", 3),
                      make_ping("dedup-d", 8)]
            self.assertAck(cl.request(within, batch_id=4, compress=True), "OK", accepted=2,
                           duplicates=2)
        # Over UDP, then proved over TCP.
        with UdpSender(c.udp_port) as u:
            u.send(envelope_bytes(first, batch_id=5))
        c.wait_stats(lambda s: s["pings_duplicate"] >= 8 + 3 + 2 + 8,
                     what="UDP resend counted as duplicates")
        stats = c.stop()
        self.assertEqual(stats["pings_accepted"], 8 + 2 + 2)
        self.assertEqual(stats["pings_duplicate"], 8 + 3 + 2 + 8)
        with self.subTest("on disk: warmline dump"):
            self.require_dump()
            want = keys_of(first) | {("dedup-a", 6), ("dedup-c", 1), ("dedup-d", 7),
                                     ("dedup-d", 8)}
            self.assertEqual(dumped_ping_keys(c.dump("pings")), want)
            installs = {r["install_id"]: as_int(r["last_seq"]) for r in c.dump("installs")}
            self.assertEqual(installs, {"dedup-a": 6, "dedup-b": 3, "dedup-c": 1, "dedup-d": 8})


class Partial(CollectorCase):

    def test_partial_batch_stores_the_good_pings(self):
        c = self.collector()
        good = make_pings("partial-good", range(1, 4))
        bad = make_ping("partial-bad", 0)  # seq 0
        with self.client(c) as cl:
            ack = cl.request(good[:2] + [bad] + good[2:], batch_id=21)
            self.assertAck(ack, "PARTIAL", accepted=3, duplicates=0, rejected=1, batch_id=21,
                           message_contains="seq_zero")
            # The good ones landed: resent, they are duplicates.
            self.assertAck(cl.request(good, batch_id=22), "OK", accepted=0, duplicates=3)
            # Duplicates plus one bad ping: still PARTIAL, nothing accepted.
            ack = cl.request(good + [make_ping("", 1)], batch_id=23)
            self.assertAck(ack, "PARTIAL", accepted=0, duplicates=3, rejected=1,
                           message_contains="install_id_empty")
            # Every ping bad: REJECTED, with the count.
            ack = cl.request([bad, make_ping("partial-bad", 0)], batch_id=24)
            self.assertAck(ack, "REJECTED", accepted=0, duplicates=0, rejected=2, batch_id=24,
                           message_contains="seq_zero")
            # The connection is still good.
            self.assertAck(cl.request([make_ping("partial-good", 4)], batch_id=25), "OK",
                           accepted=1)
        stats = c.stop()
        self.assertEqual(stats["pings_accepted"], 4)
        self.assertEqual(stats["pings_rejected"], 4)
        self.assertEqual(stats.get("rejected_seq_zero"), 3)
        self.assertEqual(stats.get("rejected_install_id_empty"), 1)
        self.assertEqual(stats["batches_rejected"], 0)
        with self.subTest("on disk: warmline dump"):
            self.require_dump()
            self.assertEqual(dumped_ping_keys(c.dump("pings")),
                             keys_of(good) | {("partial-good", 4)})
            reasons = sorted(r["reason"] for r in c.dump("quarantine"))
            self.assertEqual(reasons, ["install_id_empty"] + ["seq_zero"] * 3)


class Shutdown(CollectorCase):

    def test_sigterm_while_streaming_keeps_every_acked_ping(self):
        c = self.collector({"durability": "sync"})
        per = 10
        window = threading.Semaphore(32)        # frames in flight at most
        cond = threading.Condition()
        acks, sent = [], []
        state = {"end": None, "send_error": None, "read_error": None}
        stop_sending = threading.Event()
        cl = self.client(c)

        def batch(b):
            return make_pings("stream", range((b - 1) * per + 1, b * per + 1))

        def sender():
            b = 0
            try:
                while not stop_sending.is_set():
                    if not window.acquire(timeout=0.1):
                        continue
                    b += 1
                    cl.send_frame(envelope_bytes(batch(b), batch_id=b))
                    sent.append(b)
            except OSError as e:  # the collector closed the connection: expected
                state["send_error"] = repr(e)

        def reader():
            try:
                while True:
                    ack = cl.try_read_ack(timeout=15)
                    with cond:
                        if ack is CLOSED:
                            state["end"] = "closed"
                            state["reset"] = cl.reset
                            cond.notify_all()
                            return
                        acks.append(ack)
                        cond.notify_all()
                    window.release()
            except Exception as e:
                with cond:
                    state["read_error"] = repr(e)
                    cond.notify_all()

        threads = [threading.Thread(target=sender, daemon=True),
                   threading.Thread(target=reader, daemon=True)]
        for t in threads:
            t.start()
        with cond:
            ok = cond.wait_for(lambda: len(acks) >= 40 or state["read_error"], timeout=IO_TIMEOUT)
        self.assertTrue(ok and not state["read_error"], "streaming did not start: %s" % state)

        c.terminate()           # while the sender is still sending
        rc = c.wait_exit()
        stats = c.final_stats(expect_rc=rc)
        for t in threads[1:]:
            t.join(IO_TIMEOUT)
        stop_sending.set()
        threads[0].join(IO_TIMEOUT)
        self.assertFalse([t for t in threads if t.is_alive()], "client threads still running")
        self.assertIsNone(state["read_error"])
        self.assertEqual(state["end"], "closed", "the collector should close the connection")

        self.assertEqual([a.batch_id for a in acks], list(range(1, len(acks) + 1)),
                         "acks out of frame order")
        for a in acks:
            self.assertAck(a, "OK", accepted=per, duplicates=0, rejected=0)
        self.assertGreater(len(sent), len(acks), "the client was not still streaming")
        committed = stats["pings_accepted"]
        self.assertEqual(committed % per, 0, stats)
        # No OK ack without its pings committed.
        self.assertGreaterEqual(committed, per * len(acks),
                                "acked %d batches of %d (client state %s), stats %s"
                                % (len(acks), per, state, stats))
        if committed > per * len(acks):
            # Committed, acked by the collector, and lost on the way: the
            # reset-on-close that test_sigterm_drain_delivers_acks_to_a_client_still_sending
            # pins down deterministically. Here it hangs on timing, so it is
            # only reported.
            sys.stderr.write("\nnote: %s: %d batches committed, %d acks received "
                             "(client state %s)\n" % (self.id(), committed // per, len(acks),
                                                      state))

        c.restart()
        loaded = c.writer_started()
        self.assertEqual(loaded["ingest_seq"], committed, loaded)
        with self.client(c) as again:
            for a in acks[::7] + acks[-1:]:
                self.assertAck(again.request(batch(a.batch_id), batch_id=a.batch_id), "OK",
                               accepted=0, duplicates=per)
            self.assertAck(again.request([make_ping("stream", committed + 1)], batch_id=9999),
                           "OK", accepted=1)
        c.stop()
        with self.subTest("on disk: warmline dump pings"):
            self.require_dump()
            # Frames commit in order: batches 1..n, then the one ping after the restart.
            want = {("stream", s) for s in range(1, committed + 2)}
            self.assertEqual(dumped_ping_keys(c.dump("pings")), want)

    def test_sigterm_drain_delivers_acks_to_a_client_still_sending(self):
        """Written acks reach a client that keeps sending during the drain.

        Closing a socket with unread input makes the kernel reset the
        connection and throw away the acks still in its send queue.
        Deterministic: the client's tiny receive window holds most of its
        acks in the collector's send queue; a slow batch on another
        connection keeps the drain open while the client sends one more
        frame."""
        n = 300
        # The slow batch must still be in flight at SIGTERM; on a fast moment
        # of the machine it may not be, so the scenario is run again with a
        # bigger batch (never skipped: it passes or fails).
        for size in (120000, 400000, 1000000):
            c = self.collector({"max_pings_per_batch": 1000000,
                                "max_inflated_bytes": "256MiB",
                                "max_group_pings": 10000000})
            victim = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._sockets.append(victim)
            victim.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
            victim.settimeout(IO_TIMEOUT)
            victim.connect((LOCALHOST, c.tcp_port))
            # Rejected envelopes: each ack carries a message, ~45 bytes.
            victim.sendall(b"".join(frame(envelope_bytes([make_ping("victim", 1)],
                                                         batch_id=i + 1, version=2))
                                    for i in range(n)))
            c.wait_stats(lambda s: s["batches_rejected"] >= n, what="victim's frames answered")

            # A batch the writer needs about a second (or more) for.
            body = bytearray()
            for i in range(size):
                p = b"\x0a\x0b" + (b"slow-%06d" % i) + b"\x18\x01"  # install_id, seq=1
                body += b"\x0a" + bytes([len(p)]) + p
            slow = self.client(c, timeout=60)
            slow.send_frame(envelope_bytes(payload=zlib.compress(bytes(body)), batch_id=7,
                                           compression=pb.Envelope.ZLIB))
            c.wait_stats(lambda s: s["tcp_frames"] >= n + 1, what="slow frame read")
            c.terminate()
            inflight = int(c.wait_for(r"\bevent=stopping\b.*\binflight=(\d+)").group(1))
            if inflight > 0:
                break
            c.wait_exit()
        else:
            self.fail("the slow batch was committed before SIGTERM even at %d pings" % size)
        # The client goes on sending while the collector drains.
        victim.sendall(frame(envelope_bytes([make_ping("victim", 2)], batch_id=n + 1)))
        stats = c.final_stats(expect_rc=c.wait_exit())
        self.assertEqual(stats["batches_rejected"], n)
        self.assertAck(slow.read_ack(), "OK", accepted=size, batch_id=7)

        reader = TcpClient.__new__(TcpClient)  # read the raw socket with the harness
        reader.sock, reader.buf, reader.eof, reader.reset, reader.timeout = (
            victim, bytearray(), False, False, IO_TIMEOUT)
        got, ended = [], None
        while ended is None:
            try:
                ack = reader.try_read_ack()
            except AssertionError as e:
                ended = str(e)
                break
            if ack is CLOSED:
                ended = "reset" if reader.reset else "eof"
            else:
                got.append(ack.batch_id)
        self.assertEqual(len(got), n, "the collector answered all %d frames (stats %s) but "
                         "the client got %d acks, then: %s" % (n, stats["batches_rejected"],
                                                             len(got), ended))
        self.assertEqual(got, list(range(1, n + 1)))


class Connections(CollectorCase):

    def test_max_connections(self):
        c = self.collector({"max_connections": 4})
        held = [self.client(c) for _ in range(4)]
        for i, cl in enumerate(held):
            self.assertAck(cl.request([make_ping("maxconn-%d" % i, 1)], batch_id=i), "OK",
                           accepted=1)
        extra = self.client(c)
        self.assertTrue(extra.wait_closed(5), "a fifth connection should be closed at once")
        c.wait_for(r"\bevent=connection_refused\b.*reason=max_connections", timeout=5)
        # The four are unharmed.
        for i, cl in enumerate(held):
            self.assertAck(cl.request([make_ping("maxconn-%d" % i, 2)], batch_id=10 + i), "OK",
                           accepted=1)
        # A freed slot is usable again (once the collector has seen the close).
        held.pop(0).close()
        refused_more = 0
        deadline = time.monotonic() + 5
        while True:
            cl = self.client(c)
            try:
                self.assertAck(cl.request([make_ping("maxconn-new", 1)], batch_id=99), "OK",
                               accepted=1)
                break
            except (AssertionError, OSError):
                refused_more += 1
                if time.monotonic() > deadline:
                    raise
                cl.close()
        stats = c.stop()
        self.assertEqual(stats["tcp_refused"], 1 + refused_more)
        self.assertEqual(stats["tcp_connections"], 5)
        self.assertEqual(stats["pings_accepted"], 9)

    def test_idle_connections_are_closed(self):
        c = self.collector({"idle_timeout_ms": "500ms"})
        idle = self.client(c)
        busy = self.client(c)
        self.assertAck(idle.request([make_ping("idle-a", 1)], batch_id=1), "OK", accepted=1)
        t0 = time.monotonic()
        self.assertAck(busy.request([make_ping("idle-b", 1)], batch_id=1), "OK", accepted=1)
        closed_after = None
        seq = 1
        # Keep `busy` talking every ~150 ms for 1.5 s while `idle` says nothing.
        while time.monotonic() - t0 < 1.5:
            if closed_after is None and idle.wait_closed(0.15):
                closed_after = time.monotonic() - t0
            elif closed_after is not None:
                busy.wait_closed(0.15)  # only paces the loop; busy must stay open
            seq += 1
            self.assertAck(busy.request([make_ping("idle-b", seq)], batch_id=seq), "OK",
                           accepted=1)
        self.assertIsNotNone(closed_after, "idle connection still open after 1.5 s")
        self.assertGreaterEqual(closed_after, 0.4, "closed before the idle timeout")
        self.assertLess(closed_after, 1.4)
        # Once busy stops talking it goes too.
        t1 = time.monotonic()
        self.assertTrue(busy.wait_closed(5), "busy connection not closed once idle")
        self.assertGreaterEqual(time.monotonic() - t1, 0.3)
        # A connection that never sends a byte is closed as well.
        silent = self.client(c)
        self.assertTrue(silent.wait_closed(5))
        stats = c.stop()
        self.assertEqual(stats["tcp_closed_idle"], 3)
        self.assertEqual(stats["pings_accepted"], 1 + seq)


if __name__ == "__main__":
    unittest.main()
