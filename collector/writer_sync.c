#include "writer_sync.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "sched_slice.h"

struct wl_syncer {
    pthread_t thread;
    struct wl_store *store;
    wl_syncer_synced synced_cb;
    void *arg;

    /* under mu */
    pthread_mutex_t mu;
    pthread_cond_t work;      /* the syncer waits for a ticket */
    pthread_cond_t progress;  /* the writer waits for a sync */
    uint64_t written;         /* the last ticket taken */
    uint64_t synced;          /* the last ticket durable (its callback returned) */
    int rc;                   /* a failed sync's -errno until wl_syncer_reset */
    char err[512];
    int stopping;
};

static void *syncer_main(void *arg)
{
    struct wl_syncer *s = arg;
    char err[512];

    pthread_setname_np(pthread_self(), "wl-syncer"); /* for top -H, perf, gdb */
    wl_thread_short_slice();
    wl_store_thread_init();
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stopping && (s->rc != 0 || s->synced == s->written))
            pthread_cond_wait(&s->work, &s->mu);
        if (s->rc != 0 || s->synced == s->written) /* stopping, and nothing to sync */
            break;
        uint64_t target = s->written, last_good = s->synced;
        pthread_mutex_unlock(&s->mu);

        /* Every ticket up to target was taken after its write returned, so
         * this sync, begun after, covers them all. */
        int rc = wl_store_sync_wal(s->store, err, sizeof err);
        if (rc != 0) {
            wl_error("write_failed", "error=\"%s\" wal_sync=1 tickets=%llu", err,
                     (unsigned long long)(target - last_good));
            wl_count(WL_M_write_errors, 1);
        }
        /* The callback before the ticket counts as durable: a wait that
         * returns finds the groups answered. */
        s->synced_cb(s->arg, rc == 0 ? target : last_good, rc);

        pthread_mutex_lock(&s->mu);
        if (rc == 0) {
            s->synced = target;
        } else {
            s->rc = rc;
            snprintf(s->err, sizeof s->err, "%s", err);
        }
        pthread_cond_broadcast(&s->progress);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int wl_syncer_start(struct wl_store *store, wl_syncer_synced synced, void *arg,
                    struct wl_syncer **out, char *err, size_t errlen)
{
    struct wl_syncer *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->store = store;
    s->synced_cb = synced;
    s->arg = arg;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->progress, NULL);
    int rc = pthread_create(&s->thread, NULL, syncer_main, s);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the syncer thread: %s", strerror(rc));
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->work);
        pthread_cond_destroy(&s->progress);
        free(s);
        return -rc;
    }
    *out = s;
    return 0;
}

uint64_t wl_syncer_wrote(struct wl_syncer *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t t = ++s->written;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    return t;
}

uint64_t wl_syncer_written(struct wl_syncer *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t t = s->written;
    pthread_mutex_unlock(&s->mu);
    return t;
}

int wl_syncer_wait(struct wl_syncer *s, uint64_t ticket, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    while (s->synced < ticket && s->rc == 0)
        pthread_cond_wait(&s->progress, &s->mu);
    int rc = s->synced >= ticket ? 0 : s->rc;
    if (rc != 0)
        snprintf(err, errlen, "%s", s->err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void wl_syncer_reset(struct wl_syncer *s)
{
    pthread_mutex_lock(&s->mu);
    s->synced = s->written;
    s->rc = 0;
    s->err[0] = '\0';
    pthread_mutex_unlock(&s->mu);
}

void wl_syncer_stop(struct wl_syncer *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->progress);
    free(s);
}
