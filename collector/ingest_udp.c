/* UDP ingest: one datagram is one Envelope; no reply. Received with
 * recvmmsg (UV_UDP_RECVMMSG) into one reused buffer. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ingest.h"
#include "log.h"
#include "metrics.h"

#define UDP_DGRAM_MAX (64 * 1024) /* libuv's slot size for each recvmmsg message */
#define UDP_MMSG_COUNT 64

static void udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                     unsigned flags);

static void udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct wl_ingest *ing = h->data;
    (void)suggested;
    *buf = uv_buf_init((char *)ing->udp_buf, (unsigned)ing->udp_buf_len);
}

/* A run of datagrams goes to the writer at once: one lock and one wake for
 * up to UDP_SUBMIT_JOBS jobs, not one each (on one core, each wake could
 * hand the CPU to the writer for a single ping). At moderate rates a run is
 * one or two datagrams, and a hand-off per run made the writer wake,
 * preempt the loop, commit one ping and wake the loop again, for every
 * datagram: so a short run's jobs wait, up to UDP_SUBMIT_MS (or
 * UDP_PACE_LONG_MS, below), for the next
 * ones; a run of UDP_SUBMIT_JOBS or more goes at once, and what waits
 * counts as held (wl_ingest_over).
 *
 * Meanwhile, when the kernel's queue was emptied and can hold far more than
 * UDP_SUBMIT_MS of datagrams (UDP_PACE_QUEUE), reads pause until the timer:
 * the loop then wakes once per UDP_SUBMIT_MS for what came, not once per
 * datagram (bench/udp_loop_cpu: at 20,000 datagrams/s, 13.5 us of the loop's
 * CPU per datagram before, 6.0 with 1 ms, 4.9 with 2 ms). A full run never
 * pauses, so a busy collector reads without a stop. libuv ends every
 * recvmmsg run with a call that has no address, and says with the flags
 * whether the queue is empty; the check handle, which runs after each loop
 * iteration's I/O, is there for any other path. */
#define UDP_SUBMIT_MS 2
#define UDP_SUBMIT_JOBS 256
#define UDP_PACE_QUEUE (4 * 1024 * 1024) /* 2 ms of 1,600,000 datagrams/s (a small
                                            datagram takes ~1.25 KiB of the queue) */
/* With the default queue (udp_recv_buffer 16 MiB, granted) a pause lasts
 * UDP_PACE_LONG_MS: 13,000 small datagrams, 10 ms of 1,300,000 a second,
 * four times what this machine's discard loop receives. A wake per 10 ms
 * instead of per 2 ms, and a hand-off to the writer per 256 jobs instead of
 * per 64: at 20,000 datagrams/s, 3.9 -> 2.8 us of the loop's CPU per
 * datagram (bench/udp_loop_cpu, three interleaved runs; 5 ms: 3.0); with
 * the pings counted as the jobs are made (wl_writer_submit_list), 3.37 ->
 * 2.50 (medians of three interleaved). UDP has no ack: what the wait costs
 * is up to 10 ms before a ping is applied. */
#define UDP_PACE_LONG_QUEUE (16 * 1024 * 1024)
#define UDP_PACE_LONG_MS 10
/* A pause is cut short when the datagrams arrive fast enough to fill a
 * quarter of the queue meanwhile (wl_udp_pause_ms): large ones take far
 * more than 1.25 KiB each (a 64 KiB datagram 65-130 KiB, fragmented), and
 * a flood of them during a fixed 10 ms would drop everyone's. What a
 * datagram takes of the queue, estimated from its size: */
#define UDP_QUEUE_COST(n) ((uint64_t)(n) + (uint64_t)(n) / 2 + 1024)

unsigned wl_udp_pause_ms(uint64_t queue, uint64_t bytes, uint64_t elapsed_ms, unsigned max_ms)
{
    if (bytes == 0)
        return max_ms;
    if (elapsed_ms == 0)
        elapsed_ms = 1; /* the loop's clock: read within the same millisecond */
    uint64_t ms = queue / 4 * elapsed_ms / bytes; /* queue <= 1 GiB: no overflow for years */
    return ms < max_ms ? (unsigned)ms : max_ms;
}

/* The longest pause of reads the granted queue allows: 0 (none: a short
 * run's jobs wait UDP_SUBMIT_MS while reads go on), 2 or 10 ms. */
