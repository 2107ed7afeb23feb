/* Unit tests for the state's lazy flush and replay (collector/aggregate.h):
 * a state whose records are written only now and then, and which "crashes"
 * (is dropped without a flush) and reloads at random points, must end with
 * the same records as a state flushed after every group: installs, orgs,
 * days, signals, rank and the organizations' signal index. Real stores in
 * a temporary directory, rules that fire, expire and re-arm. The same with
 * checkpoints written in slices (state_checkpoint.c) over many groups, and
 * crashes in the middle of one: while it is staged, and while it moves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "records.pb-c.h"
#include "state_read.h"
#include "tmpdir.h"

typedef Warmline__Store__V1__OrgState org_rec;
typedef Warmline__Store__V1__Signal signal_rec;

#define DAY_MS (86400LL * 1000)
#define T0 (1767225600000LL) /* 2026-01-01 */
#define N_INSTALLS 30
#define N_PINGS 1500
#define GROUP 7

struct side {
    char db[160];
    struct wl_store *store;
    struct wl_state *st;
};

struct fx {
    char root[64];
    struct wl_ruleset rules;
    struct wl_state_opts opts;
    struct side eager, lazy;
};

static void add_rule(struct wl_ruleset *rs, const char *name, const char *when,
                     const char *cooldown)
{
    char err[256];
    if (wl_ruleset_add(rs, name, when, NULL, cooldown, NULL, NULL, err, sizeof err) != 0)
        fail_msg("rule %s: %s", name, err);
}

static void side_open(struct fx *f, struct side *s, const char *name)
{
    char err[512];
    snprintf(s->db, sizeof s->db, "%s/%s", f->root, name);
    if (wl_store_open(s->db, WL_STORE_PRIMARY, &s->store, err, sizeof err) != 0)
        fail_msg("store: %s", err);
    if (wl_state_load(s->store, &f->opts, &s->st, err, sizeof err) != 0)
        fail_msg("state: %s", err);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->root, sizeof f->root, "/tmp/wl-test-replay-XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    add_rule(&f->rules, "mau_over_25", "active_users_monthly > 25", "3d");
    add_rule(&f->rules, "second_install", "installs >= 2", "5d");
    add_rule(&f->rules, "growth", "growth_7d(active_users_monthly) >= 50", "2d");
    add_rule(&f->rules, "sso", "has_feature(saml_configured)", "4d");
    add_rule(&f->rules, "enterprise", "edition == \"enterprise\"", "6d");
    f->opts = (struct wl_state_opts){
        .install_ttl_ms = 4 * DAY_MS, /* installs expire and come back */
        .score_half_life_ms = 14 * DAY_MS,
        .rules = &f->rules,
    };
    side_open(f, &f->eager, "eager");
    side_open(f, &f->lazy, "lazy");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    struct side *sides[2] = {&f->eager, &f->lazy};
    for (int i = 0; i < 2; i++) {
        wl_state_free(sides[i]->st);
        wl_store_close(sides[i]->store);
    }
    wl_ruleset_clear(&f->rules);
    int rc = wl_test_rmtree(f->root);
    free(f);
    return rc;
}

/* ---- a deterministic stream of pings ---- */

static uint64_t rng = 88172645463325252ULL;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

struct tping {
    wl_ping p;
    char id[32];
    uint8_t key[32];
    char *features[2];
    int64_t at;
};

