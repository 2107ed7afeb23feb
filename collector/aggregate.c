/* The writer's state, its hot path (aggregate.h): a ping applied to its
 * install and organization, edge pings merged into the latest, installs
 * joining and leaving organizations, expiry by the clock, the rules stepped
 * for each organization that changed. The writer thread. */
#include "aggregate.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "log.h"
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
    return wl_st_grow(&st->scratch, &st->scratch_cap, need);
}

/* ---- the counting installs, a min-heap by last_seen as it was when placed ----
 * A ping raises its install's last_seen, not its place: the place's key is
 * last_seen - heap_lag, what last_seen was when the install was placed
 * (pushed, or placed again). Expiry looks at the least key: an install
 * there that pinged since is placed again by its true last_seen (heap_lag
 * 0); one placed by it and past the TTL stops counting. No install with a
 * key past the limit can be expired (its last_seen is at least its key),
 * so expiry is exact, and installs stop in the order of their true
 * last_seen, as a state loaded from the records (every lag 0) stops them:
 * the rules see the same steps live and after a replay. A ping costs no heap
 * work (moving its install down took 2% of the writer, cache misses all the
 * way to a leaf); each placing again is paid for by the pings that raised
 * the key. O(log n) whatever order event times arrive in (imports need not
 * be sorted). */

static int64_t heap_key(const struct wl_install *in) { return in->last_seen - in->heap_lag; }

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
        if (heap_key(st->heap[parent]) <= heap_key(in))
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
        if (child + 1 < st->heap_n && heap_key(st->heap[child + 1]) < heap_key(st->heap[child]))
            child++;
        if (heap_key(in) <= heap_key(st->heap[child]))
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
    in->heap_lag = 0;
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

static struct wl_org *org_find_h(const struct wl_state *st, const uint8_t *id, size_t len,
                                 uint32_t h)
{
    struct bytes_key k = {id, len};
    return wl_ptable_find(&st->orgs, h, org_eq, &k);
}

struct wl_org *wl_st_org_find(const struct wl_state *st, const uint8_t *id, size_t len)
{
    return org_find_h(st, id, len, (uint32_t)wl_keyhash(id, len));
}

static struct wl_org *org_new_h(struct wl_state *st, const uint8_t *id, size_t len, uint32_t h)
{
    struct wl_org *org = wl_st_xrealloc(NULL, sizeof *org);
    memset(org, 0, sizeof *org);
    memcpy(org->id, id, len);
    org->id_len = (uint8_t)len;
    org->hash = h;
    org->rules.score_log2 = WL_SCORE_NONE;
    wl_ptable_add(&st->orgs, org);
    st->n_orgs++;
    return org;
}

struct wl_org *wl_st_org_new(struct wl_state *st, const uint8_t *id, size_t len)
{
    return org_new_h(st, id, len, (uint32_t)wl_keyhash(id, len));
}

void wl_st_org_mark(struct wl_state *st, struct wl_org *org)
{
    if (!org->dirty) { /* one the checkpoint has not taken yet is written as it is then */
        org->dirty = 1;
        st->n_dirty_orgs++;
        org->next_dirty = st->dirty_orgs;
        st->dirty_orgs = org;
    }
}

/* An install's place among its organization's changed ones (O(1) in and
 * out: it moves with the install). */
static void dirty_push(struct wl_org *org, struct wl_install *in)
{
    if (org->n_dirty == org->cap_dirty) {
        org->cap_dirty = org->cap_dirty ? 2 * org->cap_dirty : 4;
        org->dirty_v = wl_st_xrealloc(org->dirty_v, org->cap_dirty * sizeof *org->dirty_v);
    }
    in->dirty_pos = org->n_dirty;
    org->dirty_v[org->n_dirty++] = in;
}

static void dirty_remove(struct wl_org *org, struct wl_install *in)
{
    struct wl_install *last = org->dirty_v[--org->n_dirty];
    org->dirty_v[in->dirty_pos] = last;
    last->dirty_pos = in->dirty_pos;
}

