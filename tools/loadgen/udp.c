/* UDP: one connected socket per "connection", each fed its own source,
 * up to MMSG_MAX datagrams per sendmmsg, round robin. No acks: what
 * arrived is the collector's to say (pings_accepted in event=stats_final). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"

#define MMSG_MAX 64
#define UDP_PAYLOAD_MAX 65507 /* IPv4: 65535 less the IP and UDP headers; loadgen.c checks
                               * pre-encoded frames, this the ones encoded while sending */
#define REFUSED_MAX 1000      /* ECONNREFUSED errors tolerated before giving up */

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ULL), .tv_nsec = (long)(ns % 1000000000ULL)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int lg_run_udp(const struct lg_options *opt, struct lg_source *src, struct lg_result *res)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct mmsghdr msgs[MMSG_MAX];
    struct iovec iov[MMSG_MAX];
    int *fds = NULL;
    unsigned char *finished = NULL;
    unsigned live = 0;
    uint64_t t0 = 0, last_send = 0, admitted = 0;
    int rc = LG_EXIT_FAIL, stopped = 0;

    if (lg_resolve(opt, SOCK_DGRAM, &ss, &sslen, res->error, sizeof res->error) != 0)
        return LG_EXIT_FAIL;
    fds = malloc(opt->connections * sizeof *fds);
    finished = calloc(opt->connections, 1);
    if (fds == NULL || finished == NULL) {
        lg_error(res, "out of memory");
        goto done;
    }
    for (unsigned i = 0; i < opt->connections; i++)
        fds[i] = -1;
    for (unsigned i = 0; i < opt->connections; i++) {
        fds[i] = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&ss, sslen) != 0) {
            lg_error(res, "udp %s: %s", opt->target, strerror(errno));
            goto done;
        }
        live++;
    }

    t0 = last_send = lg_now_ns();
    res->started_at_ms = lg_unix_ms();
    while (live > 0) {
        uint64_t rate_wait = 0;
        int sent_any = 0;
        for (unsigned i = 0; i < opt->connections && live > 0; i++) {
            struct lg_frame *f;
            uint64_t now = lg_now_ns();
            if (finished[i])
                continue;
            if (!stopped && opt->duration > 0 && (double)(now - t0) >= opt->duration * 1e9) {
                for (unsigned j = 0; j < opt->connections; j++)
                    lg_source_stop(&src[j]);
                stopped = 1;
            }
            size_t n = lg_source_peek(&src[i], &f, MMSG_MAX), k = 0;
            if (n == 0) {
                finished[i] = 1;
                live--;
                continue;
            }
            if (opt->rate > 0) {
                uint64_t allowed =
                    (uint64_t)((double)opt->rate * (double)(now - t0) / 1e9) + opt->batch;
                uint64_t a = admitted;
                while (k < n && a + f[k].npings <= allowed)
                    a += f[k++].npings;
                if (k == 0) {
                    uint64_t w = (uint64_t)((double)(admitted + f[0].npings - allowed) * 1e9 /
                                            (double)opt->rate) + 1;
                    if (rate_wait == 0 || w < rate_wait)
                        rate_wait = w;
                    continue;
                }
            } else {
                k = n;
            }
            memset(msgs, 0, k * sizeof msgs[0]);
            for (size_t j = 0; j < k; j++) {
                if (f[j].len > UDP_PAYLOAD_MAX) {
                    lg_error(res, "batch %llu is a %zu-byte envelope, over the %d bytes a "
                              "datagram holds; use a smaller --batch or --zlib",
                              (unsigned long long)f[j].batch_id, f[j].len, UDP_PAYLOAD_MAX);
                    goto done;
                }
                iov[j].iov_base = f[j].buf;
                iov[j].iov_len = f[j].len;
                msgs[j].msg_hdr.msg_iov = &iov[j];
                msgs[j].msg_hdr.msg_iovlen = 1;
            }
            int r = sendmmsg(fds[i], msgs, (unsigned)k, 0);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
                    struct pollfd pfd = {.fd = fds[i], .events = POLLOUT};
                    poll(&pfd, 1, 10);
                    continue;
                }
                if (errno == ECONNREFUSED && ++res->send_errors <= REFUSED_MAX) {
                    /* an earlier datagram met a closed port; these were not sent */
                    lg_error(res, "udp %s: connection refused (is anything listening?)",
                              opt->target);
                    continue;
                }
                lg_error(res, "udp %s: sendmmsg: %s", opt->target, strerror(errno));
                goto done;
            }
            for (int j = 0; j < r; j++) {
                res->pings_sent += f[j].npings;
                res->bytes_sent += f[j].len;
                admitted += f[j].npings;
            }
            res->frames_sent += (uint64_t)r;
            lg_source_advance(&src[i], (size_t)r);
            last_send = lg_now_ns();
            sent_any = 1;
        }
        lg_progress(opt, res, t0);
        if (!sent_any && rate_wait > 0)
            sleep_ns(rate_wait);
    }
    rc = LG_EXIT_OK;

done:
    res->finished_at_ms = lg_unix_ms();
    if (res->started_at_ms != 0)
        res->elapsed = (double)(last_send - t0) / 1e9;
    for (unsigned i = 0; fds != NULL && i < opt->connections; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
    }
    free(fds);
    free(finished);
    if (rc == LG_EXIT_OK && res->error[0] != '\0')
        rc = LG_EXIT_FAIL;
    return rc;
}
