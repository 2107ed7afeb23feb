/* Unit tests for collector/aggregate.h with a real store in a temporary
 * directory: apply + flush + write + commit, dedup, organization totals,
 * installs moving between organizations, and reloading from disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aggregate.h"
#include "rules.h"
#include "records.pb-c.h"
#include "tmpdir.h"

typedef Warmline__Store__V1__OrgState org_rec;
typedef Warmline__Store__V1__InstallState install_rec;
typedef Warmline__Store__V1__StoredPing ping_rec;

/* ---- fixture: a store and an empty state ---- */

struct fx {
    char root[64];
    char db[128];
    struct wl_store *store;
    struct wl_state *st;
};

/* No rules; installs count for a long time (the times here are small). */
static const struct wl_state_opts test_opts = {
    .install_ttl_ms = 1000ULL * 86400 * 3650,
    .score_half_life_ms = 14ULL * 86400 * 1000,
    .rules = NULL,
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[512];
    if (f == NULL)
        return -1;
    snprintf(f->root, sizeof f->root, "/tmp/wl-test-aggregate-XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    snprintf(f->db, sizeof f->db, "%s/db", f->root);
    if (wl_store_open(f->db, WL_STORE_PRIMARY, &f->store, err, sizeof err) != 0) {
        print_error("store: %s\n", err);
        return -1;
    }
    if (wl_state_load(f->store, &test_opts, &f->st, err, sizeof err) != 0) {
        print_error("state: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    wl_state_free(f->st);
    wl_store_close(f->store);
    int rc = wl_test_rmtree(f->root);
    free(f);
    return rc;
}

/* ---- pings ---- */

/* A ping that owns its strings; counts[c] = base + c for every count. */
struct tping {
    wl_ping p;
    char id[65];
    uint8_t key[32];
};

static void tping_init(struct tping *t, const char *id, int key_byte, uint64_t seq,
                       uint64_t base)
{
    wl_ping init = WARMLINE__V1__PING__INIT;
    memset(t, 0, sizeof *t);
    t->p = init;
    snprintf(t->id, sizeof t->id, "%s", id);
    t->p.install_id = t->id;
    if (key_byte >= 0) {
        memset(t->key, key_byte, sizeof t->key);
        t->p.org_key.data = t->key;
        t->p.org_key.len = 32;
    }
    t->p.seq = seq;
    t->p.version = "9.11";
    uint64_t v = base;
#define SET_COUNT(name) t->p.name = (uint32_t)(v++);
    WL_COUNT_FIELDS(SET_COUNT)
#undef SET_COUNT
    t->p.posts = base * 1000 + 14;
}

static void expected_counts(uint64_t base, uint64_t out[WL_N_COUNTS])
{
    for (int c = 0; c < WL_N_COUNTS; c++)
        out[c] = base + (uint64_t)c;
    out[WL_COUNT_posts] = base * 1000 + 14;
}

/* One group: apply every ping, flush, write with sync, commit. Results go
 * into res (may be NULL). */
static void group(struct fx *f, struct tping **pings, size_t n, int64_t received_at,
                  enum wl_apply *res)
{
    char err[512] = "";
    struct wl_batch *b = wl_batch_new(f->store);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++) {
        enum wl_apply r = wl_state_apply(f->st, &pings[i]->p, received_at, received_at, b);
        if (res)
            res[i] = r;
    }
    wl_state_flush(f->st, b);
    if (wl_store_write(f->store, b, 1, err, sizeof err) != 0)
        fail_msg("write: %s", err);
    wl_state_commit(f->st);
    wl_batch_free(b);
}

static enum wl_apply apply1(struct fx *f, struct tping *t, int64_t received_at)
{
    enum wl_apply r;
    struct tping *one[1] = {t};
    group(f, one, 1, received_at, &r);
    return r;
}

/* ---- reading records back ---- */

static size_t org_id_of(uint8_t *out, int key_byte, const char *install_id)
{
    uint8_t key[32];
    memset(key, key_byte, sizeof key);
    return wl_org_id(out, key_byte >= 0 ? key : NULL, key_byte >= 0 ? 32 : 0, install_id,
                     strlen(install_id));
}

/* NULL when absent. */
static org_rec *get_org(struct fx *f, int key_byte, const char *install_id)
{
    uint8_t id[WL_ORG_ID_MAX];
    size_t idlen = org_id_of(id, key_byte, install_id);
    char *val = NULL, err[256];
    size_t vlen = 0;
    int rc = wl_store_get(f->store, WL_CF_ORGS, id, idlen, &val, &vlen, err, sizeof err);
    if (rc == -ENOENT)
        return NULL;
    assert_int_equal(rc, 0);
    org_rec *o = warmline__store__v1__org_state__unpack(NULL, vlen, (uint8_t *)val);
    free(val);
    assert_non_null(o);
    assert_int_equal(o->org.len, idlen);
    assert_memory_equal(o->org.data, id, idlen);
    return o;
}

static install_rec *get_install(struct fx *f, const char *install_id)
{
    char *val = NULL, err[256];
    size_t vlen = 0;
    int rc = wl_store_get(f->store, WL_CF_INSTALLS, install_id, strlen(install_id), &val,
                          &vlen, err, sizeof err);
    if (rc == -ENOENT)
        return NULL;
    assert_int_equal(rc, 0);
    install_rec *r = warmline__store__v1__install_state__unpack(NULL, vlen, (uint8_t *)val);
    free(val);
    assert_non_null(r);
    /* the record names its latest ping; the log holds it (as the account
     * view reads it) */
    assert_null(r->last_ping);
    assert_int_equal(r->n_counts, WL_N_COUNTS);
    r->last_ping = wl_latest_ping_read(f->store, NULL, r->last_ingest_seq, r->install_id);
    return r;
}

static ping_rec *get_ping(struct fx *f, uint64_t ingest_seq)
{
    uint8_t key[8];
    char *val = NULL, err[256];
    size_t vlen = 0;
    wl_be64_put(key, ingest_seq);
    int rc = wl_store_get(f->store, WL_CF_PINGS, key, 8, &val, &vlen, err, sizeof err);
    if (rc == -ENOENT)
        return NULL;
    assert_int_equal(rc, 0);
    ping_rec *r = warmline__store__v1__stored_ping__unpack(NULL, vlen, (uint8_t *)val);
    free(val);
    assert_non_null(r);
    return r;
}

static uint64_t stored_ingest_seq(struct fx *f)
{
    char *val = NULL, err[256];
    size_t vlen = 0;
    if (wl_store_get(f->store, WL_CF_META, "ingest_seq", 10, &val, &vlen, err, sizeof err) != 0)
        return 0;
    assert_int_equal(vlen, 8);
    uint64_t v = wl_be64_get(val);
    free(val);
    return v;
}

static uint64_t count_cf(struct fx *f, enum wl_cf cf)
{
    struct wl_iter *it = wl_iter_new(f->store, cf);
    uint64_t n = 0;
    for (wl_iter_seek_first(it); wl_iter_valid(it); wl_iter_next(it))
        n++;
    wl_iter_free(it);
    return n;
}

static void assert_totals(const org_rec *o, const uint64_t want[WL_N_COUNTS])
{
    assert_int_equal(o->n_totals, WL_N_COUNTS);
    for (int c = 0; c < WL_N_COUNTS; c++) {
        if (o->totals[c] != want[c])
            fail_msg("totals[%s] = %llu, want %llu", wl_count_names[c],
                     (unsigned long long)o->totals[c], (unsigned long long)want[c]);
    }
}

/* The totals of an org whose installs report bases b[0..n). */
static void sum_bases(const uint64_t *bases, size_t n, uint64_t out[WL_N_COUNTS])
{
    memset(out, 0, WL_N_COUNTS * sizeof out[0]);
    for (size_t i = 0; i < n; i++) {
        uint64_t c[WL_N_COUNTS];
        expected_counts(bases[i], c);
        for (int k = 0; k < WL_N_COUNTS; k++)
            out[k] += c[k];
    }
}

static int has_install(const org_rec *o, const char *id)
{
    for (size_t i = 0; i < o->n_install_ids; i++) {
        if (strcmp(o->install_ids[i], id) == 0)
            return 1;
    }
    return 0;
}

/* ---- tests ---- */

static void test_empty_state(void **state)
{
    struct fx *f = *state;
    assert_int_equal(wl_state_ingest_seq(f->st), 0);
    assert_int_equal(wl_state_n_installs(f->st), 0);
    assert_int_equal(wl_state_n_orgs(f->st), 0);
}

static void test_first_ping_records(void **state)
{
    struct fx *f = *state;
    struct tping a;
    uint64_t want[WL_N_COUNTS];
    tping_init(&a, "install-a", 0x11, 5, 100);

    assert_int_equal(apply1(f, &a, 1700000000000), WL_APPLY_ACCEPTED);
    assert_int_equal(wl_state_ingest_seq(f->st), 1);
    assert_int_equal(wl_state_n_installs(f->st), 1);
    assert_int_equal(wl_state_n_orgs(f->st), 1);
    assert_int_equal(stored_ingest_seq(f), 1);

    /* pings CF: the raw ping on ingest seq 1 */
    ping_rec *pr = get_ping(f, 1);
    assert_non_null(pr);
    assert_int_equal(pr->ingest_seq, 1);
    assert_int_equal(pr->received_at, 1700000000000);
    assert_int_equal(pr->org.len, 33);
    assert_int_equal(pr->org.data[0], 'k');
    assert_non_null(pr->ping);
    assert_string_equal(pr->ping->install_id, "install-a");
    assert_int_equal(pr->ping->seq, 5);
    assert_int_equal(pr->ping->posts, a.p.posts);
    warmline__store__v1__stored_ping__free_unpacked(pr, NULL);
    assert_null(get_ping(f, 2));

    /* installs CF */
    install_rec *ir = get_install(f, "install-a");
    assert_non_null(ir);
    assert_string_equal(ir->install_id, "install-a");
    assert_int_equal(ir->last_seq, 5);
    assert_int_equal(ir->last_ingest_seq, 1);
    assert_int_equal(ir->first_seen, 1700000000000);
    assert_int_equal(ir->last_seen, 1700000000000);
    assert_int_equal(ir->org.len, 33);
    assert_non_null(ir->last_ping);
    assert_int_equal(ir->last_ping->seq, 5);
    assert_int_equal(ir->last_ping->registered_users, 100);
    warmline__store__v1__install_state__free_unpacked(ir, NULL);

    /* orgs CF */
    org_rec *o = get_org(f, 0x11, "install-a");
    assert_non_null(o);
    assert_int_equal(o->n_install_ids, 1);
    assert_string_equal(o->install_ids[0], "install-a");
    assert_int_equal(o->first_seen, 1700000000000);
    assert_int_equal(o->last_seen, 1700000000000);
    expected_counts(100, want);
    assert_totals(o, want);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
}

static void test_duplicates_write_nothing(void **state)
{
    struct fx *f = *state;
    struct tping a5, a5again, a4, a1;
    char err[256];
    tping_init(&a5, "install-a", 0x11, 5, 100);
    tping_init(&a5again, "install-a", 0x11, 5, 999);
    tping_init(&a4, "install-a", 0x11, 4, 999);
    tping_init(&a1, "install-a", -1, 1, 999); /* even with another org */
    assert_int_equal(apply1(f, &a5, 1000), WL_APPLY_ACCEPTED);

    struct wl_batch *b = wl_batch_new(f->store);
    assert_int_equal(wl_state_apply(f->st, &a5again.p, 2000, 2000, b), WL_APPLY_DUPLICATE);
    assert_int_equal(wl_state_apply(f->st, &a4.p, 2000, 2000, b), WL_APPLY_DUPLICATE);
    assert_int_equal(wl_state_apply(f->st, &a1.p, 2000, 2000, b), WL_APPLY_DUPLICATE);
    assert_int_equal(wl_batch_count(b), 0); /* nothing staged */
    assert_int_equal(wl_state_ingest_seq(f->st), 1);
    assert_int_equal(wl_state_n_orgs(f->st), 1);
    wl_state_flush(f->st, b);
    assert_int_equal(wl_store_write(f->store, b, 1, err, sizeof err), 0);
    wl_state_commit(f->st);
    wl_batch_free(b);

    /* On disk nothing changed but the ingest seq marker (still 1). */
    assert_int_equal(count_cf(f, WL_CF_PINGS), 1);
    assert_int_equal(stored_ingest_seq(f), 1);
    install_rec *ir = get_install(f, "install-a");
    assert_int_equal(ir->last_seq, 5);
    assert_int_equal(ir->last_seen, 1000);
    assert_int_equal(ir->last_ping->registered_users, 100);
    warmline__store__v1__install_state__free_unpacked(ir, NULL);
    assert_null(get_org(f, -1, "install-a"));
    org_rec *o = get_org(f, 0x11, "install-a");
    uint64_t want[WL_N_COUNTS];
    expected_counts(100, want);
    assert_totals(o, want);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
}

static void test_duplicate_within_one_group(void **state)
{
    struct fx *f = *state;
    struct tping a1, a2, a2b, a1b;
    enum wl_apply r[4];
    tping_init(&a1, "install-a", 0x11, 1, 10);
    tping_init(&a2, "install-a", 0x11, 2, 20);
    tping_init(&a2b, "install-a", 0x11, 2, 99);
    tping_init(&a1b, "install-a", 0x11, 1, 99);
    struct tping *g[] = {&a1, &a2, &a2b, &a1b};
    group(f, g, 4, 500, r);
    assert_int_equal(r[0], WL_APPLY_ACCEPTED);
    assert_int_equal(r[1], WL_APPLY_ACCEPTED);
    assert_int_equal(r[2], WL_APPLY_DUPLICATE);
    assert_int_equal(r[3], WL_APPLY_DUPLICATE);
    assert_int_equal(wl_state_ingest_seq(f->st), 2);
    assert_int_equal(count_cf(f, WL_CF_PINGS), 2);

    /* The install record holds the group's latest ping; totals are its counts. */
    install_rec *ir = get_install(f, "install-a");
    assert_int_equal(ir->last_seq, 2);
    assert_int_equal(ir->last_ingest_seq, 2);
    assert_int_equal(ir->last_ping->seq, 2);
    assert_int_equal(ir->last_ping->registered_users, 20);
    warmline__store__v1__install_state__free_unpacked(ir, NULL);
    org_rec *o = get_org(f, 0x11, "install-a");
    uint64_t want[WL_N_COUNTS];
    expected_counts(20, want);
    assert_totals(o, want);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
}

static void test_shared_org_sums_latest(void **state)
{
    struct fx *f = *state;
    struct tping a, b, a2, b2;
    uint64_t want[WL_N_COUNTS];

    tping_init(&a, "install-a", 0x22, 1, 100);
    tping_init(&b, "install-b", 0x22, 1, 7);
    assert_int_equal(apply1(f, &a, 1000), WL_APPLY_ACCEPTED);
    assert_int_equal(apply1(f, &b, 2000), WL_APPLY_ACCEPTED);
    assert_int_equal(wl_state_n_installs(f->st), 2);
    assert_int_equal(wl_state_n_orgs(f->st), 1);
    assert_int_equal(count_cf(f, WL_CF_ORGS), 1);

    org_rec *o = get_org(f, 0x22, "");
    assert_non_null(o);
    assert_int_equal(o->n_install_ids, 2);
    assert_true(has_install(o, "install-a"));
    assert_true(has_install(o, "install-b"));
    assert_int_equal(o->first_seen, 1000);
    assert_int_equal(o->last_seen, 2000);
    sum_bases((uint64_t[]){100, 7}, 2, want);
    assert_totals(o, want);
    warmline__store__v1__org_state__free_unpacked(o, NULL);

    /* a's later ping replaces its counts: up */
    tping_init(&a2, "install-a", 0x22, 2, 150);
    assert_int_equal(apply1(f, &a2, 3000), WL_APPLY_ACCEPTED);
    o = get_org(f, 0x22, "");
    sum_bases((uint64_t[]){150, 7}, 2, want);
    assert_totals(o, want);
    assert_int_equal(o->last_seen, 3000);
    assert_int_equal(o->first_seen, 1000);
    warmline__store__v1__org_state__free_unpacked(o, NULL);

    /* b's later ping: down (the delta is negative) */
    tping_init(&b2, "install-b", 0x22, 9, 2);
    assert_int_equal(apply1(f, &b2, 4000), WL_APPLY_ACCEPTED);
    o = get_org(f, 0x22, "");
    sum_bases((uint64_t[]){150, 2}, 2, want);
    assert_totals(o, want);
    warmline__store__v1__org_state__free_unpacked(o, NULL);

    /* and to zero */
    struct tping b3;
    tping_init(&b3, "install-b", 0x22, 10, 0);
#define ZERO(name) b3.p.name = 0;
    WL_COUNT_FIELDS(ZERO)
#undef ZERO
    assert_int_equal(apply1(f, &b3, 5000), WL_APPLY_ACCEPTED);
    o = get_org(f, 0x22, "");
    sum_bases((uint64_t[]){150}, 1, want);
    assert_totals(o, want);
    assert_int_equal(o->n_install_ids, 2); /* b is still a member */
    warmline__store__v1__org_state__free_unpacked(o, NULL);
}

static void test_no_org_key_is_own_org(void **state)
{
    struct fx *f = *state;
    struct tping a, b;
    uint64_t want[WL_N_COUNTS];
    tping_init(&a, "lonely-a", -1, 1, 3);
    tping_init(&b, "lonely-b", -1, 1, 4);
    struct tping *g[] = {&a, &b};
    group(f, g, 2, 100, NULL);
    assert_int_equal(wl_state_n_orgs(f->st), 2);

    org_rec *o = get_org(f, -1, "lonely-a");
    assert_non_null(o);
    assert_int_equal(o->org.len, 1 + strlen("lonely-a"));
    assert_memory_equal(o->org.data, "ilonely-a", o->org.len);
    assert_int_equal(o->n_install_ids, 1);
    assert_string_equal(o->install_ids[0], "lonely-a");
    expected_counts(3, want);
    assert_totals(o, want);
    warmline__store__v1__org_state__free_unpacked(o, NULL);

    o = get_org(f, -1, "lonely-b");
    assert_non_null(o);
    expected_counts(4, want);
    assert_totals(o, want);
    warmline__store__v1__org_state__free_unpacked(o, NULL);

    ping_rec *pr = get_ping(f, 1);
    assert_memory_equal(pr->org.data, "ilonely-a", 9);
    warmline__store__v1__stored_ping__free_unpacked(pr, NULL);
}

static void test_switch_org_key(void **state)
{
    struct fx *f = *state;
    struct tping a1, b1, a2, b2;
    uint64_t want[WL_N_COUNTS];

    tping_init(&a1, "install-a", 0x31, 1, 10);
    tping_init(&b1, "install-b", 0x31, 1, 20);
    struct tping *g[] = {&a1, &b1};
    group(f, g, 2, 100, NULL);

    /* a moves to org 0x32: org 0x31 keeps b only */
    tping_init(&a2, "install-a", 0x32, 2, 11);
    assert_int_equal(apply1(f, &a2, 200), WL_APPLY_ACCEPTED);
    assert_int_equal(wl_state_n_orgs(f->st), 2);
    org_rec *o = get_org(f, 0x31, "");
    assert_non_null(o);
    assert_int_equal(o->n_install_ids, 1);
    assert_string_equal(o->install_ids[0], "install-b");
    expected_counts(20, want);
    assert_totals(o, want);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    o = get_org(f, 0x32, "");
    assert_non_null(o);
    assert_int_equal(o->n_install_ids, 1);
    assert_string_equal(o->install_ids[0], "install-a");
    expected_counts(11, want);
    assert_totals(o, want);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    install_rec *ir = get_install(f, "install-a");
    uint8_t id[WL_ORG_ID_MAX];
    size_t idlen = org_id_of(id, 0x32, "");
    assert_int_equal(ir->org.len, idlen);
    assert_memory_equal(ir->org.data, id, idlen);
    warmline__store__v1__install_state__free_unpacked(ir, NULL);

    /* b follows: org 0x31 is empty, its record is deleted */
    tping_init(&b2, "install-b", 0x32, 2, 21);
    assert_int_equal(apply1(f, &b2, 300), WL_APPLY_ACCEPTED);
    assert_null(get_org(f, 0x31, ""));
    assert_int_equal(wl_state_n_orgs(f->st), 1);
    assert_int_equal(count_cf(f, WL_CF_ORGS), 1);
    o = get_org(f, 0x32, "");
    assert_int_equal(o->n_install_ids, 2);
    sum_bases((uint64_t[]){11, 21}, 2, want);
    assert_totals(o, want);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
}

static void test_switch_from_no_key_to_key(void **state)
{
    struct fx *f = *state;
    struct tping a1, a2;
    uint64_t want[WL_N_COUNTS];
    tping_init(&a1, "install-a", -1, 1, 10);
    assert_int_equal(apply1(f, &a1, 100), WL_APPLY_ACCEPTED);
    org_rec *o = get_org(f, -1, "install-a");
    assert_non_null(o);
    warmline__store__v1__org_state__free_unpacked(o, NULL);

    tping_init(&a2, "install-a", 0x40, 2, 12);
    assert_int_equal(apply1(f, &a2, 200), WL_APPLY_ACCEPTED);
    assert_null(get_org(f, -1, "install-a"));
    assert_int_equal(wl_state_n_orgs(f->st), 1);
    o = get_org(f, 0x40, "");
    assert_non_null(o);
    expected_counts(12, want);
    assert_totals(o, want);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
}

/* Within one group an install moves away and back: nothing is left behind. */
static void test_switch_and_back_in_one_group(void **state)
{
    struct fx *f = *state;
    struct tping a1, b1, a2, a3;
    uint64_t want[WL_N_COUNTS];
    tping_init(&a1, "install-a", 0x51, 1, 10);
    tping_init(&b1, "install-b", 0x51, 1, 1);
    struct tping *g1[] = {&a1, &b1};
    group(f, g1, 2, 100, NULL);

    tping_init(&a2, "install-a", 0x52, 2, 30);
    tping_init(&a3, "install-a", 0x51, 3, 40);
    struct tping *g2[] = {&a2, &a3};
    group(f, g2, 2, 200, NULL);
    assert_null(get_org(f, 0x52, ""));
    assert_int_equal(wl_state_n_orgs(f->st), 1);
    org_rec *o = get_org(f, 0x51, "");
    assert_int_equal(o->n_install_ids, 2);
    sum_bases((uint64_t[]){40, 1}, 2, want);
    assert_totals(o, want);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
}

static void test_reload_from_disk(void **state)
{
    struct fx *f = *state;
    char err[512] = "";
    struct tping p[6];
    uint64_t want[WL_N_COUNTS];

    tping_init(&p[0], "install-a", 0x61, 3, 100);
    tping_init(&p[1], "install-b", 0x61, 8, 200);
    tping_init(&p[2], "install-c", -1, 1, 5);
    tping_init(&p[3], "install-d", 0x62, 1, 1);
    struct tping *g1[] = {&p[0], &p[1], &p[2], &p[3]};
    group(f, g1, 4, 1000, NULL);
    tping_init(&p[4], "install-d", 0x61, 2, 2); /* d moves into 0x61 */
    assert_int_equal(apply1(f, &p[4], 2000), WL_APPLY_ACCEPTED);

    uint64_t seq = wl_state_ingest_seq(f->st);
    uint64_t ninst = wl_state_n_installs(f->st);
    uint64_t norgs = wl_state_n_orgs(f->st);
    assert_int_equal(seq, 5);
    assert_int_equal(ninst, 4);
    assert_int_equal(norgs, 2);

    wl_state_free(f->st);
    f->st = NULL;
    if (wl_state_load(f->store, &test_opts, &f->st, err, sizeof err) != 0)
        fail_msg("reload: %s", err);
    assert_int_equal(wl_state_ingest_seq(f->st), seq);
    assert_int_equal(wl_state_n_installs(f->st), ninst);
    assert_int_equal(wl_state_n_orgs(f->st), norgs);

    /* Dedup survives the reload. */
    struct tping dup;
    tping_init(&dup, "install-b", 0x61, 8, 999);
    assert_int_equal(apply1(f, &dup, 3000), WL_APPLY_DUPLICATE);
    tping_init(&dup, "install-a", 0x61, 2, 999);
    assert_int_equal(apply1(f, &dup, 3000), WL_APPLY_DUPLICATE);
    assert_int_equal(wl_state_ingest_seq(f->st), seq);

    /* A new ping continues the sequence, and the totals were rebuilt: a's
     * new counts replace its old ones in a sum that includes b and d. */
    tping_init(&p[5], "install-a", 0x61, 4, 110);
    assert_int_equal(apply1(f, &p[5], 4000), WL_APPLY_ACCEPTED);
    assert_int_equal(wl_state_ingest_seq(f->st), seq + 1);
    ping_rec *pr = get_ping(f, seq + 1);
    assert_non_null(pr);
    assert_int_equal(pr->ping->seq, 4);
    warmline__store__v1__stored_ping__free_unpacked(pr, NULL);

    org_rec *o = get_org(f, 0x61, "");
    assert_int_equal(o->n_install_ids, 3);
    sum_bases((uint64_t[]){110, 200, 2}, 3, want);
    assert_totals(o, want);
    assert_int_equal(o->first_seen, 1000);
    assert_int_equal(o->last_seen, 4000);
    warmline__store__v1__org_state__free_unpacked(o, NULL);

    /* Reload once more on a fresh store handle too. */
    wl_state_free(f->st);
    f->st = NULL;
    wl_store_close(f->store);
    f->store = NULL;
    if (wl_store_open(f->db, WL_STORE_PRIMARY, &f->store, err, sizeof err) != 0)
        fail_msg("reopen: %s", err);
    if (wl_state_load(f->store, &test_opts, &f->st, err, sizeof err) != 0)
        fail_msg("reload: %s", err);
    assert_int_equal(wl_state_ingest_seq(f->st), seq + 1);
    assert_int_equal(wl_state_n_installs(f->st), 4);
    assert_int_equal(wl_state_n_orgs(f->st), 2);
}

/* The same pings must leave the same organization record whether or not the
 * collector restarted (wl_state_free + wl_state_load) in between. */
static org_rec *run_scenario(const char *dir, int restart)
{
    struct fx f;
    char err[512] = "";
    memset(&f, 0, sizeof f);
    if (wl_store_open(dir, WL_STORE_PRIMARY, &f.store, err, sizeof err) != 0 ||
        wl_state_load(f.store, &test_opts, &f.st, err, sizeof err) != 0)
        fail_msg("%s: %s", dir, err);
    struct tping a1, b1, c1, a2, b2;
    tping_init(&a1, "install-a", 0x71, 1, 10); /* the org's earliest install */
    tping_init(&b1, "install-b", 0x71, 1, 20);
    tping_init(&c1, "install-c", 0x71, 1, 30);
    tping_init(&a2, "install-a", 0x72, 2, 11); /* a leaves */
    tping_init(&b2, "install-b", 0x71, 2, 21);
    assert_int_equal(apply1(&f, &a1, 1000), WL_APPLY_ACCEPTED);
    assert_int_equal(apply1(&f, &b1, 2000), WL_APPLY_ACCEPTED);
    assert_int_equal(apply1(&f, &c1, 5000), WL_APPLY_ACCEPTED);
    assert_int_equal(apply1(&f, &a2, 3000), WL_APPLY_ACCEPTED);
    if (restart) {
        wl_state_free(f.st);
        f.st = NULL;
        if (wl_state_load(f.store, &test_opts, &f.st, err, sizeof err) != 0)
            fail_msg("reload: %s", err);
    }
    assert_int_equal(apply1(&f, &b2, 4000), WL_APPLY_ACCEPTED);
    org_rec *o = get_org(&f, 0x71, "");
    assert_non_null(o);
    wl_state_free(f.st);
    wl_store_close(f.store);
    return o;
}

static void test_restart_does_not_change_org_record(void **state)
{
    struct fx *f = *state;
    char d1[160], d2[160];
    snprintf(d1, sizeof d1, "%s/no-restart", f->root);
    snprintf(d2, sizeof d2, "%s/restart", f->root);
    org_rec *a = run_scenario(d1, 0);
    org_rec *b = run_scenario(d2, 1);

    assert_int_equal(a->n_totals, b->n_totals);
    for (size_t i = 0; i < a->n_totals; i++)
        assert_int_equal(a->totals[i], b->totals[i]);
    assert_int_equal(a->n_install_ids, 2);
    assert_int_equal(b->n_install_ids, 2);
    for (size_t i = 0; i < a->n_install_ids; i++)
        assert_true(has_install(b, a->install_ids[i]));
    int bad = 0;
    if (a->first_seen != b->first_seen) {
        print_error("first_seen: %lld without a restart, %lld with one\n",
                    (long long)a->first_seen, (long long)b->first_seen);
        bad++;
    }
    if (a->last_seen != b->last_seen) {
        print_error("last_seen: %lld without a restart, %lld with one\n",
                    (long long)a->last_seen, (long long)b->last_seen);
        bad++;
    }
    warmline__store__v1__org_state__free_unpacked(a, NULL);
    warmline__store__v1__org_state__free_unpacked(b, NULL);
    if (bad)
        fail_msg("the org record depends on whether the collector restarted");
}

/* A record that does not decode stops the load with a reason. */
static void test_reload_corrupt_install(void **state)
{
    struct fx *f = *state;
    char err[512] = "";
    struct wl_batch *b = wl_batch_new(f->store);
    wl_batch_put(b, WL_CF_INSTALLS, "broken", 6, "\xff\xff\xff", 3);
    assert_int_equal(wl_store_write(f->store, b, 1, err, sizeof err), 0);
    wl_batch_free(b);
    struct wl_state *st = NULL;
    int rc = wl_state_load(f->store, &test_opts, &st, err, sizeof err);
    assert_true(rc < 0);
    assert_null(st);
    assert_non_null(strstr(err, "broken"));
}


/* Event times in any order (an unsorted import): an install counts while
 * its last ping is within install_ttl of the clock, the latest event time
 * seen. 3000 installs, each its own organization, pinged in 4 rounds a
 * quarter TTL apart, shuffled within each round; a third skip the last
 * round. Then the clock moves so that the limit falls inside round 2, and
 * exactly the skippers pinged early in round 2 must stop counting. */
static void test_ttl_with_unordered_event_times(void **state)
{
    struct fx *f = *state;
    char err[512] = "";
    enum { N = 3000, ROUNDS = 4 };
    const int64_t ttl = 1000000, base = 10000000;
    static int64_t last[N];
    static int order[N];
    struct wl_state_opts opts = test_opts;
    opts.install_ttl_ms = (uint64_t)ttl;
    wl_state_free(f->st);
    f->st = NULL;
    assert_int_equal(wl_state_load(f->store, &opts, &f->st, err, sizeof err), 0);

    unsigned seed = 12345;
#define RND() (seed = seed * 1103515245u + 12345u, (seed >> 8))
    struct wl_batch *b = wl_batch_new(f->store);
    int64_t clock = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N; i++)
            order[i] = i;
        for (int i = N - 1; i > 0; i--) { /* shuffle: unordered within the round */
            int j = (int)(RND() % (unsigned)(i + 1)), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int k = 0; k < N; k++) {
            int i = order[k];
            if (round == ROUNDS - 1 && i % 3 == 0)
                continue; /* a third skip the last round */
            struct tping t;
            char id[32];
            snprintf(id, sizeof id, "u-%05d", i);
            tping_init(&t, id, -1, (uint64_t)round + 1, 1);
            int64_t at = base + round * ttl / 4 + (int64_t)(RND() % (unsigned)(ttl / 4));
            assert_int_equal(wl_state_apply(f->st, &t.p, at, at, b), WL_APPLY_ACCEPTED);
            last[i] = at > last[i] ? at : last[i];
            clock = at > clock ? at : clock;
            wl_state_flush(f->st, b); /* while the ping is alive */
            assert_int_equal(wl_store_write(f->store, b, 0, err, sizeof err), 0);
            wl_state_commit(f->st);
            wl_batch_clear(b);
        }
    }
#undef RND
    int64_t now = base + 2 * ttl / 4 + ttl / 8 + ttl; /* limit: the middle of round 2 */
    assert_true(now > clock);
    wl_state_advance(f->st, now, b);
    wl_state_flush(f->st, b);
    assert_int_equal(wl_store_write(f->store, b, 1, err, sizeof err), 0);
    wl_state_commit(f->st);
    wl_batch_free(b);

    int bad = 0, expired = 0;
    for (int i = 0; i < N; i++) {
        uint8_t org[WL_ORG_ID_MAX];
        char id[32], *val = NULL;
        size_t vlen;
        snprintf(id, sizeof id, "u-%05d", i);
        size_t olen = wl_org_id(org, NULL, 0, id, strlen(id));
        assert_int_equal(wl_store_get(f->store, WL_CF_ORGS, org, olen, &val, &vlen, err,
                                      sizeof err), 0);
        Warmline__Store__V1__OrgState *o =
            warmline__store__v1__org_state__unpack(NULL, vlen, (const uint8_t *)val);
        assert_non_null(o);
        int want = last[i] >= now - ttl;
        expired += !want;
        if ((int)o->installs_counting != want && bad++ < 5)
            print_error("install %s last_seen %lld now %lld: counting %u, want %d\n", id,
                        (long long)last[i], (long long)now, o->installs_counting, want);
        warmline__store__v1__org_state__free_unpacked(o, NULL);
        free(val);
    }
    assert_int_equal(bad, 0);
    assert_true(expired > 100 && expired < N / 3); /* both sides are tested */
}

