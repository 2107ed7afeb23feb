/* TCP ingest: a stream of delimited Envelopes per connection, each answered
 * by one delimited Ack, in frame order, once the writer says it is durable.
 * A connection owns one input buffer capped at one frame; a bad frame
 * closes that connection only.
 *
 * A connection stops reading (and leaves what it has buffered unparsed)
 * while it is held: max_inflight_frames of its frames are with the writer
 * or have acks the kernel has not taken yet (a peer that does not read its
 * acks), or its source address is out of tokens (rate_per_address). So its
 * memory is one buffer plus max_inflight_frames jobs or acks, whatever the
 * peer sends, and every frame still gets its ack in order. Across
 * connections, what the jobs and unsent acks hold counts toward
 * max_held_bytes, and so does every input buffer past its first BUF_BASE
 * bytes: past the budget, frames are answered RETRY_LATER without their
 * batch; an eighth past it the connection stops reading (budget_wait) until
 * what is held falls under the budget again. Input buffers may take at most
 * half of the budget (so peers that begin large frames and never finish them
 * cannot leave ordinary frames no room). A frame larger than the base buffer
 * gets its whole room at once or none: a connection whose frame does not fit
 * waits, holding nothing past its base and with its frame's clock stopped,
 * and waiters get room in the order they began to wait; a connection given
 * room reads, with its frame's clock running, so one that stalls is closed
 * after frame_timeout_ms and its room goes to the next waiter. */
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
/* A connection's input buffer up to this is outside max_held_bytes (so
 * max_connections x BUF_BASE in all); past it, it counts. */
#define BUF_BASE (2 * READ_CHUNK)
enum { BUDGET_JOBS = 1, BUDGET_BUFFER = 2 };

static void on_rate_timer(uv_timer_t *t);

struct wl_conn {
    uv_tcp_t handle;
    struct wl_ingest *ing;
    struct wl_conn *prev, *next;
    uint8_t *buf;
    size_t len, cap;
    uint64_t inflight;     /* frames with the writer, acks not yet written */
    uint64_t acks_unsent;  /* acks written or waiting in acks, not yet taken by the kernel */
    struct ack_write *acks; /* acks of this round of finished jobs, one write at
                               wl_tcp_acks_flush (NULL: none) */
    struct wl_conn *acks_next; /* in ing->acks_due (while acks_listed) */
    int acks_listed;
    uint64_t last_active;  /* loop ms of the last read or ack */
    uint64_t partial_since; /* loop ms since the buffered partial frame waits, 0: none */
    uint64_t resume_at;    /* rate_wait: loop ms when the address has a token */
    int held;              /* inflight + acks_unsent reached max_inflight_frames */
    int rate_wait;         /* a whole frame waits for its address's token */
    int rate_counted;      /* that frame is counted as rate limited */
    int limited;           /* the per-address limits apply to this peer */
    int addr_counted;      /* counted in the address's open connections */
    struct wl_addr addr;
    int reading;
    int eof;               /* the peer finished sending; close after the acks */
    int discard;           /* stopping: input is read and dropped, so that a
                              close never resets acks still in flight */
    int lingering;         /* every ack written; closes once the kernel has
                              delivered them or the peer closes */
    int refusing;          /* a frame got RETRY_LATER: later ones get it too
                              until every ack is out, so none lands first */
    int budget_wait;       /* not read until what input holds is under max_held_bytes
                              (BUDGET_JOBS), or its frame has room (BUDGET_BUFFER) */
    uint64_t wait_seq;     /* BUDGET_BUFFER: when it began to wait (ing->wait_seq) */
    size_t want;           /* BUDGET_BUFFER: the buffer its frame needs */
    size_t charged;        /* of its buffer, counted in ing->held_bytes (past BUF_BASE) */
    int clear_poison;      /* the next frame tells the writer to accept again */
    uint64_t id;
    int closing;           /* uv_close called (or about to be, after shutdown) */
    int closed;            /* the handle is closed; free when inflight reaches 0 */
    struct sockaddr_storage peer_addr;
    char peer[64];
};

/* The acks of one connection from one round of finished jobs, in the
 * order of its frames: one write for them all. A group commit finishes
 * many frames of a connection at once, and a write each (on loopback, the
 * peer's receive runs in the sender's syscall) was 5% of the collector's
 * CPU at saturation. */
