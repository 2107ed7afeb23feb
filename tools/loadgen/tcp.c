/* TCP: N connections in one epoll loop. Each keeps up to opt->inflight
 * frames written but not yet acked; every delimited Ack is checked against
 * the oldest outstanding frame of its connection (acks come in frame
 * order) and timed from the moment that frame's last byte was written. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "collector/framing.h"
#include "loadgen.h"

#define ACK_MAX_BYTES (64 * 1024) /* an Ack is tiny; anything near this is garbage */

struct outstanding {
    uint64_t batch_id;
    uint32_t npings;
    uint64_t sent_ns;
};

struct conn {
    int fd;
    unsigned idx;
    struct lg_source *src;
    struct outstanding *fifo; /* ring of opt->inflight */
    size_t head, count;
    size_t off;               /* bytes of the current frame written so far */
    int admitted;             /* the current frame passed the rate limit */
    int want_out;             /* EPOLLOUT is registered */
    int send_done;            /* the source has no more frames */
    int done, failed;
    uint8_t *rbuf;
    size_t rlen, rcap;
};

struct run {
    const struct lg_options *opt;
    struct lg_result *res;
    struct conn *conns;
    int ep;
    uint64_t t0, last_ack_ns, last_progress_ns;
    uint64_t pings_admitted;
    uint64_t rate_wait_ns;    /* > 0: some frame waits for the rate limit */
};

static void conn_fail(struct run *r, struct conn *c)
{
    c->failed = 1;
    c->done = 1;
    epoll_ctl(r->ep, EPOLL_CTL_DEL, c->fd, NULL);
}

static void set_want_out(struct run *r, struct conn *c, int on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.u32 = c->idx};
    epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

