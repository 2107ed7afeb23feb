#include "retention.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "aggregate.h"
#include "log.h"
#include "metrics.h"
#include "msgids.h"
#include "storage/keys.h"

#define DAY_MS 86400000LL

struct wl_retention {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;            /* on CLOCK_MONOTONIC */
    int stopping;
    struct wl_store *store;
    uint64_t days;                /* 0: raw pings are kept */
    uint64_t every_ms;
    uint64_t msgid_ttl_ms, msgid_max_bytes;
    uint64_t msgid_kept_bytes;    /* what the last sweep left */
    uint64_t msgid_added_at_sweep; /* wl_msgids_bytes_added() then */
};

#define MSGID_CHECK_MS 1000       /* how often the messageId store's size is looked at */

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* The first ping at or after seq: 1 with its key and receive time, 0 when
 * there is none. A record that does not decode counts as old: it is
 * garbage either way. */
static int ping_at(struct wl_iter *it, uint64_t seq, int first_or_last, uint64_t *key,
                   int64_t *received_at)
{
    uint8_t k[8];
    if (first_or_last < 0) {
        wl_iter_seek_first(it);
    } else if (first_or_last > 0) {
        wl_iter_seek_last(it);
    } else {
        wl_be64_put(k, seq);
        wl_iter_seek(it, k, sizeof k);
    }
    if (!wl_iter_valid(it))
        return 0;
    size_t klen, vlen;
    const char *kp = wl_iter_key(it, &klen);
    const char *v = wl_iter_value(it, &vlen);
    struct wl_ping_peek pk;
    if (klen != 8)
        return 0; /* not a ping key: nothing past it is ours */
    *key = wl_be64_get(kp);
    *received_at = wl_ping_peek(v, vlen, &pk) == 0 ? pk.received_at : 0;
    return 1;
}

int wl_retention_run(struct wl_store *store, int64_t cutoff_ms, uint64_t *deleted,
                     uint64_t *up_to, char *err, size_t errlen)
{
    struct wl_iter *it = wl_iter_new(store, WL_CF_PINGS);
    uint64_t first, last, lo, hi, end;
    int64_t t;
    int rc = 0;

    *deleted = *up_to = 0;
    if (it == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (!ping_at(it, 0, -1, &first, &t) || t >= cutoff_ms)
        goto done; /* nothing old */
    lo = first;
    if (!ping_at(it, 0, 1, &last, &t))
        goto done;
    if (t < cutoff_ms) {
        end = last + 1; /* every ping is old */
    } else {
        /* lo: old; the first ping at or after hi: not old. Sequences grow
         * with receive time, so the boundary lies in between. */
        hi = last;
        while (hi - lo > 1) {
            uint64_t mid = lo + (hi - lo) / 2, k;
            if (!ping_at(it, mid, 0, &k, &t) || k >= hi || t >= cutoff_ms)
                hi = mid;
            else
                lo = k;
        }
        end = hi;
    }
    if ((rc = wl_iter_status(it, err, errlen)) != 0)
        goto done;
    struct wl_batch *b = wl_batch_new(store);
    uint8_t from[8], to[8];
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto done;
    }
    wl_be64_put(from, first);
    wl_be64_put(to, end);
    wl_batch_delete_range(b, WL_CF_PINGS, from, sizeof from, to, sizeof to);
    /* No sync: a range delete lost in a crash is made again next pass. */
    rc = wl_store_write(store, b, 0, err, errlen);
    wl_batch_free(b);
    if (rc == 0) {
        *deleted = end - first;
        *up_to = end - 1;
    }
done:
    if (rc == 0)
        rc = wl_iter_status(it, err, errlen);
    wl_iter_free(it);
    return rc;
}

