/* The writer's state checkpointed in slices (state_parts.h, struct wl_ckpt):
 * a checkpoint of a million changed installs is hundreds of megabytes, and
 * written at once it would stop the writer, and every ack, for seconds.
 * The writer thread.
 *
 * A checkpoint is exact for one ingest sequence, seq: every record dirty
 * then, as it was then. It begins between two groups (the dirty lists
 * become its work and start again empty), then each group packs a slice of
 * it into the stage column family. A record the checkpoint has not packed
 * yet is packed first when a ping is about to change it (copy on write:
 * wl_st_ckpt_install, wl_st_ckpt_org), so what is staged is the state at
 * seq whatever came after. When the last slice is in, meta state_seq says
 * seq, in the same write; then the staged records move into their column
 * families, a slice with each group. A checkpoint never overlaps the next.
 *
 * A crash at any moment leaves a whole checkpoint:
 *   - while staging (meta stage_seq present): the stage holds part of one;
 *     the load drops it, and replays from the previous state_seq;
 *   - once staged (state_seq = seq): the load first moves what is left of
 *     the stage into place (moving is idempotent: a staged record is never
 *     older than the one in place), then replays from seq.
 * So the records a load reads are exact for state_seq, and the replay
 * applies each ping once (wl_state_load). */
#include "aggregate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "state_parts.h"

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

static void stage_install(struct wl_state *st, struct wl_install *in, struct wl_batch *batch)
{
    struct wl_ckpt *c = &st->ckpt;
    in->flags &= (uint8_t)~IN_CHECKPOINT;
    if (in->ping == NULL)
        return; /* nothing of it to write (as a whole flush) */
    wl_st_put_install(st, in, batch, 1);
    c->records++;
    push((void ***)&c->packed_installs, &c->n_packed_installs, &c->cap_packed_installs, in);
}

static void stage_org(struct wl_state *st, struct wl_org *org, struct wl_batch *batch)
{
    struct wl_ckpt *c = &st->ckpt;
    org->in_ckpt = 0;
    wl_st_put_org(st, org, batch, 1);
    c->records++;
    if (org->day_dirty && org->n_installs > 0) {
        wl_st_put_day(st, org, batch, 1);
        c->records++;
        /* Still dirty: the day's row goes in place when the day ends (or
         * with a whole checkpoint), as a replay expects of finished days;
         * a staged one is dropped should a crash come before it is whole. */
        org->day_dirty = 1;
    }
    push((void ***)&c->packed_orgs, &c->n_packed_orgs, &c->cap_packed_orgs, org);
}

void wl_st_ckpt_install(struct wl_state *st, struct wl_install *in, struct wl_batch *batch)
{
    if (in != NULL && (in->flags & IN_CHECKPOINT))
        stage_install(st, in, batch);
}

void wl_st_ckpt_org(struct wl_state *st, struct wl_org *org, struct wl_batch *batch)
{
    if (org != NULL && org->in_ckpt)
        stage_org(st, org, batch);
}

int wl_state_checkpoint_busy(const struct wl_state *st)
{
    return st->ckpt.phase != CKPT_IDLE;
}

