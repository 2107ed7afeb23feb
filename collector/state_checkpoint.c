/* The writer's state checkpointed in slices (state_parts.h, struct wl_ckpt):
 * a checkpoint of a million changed installs is hundreds of megabytes, and
 * written at once it would stop the writer, and every ack, for seconds.
 * The writer thread.
 *
 * A checkpoint begins between two groups, at ingest sequence seq: the
 * organizations dirty then are its work, and the dirty list starts again
 * empty. Each group then writes a slice of them in place, each organization
 * with every install of it changed since last written (org->dirty_v) and
 * its current day, as they are when its slice comes; the organization's
 * record says the ingest sequence it is exact for (OrgState.state_seq). No
 * ping copies a record first, and each record is written once. When the
 * last is written, meta state_seq says seq, in the same write.
 *
 * What a load reads after a crash at any moment:
 *   - each organization's record is exact for its own state_seq, and its
 *     installs' records for that or earlier: an install is written only
 *     with its organization, so none is newer than its organization's
 *     record (an older one is exact too: nothing changed it since);
 *   - every record is exact for meta state_seq or later: what changed
 *     before it was written by the checkpoint that set it.
 * So the load replays the pings after state_seq, and each only where it is
 * missing: a ping an install's record has (its last_ingest_seq) changes
 * nothing; one it lacks changes the install and what its organization
 * sums of its installs (totals, tallies), and the organization's own state
 * (rules, signals' score, days) only when the organization's record lacks
 * it too (state_load.c; aggregate.c's replay guards). No ping counts twice.
 *
 * An install that moves changes two organizations. The record of the one
 * it left is written before (or with) the install's, in the same write
 * (wl_st_ckpt_moved, st->moved: the last one it left; should it leave a
 * second before its record is written, the first is written before the
 * next moved install's record, st->left_v): a load that finds the install
 * in its new organization finds the old one without it, so never replays
 * to the old one a ping whose install it cannot know of. A move costs no
 * write, whatever the organizations' sizes. An install that changed before
 * the checkpoint under way began and moves into an organization it does
 * not write (taken already, or clean at its begin) brings that organization
 * into it (c->extra, after the rest): the checkpoint holds what it began
 * with. */
#include "aggregate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "state_parts.h"

static const char META_CKPT_SEQ[] = WL_META_CKPT_SEQ;
static const char META_STAGE_SEQ[] = WL_META_STAGE_SEQ;
static const char META_STAGED[] = WL_META_STAGED;

static void push(void ***v, size_t *n, size_t *cap, void *e)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        *v = wl_st_xrealloc(*v, *cap * sizeof **v);
    }
    (*v)[(*n)++] = e;
}

/* Once in the list of organizations written since the last commit. */
static void packed_org(struct wl_ckpt *c, struct wl_org *org)
{
    if (!org->packed) {
        org->packed = 1;
        push((void ***)&c->packed_orgs, &c->n_packed_orgs, &c->cap_packed_orgs, org);
    }
}

/* The record of an organization an install left, alone (its installs may
 * stay behind it: exact too): O(its record), its install ids as kept. */
static void org_left(struct wl_state *st, struct wl_org *org, struct wl_batch *batch)
{
    wl_st_put_org(st, org, batch, 0);
    if (org->day_dirty && org->n_installs > 0) /* with its day, as a record always is */
        wl_st_put_daily(st, org, batch);
    packed_org(&st->ckpt, org);
}

static int moved_eq(const void *e, const void *key)
{
    return ((const struct wl_moved *)e)->in == key;
}

static struct wl_moved *moved_find(const struct wl_state *st, const struct wl_install *in)
{
    return wl_ptable_find(&st->moved, in->hash, moved_eq, in);
}

void wl_st_ckpt_moved(struct wl_state *st, struct wl_install *in, const struct wl_org *old,
                      struct wl_org *to)
{
    struct wl_ckpt *c = &st->ckpt;
    struct wl_moved *m = (in->flags & IN_MOVED) ? moved_find(st, in) : NULL;
    if (m == NULL) {
        m = wl_st_xrealloc(NULL, sizeof *m);
        m->in = in;
        wl_ptable_add(&st->moved, m);
        in->flags |= IN_MOVED;
    } else if (m->org_len != to->id_len || memcmp(m->org, to->id, to->id_len) != 0) {
        /* A second organization left before its record is written: the
         * first one's record now, unless written since (back into it, it
         * is written with it). */
        struct wl_org *first = wl_st_org_find(st, m->org, m->org_len);
        if (first != NULL && first->rec_seq < m->seq && !first->left_pending) {
            first->left_pending = 1; /* written once, before a moved install is */
            push((void ***)&st->left_v, &st->n_left, &st->cap_left, first);
        }
    }
    m->org_len = old->id_len;
    memcpy(m->org, old->id, old->id_len);
    m->seq = st->ingest_seq;
    unsigned since = (in->flags & IN_DIRTY_EPOCH) >> IN_DIRTY_EPOCH_SHIFT;
    if (c->phase != CKPT_IDLE && in->dirty && since != (st->ckpt_epoch & 3u) && !to->in_extra) {
        to->in_extra = 1; /* changed before the begin: this checkpoint writes it */
        to->next_extra = c->extra;
        c->extra = to;
    }
}

