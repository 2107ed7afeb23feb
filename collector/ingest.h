/* The ingest loop's shared context: what the UDP and TCP listeners and the
 * server glue all need. Owned by the loop thread; never touches RocksDB. */
#ifndef WL_INGEST_H
#define WL_INGEST_H

#include <uv.h>

#include "addrlimit.h"
#include "config.h"
#include "envelope.h"
#include "writer.h"

struct wl_conn;

struct wl_ingest {
    uv_loop_t *loop;
    const struct wl_config *cfg;
    struct wl_writer *writer;
    struct wl_decoder decoder;  /* the loop decodes one envelope at a time */

    uv_udp_t udp;
    uv_tcp_t tcp;
    int udp_on, tcp_on;
    uint8_t *udp_buf;           /* one recvmmsg buffer, reused */
    size_t udp_buf_len;
    struct wl_job *udp_first, *udp_last; /* datagrams' jobs not yet submitted: the
                                            writer gets each recvmmsg run at once */
    uv_check_t udp_check;       /* submits them after each loop iteration's I/O */
    uv_timer_t udp_timer;       /* ... or, a short run, once it has waited UDP_SUBMIT_MS */
    size_t udp_pending;         /* jobs from udp_first to udp_last */
    uint64_t udp_pending_pings; /* ... and their pings */
    uint64_t udp_queue;         /* the receive queue the kernel granted, bytes: how
                                   long reads may pause follows (udp_pace_ms) */
    uint64_t udp_in_bytes;      /* what the datagrams read since udp_in_since took of it */
    uint64_t udp_in_since;      /* loop ms of the last time the queue was emptied */
    int udp_paused;             /* ... and are paused now */

    struct wl_conn *conns;      /* every open connection, doubly linked */
    uint64_t next_conn_id;
    struct wl_conn *acks_due;   /* connections with acks to write (wl_tcp_acks_flush) */
    uint64_t n_conns;
    uint64_t inflight;          /* TCP jobs with the writer */
    uint64_t held;              /* what jobs not yet freed hold (TCP and UDP, with the
                                   writer or finished and awaiting their ack): their
                                   decoded pings, and 1 for a job without any */
    uint64_t held_bytes;        /* the bytes they hold (wl_job.held_bytes: decoded batch,
                                   job, sample), plus acks not yet taken by the kernel,
                                   plus TCP input buffers past their first 128 KiB */
    uint64_t buf_bytes;         /* of held_bytes, TCP input buffers (at most half of it) */
    uint64_t budget_waiters;    /* TCP connections not read until held_bytes is under
                                   max_held_bytes (or their frame has room) */
    uint64_t wait_seq;          /* order of waits for room, oldest served first */
    int draining;               /* shutdown: no new input, acks still go out */

    struct wl_addrlimit *addrs; /* per-address limits, NULL when all are off */
    uv_timer_t rate_timer;      /* wakes TCP connections waiting for a token */
    int rate_timer_on;          /* initialized (and not yet closed) */
    uint64_t rate_due;          /* loop ms it is set for, 0 when stopped */
};

/* Creates the per-address table when a per-address limit is on. Returns 0
 * or -ENOMEM (err says so). */
int wl_ingest_limits_init(struct wl_ingest *ing, char *err, size_t errlen);
void wl_ingest_limits_free(struct wl_ingest *ing);

/* The key of a peer whose input the per-address limits apply to: returns 1
 * and fills key, or 0 when no limit applies (limits off, a loopback peer
 * without limit_loopback, or an unknown address family). */
int wl_ingest_limited(const struct wl_ingest *ing, const struct sockaddr *peer,
                      struct wl_addr *key);

/* Submits a job to the writer and counts what it holds (ing->held, and its
 * held_bytes in ing->held_bytes); wl_ingest_release uncounts it once the
 * job is back, before it is freed. Over writer_queue_pings or max_held_bytes
 * held (wl_ingest_over), UDP datagrams are dropped and TCP frames answered
 * RETRY_LATER: what input holds in memory stays bounded even when the loop
 * falls behind freeing finished jobs. */
