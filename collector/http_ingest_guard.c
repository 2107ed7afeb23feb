/* The HTTP ingest listener's guard, for libmicrohttpd's threads (any number
 * at once):
 * - a token bucket per source address: the ingest loop's fixed table
 *   (addrlimit.h: keyed hash, no growth with addresses) behind a mutex;
 * - a whole-request deadline. libmicrohttpd's timeout is inactivity only,
 *   which a sender dribbling one byte at a time never trips. Each connection
 *   takes a slot (a fixed array, max_conns of them) holding its socket and
 *   when its current request began; a sweeper thread shuts down the socket
 *   of every slot past the deadline, and libmicrohttpd, reading end of
 *   file, closes the connection. libmicrohttpd tells us a connection closed
 *   (NOTIFY_CLOSED) before it closes the socket, and the slot is freed under
 *   the same lock the sweeper holds: a socket number is never shut down
 *   after it was reused. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "addrlimit.h"
#include "http_ingest_parts.h"
#include "metrics.h"

struct conn_slot {
    int fd;                     /* -1: free */
    uint64_t since_ms;          /* when its current request began (monotonic) */
    int shut;                   /* its socket was shut down: it closes soon */
    int prepaid;                /* its next request's token was taken at accept */
};

struct wl_http_guard {
    struct wl_http_guard_opts o;
    pthread_mutex_t rate_mu;
    struct wl_addrlimit *rate;  /* NULL: no rate limit per address */
    struct wl_addrlimit *holds; /* body bytes held per address (under rate_mu) */
    double total_tokens;        /* the bucket of all addresses together (under rate_mu) */
    uint64_t total_at_ms;       /* when it was last filled */

