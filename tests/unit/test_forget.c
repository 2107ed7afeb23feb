/* Unit tests for collector/forget.h with the real writer on a real store in
 * a temporary directory: forgetting an organization, an install of a
 * two-install organization, an organization's last install, an install
 * without an org key, an install that moved between organizations; the
 * deletion record; "nothing matched"; slices; pings racing the forget; a
 * restart after it; an organization past WL_ORG_INSTALL_IDS_MAX installs
 * (the writer scans nothing); a forget interrupted and resumed. "No trace" is
 * checked byte for byte: no key or value of any column family holds the
 * org key or the install id afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "forget.h"
#include "log.h"
#include "metrics.h"
#include "records.pb-c.h"
#include "state_read.h"
#include "storage/keys.h"
#include "writer.h"
#include "tmpdir.h"

#define T0 1700000000000LL /* 2023-11-14 */
#define HOUR 3600000LL
#define DAY (24 * HOUR)

#define KEY_A 0xA1 /* org A: installs A1, A2 (a named account) */
#define KEY_B 0xB2 /* org B: install B1 (a named account) */
#define KEY_C 0xC3 /* org C: MOVER, until it moves to D */
#define KEY_D 0xD4
static const char A1[] = "zz-alpha-one";
static const char A2[] = "zz-alpha-two";
static const char B1[] = "zz-bravo-one";
static const char N1[] = "zz-nokey-one"; /* no org key */
static const char MOVER[] = "zz-mover-one";

/* ---- fixture ---- */

struct fx {
    char root[64];
    char db[128];
    struct wl_config cfg;
    struct wl_store *store;
    struct wl_writer *w;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int notified;
};

