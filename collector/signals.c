#include "signals.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "records.pb-c.h"
#include "storage/keys.h"

#define MAX_TERMS 16
#define PEND_KEEP ((size_t)1 << 20) /* bytes of packed signals kept between groups */

static const char META_SIGNAL_SEQ[] = "signal_seq";

int wl_signals_init(struct wl_signals *sg, struct wl_store *store, const struct wl_ruleset *rules,
                    uint64_t half_life_ms, char *err, size_t errlen)
{
    char *val = NULL;
    size_t vlen = 0;
    memset(sg, 0, sizeof *sg);
    wl_rank_init(&sg->rank);
    sg->rules = rules;
    sg->half_life_ms = half_life_ms;
    int rc = wl_store_get(store, WL_CF_META, META_SIGNAL_SEQ, sizeof META_SIGNAL_SEQ - 1, &val,
                          &vlen, err, errlen);
    if (rc == 0 && vlen == 8)
        sg->seq = wl_be64_get(val);
    free(val);
    return rc == -ENOENT ? 0 : rc;
}

void wl_signals_free(struct wl_signals *sg)
{
    wl_rank_free(&sg->rank);
    free(sg->due);
    free(sg->moves);
    sg->due = NULL;
    sg->moves = NULL;
    sg->due_n = sg->due_cap = sg->moves_cap = 0;
    free(sg->pend);
    free(sg->pend_id);
    free(sg->pend_off);
    sg->pend = NULL;
    sg->pend_id = NULL;
    sg->pend_off = NULL;
    free(sg->buf);
    sg->buf = NULL;
    sg->cap = 0;
}

void wl_signals_unrank(struct wl_signals *sg, struct wl_org_rules *orules)
{
    if (orules->rank_due != 0) { /* the group's move is off */
        sg->due[orules->rank_due - 1].orules = NULL;
        orules->rank_due = 0;
    }
    wl_rank_remove(&sg->rank, &orules->rank);
}

/* The organization is ranked again when the group's write is in. */
static void rank_due(struct wl_signals *sg, struct wl_org_rules *orules, const uint8_t *org,
                     size_t org_len)
{
    if (orules->rank_due != 0)
        return;
    if (sg->due_n == sg->due_cap) {
        size_t cap = sg->due_cap ? 2 * sg->due_cap : 256;
        struct wl_rank_due *d = realloc(sg->due, cap * sizeof *d);
        if (d == NULL)
            abort(); /* out of memory in the writer */
        sg->due = d;
        sg->due_cap = cap;
    }
    sg->due[sg->due_n] = (struct wl_rank_due){orules, org, org_len};
    orules->rank_due = (uint32_t)++sg->due_n;
}

static void rank_apply(struct wl_signals *sg)
{
    if (sg->due_n == 0)
        return;
    if (sg->moves_cap < sg->due_n) {
        free(sg->moves);
        sg->moves = malloc(sg->due_n * sizeof *sg->moves);
        if (sg->moves == NULL)
            abort();
        sg->moves_cap = sg->due_n;
    }
    size_t n = 0;
    for (size_t i = 0; i < sg->due_n; i++) {
        struct wl_org_rules *o = sg->due[i].orules;
        if (o == NULL)
            continue;
        o->rank_due = 0;
        sg->moves[n++] = (struct wl_rank_move){&o->rank, o->score_log2, sg->due[i].org,
                                               sg->due[i].org_len, 0};
    }
    sg->due_n = 0;
    wl_rank_set_many(&sg->rank, sg->moves, n);
    if (sg->due_cap > 65536) { /* a large group's: not kept for the next */
        free(sg->due);
        free(sg->moves);
        sg->due = NULL;
        sg->moves = NULL;
        sg->due_cap = sg->moves_cap = 0;
    }
}

void wl_org_rules_free(struct wl_org_rules *orules)
{
    free(orules->states);
    orules->states = NULL;
    free(orules->recent);
    orules->recent = NULL;
}

void wl_signals_recent_add(struct wl_org_rules *orules, uint64_t id)
{
    struct wl_signal_ids *r = orules->recent;
    if (r == NULL || r->n == r->cap) {
        uint32_t cap = r != NULL ? 2 * r->cap : 4;
        r = realloc(r, sizeof *r + cap * sizeof r->id[0]);
        if (r == NULL)
            abort(); /* out of memory in the writer */
        if (orules->recent == NULL)
            r->n = r->n_written = 0;
        r->cap = cap;
        orules->recent = r;
    }
    r->id[r->n++] = id;
}

