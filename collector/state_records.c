/* The writer's state on disk (state_parts.h): the install, organization and
 * day records, staged and flushed into the group's batch, and the commit
 * that follows a write. The writer thread. */
#include "aggregate.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "state_parts.h"

/* ---- records ---- */

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

uint8_t *wl_st_grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (need > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < need)
            c *= 2;
        *buf = wl_st_xrealloc(*buf, c);
        *cap = c;
    }
    return *buf;
}

size_t wl_st_pack_install(const struct wl_install *in, uint8_t **out, size_t *cap)
{
    wl_install_rec rec = WARMLINE__STORE__V1__INSTALL_STATE__INIT;
    rec.install_id = (char *)in->id;
    rec.org.data = (uint8_t *)in->org->id;
    rec.org.len = in->org->id_len;
    rec.last_seq = in->last_seq;
    rec.first_seen = in->first_seen;
    rec.last_seen = in->last_seen;
    rec.last_ingest_seq = in->last_ingest_seq;
    rec.edge_seq = in->edge_seq;
    rec.check_hour = in->check_hour;
    rec.check_digest = in->check_digest;
    rec.org_by_network = (in->flags & IN_ORG_BY_NETWORK) != 0;
    /* what the state holds of its latest ping; the ping itself is in the
     * log at last_ingest_seq (wl_latest_ping_read) */
    uint64_t counts[WL_N_COUNTS];
    for (int i = 0; i < WL_N_COUNTS; i++)
        counts[i] = in->counts[i];
    rec.n_counts = WL_N_COUNTS;
    rec.counts = counts;
    rec.edition = (char *)(in->edition != NULL ? in->edition : "");
    rec.version = (char *)(in->version != NULL ? in->version : "");
    rec.n_features = in->n_features;
    rec.features = (char **)in->features;
    size_t n = warmline__store__v1__install_state__get_packed_size(&rec);
    uint8_t *buf = wl_st_grow(out, cap, n);
    warmline__store__v1__install_state__pack(&rec, buf);
    return n;
}

wl_ping *wl_latest_ping_read(struct wl_store *store, const struct wl_snapshot *snap,
                             uint64_t ingest_seq, const char *install_id)
{
    char *val = NULL, err[256];
    size_t vlen = 0;
    uint8_t key[8];
    wl_ping *p = NULL;

    if (ingest_seq == 0)
        return NULL;
    wl_be64_put(key, ingest_seq);
    if (wl_store_get_at(store, snap, WL_CF_PINGS, key, sizeof key, &val, &vlen, err,
                        sizeof err) != 0) {
        free(val);
        return NULL;
    }
    wl_ping_rec *rec = warmline__store__v1__stored_ping__unpack(NULL, vlen, (const uint8_t *)val);
    free(val);
    if (rec == NULL)
        return NULL;
    if (rec->ping != NULL && strcmp(rec->ping->install_id, install_id) == 0) {
        if (rec->source == WL_SOURCE_WIRE) {
            p = rec->ping;
            rec->ping = NULL;
        } else if (rec->latest != NULL) {
            p = rec->latest;
            rec->latest = NULL;
        }
    }
    warmline__store__v1__stored_ping__free_unpacked(rec, NULL);
    return p;
}

void wl_st_put_install(struct wl_state *st, struct wl_install *in, struct wl_batch *batch)
{
    size_t n = wl_st_pack_install(in, &st->scratch, &st->scratch_cap);
    wl_batch_put(batch, WL_CF_INSTALLS, in->id, strlen(in->id), st->scratch, n);
}

static int id_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sifts ids[i] down a max-heap of n ids (by strcmp). */
static void id_sift(char **ids, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && strcmp(ids[l], ids[m]) > 0)
            m = l;
        if (r < n && strcmp(ids[r], ids[m]) > 0)
            m = r;
        if (m == i)
            return;
        char *t = ids[i];
        ids[i] = ids[m];
        ids[m] = t;
        i = m;
    }
}

/* The organization's n smallest install ids, sorted: the record (and the
 * account view) lists the same installs in the same order whatever order
 * they came or loaded in. A max-heap of n while the rest pass: n log n. */