/* The Rudder messageIds past their time, or past the budget (msgids.h). */
static void sweep_msgids(struct wl_retention *r)
{
    char err[512];
    struct wl_msgids_swept s;

    r->msgid_added_at_sweep = wl_msgids_bytes_added();
    if (wl_msgids_sweep(r->store, now_ms(), r->msgid_ttl_ms, r->msgid_max_bytes, &s, err,
                        sizeof err) != 0) {
        wl_warn("msgids_sweep_failed", "error=\"%s\" retry_in_ms=%llu", err,
                (unsigned long long)r->every_ms);
        return;
    }
    r->msgid_kept_bytes = s.kept_bytes;
    wl_gauge_set(WL_G_msgids_bytes, s.kept_bytes);
    wl_count(WL_M_msgids_expired, s.expired);
    wl_count(WL_M_msgids_evicted, s.evicted);
    if (s.expired + s.evicted > 0)
        wl_info("msgids_swept", "kept=%llu kept_bytes=%llu expired=%llu evicted=%llu",
                (unsigned long long)s.kept, (unsigned long long)s.kept_bytes,
                (unsigned long long)s.expired, (unsigned long long)s.evicted);
}

/* Early: the store would be over its budget, by an eighth of it added
 * since the last sweep (a store at its budget is not scanned again every
 * second while nothing comes). */
static int msgids_due(const struct wl_retention *r)
{
    uint64_t added = wl_msgids_bytes_added() - r->msgid_added_at_sweep;
    return added > r->msgid_max_bytes / 8 && r->msgid_kept_bytes + added > r->msgid_max_bytes;
}

static void pass(struct wl_retention *r)
{
    char err[512];
    uint64_t deleted, up_to;
    int64_t cutoff = now_ms() - (int64_t)r->days * DAY_MS;

    sweep_msgids(r);
    if (r->days == 0)
        return;
    if (wl_retention_run(r->store, cutoff, &deleted, &up_to, err, sizeof err) != 0) {
        wl_warn("retention_failed", "error=\"%s\" retry_in_ms=%llu", err,
                (unsigned long long)r->every_ms);
        return;
    }
    if (deleted == 0)
        return;
    wl_count(WL_M_retention_pings_deleted, deleted);
    wl_info("retention", "deleted_up_to=%llu pings=%llu cutoff=%lld retention_days=%llu",
            (unsigned long long)up_to, (unsigned long long)deleted, (long long)cutoff,
            (unsigned long long)r->days);
}

static void *retention_main(void *arg)
{
    struct wl_retention *r = arg;

    pthread_setname_np(pthread_self(), "wl-retention"); /* for top -H, perf, gdb */
    pthread_mutex_lock(&r->mu);
    uint64_t waited = 0;
    while (!r->stopping) {
        pthread_mutex_unlock(&r->mu);
        if (waited == 0)
            pass(r);
        else if (msgids_due(r))
            sweep_msgids(r); /* messageIds arrive faster than the schedule: sweep early */
        pthread_mutex_lock(&r->mu);
        /* a pass every every_ms; in between, a look at the store's size each second */
        uint64_t step = r->every_ms - waited < MSGID_CHECK_MS ? r->every_ms - waited
                                                              : MSGID_CHECK_MS;
        struct timespec at;
        clock_gettime(CLOCK_MONOTONIC, &at);
        at.tv_sec += (time_t)(step / 1000);
        at.tv_nsec += (long)(step % 1000) * 1000000L;
        if (at.tv_nsec >= 1000000000L) {
            at.tv_sec++;
            at.tv_nsec -= 1000000000L;
        }
        while (!r->stopping && pthread_cond_timedwait(&r->cv, &r->mu, &at) != ETIMEDOUT)
            ;
        waited = waited + step >= r->every_ms ? 0 : waited + step;
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int wl_retention_start(const struct wl_config *cfg, struct wl_store *store,
                       struct wl_retention **out, char *err, size_t errlen)
{
    pthread_condattr_t ca;
    int rc;

    *out = NULL;
    if (cfg->retention_days == 0)
        wl_info("retention_off", "retention_days=0 effect=\"raw pings are kept\"");
    struct wl_retention *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    r->store = store;
    r->days = cfg->retention_days;
    r->msgid_ttl_ms = cfg->msgid_ttl_ms;
    r->msgid_max_bytes = cfg->msgid_max_bytes;
    r->every_ms = cfg->retention_check_ms ? cfg->retention_check_ms : 3600000;
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    if ((rc = pthread_create(&r->thread, NULL, retention_main, r)) != 0) {
        snprintf(err, errlen, "cannot start the retention thread: %s", strerror(rc));
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        free(r);
        return -rc;
    }
    *out = r;
    return 0;
}

void wl_retention_stop(struct wl_retention *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}
