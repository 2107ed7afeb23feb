/* The writer's state read by other threads (state_read.h): records packed
 * from memory under the read lock, unpacked after it. Any thread. */
#include "state_read.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "state_parts.h"

struct wl_state_reader {
    pthread_rwlock_t lock;
    struct wl_state *st;          /* under lock; NULL: none */
};

struct wl_state_reader *wl_state_reader_new(void)
{
    struct wl_state_reader *r = calloc(1, sizeof *r);
    pthread_rwlockattr_t attr;
    if (r == NULL)
        return NULL;
    pthread_rwlockattr_init(&attr);
    /* A waiting writer goes before new readers: ingest never starves. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&r->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    return r;
}

void wl_state_reader_free(struct wl_state_reader *r)
{
    if (r == NULL)
        return;
    pthread_rwlock_destroy(&r->lock);
    free(r);
}

void wl_state_reader_set(struct wl_state_reader *r, struct wl_state *st)
{
    pthread_rwlock_wrlock(&r->lock);
    r->st = st;
    pthread_rwlock_unlock(&r->lock);
}

void wl_state_change_begin(struct wl_state_reader *r)
{
    if (r != NULL)
        pthread_rwlock_wrlock(&r->lock);
}

void wl_state_change_end(struct wl_state_reader *r)
{
    if (r != NULL)
        pthread_rwlock_unlock(&r->lock);
}

int wl_state_read_org(struct wl_state_reader *r, const uint8_t *org, size_t org_len,
                      Warmline__Store__V1__OrgState **out)
{
    uint8_t *buf = NULL;
    const char **feats = NULL;
    size_t cap = 0, feats_cap = 0, n = 0;
    int rc = 0;

    *out = NULL;
    pthread_rwlock_rdlock(&r->lock);
    if (r->st == NULL) {
        rc = -EAGAIN;
    } else {
        const struct wl_org *o = wl_st_org_find(r->st, org, org_len);
        /* one whose installs all moved away goes at the next commit */
        if (o == NULL || o->n_installs == 0)
            rc = -ENOENT;
        else
            n = wl_st_pack_org(r->st, o, &feats, &feats_cap, &buf, &cap);
    }
    pthread_rwlock_unlock(&r->lock);
    free(feats);
    if (rc == 0) {
        *out = warmline__store__v1__org_state__unpack(NULL, n, buf);
        rc = *out == NULL ? -ENOMEM : 0;
    }
    free(buf);
    return rc;
}

int wl_state_read_install(struct wl_state_reader *r, const char *id,
                          Warmline__Store__V1__InstallState **out)
{
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;
    int rc = 0;

    *out = NULL;
    pthread_rwlock_rdlock(&r->lock);
    if (r->st == NULL) {
        rc = -EAGAIN;
    } else {
        const struct wl_install *in = wl_st_install_find(r->st, id, strlen(id));
        if (in == NULL || in->org == NULL)
            rc = -ENOENT;
        else if (in->ping == NULL)
            rc = 1; /* its latest ping is written: the record on disk (staged or in place) */
        else
            n = wl_st_pack_install(in, &buf, &cap);
    }
    pthread_rwlock_unlock(&r->lock);
    if (rc == 0) {
        *out = warmline__store__v1__install_state__unpack(NULL, n, buf);
        rc = *out == NULL ? -ENOMEM : 0;
    }
    free(buf);
    return rc;
}

int wl_state_read_signal_ids(struct wl_state_reader *r, const uint8_t *org, size_t org_len,
                             uint64_t **ids, size_t *n, uint64_t *gen)
{
    int rc = 0;
    *ids = NULL;
    *n = 0;
    pthread_rwlock_rdlock(&r->lock);
    if (r->st == NULL) {
        rc = -EAGAIN;
    } else {
        const struct wl_org *o = wl_st_org_find(r->st, org, org_len);
        const struct wl_signal_ids *s = o != NULL ? o->rules.recent : NULL;
        *gen = r->st->index_gen;
        if (s != NULL && s->n > 0) {
            *ids = malloc(s->n * sizeof **ids);
            if (*ids == NULL)
                rc = -ENOMEM;
            else
                memcpy(*ids, s->id, (*n = s->n) * sizeof **ids);
        }
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

int wl_state_read_position(struct wl_state_reader *r, struct wl_state_position *out)
{
    int rc = 0;
    pthread_rwlock_rdlock(&r->lock);
    if (r->st == NULL) {
        rc = -EAGAIN;
    } else {
        out->ingest_seq = r->st->ingest_seq;
        out->checkpoint_seq = r->st->state_seq;
        out->checkpoint_at = r->st->checkpoint_at;
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}
