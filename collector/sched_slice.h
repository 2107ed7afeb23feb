/* Short scheduler slices for the threads an ack passes through. Any
 * thread; called by each for itself as it starts (writer_sync.c's syncer,
 * server.c's loop). */
#ifndef WL_SCHED_SLICE_H
#define WL_SCHED_SLICE_H

/* Asks the kernel for short time slices for the calling thread, one the
 * ack path wakes (the syncer, the libuv loop that writes the acks): 1 when
 * granted. On one core an ack passes from the writer to the syncer to the
 * loop, and each woken thread waited for the running one's slice to end,
 * up to a tick (4 ms at HZ 250); with a slice of WL_ACK_SLICE_US, Linux's
 * EEVDF scheduler (6.12 and later) runs it at once. TCP sync load at
 * 110,000 pings/s for 15 s (warmline-loadgen --rate), the collector on one
 * core, two sets of four interleaved pairs: ack p99 medians 24.3 -> 15.6
 * and 20.5 -> 16.0 ms; saturation unchanged (bench/RESULTS.md, session
 * 13). Other kernels ignore the request, or refuse it (0): nothing else
 * changes. A thread outside SCHED_OTHER (an operator's chrt) is left as it
 * is, and its nice value kept. */
#define WL_ACK_SLICE_US 300
int wl_thread_short_slice(void);

#endif