/* An organization's record lists its first WL_ORG_INSTALL_IDS_MAX installs
 * and counts them all: a record must not grow with a huge organization. */
static void test_large_org_record_is_capped(void **state)
{
    struct fx *f = *state;
    size_t n = WL_ORG_INSTALL_IDS_MAX + 5;
    struct tping *pings = calloc(n, sizeof *pings);
    struct tping **ptrs = calloc(n, sizeof *ptrs);
    assert_non_null(pings);
    assert_non_null(ptrs);
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "big-%05zu", i);
        tping_init(&pings[i], id, 0x42, 1, 1);
        ptrs[i] = &pings[i];
    }
    group(f, ptrs, n, 1000, NULL);
    org_rec *o = get_org(f, 0x42, "big-00000");
    assert_non_null(o);
    assert_int_equal(o->n_install_ids, WL_ORG_INSTALL_IDS_MAX);
    assert_int_equal(o->installs_total, n);
    assert_int_equal(WL_ORG_INSTALLS_TOTAL(o), n);
    assert_int_equal(o->installs_counting, n);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    free(ptrs);
    free(pings);
}

/* ---- bounded work and memory (issue: no input costs more than its size) ---- */

/* A state with its own options, on the fixture's store (replacing its state). */
static void reload_with(struct fx *f, const struct wl_state_opts *opts)
{
    char err[512];
    wl_state_free(f->st);
    f->st = NULL;
    if (wl_state_load(f->store, opts, &f->st, err, sizeof err) != 0)
        fail_msg("state: %s", err);
}

