/* The writer's state at start: loading the records, replaying the pings
 * stored after them (state_parts.h); and stored pings read without decoding
 * them (wl_ping_peek, any thread). */
#include "aggregate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_parts.h"

/* ---- reading stored pings without decoding them ---- */

static int pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -EPROTO;
}

/* The next field of a message: its number and wire type; for a
 * length-delimited one its bytes, for a varint its value. */
static int pb_field(const uint8_t **p, const uint8_t *end, uint32_t *field, const uint8_t **data,
                    size_t *len, uint64_t *value)
{
    uint64_t tag, n;
    if (pb_varint(p, end, &tag) != 0 || (tag >> 3) == 0)
        return -EPROTO;
    *field = (uint32_t)(tag >> 3);
    switch (tag & 7) {
    case 0:
        return pb_varint(p, end, value);
    case 1:
    case 5:
        n = (tag & 7) == 1 ? 8 : 4;
        if ((uint64_t)(end - *p) < n)
            return -EPROTO;
        *p += n;
        return 1; /* fixed width: not read */
    case 2:
        if (pb_varint(p, end, &n) != 0 || n > (uint64_t)(end - *p))
            return -EPROTO;
        *data = *p;
        *len = (size_t)n;
        *p += n;
        return 2;
    default:
        return -EPROTO; /* groups are not in these records */
    }
}

int wl_ping_peek(const void *val, size_t vlen, struct wl_ping_peek *out)
{
    const uint8_t *p = val, *end = p + vlen;
    memset(out, 0, sizeof *out);
    while (p < end) {
        uint32_t field;
        const uint8_t *data = NULL;
        size_t len = 0;
        uint64_t v = 0;
        int wt = pb_field(&p, end, &field, &data, &len, &v);
        if (wt < 0)
            return -EPROTO;
        if (field == 2 && wt == 0) { /* received_at */
            out->received_at = (int64_t)v;
        } else if (field == 3 && wt == 2) { /* org */
            out->org = data;
            out->org_len = len;
        } else if (field == 4 && wt == 2) { /* ping: its bytes and install_id */
            const uint8_t *q = data, *qend = data + len;
            out->ping = data;
            out->ping_len = len;
            while (q < qend) {
                const uint8_t *d = NULL;
                size_t dl = 0;
                int w = pb_field(&q, qend, &field, &d, &dl, &v);
                if (w < 0)
                    return -EPROTO;
                if (field == 1 && w == 2) {
                    out->install_id = (const char *)d;
                    out->install_len = dl;
                }
            }
        }
    }
    return 0;
}

/* ---- loading ---- */

/* A record from before records named the latest ping by last_ingest_seq
 * holds it whole (last_ping). The log has it too, but for an edge ping
 * stored then only the fields it carried: that one is written again with
 * the record's last_ping as its merge (once; the check is one read per such
 * install and load, until its record is written again), so that the next
 * edge ping, or the replay of one, finds its base in the log. */
static void legacy_latest(struct wl_state *st, struct wl_install *in, const wl_install_rec *rec)
{
    char *val = NULL, err[256];
    size_t vlen = 0;
    uint8_t key[8];

    wl_st_install_set_ping(st, in, rec->last_ping);
    if (rec->edge_seq == 0 || rec->last_ingest_seq == 0)
        return; /* no edge ping: the log has the wire ping whole */
    wl_be64_put(key, rec->last_ingest_seq);
    if (wl_store_get(st->store, WL_CF_PINGS, key, sizeof key, &val, &vlen, err,
                     sizeof err) == 0) {
        wl_ping_rec *p = warmline__store__v1__stored_ping__unpack(NULL, vlen,
                                                                 (const uint8_t *)val);
        if (p != NULL && p->source != WL_SOURCE_WIRE && p->latest == NULL && p->ping != NULL &&
            strcmp(p->ping->install_id, rec->install_id) == 0)
            wl_st_edge_merge_write(st, (const uint8_t *)val, vlen, rec->last_ping);
        if (p != NULL)
            warmline__store__v1__stored_ping__free_unpacked(p, NULL);
    }
    free(val);
}