static void on_done(void *arg)
{
    struct fx *f = arg;
    pthread_mutex_lock(&f->mu);
    f->notified = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static const char RULES[] =
    "[rule \"users_10\"]\n"
    "when = registered_users >= 10\n"
    "weight = 2\n"
    "[rule \"second_install\"]\n"
    "when = installs >= 2\n"
    "weight = 4\n";

static void start(struct fx *f)
{
    char err[512] = "";
    int rc = wl_writer_start(&f->cfg, f->store, 0, on_done, f, NULL, NULL, &f->w, err,
                             sizeof err);
    if (rc != 0)
        fail_msg("writer start: %d %s", rc, err);
}

static void stop(struct fx *f)
{
    wl_writer_stop(f->w);
    f->w = NULL;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[512], ini[160];
    if (f == NULL)
        return -1;
    wl_log_min_level = WL_LOG_WARN;
    snprintf(f->root, sizeof f->root, "/tmp/wl-test-forget-XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    snprintf(f->db, sizeof f->db, "%s/db", f->root);
    snprintf(ini, sizeof ini, "%s/rules.ini", f->root);
    FILE *fp = fopen(ini, "w");
    if (fp == NULL)
        return -1;
    fputs(RULES, fp);
    fclose(fp);
    wl_config_defaults(&f->cfg);
    if (wl_config_load(&f->cfg, ini, err, sizeof err) != 0) {
        print_error("config: %s\n", err);
        return -1;
    }
    snprintf(f->cfg.data_dir, sizeof f->cfg.data_dir, "%s", f->db);
    f->cfg.install_ttl_ms = 3650 * DAY;
    /* These tests read the records on disk after each send: a checkpoint
     * with every group (test_writer and test_state_read test the window). */
    f->cfg.checkpoint_pings = 1;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    if (wl_store_open(f->db, WL_STORE_PRIMARY, &f->store, err, sizeof err) != 0) {
        print_error("store: %s\n", err);
        return -1;
    }
    start(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    wl_writer_stop(f->w);
    wl_store_close(f->store);
    wl_config_free(&f->cfg);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    int rc = wl_test_rmtree(f->root);
    free(f);
    return rc;
}

/* ---- pings in ---- */

struct pspec {
    const char *id;
    int key_byte;   /* -1: no org key */
    uint64_t seq;   /* 0: rejected (quarantined) */
    uint32_t users;
};

static struct wl_job *job_of(const struct pspec *specs, size_t n, int64_t at)
{
    wl_ping_batch batch = WARMLINE__V1__PING_BATCH__INIT;
    wl_ping pings[16];
    wl_ping *ptrs[16];
    uint8_t keys[16][32];
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        wl_ping init = WARMLINE__V1__PING__INIT;
        pings[i] = init;
        pings[i].install_id = (char *)specs[i].id;
        if (specs[i].key_byte >= 0) {
            memset(keys[i], specs[i].key_byte, 32);
            pings[i].org_key.data = keys[i];
            pings[i].org_key.len = 32;
        }
        pings[i].seq = specs[i].seq;
        pings[i].registered_users = specs[i].users;
        pings[i].active_users_monthly = specs[i].users / 2;
        pings[i].version = specs[i].users > 20 ? "10.1" : "9.11";
        pings[i].edition = "team";
        ptrs[i] = &pings[i];
    }
    batch.n_pings = n;
    batch.pings = ptrs;
    size_t len = warmline__v1__ping_batch__get_packed_size(&batch);
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    warmline__v1__ping_batch__pack(&batch, buf);
    struct wl_job *job = wl_job_new();
    assert_non_null(job);
    job->batch = warmline__v1__ping_batch__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(job->batch);
    job->received_at = at;
    job->transport = "tcp";
    snprintf(job->peer, sizeof job->peer, "127.0.0.1:40000");
    return job;
}

/* Submits one job and waits for it to come back. */
static void send_pings(struct fx *f, const struct pspec *specs, size_t n, int64_t at)
{
    pthread_mutex_lock(&f->mu);
    f->notified = 0;
    pthread_mutex_unlock(&f->mu);
    wl_writer_submit(f->w, job_of(specs, n, at));
    for (;;) {
        pthread_mutex_lock(&f->mu);
        while (!f->notified) {
            struct timespec deadline;
            clock_gettime(CLOCK_REALTIME, &deadline);
            deadline.tv_sec += 60;
            if (pthread_cond_timedwait(&f->cv, &f->mu, &deadline) == ETIMEDOUT)
                fail_msg("the writer did not answer within 60 s");
        }
        f->notified = 0;
        pthread_mutex_unlock(&f->mu);
        struct wl_job *j = wl_writer_take_done(f->w);
        if (j != NULL) {
            assert_null(j->next);
            assert_int_not_equal(j->status, WL_ACK_RETRY_LATER);
            wl_job_free(j);
            return;
        }
    }
}

static void put_named(struct fx *f, int key_byte, const char *domain)
{
    Warmline__Store__V1__NamedAccount r = WARMLINE__STORE__V1__NAMED_ACCOUNT__INIT;
    uint8_t key[32], buf[256];
    char err[256];
    memset(key, key_byte, sizeof key);
    r.domain = (char *)domain;
    r.name = "Acme";
    r.owner = "sam";
    size_t n = warmline__store__v1__named_account__pack(&r, buf);
    struct wl_batch *b = wl_batch_new(f->store);
    wl_batch_put(b, WL_CF_NAMED, key, sizeof key, buf, n);
    assert_int_equal(wl_store_write(f->store, b, 1, err, sizeof err), 0);
    wl_batch_free(b);
}

/* Two days of history: A (A1, A2), B (B1), N1 without key; the signals
 * users_10 for each and second_install for A (listing A1 and A2); named
 * accounts for A and B; a quarantined ping of A1 and one of B1. */
static void history(struct fx *f)
{
    const struct pspec day1[] = {
        {A1, KEY_A, 1, 12}, {A2, KEY_A, 1, 5}, {B1, KEY_B, 1, 30}, {N1, -1, 1, 11},
    };
    const struct pspec day2[] = {
        {A1, KEY_A, 2, 14}, {A2, KEY_A, 2, 6}, {B1, KEY_B, 2, 31}, {N1, -1, 2, 12},
        {A1, KEY_A, 0, 1},  {B1, KEY_B, 0, 1}, /* seq 0: quarantined */
    };
    send_pings(f, day1, 4, T0);
    send_pings(f, day2, 6, T0 + DAY);
    put_named(f, KEY_A, "alpha.example");
    put_named(f, KEY_B, "bravo.example");
}

/* ---- reading the store ---- */

/* Organizations in the rank (the writer's memory). */
static uint64_t ranked(struct fx *f)
{
    uint8_t keys[16][WL_RANK_KEY_MAX], lens[16], from[WL_RANK_KEY_MAX];
    size_t from_len = 0;
    uint64_t n = 0;
    int got;
    while ((got = wl_state_read_rank(wl_writer_state_reader(f->w), from, from_len, keys, lens,
                                     16)) > 0) {
        n += (uint64_t)got;
        from_len = lens[got - 1];
        memcpy(from, keys[got - 1], from_len);
    }
    assert_int_equal(got, 0);
    return n;
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

/* How many keys or values of any column family hold needle. */
static size_t traces(struct fx *f, const void *needle, size_t len)
{
    size_t n = 0;
    for (int cf = 0; cf < WL_CF_COUNT; cf++) {
        struct wl_iter *it = wl_iter_new(f->store, (enum wl_cf)cf);
        for (wl_iter_seek_first(it); wl_iter_valid(it); wl_iter_next(it)) {
            size_t klen, vlen;
            const char *k = wl_iter_key(it, &klen);
            const char *v = wl_iter_value(it, &vlen);
            if (memmem(k, klen, needle, len) != NULL || memmem(v, vlen, needle, len) != NULL)
                n++;
        }
        wl_iter_free(it);
    }
    return n;
}

static size_t key_traces(struct fx *f, int key_byte)
{
    uint8_t key[32];
    memset(key, key_byte, sizeof key);
    return traces(f, key, sizeof key);
}

static size_t id_traces(struct fx *f, const char *id)
{
    return traces(f, id, strlen(id));
}

/* Pings of an install (by decoding every stored ping). */
static size_t pings_of(struct fx *f, const char *id)
{
    struct wl_iter *it = wl_iter_new(f->store, WL_CF_PINGS);
    size_t n = 0;
    for (wl_iter_seek_first(it); wl_iter_valid(it); wl_iter_next(it)) {
        size_t vlen;
        const char *v = wl_iter_value(it, &vlen);
        struct wl_ping_peek pk;
        assert_int_equal(wl_ping_peek(v, vlen, &pk), 0);
        if (pk.install_len == strlen(id) && memcmp(pk.install_id, id, pk.install_len) == 0)
            n++;
    }
    wl_iter_free(it);
    return n;
}

typedef Warmline__Store__V1__OrgState org_rec;
typedef Warmline__Store__V1__Signal sig_rec;

static org_rec *get_org(struct fx *f, int key_byte, const char *install)
{
    uint8_t key[32], id[WL_ORG_ID_MAX];
    char *val = NULL, err[256];
    size_t vlen;
    memset(key, key_byte, sizeof key);
    size_t len = key_byte >= 0 ? wl_org_id(id, key, 32, NULL, 0)
                               : wl_org_id(id, NULL, 0, install, strlen(install));
    int rc = wl_store_get(f->store, WL_CF_ORGS, id, len, &val, &vlen, err, sizeof err);
    if (rc == -ENOENT)
        return NULL;
    assert_int_equal(rc, 0);
    org_rec *o = warmline__store__v1__org_state__unpack(NULL, vlen, (uint8_t *)val);
    free(val);
    assert_non_null(o);
    return o;
}

/* A copy of a record's bytes, to compare before and after. */
static char *raw(struct fx *f, enum wl_cf cf, const void *key, size_t klen, size_t *len)
{
    char *val = NULL, err[256];
    if (wl_store_get(f->store, cf, key, klen, &val, len, err, sizeof err) != 0)
        return NULL;
    return val;
}

static int has_named(struct fx *f, int key_byte)
{
    uint8_t key[32];
    size_t len;
    memset(key, key_byte, sizeof key);
    char *v = raw(f, WL_CF_NAMED, key, sizeof key, &len);
    free(v);
    return v != NULL;
}

/* The deletion records as JSON objects (a JSON array). */
static json_t *records_json(struct fx *f);

static int add_rec(void *arg, const char *text, size_t len)
{
    json_t *o = json_loadb(text, len, 0, NULL);
    assert_non_null(o);
    json_array_append_new(arg, o);
    return 0;
}

static json_t *records_json(struct fx *f)
{
    char err[256];
    json_t *a = json_array();
    assert_int_equal(wl_forget_records(f->store, NULL, add_rec, a, err, sizeof err), 0);
    return a;
}

static void forget_ok(struct fx *f, const struct wl_forget_target *t,
                      struct wl_forget_result *res)
{
    char err[512] = "";
    int rc = wl_forget(f->w, f->store, t, "test", res, err, sizeof err);
    if (rc != 0)
        fail_msg("forget: %d %s", rc, err);
}

static void target_org(struct wl_forget_target *t, int key_byte)
{
    uint8_t key[32];
    memset(key, key_byte, sizeof key);
    wl_forget_target_key(t, key);
}

static void target_install(struct wl_forget_target *t, const char *id)
{
    char err[128];
    assert_int_equal(wl_forget_target_install(t, id, err, sizeof err), 0);
}

/* ---- tests ---- */

static void test_targets(void **state)
{
    (void)state;
    struct wl_forget_target t;
    char err[256];
    char hex[65];
    memset(hex, 'a', 64);
    hex[64] = '\0';
    assert_int_equal(wl_forget_target_org(&t, hex, err, sizeof err), 0);
    assert_int_equal(t.kind, WL_FORGET_ORG);
    assert_int_equal(t.org_len, 33);
    assert_int_equal(t.org[0], WL_ORG_TAG_KEY);
    assert_int_equal(t.org[1], 0xaa);
    assert_int_equal(wl_forget_target_org(&t, "install:srv-1", err, sizeof err), 0);
    assert_int_equal(t.org_len, 6);
    assert_memory_equal(t.org, "isrv-1", 6);
    char not_hex[65];
    memset(not_hex, 'z', 64);
    not_hex[64] = '\0';
    const char *const bad_orgs[] = {"", "abc", "install:", "acme.com", not_hex};
    for (size_t i = 0; i < sizeof bad_orgs / sizeof bad_orgs[0]; i++)
        assert_int_equal(wl_forget_target_org(&t, bad_orgs[i], err, sizeof err), -EINVAL);
    assert_int_equal(wl_forget_target_install(&t, "srv-1", err, sizeof err), 0);
    assert_int_equal(t.kind, WL_FORGET_INSTALL);
    assert_string_equal(t.install, "srv-1");
    char long_id[80];
    memset(long_id, 'x', 65);
    long_id[65] = '\0';
    assert_int_equal(wl_forget_target_install(&t, long_id, err, sizeof err), -EINVAL);
    assert_int_equal(wl_forget_target_install(&t, "", err, sizeof err), -EINVAL);
    assert_int_equal(wl_forget_target_install(&t, "tab\there", err, sizeof err), -EINVAL);
}

static void test_ping_peek(void **state)
{
    (void)state;
    Warmline__Store__V1__StoredPing rec = WARMLINE__STORE__V1__STORED_PING__INIT;
    wl_ping p = WARMLINE__V1__PING__INIT;
    uint8_t org[] = "kORG", buf[512];
    struct wl_ping_peek pk;
    p.install_id = "srv-7";
    p.seq = 3;
    p.version = "9.11";
    rec.ingest_seq = 99;
    rec.received_at = T0;
    rec.org.data = org;
    rec.org.len = 4;
    rec.ping = &p;
    rec.event_at = T0 - 5;
    size_t n = warmline__store__v1__stored_ping__pack(&rec, buf);
    assert_int_equal(wl_ping_peek(buf, n, &pk), 0);
    assert_int_equal(pk.received_at, T0);
    assert_int_equal(pk.org_len, 4);
    assert_memory_equal(pk.org, "kORG", 4);
    assert_int_equal(pk.install_len, 5);
    assert_memory_equal(pk.install_id, "srv-7", 5);
    /* cut anywhere inside: never read past the end */
    for (size_t cut = 1; cut < n; cut++) {
        if (wl_ping_peek(buf, cut, &pk) == 0 && pk.install_id != NULL)
            assert_true((const uint8_t *)pk.install_id + pk.install_len <= buf + cut);
    }
    assert_int_equal(wl_ping_peek("\xff\xff", 2, &pk), -EPROTO);
}

static void test_forget_org(void **state)
{
    struct fx *f = *state;
    struct wl_forget_target t;
    struct wl_forget_result res;
    uint8_t bid[WL_ORG_ID_MAX], bkey[32];
    size_t blen, before_len, after_len;
    uint64_t forgets0 = wl_counter_get(WL_M_forgets);

    history(f);
    assert_true(key_traces(f, KEY_A) > 0);
    assert_true(id_traces(f, A2) > 0);
    memset(bkey, KEY_B, sizeof bkey);
    blen = wl_org_id(bid, bkey, 32, NULL, 0);
    char *b_before = raw(f, WL_CF_ORGS, bid, blen, &before_len);
    assert_non_null(b_before);
    uint64_t pings0 = count_cf(f, WL_CF_PINGS), signals0 = count_cf(f, WL_CF_SIGNALS);
    uint64_t quarantine0 = count_cf(f, WL_CF_QUARANTINE);

    target_org(&t, KEY_A);
    forget_ok(f, &t, &res);
    assert_int_equal(res.deleted.pings, 4);
    assert_int_equal(res.deleted.installs, 2);
    assert_int_equal(res.deleted.orgs, 1);
    assert_int_equal(res.deleted.daily, 2);
    assert_int_equal(res.deleted.signals, 2); /* users_10, second_install */
    assert_int_equal(res.deleted.named, 1);
    assert_int_equal(res.deleted.quarantine, 1);
    assert_int_equal(res.deleted.signals_edited, 0);
    assert_int_equal(res.deletion, 1);
    assert_true(res.at > 0);
    assert_int_equal(wl_counter_get(WL_M_forgets), forgets0 + 1);

    /* no trace in any column family */
    assert_int_equal(key_traces(f, KEY_A), 0);
    assert_int_equal(id_traces(f, A1), 0);
    assert_int_equal(id_traces(f, A2), 0);
    /* the others untouched */
    assert_int_equal(count_cf(f, WL_CF_PINGS), pings0 - 4);
    assert_int_equal(count_cf(f, WL_CF_SIGNALS), signals0 - 2);
    assert_int_equal(count_cf(f, WL_CF_QUARANTINE), quarantine0 - 1);
    assert_int_equal(pings_of(f, B1), 2);
    assert_int_equal(pings_of(f, N1), 2);
    char *b_after = raw(f, WL_CF_ORGS, bid, blen, &after_len);
    assert_non_null(b_after);
    assert_int_equal(before_len, after_len);
    assert_memory_equal(b_before, b_after, before_len);
    free(b_before);
    free(b_after);
    assert_true(has_named(f, KEY_B));
    assert_int_equal(ranked(f), 2); /* B and N1 */
    assert_int_equal(count_cf(f, WL_CF_ORG_SIGNALS), 2);

    /* the deletion record: kind and counts, nobody's name */
    json_t *recs = records_json(f);
    assert_int_equal(json_array_size(recs), 1);
    json_t *r = json_array_get(recs, 0);
    assert_int_equal(json_integer_value(json_object_get(r, "seq")), 1);
    assert_string_equal(json_string_value(json_object_get(r, "kind")), "org");
    assert_string_equal(json_string_value(json_object_get(r, "via")), "test");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "deleted"), "pings")),
                     4);
    json_decref(recs);

    /* twice: nothing left to match, nothing written */
    char err[256];
    struct wl_forget_result again;
    assert_int_equal(wl_forget(f->w, f->store, &t, "test", &again, err, sizeof err), -ENOENT);
    recs = records_json(f);
    assert_int_equal(json_array_size(recs), 1);
    json_decref(recs);

    /* a restart loads what is left; A1 pinging again starts afresh */
    stop(f);
    start(f);
    assert_int_equal(wl_metrics.gauge[WL_G_organizations], 2);
    assert_int_equal(wl_metrics.gauge[WL_G_installs], 2);
    const struct pspec again1[] = {{A1, KEY_A, 1, 3}};
    send_pings(f, again1, 1, T0 + 2 * DAY);
    org_rec *a = get_org(f, KEY_A, NULL);
    assert_non_null(a);
    assert_int_equal(a->n_install_ids, 1);
    assert_int_equal(a->totals[WL_COUNT_registered_users], 3);
    warmline__store__v1__org_state__free_unpacked(a, NULL);
}