static void make_stream(struct tping *out, size_t n)
{
    uint64_t seq[N_INSTALLS] = {0};
    uint32_t mau[N_INSTALLS];
    int org_of[N_INSTALLS];
    int64_t at = T0;

    for (int i = 0; i < N_INSTALLS; i++) {
        mau[i] = next_rand() % 30;
        org_of[i] = i % 9 == 8 ? -1 : (int)(next_rand() % 6); /* -1: no org key */
    }
    for (size_t k = 0; k < n; k++) {
        struct tping *t = &out[k];
        wl_ping init = WARMLINE__V1__PING__INIT;
        /* A few installs at a time, for some days, then a gap that makes
         * the others expire; hours apart, so days roll over. */
        int i = (int)(next_rand() % (k % 400 < 300 ? N_INSTALLS : 5));
        at += (int64_t)(next_rand() % (3 * 3600)) * 1000;
        if (k % 400 == 399)
            at += 5 * DAY_MS;
        if (next_rand() % 40 == 0) /* it moves to another organization */
            org_of[i] = (int)(next_rand() % 6);
        int32_t step = (int32_t)(next_rand() % 21) - 8;
        mau[i] = (int32_t)mau[i] + step < 0 ? 0 : mau[i] + step;
        memset(t, 0, sizeof *t);
        t->p = init;
        snprintf(t->id, sizeof t->id, "inst-%02d", i);
        t->p.install_id = t->id;
        if (org_of[i] >= 0) {
            memset(t->key, 'a' + org_of[i], sizeof t->key);
            t->p.org_key.data = t->key;
            t->p.org_key.len = 32;
        }
        t->p.seq = ++seq[i];
        t->p.version = i % 2 ? "9.11" : "10.0";
        t->p.edition = next_rand() % 50 == 0 ? "enterprise" : "team";
        t->p.active_users_monthly = mau[i];
        t->p.registered_users = mau[i] * 2;
        t->p.teams = 1 + i % 3;
        t->p.posts = k;
        if (next_rand() % 30 == 0) {
            t->features[0] = "saml_configured";
            t->p.features = t->features;
            t->p.n_features = 1;
        }
        t->at = at;
    }
}

/* ---- groups ---- */

static void write_group(struct side *s, struct tping *pings, size_t n, int flush)
{
    char err[512];
    struct wl_batch *b = wl_batch_new(s->store);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(wl_state_apply(s->st, &pings[i].p, pings[i].at, pings[i].at, b),
                         WL_APPLY_ACCEPTED);
    if (flush)
        wl_state_flush(s->st, b);
    else
        wl_state_stage(s->st, b);
    if (wl_store_write(s->store, b, 1, err, sizeof err) != 0)
        fail_msg("write: %s", err);
    wl_state_commit(s->st);
    wl_batch_free(b);
}

/* A group whose write carries a slice of a checkpoint: one begins (when
 * none is under way and begin says so), then up to budget records of it. */
static void write_group_sliced(struct side *s, struct tping *pings, size_t n, int begin,
                               size_t budget)
{
    char err[512];
    uint64_t records = 0;
    struct wl_batch *b = wl_batch_new(s->store);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(wl_state_apply(s->st, &pings[i].p, pings[i].at, pings[i].at, b),
                         WL_APPLY_ACCEPTED);
    if (begin && !wl_state_checkpoint_busy(s->st) && wl_state_dirty(s->st))
        wl_state_checkpoint_begin(s->st, T0, b);
    if (wl_state_checkpoint_busy(s->st))
        wl_state_checkpoint_step(s->st, budget, b, &records);
    wl_state_stage(s->st, b);
    if (wl_store_write(s->store, b, 1, err, sizeof err) != 0)
        fail_msg("write: %s", err);
    wl_state_commit(s->st);
    wl_batch_free(b);
}

/* 0: no checkpoint under way on disk; 1: one being written in place;
 * and the stage of older versions is never written. */
static int stage_state(struct side *s)
{
    char *val = NULL, err[256];
    size_t vlen = 0;
    struct wl_iter *it = wl_iter_new(s->store, WL_CF_STAGE);
    wl_iter_seek_first(it);
    assert_false(wl_iter_valid(it));
    wl_iter_free(it);
    int rc = wl_store_get(s->store, WL_CF_META, WL_META_CKPT_SEQ, strlen(WL_META_CKPT_SEQ), &val,
                          &vlen, err, sizeof err);
    free(val);
    return rc == 0;
}

/* A crash: the state goes without a flush; the store stays (its writes
 * are durable); the state loads again. */
static void crash(struct fx *f, struct side *s)
{
    char err[512];
    wl_state_free(s->st);
    s->st = NULL;
    if (wl_state_load(s->store, &f->opts, &s->st, err, sizeof err) != 0)
        fail_msg("reload: %s", err);
}

static void final_flush(struct side *s)
{
    write_group(s, NULL, 0, 1);
}

/* ---- comparing the stores ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A record as compared: organizations and signals with their install ids
 * (and an organization's features) in sorted order, since the order of an
 * organization's installs is that of the loads, not of the pings. */
