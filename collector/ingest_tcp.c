/* TCP ingest: a stream of delimited Envelopes per connection, each answered
 * by one delimited Ack, in frame order, once the writer says it is durable.
 * A connection owns one input buffer capped at one frame; a bad frame
 * closes that connection only. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include "framing.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"

#define READ_CHUNK (64 * 1024)

struct wl_conn {
    uv_tcp_t handle;
    struct wl_ingest *ing;
    struct wl_conn *prev, *next;
    uint8_t *buf;
    size_t len, cap;
    uint64_t inflight;     /* frames with the writer, acks not yet written */
    uint64_t last_active;  /* loop ms of the last read or ack */
    int reading;
    int eof;               /* the peer finished sending; close after the acks */
    int discard;           /* stopping: input is read and dropped, so that a
                              close never resets acks still in flight */
    int lingering;         /* every ack written; closes once the kernel has
                              delivered them or the peer closes */
    int refusing;          /* a frame got RETRY_LATER: later ones get it too
                              until every ack is out, so none lands first */
    int clear_poison;      /* the next frame tells the writer to accept again */
    uint64_t id;
    int closing;           /* uv_close called (or about to be, after shutdown) */
    int closed;            /* the handle is closed; free when inflight reaches 0 */
    char peer[64];
};

struct ack_write {
    uv_write_t req;
    uint8_t data[];
};

static void conn_free_if_done(struct wl_conn *c)
{
    if (c->closed && c->inflight == 0) {
        free(c->buf);
        free(c);
    }
}

static void on_conn_closed(uv_handle_t *h)
{
    struct wl_conn *c = h->data;
    struct wl_ingest *ing = c->ing;
    if (c->prev)
        c->prev->next = c->next;
    else
        ing->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ing->n_conns--;
    wl_gauge_set(WL_G_tcp_connections_open, ing->n_conns);
    c->closed = 1;
    conn_free_if_done(c);
}

static void conn_close(struct wl_conn *c)
{
    c->closing = 1;
    if (!uv_is_closing((uv_handle_t *)&c->handle))
        uv_close((uv_handle_t *)&c->handle, on_conn_closed);
}

static void conn_read_start(struct wl_conn *c);

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct wl_conn *c = req->data;
    free(req);
    /* Every ack is written. Closing while the peer's input is unread would
     * reset the connection and drop acks still in the kernel's queue, so
     * linger: read and drop until the peer closes (or the deadline). */
    if (c->eof || status != 0) {
        conn_close(c);
        return;
    }
    c->discard = 1;
    c->lingering = 1;
    conn_read_start(c);
}

/* Closes after every queued ack is written. */
static void conn_close_after_writes(struct wl_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_shutdown_t *req = malloc(sizeof *req);
    if (req == NULL) {
        conn_close(c);
        return;
    }
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->handle, on_shutdown) != 0) {
        free(req);
        conn_close(c);
    }
}