void wl_state_checkpoint_begin(struct wl_state *st, int64_t now, struct wl_batch *batch)
{
    struct wl_ckpt *c = &st->ckpt;
    uint8_t seq[8];
    size_t n = 0;

    if (c->phase != CKPT_IDLE)
        return;
    /* The dirty lists become the work and start again empty. Not sorted:
     * that (a memtable takes keys in order for less) costs 170 ms for
     * 200,000 installs, here between two groups, a stall of every ack. */
    c->installs = wl_st_xrealloc(NULL, (st->n_dirty_installs + 1) * sizeof *c->installs);
    for (struct wl_install *in = st->dirty_installs, *next; in != NULL; in = next) {
        next = in->next_dirty;
        in->next_dirty = NULL;
        in->dirty = 0;
        in->flags |= IN_CHECKPOINT;
        c->installs[n++] = in;
    }
    c->n_installs = n;
    n = 0;
    for (struct wl_org *o = st->dirty_orgs; o != NULL; o = o->next_dirty)
        n++;
    c->orgs = wl_st_xrealloc(NULL, (n + 1) * sizeof *c->orgs);
    n = 0;
    for (struct wl_org *o = st->dirty_orgs, *next; o != NULL; o = next) {
        next = o->next_dirty;
        o->next_dirty = NULL;
        o->dirty = 0;
        o->in_ckpt = 1;
        c->orgs[n++] = o;
    }
    c->n_orgs = n;
    st->dirty_installs = NULL;
    st->dirty_orgs = NULL;
    st->n_dirty_installs = 0;
    c->next_install = c->next_org = 0;
    c->seq = st->ingest_seq;
    c->signal_seq = st->signals.seq;
    c->at = now;
    c->records = 0;
    c->cursor_len = 0;
    c->phase = CKPT_STAGING;
    wl_be64_put(seq, c->seq);
    wl_batch_put(batch, WL_CF_META, META_STAGE_SEQ, sizeof META_STAGE_SEQ - 1, seq, sizeof seq);
}

/* The work's arrays go; the phase becomes next. */
static void work_done(struct wl_ckpt *c, enum wl_ckpt_phase next)
{
    free(c->installs);
    free(c->orgs);
    c->installs = NULL;
    c->orgs = NULL;
    c->n_installs = c->n_orgs = c->next_install = c->next_org = 0;
    c->cursor_len = 0;
    c->phase = next;
}

/* The staging is whole: the checkpoint is, with this batch (meta staged:
 * its sequence and time, until it is all in place). */
static void staged(struct wl_state *st, struct wl_batch *batch)
{
    struct wl_ckpt *c = &st->ckpt;
    uint8_t v[16];
    wl_be64_put(v, c->seq);
    wl_be64_put(v + 8, (uint64_t)c->at);
    wl_batch_put(batch, WL_CF_META, META_STAGED, sizeof META_STAGED - 1, v, sizeof v);
    wl_batch_delete(batch, WL_CF_META, META_STAGE_SEQ, sizeof META_STAGE_SEQ - 1);
    /* every organization that was dirty at its start is packed, and its
     * signals then indexed */
    wl_st_put_signal_index_seq(batch, c->signal_seq);
    work_done(c, CKPT_MOVING);
}

/* All in place: the records are exact for seq (meta state_seq, which the
 * tools read, and which the next load replays after). */
static void in_place(struct wl_batch *batch, uint64_t seq, int64_t at)
{
    uint8_t v[8];
    wl_be64_put(v, seq);
    wl_batch_put(batch, WL_CF_META, META_STATE_SEQ, sizeof META_STATE_SEQ - 1, v, sizeof v);
    wl_be64_put(v, (uint64_t)at);
    wl_batch_put(batch, WL_CF_META, META_STATE_AT, sizeof META_STATE_AT - 1, v, sizeof v);
    wl_batch_delete(batch, WL_CF_META, META_STAGED, sizeof META_STAGED - 1);
}

void wl_st_ckpt_day_ended(struct wl_state *st, const uint8_t *key, size_t len)
{
    struct wl_ckpt *c = &st->ckpt;
    if (c->n_ended == c->cap_ended) {
        c->cap_ended = c->cap_ended ? 2 * c->cap_ended : 64;
        c->ended = wl_st_xrealloc(c->ended, c->cap_ended * sizeof *c->ended);
    }
    memset(c->ended[c->n_ended], 0, sizeof *c->ended);
    memcpy(c->ended[c->n_ended++], key, len); /* zero-padded: compared whole */
}

static int ended_cmp(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(((struct wl_ckpt *)0)->ended[0]));
}

/* The staged row under key was overtaken in this batch by the day's end. */
static int ended_in_batch(struct wl_ckpt *c, const char *key, size_t len)
{
    uint8_t k[sizeof c->ended[0]];
    if (c->n_ended == 0 || len > sizeof k)
        return 0;
    memset(k, 0, sizeof k);
    memcpy(k, key, len);
    return bsearch(k, c->ended, c->n_ended, sizeof k, ended_cmp) != NULL;
}