static int load_install(struct wl_state *st, const char *val, size_t vlen)
{
    wl_install_rec *rec = warmline__store__v1__install_state__unpack(NULL, vlen,
                                                                    (const uint8_t *)val);
    size_t idlen;
    if (rec == NULL)
        return -EPROTO;
    idlen = strlen(rec->install_id);
    if (idlen == 0 || idlen > WL_INSTALL_ID_MAX || rec->org.len == 0 ||
        rec->org.len > WL_ORG_ID_MAX) {
        warmline__store__v1__install_state__free_unpacked(rec, NULL);
        return -EPROTO;
    }
    struct wl_install *in = wl_st_install_new(st, rec->install_id, idlen);
    in->last_seq = rec->last_seq;
    in->last_ingest_seq = rec->last_ingest_seq;
    in->first_seen = rec->first_seen;
    in->last_seen = rec->last_seen;
    in->edge_seq = (uint32_t)rec->edge_seq;
    in->check_hour = rec->check_hour;
    in->check_digest = rec->check_digest;
    if (rec->org_by_network)
        in->flags |= IN_ORG_BY_NETWORK;
    if (rec->n_counts > 0)
        wl_st_install_set(st, in, rec->counts, rec->n_counts, rec->edition, rec->version,
                          rec->features, rec->n_features);
    else if (rec->last_ping != NULL) /* written before records named their latest ping */
        legacy_latest(st, in, rec);
    struct wl_org *org = wl_st_org_find(st, rec->org.data, rec->org.len);
    if (org == NULL)
        org = wl_st_org_new(st, rec->org.data, rec->org.len);
    wl_st_org_attach(org, in);
    if (in->last_seen > st->clock)
        st->clock = in->last_seen;
    warmline__store__v1__install_state__free_unpacked(rec, NULL);
    return 0;
}

static void load_org(struct wl_state *st, const char *val, size_t vlen)
{
    wl_org_rec *rec = warmline__store__v1__org_state__unpack(NULL, vlen, (const uint8_t *)val);
    if (rec == NULL)
        return;
    struct wl_org *org = wl_st_org_find(st, rec->org.data, rec->org.len);
    /* None of its installs loaded: those it had when its record was written
     * had changed and were not written yet (state_checkpoint.c). The replay
     * brings them back; what is its own is here. */
    if (org == NULL && rec->org.len > 0 && rec->org.len <= WL_ORG_ID_MAX && rec->state_seq != 0)
        org = wl_st_org_new(st, rec->org.data, rec->org.len);
    if (org != NULL) {
        /* What the record lists keeps its place in the capped tables
         * (rebuild_counting adds the installs, then drops what none has):
         * the same lists after a restart, whatever order installs load in. */
        wl_st_tally_seed(st, &org->versions, rec->versions, rec->n_versions);
        wl_st_tally_seed(st, &org->editions, rec->editions, rec->n_editions);
        wl_st_tally_seed(st, &org->feats, rec->features, rec->n_features);
        wl_st_tally_seed(st, &org->eds, rec->editions, rec->n_editions);
        /* also the times of installs that moved away since (wl_st_org_detach) */
        if (rec->first_seen != 0 && (org->first_seen == 0 || rec->first_seen < org->first_seen))
            org->first_seen = rec->first_seen;
        if (rec->last_seen > org->last_seen)
            org->last_seen = rec->last_seen;
        org->day = rec->day;
        org->updated_at = rec->updated_at;
        org->rec_seq = rec->state_seq;
        org->rules.n_signals = rec->signals;
        org->rules.score_log2 = rec->has_score ? rec->score_log2 : WL_SCORE_NONE;
        if (rec->has_score)
            wl_rank_set(&st->signals.rank, &org->rules.rank, rec->score_log2, org->id,
                        org->id_len);
        const struct wl_ruleset *rs = st->opts.rules;
        for (size_t i = 0; rs != NULL && i < rec->n_rules; i++) {
            for (size_t r = 0; r < rs->n; r++) {
                if (strcmp(rs->rules[r].name, rec->rules[i]->rule) != 0)
                    continue;
                if (org->rules.states == NULL)
                    org->rules.states = calloc(rs->n, sizeof *org->rules.states);
                if (org->rules.states == NULL)
                    abort();
                org->rules.states[r].disarmed = rec->rules[i]->disarmed;
                org->rules.states[r].last_fired = rec->rules[i]->last_fired;
            }
        }
    }
    warmline__store__v1__org_state__free_unpacked(rec, NULL);
}

/* Counting, totals and the expiry order follow from last_seen and the
 * clock; the organizations' lists and tallies from their installs. */