/* A forget's write: what it put into b, the state flushed when it is dirty
 * (an organization that keeps installs), then committed; b and fg go. */
static void write_forget(struct fx *f, struct wl_batch *b, struct wl_forgotten *fg)
{
    char err[512];
    if (wl_state_dirty(f->st))
        wl_state_flush(f->st, b);
    if (wl_store_write(f->store, b, 1, err, sizeof err) != 0)
        fail_msg("write: %s", err);
    wl_state_commit(f->st);
    wl_forgotten_free(fg);
    wl_batch_free(b);
}

static void forget_install(struct fx *f, const char *id)
{
    struct wl_forgotten fg;
    struct wl_batch *b = wl_batch_new(f->store);
    assert_int_equal(wl_state_forget_install(f->st, id, b, &fg), 0);
    write_forget(f, b, &fg);
}

/* Past max_org_features distinct features an organization's tallies take no
 * more (the rest are counted), yet a feature a rule tests is still tallied:
 * nobody can crowd out a real organization's has_feature signal. */
static void test_feature_tally_cap_keeps_rule_features(void **state)
{
    struct fx *f = *state;
    struct wl_ruleset rs;
    char err[256];
    memset(&rs, 0, sizeof rs);
    if (wl_ruleset_add(&rs, "saml", "has_feature(saml)", NULL, NULL, NULL, NULL, err,
                       sizeof err) != 0)
        fail_msg("rule: %s", err);
    struct wl_state_opts opts = test_opts;
    opts.rules = &rs;
    opts.max_org_features = 8;
    reload_with(f, &opts);

    /* Five installs of one organization, 40 distinct features in all. */
    char names[40][16];
    char *lists[5][8];
    struct tping t[5];
    struct tping *g[5];
    for (int i = 0; i < 5; i++) {
        char id[32];
        snprintf(id, sizeof id, "crowd-%d", i);
        tping_init(&t[i], id, 0x51, 1, 1);
        for (int k = 0; k < 8; k++) {
            snprintf(names[i * 8 + k], sizeof names[0], "junk-%02d", i * 8 + k);
            lists[i][k] = names[i * 8 + k];
        }
        t[i].p.features = lists[i];
        t[i].p.n_features = 8;
        g[i] = &t[i];
    }
    group(f, g, 5, 1000, NULL);
    assert_int_equal(wl_state_untallied(f->st), 32);
    org_rec *o = get_org(f, 0x51, "");
    assert_int_equal(o->n_features, 8);
    assert_int_equal(o->signals, 0);
    warmline__store__v1__org_state__free_unpacked(o, NULL);

    /* The rule's feature arrives last, and still counts. */
    struct tping real;
    char *saml[] = {"saml"};
    tping_init(&real, "real-admin", 0x51, 1, 1);
    real.p.features = saml;
    real.p.n_features = 1;
    assert_int_equal(apply1(f, &real, 2000), WL_APPLY_ACCEPTED);
    o = get_org(f, 0x51, "");
    assert_int_equal(o->signals, 1);
    int found = 0;
    for (size_t i = 0; i < o->n_features; i++)
        found |= strcmp(o->features[i], "saml") == 0;
    assert_true(found);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    wl_state_free(f->st);
    f->st = NULL;
    wl_ruleset_clear(&rs);
    reload_with(f, &test_opts);
}