static void conn_pause(struct wl_conn *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->handle);
        c->reading = 0;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct wl_conn *c = h->data;
    size_t limit = c->ing->cfg->max_frame_bytes + WL_VARINT_MAX;
    (void)suggested;

    if (c->cap - c->len < READ_CHUNK && c->cap < limit) {
        size_t ncap = c->cap ? c->cap : READ_CHUNK;
        while (ncap - c->len < READ_CHUNK && ncap < limit)
            ncap *= 2;
        if (ncap > limit)
            ncap = limit;
        uint8_t *nbuf = realloc(c->buf, ncap);
        if (nbuf != NULL) {
            c->buf = nbuf;
            c->cap = ncap;
        }
    }
    *buf = uv_buf_init((char *)c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void conn_read_start(struct wl_conn *c)
{
    if (!c->reading && !c->eof && !uv_is_closing((uv_handle_t *)&c->handle)) {
        uv_read_start((uv_stream_t *)&c->handle, alloc_cb, on_read);
        c->reading = 1;
    }
}

/* Reads again once acks have caught up (backpressure released). */
static void conn_resume(struct wl_conn *c)
{
    if (!c->closing && !c->discard)
        conn_read_start(c);
}

static void reject_frame(struct wl_conn *c, enum wl_reason r)
{
    wl_count_t(WL_TRANSPORT_TCP, WL_T_envelopes_received, 1);
    wl_count_envelope_reject(WL_TRANSPORT_TCP, r);
    wl_count(WL_M_tcp_closed_bad_frame, 1);
    wl_info("connection_closed", "reason=%s peer=%s", wl_reason_name(r), c->peer);
    conn_close(c);
}

static void submit_frame(struct wl_conn *c, const uint8_t *frame, size_t len)
{
    struct wl_ingest *ing = c->ing;
    struct wl_job *job;
    struct sockaddr_storage peer;
    int plen = sizeof peer;

    wl_count(WL_M_tcp_frames, 1);
    wl_count_t(WL_TRANSPORT_TCP, WL_T_envelopes_received, 1);
    uv_tcp_getpeername(&c->handle, (struct sockaddr *)&peer, &plen);
    job = wl_ingest_make_job(ing, frame, len, "tcp", (struct sockaddr *)&peer);
    if (job == NULL)
        return;
    if (job->batch != NULL &&
        (c->refusing || wl_writer_queued_pings(ing->writer) > ing->cfg->writer_queue_pings)) {
        /* Overloaded, or an earlier frame must be resent first: answer
         * RETRY_LATER, in order, through the writer's queue. */
        wl_ping_batch_free(job->batch);
        job->batch = NULL;
        job->retry_later = 1;
        c->refusing = 1;
        wl_count(WL_M_tcp_retry_later, 1);
    }
    job->origin_id = c->id;
    job->clear_poison = c->clear_poison;
    c->clear_poison = 0;
    job->origin = c;
    c->inflight++;
    ing->inflight++;
    wl_writer_submit(ing->writer, job);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct wl_conn *c = s->data;
    struct wl_ingest *ing = c->ing;
    size_t off = 0;
    (void)buf;

    if (nread > 0)
        wl_count_t(WL_TRANSPORT_TCP, WL_T_received_bytes, (uint64_t)nread);
    if (c->discard) { /* stopping: drop input, close once the peer is done */
        if (nread < 0) {
            conn_pause(c);
            c->eof = 1;
            if (c->inflight == 0)
                conn_close(c);
        }
        return;
    }
    if (nread < 0) {
        conn_pause(c);
        if (nread == UV_EOF) {
            c->eof = 1;
            if (c->inflight == 0)
                conn_close_after_writes(c);
        } else {
            wl_debug("connection_error", "peer=%s error=%s", c->peer, uv_strerror((int)nread));
            conn_close(c);
        }
        return;
    }
    c->len += (size_t)nread;
    c->last_active = uv_now(ing->loop);
    while (!c->closing) {
        size_t hdr, flen;
        enum wl_frame_status st =
            wl_frame_parse(c->buf + off, c->len - off, ing->cfg->max_frame_bytes, &hdr, &flen);
        if (st == WL_FRAME_NEED_MORE)
            break;
        if (st == WL_FRAME_TOO_LARGE) {
            reject_frame(c, WL_REJECT_FRAME_TOO_LARGE);
            return;
        }
        if (st == WL_FRAME_BAD_VARINT) {
            reject_frame(c, WL_REJECT_FRAME_BAD_VARINT);
            return;
        }
        submit_frame(c, c->buf + off + hdr, flen);
        off += hdr + flen;
    }
    if (off > 0) {
        memmove(c->buf, c->buf + off, c->len - off);
        c->len -= off;
    }
    if (c->inflight >= ing->cfg->max_inflight_frames)
        conn_pause(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct wl_ingest *ing = server->data;
    struct wl_conn *c;
    struct sockaddr_storage peer;
    int plen = sizeof peer;

    if (status < 0) {
        wl_warn("accept_error", "error=%s", uv_strerror(status));
        return;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    c->ing = ing;
    c->id = ++ing->next_conn_id;
    uv_tcp_init(ing->loop, &c->handle);
    c->handle.data = c;
    c->next = ing->conns;
    if (ing->conns)
        ing->conns->prev = c;
    ing->conns = c;
    ing->n_conns++;
    wl_gauge_set(WL_G_tcp_connections_open, ing->n_conns);
    if (uv_accept(server, (uv_stream_t *)&c->handle) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_getpeername(&c->handle, (struct sockaddr *)&peer, &plen);
    wl_format_addr((struct sockaddr *)&peer, c->peer, sizeof c->peer);
    if (ing->n_conns > ing->cfg->max_connections || ing->draining) {
        wl_count(WL_M_tcp_refused, 1);
        wl_warn("connection_refused", "reason=max_connections peer=%s open=%llu", c->peer,
                (unsigned long long)(ing->n_conns - 1));
        conn_close(c);
        return;
    }
    wl_count(WL_M_tcp_connections, 1);
    uv_tcp_nodelay(&c->handle, 1);
    c->last_active = uv_now(ing->loop);
    conn_resume(c);
}

static void on_ack_written(uv_write_t *req, int status)
{
    (void)status; /* a failed write means the peer is gone; its read side sees it */
    free(req);
}

void wl_tcp_job_done(struct wl_ingest *ing, struct wl_job *job)
{
    struct wl_conn *c = job->origin;
    Warmline__V1__Ack ack = WARMLINE__V1__ACK__INIT;
    char message[160];

    c->inflight--;
    ing->inflight--;
    if (job->status == WL_ACK_RETRY_LATER)
        c->refusing = 1;
    if (c->refusing && c->inflight == 0) { /* the client has every ack: it resends */
        c->refusing = 0;
        c->clear_poison = 1;
    }
    if (!c->closing && !c->closed) {
        ack.batch_id = job->batch_id;
        ack.status = (Warmline__V1__Ack__Status)job->status;
        ack.accepted = job->accepted;
        ack.duplicates = job->duplicates;
        ack.rejected = job->n_rejected;
        wl_job_message(job, message, sizeof message);
        ack.message = message;
        size_t n = warmline__v1__ack__get_packed_size(&ack);
        struct ack_write *w = malloc(sizeof *w + WL_VARINT_MAX + n);
        if (w != NULL) {
            size_t h = wl_varint_encode(n, w->data);
            warmline__v1__ack__pack(&ack, w->data + h);
            uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)(h + n));
            if (uv_write(&w->req, (uv_stream_t *)&c->handle, &b, 1, on_ack_written) != 0) {
                free(w);
                conn_close(c);
            }
        }
        c->last_active = uv_now(ing->loop);
        if (c->eof && c->inflight == 0)
            conn_close_after_writes(c);
        else if (c->inflight < ing->cfg->max_inflight_frames / 2 + 1)
            conn_resume(c);
    }
    wl_job_free(job);
    conn_free_if_done(c);
}

void wl_tcp_sweep_idle(struct wl_ingest *ing, uint64_t now)
{
    uint64_t timeout = ing->cfg->idle_timeout_ms;
    if (timeout == 0)
        return;
    for (struct wl_conn *c = ing->conns; c != NULL; c = c->next) {
        if (!c->closing && c->inflight == 0 && now - c->last_active >= timeout) {
            wl_count(WL_M_tcp_closed_idle, 1);
            wl_debug("connection_closed", "reason=idle peer=%s", c->peer);
            conn_close(c);
        }
    }
}

int wl_tcp_start(struct wl_ingest *ing, char *err, size_t errlen)
{
    char host[256];
    int rc;
    struct sockaddr_storage ss;

    if (wl_parse_listen("tcp_listen", ing->cfg->tcp_listen, &ss, host, sizeof host, err, errlen) != 0)
        return -EINVAL;
    uv_tcp_init(ing->loop, &ing->tcp);
    ing->tcp.data = ing;
    ing->tcp_on = 1;
    if ((rc = uv_tcp_bind(&ing->tcp, (const struct sockaddr *)&ss, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&ing->tcp, 511, on_connection)) != 0) {
        snprintf(err, errlen, "cannot listen on TCP %s: %s", ing->cfg->tcp_listen,
                 uv_strerror(rc));
        return rc;
    }
    return 0;
}

void wl_tcp_stop_accepting(struct wl_ingest *ing)
{
    if (ing->tcp_on && !uv_is_closing((uv_handle_t *)&ing->tcp))
        uv_close((uv_handle_t *)&ing->tcp, NULL);
    for (struct wl_conn *c = ing->conns; c != NULL; c = c->next) {
        c->discard = 1; /* a partial frame is dropped: it was never acked */
        c->len = 0;
        conn_read_start(c);
    }
}

void wl_tcp_linger(struct wl_ingest *ing, int force)
{
    for (struct wl_conn *c = ing->conns; c != NULL; c = c->next) {
        uv_os_fd_t fd;
        int unsent = 0;
        if (!c->lingering || uv_is_closing((uv_handle_t *)&c->handle))
            continue;
        if (force || uv_fileno((uv_handle_t *)&c->handle, &fd) != 0 ||
            ioctl(fd, SIOCOUTQ, &unsent) != 0 || unsent == 0)
            conn_close(c);
    }
}

void wl_tcp_close_all(struct wl_ingest *ing, int force)
{
    for (struct wl_conn *c = ing->conns; c != NULL; c = c->next) {
        if (force)
            conn_close(c);
        else
            conn_close_after_writes(c);
    }
}
