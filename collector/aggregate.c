#include "aggregate.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "state_parts.h"

void *wl_st_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        abort(); /* out of memory in the writer: nothing sane to do */
    return q;
}

uint8_t *wl_st_scratch(struct wl_state *st, size_t need)
{
    if (need > st->scratch_cap) {
        size_t cap = st->scratch_cap ? st->scratch_cap : 4096;
        while (cap < need)
            cap *= 2;
        st->scratch = wl_st_xrealloc(st->scratch, cap);
        st->scratch_cap = cap;
    }
    return st->scratch;
}

/* ---- the counting installs, a min-heap by last_seen ----
 * Expiry pops the install silent longest; a ping moves its install down.
 * O(log n) whatever order event times arrive in (imports need not be
 * sorted). */

static void heap_set(struct wl_state *st, size_t i, struct wl_install *in)
{
    st->heap[i] = in;
    in->heap_pos = (uint32_t)i;
}

static void heap_sift_up(struct wl_state *st, size_t i)
{
    struct wl_install *in = st->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (st->heap[parent]->last_seen <= in->last_seen)
            break;
        heap_set(st, i, st->heap[parent]);
        i = parent;
    }
    heap_set(st, i, in);
}

static void heap_sift_down(struct wl_state *st, size_t i)
{
    struct wl_install *in = st->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= st->heap_n)
            break;
        if (child + 1 < st->heap_n && st->heap[child + 1]->last_seen < st->heap[child]->last_seen)
            child++;
        if (in->last_seen <= st->heap[child]->last_seen)
            break;
        heap_set(st, i, st->heap[child]);
        i = child;
    }
    heap_set(st, i, in);
}

void wl_st_heap_push(struct wl_state *st, struct wl_install *in)
{
    if (st->heap_n == st->heap_cap) {
        st->heap_cap = st->heap_cap ? st->heap_cap * 2 : 1024;
        st->heap = wl_st_xrealloc(st->heap, st->heap_cap * sizeof *st->heap);
    }
    heap_set(st, st->heap_n++, in);
    heap_sift_up(st, st->heap_n - 1);
}

void wl_st_heap_remove(struct wl_state *st, struct wl_install *in)
{
    size_t i = in->heap_pos;
    struct wl_install *last = st->heap[--st->heap_n];
    if (last == in)
        return;
    heap_set(st, i, last);
    heap_sift_down(st, i);
    heap_sift_up(st, last->heap_pos);
}

/* ---- organizations ---- */

uint32_t wl_st_org_hash_of(const void *e) { return ((const struct wl_org *)e)->hash; }

static int org_eq(const void *e, const void *key)
{
    const struct wl_org *org = e;
    const struct bytes_key *k = key;
    return org->id_len == k->len && memcmp(org->id, k->p, k->len) == 0;
}

struct wl_org *wl_st_org_find(const struct wl_state *st, const uint8_t *id, size_t len)
{
    struct bytes_key k = {id, len};
    return wl_ptable_find(&st->orgs, (uint32_t)wl_keyhash(id, len), org_eq, &k);
}

struct wl_org *wl_st_org_new(struct wl_state *st, const uint8_t *id, size_t len)
{
    struct wl_org *org = wl_st_xrealloc(NULL, sizeof *org);
    memset(org, 0, sizeof *org);
    memcpy(org->id, id, len);
    org->id_len = (uint8_t)len;
    org->hash = (uint32_t)wl_keyhash(id, len);
    org->rules.score_log2 = WL_SCORE_NONE;
    wl_ptable_add(&st->orgs, org);
    st->n_orgs++;
    return org;
}

static void org_mark(struct wl_state *st, struct wl_org *org)
{
    if (!org->dirty) {
        org->dirty = 1;
        org->next_dirty = st->dirty_orgs;
        st->dirty_orgs = org;
    }
}

static void install_mark(struct wl_state *st, struct wl_install *in)
{
    if (!in->dirty) {
        in->dirty = 1;
        in->next_dirty = st->dirty_installs;
        st->dirty_installs = in;
        st->n_dirty_installs++;
    }
}

void wl_st_put_daily(struct wl_state *st, struct wl_org *org, struct wl_batch *batch)
{
    wl_daily_rec rec = WARMLINE__STORE__V1__DAILY_STATE__INIT;
    uint8_t key[1 + WL_ORG_ID_MAX + 4];
    rec.day = org->day;
    rec.n_totals = WL_N_COUNTS;
    rec.totals = org->totals;
    rec.installs = org->n_counting;
    rec.installs_total = (uint32_t)org->n_installs;
    size_t n = warmline__store__v1__daily_state__get_packed_size(&rec);
    uint8_t *buf = wl_st_scratch(st, n);
    warmline__store__v1__daily_state__pack(&rec, buf);
    size_t klen = wl_daily_key(org->id, org->id_len, org->day, key);
    wl_batch_put(batch, WL_CF_DAILY, key, klen, buf, n);
    org->day_dirty = 0;
}

/* Appends (day, tracked values) to the history and drops what no growth
 * window can reach any more: entries older than the newest one at or
 * before day - keep. */
static void hist_push(struct wl_state *st, struct wl_org *org, uint32_t day, const uint64_t *totals)
{
    int k = st->n_tracked;
    if (org->hist_n > 0 && org->hist_days[org->hist_n - 1] == day) {
        org->hist_n--; /* a newer end-of-day value for the same day */
    }
    if (org->hist_n == org->hist_cap && org->hist_cap < HIST_MAX) {
        /* computed wide, then bounded: the capacity never wraps */
        size_t cap = org->hist_cap ? 2 * (size_t)org->hist_cap : 4;
        org->hist_cap = (uint16_t)(cap > HIST_MAX ? HIST_MAX : cap);
        org->hist_days = wl_st_xrealloc(org->hist_days, org->hist_cap * sizeof *org->hist_days);
        org->hist_vals =
            wl_st_xrealloc(org->hist_vals, (size_t)org->hist_cap * k * sizeof(uint64_t));
    }
    if (org->hist_n == org->hist_cap) { /* full even so: drop the oldest */
        memmove(org->hist_days, org->hist_days + 1, (org->hist_n - 1) * sizeof *org->hist_days);
        memmove(org->hist_vals, org->hist_vals + k,
                (size_t)(org->hist_n - 1) * k * sizeof(uint64_t));
        org->hist_n--;
    }
    org->hist_days[org->hist_n] = day;
    for (int i = 0; i < k; i++)
        org->hist_vals[(size_t)org->hist_n * k + i] = totals[st->tracked[i]];
    org->hist_n++;
    /* Prune: keep one entry at or before day - keep, and all after it. */
    int64_t bound = (int64_t)day - st->hist_keep_days;
    int drop = 0;
    while (drop + 1 < org->hist_n && (int64_t)org->hist_days[drop + 1] <= bound)
        drop++;
    if (drop > 0) {
        memmove(org->hist_days, org->hist_days + drop,
                (org->hist_n - drop) * sizeof *org->hist_days);
        memmove(org->hist_vals, org->hist_vals + (size_t)drop * k,
                (size_t)(org->hist_n - drop) * k * sizeof(uint64_t));
        org->hist_n = (uint16_t)(org->hist_n - drop);
    }
}