static int rebuild_counting(struct wl_state *st)
{
    int64_t limit = st->clock - (int64_t)st->opts.install_ttl_ms;
    struct wl_install *in;
    struct wl_org *org;

    for (size_t i = 0; (in = wl_ptable_next(&st->installs, &i)) != NULL;) {
        wl_st_org_list(st, in->org, in, +1);
        if (in->last_seen >= limit) {
            in->counting = 1;
            wl_st_org_count(st, in->org, in, +1);
            wl_st_heap_push(st, in);
        }
    }
    for (size_t i = 0; (org = wl_ptable_next(&st->orgs, &i)) != NULL;) {
        wl_st_org_first_ids(org); /* a large one's: readers list them */
        wl_st_tally_rebuild(st, &org->versions, 0); /* what the record listed and none has */
        wl_st_tally_rebuild(st, &org->editions, 0);
        wl_st_tally_rebuild(st, &org->feats, 0);
        wl_st_tally_rebuild(st, &org->eds, 0);
    }
    return 0;
}

static int scan(struct wl_state *st, enum wl_cf cf, char *err, size_t errlen)
{
    struct wl_iter *it = wl_iter_new(st->store, cf);
    int rc = 0;
    for (wl_iter_seek_first(it); wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen, vlen;
        const char *k = wl_iter_key(it, &klen);
        const char *v = wl_iter_value(it, &vlen);
        if (cf == WL_CF_ORGS) {
            load_org(st, v, vlen);
        } else if (load_install(st, v, vlen) != 0) {
            snprintf(err, errlen, "installs: record for '%.*s' does not decode", (int)klen, k);
            rc = -EPROTO;
            break;
        }
    }
    if (rc == 0)
        rc = wl_iter_status(it, err, errlen);
    wl_iter_free(it);
    return rc;
}

/* The pings stored after state_seq, through the state again, in order:
 * what a crash between two flushes left only in memory. Their signals,
 * rank moves and finished days were written with them, so the replay
 * writes nothing (its batch is dropped); what it changed stays dirty. */
static int replay(struct wl_state *st, char *err, size_t errlen)
{
    uint64_t last = st->ingest_seq, n = 0;
    uint8_t key[8];
    struct wl_batch *scratch_batch = wl_batch_new(st->store);
    struct wl_iter *it = wl_iter_new(st->store, WL_CF_PINGS);
    int rc = 0;

    st->replaying = 1;
    wl_be64_put(key, st->state_seq + 1);
    for (wl_iter_seek(it, key, sizeof key); wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen, vlen;
        const char *k = wl_iter_key(it, &klen);
        const uint8_t *v = (const uint8_t *)wl_iter_value(it, &vlen);
        if (klen != 8)
            continue;
        uint64_t seq = wl_be64_get(k);
        wl_ping_rec *rec = warmline__store__v1__stored_ping__unpack(NULL, vlen, v);
        if (rec == NULL || rec->ping == NULL || rec->ingest_seq != seq) {
            if (rec != NULL)
                warmline__store__v1__stored_ping__free_unpacked(rec, NULL);
            snprintf(err, errlen, "pings: the record at ingest_seq %llu does not decode",
                     (unsigned long long)seq);
            rc = -EPROTO;
            break;
        }
        st->ingest_seq = seq - 1; /* forgotten pings leave gaps */
        if (wl_st_apply(st, rec->ping, rec->source, rec->presence, rec->received_at,
                        rec->event_at, scratch_batch, v, vlen, rec->latest,
                        NULL) != WL_APPLY_ACCEPTED)
            st->ingest_seq = seq; /* cannot happen: the log holds accepted pings */
        warmline__store__v1__stored_ping__free_unpacked(rec, NULL);
        if (++n % 4096 == 0)
            wl_batch_clear(scratch_batch);
    }
    if (rc == 0)
        rc = wl_iter_status(it, err, errlen);
    wl_iter_free(it);
    wl_batch_free(scratch_batch);
    st->replaying = 0;
    if (st->ingest_seq < last)
        st->ingest_seq = last;
    st->replayed = n;
    return rc;
}

/* The clock as the last checkpoint began: records written after it (in
 * place, state_checkpoint.c) may hold later times, and the replay starts
 * from it. Absent (stores from before): the records are exact for
 * state_seq, so the latest time they hold is, and it is written now,
 * before any record is written in place. */
static int checkpoint_clock(struct wl_state *st, char *err, size_t errlen)
{
    char *val = NULL;
    size_t vlen = 0;
    uint8_t v[8];
    int rc = wl_store_get(st->store, WL_CF_META, META_STATE_CLOCK, sizeof META_STATE_CLOCK - 1,
                          &val, &vlen, err, errlen);
    if (rc == 0 && vlen == 8)
        st->clock = (int64_t)wl_be64_get(val);
    free(val);
    if (rc != -ENOENT)
        return rc;
    struct wl_batch *b = wl_batch_new(st->store);
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    wl_be64_put(v, (uint64_t)st->clock);
    wl_batch_put(b, WL_CF_META, META_STATE_CLOCK, sizeof META_STATE_CLOCK - 1, v, sizeof v);
    rc = wl_store_write(st->store, b, 1, err, errlen);
    wl_batch_free(b);
    return rc;
}