static uint8_t *normalize(enum wl_cf cf, const char *v, size_t vlen, size_t *out_len)
{
    uint8_t *out = NULL;
    if (cf == WL_CF_ORGS) {
        org_rec *o = warmline__store__v1__org_state__unpack(NULL, vlen, (const uint8_t *)v);
        assert_non_null(o);
        if (o->n_install_ids > 1)
            qsort(o->install_ids, o->n_install_ids, sizeof *o->install_ids, cmp_str);
        if (o->n_features > 1)
            qsort(o->features, o->n_features, sizeof *o->features, cmp_str);
        o->state_seq = 0; /* the sequence it was written at: when, not what */
        *out_len = warmline__store__v1__org_state__get_packed_size(o);
        out = malloc(*out_len + 1);
        warmline__store__v1__org_state__pack(o, out);
        warmline__store__v1__org_state__free_unpacked(o, NULL);
    } else if (cf == WL_CF_SIGNALS) {
        signal_rec *g = warmline__store__v1__signal__unpack(NULL, vlen, (const uint8_t *)v);
        assert_non_null(g);
        if (g->n_install_ids > 1)
            qsort(g->install_ids, g->n_install_ids, sizeof *g->install_ids, cmp_str);
        *out_len = warmline__store__v1__signal__get_packed_size(g);
        out = malloc(*out_len + 1);
        warmline__store__v1__signal__pack(g, out);
        warmline__store__v1__signal__free_unpacked(g, NULL);
    } else {
        out = malloc(vlen + 1);
        memcpy(out, v, vlen);
        *out_len = vlen;
    }
    return out;
}

static size_t compare_cf(struct fx *f, enum wl_cf cf)
{
    struct wl_iter *a = wl_iter_new(f->eager.store, cf);
    struct wl_iter *b = wl_iter_new(f->lazy.store, cf);
    size_t n = 0;
    wl_iter_seek_first(a);
    wl_iter_seek_first(b);
    for (; wl_iter_valid(a) && wl_iter_valid(b); wl_iter_next(a), wl_iter_next(b), n++) {
        size_t ka, kb, va, vb, na, nb;
        const char *keya = wl_iter_key(a, &ka), *keyb = wl_iter_key(b, &kb);
        if (ka != kb || memcmp(keya, keyb, ka) != 0) {
            char ha[2 * 80 + 1] = "", hb[2 * 80 + 1] = "";
            for (size_t i = 0; i < ka && i < 80; i++)
                sprintf(ha + 2 * i, "%02x", (uint8_t)keya[i]);
            for (size_t i = 0; i < kb && i < 80; i++)
                sprintf(hb + 2 * i, "%02x", (uint8_t)keyb[i]);
            fail_msg("%s: record %zu has another key: %s (whole) and %s", wl_cf_name(cf), n, ha,
                     hb);
        }
        const char *vala = wl_iter_value(a, &va), *valb = wl_iter_value(b, &vb);
        uint8_t *x = normalize(cf, vala, va, &na);
        uint8_t *y = normalize(cf, valb, vb, &nb);
        if (na != nb || memcmp(x, y, na) != 0)
            fail_msg("%s: record %zu differs (%zu and %zu bytes)", wl_cf_name(cf), n, na, nb);
        free(x);
        free(y);
    }
    if (wl_iter_valid(a) || wl_iter_valid(b))
        fail_msg("%s: the eager store has %s records", wl_cf_name(cf),
                 wl_iter_valid(a) ? "more" : "fewer");
    wl_iter_free(a);
    wl_iter_free(b);
    return n;
}

/* The rank is memory's alone (rank.h): the two states' ranks alike, key
 * for key (score bits and organization). Returns how many are ranked. */
static size_t compare_rank(struct fx *f)
{
    struct wl_state_reader *ra = wl_state_reader_new(), *rb = wl_state_reader_new();
    uint8_t ka[32][WL_RANK_KEY_MAX], kb[32][WL_RANK_KEY_MAX], la[32], lb[32];
    size_t n = 0;
    int na, nb;
    assert_non_null(ra);
    assert_non_null(rb);
    wl_state_reader_set(ra, f->eager.st);
    wl_state_reader_set(rb, f->lazy.st);
    for (;;) {
        na = wl_state_read_rank(ra, n ? ka[31] : NULL, n ? la[31] : 0, ka, la, 32);
        nb = wl_state_read_rank(rb, n ? kb[31] : NULL, n ? lb[31] : 0, kb, lb, 32);
        assert_int_equal(na, nb);
        for (int i = 0; i < na; i++)
            if (la[i] != lb[i] || memcmp(ka[i], kb[i], la[i]) != 0)
                fail_msg("rank: entry %zu differs", n + (size_t)i);
        n += (size_t)na;
        if (na < 32)
            break;
    }
    wl_state_reader_set(ra, NULL);
    wl_state_reader_set(rb, NULL);
    wl_state_reader_free(ra);
    wl_state_reader_free(rb);
    return n;
}