void wl_signals_index(struct wl_org_rules *orules, const uint8_t *org, size_t org_len,
                      struct wl_batch *batch)
{
    struct wl_signal_ids *r = orules->recent;
    uint8_t key[1 + WL_ORG_ID_MAX + 8];
    if (r == NULL)
        return;
    for (uint32_t i = r->n_written; i < r->n; i++) {
        size_t klen = wl_org_signal_key(org, org_len, r->id[i], key);
        wl_batch_put(batch, WL_CF_ORG_SIGNALS, key, klen, "", 0);
    }
    r->n_written = r->n;
}

int wl_signals_index_written(struct wl_org_rules *orules)
{
    struct wl_signal_ids *r = orules->recent;
    if (r == NULL || r->n_written == 0)
        return 0;
    if (r->n_written == r->n) {
        free(r);
        orules->recent = NULL;
        return 1;
    }
    memmove(r->id, r->id + r->n_written, (r->n - r->n_written) * sizeof r->id[0]);
    r->n -= r->n_written;
    r->n_written = 0;
    return 1;
}

static void pend_add(struct wl_signals *sg, uint64_t id, const uint8_t *p, size_t n)
{
    if (sg->pend_n == sg->pend_ncap) {
        size_t cap = sg->pend_ncap ? 2 * sg->pend_ncap : 64;
        uint64_t *ids = realloc(sg->pend_id, cap * sizeof *ids);
        if (ids == NULL)
            abort(); /* out of memory in the writer */
        sg->pend_id = ids;
        size_t *offs = realloc(sg->pend_off, cap * sizeof *offs);
        if (offs == NULL)
            abort();
        sg->pend_off = offs;
        sg->pend_ncap = cap;
    }
    if (sg->pend_len + n > sg->pend_cap) {
        size_t cap = sg->pend_cap ? 2 * sg->pend_cap : 16384;
        while (cap < sg->pend_len + n)
            cap *= 2;
        uint8_t *b = realloc(sg->pend, cap);
        if (b == NULL)
            abort();
        sg->pend = b;
        sg->pend_cap = cap;
    }
    memcpy(sg->pend + sg->pend_len, p, n);
    sg->pend_id[sg->pend_n] = id;
    sg->pend_off[sg->pend_n++] = sg->pend_len;
    sg->pend_len += n;
}

int wl_signals_pending(const struct wl_signals *sg, uint64_t id, const uint8_t **p,
                       size_t *len)
{
    size_t lo = 0, hi = sg->pend_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sg->pend_id[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == sg->pend_n || sg->pend_id[lo] != id)
        return -ENOENT;
    *p = sg->pend + sg->pend_off[lo];
    *len = (lo + 1 < sg->pend_n ? sg->pend_off[lo + 1] : sg->pend_len) - sg->pend_off[lo];
    return 0;
}