/* Reads the org's recent days from the daily column family, once, before
 * the first change this process makes to it. */
static void hist_load(struct wl_state *st, struct wl_org *org)
{
    uint8_t key[1 + WL_ORG_ID_MAX + 4];
    uint32_t from = org->day > (uint32_t)st->hist_keep_days ? org->day - st->hist_keep_days : 0;
    size_t prefix = 1 + org->id_len;
    struct wl_iter *it;

    org->hist_ready = 1;
    if (st->hist_keep_days == 0 || org->day == 0)
        return;
    it = wl_iter_new(st->store, WL_CF_DAILY);
    wl_daily_key(org->id, org->id_len, from, key);
    wl_iter_seek_for_prev(it, key, prefix + 4);
    if (!wl_iter_valid(it))
        wl_iter_seek(it, key, prefix); /* nothing at or before: start at the first */
    for (; wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen, vlen;
        const char *k = wl_iter_key(it, &klen);
        int cmp = memcmp(k, key, klen < prefix ? klen : prefix);
        if (cmp == 0 && klen < prefix)
            cmp = -1;
        if (cmp > 0)
            break;
        if (cmp < 0 || klen != prefix + 4)
            continue; /* the seek landed on another org's key, before ours */
        uint32_t day = wl_be32_get(k + prefix);
        if (day >= org->day)
            break; /* the current day is the live totals, not history */
        const char *v = wl_iter_value(it, &vlen);
        wl_daily_rec *rec =
            warmline__store__v1__daily_state__unpack(NULL, vlen, (const uint8_t *)v);
        if (rec == NULL)
            continue;
        uint64_t totals[WL_N_COUNTS] = {0};
        for (size_t i = 0; i < rec->n_totals && i < WL_N_COUNTS; i++)
            totals[i] = rec->totals[i];
        hist_push(st, org, day, totals);
        warmline__store__v1__daily_state__free_unpacked(rec, NULL);
    }
    wl_iter_free(it);
}

/* Before an organization changes at event time t: the day it was on ends
 * (its record is written and enters the history) when t is a later day. */
void wl_st_org_touch(struct wl_state *st, struct wl_org *org, int64_t t, struct wl_batch *batch)
{
    uint32_t day = wl_day_of(t);
    if (!org->hist_ready && st->hist_keep_days > 0)
        hist_load(st, org);
    org->hist_ready = 1;
    if (day > org->day) {
        if (org->day_dirty)
            wl_st_put_daily(st, org, batch);
        if (st->hist_keep_days > 0 && org->day != 0)
            hist_push(st, org, org->day, org->totals);
        org->day = day;
    }
    if (t > org->updated_at)
        org->updated_at = t;
    org->day_dirty = 1;
    org_mark(st, org);
}

void wl_st_org_attach(struct wl_org *org, struct wl_install *in)
{
    if (org->n_installs == org->cap_installs) {
        org->cap_installs = org->cap_installs ? org->cap_installs * 2 : 2;
        org->installs = wl_st_xrealloc(org->installs, org->cap_installs * sizeof *org->installs);
    }
    in->org_pos = (uint32_t)org->n_installs;
    org->installs[org->n_installs++] = in;
    if (org->first_seen == 0 || in->first_seen < org->first_seen)
        org->first_seen = in->first_seen;
    if (in->last_seen > org->last_seen)
        org->last_seen = in->last_seen;
    in->org = org;
}

/* O(1) whatever the organization's size: the last install takes the
 * leaver's place. The organization's first and last seen stay: they are
 * the first and last time it saw any install, also one that moved away
 * (its record keeps them across restarts, load_org). */
void wl_st_org_detach(struct wl_state *st, struct wl_org *org, struct wl_install *in)
{
    struct wl_install *last = org->installs[--org->n_installs];
    org->installs[in->org_pos] = last;
    last->org_pos = in->org_pos;
    if (in->counting)
        wl_st_org_count(st, org, in, -1);
    wl_st_org_list(st, org, in, -1);
    in->org = NULL;
}

/* First and last seen of the installs it has (after a forget). */
void wl_st_org_reseen(struct wl_org *org)
{
    org->first_seen = org->last_seen = 0;
    for (size_t i = 0; i < org->n_installs; i++) {
        const struct wl_install *o = org->installs[i];
        if (org->first_seen == 0 || o->first_seen < org->first_seen)
            org->first_seen = o->first_seen;
        if (o->last_seen > org->last_seen)
            org->last_seen = o->last_seen;
    }
}

/* ---- the rules' view of an organization ---- */

static int view_has_feature(void *ctx, const char *name)
{
    void **c = ctx;
    const struct wl_state *st = c[0];
    const struct wl_org *org = c[1];
    const char *s = wl_st_interned(st, name);
    return s != NULL && wl_st_tally_has(&org->feats, s);
}

static int view_has_edition(void *ctx, const char *edition)
{
    void **c = ctx;
    const struct wl_state *st = c[0];
    const struct wl_org *org = c[1];
    const char *s = wl_st_interned(st, edition);
    return s != NULL && wl_st_tally_has(&org->eds, s);
}

static int view_past_value(void *ctx, enum wl_count metric, int days_ago, uint64_t *out)
{
    void **c = ctx;
    const struct wl_state *st = c[0];
    const struct wl_org *org = c[1];
    int k = -1;
    for (int i = 0; i < st->n_tracked; i++) {
        if (st->tracked[i] == (int)metric)
            k = i;
    }
    if (k < 0 || (int64_t)org->day < days_ago)
        return -1;
    uint32_t want = org->day - (uint32_t)days_ago;
    for (int i = org->hist_n - 1; i >= 0; i--) {
        if (org->hist_days[i] <= want) {
            *out = org->hist_vals[(size_t)i * st->n_tracked + k];
            return 0;
        }
    }
    return -1;
}

/* A signal's installs: the organization's first max counting ones. */
static size_t org_counting_ids(void *ctx, const char **out, size_t max)
{
    const struct wl_org *org = ctx;
    size_t n = 0;
    for (size_t i = 0; i < org->n_installs && n < max; i++) {
        if (org->installs[i]->counting)
            out[n++] = org->installs[i]->id;
    }
    return n;
}

