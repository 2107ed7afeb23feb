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

void wl_signals_mem_free(struct wl_signals_mem *m)
{
    free(m->ids);
    free(m->pend_ids);
    free(m->pend_off);
    free(m->pend);
    memset(m, 0, sizeof *m);
}

/* Copies what memory holds of the organization's signals (the lock held). */
static int copy_signals(const struct wl_signals *sg, const struct wl_signal_ids *s,
                        struct wl_signals_mem *out)
{
    size_t bytes = 0, k = 0;
    const uint8_t *p;
    size_t len;
    out->ids = malloc(s->n * sizeof *out->ids);
    out->pend_ids = malloc(s->n * sizeof *out->pend_ids);
    out->pend_off = malloc(s->n * sizeof *out->pend_off);
    if (out->ids == NULL || out->pend_ids == NULL || out->pend_off == NULL)
        return -ENOMEM;
    memcpy(out->ids, s->id, s->n * sizeof *out->ids);
    out->n = s->n;
    for (size_t i = 0; i < s->n; i++)
        if (wl_signals_pending(sg, s->id[i], &p, &len) == 0)
            bytes += len;
    if (bytes > 0 && (out->pend = malloc(bytes)) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < s->n; i++) {
        if (wl_signals_pending(sg, s->id[i], &p, &len) != 0)
            continue;
        out->pend_ids[k] = s->id[i];
        out->pend_off[k++] = out->pend_len;
        memcpy(out->pend + out->pend_len, p, len);
        out->pend_len += len;
    }
    out->n_pend = k;
    return 0;
}

int wl_state_read_signals(struct wl_state_reader *r, const uint8_t *org, size_t org_len,
                          struct wl_signals_mem *out)
{
    int rc = 0;
    memset(out, 0, sizeof *out);
    pthread_rwlock_rdlock(&r->lock);
    if (r->st == NULL) {
        rc = -EAGAIN;
    } else {
        const struct wl_org *o = wl_st_org_find(r->st, org, org_len);
        const struct wl_signal_ids *s = o != NULL ? o->rules.recent : NULL;
        out->gen = r->st->index_gen;
        if (s != NULL && s->n > 0)
            rc = copy_signals(&r->st->signals, s, out);
    }
    pthread_rwlock_unlock(&r->lock);
    if (rc == -ENOMEM)
        wl_signals_mem_free(out);
    return rc;
}

int wl_state_read_rank(struct wl_state_reader *r, const uint8_t *after, size_t after_len,
                       uint8_t (*keys)[WL_RANK_KEY_MAX], uint8_t *lens, size_t max)
{
    int n = 0;
    pthread_rwlock_rdlock(&r->lock);
    if (r->st == NULL) {
        n = -EAGAIN;
    } else {
        const struct wl_rank_node *x =
            wl_rank_after(&r->st->signals.rank, after_len ? after : NULL, after_len);
        for (; x != NULL && (size_t)n < max; x = x->lv[0].next, n++)
            lens[n] = (uint8_t)wl_rank_node_key(x, keys[n]);
    }
    pthread_rwlock_unlock(&r->lock);
    return n;
}

int wl_state_read_last_fired(struct wl_state_reader *r, const uint8_t *org, size_t org_len,
                             const char *rule, int64_t *at)
{
    int rc = 0;
    *at = 0;
    pthread_rwlock_rdlock(&r->lock);
    if (r->st == NULL) {
        rc = -EAGAIN;
    } else {
        const struct wl_org *o = wl_st_org_find(r->st, org, org_len);
        const struct wl_ruleset *rs = r->st->opts.rules;
        if (o == NULL)
            rc = -ENOENT;
        for (size_t i = 0; rc == 0 && o->rules.states != NULL && rs != NULL && i < rs->n; i++)
            if ((rule == NULL || strcmp(rs->rules[i].name, rule) == 0) &&
                o->rules.states[i].last_fired > *at)
                *at = o->rules.states[i].last_fired;
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