/* Connects with a deadline; returns the non-blocking socket or -1. */
static int connect_one(const struct lg_options *opt, const struct sockaddr_storage *ss,
                       socklen_t sslen, struct lg_result *res)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, soerr = 0;
    socklen_t len = sizeof soerr;

    if (fd < 0) {
        lg_error(res, "socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)ss, sslen) != 0) {
        if (errno != EINPROGRESS) {
            soerr = errno;
            goto fail;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int n;
        while ((n = poll(&pfd, 1, (int)(opt->timeout * 1000))) < 0 && errno == EINTR)
            ;
        if (n <= 0) {
            soerr = n == 0 ? ETIMEDOUT : errno;
            goto fail;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
            soerr = errno;
        if (soerr != 0)
            goto fail;
    }
    return fd;

fail:
    lg_error(res, "cannot connect to tcp %s: %s", opt->target, strerror(soerr));
    close(fd);
    return -1;
}

static uint64_t rate_allowed(const struct run *r, uint64_t now)
{
    /* a burst of one batch, then opt->rate pings per second */
    return (uint64_t)((double)r->opt->rate * (double)(now - r->t0) / 1e9) + r->opt->batch;
}

/* Writes as much as the window, the rate and the socket allow. */
static void pump_send(struct run *r, struct conn *c)
{
    const struct lg_options *opt = r->opt;
    struct lg_result *res = r->res;

    while (!c->done && !c->send_done) {
        struct lg_frame *f;
        uint64_t now;

        if (c->off == 0 && !c->admitted) {
            if (c->count >= opt->inflight)
                break;
            now = lg_now_ns();
            if (opt->duration > 0 && (double)(now - r->t0) >= opt->duration * 1e9)
                lg_source_stop(c->src);
            if (lg_source_peek(c->src, &f, 1) == 0) {
                c->send_done = 1;
                break;
            }
            if (opt->rate > 0) {
                uint64_t allowed = rate_allowed(r, now);
                if (r->pings_admitted + f->npings > allowed) {
                    uint64_t wait = (uint64_t)((double)(r->pings_admitted + f->npings - allowed) *
                                               1e9 / (double)opt->rate) + 1;
                    if (r->rate_wait_ns == 0 || wait < r->rate_wait_ns)
                        r->rate_wait_ns = wait;
                    break;
                }
            }
            r->pings_admitted += f->npings;
            c->admitted = 1;
        } else if (lg_source_peek(c->src, &f, 1) == 0) {
            c->send_done = 1; /* cannot happen: an admitted frame is not consumed yet */
            break;
        }
        ssize_t w = send(c->fd, f->buf + c->off, f->len - c->off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_want_out(r, c, 1);
                return;
            }
            lg_error(res, "connection %u: send: %s", c->idx, strerror(errno));
            conn_fail(r, c);
            return;
        }
        c->off += (size_t)w;
        res->bytes_sent += (uint64_t)w;
        r->last_progress_ns = lg_now_ns();
        if (c->off == f->len) {
            struct outstanding *o = &c->fifo[(c->head + c->count) % opt->inflight];
            o->batch_id = f->batch_id;
            o->npings = f->npings;
            o->sent_ns = r->last_progress_ns;
            c->count++;
            res->frames_sent++;
            res->pings_sent += f->npings;
            c->off = 0;
            c->admitted = 0;
            lg_source_advance(c->src, 1);
        }
    }
    set_want_out(r, c, 0);
}

static const char *status_name(unsigned status)
{
    static const char *const names[] = {"OK", "PARTIAL", "REJECTED", "RETRY_LATER"};
    return status < 4 ? names[status] : "UNKNOWN";
}

/* Checks one Ack against the oldest outstanding frame. Returns 0 or -1. */
static int take_ack(struct run *r, struct conn *c, const uint8_t *buf, size_t len, uint64_t now)
{
    struct lg_result *res = r->res;
    Warmline__V1__Ack *ack = warmline__v1__ack__unpack(NULL, len, buf);

    if (ack == NULL) {
        lg_error(res, "connection %u: %zu bytes that do not decode as an Ack", c->idx, len);
        return -1;
    }
    if (c->count == 0) {
        lg_error(res, "connection %u: an ack for batch_id %llu with no frame outstanding",
                  c->idx, (unsigned long long)ack->batch_id);
        warmline__v1__ack__free_unpacked(ack, NULL);
        return -1;
    }
    struct outstanding *o = &c->fifo[c->head];
    unsigned st = (unsigned)ack->status;
    if (ack->batch_id != o->batch_id) {
        res->out_of_order++;
        lg_error(res, "connection %u: ack for batch_id %llu where %llu was due "
                  "(acks come in frame order)", c->idx, (unsigned long long)ack->batch_id,
                  (unsigned long long)o->batch_id);
    }
    lg_hist_add(&res->latency, (now - o->sent_ns) / 1000);
    res->acks++;
    if (st < 4)
        res->ack_status[st]++;
    else
        res->ack_other++;
    res->accepted += ack->accepted;
    res->duplicates += ack->duplicates;
    res->rejected += ack->rejected;
    if (st == WARMLINE__V1__ACK__STATUS__RETRY_LATER)
        res->pings_retry_later += o->npings;
    else if ((uint64_t)ack->accepted + ack->duplicates + ack->rejected != o->npings &&
             st != WARMLINE__V1__ACK__STATUS__REJECTED)
        res->ack_count_mismatch++;
    if (st != WARMLINE__V1__ACK__STATUS__OK && res->first_not_ok[0] == '\0')
        snprintf(res->first_not_ok, sizeof res->first_not_ok,
                 "batch_id=%llu status=%s accepted=%u duplicates=%u rejected=%u message=\"%s\"",
                 (unsigned long long)ack->batch_id, status_name(st), ack->accepted,
                 ack->duplicates, ack->rejected, ack->message ? ack->message : "");
    c->head = (c->head + 1) % r->opt->inflight;
    c->count--;
    warmline__v1__ack__free_unpacked(ack, NULL);
    return 0;
}

/* Reads what the socket has and takes every whole Ack in it. */
static void pump_recv(struct run *r, struct conn *c)
{
    struct lg_result *res = r->res;

    while (!c->done) {
        if (c->rcap - c->rlen < 4096) {
            size_t ncap = c->rcap ? 2 * c->rcap : 16384;
            uint8_t *nb = realloc(c->rbuf, ncap);
            if (nb == NULL) {
                lg_error(res, "out of memory");
                conn_fail(r, c);
                return;
            }
            c->rbuf = nb;
            c->rcap = ncap;
        }
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            lg_error(res, "connection %u: recv: %s (%zu acks outstanding)", c->idx,
                      strerror(errno), c->count);
            conn_fail(r, c);
            return;
        }
        if (n == 0) {
            lg_error(res, "connection %u: the collector closed the connection with %zu acks "
                      "outstanding%s", c->idx, c->count,
                      c->send_done ? "" : " and frames still to send");
            conn_fail(r, c);
            return;
        }
        c->rlen += (size_t)n;
        uint64_t now = lg_now_ns();
        size_t pos = 0;
        for (;;) {
            size_t hdr, len;
            enum wl_frame_status st =
                wl_frame_parse(c->rbuf + pos, c->rlen - pos, ACK_MAX_BYTES, &hdr, &len);
            if (st == WL_FRAME_NEED_MORE)
                break;
            if (st != WL_FRAME_READY) {
                lg_error(res, "connection %u: the collector sent a malformed frame (%s)",
                          c->idx, st == WL_FRAME_TOO_LARGE ? "too large" : "bad length varint");
                conn_fail(r, c);
                return;
            }
            if (take_ack(r, c, c->rbuf + pos + hdr, len, now) != 0) {
                conn_fail(r, c);
                return;
            }
            pos += hdr + len;
            r->last_ack_ns = r->last_progress_ns = now;
        }
        memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
        c->rlen -= pos;
    }
}