/* The organizations installs left through a third before their records
 * were written, each once (st->left_v): before a moved install's record. */
static void left_put(struct wl_state *st, struct wl_batch *batch)
{
    for (size_t i = 0; i < st->n_left; i++) {
        struct wl_org *o = st->left_v[i];
        o->left_pending = 0;
        org_left(st, o, batch);
    }
    st->n_left = 0;
}

/* The install is written now: the organization it left last first (in the
 * same write), unless it is the one being written. */
static void moved_settle(struct wl_state *st, struct wl_install *in, const struct wl_org *org,
                         struct wl_batch *batch)
{
    struct wl_moved *m = moved_find(st, in);
    in->flags &= (uint8_t)~IN_MOVED;
    left_put(st, batch);
    if (m == NULL)
        return;
    struct wl_org *left = wl_st_org_find(st, m->org, m->org_len);
    if (left != NULL && left != org && left->rec_seq < m->seq) /* not found: gone, deleted */
        org_left(st, left, batch);
    wl_ptable_remove(&st->moved, m);
    free(m);
}

void wl_st_ckpt_moved_free(struct wl_state *st)
{
    free(st->left_v);
    struct wl_moved *m;
    for (size_t i = 0; (m = wl_ptable_next(&st->moved, &i)) != NULL;)
        free(m);
    wl_ptable_free(&st->moved);
}

uint64_t wl_st_ckpt_org_write(struct wl_state *st, struct wl_org *org, struct wl_batch *batch)
{
    struct wl_ckpt *c = &st->ckpt;
    uint64_t n = 1;
    for (uint32_t i = 0; i < org->n_dirty; i++) {
        struct wl_install *in = org->dirty_v[i];
        in->dirty = 0;
        if (in->flags & IN_MOVED)
            moved_settle(st, in, org, batch);
        wl_st_put_install(st, in, batch);
        n++;
    }
    st->n_dirty_installs -= org->n_dirty;
    org->n_dirty = 0;
    if (org->cap_dirty > 64) { /* a burst's: not kept */
        free(org->dirty_v);
        org->dirty_v = NULL;
        org->cap_dirty = 0;
    }
    wl_st_put_org(st, org, batch, 1);
    if (org->day_dirty && org->n_installs > 0) {
        wl_st_put_daily(st, org, batch);
        n++;
    }
    packed_org(c, org);
    return n;
}

int wl_state_checkpoint_busy(const struct wl_state *st)
{
    return st->ckpt.phase != CKPT_IDLE;
}

void wl_state_checkpoint_begin(struct wl_state *st, int64_t now, struct wl_batch *batch)
{
    struct wl_ckpt *c = &st->ckpt;
    uint8_t seq[8];

    if (c->phase != CKPT_IDLE)
        return;
    /* The dirty list becomes the work and starts again empty, in O(1)
     * (a walk over 100,000 organizations here, between two groups, was a
     * 20-40 ms stall of every ack). An organization of the work stays
     * dirty until it is taken: a change before that is written with it,
     * one after marks it again (wl_st_org_mark). Not sorted: that (a
     * memtable takes keys in order for less) costs 170 ms for 200,000. */
    c->next = st->dirty_orgs;
    c->n_orgs = st->n_dirty_orgs;
    c->taken = 0;
    c->expected = 2 * c->n_orgs + st->n_dirty_installs; /* with their days */
    st->dirty_orgs = NULL;
    st->n_dirty_orgs = 0;
    c->seq = st->ingest_seq;
    c->signal_seq = st->signals.seq;
    c->at = now;
    c->clock = st->clock;
    c->records = 0;
    c->phase = CKPT_WRITING;
    st->ckpt_epoch++; /* an install dirty since before it: wl_st_ckpt_moved */
    wl_be64_put(seq, c->seq);
    wl_batch_put(batch, WL_CF_META, META_CKPT_SEQ, sizeof META_CKPT_SEQ - 1, seq, sizeof seq);
}