/* Steps the rules for an organization that just changed at event time t. */
static void org_evaluate(struct wl_state *st, struct wl_org *org, int64_t t, uint64_t ingest_seq,
                         struct wl_batch *batch)
{
    if (st->opts.rules == NULL || st->opts.rules->n == 0)
        return;
    void *ctx[2] = {st, org};
    struct wl_account_view view = {
        .totals = org->totals,
        .installs = org->n_counting,
        .has_feature = view_has_feature,
        .has_edition = view_has_edition,
        .past_value = view_past_value,
        .ctx = ctx,
    };
    struct wl_signal_cause cause = {
        .org = org->id,
        .org_len = org->id_len,
        .at = t,
        .ingest_seq = ingest_seq,
        .installs = org_counting_ids,
        .installs_ctx = org,
    };
    /* Replaying, the signals are on disk already: the rules only step. */
    if (wl_signals_evaluate(&st->signals, &org->rules, &view, &cause,
                            st->replaying ? NULL : batch) > 0 &&
        !st->replaying)
        st->group_last_signal = st->signals.seq;
}

/* Takes the organization out of the rank index, where its signals put it. */
void wl_st_rank_delete(const struct wl_org *org, struct wl_batch *batch)
{
    if (org->rules.n_signals > 0) {
        uint8_t key[8 + WL_ORG_ID_MAX];
        size_t klen = wl_rank_key(org->rules.score_log2, org->id, org->id_len, key);
        wl_batch_delete(batch, WL_CF_RANK, key, klen);
    }
}

/* An organization whose last install moved away ends: its day is written,
 * its rank entry goes, its record goes at the next flush (put_org); should
 * an install come back first, it starts again from nothing, as a new
 * organization does. So the state does not depend on when flushes happen,
 * and a replay computes what the live writer did. */
static void org_empty(struct wl_state *st, struct wl_org *org, struct wl_batch *batch)
{
    if (org->day_dirty) /* its day (touched by the move) ends: with no installs */
        wl_st_put_daily(st, org, batch);
    if (!st->replaying) /* replaying, the delete is stored already */
        wl_st_rank_delete(org, batch);
    wl_org_rules_free(&org->rules);
    memset(&org->rules, 0, sizeof org->rules);
    org->rules.score_log2 = WL_SCORE_NONE;
    wl_st_tally_clear(st, &org->versions); /* every count is 0: no installs */
    wl_st_tally_clear(st, &org->editions);
    wl_st_tally_clear(st, &org->feats);
    wl_st_tally_clear(st, &org->eds);
    org->hist_n = 0;
    org->hist_ready = 1; /* as wl_st_org_new: a new organization reads no history */
    org->day = 0;
    org->day_dirty = 0;
    org->first_seen = org->last_seen = org->updated_at = 0;
    org_mark(st, org);
}

/* ---- time ---- */

/* Installs silent past the TTL stop counting; their orgs change at the clock. */
static void expire(struct wl_state *st, struct wl_batch *batch)
{
    int64_t limit = st->clock - (int64_t)st->opts.install_ttl_ms;
    while (st->heap_n > 0 && st->heap[0]->last_seen < limit) {
        struct wl_install *in = st->heap[0];
        struct wl_org *org = in->org;
        wl_st_heap_remove(st, in);
        wl_st_org_touch(st, org, st->clock, batch);
        wl_st_org_count(st, org, in, -1);
        in->counting = 0;
        org_evaluate(st, org, st->clock, 0, batch);
    }
}

void wl_state_advance(struct wl_state *st, int64_t now, struct wl_batch *batch)
{
    if (now > st->clock)
        st->clock = now;
    expire(st, batch);
}

/* ---- pings ---- */

/* The install's strings become the ping's: new references first, then the
 * old ones go (freeing what no one else holds). */
void wl_st_install_set_ping(struct wl_state *st, struct wl_install *in, const wl_ping *p)
{
    uint64_t counts[WL_N_COUNTS];
    const char *edition = in->edition, *version = in->version, **fl = in->features;
    wl_ping_counts(p, counts);
    for (int i = 0; i < WL_N_COUNTS; i++)
        in->counts[i] = counts[i] > UINT32_MAX ? UINT32_MAX : (uint32_t)counts[i];
    in->edition = p->edition[0] ? wl_st_intern(st, p->edition) : NULL;
    in->version = p->version[0] ? wl_st_intern(st, p->version) : NULL;
    size_t nf = p->n_features > WL_FEATURES_MAX ? WL_FEATURES_MAX : p->n_features;
    const char *features[WL_FEATURES_MAX];
    for (size_t i = 0; i < nf; i++)
        features[i] = wl_st_intern(st, p->features[i]);
    in->features = wl_st_intern_fset(st, features, nf);
    in->n_features = (uint8_t)nf;
    wl_st_str_unref(st, edition);
    wl_st_str_unref(st, version);
    wl_st_fset_unref(st, fl);
}

/* Everything an install holds of the interned strings goes. */
void wl_st_install_release(struct wl_state *st, struct wl_install *in)
{
    wl_st_str_unref(st, in->edition);
    wl_st_str_unref(st, in->version);
    wl_st_fset_unref(st, in->features);
    in->edition = in->version = NULL;
    in->features = NULL;
    in->n_features = 0;
}

/* ---- installs by id (ptable.h: keyed, 8-16 bytes per install) ---- */

uint32_t wl_st_install_hash_of(const void *e) { return ((const struct wl_install *)e)->hash; }

static int install_eq(const void *e, const void *key)
{
    const struct wl_install *in = e;
    const struct bytes_key *k = key;
    /* strnlen first: a shorter id is never read past its end */
    return strnlen(in->id, k->len + 1) == k->len && memcmp(in->id, k->p, k->len) == 0;
}

struct wl_install *wl_st_install_find(const struct wl_state *st, const char *id, size_t len)
{
    struct bytes_key k = {id, len};
    return wl_ptable_find(&st->installs, (uint32_t)wl_keyhash(id, len), install_eq, &k);
}

void wl_st_install_unlink(struct wl_state *st, struct wl_install *in)
{
    wl_ptable_remove(&st->installs, in);
    st->n_installs--;
}

struct wl_install *wl_st_install_new(struct wl_state *st, const char *id, size_t len)
{
    struct wl_install *in = wl_st_xrealloc(NULL, sizeof *in + len + 1);
    memset(in, 0, sizeof *in);
    memcpy(in->id, id, len);
    in->id[len] = '\0';
    in->hash = (uint32_t)wl_keyhash(id, len);
    wl_ptable_add(&st->installs, in);
    st->n_installs++;
    return in;
}