/* The organizations in memory after a reload, record for record, as the
 * eager state's (exact after every group): the replay left each where the
 * pings put it, whatever sequence its record on disk was exact for. */
static void compare_memory(struct fx *f)
{
    struct wl_state_reader *ra = wl_state_reader_new(), *rb = wl_state_reader_new();
    wl_state_reader_set(ra, f->eager.st);
    wl_state_reader_set(rb, f->lazy.st);
    struct wl_iter *it = wl_iter_new(f->eager.store, WL_CF_ORGS);
    for (wl_iter_seek_first(it); wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen, na, nb;
        const char *k = wl_iter_key(it, &klen);
        org_rec *a = NULL, *b = NULL;
        int rca = wl_state_read_org(ra, (const uint8_t *)k, klen, &a);
        int rcb = wl_state_read_org(rb, (const uint8_t *)k, klen, &b);
        assert_int_equal(rca, rcb);
        if (rca != 0)
            continue;
        uint8_t *pa = malloc(warmline__store__v1__org_state__get_packed_size(a) + 1);
        uint8_t *pb = malloc(warmline__store__v1__org_state__get_packed_size(b) + 1);
        na = warmline__store__v1__org_state__pack(a, pa);
        nb = warmline__store__v1__org_state__pack(b, pb);
        size_t xa, xb;
        uint8_t *x = normalize(WL_CF_ORGS, (const char *)pa, na, &xa);
        uint8_t *y = normalize(WL_CF_ORGS, (const char *)pb, nb, &xb);
        if (xa != xb || memcmp(x, y, xa) != 0)
            fail_msg("org %c: in memory after a reload: signals %llu/%llu, installs %u/%u, "
                     "counting %u/%u, day %u/%u, rules %zu/%zu, seen %lld-%lld/%lld-%lld, "
                     "updated %lld/%lld, lists %zu.%zu.%zu/%zu.%zu.%zu, score %f/%f",
                     k[1], (unsigned long long)a->signals, (unsigned long long)b->signals,
                     a->installs_total, b->installs_total, a->installs_counting,
                     b->installs_counting, a->day, b->day, a->n_rules, b->n_rules,
                     (long long)a->first_seen, (long long)a->last_seen, (long long)b->first_seen,
                     (long long)b->last_seen, (long long)a->updated_at, (long long)b->updated_at,
                     a->n_versions, a->n_editions, a->n_features, b->n_versions, b->n_editions,
                     b->n_features, a->score_log2, b->score_log2);
        free(x);
        free(y);
        free(pa);
        free(pb);
        warmline__store__v1__org_state__free_unpacked(a, NULL);
        warmline__store__v1__org_state__free_unpacked(b, NULL);
    }
    wl_iter_free(it);
    wl_state_reader_set(ra, NULL);
    wl_state_reader_set(rb, NULL);
    wl_state_reader_free(ra);
    wl_state_reader_free(rb);
}

static uint64_t meta_u64(struct side *s, const char *name)
{
    char *val = NULL, err[256];
    size_t vlen = 0;
    assert_int_equal(wl_store_get(s->store, WL_CF_META, name, strlen(name), &val, &vlen, err,
                                  sizeof err), 0);
    assert_int_equal(vlen, 8);
    uint64_t v = wl_be64_get(val);
    free(val);
    return v;
}

/* The two stores after the whole stream, each written whole at the end:
 * every record alike; returns how many signals there are. */
static size_t compare_all(struct fx *f)
{
    assert_int_equal(meta_u64(&f->lazy, "ingest_seq"), N_PINGS);
    assert_int_equal(meta_u64(&f->lazy, "state_seq"), N_PINGS);
    assert_int_equal(meta_u64(&f->eager, "signal_seq"), meta_u64(&f->lazy, "signal_seq"));
    assert_int_equal(compare_cf(f, WL_CF_PINGS), N_PINGS);
    assert_int_equal(compare_cf(f, WL_CF_INSTALLS), N_INSTALLS);
    assert_true(compare_cf(f, WL_CF_ORGS) > 0);
    assert_true(compare_cf(f, WL_CF_DAILY) > 0);
    size_t signals = compare_cf(f, WL_CF_SIGNALS);
    assert_true(signals > 10); /* the rules fired: the replay had something to get right */
    assert_true(compare_cf(f, WL_CF_ORG_SIGNALS) > 0);
    assert_true(compare_rank(f) > 0);
    return signals;
}