    pthread_mutex_t mu;         /* the slots, stopping */
    pthread_cond_t cv;
    struct conn_slot *slots;
    size_t n_slots;
    int stopping;
    pthread_t sweeper;
    int sweeper_on;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void *sweep_main(void *arg)
{
    struct wl_http_guard *g = arg;
    /* a tenth of the deadline between looks, within [20 ms, 1 s] */
    uint64_t every = g->o.deadline_ms / 10;
    every = every < 20 ? 20 : every > 1000 ? 1000 : every;

    pthread_setname_np(pthread_self(), "wl-http-sweep");
    pthread_mutex_lock(&g->mu);
    while (!g->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + every * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        uint64_t now = mono_ms();
        for (size_t i = 0; i < g->n_slots; i++) {
            struct conn_slot *s = &g->slots[i];
            if (s->fd >= 0 && !s->shut && now > s->since_ms &&
                now - s->since_ms > g->o.deadline_ms) {
                shutdown(s->fd, SHUT_RDWR);
                s->shut = 1;
                wl_count(WL_M_http_closed_deadline, 1);
            }
        }
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int wl_http_guard_new(const struct wl_http_guard_opts *o, struct wl_http_guard **out,
                      char *err, size_t errlen)
{
    struct wl_http_guard *g = calloc(1, sizeof *g);
    int rc;

    *out = NULL;
    if (g == NULL)
        return -ENOMEM;
    g->o = *o;
    g->total_tokens = (double)o->burst_total;
    g->total_at_ms = mono_ms();
    pthread_mutex_init(&g->rate_mu, NULL);
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (o->rate > 0 && wl_addrlimit_new(o->table_size, o->rate, o->burst, &g->rate) != 0) {
        snprintf(err, errlen, "cannot allocate the HTTP address table (%zu entries)",
                 o->table_size);
        rc = -ENOMEM;
        goto fail;
    }
    if (wl_addrlimit_new(o->table_size, 0, 1, &g->holds) != 0) {
        snprintf(err, errlen, "cannot allocate the HTTP address table (%zu entries)",
                 o->table_size);
        rc = -ENOMEM;
        goto fail;
    }
    g->n_slots = o->max_conns;
    if ((g->slots = calloc(g->n_slots, sizeof *g->slots)) == NULL) {
        snprintf(err, errlen, "cannot allocate %zu HTTP connection slots", g->n_slots);
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < g->n_slots; i++)
        g->slots[i].fd = -1;
    if ((rc = pthread_create(&g->sweeper, NULL, sweep_main, g)) != 0) {
        snprintf(err, errlen, "cannot start the HTTP deadline thread: %s", strerror(rc));
        rc = -rc;
        goto fail;
    }
    g->sweeper_on = 1;
    *out = g;
    return 0;

fail:
    wl_http_guard_free(g);
    return rc;
}

void wl_http_guard_free(struct wl_http_guard *g)
{
    if (g == NULL)
        return;
    if (g->sweeper_on) {
        pthread_mutex_lock(&g->mu);
        g->stopping = 1;
        pthread_cond_signal(&g->cv);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->sweeper, NULL);
    }
    wl_addrlimit_free(g->rate);
    wl_addrlimit_free(g->holds);
    free(g->slots);
    pthread_mutex_destroy(&g->rate_mu);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}

/* n tokens from the bucket of all addresses together: 0, or the ms until
 * there are. Under rate_mu. */
static uint64_t take_total(struct wl_http_guard *g, uint64_t now, uint32_t n)
{
    if (g->o.rate_total == 0)
        return 0;
    /* more than the bucket can hold after the request's own token: what it can */
    double cap = g->o.burst_total > 1 ? (double)g->o.burst_total - 1.0 : 1.0;
    double need = (double)n < cap ? (double)n : cap;
    if (now > g->total_at_ms) {
        g->total_tokens += (double)(now - g->total_at_ms) * (double)g->o.rate_total / 1000.0;
        if (g->total_tokens > (double)g->o.burst_total)
            g->total_tokens = (double)g->o.burst_total;
        g->total_at_ms = now;
    }
    if (g->total_tokens >= need) {
        g->total_tokens -= need;
        return 0;
    }
    uint64_t wait = (uint64_t)((need - g->total_tokens) * 1000.0 / (double)g->o.rate_total);
    return wait > 0 ? wait : 1;
}

uint64_t wl_http_guard_admit_n(struct wl_http_guard *g, const struct sockaddr *sa, uint32_t n)
{
    struct wl_addr key;
    uint64_t wait = 0, now = mono_ms();
    int loopback = g->rate != NULL ? wl_addr_key(sa, &key) : -1;
    if (n == 0)
        return 0;
    pthread_mutex_lock(&g->rate_mu);
    if (loopback == 0 || (loopback == 1 && g->o.limit_loopback))
        wait = wl_addrlimit_take_n(g->rate, &key, n, now);
    if (wait == 0) /* many addresses, each within its bucket, are not more than this */
        wait = take_total(g, now, n);
    pthread_mutex_unlock(&g->rate_mu);
    return wait;
}

uint64_t wl_http_guard_admit(struct wl_http_guard *g, const struct sockaddr *sa)
{
    return wl_http_guard_admit_n(g, sa, 1);
}

int wl_http_guard_hold(struct wl_http_guard *g, const struct sockaddr *sa, size_t total,
                       uint32_t *units)
{
    struct wl_addr key;
    if (sa == NULL || g->o.hold_max_bytes == 0 || wl_addr_key(sa, &key) < 0)
        return 0;
    uint64_t max = (g->o.hold_max_bytes + WL_HTTP_HOLD_UNIT - 1) / WL_HTTP_HOLD_UNIT;
    uint64_t want = ((uint64_t)total + WL_HTTP_HOLD_UNIT - 1) / WL_HTTP_HOLD_UNIT;
    uint32_t more = want > *units ? (uint32_t)(want - *units) : 0;
    if (more == 0)
        return 0;
    pthread_mutex_lock(&g->rate_mu);
    int rc = wl_addrlimit_hold(g->holds, &key, more, max, mono_ms());
    pthread_mutex_unlock(&g->rate_mu);
    if (rc == -EMFILE)
        return -EMFILE;
    if (rc == 0)
        *units += more;
    return 0;
}

void wl_http_guard_release(struct wl_http_guard *g, const struct sockaddr *sa, uint32_t units)
{
    struct wl_addr key;
    if (sa == NULL || units == 0 || wl_addr_key(sa, &key) < 0)
        return;
    pthread_mutex_lock(&g->rate_mu);
    wl_addrlimit_release(g->holds, &key, units);
    pthread_mutex_unlock(&g->rate_mu);
}

void *wl_http_guard_conn_open(struct wl_http_guard *g, int fd)
{
    struct conn_slot *found = NULL;
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < g->n_slots && found == NULL; i++) {
        if (g->slots[i].fd < 0) {
            found = &g->slots[i];
            found->fd = fd;
            found->shut = 0;
            found->prepaid = 0;
            found->since_ms = mono_ms();
        }
    }
    pthread_mutex_unlock(&g->mu);
    return found;
}

void wl_http_guard_conn_restart(struct wl_http_guard *g, void *slot)
{
    struct conn_slot *s = slot;
    if (s == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    s->since_ms = mono_ms();
    pthread_mutex_unlock(&g->mu);
}

void wl_http_guard_conn_prepay(struct wl_http_guard *g, void *slot)
{
    struct conn_slot *s = slot;
    if (s == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    s->prepaid = 1;
    pthread_mutex_unlock(&g->mu);
}

int wl_http_guard_conn_use_prepaid(struct wl_http_guard *g, void *slot)
{
    struct conn_slot *s = slot;
    int was;
    if (s == NULL)
        return 0;
    pthread_mutex_lock(&g->mu);
    was = s->prepaid;
    s->prepaid = 0;
    pthread_mutex_unlock(&g->mu);
    return was;
}

void wl_http_guard_conn_close(struct wl_http_guard *g, void *slot)
{
    struct conn_slot *s = slot;
    if (s == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    s->fd = -1;
    pthread_mutex_unlock(&g->mu);
}