/* has_feature and edition == read a bit per rule operand that the
 * organization's tallies keep: it stays while any counting install has the
 * feature, goes with the last one, and comes back with the next, whatever
 * else the installs carry. */
static void test_rule_operands_follow_the_tallies(void **state)
{
    struct fx *f = *state;
    struct wl_ruleset rs;
    char err[256];
    memset(&rs, 0, sizeof rs);
    if (wl_ruleset_add(&rs, "saml", "has_feature(saml)", NULL, "0", NULL, NULL, err,
                       sizeof err) != 0 ||
        wl_ruleset_add(&rs, "e", "edition == \"enterprise\" and not has_feature(licensed)",
                       NULL, "0", NULL, NULL, err, sizeof err) != 0)
        fail_msg("rule: %s", err);
    struct wl_state_opts opts = test_opts;
    opts.rules = &rs;
    reload_with(f, &opts);

    char *saml[] = {"other", "saml"}, *licensed[] = {"licensed"};
    struct tping a, b;
    uint64_t seq = 1;
    tping_init(&a, "op-a", 0x53, seq, 1);
    a.p.features = saml;
    a.p.n_features = 2;
    assert_int_equal(apply1(f, &a, 1000), WL_APPLY_ACCEPTED); /* saml fires */
    tping_init(&b, "op-b", 0x53, seq, 1);
    b.p.features = &saml[1];
    b.p.n_features = 1;
    b.p.edition = "enterprise";
    assert_int_equal(apply1(f, &b, 1001), WL_APPLY_ACCEPTED); /* e fires */
    tping_init(&a, "op-a", 0x53, ++seq, 1); /* a drops saml: b still has it */
    assert_int_equal(apply1(f, &a, 1002), WL_APPLY_ACCEPTED);
    org_rec *o = get_org(f, 0x53, "");
    assert_int_equal(o->signals, 2);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    tping_init(&b, "op-b", 0x53, ++seq, 1); /* the last saml goes: saml re-arms; licensed */
    b.p.features = licensed;
    b.p.n_features = 1;
    assert_int_equal(apply1(f, &b, 1003), WL_APPLY_ACCEPTED);
    tping_init(&a, "op-a", 0x53, ++seq, 1); /* saml back: fires again */
    a.p.features = &saml[1];
    a.p.n_features = 1;
    a.p.edition = "enterprise";
    assert_int_equal(apply1(f, &a, 1004), WL_APPLY_ACCEPTED);
    o = get_org(f, 0x53, "");
    assert_int_equal(o->signals, 3); /* licensed (b) holds e back */
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    tping_init(&b, "op-b", 0x53, ++seq, 1); /* b drops licensed: e fires */
    assert_int_equal(apply1(f, &b, 1005), WL_APPLY_ACCEPTED);
    o = get_org(f, 0x53, "");
    assert_int_equal(o->signals, 4);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    wl_state_free(f->st);
    f->st = NULL;
    wl_ruleset_clear(&rs);
    reload_with(f, &test_opts);
}