static void test_forget_install_keeps_org(void **state)
{
    struct fx *f = *state;
    struct wl_forget_target t;
    struct wl_forget_result res;

    history(f);
    target_install(&t, A2);
    forget_ok(f, &t, &res);
    assert_int_equal(res.deleted.pings, 2);
    assert_int_equal(res.deleted.installs, 1);
    assert_int_equal(res.deleted.orgs, 0);
    assert_int_equal(res.deleted.daily, 0);
    assert_int_equal(res.deleted.signals, 0);
    assert_int_equal(res.deleted.named, 0);
    assert_int_equal(res.deleted.signals_edited, 1); /* second_install listed A2 */
    assert_int_equal(id_traces(f, A2), 0);
    assert_int_equal(pings_of(f, A1), 2);
    assert_true(has_named(f, KEY_A));

    org_rec *a = get_org(f, KEY_A, NULL);
    assert_non_null(a);
    assert_int_equal(a->n_install_ids, 1);
    assert_string_equal(a->install_ids[0], A1);
    assert_int_equal(a->installs_counting, 1);
    assert_int_equal(a->totals[WL_COUNT_registered_users], 14);
    assert_int_equal(a->totals[WL_COUNT_active_users_monthly], 7);
    assert_int_equal(a->n_versions, 1);
    assert_int_equal(a->signals, 2); /* its signals stay */
    warmline__store__v1__org_state__free_unpacked(a, NULL);

    /* after a restart the same: memory and disk agree */
    stop(f);
    start(f);
    const struct pspec a1[] = {{A1, KEY_A, 3, 15}};
    send_pings(f, a1, 1, T0 + DAY + HOUR);
    a = get_org(f, KEY_A, NULL);
    assert_int_equal(a->n_install_ids, 1);
    assert_int_equal(a->totals[WL_COUNT_registered_users], 15);
    warmline__store__v1__org_state__free_unpacked(a, NULL);

    /* a forgotten install that pings again starts afresh at any seq */
    const struct pspec back[] = {{A2, KEY_A, 1, 2}};
    send_pings(f, back, 1, T0 + DAY + 2 * HOUR);
    a = get_org(f, KEY_A, NULL);
    assert_int_equal(a->n_install_ids, 2);
    assert_int_equal(a->totals[WL_COUNT_registered_users], 17);
    warmline__store__v1__org_state__free_unpacked(a, NULL);
}