uint64_t wl_state_checkpoint_left(const struct wl_state *st)
{
    const struct wl_ckpt *c = &st->ckpt;
    if (c->phase == CKPT_IDLE)
        return 0;
    /* installs changed since the begin are written too: never below what
     * is left of the organizations */
    uint64_t orgs = c->n_orgs - c->taken;
    return c->expected > c->records + orgs ? c->expected - c->records : orgs;
}

/* The next organization of the work, off it (and no longer dirty: it is
 * written now, as it is). */
static struct wl_org *take(struct wl_ckpt *c)
{
    struct wl_org *o = c->next;
    c->next = o->next_dirty;
    o->next_dirty = NULL;
    o->dirty = 0;
    c->taken++;
    return o;
}

/* The next organization an install brought into the work (wl_st_ckpt_moved),
 * once the rest is written; NULL when none is left. */
static struct wl_org *take_extra(struct wl_ckpt *c)
{
    struct wl_org *o = c->extra;
    if (o != NULL) {
        c->extra = o->next_extra;
        o->next_extra = NULL;
        o->in_extra = 0;
    }
    return o;
}

int wl_state_checkpoint_step(struct wl_state *st, size_t budget, struct wl_batch *batch,
                             uint64_t *records)
{
    struct wl_ckpt *c = &st->ckpt;
    if (c->phase != CKPT_WRITING)
        return 0;
    while (budget > 0 && (c->next != NULL || c->extra != NULL)) {
        struct wl_org *o = c->next != NULL ? take(c) : take_extra(c);
        uint64_t n = wl_st_ckpt_org_write(st, o, batch);
        c->records += n;
        budget = n >= budget ? 0 : budget - (size_t)n;
    }
    if (c->next != NULL || c->extra != NULL)
        return 0;
    /* Whole with this batch: every organization dirty at seq is written,
     * and its signals then indexed. */
    wl_st_put_state_seq(batch, c->seq, c->at, c->clock);
    wl_st_put_signal_index_seq(batch, c->signal_seq);
    c->phase = CKPT_IDLE;
    c->done_pending = 1;
    *records = c->records;
    return 1;
}

int wl_st_ckpt_absorb(struct wl_state *st, struct wl_batch *batch)
{
    struct wl_ckpt *c = &st->ckpt;
    if (c->phase == CKPT_IDLE)
        return 0;
    /* what it has not written goes with the whole flush, which says the
     * newer sequence */
    while (c->next != NULL)
        wl_st_ckpt_org_write(st, take(c), batch);
    for (struct wl_org *o; (o = take_extra(c)) != NULL;)
        wl_st_ckpt_org_write(st, o, batch);
    c->phase = CKPT_IDLE;
    return 0;
}

/* ---- after the write ---- */

void wl_st_ckpt_committed(struct wl_state *st)
{
    struct wl_ckpt *c = &st->ckpt;
    /* An organization whose deletion is written goes, unless a list names
     * it (dirty: the work, or the dirty list) */
    for (size_t i = 0; i < c->n_packed_orgs; i++) {
        struct wl_org *o = c->packed_orgs[i];
        o->packed = 0;
        if (wl_signals_index_written(&o->rules))
            st->index_gen++;
        if (o->n_installs != 0 || o->dirty || o->in_extra || o->left_pending)
            continue;
        wl_ptable_remove(&st->orgs, o);
        st->n_orgs--;
        wl_st_org_destroy(st, o);
    }
    c->n_packed_orgs = 0;
    if (c->done_pending) {
        st->state_seq = c->seq;
        st->checkpoint_at = c->at;
        c->done_pending = 0;
    }
}

void wl_st_ckpt_free(struct wl_state *st)
{
    struct wl_ckpt *c = &st->ckpt;
    free(c->packed_orgs);
    memset(c, 0, sizeof *c);
}

/* ---- at load: a stage an older version left ---- */

/* Moves up to budget staged records into place after the cursor (the last
 * key moved; len 0: from the first); 1 when none is left. Moving is
 * idempotent: a staged record is never older than the one in place. */
static int move_slice(struct wl_store *store, uint8_t *cursor, size_t *cursor_len, size_t budget,
                      struct wl_batch *batch)
{
    struct wl_iter *it = wl_iter_new(store, WL_CF_STAGE);
    size_t n = 0;
    int rest = 0;