static unsigned udp_pace_ms(const struct wl_ingest *ing)
{
    return ing->udp_queue >= UDP_PACE_LONG_QUEUE ? UDP_PACE_LONG_MS
           : ing->udp_queue >= UDP_PACE_QUEUE    ? UDP_SUBMIT_MS
                                                 : 0;
}

static void udp_resume(struct wl_ingest *ing)
{
    if (!ing->udp_paused)
        return;
    ing->udp_paused = 0;
    int rc = uv_udp_recv_start(&ing->udp, udp_alloc, udp_recv);
    if (rc != 0)
        wl_error("udp_recv_error", "error=%s", uv_strerror(rc));
}

static void udp_submit_pending(struct wl_ingest *ing)
{
    struct wl_job *job = ing->udp_first, *last = ing->udp_last, *next;

    uv_timer_stop(&ing->udp_timer);
    udp_resume(ing);
    if (job == NULL)
        return;
    uint64_t pings = ing->udp_pending_pings;
    ing->udp_first = ing->udp_last = NULL;
    ing->udp_pending = 0;
    ing->udp_pending_pings = 0;
    if (ing->writer != NULL) {
        wl_writer_submit_list(ing->writer, job, last, pings);
        return;
    }
    for (; job != NULL; job = next) { /* no writer (an aborted start): nothing to store */
        next = job->next;
        wl_udp_job_done(ing, job);
    }
}

static void udp_timer_fired(uv_timer_t *t)
{
    udp_submit_pending(t->data);
}

/* The end of a run (drained: the kernel's queue is empty): enough jobs go
 * now, a few wait for the timer, reads pausing meanwhile when they may. */
static void udp_run_end(struct wl_ingest *ing, int drained)
{
    unsigned pace = udp_pace_ms(ing), pause = 0;
    if (drained && pace > 0) {
        uint64_t now = uv_now(ing->loop);
        pause = wl_udp_pause_ms(ing->udp_queue, ing->udp_in_bytes, now - ing->udp_in_since, pace);
        ing->udp_in_bytes = 0;
        ing->udp_in_since = now;
    }
    if (ing->udp_first == NULL)
        return;
    if (ing->udp_pending >= UDP_SUBMIT_JOBS || ing->draining) {
        udp_submit_pending(ing);
        return;
    }
    if (!uv_is_active((uv_handle_t *)&ing->udp_timer))
        uv_timer_start(&ing->udp_timer, udp_timer_fired, pace > 0 ? pace : UDP_SUBMIT_MS, 0);
    if (pause > 0 && !ing->udp_paused && uv_udp_recv_stop(&ing->udp) == 0) {
        ing->udp_paused = 1;
        if (pause < pace) /* a shorter pause: the wait ends with it */
            uv_timer_start(&ing->udp_timer, udp_timer_fired, pause, 0);
    }
}

static void udp_check(uv_check_t *h)
{
    udp_run_end(h->data, 0);
}

static void udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                     unsigned flags)
{
    struct wl_ingest *ing = h->data;
    (void)buf;

    /* nread == 0 with no address: the end of an mmsg run (UV_UDP_MMSG_FREE:
     * at most 20 datagrams, libuv reads on) or the kernel had nothing more
     * (drained); the buffer is ours and reused, nothing to free. */
    if (nread == 0 && addr == NULL) {
        udp_run_end(ing, !(flags & UV_UDP_MMSG_FREE));
        return;
    }
    if (nread < 0) {
        wl_warn("udp_recv_error", "error=%s", uv_strerror((int)nread));
        return;
    }
    ing->udp_in_bytes += UDP_QUEUE_COST(nread);
    if (ing->draining)
        return;
    wl_count(WL_M_udp_datagrams, 1);
    wl_count_t(WL_TRANSPORT_UDP, WL_T_envelopes_received, 1);
    wl_count_t(WL_TRANSPORT_UDP, WL_T_received_bytes, (uint64_t)nread);
    struct wl_addr key;
    if (wl_ingest_limited(ing, addr, &key) &&
        wl_addrlimit_take(ing->addrs, &key, uv_now(ing->loop)) != 0) {
        wl_count_t(WL_TRANSPORT_UDP, WL_T_rate_limited, 1);
        return;
    }
    if ((flags & UV_UDP_PARTIAL) || (uint64_t)nread > ing->cfg->max_frame_bytes) {
        wl_count_envelope_reject(WL_TRANSPORT_UDP, WL_REJECT_DATAGRAM_TOO_LARGE);
        return;
    }
    /* Over the limit of what jobs may hold (pings, or 1 for a job without;
     * bytes): checked before decoding, so that an overloaded collector
     * spends nothing on the datagram. */
    if (wl_ingest_over(ing)) {
        wl_count(WL_M_udp_dropped_overload, 1);
        return;
    }
    struct wl_job *job =
        wl_ingest_make_job(ing, (const uint8_t *)buf->base, (size_t)nread, "udp", addr);
    if (job == NULL)
        return;
    wl_ingest_hold(ing, job);
    job->next = NULL;
    if (ing->udp_last != NULL)
        ing->udp_last->next = job;
    else
        ing->udp_first = job;
    ing->udp_last = job;
    ing->udp_pending++;
    ing->udp_pending_pings += job->batch != NULL ? job->batch->n_pings : 0;
}