static void test_forget_last_install_drops_org(void **state)
{
    struct fx *f = *state;
    struct wl_forget_target t;
    struct wl_forget_result res;

    history(f);
    target_install(&t, B1);
    forget_ok(f, &t, &res);
    assert_int_equal(res.deleted.pings, 2);
    assert_int_equal(res.deleted.installs, 1);
    assert_int_equal(res.deleted.orgs, 1);
    assert_int_equal(res.deleted.daily, 2);
    assert_int_equal(res.deleted.signals, 1);
    assert_int_equal(res.deleted.named, 0); /* the CRM's label stays */
    assert_int_equal(res.deleted.quarantine, 1);
    assert_int_equal(id_traces(f, B1), 0);
    assert_null(get_org(f, KEY_B, NULL));
    /* only the named account still holds the key */
    assert_int_equal(key_traces(f, KEY_B), 1);
    assert_true(has_named(f, KEY_B));
    assert_int_equal(ranked(f), 2);
}

static void test_forget_install_without_key(void **state)
{
    struct fx *f = *state;
    struct wl_forget_target t;
    struct wl_forget_result res;
    char err[256];

    history(f);
    target_install(&t, N1);
    forget_ok(f, &t, &res);
    assert_int_equal(res.deleted.pings, 2);
    assert_int_equal(res.deleted.installs, 1);
    assert_int_equal(res.deleted.orgs, 1);
    assert_int_equal(res.deleted.daily, 2);
    assert_int_equal(res.deleted.signals, 1);
    assert_int_equal(id_traces(f, N1), 0);
    json_t *recs = records_json(f);
    assert_string_equal(json_string_value(json_object_get(json_array_get(recs, 0), "kind")),
                        "install");
    json_decref(recs);

    /* the same install's organization by its org form: gone already */
    assert_int_equal(wl_forget_target_org(&t, "install:zz-nokey-one", err, sizeof err), 0);
    assert_int_equal(wl_forget(f->w, f->store, &t, "test", &res, err, sizeof err), -ENOENT);
}