/* ---- the tests ---- */

static void run(struct fx *f, int crash_every, int flush_every)
{
    static struct tping pings[N_PINGS];
    size_t replayed = 0, crashes = 0;

    make_stream(pings, N_PINGS);
    for (size_t k = 0, g = 0; k < N_PINGS; k += GROUP, g++) {
        size_t n = N_PINGS - k < GROUP ? N_PINGS - k : GROUP;
        write_group(&f->eager, pings + k, n, 1);
        write_group(&f->lazy, pings + k, n, flush_every > 0 && g % (size_t)flush_every == 0);
        if (crash_every > 0 && g % (size_t)crash_every == (size_t)crash_every - 1) {
            crash(f, &f->eager); /* a clean restart: nothing to replay */
            assert_int_equal(wl_state_replayed(f->eager.st), 0);
            crash(f, &f->lazy);
            compare_memory(f);
            replayed += wl_state_replayed(f->lazy.st);
            crashes++;
        }
    }
    final_flush(&f->eager);
    final_flush(&f->lazy);
    assert_true(crashes == 0 || replayed > 0);

    size_t signals = compare_all(f);
    print_message("  %zu signals, %zu crashes, %zu pings replayed\n", signals, crashes, replayed);
}

/* Checkpoints in slices of budget records, one begun every ckpt_every
 * groups once the last is done; a crash every crash_every groups. */
static void run_sliced(struct fx *f, int crash_every, int ckpt_every, size_t budget)
{
    static struct tping pings[N_PINGS];
    size_t replayed = 0, crashes = 0, in_phase[2] = {0};

    make_stream(pings, N_PINGS);
    for (size_t k = 0, g = 0; k < N_PINGS; k += GROUP, g++) {
        size_t n = N_PINGS - k < GROUP ? N_PINGS - k : GROUP;
        write_group(&f->eager, pings + k, n, 1);
        write_group_sliced(&f->lazy, pings + k, n, g % (size_t)ckpt_every == 0, budget);
        if (crash_every > 0 && g % (size_t)crash_every == (size_t)crash_every - 1) {
            in_phase[stage_state(&f->lazy)]++;
            crash(f, &f->lazy);
            compare_memory(f);
            assert_int_equal(stage_state(&f->lazy), 0); /* dropped, or moved into place */
            replayed += wl_state_replayed(f->lazy.st);
            crashes++;
        }
    }
    final_flush(&f->eager);
    final_flush(&f->lazy);
    assert_int_equal(stage_state(&f->lazy), 0);
    if (crash_every > 0) /* crashes came while one was written */
        assert_true(in_phase[1] > 0);
    size_t signals = compare_all(f);
    print_message("  %zu signals, %zu crashes (%zu while one was written), %zu pings replayed\n",
                  signals, crashes, in_phase[1], replayed);
}

/* Checkpoints of a few records a group, many groups each, no crash: the
 * copy on write keeps each one the state at its sequence. */
static void test_slices_without_crash(void **state)
{
    run_sliced(*state, 0, 5, 3);
}

/* Crashes in the middle of checkpoints written in slices: small slices
 * (most crashes come while one is staged), larger ones (more while one
 * moves into place). */
static void test_crashes_during_slices(void **state)
{
    run_sliced(*state, 7, 3, 2);
}

static void test_crashes_in_larger_slices(void **state)
{
    run_sliced(*state, 5, 2, 9);
}

/* Each organization is written in place as it is when its slice comes
 * (state_checkpoint.c), so after a crash the records are exact for many
 * sequences at once, and the replay skips what each already has: crashes
 * at every phase of slices of every size, the next one begun at once. */
static void test_crashes_at_every_slice(void **state)
{
    static const int shapes[][3] = {{3, 1, 1}, {4, 1, 2}, {6, 1, 4}, {11, 2, 1}, {13, 1, 6}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        run_sliced(*state, shapes[i][0], shapes[i][1], (size_t)shapes[i][2]);
        /* two new stores for the next shape (a new stream: the generator goes on) */
        assert_int_equal(teardown(state), 0);
        assert_int_equal(setup(state), 0);
    }
}