void wl_udp_job_done(struct wl_ingest *ing, struct wl_job *job)
{
    wl_ingest_release(ing, job);
    wl_job_free(job);
}

/* Asks for a large receive queue: SO_RCVBUFFORCE where we may (root), else
 * SO_RCVBUF within net.core.rmem_max. Linux doubles what it is given and
 * reports the doubled size, so ask for half; log what was granted. */
static void set_recv_buffer(struct wl_ingest *ing)
{
    uv_os_fd_t fd;
    int want = (int)(ing->cfg->udp_recv_buffer / 2), granted = 0;
    socklen_t len = sizeof granted;

    if (uv_fileno((uv_handle_t *)&ing->udp, &fd) != 0)
        return;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
    getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &len);
    ing->udp_queue = granted > 0 ? (uint64_t)granted : 0;
    if ((uint64_t)granted < ing->cfg->udp_recv_buffer)
        wl_warn("udp_recv_buffer", "asked=%llu granted=%d hint=\"raise net.core.rmem_max\"",
                (unsigned long long)ing->cfg->udp_recv_buffer, granted);
    else
        wl_info("udp_recv_buffer", "asked=%llu granted=%d",
                (unsigned long long)ing->cfg->udp_recv_buffer, granted);
}

int wl_udp_start(struct wl_ingest *ing, char *err, size_t errlen)
{
    char host[256];
    int rc;
    struct sockaddr_storage ss;

    if (wl_parse_listen("udp_listen", ing->cfg->udp_listen, &ss, host, sizeof host, err, errlen) != 0)
        return -EINVAL;
    ing->udp_buf_len = UDP_DGRAM_MAX * UDP_MMSG_COUNT;
    ing->udp_buf = malloc(ing->udp_buf_len);
    if (ing->udp_buf == NULL)
        return -ENOMEM;
    rc = uv_udp_init_ex(ing->loop, &ing->udp, ss.ss_family | UV_UDP_RECVMMSG);
    if (rc != 0) {
        snprintf(err, errlen, "udp: %s", uv_strerror(rc));
        return rc;
    }
    ing->udp.data = ing;
    ing->udp_on = 1;
    uv_check_init(ing->loop, &ing->udp_check);
    ing->udp_check.data = ing;
    uv_check_start(&ing->udp_check, udp_check);
    uv_timer_init(ing->loop, &ing->udp_timer);
    ing->udp_timer.data = ing;
    if ((rc = uv_udp_bind(&ing->udp, (const struct sockaddr *)&ss, 0)) != 0) {
        snprintf(err, errlen, "cannot bind UDP %s: %s", ing->cfg->udp_listen, uv_strerror(rc));
        return rc;
    }
    set_recv_buffer(ing);
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&ing->udp, &fd) == 0)
        wl_metrics_set_udp_fd(fd);
    if ((rc = uv_udp_recv_start(&ing->udp, udp_alloc, udp_recv)) != 0) {
        snprintf(err, errlen, "udp recv: %s", uv_strerror(rc));
        return rc;
    }
    return 0;
}

void wl_udp_stop(struct wl_ingest *ing)
{
    if (ing->udp_on && !uv_is_closing((uv_handle_t *)&ing->udp)) {
        wl_metrics_set_udp_fd(-1);
        ing->udp_paused = 0;
        uv_udp_recv_stop(&ing->udp);
        udp_submit_pending(ing);
        uv_close((uv_handle_t *)&ing->udp, NULL);
        uv_close((uv_handle_t *)&ing->udp_check, NULL);
        uv_close((uv_handle_t *)&ing->udp_timer, NULL);
    }
}