static void test_forget_no_key_org_form(void **state)
{
    struct fx *f = *state;
    struct wl_forget_target t;
    struct wl_forget_result res;
    char err[256];

    history(f);
    assert_int_equal(wl_forget_target_org(&t, "install:zz-nokey-one", err, sizeof err), 0);
    forget_ok(f, &t, &res);
    assert_int_equal(res.deleted.pings, 2);
    assert_int_equal(res.deleted.installs, 1);
    assert_int_equal(res.deleted.orgs, 1);
    assert_int_equal(id_traces(f, N1), 0);
}

static void test_forget_unknown(void **state)
{
    struct fx *f = *state;
    struct wl_forget_target t;
    struct wl_forget_result res;
    char err[256];

    history(f);
    uint64_t pings0 = count_cf(f, WL_CF_PINGS);
    target_org(&t, 0x77);
    assert_int_equal(wl_forget(f->w, f->store, &t, "test", &res, err, sizeof err), -ENOENT);
    target_install(&t, "nobody");
    assert_int_equal(wl_forget(f->w, f->store, &t, "test", &res, err, sizeof err), -ENOENT);
    json_t *recs = records_json(f);
    assert_int_equal(json_array_size(recs), 0);
    json_decref(recs);
    assert_int_equal(count_cf(f, WL_CF_PINGS), pings0);
    /* and on an empty store */
    stop(f);
    start(f);
    assert_int_equal(wl_forget(f->w, f->store, &t, "test", &res, err, sizeof err), -ENOENT);
}

/* An install that moved from C to D: forgetting D forgets it, its pings
 * under C too, and C's signal keeps its place without it. */
static void test_forget_moved_install(void **state)
{
    struct fx *f = *state;
    struct wl_forget_target t;
    struct wl_forget_result res;
    const struct pspec c[] = {{MOVER, KEY_C, 1, 40}, {"zz-charlie-two", KEY_C, 1, 1}};
    const struct pspec d[] = {{MOVER, KEY_D, 2, 41}};

    send_pings(f, c, 2, T0);
    send_pings(f, d, 1, T0 + HOUR);
    /* C's second_install signal lists MOVER */
    target_org(&t, KEY_D);
    forget_ok(f, &t, &res);
    assert_int_equal(res.deleted.pings, 2);
    assert_int_equal(res.deleted.installs, 1);
    assert_true(res.deleted.signals_edited >= 1);
    assert_int_equal(id_traces(f, MOVER), 0);
    assert_int_equal(key_traces(f, KEY_D), 0);
    assert_true(key_traces(f, KEY_C) > 0);
    assert_int_equal(pings_of(f, "zz-charlie-two"), 1);
    /* C's signals are all still there */
    org_rec *co = get_org(f, KEY_C, NULL);
    assert_non_null(co);
    assert_int_equal(co->signals, count_cf(f, WL_CF_SIGNALS));
    warmline__store__v1__org_state__free_unpacked(co, NULL);
}

/* An install that pinged without an org key before it had A's: forgetting
 * A forgets its own organization's history and signals too. */