static void first_ids(const struct wl_org *org, char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ids[i] = (char *)org->installs[i]->id;
    if (org->n_installs > n && n > 0) {
        for (size_t i = n / 2; i-- > 0;)
            id_sift(ids, n, i);
        for (size_t i = n; i < org->n_installs; i++) {
            char *id = (char *)org->installs[i]->id;
            if (strcmp(id, ids[0]) < 0) {
                ids[0] = id;
                id_sift(ids, n, 0);
            }
        }
    }
    if (n > 1)
        qsort(ids, n, sizeof *ids, id_cmp);
}

void wl_st_org_first_ids(struct wl_org *org)
{
    if (org->n_installs <= WL_ORG_INSTALL_IDS_MAX) {
        free(org->first_ids);
        org->first_ids = NULL;
        org->n_first = 0;
        return;
    }
    if (org->first_ids == NULL)
        org->first_ids = wl_st_xrealloc(NULL, WL_ORG_INSTALL_IDS_MAX * sizeof *org->first_ids);
    first_ids(org, (char **)org->first_ids, WL_ORG_INSTALL_IDS_MAX);
    org->n_first = WL_ORG_INSTALL_IDS_MAX;
}

/* Where id goes in the sorted list (the first entry not below it). */
static size_t first_pos(const struct wl_org *org, const char *id)
{
    size_t lo = 0, hi = org->n_first;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(org->first_ids[mid], id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void wl_st_first_ids_join(struct wl_org *org, struct wl_install *in)
{
    if (org->n_installs <= WL_ORG_INSTALL_IDS_MAX)
        return;
    if (org->first_ids == NULL) { /* it just grew past the limit: once */
        wl_st_org_first_ids(org);
        return;
    }
    size_t at = first_pos(org, in->id);
    if (at == WL_ORG_INSTALL_IDS_MAX)
        return; /* past the list */
    size_t keep = org->n_first < WL_ORG_INSTALL_IDS_MAX ? org->n_first : WL_ORG_INSTALL_IDS_MAX - 1;
    memmove(&org->first_ids[at + 1], &org->first_ids[at],
            (keep - at) * sizeof *org->first_ids);
    org->first_ids[at] = in->id;
    org->n_first = (uint16_t)(keep + 1);
}

void wl_st_first_ids_leave(struct wl_org *org, struct wl_install *in)
{
    if (org->first_ids == NULL)
        return;
    if (org->n_installs <= WL_ORG_INSTALL_IDS_MAX) { /* a reader lists them all */
        free(org->first_ids);
        org->first_ids = NULL;
        org->n_first = 0;
        return;
    }
    size_t at = first_pos(org, in->id);
    if (at < org->n_first && org->first_ids[at] == in->id) {
        /* it leaves a hole at the end until the next pack fills it */
        memmove(&org->first_ids[at], &org->first_ids[at + 1],
                (org->n_first - at - 1) * sizeof *org->first_ids);
        org->n_first--;
    }
}

size_t wl_st_pack_org(const struct wl_state *st, const struct wl_org *org, const char ***feats,
                      size_t *feats_cap, uint8_t **out, size_t *cap)
{
    wl_org_rec rec = WARMLINE__STORE__V1__ORG_STATE__INIT;
    /* A record that lists every install of an organization with 100,000
     * would cost megabytes per write: it lists the first few. */
    size_t n_ids = org->n_installs < WL_ORG_INSTALL_IDS_MAX ? org->n_installs
                                                            : WL_ORG_INSTALL_IDS_MAX;
    /* past the limit, the list kept (never a walk under the readers' lock) */
    int kept = org->first_ids != NULL && org->n_installs > WL_ORG_INSTALL_IDS_MAX;
    if (kept)
        n_ids = org->n_first;
    char *ids[WL_ORG_INSTALL_IDS_MAX];
    const char *versions[SEEN_MAX], *editions[SEEN_MAX];
    const struct wl_ruleset *rs = st->opts.rules;
    size_t n_rules = org->rules.states && rs ? rs->n : 1;
    Warmline__Store__V1__OrgState__RuleState rule_recs[n_rules];
    Warmline__Store__V1__OrgState__RuleState *rule_ptrs[n_rules];
    size_t n_rule_recs = 0;

    if (kept)
        memcpy(ids, org->first_ids, n_ids * sizeof *ids);
    else
        first_ids(org, ids, n_ids);
    /* Sorted: the record does not depend on the order installs came in.
     * One buffer lists each table in turn, the longest its features. */
    size_t need = org->feats.cap;
    need = org->versions.cap > need ? org->versions.cap : need;
    need = org->editions.cap > need ? org->editions.cap : need;
    if (need > *feats_cap) {
        *feats = wl_st_xrealloc(*feats, need * sizeof **feats);
        *feats_cap = need;
    }
    size_t n_versions = wl_st_tally_list(&org->versions, *feats);
    n_versions = n_versions < SEEN_MAX ? n_versions : SEEN_MAX;
    if (n_versions > 0)
        memcpy(versions, *feats, n_versions * sizeof *versions);
    size_t n_editions = wl_st_tally_list(&org->editions, *feats);
    n_editions = n_editions < SEEN_MAX ? n_editions : SEEN_MAX;
    if (n_editions > 0)
        memcpy(editions, *feats, n_editions * sizeof *editions);
    size_t n_features = wl_st_tally_list(&org->feats, *feats);
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
    rec.org.data = (uint8_t *)org->id;
    rec.org.len = org->id_len;
    rec.n_install_ids = n_ids;
    rec.install_ids = ids;
    rec.installs_total = (uint32_t)org->n_installs;
    rec.first_seen = org->first_seen;
    rec.last_seen = org->last_seen;
    rec.n_totals = WL_N_COUNTS;
    rec.totals = (uint64_t *)org->totals;
    rec.installs_counting = org->n_counting;
    rec.n_versions = n_versions;
    rec.versions = (char **)versions;
    rec.n_editions = n_editions;
    rec.editions = (char **)editions;
    rec.n_features = n_features;
    rec.features = (char **)*feats;
    rec.has_score = org->rules.n_signals > 0;
    rec.score_log2 = rec.has_score ? org->rules.score_log2 : 0;
    rec.signals = org->rules.n_signals;
    rec.n_rules = n_rule_recs;
    rec.rules = rule_ptrs;
    rec.day = org->day;
    rec.updated_at = org->updated_at;
    rec.state_seq = st->ingest_seq;
    size_t n = warmline__store__v1__org_state__get_packed_size(&rec);
    warmline__store__v1__org_state__pack(&rec, wl_st_grow(out, cap, n));
    return n;
}

void wl_st_put_org(struct wl_state *st, struct wl_org *org, struct wl_batch *batch, int ids)
{
    wl_signals_index(&org->rules, org->id, org->id_len, batch);
    if (org->n_installs == 0) { /* every install moved away (org_empty) */
        wl_batch_delete(batch, WL_CF_ORGS, org->id, org->id_len);
        return;
    }
    org->rec_seq = st->ingest_seq;
    if (ids)
        wl_st_org_first_ids(org);
    size_t n = wl_st_pack_org(st, org, &st->feat_buf, &st->feat_cap, &st->scratch,
                              &st->scratch_cap);
    wl_batch_put(batch, WL_CF_ORGS, org->id, org->id_len, st->scratch, n);
}

void wl_st_put_state_seq(struct wl_batch *batch, uint64_t seq, int64_t at, int64_t clock)
{
    uint8_t v[8];
    wl_be64_put(v, seq);
    wl_batch_put(batch, WL_CF_META, META_STATE_SEQ, sizeof META_STATE_SEQ - 1, v, sizeof v);
    wl_be64_put(v, (uint64_t)at);
    wl_batch_put(batch, WL_CF_META, META_STATE_AT, sizeof META_STATE_AT - 1, v, sizeof v);
    wl_be64_put(v, (uint64_t)clock);
    wl_batch_put(batch, WL_CF_META, META_STATE_CLOCK, sizeof META_STATE_CLOCK - 1, v, sizeof v);
    static const char under_way[] = WL_META_CKPT_SEQ;
    wl_batch_delete(batch, WL_CF_META, under_way, sizeof under_way - 1);
}

void wl_st_put_signal_index_seq(struct wl_batch *batch, uint64_t id)
{
    uint8_t v[8];
    wl_be64_put(v, id);
    wl_batch_put(batch, WL_CF_META, META_SIGNAL_INDEX_SEQ, sizeof META_SIGNAL_INDEX_SEQ - 1, v,
                 sizeof v);
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

/* In daily key order: length, then bytes. */
static int org_cmp(const void *a, const void *b)
{
    const struct wl_org *x = *(struct wl_org *const *)a, *y = *(struct wl_org *const *)b;
    if (x->id_len != y->id_len)
        return x->id_len < y->id_len ? -1 : 1;
    return memcmp(x->id, y->id, x->id_len);
}

/* The dirty organizations in key order: a memtable takes keys in order
 * for a fraction of the comparisons random ones cost (each insert starts
 * from where the last one went). */
static struct wl_org **sorted_dirty(struct wl_state *st, size_t *n)
{
    size_t k = 0;
    for (struct wl_org *o = st->dirty_orgs; o != NULL; o = o->next_dirty) {
        if (k == st->sort_cap) {
            st->sort_cap = st->sort_cap ? st->sort_cap * 2 : 1024;
            st->sort_buf = wl_st_xrealloc(st->sort_buf, st->sort_cap * sizeof *st->sort_buf);
        }
        st->sort_buf[k++] = o;
    }
    if (k > 1) /* sort_buf is NULL until the first dirty record */
        qsort(st->sort_buf, k, sizeof *st->sort_buf, org_cmp);
    *n = k;
    return (struct wl_org **)st->sort_buf;
}

uint64_t wl_state_flush(struct wl_state *st, struct wl_batch *batch)
{
    size_t n;
    uint64_t records = 0;
    wl_st_ckpt_absorb(st, batch); /* a checkpoint in slices under way: finished here */
    struct wl_org **v = sorted_dirty(st, &n);
    for (size_t i = 0; i < n; i++)
        records += wl_st_ckpt_org_write(st, v[i], batch);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    st->flush_at = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    wl_st_put_state_seq(batch, st->ingest_seq, st->flush_at, st->clock);
    wl_st_put_signal_index_seq(batch, st->signals.seq);
    st->staged_ingest_seq = 0; /* put it again: the flush may come after a failed write */
    wl_state_stage(st, batch);
    st->flushed = 1;
    return records;
}

void wl_st_org_destroy(struct wl_state *st, struct wl_org *org)
{
    wl_signals_unrank(&st->signals, &org->rules); /* its node names its id: O(1) */
    wl_st_tally_clear(st, &org->feats);
    wl_st_tally_clear(st, &org->eds);
    wl_st_tally_clear(st, &org->versions);
    wl_st_tally_clear(st, &org->editions);
    free(org->installs);
    free(org->first_ids);
    free(org->hist_days);
    free(org->hist_vals);
    free(org->dirty_v);
    wl_org_rules_free(&org->rules);
    free(org);
}

uint64_t wl_state_commit(struct wl_state *st)
{
    struct wl_org *org, *next_org;
    uint64_t last = st->group_last_signal;

    st->group_last_signal = 0;
    wl_signals_committed(&st->signals);
    wl_st_ckpt_committed(st);
    wl_st_group_written(st);
    if (!st->flushed)
        return last; /* the state stays dirty, in memory, until a flush */
    st->flushed = 0;
    st->state_seq = st->ingest_seq;
    st->checkpoint_at = st->flush_at;
    /* every dirty organization was written: off the list, an empty one gone */
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
    st->dirty_orgs = NULL;
    st->n_dirty_orgs = 0;
    return last;
}

int wl_state_dirty(const struct wl_state *st)
{
    /* also when every record is written but state_seq is behind: a
     * checkpoint in place ends at the sequence it began at, with what came
     * after it written too; a load would replay those pings (changing
     * nothing, but a forget must leave none of its installs' to replay) */
    return st->dirty_orgs != NULL || st->ckpt.phase != CKPT_IDLE ||
           st->state_seq < st->ingest_seq;
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