/* Interned strings are held while something stores them, not forever: one
 * install sending a new version and new features in every ping holds what
 * its latest ping (and its organization's bounded lists) name, and nothing
 * once it is forgotten. */
static void test_interned_strings_are_released(void **state)
{
    struct fx *f = *state;
    uint64_t most = 0;
    assert_int_equal(wl_state_interned_bytes(f->st), 0);
    for (int i = 1; i <= 200; i++) {
        struct tping t;
        char version[32], fa[32], fb[32];
        char *feats[] = {fa, fb};
        tping_init(&t, "churner", 0x52, (uint64_t)i, 1);
        snprintf(version, sizeof version, "v-%d", i);
        snprintf(fa, sizeof fa, "feature-a-%d", i);
        snprintf(fb, sizeof fb, "feature-b-%d", i);
        t.p.version = version;
        t.p.features = feats;
        t.p.n_features = 2;
        assert_int_equal(apply1(f, &t, 1000 + i), WL_APPLY_ACCEPTED);
        if (wl_state_interned(f->st) > most)
            most = wl_state_interned(f->st);
    }
    /* version + 2 features + their list, and the 16 versions the organization
     * remembers: about 20, whatever the number of pings. */
    assert_true(most <= 4 + 16);
    assert_true(wl_state_interned_bytes(f->st) < 4096);
    forget_install(f, "churner");
    assert_int_equal(wl_state_interned(f->st), 0);
    assert_int_equal(wl_state_interned_bytes(f->st), 0);
}

/* Installs move between organizations in any order: each organization's
 * members stay exact (the O(1) detach swaps positions), and a restart
 * agrees. */
static void test_many_moves_keep_members(void **state)
{
    struct fx *f = *state;
    enum { N = 64 };
    uint64_t seq[N] = {0};
    int where[N];
    for (int round = 0; round < 6; round++) {
        struct tping t[N];
        struct tping *g[N];
        for (int i = 0; i < N; i++) {
            where[i] = (i * 7 + round * 3) % 3; /* orgs 0x60, 0x61, 0x62 */
            char id[16];
            snprintf(id, sizeof id, "mover-%02d", i);
            tping_init(&t[i], id, 0x60 + where[i], ++seq[i], 1);
            g[i] = &t[i];
        }
        group(f, g, N, 1000 + round, NULL);
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int o = 0; o < 3; o++) {
            uint8_t id[WL_ORG_ID_MAX];
            size_t idlen = org_id_of(id, 0x60 + o, "");
            char **ids = NULL;
            size_t n = wl_state_org_install_ids(f->st, id, idlen, &ids);
            size_t want = 0;
            for (int i = 0; i < N; i++)
                want += where[i] == o;
            assert_int_equal(n, want);
            for (size_t k = 0; k < n; k++) {
                int i = atoi(ids[k] + strlen("mover-"));
                assert_int_equal(where[i], o);
                free(ids[k]);
            }
            free(ids);
        }
        reload_with(f, &test_opts); /* the same from disk */
    }
}

/* The record's features of organization key_byte, as one comma-joined string. */
static void org_features(struct fx *f, int key_byte, char *out, size_t len)
{
    org_rec *o = get_org(f, key_byte, "");
    assert_non_null(o);
    out[0] = '\0';
    for (size_t i = 0; i < o->n_features; i++)
        snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? "," : "", o->features[i]);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
}

static void ping_features(struct fx *f, const char *id, int key_byte, uint64_t seq,
                          const char *const *feats, size_t n, int64_t at)
{
    struct tping t;
    tping_init(&t, id, key_byte, seq, 1);
    t.p.features = (char **)feats;
    t.p.n_features = n;
    assert_int_equal(apply1(f, &t, at), WL_APPLY_ACCEPTED);
}

/* A full tally table keeps what it tallied: a real install that pings
 * again (its features leave, then come back) keeps them listed, though
 * junk from other installs fills every other place. */