static void test_forget_org_takes_installs_own_history(void **state)
{
    struct fx *f = *state;
    struct wl_forget_target t;
    struct wl_forget_result res;
    const struct pspec before[] = {{"zz-switcher", -1, 1, 12}};
    const struct pspec after[] = {{"zz-switcher", KEY_A, 2, 12}};

    history(f);
    send_pings(f, before, 1, T0);
    send_pings(f, after, 1, T0 + DAY);
    assert_true(id_traces(f, "zz-switcher") > 3);
    target_org(&t, KEY_A);
    forget_ok(f, &t, &res);
    assert_int_equal(res.deleted.installs, 3);
    assert_int_equal(res.deleted.pings, 6);
    /* A's two days; the own organization's day of its ping, and the day
     * it lost its install (its end: no installs). */
    assert_int_equal(res.deleted.daily, 2 + 2);
    assert_int_equal(res.deleted.signals, 2 + 1);
    assert_int_equal(id_traces(f, "zz-switcher"), 0);
    assert_int_equal(key_traces(f, KEY_A), 0);
    assert_int_equal(pings_of(f, N1), 2);
}

/* Many pings go in slices of at most opts.slice records: the same outcome. */
static void test_forget_in_slices(void **state)
{
    struct fx *f = *state;
    struct wl_forget_target t;
    struct wl_forget_result res;
    char err[256];

    history(f);
    for (uint64_t s = 3; s < 40; s++) {
        const struct pspec p[] = {{A1, KEY_A, s, 12}};
        send_pings(f, p, 1, T0 + DAY + (int64_t)s * 1000);
    }
    target_org(&t, KEY_A);
    const struct wl_forget_opts opts = {.slice = 5};
    assert_int_equal(wl_forget_ex(f->w, f->store, &t, "test", &opts, &res, err, sizeof err), 0);
    assert_int_equal(res.deleted.pings, 4 + 37);
    assert_true(res.slices >= (4 + 37 + 1) / 5);
    assert_in_range(res.slice_max, 1, 5);
    assert_int_equal(key_traces(f, KEY_A), 0);
    assert_int_equal(id_traces(f, A1), 0);
    assert_int_equal(id_traces(f, "forget_"), 0); /* no marker left */
}

/* Just before the forget reaches the writer: A1 pings again, a new install
 * joins A, and MOVER moves from C to A (its earlier pings and C's signals
 * that list it come from before). */
static void join_just_before(void *arg)
{
    struct fx *f = arg;
    const struct pspec p[] = {
        {A1, KEY_A, 50, 13}, {"zz-alpha-new", KEY_A, 1, 2}, {MOVER, KEY_A, 2, 40},
    };
    send_pings(f, p, 3, T0 + DAY + HOUR);
}

static void test_forget_joins_just_before(void **state)
{
    struct fx *f = *state;
    struct wl_forget_target t;
    struct wl_forget_result res;
    const struct pspec c[] = {{MOVER, KEY_C, 1, 40}, {"zz-charlie-two", KEY_C, 1, 1}};
    const struct wl_forget_opts opts = {.before_writer = join_just_before, .arg = f};
    char err[256];

    history(f);
    send_pings(f, c, 2, T0 + DAY);
    target_org(&t, KEY_A);
    assert_int_equal(wl_forget_ex(f->w, f->store, &t, "test", &opts, &res, err, sizeof err), 0);
    assert_int_equal(res.deleted.pings, 4 + 3 + 1);
    assert_int_equal(res.deleted.installs, 4);
    assert_int_equal(res.deleted.signals_edited, 2);
    assert_int_equal(key_traces(f, KEY_A), 0);
    assert_int_equal(id_traces(f, "zz-alpha-"), 0);
    assert_int_equal(id_traces(f, MOVER), 0);
    assert_true(key_traces(f, KEY_C) > 0);
    assert_int_equal(pings_of(f, "zz-charlie-two"), 1);
    assert_int_equal(pings_of(f, B1), 2);
}

/* Another forget lands between this one's memory step and its slices: the
 * signal both edit loses both installs (each edit is made on what is
 * stored when its slice runs). */
static void forget_xray(void *arg)
{
    struct fx *f = arg;
    struct wl_forget_target t;
    struct wl_forget_result res;
    target_install(&t, "zz-xray");
    forget_ok(f, &t, &res);
    assert_int_equal(res.deleted.signals_edited, 2);
}

static void test_concurrent_forgets(void **state)
{
    struct fx *f = *state;
    struct wl_forget_target t;
    struct wl_forget_result res;
    const struct pspec c[] = {{"zz-xray", KEY_C, 1, 12}, {A1, KEY_C, 1, 5},
                              {"zz-charlie-keep", KEY_C, 1, 1}};
    const struct pspec a[] = {{A1, KEY_A, 2, 5}};
    const struct wl_forget_opts opts = {.after_memory = forget_xray, .arg = f};
    char err[256];

    send_pings(f, c, 3, T0);
    send_pings(f, a, 1, T0 + HOUR);
    assert_true(id_traces(f, "zz-xray") > 0);
    target_org(&t, KEY_A);
    assert_int_equal(wl_forget_ex(f->w, f->store, &t, "test", &opts, &res, err, sizeof err), 0);
    assert_int_equal(res.deleted.signals_edited, 1); /* second_install: [xray, A1] */
    assert_int_equal(id_traces(f, "zz-xray"), 0);
    assert_int_equal(id_traces(f, A1), 0);
    assert_true(id_traces(f, "zz-charlie-keep") > 0);
}

/* Pings of the organization submitted just before the forget, and a new
 * install of it: whichever the scan sees, nothing is left. */
struct racer {
    struct fx *f;
    int rounds;
};

static void *race_pings(void *arg)
{
    struct racer *r = arg;
    for (int i = 0; i < r->rounds; i++) {
        char id[32];
        snprintf(id, sizeof id, "zz-alpha-new-%02d", i);
        const struct pspec p[] = {{A1, KEY_A, 100 + (uint64_t)i, 12}, {id, KEY_A, 1, 1}};
        wl_writer_submit(r->f->w, job_of(p, 2, T0 + DAY + i));
    }
    return NULL;
}