/* Moves up to budget staged records into place, after the cursor; 1 when
 * none is left. */
static int move_slice(struct wl_state *st, struct wl_ckpt *c, size_t budget,
                      struct wl_batch *batch)
{
    struct wl_iter *it = wl_iter_new(st->store, WL_CF_STAGE);
    size_t n = 0;
    int rest = 0;

    if (c->cursor_len > 0) {
        wl_iter_seek(it, c->cursor, c->cursor_len);
        if (wl_iter_valid(it)) {
            size_t klen;
            const char *k = wl_iter_key(it, &klen);
            if (klen == c->cursor_len && memcmp(k, c->cursor, klen) == 0)
                wl_iter_next(it);
        }
    } else {
        wl_iter_seek_first(it);
    }
    if (c->n_ended > 1)
        qsort(c->ended, c->n_ended, sizeof c->ended[0], ended_cmp);
    for (; wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen, vlen;
        if (n == budget) {
            rest = 1;
            break;
        }
        const char *k = wl_iter_key(it, &klen);
        const char *v = wl_iter_value(it, &vlen);
        if (klen < 2 || klen > sizeof c->cursor)
            continue; /* not a key this file writes */
        enum wl_cf cf = (enum wl_cf)(uint8_t)k[0];
        if (cf == WL_CF_DAILY && ended_in_batch(c, k, klen)) {
            /* its final row is in this batch already, and its delete */
        } else if (cf == WL_CF_INSTALLS || cf == WL_CF_ORGS || cf == WL_CF_DAILY) {
            if (vlen > 0)
                wl_batch_put(batch, cf, k + 1, klen - 1, v, vlen);
            else
                wl_batch_delete(batch, cf, k + 1, klen - 1);
        }
        wl_batch_delete(batch, WL_CF_STAGE, k, klen);
        memcpy(c->cursor, k, klen);
        c->cursor_len = klen;
        n++;
    }
    /* An iterator that failed says nothing more: the next slice tries again. */
    char err[256];
    if (wl_iter_status(it, err, sizeof err) != 0)
        rest = 1;
    wl_iter_free(it);
    return !rest;
}

int wl_state_checkpoint_step(struct wl_state *st, size_t budget, struct wl_batch *batch,
                             uint64_t *records)
{
    struct wl_ckpt *c = &st->ckpt;
    if (c->phase == CKPT_STAGING) {
        while (budget > 0 && c->next_install < c->n_installs) {
            struct wl_install *in = c->installs[c->next_install++];
            if (in->flags & IN_CHECKPOINT) {
                stage_install(st, in, batch);
                budget--;
            }
        }
        while (budget > 0 && c->next_org < c->n_orgs) {
            struct wl_org *o = c->orgs[c->next_org++];
            if (o->in_ckpt) {
                stage_org(st, o, batch);
                budget--;
            }
        }
        if (c->next_install == c->n_installs && c->next_org == c->n_orgs)
            staged(st, batch);
        return 0;
    }
    if (c->phase == CKPT_MOVING && move_slice(st, c, budget, batch)) {
        /* nothing staged is left once this batch is written */
        in_place(batch, c->seq, c->at);
        c->phase = CKPT_IDLE;
        c->cursor_len = 0;
        c->done_pending = 1;
        *records = c->records;
        return 1;
    }
    return 0;
}