static void test_full_tallies_keep_features_that_ping_again(void **state)
{
    struct fx *f = *state;
    struct wl_state_opts opts = test_opts;
    opts.max_org_features = 8;
    reload_with(f, &opts);
    static const char *const real[] = {"real-a", "real-b", "real-c"};
    ping_features(f, "real", 0x53, 1, real, 3, 1000);
    for (int i = 0; i < 4; i++) {
        char id[16], j0[16], j1[16], j2[16];
        const char *junk[] = {j0, j1, j2};
        snprintf(id, sizeof id, "junk-%d", i);
        snprintf(j0, sizeof j0, "j%d-0", i);
        snprintf(j1, sizeof j1, "j%d-1", i);
        snprintf(j2, sizeof j2, "j%d-2", i);
        ping_features(f, id, 0x53, 1, junk, 3, 2000 + i);
    }
    char before[512], after[512];
    org_features(f, 0x53, before, sizeof before);
    assert_non_null(strstr(before, "real-a,real-b,real-c"));
    for (uint64_t seq = 2; seq < 6; seq++)
        ping_features(f, "real", 0x53, seq, real, 3, 3000 + (int64_t)seq);
    org_features(f, 0x53, after, sizeof after);
    assert_string_equal(after, before);
    reload_with(f, &test_opts);
}

/* Which features a full table holds does not change with a restart (the
 * installs load in another order every time): the record says which. */
static void test_full_tallies_survive_a_restart(void **state)
{
    struct fx *f = *state;
    struct wl_state_opts opts = test_opts;
    opts.max_org_features = 8;
    reload_with(f, &opts);
    for (int i = 0; i < 12; i++) {
        char id[16], name[16];
        const char *one[] = {name};
        snprintf(id, sizeof id, "i-%02d", i);
        snprintf(name, sizeof name, "feat-%02d", i);
        ping_features(f, id, 0x54, 1, one, 1, 1000 + i);
    }
    char before[512], after[512];
    org_features(f, 0x54, before, sizeof before);
    for (int round = 0; round < 4; round++) {
        reload_with(f, &opts);
        /* a ping that changes nothing of the features makes it write again */
        static const char *const none[] = {"feat-00"};
        ping_features(f, "i-00", 0x54, 2 + (uint64_t)round, none, 1, 5000 + round);
        org_features(f, 0x54, after, sizeof after);
        assert_string_equal(after, before);
    }
    reload_with(f, &test_opts);
}

/* An organization lists the versions and editions its installs run now:
 * one that moved away, or was forgotten, takes its own along. */
static void test_lists_follow_the_installs(void **state)
{
    struct fx *f = *state;
    struct tping a, b, a2;
    tping_init(&a, "stays", 0x55, 1, 1);
    tping_init(&b, "mover", 0x55, 1, 1);
    b.p.version = "mover-version-77";
    b.p.edition = "mover-edition";
    struct tping *g[] = {&a, &b};
    group(f, g, 2, 1000, NULL);
    org_rec *o = get_org(f, 0x55, "");
    assert_int_equal(o->n_versions, 2);
    assert_int_equal(o->n_editions, 1);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    tping_init(&a2, "mover", 0x56, 2, 1);
    a2.p.version = "mover-version-77";
    assert_int_equal(apply1(f, &a2, 2000), WL_APPLY_ACCEPTED);
    o = get_org(f, 0x55, "");
    assert_int_equal(o->n_versions, 1);
    assert_string_equal(o->versions[0], "9.11");
    assert_int_equal(o->n_editions, 0);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    forget_install(f, "mover");
    o = get_org(f, 0x55, "");
    assert_int_equal(o->n_versions, 1);
    assert_string_equal(o->versions[0], "9.11");
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    assert_null(get_org(f, 0x56, ""));
    assert_int_equal(wl_state_interned(f->st), 1); /* "9.11": the mover's strings are gone */
}

/* A resumed forget takes out again the installs its first step forgot that
 * a restart loaded back (their records not yet deleted): all of an
 * organization's, which then goes (record and all), or all but one that
 * pinged after the forget, which stays with its organization. */
static void test_forget_stale_installs(void **state)
{
    struct fx *f = *state;
    struct tping t[5];
    struct tping *g[5];
    char ids[5][16];
    uint8_t lens[5];
    char *idv[5];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 5; i++) {
            snprintf(ids[i], sizeof ids[i], "stale-%d-%d", round, i);
            tping_init(&t[i], ids[i], 0x57 + round, 1, 1);
            g[i] = &t[i];
            idv[i] = ids[i];
            lens[i] = (uint8_t)strlen(ids[i]);
        }
        group(f, g, 5, 1000 + round * 10, NULL);
        uint64_t upto = wl_state_ingest_seq(f->st);
        if (round == 1) { /* one comes back after the forget: new data */
            struct tping again;
            tping_init(&again, ids[2], 0x58, 2, 2);
            assert_int_equal(apply1(f, &again, 2000), WL_APPLY_ACCEPTED);
        }
        struct wl_forgotten fg;
        struct wl_batch *b = wl_batch_new(f->store);
        assert_int_equal(wl_state_forget_stale(f->st, idv, lens, 5, upto, b, &fg), 0);
        write_forget(f, b, &fg);
    }
    /* round 0: the organization went whole; round 1: it keeps the one */
    assert_null(get_org(f, 0x57, ""));
    org_rec *o = get_org(f, 0x58, "");
    assert_non_null(o);
    assert_int_equal(o->n_install_ids, 1);
    assert_string_equal(o->install_ids[0], "stale-1-2");
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    assert_int_equal(wl_state_n_orgs(f->st), 1);
    assert_int_equal(wl_state_n_installs(f->st), 1);
    reload_with(f, &test_opts); /* the state on disk agrees (its records: the slices') */
}

/* ---- edge pings (a security check, a Rudder event): merged, seq of their own ---- */

#define HOUR ((int64_t)3600000)

/* One edge ping in a group of its own; flush 0: the state is not flushed
 * (a crash after this write replays it). */
static enum wl_apply edge1(struct fx *f, struct tping *t, enum wl_source source,
                           uint64_t presence, int64_t at, int flush)
{
    char err[512] = "";
    struct wl_edge e = {.presence = presence, .source = (uint8_t)source};
    struct wl_batch *b = wl_batch_new(f->store);
    assert_non_null(b);
    enum wl_apply r = wl_state_apply_edge(f->st, &t->p, &e, at, at, b);
    if (flush)
        wl_state_flush(f->st, b);
    else
        wl_state_stage(f->st, b);
    if (wl_store_write(f->store, b, 1, err, sizeof err) != 0)
        fail_msg("write: %s", err);
    wl_state_commit(f->st);
    wl_batch_free(b);
    return r;
}

/* An edge ping carrying only what presence will name. */
static void edge_ping(struct tping *t, const char *id, int key_byte)
{
    tping_init(t, id, key_byte, 1, 0);
#define ZERO(name) t->p.name = 0;
    WL_COUNT_FIELDS(ZERO)
#undef ZERO
    t->p.version = "";
}

static int has_feature(const wl_ping *p, const char *name)
{
    for (size_t i = 0; i < p->n_features; i++)
        if (strcmp(p->features[i], name) == 0)
            return 1;
    return 0;
}

#define P_COUNT(c) WL_PRESENT(WL_FIELD_COUNT(WL_COUNT_##c))

static void test_edge_merges_into_latest(void **state)
{
    struct fx *f = *state;
    struct tping w, e;
    char *feats[] = {"saml_configured", "custom_x"};

    tping_init(&w, "edge-a", 0x61, 5, 100);
    w.p.features = feats;
    w.p.n_features = 2;
    assert_int_equal(apply1(f, &w, 1000), WL_APPLY_ACCEPTED);

    /* a check: uc, auc and the version, nothing else */
    edge_ping(&e, "edge-a", -1);
    e.p.registered_users = 7;
    e.p.active_users_daily = 8;
    e.p.version = "11.6.0";
    uint64_t presence = P_COUNT(registered_users) | P_COUNT(active_users_daily) |
                        WL_PRESENT(WL_FIELD_STRING(WL_STRING_version));
    assert_int_equal(edge1(f, &e, WL_SOURCE_SECURITY, presence, 2000, 1), WL_APPLY_ACCEPTED);

    install_rec *r = get_install(f, "edge-a");
    assert_int_equal(r->last_seq, 5);      /* the sender's seq is untouched */
    assert_int_equal(r->edge_seq, 1);
    assert_int_equal(r->check_hour, 0);
    const wl_ping *lp = r->last_ping;
    assert_int_equal(lp->registered_users, 7);
    assert_int_equal(lp->active_users_daily, 8);
    assert_string_equal(lp->version, "11.6.0");
    assert_int_equal(lp->active_users_monthly, 102); /* kept from the wire ping */
    assert_int_equal(lp->posts, 100 * 1000 + 14);
    assert_int_equal(lp->org_key.len, 32);            /* no identity: never moves */
    assert_int_equal(lp->org_key.data[0], 0x61);
    assert_true(has_feature(lp, "saml_configured") && has_feature(lp, "custom_x"));
    warmline__store__v1__install_state__free_unpacked(r, NULL);

    /* the raw record keeps the ping as sent, with its source and presence */
    ping_rec *pr = get_ping(f, 2);
    assert_int_equal(pr->source, WL_SOURCE_SECURITY);
    assert_int_equal(pr->presence, presence);
    assert_int_equal(pr->ping->seq, 1);
    assert_int_equal(pr->ping->active_users_monthly, 0);
    assert_int_equal(pr->org.data[0], WL_ORG_TAG_KEY);
    warmline__store__v1__stored_ping__free_unpacked(pr, NULL);

    /* the organization's totals take the merged counts */
    uint64_t want[WL_N_COUNTS];
    expected_counts(100, want);
    want[WL_COUNT_registered_users] = 7;
    want[WL_COUNT_active_users_daily] = 8;
    org_rec *o = get_org(f, 0x61, "");
    assert_totals(o, want);
    warmline__store__v1__org_state__free_unpacked(o, NULL);

    /* the sender's next wire ping is no duplicate, and replaces everything */
    tping_init(&w, "edge-a", 0x61, 6, 200);
    assert_int_equal(apply1(f, &w, 3000), WL_APPLY_ACCEPTED);
    r = get_install(f, "edge-a");
    assert_int_equal(r->last_ping->registered_users, 200);
    assert_int_equal(r->last_ping->n_features, 0);
    warmline__store__v1__install_state__free_unpacked(r, NULL);
}