/* The rank lives in memory (rank.h); stores from before kept it in the
 * rank column family, with every organization's id: emptied once. */
static int drop_stored_rank(struct wl_store *store, char *err, size_t errlen)
{
    uint8_t end[8 + WL_ORG_ID_MAX];
    struct wl_iter *it = wl_iter_new(store, WL_CF_RANK);
    if (it == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    wl_iter_seek_first(it);
    int any = wl_iter_valid(it);
    int rc = wl_iter_status(it, err, errlen);
    wl_iter_free(it);
    if (rc != 0 || !any)
        return rc;
    memset(end, 0xff, sizeof end); /* above every key: a score's bits are never all ones */
    struct wl_batch *b = wl_batch_new(store);
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    wl_batch_delete_range(b, WL_CF_RANK, "", 0, end, sizeof end);
    rc = wl_store_write(store, b, 1, err, errlen);
    wl_batch_free(b);
    return rc;
}

/* The organization a stored Signal names (field 2), without decoding it. */
static int signal_org(const char *val, size_t vlen, const uint8_t **org, size_t *len)
{
    const uint8_t *p = (const uint8_t *)val, *end = p + vlen, *data = NULL;
    uint32_t field;
    uint64_t v;
    size_t n = 0;
    while (p < end) {
        int t = pb_field(&p, end, &field, &data, &n, &v);
        if (t < 0)
            return t;
        if (field == 2 && t == 2) {
            *org = data;
            *len = n;
            return 0;
        }
    }
    return -ENOENT;
}

/* Signals after meta signal_index_seq fired once the last checkpoint had
 * begun: their org_signals entries may not be written (signals.h). Their
 * ids go back to their organizations, which the next checkpoint writes
 * (and so indexes). At most one checkpoint window's signals. Absent, every
 * signal is indexed (stores from before: each signal wrote its entry). */
static int recent_signals(struct wl_state *st, struct wl_store *store, char *err, size_t errlen)
{
    char *val = NULL;
    size_t vlen = 0;
    uint8_t from[8];
    int rc = wl_store_get(store, WL_CF_META, META_SIGNAL_INDEX_SEQ,
                          sizeof META_SIGNAL_INDEX_SEQ - 1, &val, &vlen, err, errlen);
    if (rc == -ENOENT)
        return 0;
    if (rc != 0)
        return rc;
    uint64_t done = vlen == 8 ? wl_be64_get(val) : 0;
    free(val);
    if (done >= st->signals.seq)
        return 0;
    struct wl_iter *it = wl_iter_new(store, WL_CF_SIGNALS);
    if (it == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    wl_be64_put(from, done + 1);
    for (wl_iter_seek(it, from, sizeof from); wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen;
        const char *key = wl_iter_key(it, &klen);
        const char *v = wl_iter_value(it, &vlen);
        const uint8_t *org_id;
        size_t org_len;
        if (klen != 8 || signal_org(v, vlen, &org_id, &org_len) != 0)
            continue; /* not one the writer wrote: the export reports it */
        struct wl_org *org = wl_st_org_find(st, org_id, org_len);
        if (org == NULL)
            continue; /* written with its record, which then went (or forgotten) */
        wl_signals_recent_add(&org->rules, wl_be64_get(key));
        wl_st_org_mark(st, org);
    }
    rc = wl_iter_status(it, err, errlen);
    wl_iter_free(it);
    return rc;
}

static uint32_t moved_hash_of(const void *e)
{
    return ((const struct wl_moved *)e)->in->hash;
}

int wl_state_load(struct wl_store *store, const struct wl_state_opts *opts,
                  struct wl_state **out, char *err, size_t errlen)
{
    struct wl_state *st = calloc(1, sizeof *st);
    char *val = NULL;
    size_t vlen;
    int rc;

    if (st == NULL)
        return -ENOMEM;
    st->store = store;
    st->opts = *opts;
    if (st->opts.max_org_features == 0)
        st->opts.max_org_features = WL_ORG_FEATURES_DEFAULT;
    wl_ptable_init(&st->installs, wl_st_install_hash_of);
    wl_ptable_init(&st->orgs, wl_st_org_hash_of);
    wl_ptable_init(&st->strings, wl_st_str_hash_of);
    wl_ptable_init(&st->fsets, wl_st_fset_hash_of);
    wl_ptable_init(&st->moved, moved_hash_of);
    if (opts->rules != NULL) {
        for (int m = 0; m < WL_N_COUNTS; m++) {
            if (opts->rules->growth_metrics & (1u << m))
                st->tracked[st->n_tracked++] = m;
        }
        st->hist_keep_days = st->n_tracked ? opts->rules->max_growth_days : 0;
        for (size_t r = 0; r < opts->rules->n; r++)
            wl_expr_operands(opts->rules->rules[r].when, wl_st_pin_operand, st);
    }
    if ((rc = wl_signals_init(&st->signals, store, opts->rules, opts->score_half_life_ms, err,
                              errlen)) != 0 ||
        (rc = wl_st_ckpt_recover(store, err, errlen)) != 0)
        goto fail;
    rc = wl_store_get(store, WL_CF_META, META_INGEST_SEQ, sizeof META_INGEST_SEQ - 1, &val, &vlen,
                      err, errlen);
    if (rc == 0 && vlen == 8)
        st->ingest_seq = wl_be64_get(val);
    free(val);
    val = NULL;
    if (rc != 0 && rc != -ENOENT)
        goto fail;
    rc = wl_store_get(store, WL_CF_META, META_STATE_SEQ, sizeof META_STATE_SEQ - 1, &val, &vlen,
                      err, errlen);
    st->state_seq = rc == 0 && vlen == 8 ? wl_be64_get(val) : st->ingest_seq;
    free(val);
    val = NULL;
    if (rc == 0) {
        int rc2 = wl_store_get(store, WL_CF_META, META_STATE_AT, sizeof META_STATE_AT - 1, &val,
                               &vlen, err, errlen);
        if (rc2 == 0 && vlen == 8)
            st->checkpoint_at = (int64_t)wl_be64_get(val);
        free(val);
        if (rc2 != 0 && rc2 != -ENOENT)
            rc = rc2;
    }
    if (rc == -ENOENT) {
        /* A new database, or one from before lazy flushes (which wrote its
         * state with every group): its records are exact now. Say so on
         * disk before any ping can be stored without its state. */
        uint8_t seq[8];
        struct wl_batch *b = wl_batch_new(store);
        wl_be64_put(seq, st->state_seq);
        wl_batch_put(b, WL_CF_META, META_STATE_SEQ, sizeof META_STATE_SEQ - 1, seq, sizeof seq);
        wl_st_put_signal_index_seq(b, st->signals.seq);
        rc = wl_store_write(store, b, 1, err, errlen);
        wl_batch_free(b);
    }
    if (rc != 0)
        goto fail;
    st->staged_ingest_seq = st->ingest_seq;
    if ((rc = drop_stored_rank(store, err, errlen)) != 0 ||
        (rc = scan(st, WL_CF_INSTALLS, err, errlen)) != 0 ||
        (rc = scan(st, WL_CF_ORGS, err, errlen)) != 0 ||
        (rc = checkpoint_clock(st, err, errlen)) != 0 || (rc = rebuild_counting(st)) != 0)
        goto fail;
    if (st->state_seq < st->ingest_seq && (rc = replay(st, err, errlen)) != 0)
        goto fail;
    if ((rc = recent_signals(st, store, err, errlen)) != 0)
        goto fail;
    *out = st;
    return 0;

fail:
    wl_state_free(st);
    return rc;
}

void wl_state_free(struct wl_state *st)
{
    struct wl_install *in;
    struct wl_org *org;
    struct wl_str *str;

    if (st == NULL)
        return;
    for (size_t i = 0; (in = wl_ptable_next(&st->installs, &i)) != NULL;) {
        wl_st_install_release(st, in);
        free(in);
    }
    for (size_t i = 0; (org = wl_ptable_next(&st->orgs, &i)) != NULL;)
        wl_st_org_destroy(st, org);
    /* Left: the rules' operands, the state's own references. No removal
     * while iterating: free them all, then the tables. */
    for (size_t i = 0; (str = wl_ptable_next(&st->strings, &i)) != NULL;)
        free(str);
    wl_ptable_free(&st->installs);
    wl_ptable_free(&st->orgs);
    wl_ptable_free(&st->strings);
    wl_ptable_free(&st->fsets);
    wl_signals_free(&st->signals);
    wl_st_ckpt_moved_free(st);
    wl_st_ckpt_free(st);
    wl_st_group_free(st);
    free(st->heap);
    free(st->operands);
    free(st->scratch);
    free(st->sort_buf);
    free(st->feat_buf);
    free(st);
}