static void test_forget_races_ingest(void **state)
{
    struct fx *f = *state;
    struct wl_forget_target t;
    struct wl_forget_result res;
    struct racer r = {.f = f, .rounds = 20};
    pthread_t th;
    char err[256];

    history(f);
    assert_int_equal(pthread_create(&th, NULL, race_pings, &r), 0);
    target_org(&t, KEY_A);
    assert_int_equal(wl_forget(f->w, f->store, &t, "test", &res, err, sizeof err), 0);
    pthread_join(th, NULL);
    /* drain the jobs; then forget again whatever came after */
    stop(f);
    start(f);
    int rc = wl_forget(f->w, f->store, &t, "test", &res, err, sizeof err);
    assert_true(rc == 0 || rc == -ENOENT);
    assert_int_equal(key_traces(f, KEY_A), 0);
    assert_int_equal(id_traces(f, "zz-alpha-"), 0);
    assert_int_equal(pings_of(f, B1), 2);
}

/* ---- large organizations, slices, resume ---- */

#define KEY_L 0xE5 /* org L: more installs than its record lists */
#define LARGE (WL_ORG_INSTALL_IDS_MAX + 200)
#define MOVED 100  /* the last MOVED of them pinged under C first */

static void large_id(char *id, size_t len, int i)
{
    snprintf(id, len, "zz-large-%05d", i);
}

/* Installs from..to-1 of L, one ping each (seq) under key_byte, 16 a job. */
static void send_large(struct fx *f, int from, int to, int key_byte, uint64_t seq, int64_t at)
{
    char ids[16][32];
    struct pspec p[16];
    for (int i = from; i < to;) {
        size_t n = 0;
        for (; n < 16 && i < to; n++, i++) {
            large_id(ids[n], sizeof ids[n], i);
            p[n] = (struct pspec){ids[n], key_byte, seq, 3};
        }
        send_pings(f, p, n, at);
    }
}

/* L: LARGE installs; the last MOVED of them (past the first
 * WL_ORG_INSTALL_IDS_MAX, which is all the org record lists) pinged under C
 * before they joined L. */
static void large_org(struct fx *f)
{
    history(f);
    send_large(f, LARGE - MOVED, LARGE, KEY_C, 1, T0 + HOUR);
    send_large(f, 0, LARGE - MOVED, KEY_L, 1, T0 + 2 * HOUR);
    send_large(f, LARGE - MOVED, LARGE, KEY_L, 2, T0 + 3 * HOUR);
}

static size_t markers(struct fx *f)
{
    return traces(f, "forget_pending:", 15);
}

static void assert_large_gone(struct fx *f)
{
    char id[32];
    assert_int_equal(key_traces(f, KEY_L), 0);
    assert_int_equal(id_traces(f, "zz-large-"), 0);
    large_id(id, sizeof id, LARGE - 1);
    assert_int_equal(pings_of(f, id), 0);
    assert_int_equal(markers(f), 0);
    assert_int_equal(id_traces(f, "forget_"), 0);
    /* the others untouched */
    assert_int_equal(pings_of(f, B1), 2);
    assert_int_equal(pings_of(f, A1), 2);
    assert_true(key_traces(f, KEY_C) > 0);
}

/* Every ping of every install goes, those past the first
 * WL_ORG_INSTALL_IDS_MAX and those they sent under another organization
 * too, while the writer reads only L's history and signal index (no ping,
 * no signal log) and writes at most a slice at a time after the memory
 * step. */
static void test_forget_large_org(void **state)
{
    struct fx *f = *state;
    struct wl_forget_target t;
    struct wl_forget_result res;
    char err[256];

    large_org(f);
    uint64_t pings0 = count_cf(f, WL_CF_PINGS);
    target_org(&t, KEY_L);
    const struct wl_forget_opts opts = {.slice = 100};
    assert_int_equal(wl_forget_ex(f->w, f->store, &t, "test", &opts, &res, err, sizeof err), 0);
    assert_int_equal(res.deleted.pings, LARGE + MOVED);
    assert_int_equal(res.deleted.installs, LARGE);
    assert_int_equal(res.deleted.orgs, 1);
    assert_int_equal(count_cf(f, WL_CF_PINGS), pings0 - LARGE - MOVED);
    assert_large_gone(f);
    /* the writer's share: no scan, bounded slices */
    assert_true(res.writer_iterated <= res.deleted.daily + res.deleted.signals + 4);
    assert_true(res.writer_iterated < LARGE / 10);
    assert_in_range(res.slice_max, 1, 100);
    assert_true(res.slices >= (LARGE + MOVED) / 100);
    /* the first step's one write does not grow with the organization: its
     * install records go in the slices */
    assert_true(res.memory_records < LARGE / 10);
}

/* A later ping of a forgotten install, once the memory step is in, is new:
 * it starts afresh and stays. */
static void ping_after_memory(void *arg)
{
    struct fx *f = arg;
    char id[32];
    large_id(id, sizeof id, 7);
    const struct pspec p[] = {{id, KEY_L, 1, 2}};
    send_pings(f, p, 1, T0 + DAY);
}

/* Interrupted after `after` writer steps (1: the memory step alone), as a
 * crash would: the store closed with the marker in it. The next open
 * resumes the forget, and nothing of L is left but what came after it. */