static void test_edge_check_once_an_hour(void **state)
{
    struct fx *f = *state;
    struct tping e;
    uint64_t presence = P_COUNT(registered_users);

    edge_ping(&e, "edge-h", -1);
    e.p.registered_users = 3;
    assert_int_equal(edge1(f, &e, WL_SOURCE_SECURITY, presence, 10 * HOUR + 5, 1),
                     WL_APPLY_ACCEPTED);
    /* another node of the cluster, the same hour, the same check (its time
     * differs: it is not part of the check) */
    e.p.sent_at = 10 * HOUR + 90000;
    assert_int_equal(edge1(f, &e, WL_SOURCE_SECURITY, presence, 10 * HOUR + 90000, 1),
                     WL_APPLY_DUPLICATE);
    /* another check the same hour is new data (a forged one sent first does
     * not silence the real one) */
    e.p.registered_users = 4;
    assert_int_equal(edge1(f, &e, WL_SOURCE_SECURITY, presence, 10 * HOUR + 90001, 1),
                     WL_APPLY_ACCEPTED);
    /* a Rudder event in the same hour is not a check */
    assert_int_equal(edge1(f, &e, WL_SOURCE_RUDDER, presence, 10 * HOUR + 90002, 1),
                     WL_APPLY_ACCEPTED);
    e.p.registered_users = 5;
    assert_int_equal(edge1(f, &e, WL_SOURCE_SECURITY, presence, 11 * HOUR, 1),
                     WL_APPLY_ACCEPTED);
    install_rec *r = get_install(f, "edge-h");
    assert_int_equal(r->edge_seq, 4);
    assert_int_equal(r->check_hour, 11);
    assert_int_equal(r->last_seq, 0);
    assert_int_equal(r->last_ping->registered_users, 5);
    warmline__store__v1__install_state__free_unpacked(r, NULL);
    /* the hour survives a restart */
    reload_with(f, &test_opts);
    assert_int_equal(edge1(f, &e, WL_SOURCE_SECURITY, presence, 11 * HOUR + 7, 1),
                     WL_APPLY_DUPLICATE);
}

static void test_edge_features_by_bit(void **state)
{
    struct fx *f = *state;
    struct tping w, e;
    char *feats[] = {"saml_configured", "licensed", "license_e20", "custom_x"};
    char *now[] = {"ldap_configured"};

    tping_init(&w, "edge-f", 0x62, 1, 10);
    w.p.features = feats;
    w.p.n_features = 4;
    assert_int_equal(apply1(f, &w, 1000), WL_APPLY_ACCEPTED);
    /* a config event: SAML off now, LDAP on; licensed and custom_x untouched */
    edge_ping(&e, "edge-f", -1);
    e.p.features = now;
    e.p.n_features = 1;
    uint64_t presence = WL_PRESENT(WL_FEATURE_BIT(WL_EF_saml_configured)) |
                        WL_PRESENT(WL_FEATURE_BIT(WL_EF_ldap_configured));
    assert_int_equal(edge1(f, &e, WL_SOURCE_RUDDER, presence, 2000, 1), WL_APPLY_ACCEPTED);
    install_rec *r = get_install(f, "edge-f");
    const wl_ping *lp = r->last_ping;
    assert_int_equal(lp->n_features, 4);
    assert_false(has_feature(lp, "saml_configured"));
    assert_true(has_feature(lp, "ldap_configured") && has_feature(lp, "licensed") &&
                has_feature(lp, "license_e20") && has_feature(lp, "custom_x"));
    assert_int_equal(lp->registered_users, 10); /* counts untouched */
    warmline__store__v1__install_state__free_unpacked(r, NULL);
    /* a license event without the license: licensed and its edition go */
    e.p.n_features = 0;
    assert_int_equal(edge1(f, &e, WL_SOURCE_RUDDER, WL_PRESENT(WL_FEATURE_BIT(WL_EF_licensed)),
                           3000, 1),
                     WL_APPLY_ACCEPTED);
    r = get_install(f, "edge-f");
    assert_int_equal(r->last_ping->n_features, 2);
    assert_false(has_feature(r->last_ping, "licensed") ||
                 has_feature(r->last_ping, "license_e20"));
    warmline__store__v1__install_state__free_unpacked(r, NULL);
    /* the organization's feature list follows */
    org_rec *o = get_org(f, 0x62, "");
    assert_int_equal(o->n_features, 2);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
}

static uint8_t org_byte_of(struct fx *f, const char *id)
{
    install_rec *r = get_install(f, id);
    assert_non_null(r);
    uint8_t b = r->org.data[0] == WL_ORG_TAG_KEY ? r->org.data[1] : 0;
    warmline__store__v1__install_state__free_unpacked(r, NULL);
    return b;
}

static void test_edge_org_precedence(void **state)
{
    struct fx *f = *state;
    struct tping e, w;
    uint64_t net = WL_PRESENT(WL_FIELD_ORG_KEY) | WL_PRESENT(WL_ORG_BY_NETWORK);
    uint64_t dom = WL_PRESENT(WL_FIELD_ORG_KEY);
    uint64_t users = P_COUNT(registered_users);

    /* no identity: its own organization */
    edge_ping(&e, "edge-o", -1);
    assert_int_equal(edge1(f, &e, WL_SOURCE_RUDDER, users, 1000, 1), WL_APPLY_ACCEPTED);
    assert_int_equal(org_byte_of(f, "edge-o"), 0);
    /* the network table moves it */
    edge_ping(&e, "edge-o", 0x51);
    assert_int_equal(edge1(f, &e, WL_SOURCE_SECURITY, users | net, 2000, 1), WL_APPLY_ACCEPTED);
    assert_int_equal(org_byte_of(f, "edge-o"), 0x51);
    assert_null(get_org(f, -1, "edge-o")); /* its own organization went */
    /* another network's key moves it again (a network is no domain) */
    edge_ping(&e, "edge-o", 0x52);
    assert_int_equal(edge1(f, &e, WL_SOURCE_RUDDER, users | net, 3000, 1), WL_APPLY_ACCEPTED);
    assert_int_equal(org_byte_of(f, "edge-o"), 0x52);
    /* a domain moves it */
    edge_ping(&e, "edge-o", 0x53);
    assert_int_equal(edge1(f, &e, WL_SOURCE_RUDDER, users | dom, 4000, 1), WL_APPLY_ACCEPTED);
    assert_int_equal(org_byte_of(f, "edge-o"), 0x53);
    /* then a network does not, even after a restart, and no identity does not */
    reload_with(f, &test_opts);
    edge_ping(&e, "edge-o", 0x54);
    assert_int_equal(edge1(f, &e, WL_SOURCE_RUDDER, users | net, 5000, 1), WL_APPLY_ACCEPTED);
    assert_int_equal(org_byte_of(f, "edge-o"), 0x53);
    edge_ping(&e, "edge-o", -1);
    assert_int_equal(edge1(f, &e, WL_SOURCE_RUDDER, users, 6000, 1), WL_APPLY_ACCEPTED);
    assert_int_equal(org_byte_of(f, "edge-o"), 0x53);
    /* a wire ping's key is a domain's */
    tping_init(&w, "edge-w", 0x55, 1, 1);
    assert_int_equal(apply1(f, &w, 7000), WL_APPLY_ACCEPTED);
    edge_ping(&e, "edge-w", 0x56);
    assert_int_equal(edge1(f, &e, WL_SOURCE_SECURITY, users | net, 8000, 1), WL_APPLY_ACCEPTED);
    assert_int_equal(org_byte_of(f, "edge-w"), 0x55);
}

/* Edge pings written but not flushed (a crash): the replay gives the
 * state a run without the crash has. */
static void run_edges(struct fx *f, int flush)
{
    struct tping w, e;
    char *feats[] = {"cluster_enabled"};
    tping_init(&w, "edge-r", 0x63, 1, 50);
    assert_int_equal(apply1(f, &w, 1000), WL_APPLY_ACCEPTED);
    edge_ping(&e, "edge-r", -1);
    e.p.registered_users = 9;
    assert_int_equal(edge1(f, &e, WL_SOURCE_SECURITY, P_COUNT(registered_users), 2 * HOUR, flush),
                     WL_APPLY_ACCEPTED);
    edge_ping(&e, "edge-r", 0x64);
    e.p.active_users_monthly = 77;
    e.p.features = feats;
    e.p.n_features = 1;
    assert_int_equal(edge1(f, &e, WL_SOURCE_RUDDER,
                           P_COUNT(active_users_monthly) | WL_PRESENT(WL_FIELD_ORG_KEY) |
                               WL_PRESENT(WL_FEATURE_BIT(WL_EF_cluster_enabled)),
                           2 * HOUR + 1, flush),
                     WL_APPLY_ACCEPTED);
    edge_ping(&e, "edge-r", -1);
    e.p.registered_users = 9; /* the same check again, within the hour */
    assert_int_equal(edge1(f, &e, WL_SOURCE_SECURITY, P_COUNT(registered_users),
                           2 * HOUR + 2, flush),
                     WL_APPLY_DUPLICATE);
}