/* The same with the records checked after every group: what a reload
 * reads is whole. A whole flush in the middle of one finishes it. */
static void test_whole_flush_finishes_slices(void **state)
{
    struct fx *f = *state;
    static struct tping pings[200];
    make_stream(pings, 200);
    for (size_t k = 0; k < 100; k += GROUP) {
        size_t n = 100 - k < GROUP ? 100 - k : GROUP;
        write_group(&f->eager, pings + k, n, 1);
        write_group_sliced(&f->lazy, pings + k, n, 1, 1);
    }
    assert_true(wl_state_checkpoint_busy(f->lazy.st));
    assert_true(stage_state(&f->lazy) != 0);
    final_flush(&f->eager);
    final_flush(&f->lazy); /* absorbs the one under way */
    assert_false(wl_state_checkpoint_busy(f->lazy.st));
    assert_false(wl_state_dirty(f->lazy.st));
    assert_int_equal(stage_state(&f->lazy), 0);
    assert_true(compare_cf(f, WL_CF_INSTALLS) > 0);
    assert_true(compare_cf(f, WL_CF_ORGS) > 0);
    assert_true(compare_cf(f, WL_CF_DAILY) > 0);
    crash(f, &f->lazy);
    assert_int_equal(wl_state_replayed(f->lazy.st), 0);
}

/* Time passing (a tick that expires installs) while a checkpoint is being
 * staged packs the organizations it changes first, in the same batch as the
 * whole flush that follows: nothing of them may stay in the stage for a
 * later checkpoint to move over newer records (a review found it did). */
static void tick(struct side *s, int64_t now)
{
    char err[512];
    struct wl_batch *b = wl_batch_new(s->store);
    assert_non_null(b);
    assert_true(wl_state_advance(s->st, now, b) > 0);
    wl_state_flush(s->st, b);
    if (wl_store_write(s->store, b, 1, err, sizeof err) != 0)
        fail_msg("write: %s", err);
    wl_state_commit(s->st);
    wl_batch_free(b);
}

static void test_expiry_during_slices(void **state)
{
    struct fx *f = *state;
    static struct tping pings[N_PINGS];
    make_stream(pings, N_PINGS);
    size_t half = 210; /* GROUP-aligned */
    for (size_t k = 0; k < half; k += GROUP) {
        write_group(&f->eager, pings + k, GROUP, 1);
        write_group_sliced(&f->lazy, pings + k, GROUP, k == 196, 1);
    }
    assert_int_equal(stage_state(&f->lazy), 1); /* being written */
    int64_t later = pings[half - 1].at + 5 * DAY_MS; /* past install_ttl */
    tick(&f->eager, later);
    tick(&f->lazy, later);
    assert_false(wl_state_checkpoint_busy(f->lazy.st));
    assert_int_equal(stage_state(&f->lazy), 0);
    for (size_t k = half, g = 0; k < N_PINGS; k += GROUP, g++) {
        size_t n = N_PINGS - k < GROUP ? N_PINGS - k : GROUP;
        write_group(&f->eager, pings + k, n, 1);
        write_group_sliced(&f->lazy, pings + k, n, g % 4 == 0, 6);
    }
    final_flush(&f->eager);
    final_flush(&f->lazy);
    assert_int_equal(stage_state(&f->lazy), 0);
    assert_int_equal(compare_cf(f, WL_CF_INSTALLS), N_INSTALLS);
    assert_true(compare_cf(f, WL_CF_ORGS) > 0);
    assert_true(compare_cf(f, WL_CF_DAILY) > 0);
    assert_true(compare_cf(f, WL_CF_SIGNALS) > 0);
    crash(f, &f->lazy);
    assert_int_equal(wl_state_replayed(f->lazy.st), 0);
}

static void one_ping(struct tping *t, const char *id, char org, uint64_t seq, uint32_t users,
                     int64_t at)
{
    wl_ping init = WARMLINE__V1__PING__INIT;
    memset(t, 0, sizeof *t);
    t->p = init;
    snprintf(t->id, sizeof t->id, "%s", id);
    t->p.install_id = t->id;
    memset(t->key, org, sizeof t->key);
    t->p.org_key.data = t->key;
    t->p.org_key.len = 32;
    t->p.seq = seq;
    t->p.active_users_monthly = users;
    t->at = at;
}

/* An install new before a checkpoint began moves, while it is written,
 * into an organization it wrote already: what the install was before the
 * begin must be in that checkpoint all the same (state_checkpoint.c,
 * wl_st_ckpt_install_moving), or a crash after it loses its first_seen. */