static void crash_and_resume(struct fx *f, unsigned after, int threaded)
{
    struct wl_forget_target t;
    struct wl_forget_result res;
    char err[256], id[32];
    size_t n = 0;

    large_org(f);
    uint64_t pings0 = count_cf(f, WL_CF_PINGS);
    target_org(&t, KEY_L);
    const struct wl_forget_opts opts = {.slice = 100, .stop_after = after,
                                        .after_memory = ping_after_memory, .arg = f};
    assert_int_equal(wl_forget_ex(f->w, f->store, &t, "test", &opts, &res, err, sizeof err),
                     -ECANCELED);
    assert_int_equal(markers(f), 1);
    assert_true(count_cf(f, WL_CF_PINGS) > pings0 - LARGE - MOVED + 1);

    stop(f);
    wl_store_close(f->store);
    assert_int_equal(wl_store_open(f->db, WL_STORE_PRIMARY, &f->store, err, sizeof err), 0);
    start(f);
    /* the records the slices had not deleted load L's installs again, until
     * the resume takes them out */
    assert_true(wl_metrics.gauge[WL_G_installs] > 4 + 1 || after > 1);
    assert_int_equal(markers(f), 1);
    if (threaded) {
        /* the collector's way: a thread of its own, stopped at once (as a
         * quick stop would); whatever it left is finished by the next run */
        struct wl_forget_resumer *r = NULL;
        assert_int_equal(wl_forget_resume_start(f->w, f->store, &r, err, sizeof err), 0);
        assert_non_null(r);
        wl_forget_resume_stop(r);
        assert_int_equal(wl_forget_resume(f->w, f->store, NULL, &n, err, sizeof err), 0);
        assert_in_range(n, 0, 1);
    } else {
        assert_int_equal(wl_forget_resume(f->w, f->store, NULL, &n, err, sizeof err), 0);
        assert_int_equal(n, 1);
    }
    assert_int_equal(markers(f), 0);
    /* L holds only the install that came back */
    assert_int_equal(wl_metrics.gauge[WL_G_installs], 4 + 1);

    large_id(id, sizeof id, 7);
    assert_int_equal(pings_of(f, id), 1); /* the later ping */
    assert_int_equal(count_cf(f, WL_CF_PINGS), pings0 - LARGE - MOVED + 1);
    large_id(id, sizeof id, LARGE - 1);
    assert_int_equal(pings_of(f, id), 0);
    large_id(id, sizeof id, 8);
    assert_int_equal(id_traces(f, id), 0);
    assert_int_equal(pings_of(f, B1), 2);
    assert_true(key_traces(f, KEY_C) > 0);

    /* one deletion record, with the counts of both runs */
    json_t *recs = records_json(f);
    assert_int_equal(json_array_size(recs), 1);
    json_t *r = json_array_get(recs, 0);
    json_t *d = json_object_get(r, "deleted");
    assert_int_equal(json_integer_value(json_object_get(d, "pings")), LARGE + MOVED);
    /* the install that came back keeps its (new) record */
    assert_int_equal(json_integer_value(json_object_get(d, "installs")), LARGE - 1);
    assert_true(json_is_true(json_object_get(r, "resumed")));
    assert_string_equal(json_string_value(json_object_get(r, "via")), "test");
    json_decref(recs);

    /* nothing left to resume at the next start */
    stop(f);
    start(f);
    assert_int_equal(wl_forget_resume(f->w, f->store, NULL, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    struct wl_forget_resumer *none = NULL;
    assert_int_equal(wl_forget_resume_start(f->w, f->store, &none, err, sizeof err), 0);
    assert_null(none);
}

static void test_forget_resumed_after_memory(void **state)
{
    crash_and_resume(*state, 1, 0);
}

static void test_forget_resumed_after_slice(void **state)
{
    crash_and_resume(*state, 3, 1);
}

/* Markers that are not what a forget writes (garbage, a wrong kind, a bad
 * org) are skipped with a warning: they hold up neither a start nor the
 * forgets after them. */
static void test_forget_damaged_markers(void **state)
{
    struct fx *f = *state;
    static const char *const bad[] = {
        "not json", "{}", "{\"kind\":\"org\",\"org\":\"zz\"}",
        "{\"kind\":\"install\",\"install\":\"tab\\there\"}", "{\"kind\":\"x\"}",
    };
    char key[64], err[256];
    size_t n = 9;
    struct wl_batch *b = wl_batch_new(f->store);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(key, sizeof key, "forget_pending:%020zu", i + 1);
        wl_batch_put(b, WL_CF_META, key, strlen(key), bad[i], strlen(bad[i]));
    }
    assert_int_equal(wl_store_write(f->store, b, 1, err, sizeof err), 0);
    wl_batch_free(b);
    history(f);
    assert_int_equal(wl_forget_resume(f->w, f->store, NULL, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    /* a well-formed marker of nothing: finished (a record of nothing), gone */
    char text[256], hex[65];
    memset(hex, 'e', 64);
    hex[64] = '\0';
    snprintf(text, sizeof text, "{\"kind\":\"org\",\"org\":\"6b%s\",\"via\":\"api\"}", hex);
    b = wl_batch_new(f->store);
    snprintf(key, sizeof key, "forget_pending:%020d", 7);
    wl_batch_put(b, WL_CF_META, key, strlen(key), text, strlen(text));
    assert_int_equal(wl_store_write(f->store, b, 1, err, sizeof err), 0);
    wl_batch_free(b);
    assert_int_equal(wl_forget_resume(f->w, f->store, NULL, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(markers(f), 5);
    /* a forget still works beside them */
    struct wl_forget_target t;
    struct wl_forget_result res;
    target_org(&t, KEY_A);
    forget_ok(f, &t, &res);
    assert_int_equal(key_traces(f, KEY_A), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_ping_peek),
        T(test_forget_org),
        T(test_forget_install_keeps_org),
        T(test_forget_last_install_drops_org),
        T(test_forget_install_without_key),
        T(test_forget_no_key_org_form),
        T(test_forget_unknown),
        T(test_forget_moved_install),
        T(test_forget_org_takes_installs_own_history),
        T(test_forget_in_slices),
        T(test_forget_joins_just_before),
        T(test_concurrent_forgets),
        T(test_forget_races_ingest),
        T(test_forget_large_org),
        T(test_forget_resumed_after_memory),
        T(test_forget_resumed_after_slice),
        T(test_forget_damaged_markers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