/* Its organization writes it (state_checkpoint.c): marked too. */
static void install_mark(struct wl_state *st, struct wl_install *in)
{
    if (!in->dirty) {
        in->dirty = 1;
        in->flags = (uint8_t)((in->flags & ~IN_DIRTY_EPOCH) |
                              ((st->ckpt_epoch & 3u) << IN_DIRTY_EPOCH_SHIFT));
        dirty_push(in->org, in);
        st->n_dirty_installs++;
    }
    wl_st_org_mark(st, in->org);
}

/* Whether a ping at ingest sequence seq changes what is the organization's
 * own (its rules, days, the signals' score): always, but while a load
 * replays pings its record has already (state_checkpoint.c). */
static int org_own(const struct wl_state *st, const struct wl_org *org, uint64_t seq)
{
    return !st->replaying || seq > org->rec_seq;
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
    wl_st_org_mark(st, org);
}

void wl_st_org_attach(struct wl_org *org, struct wl_install *in)
{
    if (org->n_installs == org->cap_installs) {
        org->cap_installs = org->cap_installs ? org->cap_installs * 2 : 2;
        org->installs = wl_st_xrealloc(org->installs, org->cap_installs * sizeof *org->installs);
    }
    in->org_pos = (uint32_t)org->n_installs;
    org->installs[org->n_installs++] = in;
    if (in->dirty)
        dirty_push(org, in);
    wl_st_first_ids_join(org, in);
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
    wl_st_first_ids_leave(org, in); /* it may be freed: its id goes */
    org->installs[in->org_pos] = last;
    last->org_pos = in->org_pos;
    if (in->dirty)
        dirty_remove(org, in);
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
    const char *s = wl_st_operand(st, name);
    return s != NULL && wl_st_tally_has(&org->feats, s);
}