    if (*cursor_len > 0) {
        wl_iter_seek(it, cursor, *cursor_len);
        if (wl_iter_valid(it)) {
            size_t klen;
            const char *k = wl_iter_key(it, &klen);
            if (klen == *cursor_len && memcmp(k, cursor, klen) == 0)
                wl_iter_next(it);
        }
    } else {
        wl_iter_seek_first(it);
    }
    for (; wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen, vlen;
        if (n == budget) {
            rest = 1;
            break;
        }
        const char *k = wl_iter_key(it, &klen);
        const char *v = wl_iter_value(it, &vlen);
        if (klen < 2 || klen > 256)
            continue; /* not a key the writer wrote */
        enum wl_cf cf = (enum wl_cf)(uint8_t)k[0];
        if (cf == WL_CF_INSTALLS || cf == WL_CF_ORGS || cf == WL_CF_DAILY) {
            if (vlen > 0)
                wl_batch_put(batch, cf, k + 1, klen - 1, v, vlen);
            else
                wl_batch_delete(batch, cf, k + 1, klen - 1);
        }
        wl_batch_delete(batch, WL_CF_STAGE, k, klen);
        memcpy(cursor, k, klen);
        *cursor_len = klen;
        n++;
    }
    char err[256];
    if (wl_iter_status(it, err, sizeof err) != 0)
        rest = 1;
    wl_iter_free(it);
    return !rest;
}

static int read_meta(struct wl_store *store, const char *name, int *found, char *err,
                     size_t errlen)
{
    char *val = NULL;
    size_t vlen;
    int rc = wl_store_get(store, WL_CF_META, name, strlen(name), &val, &vlen, err, errlen);
    free(val);
    *found = rc == 0;
    return rc == -ENOENT ? 0 : rc;
}

int wl_st_ckpt_recover(struct wl_store *store, char *err, size_t errlen)
{
    int partial = 0, rc;
    /* One written in place was under way: what it wrote is exact, each
     * organization for its own sequence; the key said so. */
    if ((rc = read_meta(store, META_CKPT_SEQ, &partial, err, errlen)) != 0)
        return rc;
    if (partial) {
        struct wl_batch *d = wl_batch_new(store);
        if (d == NULL)
            return -ENOMEM;
        wl_batch_delete(d, WL_CF_META, META_CKPT_SEQ, sizeof META_CKPT_SEQ - 1);
        rc = wl_store_write(store, d, 1, err, errlen);
        wl_batch_free(d);
        if (rc != 0)
            return rc;
        partial = 0;
    }
    if ((rc = read_meta(store, META_STAGE_SEQ, &partial, err, errlen)) != 0)
        return rc;
    struct wl_batch *b = wl_batch_new(store);
    if (b == NULL)
        return -ENOMEM;
    if (partial) { /* a checkpoint staged in part: as if it never began */
        static const uint8_t lo[1] = {0}, hi[1] = {0xff};
        wl_batch_delete_range(b, WL_CF_STAGE, lo, 1, hi, 1);
        wl_batch_delete(b, WL_CF_META, META_STAGE_SEQ, sizeof META_STAGE_SEQ - 1);
        rc = wl_store_write(store, b, 1, err, errlen);
        wl_batch_free(b);
        return rc;
    }
    char *val = NULL;
    size_t vlen = 0;
    rc = wl_store_get(store, WL_CF_META, META_STAGED, sizeof META_STAGED - 1, &val, &vlen, err,
                      errlen);
    if (rc == -ENOENT) { /* none under way */
        wl_batch_free(b);
        return 0;
    }
    if (rc == 0 && vlen != 16) {
        snprintf(err, errlen, "meta %s: %zu bytes, not 16", META_STAGED, vlen);
        rc = -EPROTO;
    }
    uint64_t seq = rc == 0 ? wl_be64_get(val) : 0;
    int64_t at = rc == 0 ? (int64_t)wl_be64_get(val + 8) : 0;
    free(val);
    /* a whole one, not all in place: the rest now, in slices, then the
     * sequence it is exact for (its clock: the load's, from its records) */
    uint8_t cursor[256];
    size_t cursor_len = 0;
    while (rc == 0) {
        int done = move_slice(store, cursor, &cursor_len, 65536, b);
        if (done) {
            uint8_t v[8];
            wl_be64_put(v, seq);
            wl_batch_put(b, WL_CF_META, META_STATE_SEQ, sizeof META_STATE_SEQ - 1, v, sizeof v);
            wl_be64_put(v, (uint64_t)at);
            wl_batch_put(b, WL_CF_META, META_STATE_AT, sizeof META_STATE_AT - 1, v, sizeof v);
            wl_batch_delete(b, WL_CF_META, META_STAGED, sizeof META_STAGED - 1);
        }
        if (wl_batch_count(b) > 0 && (rc = wl_store_write(store, b, 1, err, errlen)) != 0)
            break;
        wl_batch_clear(b);
        if (done)
            break;
    }
    wl_batch_free(b);
    return rc;
}