static int conn_finished(struct conn *c)
{
    return c->send_done && c->off == 0 && c->count == 0;
}

int lg_run_tcp(const struct lg_options *opt, struct lg_source *src, struct lg_result *res)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct run r = {.opt = opt, .res = res, .ep = -1};
    struct epoll_event *events = NULL;
    unsigned active = 0;
    int rc = LG_EXIT_FAIL;

    if (lg_resolve(opt, SOCK_STREAM, &ss, &sslen, res->error, sizeof res->error) != 0)
        return LG_EXIT_FAIL;
    r.conns = calloc(opt->connections, sizeof *r.conns);
    events = calloc(opt->connections, sizeof *events);
    if (r.conns == NULL || events == NULL) {
        lg_error(res, "out of memory");
        goto done;
    }
    for (unsigned i = 0; i < opt->connections; i++)
        r.conns[i].fd = -1;
    if ((r.ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        lg_error(res, "epoll_create1: %s", strerror(errno));
        goto done;
    }
    for (unsigned i = 0; i < opt->connections; i++) {
        struct conn *c = &r.conns[i];
        c->idx = i;
        c->src = &src[i];
        c->fifo = calloc(opt->inflight, sizeof *c->fifo);
        if (c->fifo == NULL) {
            lg_error(res, "out of memory");
            goto done;
        }
        if ((c->fd = connect_one(opt, &ss, sslen, res)) < 0)
            goto done;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        if (epoll_ctl(r.ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
            lg_error(res, "epoll_ctl: %s", strerror(errno));
            goto done;
        }
        active++;
    }

    r.t0 = r.last_progress_ns = r.last_ack_ns = lg_now_ns();
    res->started_at_ms = lg_unix_ms();
    for (;;) {
        unsigned waiting = 0;
        r.rate_wait_ns = 0;
        active = 0;
        for (unsigned i = 0; i < opt->connections; i++) {
            struct conn *c = &r.conns[i];
            if (!c->done)
                pump_send(&r, c);
            if (!c->done && conn_finished(c)) {
                c->done = 1;
                epoll_ctl(r.ep, EPOLL_CTL_DEL, c->fd, NULL);
            }
            active += !c->done;
            waiting += !c->done && (c->count > 0 || c->want_out);
        }
        if (active == 0)
            break;
        uint64_t now = lg_now_ns();
        lg_progress(opt, res, r.t0);
        if (waiting == 0) /* only the rate limit holds us back: not the collector's fault */
            r.last_progress_ns = now;
        uint64_t idle = now - r.last_progress_ns, limit = (uint64_t)(opt->timeout * 1e9);
        if (idle >= limit) {
            lg_error(res, "timeout: no progress from %s for %.3gs", opt->target, opt->timeout);
            break;
        }
        uint64_t wait_ns = limit - idle;
        if (r.rate_wait_ns > 0 && r.rate_wait_ns < wait_ns)
            wait_ns = r.rate_wait_ns;
        if (opt->progress && wait_ns > 1000000000u) /* redraw the progress line */
            wait_ns = 1000000000u;
        if (opt->duration > 0) {
            uint64_t end = r.t0 + (uint64_t)(opt->duration * 1e9);
            if (end > now && end - now < wait_ns)
                wait_ns = end - now;
        }
        int n = epoll_wait(r.ep, events, (int)opt->connections, (int)((wait_ns + 999999) / 1000000));
        if (n < 0 && errno != EINTR) {
            lg_error(res, "epoll_wait: %s", strerror(errno));
            break;
        }
        for (int k = 0; k < n; k++) {
            struct conn *c = &r.conns[events[k].data.u32];
            if (events[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                pump_recv(&r, c);
            if ((events[k].events & EPOLLOUT) && !c->done)
                pump_send(&r, c);
        }
    }
    res->finished_at_ms = lg_unix_ms();
    res->elapsed = (double)((res->acks > 0 ? r.last_ack_ns : lg_now_ns()) - r.t0) / 1e9;
    rc = LG_EXIT_OK;

done:
    for (unsigned i = 0; r.conns != NULL && i < opt->connections; i++) {
        struct conn *c = &r.conns[i];
        res->acks_missing += c->count;
        if (c->fd >= 0)
            close(c->fd);
        free(c->fifo);
        free(c->rbuf);
    }
    if (r.ep >= 0)
        close(r.ep);
    free(r.conns);
    free(events);
    if (rc == LG_EXIT_OK && (res->error[0] != '\0' || res->acks_missing > 0))
        rc = LG_EXIT_FAIL;
    return rc;
}