static int view_has_edition(void *ctx, const char *edition)
{
    void **c = ctx;
    const struct wl_state *st = c[0];
    const struct wl_org *org = c[1];
    const char *s = wl_st_operand(st, edition);
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

/* An organization whose last install moved away ends: its day is written,
 * it leaves the rank, its record goes at the next flush (put_org); should
 * an install come back first, it starts again from nothing, as a new
 * organization does. So the state does not depend on when flushes happen,
 * and a replay computes what the live writer did. */
static void org_empty(struct wl_state *st, struct wl_org *org, struct wl_batch *batch)
{
    if (org->day_dirty) /* its day (touched by the move) ends: with no installs */
        wl_st_put_daily(st, org, batch);
    wl_signals_unrank(&st->signals, &org->rules);
    struct wl_signal_ids *unindexed = org->rules.recent; /* its signals stay */
    org->rules.recent = NULL;
    wl_org_rules_free(&org->rules);
    memset(&org->rules, 0, sizeof org->rules);
    org->rules.score_log2 = WL_SCORE_NONE;
    org->rules.recent = unindexed;
    wl_st_tally_clear(st, &org->versions); /* every count is 0: no installs */
    wl_st_tally_clear(st, &org->editions);
    wl_st_tally_clear(st, &org->feats);
    wl_st_tally_clear(st, &org->eds);
    org->hist_n = 0;
    org->hist_ready = 1; /* as wl_st_org_new: a new organization reads no history */
    org->day = 0;
    org->day_dirty = 0;
    org->first_seen = org->last_seen = org->updated_at = 0;
    wl_st_org_mark(st, org);
}

/* ---- time ---- */

/* Installs silent past the TTL stop counting; their orgs change at the clock. */
static uint64_t expire(struct wl_state *st, struct wl_batch *batch)
{
    uint64_t n = 0;
    int64_t limit = st->clock - (int64_t)st->opts.install_ttl_ms;
    while (st->heap_n > 0 && heap_key(st->heap[0]) < limit) {
        struct wl_install *in = st->heap[0];
        if (in->heap_lag != 0) { /* pinged since it was placed: placed again */
            in->heap_lag = 0;
            heap_sift_down(st, 0);
            continue;
        }
        struct wl_org *org = in->org;
        int own = org_own(st, org, st->ingest_seq + 1); /* with the next ping */
        wl_st_heap_remove(st, in);
        if (own)
            wl_st_org_touch(st, org, st->clock, batch);
        else
            wl_st_org_mark(st, org);
        wl_st_org_count(st, org, in, -1);
        in->counting = 0;
        if (own)
            org_evaluate(st, org, st->clock, 0, batch);
        n++;
    }
    return n;
}

uint64_t wl_state_advance(struct wl_state *st, int64_t now, struct wl_batch *batch)
{
    if (now > st->clock)
        st->clock = now;
    return expire(st, batch);
}

/* ---- pings ---- */

/* The install's strings become the ping's: new references first, then the
 * old ones go (freeing what no one else holds). */
void wl_st_install_set(struct wl_state *st, struct wl_install *in, const uint64_t *counts,
                       size_t n_counts, const char *edition, const char *version,
                       char *const *feats, size_t n_features)
{
    const char *old_edition = in->edition, *old_version = in->version, **fl = in->features;
    for (size_t i = 0; i < WL_N_COUNTS; i++) {
        uint64_t c = i < n_counts ? counts[i] : 0;
        in->counts[i] = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
    }
    in->edition = edition[0] ? wl_st_intern(st, edition) : NULL;
    in->version = version[0] ? wl_st_intern(st, version) : NULL;
    size_t nf = n_features > WL_FEATURES_MAX ? WL_FEATURES_MAX : n_features;
    const char *features[WL_FEATURES_MAX];
    for (size_t i = 0; i < nf; i++)
        features[i] = wl_st_intern(st, feats[i]);
    in->features = wl_st_intern_fset(st, features, nf);
    in->n_features = (uint8_t)nf;
    wl_st_str_unref(st, old_edition);
    wl_st_str_unref(st, old_version);
    wl_st_fset_unref(st, fl);
}

void wl_st_install_set_ping(struct wl_state *st, struct wl_install *in, const wl_ping *p)
{
    uint64_t counts[WL_N_COUNTS];
    wl_ping_counts(p, counts);
    wl_st_install_set(st, in, counts, WL_N_COUNTS, p->edition, p->version, p->features,
                      p->n_features);
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
    /* byte by byte: a shorter id ends at its NUL, where the compare stops
     * (a key with a NUL in it matches no id), and is never read past */
    const char *p = k->p;
    for (size_t i = 0; i < k->len; i++) {
        if (in->id[i] != p[i] || p[i] == '\0')
            return 0;
    }
    return in->id[k->len] == '\0';
}

static struct wl_install *install_find_h(const struct wl_state *st, const char *id, size_t len,
                                         uint32_t h)
{
    struct bytes_key k = {id, len};
    return wl_ptable_find(&st->installs, h, install_eq, &k);
}

struct wl_install *wl_st_install_find(const struct wl_state *st, const char *id, size_t len)
{
    return install_find_h(st, id, len, (uint32_t)wl_keyhash(id, len));
}

void wl_st_install_unlink(struct wl_state *st, struct wl_install *in)
{
    wl_ptable_remove(&st->installs, in);
    st->n_installs--;
}

static struct wl_install *install_new_h(struct wl_state *st, const char *id, size_t len,
                                        uint32_t h)
{
    struct wl_install *in = wl_st_xrealloc(NULL, sizeof *in + len + 1);
    memset(in, 0, sizeof *in);
    memcpy(in->id, id, len);
    in->id[len] = '\0';
    in->hash = h;
    wl_ptable_add(&st->installs, in);
    st->n_installs++;
    return in;
}

struct wl_install *wl_st_install_new(struct wl_state *st, const char *id, size_t len)
{
    return install_new_h(st, id, len, (uint32_t)wl_keyhash(id, len));
}

/* ---- the next pings' finds, started early (aggregate.h: wl_state_prefetch) ---- */

void wl_state_prefetch_clear(struct wl_state *st)
{
    memset(st->hints, 0, sizeof st->hints);
}

void wl_state_prefetch(struct wl_state *st, const wl_ping *ping)
{
    /* the ping before this one: its slots have come in since its call */
    const struct wl_st_hint *prev = &st->hints[(st->hint_next - 1) % WL_ST_HINTS];
    if (prev->install_id != NULL) {
        const struct wl_install *in = wl_ptable_peek(&st->installs, prev->install_hash);
        const struct wl_org *org = wl_ptable_peek(&st->orgs, prev->org_hash);
        if (in != NULL) { /* what the find reads: its hash and its id */
            __builtin_prefetch(&in->hash);
            __builtin_prefetch(in->id);
        }
        if (org != NULL) {
            __builtin_prefetch(org->id);
            __builtin_prefetch(&org->hash);
        }
    }
    if (ping == NULL || ping->install_id == NULL)
        return;
    /* not validated yet: an id a find could never match is left alone */
    size_t idlen = strnlen(ping->install_id, WL_INSTALL_ID_MAX + 1);
    if (idlen == 0 || idlen > WL_INSTALL_ID_MAX)
        return;
    uint8_t org_id[WL_ORG_ID_MAX];
    size_t org_len =
        wl_org_id(org_id, ping->org_key.data, ping->org_key.len, ping->install_id, idlen);
    struct wl_st_hint *h = &st->hints[st->hint_next++ % WL_ST_HINTS];
    h->install_id = ping->install_id;
    h->idlen = (uint32_t)idlen;
    h->install_hash = (uint32_t)wl_keyhash(ping->install_id, idlen);
    h->org_hash = (uint32_t)wl_keyhash(org_id, org_len);
    wl_ptable_prefetch(&st->installs, h->install_hash);
    wl_ptable_prefetch(&st->orgs, h->org_hash);
}

/* The prefetch's hashes for a wire ping, taken (one use): 1 with them in
 * out, 0 when it has none. */
static int hint_take(struct wl_state *st, const char *install_id, struct wl_st_hint *out)
{
    for (int i = 0; i < WL_ST_HINTS; i++) {
        if (st->hints[i].install_id == install_id) {
            *out = st->hints[i];
            st->hints[i].install_id = NULL;
            return 1;
        }
    }
    return 0;
}

/* ---- the group's pings (state_parts.h: struct wl_group_pings) ---- */

/* Room for the ping at ingest sequence seq, packed (len bytes), applied
 * since the last write. */
static uint8_t *group_room(struct wl_state *st, uint64_t seq, size_t len)
{
    struct wl_group_pings *g = &st->group;
    if (g->n == 0 || seq != g->first + g->n) { /* (live, each is the next) */
        g->n = g->len = 0;
        g->first = seq;
    }
    wl_st_grow((uint8_t **)&g->off, &g->cap_off, (g->n + 2) * sizeof *g->off);
    wl_st_grow(&g->buf, &g->cap, g->len + len);
    uint8_t *p = g->buf + g->len;
    g->off[g->n] = (uint32_t)g->len;
    g->len += len;
    g->off[++g->n] = (uint32_t)g->len;
    return p;
}

void wl_st_group_written(struct wl_state *st)
{
    struct wl_group_pings *g = &st->group;
    g->n = g->len = 0;
    if (g->cap > (1u << 20)) { /* a large group's: not kept for the next */
        free(g->buf);
        g->buf = NULL;
        g->cap = 0;
    }
}

void wl_st_group_free(struct wl_state *st)
{
    free(st->group.buf);
    free(st->group.off);
    memset(&st->group, 0, sizeof st->group);
}

/* The ping's record on its sequential key (StoredPingPacked, records.proto):
 * the install's latest ping (a wire ping itself, an edge ping its merge)
 * packed once, into the group's pings, where it stays until the write; a
 * wire ping's bytes as they came (wire) are copied there instead: they are
 * what it decoded from, so a replay decodes the same ping. */
static void put_stored_ping(struct wl_state *st, struct wl_batch *batch, uint64_t ingest_seq,
                            int64_t received_at, int64_t event_at, const uint8_t *org_id,
                            size_t org_len, const wl_ping *ping, uint32_t source,
                            uint64_t presence, const wl_ping *latest,
                            const struct wl_ping_bytes *wire)
{
    Warmline__Store__V1__StoredPingPacked rec = WARMLINE__STORE__V1__STORED_PING_PACKED__INIT;
    const wl_ping *kept = latest != NULL ? latest : ping;
    int as_came = latest == NULL && wire != NULL && wire->len > 0;
    size_t n = as_came ? wire->len : warmline__v1__ping__get_packed_size(kept);
    uint8_t *packed = group_room(st, ingest_seq, n), key[8];
    if (as_came)
        memcpy(packed, wire->p, n);
    else
        warmline__v1__ping__pack(kept, packed);
    rec.ingest_seq = ingest_seq;
    rec.received_at = received_at;
    rec.event_at = event_at;
    rec.org.data = (uint8_t *)org_id;
    rec.org.len = org_len;
    rec.source = source;
    rec.presence = presence;
    uint8_t *edge_fields = NULL; /* an edge ping's own (a few a day per install) */
    if (latest != NULL) {
        rec.latest.data = packed;
        rec.latest.len = n;
        edge_fields = wl_st_xrealloc(NULL, warmline__v1__ping__get_packed_size(ping) + 1);
        rec.ping.data = edge_fields;
        rec.ping.len = warmline__v1__ping__pack(ping, edge_fields);
    } else {
        rec.ping.data = packed;
        rec.ping.len = n;
    }
    /* every ping applied passed wl_ping_validate (writer.c), which rejects
     * an empty install id: a packed ping is never empty, so never left out
     * as a bytes field of no length would be (StoredPing.ping is always there) */
    if (rec.ping.len == 0 || (latest != NULL && rec.latest.len == 0))
        abort();
    size_t len = warmline__store__v1__stored_ping_packed__get_packed_size(&rec);
    uint8_t *buf = wl_st_scratch(st, len);
    warmline__store__v1__stored_ping_packed__pack(&rec, buf);
    wl_be64_put(key, ingest_seq);
    wl_batch_put(batch, WL_CF_PINGS, key, sizeof key, buf, len);
    free(edge_fields);
}

/* ---- edge pings (ping.h): a few fields, merged into the latest ping ---- */

/* The install's latest ping, unpacked (free with warmline__v1__ping__free_unpacked),
 * or NULL when it has none: from the group's pings when it came since the
 * last write, from the log otherwise (an edge ping's one read: edge pings
 * come at most a few a day per install, within the HTTP listener's limits).
 * NULL too when the log no longer has it (retention): the edge ping's
 * fields are then all its state has. */
static wl_ping *install_latest_ping(struct wl_state *st, const struct wl_install *in)
{
    const struct wl_group_pings *g = &st->group;
    uint64_t q = in->last_ingest_seq;
    if (g->n > 0 && q >= g->first && q < g->first + g->n) {
        size_t i = (size_t)(q - g->first);
        return warmline__v1__ping__unpack(NULL, g->off[i + 1] - g->off[i], g->buf + g->off[i]);
    }
    return wl_latest_ping_read(st->store, NULL, q, in->id);
}

void wl_st_edge_merge_write(struct wl_state *st, const uint8_t *stored, size_t stored_len,
                            const wl_ping *latest)
{
    char err[256];
    wl_ping_rec *rec = warmline__store__v1__stored_ping__unpack(NULL, stored_len, stored);
    struct wl_batch *b = wl_batch_new(st->store);
    if (rec != NULL && b != NULL) {
        uint8_t key[8];
        rec->latest = (wl_ping *)latest;
        size_t n = warmline__store__v1__stored_ping__get_packed_size(rec);
        uint8_t *buf = wl_st_xrealloc(NULL, n);
        warmline__store__v1__stored_ping__pack(rec, buf);
        rec->latest = NULL;
        wl_be64_put(key, rec->ingest_seq);
        wl_batch_put(b, WL_CF_PINGS, key, sizeof key, buf, n);
        if (wl_store_write(st->store, b, 0, err, sizeof err) != 0)
            wl_warn("edge_merge_unwritten", "ingest_seq=%llu error=\"%s\"",
                    (unsigned long long)rec->ingest_seq, err);
        free(buf);
    }
    wl_batch_free(b);
    if (rec != NULL)
        warmline__store__v1__stored_ping__free_unpacked(rec, NULL);
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

/* wl_state_apply and wl_state_apply_edge; stored is the ping's record when
 * it is replayed (source and presence are then the record's). */
enum wl_apply wl_st_apply(struct wl_state *st, const wl_ping *ping, uint32_t source,
                           uint64_t presence, int64_t received_at, int64_t event_at,
                           struct wl_batch *batch, const uint8_t *stored, size_t stored_len,
                           const wl_ping *stored_latest, const struct wl_ping_bytes *wire)
{
    struct wl_st_hint hint;
    int edge = source != WL_SOURCE_WIRE, org_applies = 1;
    int hinted = !edge && ping->install_id != NULL && hint_take(st, ping->install_id, &hint);
    size_t idlen = hinted ? hint.idlen : strlen(ping->install_id);
    uint32_t install_hash =
        hinted ? hint.install_hash : (uint32_t)wl_keyhash(ping->install_id, idlen);
    struct wl_install *in;
    uint8_t org_id[WL_ORG_ID_MAX];
    size_t org_len;
    uint32_t hour = (uint32_t)(event_at / HOUR_MS);
    uint64_t digest = 0;
    wl_ping raw, merged, *base = NULL;
    char *features[WL_FEATURES_MAX];
    const wl_ping *latest = ping; /* what the install's state becomes */

    in = install_find_h(st, ping->install_id, idlen, install_hash);
    if (st->replaying && in != NULL && st->ingest_seq + 1 <= in->last_ingest_seq) {
        /* Its record has it (state_checkpoint.c), and so has its
         * organization's: only the clock moves, as it did. */
        if (event_at > st->clock)
            st->clock = event_at;
        expire(st, batch);
        st->ingest_seq++;
        return WL_APPLY_ACCEPTED;
    }
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
        ping = &raw;
        if (stored_latest != NULL) { /* replaying: the merge is in the record */
            latest = stored_latest;
        } else {
            if (in != NULL)
                base = install_latest_ping(st, in);
            edge_merge(&merged, base, &raw, presence, features);
            if (org_applies)
                merged.org_key = raw.org_key;
            else if (base == NULL)
                merged.org_key.len = 0;
            latest = &merged;
        }
    }
    if (event_at > st->clock)
        st->clock = event_at;
    expire(st, batch);

    /* The raw ping, on the next sequential key (replaying: it is there). */
    uint64_t ingest_seq = ++st->ingest_seq;
    if (stored == NULL)
        put_stored_ping(st, batch, ingest_seq, received_at, event_at, org_id, org_len, ping,
                        source, edge ? presence : 0, edge ? latest : NULL, edge ? NULL : wire);
    else if (edge && stored_latest == NULL) {
        /* replaying an edge ping stored before records kept their merge: the
         * log gets it now, for the next (install_latest_ping) */
        wl_st_edge_merge_write(st, stored, stored_len, latest);
    }

    if (in == NULL) {
        in = install_new_h(st, ping->install_id, idlen, install_hash);
        in->first_seen = event_at;
    }
    /* a wire ping's organization is the one its hint hashed */
    uint32_t org_hash = hinted ? hint.org_hash : (uint32_t)wl_keyhash(org_id, org_len);
    struct wl_org *org = org_find_h(st, org_id, org_len, org_hash);
    if (org == NULL) {
        org = org_new_h(st, org_id, org_len, org_hash);
        org->hist_ready = 1; /* nothing on disk to read */
    }
    struct wl_org *old = in->org;
    int own = org_own(st, org, ingest_seq);
    if (old != NULL && old != org) { /* the install moved: its old org loses it */
        int own_old = org_own(st, old, ingest_seq);
        if (own_old)
            wl_st_org_touch(st, old, event_at, batch);
        else
            wl_st_org_mark(st, old);
        wl_st_org_detach(st, old, in);
        if (own_old) {
            org_evaluate(st, old, event_at, ingest_seq, batch);
            if (old->n_installs == 0)
                org_empty(st, old, batch);
        }
        /* written before the install's record is (state_checkpoint.c) */
        wl_st_ckpt_moved(st, in, old, org);
    }
    if (own)
        wl_st_org_touch(st, org, event_at, batch);
    else
        wl_st_org_mark(st, org);
    int was_counting = in->counting;
    if (was_counting && old == org && wl_st_install_recount(st, org, in, latest)) {
        /* the usual ping: its strings as they were, only counts moved */
    } else {
        if (was_counting && old == org) /* its old counts leave the totals; the new come below */
            wl_st_org_count(st, org, in, -1);
        if (old == org)
            wl_st_org_list(st, org, in, -1);
        if (in->org != org)
            wl_st_org_attach(org, in);
        wl_st_install_set_ping(st, in, latest);
        in->counting = 1;
        wl_st_org_count(st, org, in, +1);
        wl_st_org_list(st, org, in, +1);
    }
    if (base != NULL) /* latest pointed into it */
        warmline__v1__ping__free_unpacked(base, NULL);
    if (event_at < in->first_seen)
        in->first_seen = event_at;
    if (event_at > in->last_seen) {
        uint64_t rise = (uint64_t)(event_at - in->last_seen);
        if (was_counting && rise <= UINT32_MAX - in->heap_lag) {
            in->heap_lag += (uint32_t)rise; /* its place stays (the heap's banner) */
        } else if (was_counting) { /* 49 days and more: placed again now */
            in->heap_lag = 0;
            in->last_seen = event_at;
            heap_sift_down(st, in->heap_pos);
        }
        in->last_seen = event_at;
    }
    if (!was_counting)
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
    in->last_ingest_seq = ingest_seq;
    install_mark(st, in);
    if (own)
        org_evaluate(st, org, event_at, ingest_seq, batch);
    return WL_APPLY_ACCEPTED;
}

enum wl_apply wl_state_apply(struct wl_state *st, const wl_ping *ping, int64_t received_at,
                             int64_t event_at, struct wl_batch *batch)
{
    return wl_st_apply(st, ping, WL_SOURCE_WIRE, 0, received_at, event_at, batch, NULL, 0, NULL,
                       NULL);
}

enum wl_apply wl_state_apply_wire(struct wl_state *st, const wl_ping *ping,
                                  const struct wl_ping_bytes *wire, int64_t received_at,
                                  int64_t event_at, struct wl_batch *batch)
{
    return wl_st_apply(st, ping, WL_SOURCE_WIRE, 0, received_at, event_at, batch, NULL, 0, NULL,
                       wire);
}

enum wl_apply wl_state_apply_edge(struct wl_state *st, const wl_ping *ping,
                                  const struct wl_edge *edge, int64_t received_at,
                                  int64_t event_at, struct wl_batch *batch)
{
    return wl_st_apply(st, ping, edge->source, edge->presence, received_at, event_at, batch,
                       NULL, 0, NULL, NULL);
}