static void test_edge_replay_gives_the_same_state(void **state)
{
    struct fx *f = *state;
    run_edges(f, 0);
    reload_with(f, &test_opts); /* replays the two edge pings */
    assert_int_equal(wl_state_replayed(f->st), 2);
    struct wl_batch *b = wl_batch_new(f->store);
    char err[256];
    wl_state_flush(f->st, b);
    assert_int_equal(wl_store_write(f->store, b, 1, err, sizeof err), 0);
    wl_state_commit(f->st);
    wl_batch_free(b);
    install_rec *r = get_install(f, "edge-r");
    assert_int_equal(r->edge_seq, 2);
    assert_int_equal(r->check_hour, 2);
    assert_int_equal(r->last_seq, 1);
    assert_int_equal(r->org.data[1], 0x64);
    assert_int_equal(r->last_ping->registered_users, 9);
    assert_int_equal(r->last_ping->active_users_monthly, 77);
    assert_int_equal(r->last_ping->active_users_daily, 51); /* the wire ping's */
    assert_true(has_feature(r->last_ping, "cluster_enabled"));
    warmline__store__v1__install_state__free_unpacked(r, NULL);
    assert_null(get_org(f, 0x63, ""));
    org_rec *o = get_org(f, 0x64, "");
    assert_non_null(o);
    assert_int_equal(o->totals[WL_COUNT_active_users_monthly], 77);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    /* the next check continues the writer's seq */
    struct tping e;
    edge_ping(&e, "edge-r", -1);
    assert_int_equal(edge1(f, &e, WL_SOURCE_SECURITY, P_COUNT(teams), 3 * HOUR, 1),
                     WL_APPLY_ACCEPTED);
    r = get_install(f, "edge-r");
    assert_int_equal(r->edge_seq, 3);
    warmline__store__v1__install_state__free_unpacked(r, NULL);
}

static void advance_to(struct fx *f, int64_t now)
{
    char err[512];
    struct wl_batch *b = wl_batch_new(f->store);
    wl_state_advance(f->st, now, b);
    wl_state_flush(f->st, b);
    if (wl_store_write(f->store, b, 1, err, sizeof err) != 0)
        fail_msg("write: %s", err);
    wl_state_commit(f->st);
    wl_batch_free(b);
}

static unsigned counting_of(struct fx *f, const char *install_id)
{
    org_rec *o = get_org(f, -1, install_id);
    assert_non_null(o);
    unsigned n = o->installs_counting;
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    return n;
}

/* A ping raises last_seen without moving its install in the expiry heap;
 * expiry still stops each install exactly when its latest ping leaves the
 * TTL: after pings a day apart (the heap's lag), after one past 2^32 ms of
 * silence (too long for the lag: placed again at once), and at the very
 * millisecond of the limit. */
static void test_expiry_exact_after_pings_that_move_nothing(void **state)
{
    struct fx *f = *state;
    const int64_t day = 86400000, ttl = 60 * day, t0 = 1000000000;
    struct wl_state_opts opts = test_opts;
    opts.install_ttl_ms = (uint64_t)ttl;
    reload_with(f, &opts);
    struct tping a, b, c;
    tping_init(&a, "lag-a", -1, 1, 1);
    tping_init(&b, "lag-b", -1, 1, 1);
    tping_init(&c, "lag-c", -1, 1, 1);
    apply1(f, &a, t0);
    apply1(f, &b, t0 + 1);
    apply1(f, &c, t0 + 2);
    for (uint64_t k = 1; k <= 3; k++) { /* b: three days, each a rise of the lag */
        tping_init(&b, "lag-b", -1, 1 + k, 1);
        apply1(f, &b, t0 + (int64_t)k * day);
    }
    tping_init(&a, "lag-a", -1, 2, 1);
    apply1(f, &a, t0 + 50 * day); /* 4.32e9 ms after its first: past the lag's 32 bits */

    advance_to(f, t0 + 2 + ttl); /* limit t0 + 2: c's last ping is at it */
    assert_int_equal(counting_of(f, "lag-c"), 1);
    advance_to(f, t0 + 3 + ttl); /* past it */
    assert_int_equal(counting_of(f, "lag-c"), 0);
    assert_int_equal(counting_of(f, "lag-b"), 1);
    assert_int_equal(counting_of(f, "lag-a"), 1);
    advance_to(f, t0 + 3 * day + ttl);
    assert_int_equal(counting_of(f, "lag-b"), 1);
    advance_to(f, t0 + 3 * day + 1 + ttl);
    assert_int_equal(counting_of(f, "lag-b"), 0);
    assert_int_equal(counting_of(f, "lag-a"), 1);
    advance_to(f, t0 + 50 * day + 1 + ttl);
    assert_int_equal(counting_of(f, "lag-a"), 0);
}

/* wl_state_prefetch keeps each ping's hashes by its id's address: pings
 * applied in another order than prefetched, one prefetched and never
 * applied, one whose id is too long to hash, and, after a clear, another
 * ping in the same memory as an earlier one: each lands where its own id
 * and key say. */
static void test_prefetched_pings_land_where_they_belong(void **state)
{
    struct fx *f = *state;
    struct tping a, b, c;
    uint64_t want[WL_N_COUNTS];
    static char long_id[WL_INSTALL_ID_MAX + 8];
    memset(long_id, 'x', sizeof long_id - 1);
    wl_ping too_long = WARMLINE__V1__PING__INIT;
    too_long.install_id = long_id;

    tping_init(&a, "install-a", 0x31, 1, 10);
    tping_init(&b, "install-b", 0x32, 1, 20);
    tping_init(&c, "install-c", -1, 1, 30);
    wl_state_prefetch_clear(f->st);
    wl_state_prefetch(f->st, &a.p);
    wl_state_prefetch(f->st, &b.p);
    wl_state_prefetch(f->st, &c.p); /* never applied */
    wl_state_prefetch(f->st, &too_long);
    wl_state_prefetch(f->st, NULL);
    assert_int_equal(apply1(f, &b, 1000), WL_APPLY_ACCEPTED);
    assert_int_equal(apply1(f, &a, 2000), WL_APPLY_ACCEPTED);
    wl_state_prefetch_clear(f->st);
    tping_init(&c, "install-d", 0x31, 1, 40); /* c's memory, another install */
    assert_int_equal(apply1(f, &c, 3000), WL_APPLY_ACCEPTED);
    wl_state_prefetch(f->st, &c.p); /* prefetched twice: once applied */
    tping_init(&c, "install-d", 0x31, 2, 50);
    assert_int_equal(apply1(f, &c, 4000), WL_APPLY_ACCEPTED);

    assert_int_equal(wl_state_n_installs(f->st), 3);
    assert_int_equal(wl_state_n_orgs(f->st), 2);
    assert_null(get_install(f, "install-c"));
    assert_null(get_org(f, -1, "install-c"));
    org_rec *o = get_org(f, 0x31, "");
    assert_non_null(o);
    assert_int_equal(o->n_install_ids, 2);
    assert_true(has_install(o, "install-a"));
    assert_true(has_install(o, "install-d"));
    sum_bases((uint64_t[]){10, 50}, 2, want);
    assert_totals(o, want);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    o = get_org(f, 0x32, "");
    assert_non_null(o);
    sum_bases((uint64_t[]){20}, 1, want);
    assert_totals(o, want);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    /* and the tables find them without hints */
    install_rec *r = get_install(f, "install-b");
    assert_non_null(r);
    assert_int_equal(r->last_seq, 1);
    warmline__store__v1__install_state__free_unpacked(r, NULL);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_empty_state),
        T(test_first_ping_records),
        T(test_duplicates_write_nothing),
        T(test_duplicate_within_one_group),
        T(test_shared_org_sums_latest),
        T(test_no_org_key_is_own_org),
        T(test_switch_org_key),
        T(test_switch_from_no_key_to_key),
        T(test_switch_and_back_in_one_group),
        T(test_reload_from_disk),
        T(test_restart_does_not_change_org_record),
        T(test_reload_corrupt_install),
        T(test_ttl_with_unordered_event_times),
        T(test_expiry_exact_after_pings_that_move_nothing),
        T(test_large_org_record_is_capped),
        T(test_feature_tally_cap_keeps_rule_features),
        T(test_rule_operands_follow_the_tallies),
        T(test_interned_strings_are_released),
        T(test_many_moves_keep_members),
        T(test_full_tallies_keep_features_that_ping_again),
        T(test_full_tallies_survive_a_restart),
        T(test_lists_follow_the_installs),
        T(test_forget_stale_installs),
        T(test_edge_merges_into_latest),
        T(test_edge_check_once_an_hour),
        T(test_edge_features_by_bit),
        T(test_edge_org_precedence),
        T(test_edge_replay_gives_the_same_state),
        T(test_prefetched_pings_land_where_they_belong),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