struct ack_write {
    uv_write_t req;
    struct wl_conn *conn;
    size_t held;           /* what it counts in ing->held_bytes until written */
    size_t len, cap;       /* data's bytes, and room */
    uint64_t count;        /* acks in data */
    uint8_t data[];
};

static void acks_write(struct wl_conn *c);

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
    if (c->budget_wait)
        ing->budget_waiters--;
    c->budget_wait = 0;
    ing->buf_bytes -= c->charged;
    wl_ingest_release_bytes(ing, c->charged);
    c->charged = 0;
    if (c->prev)
        c->prev->next = c->next;
    else
        ing->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ing->n_conns--;
    wl_gauge_set(WL_G_tcp_connections_open, ing->n_conns);
    if (c->addr_counted && ing->addrs != NULL)
        wl_addrlimit_conn_close(ing->addrs, &c->addr);
    c->addr_counted = 0;
    c->closed = 1;
    conn_free_if_done(c);
}

static void conn_close(struct wl_conn *c)
{
    acks_write(c); /* as a write each would have: tried at once */
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
    acks_write(c); /* the shutdown goes after them */
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

/* Stops reading until what input holds is under max_held_bytes again
 * (on_rate_timer wakes it). */
static void conn_budget_wait(struct wl_conn *c, int why)
{
    if (!c->budget_wait) {
        c->ing->budget_waiters++;
        wl_count(WL_M_tcp_budget_waits, 1);
        if (why == BUDGET_BUFFER)
            c->wait_seq = ++c->ing->wait_seq;
    }
    c->budget_wait = why;
}

/* Whether growing input buffers by more bytes stays within the budget and
 * the buffers' half of it; or no buffer holds anything past its base, so
 * that a frame larger than that half (up to max_frame_bytes) still gets its
 * turn. */
static int buffer_room(const struct wl_ingest *ing, size_t more)
{
    return ing->buf_bytes == 0 || (ing->held_bytes + more <= ing->cfg->max_held_bytes &&
                                   ing->buf_bytes + more <= ing->cfg->max_held_bytes / 2);
}

/* Sets the buffer's size, and what of it counts toward max_held_bytes. */
static int conn_buf_resize(struct wl_conn *c, size_t ncap)
{
    uint8_t *nbuf = realloc(c->buf, ncap);
    if (nbuf == NULL)
        return -1;
    c->buf = nbuf;
    c->cap = ncap;
    size_t charge = ncap > BUF_BASE ? ncap - BUF_BASE : 0;
    if (charge > c->charged) {
        c->ing->buf_bytes += charge - c->charged;
        wl_ingest_hold_bytes(c->ing, charge - c->charged);
    } else {
        c->ing->buf_bytes -= c->charged - charge;
        wl_ingest_release_bytes(c->ing, c->charged - charge);
    }
    c->charged = charge;
    return 0;
}

/* The buffer the frame being read needs: BUF_BASE, or the whole frame
 * when it is larger (its length is known once its header is in). */
static size_t conn_want(const struct wl_conn *c)
{
    size_t hdr = 0, flen = 0;
    if (c->len > 0)
        wl_frame_parse(c->buf, c->len, c->ing->cfg->max_frame_bytes, &hdr, &flen);
    return hdr > 0 && hdr + flen > BUF_BASE ? hdr + flen : BUF_BASE;
}

/* Gives the connection the buffer its frame needs, or makes it wait for
 * room (returns 0) holding no more than its base. */
static int conn_grant(struct wl_conn *c)
{
    size_t want = conn_want(c);
    if (want <= c->cap)
        return 1;
    size_t charge = want - BUF_BASE;
    if (c->budget_wait == BUDGET_BUFFER || !buffer_room(c->ing, charge - c->charged)) {
        /* Behind the waiters (or no room): wait, holding only the base. */
        if (c->cap > BUF_BASE && c->len <= BUF_BASE)
            conn_buf_resize(c, BUF_BASE);
        c->want = want;
        conn_budget_wait(c, BUDGET_BUFFER);
        return 0;
    }
    return conn_buf_resize(c, want) == 0;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct wl_conn *c = h->data;
    (void)suggested;

    if (c->cap < BUF_BASE && c->cap - c->len < READ_CHUNK)
        conn_buf_resize(c, c->cap == 0 ? READ_CHUNK : BUF_BASE); /* within the base */
    if (c->cap == c->len && !conn_grant(c)) {
        *buf = uv_buf_init(NULL, 0); /* waits for room: on_read gets UV_ENOBUFS */
        return;
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

/* Frames with the writer or acks not yet with the kernel: held at
 * max_inflight_frames, released below half of it (so that reads do not
 * flap on every ack). */
static int conn_held(struct wl_conn *c)
{
    uint64_t max = c->ing->cfg->max_inflight_frames;
    uint64_t n = c->inflight + c->acks_unsent;
    if (n >= max)
        c->held = 1;
    else if (n < max / 2 + 1)
        c->held = 0;
    return c->held;
}

/* Reads when nothing holds the connection, and keeps the clock of the
 * partial frame: it runs only while the collector reads. */
static void conn_update_reading(struct wl_conn *c)
{
    if (c->closing || c->discard)
        return;
    if (c->rate_wait || c->held || c->budget_wait) {
        conn_pause(c);
        c->partial_since = 0;
        return;
    }
    conn_read_start(c);
    if (c->len == 0)
        c->partial_since = 0;
    else if (c->partial_since == 0)
        c->partial_since = uv_now(c->ing->loop);
}

/* Wakes the rate timer at loop time at (or earlier, if it is set earlier). */
static void rate_schedule(struct wl_ingest *ing, uint64_t at);

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

    wl_count(WL_M_tcp_frames, 1);
    wl_count_t(WL_TRANSPORT_TCP, WL_T_envelopes_received, 1);
    job = wl_ingest_make_job(ing, frame, len, "tcp", (struct sockaddr *)&c->peer_addr);
    if (job == NULL)
        return;
    if (job->batch != NULL &&
        (c->refusing || ing->held > ing->cfg->writer_queue_pings ||
         ing->held_bytes >= ing->cfg->max_held_bytes)) {
        /* Overloaded (decoded pings not yet answered, or the bytes input
         * holds, over their limit), or an earlier frame must be resent
         * first: answer RETRY_LATER, in order, through the writer's queue.
         * The batch is dropped before it is held. */
        wl_ingest_drop_batch(job);
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
    wl_ingest_submit(ing, job);
}

/* Parses and submits the whole frames buffered, as long as nothing holds
 * the connection; then reads again or not. */
static void conn_process(struct wl_conn *c)
{
    struct wl_ingest *ing = c->ing;
    size_t off = 0;
    int consumed = 0;

    while (!c->closing && !c->discard && !c->rate_wait && !c->budget_wait && !conn_held(c)) {
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
        if (c->limited) {
            uint64_t now = uv_now(ing->loop);
            uint64_t wait = wl_addrlimit_take(ing->addrs, &c->addr, now);
            if (wait != 0) { /* the frame stays buffered until a token comes */
                if (!c->rate_counted)
                    wl_count_t(WL_TRANSPORT_TCP, WL_T_rate_limited, 1);
                c->rate_counted = 1;
                c->rate_wait = 1;
                c->resume_at = now + wait;
                rate_schedule(ing, c->resume_at);
                break;
            }
            c->rate_counted = 0;
        }
        if (ing->held_bytes >= ing->cfg->max_held_bytes + ing->cfg->max_held_bytes / 8) {
            /* Far over: even refusals (a job and an ack each) wait. */
            conn_budget_wait(c, BUDGET_JOBS);
            break;
        }
        submit_frame(c, c->buf + off + hdr, flen);
        off += hdr + flen;
        consumed = 1;
    }
    if (off > 0) {
        memmove(c->buf, c->buf + off, c->len - off);
        c->len -= off;
    }
    if (c->cap > BUF_BASE && c->len <= BUF_BASE && conn_want(c) <= BUF_BASE)
        conn_buf_resize(c, BUF_BASE); /* a large frame is done: give back what counted */
    if (consumed)
        c->partial_since = 0; /* what is left is a new frame */
    conn_update_reading(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct wl_conn *c = s->data;
    struct wl_ingest *ing = c->ing;
    (void)buf;

    if (nread > 0)
        wl_count_t(WL_TRANSPORT_TCP, WL_T_received_bytes, (uint64_t)nread);
    if (nread == UV_ENOBUFS) { /* alloc_cb: no room within max_held_bytes, or no memory */
        if (c->budget_wait)
            conn_update_reading(c);
        else
            conn_close(c);
        return;
    }
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
    conn_process(c);
}

static void rate_schedule(struct wl_ingest *ing, uint64_t at)
{
    uint64_t now = uv_now(ing->loop);
    if (!ing->rate_timer_on || (ing->rate_due != 0 && ing->rate_due <= at))
        return;
    ing->rate_due = at;
    uv_timer_start(&ing->rate_timer, on_rate_timer, at > now ? at - now : 0, 0);
}

static void budget_resume(struct wl_conn *c, uint64_t now)
{
    c->budget_wait = 0;
    c->ing->budget_waiters--;
    c->last_active = now;
    conn_process(c); /* may wait again */
}

/* Under the budget again: connections that waited for jobs to be answered
 * read again, and those that waited for buffer room get it, oldest wait
 * first, for as long as it lasts (the next one waits on, so a large frame is
 * not passed over for good by later ones). */
static void budget_wake(struct wl_ingest *ing, uint64_t now)
{
    if (ing->budget_waiters == 0 || ing->held_bytes >= ing->cfg->max_held_bytes)
        return;
    for (struct wl_conn *c = ing->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->budget_wait == BUDGET_JOBS && !c->closing)
            budget_resume(c, now);
    }
    for (;;) {
        struct wl_conn *first = NULL;
        for (struct wl_conn *c = ing->conns; c != NULL; c = c->next) {
            if (c->budget_wait == BUDGET_BUFFER && !c->closing &&
                (first == NULL || c->wait_seq < first->wait_seq))
                first = c;
        }
        if (first == NULL || !buffer_room(ing, first->want - BUF_BASE - first->charged) ||
            conn_buf_resize(first, first->want) != 0)
            return;
        budget_resume(first, now);
    }
}

/* Connections whose address has a token again parse what they buffered. */
static void on_rate_timer(uv_timer_t *t)
{
    struct wl_ingest *ing = t->data;
    uint64_t now = uv_now(ing->loop);

    ing->rate_due = 0;
    budget_wake(ing, now);
    for (struct wl_conn *c = ing->conns; c != NULL; c = c->next) {
        if (!c->rate_wait || c->closing)
            continue;
        if (c->resume_at <= now) {
            c->rate_wait = 0;
            c->last_active = now;
            conn_process(c); /* may wait again, and schedule */
        } else {
            rate_schedule(ing, c->resume_at);
        }
    }
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
    if (uv_tcp_getpeername(&c->handle, (struct sockaddr *)&peer, &plen) != 0)
        memset(&peer, 0, sizeof peer);
    c->peer_addr = peer;
    wl_format_addr((struct sockaddr *)&peer, c->peer, sizeof c->peer);
    if (ing->n_conns > ing->cfg->max_connections || ing->draining) {
        wl_count(WL_M_tcp_refused, 1);
        wl_warn("connection_refused", "reason=max_connections peer=%s open=%llu", c->peer,
                (unsigned long long)(ing->n_conns - 1));
        conn_close(c);
        return;
    }
    c->limited = wl_ingest_limited(ing, (struct sockaddr *)&peer, &c->addr);
    if (c->limited) {
        int rc = wl_addrlimit_conn_open(ing->addrs, &c->addr,
                                        ing->cfg->max_connections_per_address,
                                        uv_now(ing->loop));
        if (rc < 0) {
            /* Debug only: a flood of these must not become a flood of logs. */
            wl_count(WL_M_tcp_refused_per_address, 1);
            wl_debug("connection_refused", "reason=max_connections_per_address peer=%s",
                     c->peer);
            conn_close(c);
            return;
        }
        c->addr_counted = rc == 0;
    }
    wl_count(WL_M_tcp_connections, 1);
    uv_tcp_nodelay(&c->handle, 1);
    c->last_active = uv_now(ing->loop);
    conn_update_reading(c);
}

static void on_ack_written(uv_write_t *req, int status)
{
    struct ack_write *w = (struct ack_write *)req;
    struct wl_conn *c = w->conn;
    (void)status; /* a failed write means the peer is gone; its read side sees it */
    wl_ingest_release_bytes(c->ing, w->held);
    c->acks_unsent -= w->count;
    free(w);
    /* Called before the handle's close callback, so c is still there. */
    if (c->held && !c->closing)
        conn_process(c);
}

/* Makes room for need more bytes in c's waiting acks (a first ack lists c
 * in ing->acks_due). Returns 0, or -1 when memory ran out: the connection
 * is then closed (its client resends what it has no ack for). */
static int acks_room(struct wl_ingest *ing, struct wl_conn *c, size_t need)
{
    struct ack_write *w = c->acks;
    if (w != NULL && w->cap - w->len >= need)
        return 0;
    size_t cap = w != NULL ? w->cap : 0;
    size_t want = (w != NULL ? w->len : 0) + need;
    cap = cap ? cap * 2 : 256;
    while (cap < want)
        cap *= 2;
    struct ack_write *nw = realloc(w, sizeof *nw + cap);
    if (nw == NULL) {
        conn_close(c); /* writes what c->acks holds, then closes */
        return -1;
    }
    if (w == NULL) {
        nw->len = 0;
        nw->count = 0;
    }
    if (!c->acks_listed) {
        c->acks_listed = 1;
        c->acks_next = ing->acks_due;
        ing->acks_due = c;
    }
    nw->cap = cap;
    c->acks = nw;
    return 0;
}

/* Writes c's waiting acks, if any, in one write. */
static void acks_write(struct wl_conn *c)
{
    struct ack_write *w = c->acks;
    if (w == NULL)
        return;
    c->acks = NULL; /* stays in ing->acks_due until wl_tcp_acks_flush: skipped then */
    w->conn = c;
    w->held = sizeof *w + w->cap;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
    if (c->closing || uv_write(&w->req, (uv_stream_t *)&c->handle, &b, 1, on_ack_written) != 0) {
        c->acks_unsent -= w->count;
        free(w);
        if (!c->closing)
            conn_close(c);
        return;
    }
    wl_ingest_hold_bytes(c->ing, w->held);
}

void wl_tcp_acks_flush(struct wl_ingest *ing)
{
    struct wl_conn *c = ing->acks_due, *next;
    ing->acks_due = NULL;
    /* No connection here is freed yet: it is freed from its close callback,
     * which runs after this round (and closing wrote its acks). */
    for (; c != NULL; c = next) {
        next = c->acks_next;
        c->acks_next = NULL;
        c->acks_listed = 0;
        acks_write(c);
    }
}

void wl_tcp_job_done(struct wl_ingest *ing, struct wl_job *job)
{
    struct wl_conn *c = job->origin;
    Warmline__V1__Ack ack = WARMLINE__V1__ACK__INIT;
    char message[160];

    c->inflight--;
    ing->inflight--;
    wl_ingest_release(ing, job);
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
        if (acks_room(ing, c, WL_VARINT_MAX + n) == 0) {
            struct ack_write *w = c->acks;
            w->len += wl_varint_encode(n, w->data + w->len);
            warmline__v1__ack__pack(&ack, w->data + w->len);
            w->len += n;
            w->count++;
            c->acks_unsent++;
        }
        c->last_active = uv_now(ing->loop);
        if (c->eof && c->inflight == 0)
            conn_close_after_writes(c);
        else
            conn_process(c);
    }
    wl_job_free(job);
    conn_free_if_done(c);
}

void wl_tcp_budget_wake(struct wl_ingest *ing)
{
    if (ing->rate_timer_on)
        rate_schedule(ing, uv_now(ing->loop));
}

void wl_tcp_sweep_idle(struct wl_ingest *ing, uint64_t now)
{
    uint64_t timeout = ing->cfg->idle_timeout_ms;
    uint64_t frame_timeout = ing->cfg->frame_timeout_ms;

    for (struct wl_conn *c = ing->conns; c != NULL; c = c->next) {
        if (c->closing || c->discard)
            continue;
        if (frame_timeout != 0 && c->reading && c->partial_since != 0 &&
            now - c->partial_since >= frame_timeout) {
            /* Partly sent, then (nearly) silent: a slow or stalling peer
             * holding a buffer of up to max_frame_bytes. Nothing of it was
             * acked, so closing loses nothing. */
            wl_count(WL_M_tcp_closed_slow_frame, 1);
            wl_info("connection_closed", "reason=frame_timeout peer=%s buffered=%zu", c->peer,
                    c->len);
            conn_close(c);
            continue;
        }
        if (timeout != 0 && c->inflight == 0 && !c->rate_wait && !c->budget_wait &&
            now - c->last_active >= timeout) {
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
    uv_timer_init(ing->loop, &ing->rate_timer);
    ing->rate_timer.data = ing;
    ing->rate_timer_on = 1;
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
    if (ing->rate_timer_on) {
        ing->rate_timer_on = 0;
        uv_close((uv_handle_t *)&ing->rate_timer, NULL);
    }
    for (struct wl_conn *c = ing->conns; c != NULL; c = c->next) {
        c->discard = 1; /* a partial frame is dropped: it was never acked */
        c->len = 0;
        c->rate_wait = 0;
        if (c->budget_wait)
            ing->budget_waiters--;
        c->budget_wait = 0;
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