void wl_ingest_submit(struct wl_ingest *ing, struct wl_job *job);
/* 1 when what jobs hold has reached a limit. Checked before a job is held,
 * so that held_bytes stays under max_held_bytes plus one envelope's (and a
 * batch larger than the whole budget still lands when little is held). */
int wl_ingest_over(const struct wl_ingest *ing);
/* Counts bytes held outside jobs (an ack being written), or uncounts them. */
void wl_ingest_hold_bytes(struct wl_ingest *ing, size_t n);
void wl_ingest_release_bytes(struct wl_ingest *ing, size_t n);
/* Drops a job's batch (a frame refused RETRY_LATER) and what it charged
 * for it; call before the job is held. */
void wl_ingest_drop_batch(struct wl_job *job);
/* Counts what a job holds, as wl_ingest_submit does, for a job submitted
 * later with others (wl_writer_submit_list). */
void wl_ingest_hold(struct wl_ingest *ing, const struct wl_job *job);
void wl_ingest_release(struct wl_ingest *ing, const struct wl_job *job);

/* Decodes one envelope from bytes and builds the writer job for it
 * (a batch, or the rejection with a sample), its held_bytes set to what it
 * holds: the decoded batch as the decoder's allocator counted it, the job
 * itself, its per-ping reasons and its sample. Counts envelope rejections. */
struct wl_job *wl_ingest_make_job(struct wl_ingest *ing, const uint8_t *buf, size_t len,
                                  const char *transport, const struct sockaddr *peer);

/* Formats a socket address as "HOST:PORT" ("[V6]:PORT"). */
void wl_format_addr(const struct sockaddr *sa, char *out, size_t len);

/* How long reads may pause (ms, at most max_ms) once the kernel's queue of
 * queue bytes is emptied, when the datagrams just read took bytes of it
 * over elapsed_ms: at that rate the pause fills at most a quarter of it.
 * 0: do not pause. Pure. */
unsigned wl_udp_pause_ms(uint64_t queue, uint64_t bytes, uint64_t elapsed_ms, unsigned max_ms);

/* Binds and starts the UDP listener on cfg->udp_listen. */
int wl_udp_start(struct wl_ingest *ing, char *err, size_t errlen);
void wl_udp_stop(struct wl_ingest *ing);
/* A UDP job came back from the writer: frees it. */
void wl_udp_job_done(struct wl_ingest *ing, struct wl_job *job);

/* Binds and starts the TCP listener on cfg->tcp_listen. */
int wl_tcp_start(struct wl_ingest *ing, char *err, size_t errlen);
/* Closes the listener; connections keep draining acks but drop new input. */
void wl_tcp_stop_accepting(struct wl_ingest *ing);
/* Takes the ack of a finished TCP job (and frees the job): it is written
 * with its connection's other acks of the round at wl_tcp_acks_flush, which
 * whoever calls this calls once the round's jobs are done. */
void wl_tcp_job_done(struct wl_ingest *ing, struct wl_job *job);
void wl_tcp_acks_flush(struct wl_ingest *ing);
/* Held bytes fell: connections waiting for the budget read again (soon,
 * from the loop, not from inside the caller). */
void wl_tcp_budget_wake(struct wl_ingest *ing);
/* Closes connections idle longer than idle_timeout_ms, and those whose
 * frame has been unfinished for frame_timeout_ms. */
void wl_tcp_sweep_idle(struct wl_ingest *ing, uint64_t now_ms);
/* Closes every connection: after its queued acks are written, or at once
 * when force is set (a peer that never reads must not hold shutdown). */
void wl_tcp_close_all(struct wl_ingest *ing, int force);
/* Closes the connections whose acks the kernel has delivered (all of the
 * lingering ones when force is set). */
void wl_tcp_linger(struct wl_ingest *ing, int force);

#endif
