/* The ingest loop's shared context: what the UDP and TCP listeners and the
 * server glue all need. Owned by the loop thread; never touches RocksDB. */
#ifndef WL_INGEST_H
#define WL_INGEST_H

#include <uv.h>

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

    struct wl_conn *conns;      /* every open connection, doubly linked */
    uint64_t next_conn_id;
    uint64_t n_conns;
    uint64_t inflight;          /* TCP jobs with the writer */
    int draining;               /* shutdown: no new input, acks still go out */
};

/* Decodes one envelope from bytes and builds the writer job for it
 * (a batch, or the rejection with a sample). Counts envelope rejections. */
struct wl_job *wl_ingest_make_job(struct wl_ingest *ing, const uint8_t *buf, size_t len,
                                  const char *transport, const struct sockaddr *peer);

/* Formats a socket address as "HOST:PORT" ("[V6]:PORT"). */
void wl_format_addr(const struct sockaddr *sa, char *out, size_t len);

/* Binds and starts the UDP listener on cfg->udp_listen. */
int wl_udp_start(struct wl_ingest *ing, char *err, size_t errlen);
void wl_udp_stop(struct wl_ingest *ing);

/* Binds and starts the TCP listener on cfg->tcp_listen. */
int wl_tcp_start(struct wl_ingest *ing, char *err, size_t errlen);
/* Closes the listener; connections keep draining acks but drop new input. */
void wl_tcp_stop_accepting(struct wl_ingest *ing);
/* Writes the ack of a finished TCP job (and frees the job). */
void wl_tcp_job_done(struct wl_ingest *ing, struct wl_job *job);
/* Closes connections idle longer than the timeout. */
void wl_tcp_sweep_idle(struct wl_ingest *ing, uint64_t now_ms);
/* Closes every connection: after its queued acks are written, or at once
 * when force is set (a peer that never reads must not hold shutdown). */
void wl_tcp_close_all(struct wl_ingest *ing, int force);
/* Closes the connections whose acks the kernel has delivered (all of the
 * lingering ones when force is set). */
void wl_tcp_linger(struct wl_ingest *ing, int force);

#endif