static void test_move_into_an_organization_written_already(void **state)
{
    struct fx *f = *state;
    struct tping p[4];
    one_ping(&p[0], "x", 'a', 1, 7, T0);                /* a: pending */
    one_ping(&p[1], "y", 'b', 1, 5, T0 + 1000);         /* b: written first */
    one_ping(&p[2], "x", 'b', 2, 9, T0 + 2 * DAY_MS);   /* x moves into b */
    one_ping(&p[3], "z", 'c', 1, 3, T0 + 2 * DAY_MS + 1);
    for (int i = 0; i < 4; i++)
        write_group(&f->eager, &p[i], 1, 1);
    write_group(&f->lazy, &p[0], 1, 0);
    write_group(&f->lazy, &p[1], 1, 0);
    /* begins: the dirty list is b (marked last), then a; the first slice
     * takes b */
    uint64_t records = 0;
    struct wl_batch *b = wl_batch_new(f->lazy.store);
    char err[256];
    wl_state_checkpoint_begin(f->lazy.st, T0, b);
    assert_int_equal(wl_state_checkpoint_step(f->lazy.st, 1, b, &records), 0);
    assert_int_equal(wl_store_write(f->lazy.store, b, 1, err, sizeof err), 0);
    wl_state_commit(f->lazy.st);
    wl_batch_free(b);
    write_group_sliced(&f->lazy, &p[2], 1, 0, 0);       /* the move, no slice */
    write_group_sliced(&f->lazy, &p[3], 1, 0, 100);     /* the rest: whole */
    assert_false(wl_state_checkpoint_busy(f->lazy.st));
    assert_int_equal(meta_u64(&f->lazy, "state_seq"), 2);
    crash(f, &f->lazy);
    assert_int_equal(wl_state_replayed(f->lazy.st), 2);
    compare_memory(f);
    final_flush(&f->eager);
    final_flush(&f->lazy);
    assert_int_equal(compare_cf(f, WL_CF_INSTALLS), 3);
    assert_int_equal(compare_cf(f, WL_CF_ORGS), 2);
}

/* Never flushed until the end, never crashed: the stage alone. */
static void test_lazy_without_crash(void **state)
{
    run(*state, 0, 0);
}

/* Crashes between rare flushes: each reload replays what the records lack. */
static void test_crashes_between_flushes(void **state)
{
    run(*state, 9, 4);
}

/* Crashes with no flush ever: each reload replays from the beginning. */
static void test_crashes_without_flushes(void **state)
{
    run(*state, 23, 0);
}

/* The records on disk after a crash lag; a reload is exact anyway, and the
 * records say which ingest sequence they are exact for. */
static void test_state_seq_marks_the_flush(void **state)
{
    struct fx *f = *state;
    static struct tping pings[40];
    make_stream(pings, 40);
    write_group(&f->lazy, pings, 10, 1);
    write_group(&f->lazy, pings + 10, 10, 0);
    assert_int_equal(meta_u64(&f->lazy, "state_seq"), 10);
    assert_int_equal(meta_u64(&f->lazy, "ingest_seq"), 20);
    assert_int_equal(wl_state_state_seq(f->lazy.st), 10);
    assert_true(wl_state_dirty(f->lazy.st));
    crash(f, &f->lazy);
    assert_int_equal(wl_state_replayed(f->lazy.st), 10);
    assert_int_equal(wl_state_ingest_seq(f->lazy.st), 20);
    assert_true(wl_state_dirty(f->lazy.st));
    assert_true(wl_state_dirty_installs(f->lazy.st) > 0);
    final_flush(&f->lazy);
    assert_int_equal(meta_u64(&f->lazy, "state_seq"), 20);
    assert_false(wl_state_dirty(f->lazy.st));
    crash(f, &f->lazy);
    assert_int_equal(wl_state_replayed(f->lazy.st), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_lazy_without_crash),
        T(test_crashes_between_flushes),
        T(test_crashes_without_flushes),
        T(test_state_seq_marks_the_flush),
        T(test_slices_without_crash),
        T(test_crashes_during_slices),
        T(test_crashes_in_larger_slices),
        T(test_crashes_at_every_slice),
        T(test_move_into_an_organization_written_already),
        T(test_whole_flush_finishes_slices),
        T(test_expiry_during_slices),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