/* The install keeps its latest ping, packed, until the flush writes it. */
static void install_keep_ping(struct wl_install *in, const uint8_t *stored, size_t len)
{
    struct wl_ping_peek pk;
    if (wl_ping_peek(stored, len, &pk) != 0 || pk.ping == NULL)
        abort(); /* we packed it ourselves, or it loaded from disk whole */
    in->ping = wl_st_xrealloc(in->ping, sizeof *in->ping + pk.ping_len);
    memcpy(in->ping->data, pk.ping, pk.ping_len);
    in->ping->len = (uint32_t)pk.ping_len;
}

/* ---- edge pings (ping.h): a few fields, merged into the latest ping ---- */

/* The install's latest ping, unpacked (free with warmline__v1__ping__free_unpacked),
 * or NULL when it has none: kept in memory while the install is dirty, read
 * from its record otherwise (an edge ping's one read: edge pings come at
 * most a few a day per install, within the HTTP listener's limits). */
static wl_ping *install_latest_ping(struct wl_state *st, const struct wl_install *in)
{
    char *val = NULL, err[256];
    size_t vlen = 0;

    if (in->ping != NULL)
        return warmline__v1__ping__unpack(NULL, in->ping->len, in->ping->data);
    if (wl_store_get(st->store, WL_CF_INSTALLS, in->id, strlen(in->id), &val, &vlen, err,
                     sizeof err) != 0)
        return NULL;
    wl_install_rec *rec = warmline__store__v1__install_state__unpack(NULL, vlen,
                                                                    (const uint8_t *)val);
    free(val);
    if (rec == NULL)
        return NULL;
    wl_ping *p = rec->last_ping;
    rec->last_ping = NULL;
    warmline__store__v1__install_state__free_unpacked(rec, NULL);
    return p;
}

/* out = base (or an empty ping) with the fields presence names taken from
 * p; features: base's less those whose bit presence names (all when it
 * names the whole list), then p's. out points into base and p. */