static void put_signal(struct wl_signals *sg, struct wl_org_rules *orules,
                       const struct wl_rule *r, const struct wl_account_view *view,
                       const struct wl_signal_cause *cause, struct wl_batch *batch)
{
    Warmline__Store__V1__Signal rec = WARMLINE__STORE__V1__SIGNAL__INIT;
    Warmline__Store__V1__Signal__Term term_recs[MAX_TERMS];
    Warmline__Store__V1__Signal__Term *term_ptrs[MAX_TERMS];
    struct wl_rule_term terms[MAX_TERMS];
    size_t n_terms = wl_expr_terms(r->when, view, terms, MAX_TERMS);
    uint8_t key[8];

    for (size_t i = 0; i < n_terms; i++) {
        Warmline__Store__V1__Signal__Term t = WARMLINE__STORE__V1__SIGNAL__TERM__INIT;
        t.metric = (char *)terms[i].metric; /* the rule's, packed before it can go */
        t.value = terms[i].value;
        t.op = (char *)terms[i].op;
        t.threshold = terms[i].threshold;
        t.text = (char *)terms[i].text;
        term_recs[i] = t;
        term_ptrs[i] = &term_recs[i];
    }
    rec.id = ++sg->seq;
    rec.org.data = (uint8_t *)cause->org;
    rec.org.len = cause->org_len;
    rec.rule = (char *)r->name;
    rec.description = r->description;
    rec.weight = r->weight;
    rec.fired_at = cause->at;
    rec.n_terms = n_terms;
    rec.terms = term_ptrs;
    const char *ids[WL_SIGNAL_INSTALLS_MAX];
    rec.n_install_ids =
        cause->installs ? cause->installs(cause->installs_ctx, ids, WL_SIGNAL_INSTALLS_MAX) : 0;
    rec.install_ids = (char **)ids;
    rec.ingest_seq = cause->ingest_seq;

    size_t n = warmline__store__v1__signal__get_packed_size(&rec);
    if (n > sg->cap) {
        uint8_t *b = realloc(sg->buf, n);
        if (b == NULL)
            abort(); /* out of memory in the writer */
        sg->buf = b;
        sg->cap = n;
    }
    warmline__store__v1__signal__pack(&rec, sg->buf);
    wl_be64_put(key, rec.id);
    wl_batch_put(batch, WL_CF_SIGNALS, key, sizeof key, sg->buf, n);
    pend_add(sg, rec.id, sg->buf, n);
    /* The organization's signals, in id order, for its reasons: indexed at
     * the next checkpoint. A random insert into the index's memtable per
     * signal cost more than the signal itself (bench/RESULTS.md). */
    wl_signals_recent_add(orules, rec.id);
    sg->fired++;
    sg->fired_by_rule[r - sg->rules->rules]++;
}

int wl_signals_evaluate(struct wl_signals *sg, struct wl_org_rules *orules,
                        const struct wl_account_view *view, const struct wl_signal_cause *cause,
                        struct wl_batch *batch)
{
    const struct wl_ruleset *rs = sg->rules;
    int fired = 0;
    struct wl_rule_state armed = {0};

    for (size_t i = 0; i < rs->n; i++) {
        struct wl_rule_state *st = orules->states ? &orules->states[i] : &armed;
        if (orules->states == NULL)
            armed = (struct wl_rule_state){0};
        if (!wl_rule_step(&rs->rules[i], st, view, cause->at))
            continue;
        if (orules->states == NULL) { /* the first firing: keep state from now on */
            orules->states = calloc(rs->n, sizeof *orules->states);
            if (orules->states == NULL)
                abort();
            orules->states[i] = armed;
        }
        if (batch != NULL)
            put_signal(sg, orules, &rs->rules[i], view, cause, batch);
        orules->score_log2 = wl_score_add(orules->n_signals ? orules->score_log2 : WL_SCORE_NONE,
                                          rs->rules[i].weight, cause->at, sg->half_life_ms);
        orules->n_signals++;
        fired++;
    }
    /* replaying too: the rank is memory's alone. Live, once per group
     * (wl_signals_committed): a group fires hundreds of organizations, and
     * each alone searched the rank from its top (6% of the writer's time
     * in a cold TCP load) */
    if (fired && batch != NULL)
        rank_due(sg, orules, cause->org, cause->org_len);
    else if (fired)
        wl_rank_set(&sg->rank, &orules->rank, orules->score_log2, cause->org, cause->org_len);
    return fired;
}

void wl_signals_committed(struct wl_signals *sg)
{
    rank_apply(sg);
    sg->pend_n = sg->pend_len = 0;
    if (sg->pend_cap > PEND_KEEP) { /* a large group's: not kept for the next */
        free(sg->pend);
        sg->pend = NULL;
        sg->pend_cap = 0;
    }
    if (sg->rules == NULL)
        return;
    for (size_t i = 0; i < sg->rules->n && i < WL_RULES_MAX; i++) {
        if (sg->fired_by_rule[i] != 0) {
            wl_count_signals(i, sg->fired_by_rule[i]);
            sg->fired_by_rule[i] = 0;
        }
    }
}

void wl_signals_flush(struct wl_signals *sg, struct wl_batch *batch)
{
    uint8_t v[8];
    if (sg->fired == 0)
        return;
    wl_be64_put(v, sg->seq);
    wl_batch_put(batch, WL_CF_META, META_SIGNAL_SEQ, sizeof META_SIGNAL_SEQ - 1, v, sizeof v);
    sg->fired = 0;
}