int wl_st_ckpt_absorb(struct wl_state *st, struct wl_batch *batch)
{
    struct wl_ckpt *c = &st->ckpt;
    if (c->phase == CKPT_IDLE)
        return 0;
    /* What is staged moves into place, written by earlier groups; the
     * whole flush after it writes what memory has now over it. (Should
     * the read fail, the write that follows is refused too, and the state
     * is loaded again: writer.c.) What this batch staged (copy on write
     * before the flush) the read does not see: it is written in place by
     * the flush, as dirty, and the stage is cleared whole, so nothing of
     * it is left for a later checkpoint to move over newer records. */
    c->cursor_len = 0; /* all of it, from the first key */
    move_slice(st, c, (size_t)-1, batch);
    static const uint8_t lo[1] = {0}, hi[1] = {0xff};
    wl_batch_delete_range(batch, WL_CF_STAGE, lo, 1, hi, 1);
    for (size_t i = 0; i < c->n_packed_installs; i++)
        if (c->packed_installs[i]->ping != NULL)
            wl_st_install_mark(st, c->packed_installs[i]);
    for (size_t i = 0; i < c->n_packed_orgs; i++)
        wl_st_org_mark(st, c->packed_orgs[i]);
    for (size_t i = c->next_install; i < c->n_installs; i++) {
        struct wl_install *in = c->installs[i];
        if (in->flags & IN_CHECKPOINT) {
            in->flags &= (uint8_t)~IN_CHECKPOINT;
            wl_st_install_mark(st, in);
        }
    }
    for (size_t i = c->next_org; i < c->n_orgs; i++) {
        struct wl_org *o = c->orgs[i];
        if (o->in_ckpt) {
            o->in_ckpt = 0;
            wl_st_org_mark(st, o);
        }
    }
    /* and what was staged and is not dirty again goes as a checkpoint's
     * own would: its kept ping, an empty organization (commit) */
    work_done(c, CKPT_IDLE);
    wl_batch_delete(batch, WL_CF_META, META_STAGE_SEQ, sizeof META_STAGE_SEQ - 1);
    wl_batch_delete(batch, WL_CF_META, META_STAGED, sizeof META_STAGED - 1);
    return 0;
}

/* ---- after the write ---- */

void wl_st_ckpt_committed(struct wl_state *st)
{
    struct wl_ckpt *c = &st->ckpt;
    c->n_ended = 0;
    for (size_t i = 0; i < c->n_packed_installs; i++) {
        struct wl_install *in = c->packed_installs[i];
        if (!in->dirty && !(in->flags & IN_CHECKPOINT)) { /* its record is written */
            wl_st_install_drop_ping(st, in);
        }
    }
    c->n_packed_installs = 0;
    /* An organization whose deletion is written goes; not while the
     * staging's work still names it (it waits for the staging's end). */
    size_t keep = 0;
    for (size_t i = 0; i < c->n_packed_orgs; i++) {
        struct wl_org *o = c->packed_orgs[i];
        if (wl_signals_index_written(&o->rules))
            st->index_gen++;
        if (o->n_installs != 0 || o->dirty || o->in_ckpt)
            continue;
        if (c->phase == CKPT_STAGING) {
            c->packed_orgs[keep++] = o;
            continue;
        }
        wl_ptable_remove(&st->orgs, o);
        st->n_orgs--;
        wl_st_org_destroy(st, o);
    }
    c->n_packed_orgs = keep;
    if (c->done_pending) {
        st->state_seq = c->seq;
        st->checkpoint_at = c->at;
        c->done_pending = 0;
    }
}

void wl_st_ckpt_free(struct wl_state *st)
{
    struct wl_ckpt *c = &st->ckpt;
    free(c->installs);
    free(c->orgs);
    free(c->packed_installs);
    free(c->packed_orgs);
    free(c->ended);
    memset(c, 0, sizeof *c);
}

/* ---- at load ---- */

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
     * sequence it is exact for */
    struct wl_state tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.store = store;
    tmp.ckpt.phase = CKPT_MOVING;
    while (rc == 0) {
        int done = move_slice(&tmp, &tmp.ckpt, 65536, b);
        if (done)
            in_place(b, seq, at);
        if (wl_batch_count(b) > 0 && (rc = wl_store_write(store, b, 1, err, errlen)) != 0)
            break;
        wl_batch_clear(b);
        if (done)
            break;
    }
    wl_batch_free(b);
    return rc;
}