static void edge_merge(wl_ping *out, const wl_ping *base, const wl_ping *p, uint64_t presence,
                       char **features)
{
    size_t nf = 0;

    if (base != NULL)
        *out = *base;
    else
        warmline__v1__ping__init(out);
    out->install_id = p->install_id;
    out->seq = p->seq;
    out->sent_at = p->sent_at;
#define TAKE_STRING(name)                                           \
    if (presence & WL_PRESENT(WL_FIELD_STRING(WL_STRING_##name)))   \
        out->name = p->name;
    WL_STRING_FIELDS(TAKE_STRING)
#undef TAKE_STRING
#define TAKE_COUNT(name)                                              \
    if (presence & WL_PRESENT(WL_FIELD_COUNT(WL_COUNT_##name)))       \
        out->name = p->name;
    WL_COUNT_FIELDS(TAKE_COUNT)
#undef TAKE_COUNT
    if (base != NULL && !(presence & WL_PRESENT(WL_FIELD_FEATURES))) {
        for (size_t i = 0; i < base->n_features && nf < WL_FEATURES_MAX; i++) {
            int bit = wl_edge_feature_bit(base->features[i]);
            if (bit < 0 || !(presence & WL_PRESENT(bit)))
                features[nf++] = base->features[i];
        }
    }
    for (size_t i = 0; i < p->n_features && nf < WL_FEATURES_MAX; i++) {
        size_t j = 0;
        while (j < nf && strcmp(features[j], p->features[i]) != 0)
            j++;
        if (j == nf)
            features[nf++] = p->features[i];
    }
    out->features = features;
    out->n_features = nf;
}

/* The organization an edge ping puts its install in (ping.h's precedence):
 * 1 and org_id when its org_key applies, 0 when the install stays where it
 * is (or, new, is its own). */
static int edge_org_applies(const struct wl_install *in, const wl_ping *p, uint64_t presence)
{
    if (p->org_key.len != WL_ORG_KEY_BYTES ||
        !(presence & (WL_PRESENT(WL_FIELD_ORG_KEY) | WL_PRESENT(WL_ORG_BY_NETWORK))))
        return 0;
    if (!(presence & WL_PRESENT(WL_ORG_BY_NETWORK)) || in == NULL || in->org == NULL)
        return 1;
    /* a network's key does not move an install whose organization is a domain's */
    return !(in->org->id[0] == WL_ORG_TAG_KEY && !(in->flags & IN_ORG_BY_NETWORK));
}

/* A digest of what a check carries (its fields and presence, not its time):
 * the same check from another node of a cluster has the same. Unkeyed
 * BLAKE2b: it is stored, and must be the same after a restart. */
static uint64_t check_digest(struct wl_state *st, const wl_ping *p, uint64_t presence)
{
    wl_ping c = *p;
    uint64_t d;
    c.seq = 0;
    c.sent_at = 0;
    size_t n = warmline__v1__ping__get_packed_size(&c);
    uint8_t *buf = wl_st_scratch(st, n + sizeof presence);
    warmline__v1__ping__pack(&c, buf);
    memcpy(buf + n, &presence, sizeof presence);
    crypto_generichash((uint8_t *)&d, sizeof d, buf, n + sizeof presence, NULL, 0);
    return d;
}

/* The install keeps its latest ping, packed, until the flush writes it. */
static void install_keep_packed(struct wl_install *in, const wl_ping *p)
{
    size_t n = warmline__v1__ping__get_packed_size(p);
    in->ping = wl_st_xrealloc(in->ping, sizeof *in->ping + n);
    warmline__v1__ping__pack(p, in->ping->data);
    in->ping->len = (uint32_t)n;
}

/* wl_state_apply and wl_state_apply_edge; stored is the ping's record when
 * it is replayed (source and presence are then the record's). */
enum wl_apply wl_st_apply(struct wl_state *st, const wl_ping *ping, uint32_t source,
                           uint64_t presence, int64_t received_at, int64_t event_at,
                           struct wl_batch *batch, const uint8_t *stored, size_t stored_len)
{
    size_t idlen = strlen(ping->install_id);
    struct wl_install *in;
    uint8_t org_id[WL_ORG_ID_MAX];
    size_t org_len;
    int edge = source != WL_SOURCE_WIRE, org_applies = 1;
    uint32_t hour = (uint32_t)(event_at / HOUR_MS);
    uint64_t digest = 0;
    wl_ping raw, merged, *base = NULL;
    char *features[WL_FEATURES_MAX];
    const wl_ping *latest = ping; /* what the install's state becomes */

    in = wl_st_install_find(st, ping->install_id, idlen);
    if (!edge) {
        if (in != NULL && ping->seq <= in->last_seq)
            return WL_APPLY_DUPLICATE;
        org_len = wl_org_id(org_id, ping->org_key.data, ping->org_key.len, ping->install_id,
                            idlen);
    } else {
        /* every node of a cluster sends its own check: the same check counts
         * once an hour (a different one is new data: a forged check sent
         * first in the hour does not silence the real one) */
        if (source == WL_SOURCE_SECURITY)
            digest = check_digest(st, ping, presence);
        if (stored == NULL && source == WL_SOURCE_SECURITY && in != NULL &&
            in->check_hour != 0 && in->check_hour == hour && in->check_digest == digest)
            return WL_APPLY_DUPLICATE;
        org_applies = edge_org_applies(in, ping, presence);
        if (org_applies)
            org_len = wl_org_id(org_id, ping->org_key.data, ping->org_key.len, NULL, 0);
        else if (in != NULL && in->org != NULL)
            org_len = (memcpy(org_id, in->org->id, in->org->id_len), in->org->id_len);
        else
            org_len = wl_org_id(org_id, NULL, 0, ping->install_id, idlen);
        /* the seq is the writer's, per install in arrival order (replaying: the record's) */
        raw = *ping;
        if (stored == NULL)
            raw.seq = (in != NULL ? in->edge_seq : 0) + 1;
        if (in != NULL)
            base = install_latest_ping(st, in);
        edge_merge(&merged, base, &raw, presence, features);
        if (org_applies)
            merged.org_key = ping->org_key;
        else if (base == NULL)
            merged.org_key.len = 0;
        ping = &raw;
        latest = &merged;
    }
    if (event_at > st->clock)
        st->clock = event_at;
    expire(st, batch);

    /* The raw ping, on the next sequential key (replaying: it is there). */
    wl_ping_rec rec = WARMLINE__STORE__V1__STORED_PING__INIT;
    rec.ingest_seq = ++st->ingest_seq;
    if (stored == NULL) {
        uint8_t key[8];
        rec.received_at = received_at;
        rec.event_at = event_at;
        rec.org.data = org_id;
        rec.org.len = org_len;
        rec.ping = (wl_ping *)ping;
        rec.source = source;
        rec.presence = edge ? presence : 0;
        stored_len = warmline__store__v1__stored_ping__get_packed_size(&rec);
        uint8_t *buf = wl_st_scratch(st, stored_len);
        warmline__store__v1__stored_ping__pack(&rec, buf);
        wl_be64_put(key, rec.ingest_seq);
        wl_batch_put(batch, WL_CF_PINGS, key, sizeof key, buf, stored_len);
        stored = buf;
    }

    if (in == NULL) {
        in = wl_st_install_new(st, ping->install_id, idlen);
        in->first_seen = event_at;
    }
    if (edge)
        install_keep_packed(in, latest);
    else
        install_keep_ping(in, stored, stored_len); /* before scratch is reused */
    struct wl_org *org = wl_st_org_find(st, org_id, org_len);
    if (org == NULL) {
        org = wl_st_org_new(st, org_id, org_len);
        org->hist_ready = 1; /* nothing on disk to read */
    }
    struct wl_org *old = in->org;
    if (old != NULL && old != org) { /* the install moved: its old org loses it */
        wl_st_org_touch(st, old, event_at, batch);
        wl_st_org_detach(st, old, in);
        org_evaluate(st, old, event_at, rec.ingest_seq, batch);
        if (old->n_installs == 0)
            org_empty(st, old, batch);
    }
    wl_st_org_touch(st, org, event_at, batch);
    int was_counting = in->counting;
    if (was_counting && old == org) /* its old counts leave the totals; the new come in below */
        wl_st_org_count(st, org, in, -1);
    if (old == org)
        wl_st_org_list(st, org, in, -1);
    if (in->org != org)
        wl_st_org_attach(org, in);
    wl_st_install_set_ping(st, in, latest);
    if (base != NULL) /* latest pointed into it */
        warmline__v1__ping__free_unpacked(base, NULL);
    in->counting = 1;
    wl_st_org_count(st, org, in, +1);
    wl_st_org_list(st, org, in, +1);
    if (event_at < in->first_seen)
        in->first_seen = event_at;
    if (event_at > in->last_seen)
        in->last_seen = event_at;
    if (was_counting) /* last_seen only grows: the install moves down */
        heap_sift_down(st, in->heap_pos);
    else
        wl_st_heap_push(st, in);
    if (in->first_seen < org->first_seen || org->first_seen == 0)
        org->first_seen = in->first_seen;
    if (in->last_seen > org->last_seen)
        org->last_seen = in->last_seen;
    if (!edge) {
        in->last_seq = ping->seq;
        in->flags &= (uint8_t)~IN_ORG_BY_NETWORK;
    } else {
        in->edge_seq = (uint32_t)ping->seq;
        if (source == WL_SOURCE_SECURITY) {
            in->check_hour = hour;
            in->check_digest = digest;
        }
        if (org_applies && (presence & WL_PRESENT(WL_ORG_BY_NETWORK)))
            in->flags |= IN_ORG_BY_NETWORK;
        else if (org_applies)
            in->flags &= (uint8_t)~IN_ORG_BY_NETWORK;
    }
    in->last_ingest_seq = rec.ingest_seq;
    install_mark(st, in);
    org_evaluate(st, org, event_at, rec.ingest_seq, batch);
    return WL_APPLY_ACCEPTED;
}

enum wl_apply wl_state_apply(struct wl_state *st, const wl_ping *ping, int64_t received_at,
                             int64_t event_at, struct wl_batch *batch)
{
    return wl_st_apply(st, ping, WL_SOURCE_WIRE, 0, received_at, event_at, batch, NULL, 0);
}

enum wl_apply wl_state_apply_edge(struct wl_state *st, const wl_ping *ping,
                                  const struct wl_edge *edge, int64_t received_at,
                                  int64_t event_at, struct wl_batch *batch)
{
    return wl_st_apply(st, ping, edge->source, edge->presence, received_at, event_at, batch,
                       NULL, 0);
}

/* ---- records ---- */

static void put_install(struct wl_state *st, struct wl_install *in, struct wl_batch *batch)
{
    wl_install_rec rec = WARMLINE__STORE__V1__INSTALL_STATE__INIT;
    rec.install_id = in->id;
    rec.org.data = in->org->id;
    rec.org.len = in->org->id_len;
    rec.last_seq = in->last_seq;
    rec.first_seen = in->first_seen;
    rec.last_seen = in->last_seen;
    rec.last_ingest_seq = in->last_ingest_seq;
    rec.edge_seq = in->edge_seq;
    rec.check_hour = in->check_hour;
    rec.check_digest = in->check_digest;
    rec.org_by_network = (in->flags & IN_ORG_BY_NETWORK) != 0;
    /* last_ping (field 7, the last) is the kept packed ping: appended as
     * protobuf-c would put it, without a decode and an encode. */
    size_t n = warmline__store__v1__install_state__get_packed_size(&rec);
    uint8_t *buf = wl_st_scratch(st, n + 1 + 5 + in->ping->len);
    warmline__store__v1__install_state__pack(&rec, buf);
    buf[n++] = (7 << 3) | 2;
    for (uint32_t v = in->ping->len; ; v >>= 7) {
        buf[n++] = (uint8_t)(v > 0x7f ? (v & 0x7f) | 0x80 : v);
        if (v <= 0x7f)
            break;
    }
    memcpy(buf + n, in->ping->data, in->ping->len);
    n += in->ping->len;
    wl_batch_put(batch, WL_CF_INSTALLS, in->id, strlen(in->id), buf, n);
}

static void put_org(struct wl_state *st, struct wl_org *org, struct wl_batch *batch)
{
    wl_org_rec rec = WARMLINE__STORE__V1__ORG_STATE__INIT;
    /* A record that lists every install of an organization with 100,000
     * would cost megabytes per write: it lists the first few. */
    size_t n_ids = org->n_installs < WL_ORG_INSTALL_IDS_MAX ? org->n_installs
                                                            : WL_ORG_INSTALL_IDS_MAX;
    char *ids[WL_ORG_INSTALL_IDS_MAX];
    const char *versions[SEEN_MAX], *editions[SEEN_MAX];
    const char **features;
    size_t n_versions, n_editions, n_features;
    const struct wl_ruleset *rs = st->opts.rules;
    size_t n_rules = org->rules.states && rs ? rs->n : 1;
    Warmline__Store__V1__OrgState__RuleState rule_recs[n_rules];
    Warmline__Store__V1__OrgState__RuleState *rule_ptrs[n_rules];
    size_t n_rule_recs = 0;

    if (org->n_installs == 0) { /* every install moved away (org_empty) */
        wl_batch_delete(batch, WL_CF_ORGS, org->id, org->id_len);
        return;
    }
    for (size_t i = 0; i < n_ids; i++)
        ids[i] = (char *)org->installs[i]->id;
    /* Sorted: the record does not depend on the order installs came in. */
    const char **v = wl_st_tally_sorted(st, &org->versions, &n_versions);
    n_versions = n_versions < SEEN_MAX ? n_versions : SEEN_MAX;
    if (n_versions > 0) /* v is NULL until a list has had strings */
        memcpy(versions, v, n_versions * sizeof *v);
    v = wl_st_tally_sorted(st, &org->editions, &n_editions);
    n_editions = n_editions < SEEN_MAX ? n_editions : SEEN_MAX;
    if (n_editions > 0)
        memcpy(editions, v, n_editions * sizeof *v);
    features = wl_st_tally_sorted(st, &org->feats, &n_features);
    if (org->rules.states != NULL && rs != NULL) {
        for (size_t i = 0; i < rs->n; i++) {
            const struct wl_rule_state *s = &org->rules.states[i];
            if (s->last_fired == 0 && !s->disarmed)
                continue;
            Warmline__Store__V1__OrgState__RuleState r =
                WARMLINE__STORE__V1__ORG_STATE__RULE_STATE__INIT;
            r.rule = (char *)rs->rules[i].name;
            r.disarmed = s->disarmed;
            r.last_fired = s->last_fired;
            rule_recs[n_rule_recs] = r;
            rule_ptrs[n_rule_recs] = &rule_recs[n_rule_recs];
            n_rule_recs++;
        }
    }
    rec.org.data = org->id;
    rec.org.len = org->id_len;
    rec.n_install_ids = n_ids;
    rec.install_ids = ids;
    rec.installs_total = (uint32_t)org->n_installs;
    rec.first_seen = org->first_seen;
    rec.last_seen = org->last_seen;
    rec.n_totals = WL_N_COUNTS;
    rec.totals = org->totals;
    rec.installs_counting = org->n_counting;
    rec.n_versions = n_versions;
    rec.versions = (char **)versions;
    rec.n_editions = n_editions;
    rec.editions = (char **)editions;
    rec.n_features = n_features;
    rec.features = (char **)features;
    rec.has_score = org->rules.n_signals > 0;
    rec.score_log2 = rec.has_score ? org->rules.score_log2 : 0;
    rec.signals = org->rules.n_signals;
    rec.n_rules = n_rule_recs;
    rec.rules = rule_ptrs;
    rec.day = org->day;
    rec.updated_at = org->updated_at;
    size_t n = warmline__store__v1__org_state__get_packed_size(&rec);
    uint8_t *buf = wl_st_scratch(st, n);
    warmline__store__v1__org_state__pack(&rec, buf);
    wl_batch_put(batch, WL_CF_ORGS, org->id, org->id_len, buf, n);
}

void wl_state_stage(struct wl_state *st, struct wl_batch *batch)
{
    uint8_t seq[8];
    if (st->ingest_seq != st->staged_ingest_seq) {
        wl_be64_put(seq, st->ingest_seq);
        wl_batch_put(batch, WL_CF_META, META_INGEST_SEQ, sizeof META_INGEST_SEQ - 1, seq,
                     sizeof seq);
        st->staged_ingest_seq = st->ingest_seq;
    }
    wl_signals_flush(&st->signals, batch);
}

static int install_cmp(const void *a, const void *b)
{
    return strcmp((*(struct wl_install *const *)a)->id, (*(struct wl_install *const *)b)->id);
}

/* In daily key order: length, then bytes. */
static int org_cmp(const void *a, const void *b)
{
    const struct wl_org *x = *(struct wl_org *const *)a, *y = *(struct wl_org *const *)b;
    if (x->id_len != y->id_len)
        return x->id_len < y->id_len ? -1 : 1;
    return memcmp(x->id, y->id, x->id_len);
}

/* The dirty list in key order: a memtable takes keys in order for a
 * fraction of the comparisons random ones cost (each insert starts from
 * where the last one went). */
static void **sorted_dirty(struct wl_state *st, void *head, size_t next_off, size_t *n,
                           int (*cmp)(const void *, const void *))
{
    size_t k = 0;
    for (void *e = head; e != NULL; e = *(void **)((char *)e + next_off)) {
        if (k == st->sort_cap) {
            st->sort_cap = st->sort_cap ? st->sort_cap * 2 : 1024;
            st->sort_buf = wl_st_xrealloc(st->sort_buf, st->sort_cap * sizeof *st->sort_buf);
        }
        st->sort_buf[k++] = e;
    }
    if (k > 1) /* sort_buf is NULL until the first dirty record */
        qsort(st->sort_buf, k, sizeof *st->sort_buf, cmp);
    *n = k;
    return st->sort_buf;
}

void wl_state_flush(struct wl_state *st, struct wl_batch *batch)
{
    uint8_t seq[8];
    size_t n;
    void **v = sorted_dirty(st, st->dirty_installs, offsetof(struct wl_install, next_dirty), &n,
                            install_cmp);
    for (size_t i = 0; i < n; i++) {
        struct wl_install *in = v[i];
        if (in->ping != NULL)
            put_install(st, in, batch);
    }
    v = sorted_dirty(st, st->dirty_orgs, offsetof(struct wl_org, next_dirty), &n, org_cmp);
    for (size_t i = 0; i < n; i++)
        put_org(st, v[i], batch);
    for (size_t i = 0; i < n; i++) {
        struct wl_org *org = v[i];
        if (org->day_dirty && org->n_installs > 0)
            wl_st_put_daily(st, org, batch);
    }
    wl_be64_put(seq, st->ingest_seq);
    wl_batch_put(batch, WL_CF_META, META_STATE_SEQ, sizeof META_STATE_SEQ - 1, seq, sizeof seq);
    st->staged_ingest_seq = 0; /* put it again: the flush may come after a failed write */
    wl_state_stage(st, batch);
    st->flushed = 1;
}

void wl_st_org_destroy(struct wl_state *st, struct wl_org *org)
{
    wl_st_tally_clear(st, &org->feats);
    wl_st_tally_clear(st, &org->eds);
    wl_st_tally_clear(st, &org->versions);
    wl_st_tally_clear(st, &org->editions);
    free(org->installs);
    free(org->hist_days);
    free(org->hist_vals);
    wl_org_rules_free(&org->rules);
    free(org);
}

uint64_t wl_state_commit(struct wl_state *st)
{
    struct wl_install *in, *next_in;
    struct wl_org *org, *next_org;
    uint64_t last = st->group_last_signal;

    st->group_last_signal = 0;
    wl_signals_committed(&st->signals);
    if (!st->flushed)
        return last; /* the state stays dirty, in memory, until a flush */
    st->flushed = 0;
    st->state_seq = st->ingest_seq;
    for (in = st->dirty_installs; in != NULL; in = next_in) {
        next_in = in->next_dirty;
        in->dirty = 0;
        free(in->ping);
        in->ping = NULL;
        in->next_dirty = NULL;
    }
    for (org = st->dirty_orgs; org != NULL; org = next_org) {
        next_org = org->next_dirty;
        org->dirty = 0;
        org->next_dirty = NULL;
        if (org->n_installs == 0) {
            wl_ptable_remove(&st->orgs, org);
            st->n_orgs--;
            wl_st_org_destroy(st, org);
        }
    }
    st->dirty_installs = NULL;
    st->dirty_orgs = NULL;
    st->n_dirty_installs = 0;
    return last;
}

int wl_state_dirty(const struct wl_state *st)
{
    return st->dirty_orgs != NULL || st->dirty_installs != NULL;
}

uint64_t wl_state_dirty_installs(const struct wl_state *st) { return st->n_dirty_installs; }
uint64_t wl_state_state_seq(const struct wl_state *st) { return st->state_seq; }
uint64_t wl_state_replayed(const struct wl_state *st) { return st->replayed; }

uint64_t wl_state_ingest_seq(const struct wl_state *st) { return st->ingest_seq; }
uint64_t wl_state_signal_seq(const struct wl_state *st) { return st->signals.seq; }
int64_t wl_state_clock(const struct wl_state *st) { return st->clock; }
uint64_t wl_state_n_installs(const struct wl_state *st) { return st->n_installs; }
uint64_t wl_state_n_orgs(const struct wl_state *st) { return st->n_orgs; }
uint64_t wl_state_interned_bytes(const struct wl_state *st) { return st->interned_bytes; }
uint64_t wl_state_interned(const struct wl_state *st)
{
    return st->strings.live + st->fsets.live;
}
uint64_t wl_state_untallied(const struct wl_state *st) { return st->untallied; }

/* ---- forgetting ---- */

static int forgotten_add_org(struct wl_forgotten *out, const uint8_t *id, size_t len, int loaded)
{
    for (size_t i = 0; i < out->n_orgs; i++) {
        if (out->org_lens[i] == len && memcmp(out->orgs[i], id, len) == 0) {
            out->org_loaded[i] |= (uint8_t)loaded;
            return 0;
        }
    }
    if (out->n_orgs == WL_FORGET_ORGS_MAX)
        return -ENOSPC;
    memcpy(out->orgs[out->n_orgs], id, len);
    out->org_lens[out->n_orgs] = len;
    out->org_loaded[out->n_orgs] = (uint8_t)loaded;
    out->n_orgs++;
    return 0;
}

/* Takes the install out of the expiry heap, its organization and the
 * table, and deletes its record. */
static void install_forget(struct wl_state *st, struct wl_install *in, struct wl_batch *batch,
                           struct wl_forgotten *out, int delete_record)
{
    if (out->n_installs == out->cap_installs) {
        out->cap_installs = out->cap_installs ? 2 * out->cap_installs : 16;
        out->installs = wl_st_xrealloc(out->installs, out->cap_installs * sizeof *out->installs);
    }
    out->installs[out->n_installs] = strdup(in->id);
    if (out->installs[out->n_installs] == NULL)
        abort();
    out->n_installs++;
    if (in->counting)
        wl_st_heap_remove(st, in);
    if (in->org != NULL)
        wl_st_org_detach(st, in->org, in); /* takes its counts out while it still counts */
    if (delete_record) {
        wl_batch_delete(batch, WL_CF_INSTALLS, in->id, strlen(in->id));
        out->install_records++;
    }
    wl_st_install_unlink(st, in);
    wl_st_install_release(st, in);
    free(in->ping);
    free(in);
}

/* Off the dirty list (linear in it: for the rare forget that empties an
 * organization it had touched). */
static void org_undirty(struct wl_state *st, struct wl_org *org)
{
    if (!org->dirty)
        return;
    for (struct wl_org **p = &st->dirty_orgs; *p != NULL; p = &(*p)->next_dirty) {
        if (*p == org) {
            *p = org->next_dirty;
            break;
        }
    }
    org->dirty = 0;
    org->day_dirty = 0;
    org->next_dirty = NULL;
}

/* Deletes the organization's record and rank entry and frees it. */
static void org_forget(struct wl_state *st, struct wl_org *org, struct wl_batch *batch,
                       struct wl_forgotten *out)
{
    wl_batch_delete(batch, WL_CF_ORGS, org->id, org->id_len);
    out->org_records++;
    wl_st_rank_delete(org, batch);
    wl_ptable_remove(&st->orgs, org);
    st->n_orgs--;
    wl_st_org_destroy(st, org);
}

int wl_state_forget_org_memory(struct wl_state *st, const uint8_t *id, size_t len,
                               struct wl_batch *batch, struct wl_forgotten *out)
{
    memset(out, 0, sizeof *out);
    if (wl_state_dirty(st))
        return -EBUSY;
    struct wl_org *org = wl_st_org_find(st, id, len);
    forgotten_add_org(out, id, len, org != NULL);
    if (org == NULL)
        return 0;
    while (org->n_installs > 0)
        install_forget(st, org->installs[org->n_installs - 1], batch, out, 0);
    org_forget(st, org, batch, out);
    return 0;
}

int wl_state_has_install(const struct wl_state *st, const char *id, size_t len)
{
    return wl_st_install_find(st, id, len) != NULL;
}

int wl_state_forget_stale(struct wl_state *st, char *const *ids, const uint8_t *lens, size_t n,
                          uint64_t upto, struct wl_batch *batch, struct wl_forgotten *out)
{
    memset(out, 0, sizeof *out);
    if (wl_state_dirty(st))
        return -EBUSY;
    for (size_t i = 0; i < n; i++) {
        struct wl_install *in = wl_st_install_find(st, ids[i], lens[i]);
        if (in == NULL || in->last_ingest_seq > upto)
            continue; /* gone, or it pinged again after the forget: new data */
        struct wl_org *org = in->org;
        if (org != NULL && org->n_installs > 1)
            wl_st_org_touch(st, org, st->clock, batch); /* as forget_install: its day ends first */
        install_forget(st, in, batch, out, 0);
        if (org == NULL)
            continue;
        if (org->n_installs == 0) {
            org_undirty(st, org); /* touched while it had more: nothing of it is written */
            org_forget(st, org, batch, out);
        } else {
            wl_st_org_reseen(org);
        }
    }
    return 0;
}

int wl_state_forget_install(struct wl_state *st, const char *install_id, struct wl_batch *batch,
                            struct wl_forgotten *out)
{
    size_t idlen = strlen(install_id);
    uint8_t own[WL_ORG_ID_MAX];
    struct wl_install *in;

    memset(out, 0, sizeof *out);
    if (wl_state_dirty(st))
        return -EBUSY;
    if (idlen == 0 || idlen > WL_INSTALL_ID_MAX)
        return -EINVAL;
    size_t own_len = wl_org_id(own, NULL, 0, install_id, idlen);
    in = wl_st_install_find(st, install_id, idlen);
    if (in == NULL || in->org == NULL) {
        forgotten_add_org(out, own, own_len, wl_st_org_find(st, own, own_len) != NULL);
        if (in != NULL)
            install_forget(st, in, batch, out, 1);
        return 0;
    }
    struct wl_org *org = in->org;
    if (org->n_installs > 1) /* it stays: as when an install moves away, the day it
                                was on ends first, and it is rewritten at the flush */
        wl_st_org_touch(st, org, st->clock, batch);
    install_forget(st, in, batch, out, 1);
    if (org->n_installs == 0) {
        forgotten_add_org(out, org->id, org->id_len, 1);
        org_forget(st, org, batch, out);
    } else {
        /* When it saw installs is when the installs it keeps did (its
         * versions and editions are theirs already). */
        wl_st_org_reseen(org);
    }
    forgotten_add_org(out, own, own_len, 0); /* a no-key org it once had: its history */
    return 0;
}

size_t wl_state_org_install_ids(const struct wl_state *st, const uint8_t *org, size_t org_len,
                                char ***out)
{
    struct wl_org *o = wl_st_org_find(st, org, org_len);
    *out = NULL;
    if (o == NULL || o->n_installs == 0)
        return 0;
    char **v = wl_st_xrealloc(NULL, o->n_installs * sizeof *v);
    for (size_t i = 0; i < o->n_installs; i++) {
        v[i] = strdup(o->installs[i]->id);
        if (v[i] == NULL)
            abort(); /* out of memory in the writer */
    }
    *out = v;
    return o->n_installs;
}

void wl_forgotten_free(struct wl_forgotten *f)
{
    for (size_t i = 0; i < f->n_installs; i++)
        free(f->installs[i]);
    free(f->installs);
    f->installs = NULL;
    f->n_installs = 0;
}

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
    if (rec->last_ping != NULL)
        wl_st_install_set_ping(st, in, rec->last_ping);
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
    if (org != NULL) {
        /* What the record lists keeps its place in the capped tables
         * (rebuild_counting adds the installs, then drops what none has):
         * the same lists after a restart, whatever order installs load in. */
        wl_st_tally_seed(st, &org->versions, rec->versions, rec->n_versions);
        wl_st_tally_seed(st, &org->editions, rec->editions, rec->n_editions);
        wl_st_tally_seed(st, &org->feats, rec->features, rec->n_features);
        wl_st_tally_seed(st, &org->eds, rec->editions, rec->n_editions);
        /* also the times of installs that moved away since (wl_st_org_detach) */
        if (rec->first_seen != 0 && rec->first_seen < org->first_seen)
            org->first_seen = rec->first_seen;
        if (rec->last_seen > org->last_seen)
            org->last_seen = rec->last_seen;
        org->day = rec->day;
        org->updated_at = rec->updated_at;
        org->rules.n_signals = rec->signals;
        org->rules.score_log2 = rec->has_score ? rec->score_log2 : WL_SCORE_NONE;
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
        if (wl_st_apply(st, rec->ping, rec->source, rec->presence, rec->received_at, rec->event_at,
                  scratch_batch, v, vlen) !=
            WL_APPLY_ACCEPTED)
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
                              errlen)) != 0)
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
    if (rc == -ENOENT) {
        /* A new database, or one from before lazy flushes (which wrote its
         * state with every group): its records are exact now. Say so on
         * disk before any ping can be stored without its state. */
        uint8_t seq[8];
        struct wl_batch *b = wl_batch_new(store);
        wl_be64_put(seq, st->state_seq);
        wl_batch_put(b, WL_CF_META, META_STATE_SEQ, sizeof META_STATE_SEQ - 1, seq, sizeof seq);
        rc = wl_store_write(store, b, 1, err, errlen);
        wl_batch_free(b);
    }
    if (rc != 0)
        goto fail;
    st->staged_ingest_seq = st->ingest_seq;
    if ((rc = scan(st, WL_CF_INSTALLS, err, errlen)) != 0 ||
        (rc = scan(st, WL_CF_ORGS, err, errlen)) != 0 || (rc = rebuild_counting(st)) != 0)
        goto fail;
    if (st->state_seq < st->ingest_seq && (rc = replay(st, err, errlen)) != 0)
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
        free(in->ping);
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
    free(st->heap);
    free(st->scratch);
    free(st->sort_buf);
    free(st->feat_buf);
    free(st);
}
