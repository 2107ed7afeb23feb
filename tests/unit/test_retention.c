/* Unit tests for collector/retention.h with a real store in a temporary
 * directory: pings received before the cutoff go, the rest stay, whatever
 * the boundary and gaps in the sequence; install, organization and daily
 * state are untouched; the thread deletes at start; retention_days = 0
 * keeps everything. */
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
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "aggregate.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "records.pb-c.h"
#include "retention.h"
#include "tmpdir.h"

#define DAY 86400000LL

struct fx {
    char root[64];
    char db[128];
    struct wl_store *store;
    struct wl_state *st;
};

static const struct wl_state_opts opts = {
    .install_ttl_ms = 1000ULL * 86400 * 3650,
    .score_half_life_ms = 14ULL * 86400 * 1000,
    .rules = NULL,
};

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[512];
    if (f == NULL)
        return -1;
    wl_log_min_level = WL_LOG_WARN;
    snprintf(f->root, sizeof f->root, "/tmp/wl-test-retention-XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    snprintf(f->db, sizeof f->db, "%s/db", f->root);
    if (wl_store_open(f->db, WL_STORE_PRIMARY, &f->store, err, sizeof err) != 0 ||
        wl_state_load(f->store, &opts, &f->st, err, sizeof err) != 0) {
        print_error("%s\n", err);
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

/* One ping per install ("srv-<i % installs>") received at each of times[];
 * every ping is its own group. */
static void ingest(struct fx *f, const int64_t *times, size_t n, int installs)
{
    static uint64_t seqs[64];
    char err[256];
    for (size_t i = 0; i < n; i++) {
        char id[16];
        uint8_t key[32];
        wl_ping p = WARMLINE__V1__PING__INIT;
        snprintf(id, sizeof id, "srv-%d", (int)(i % (size_t)installs));
        memset(key, 0x40 + (int)(i % (size_t)installs) % 2, sizeof key);
        p.install_id = id;
        p.org_key.data = key;
        p.org_key.len = 32;
        p.seq = ++seqs[i % (size_t)installs];
        p.registered_users = 5;
        struct wl_batch *b = wl_batch_new(f->store);
        assert_int_equal(wl_state_apply(f->st, &p, times[i], times[i], b), WL_APPLY_ACCEPTED);
        wl_state_flush(f->st, b);
        assert_int_equal(wl_store_write(f->store, b, 0, err, sizeof err), 0);
        wl_state_commit(f->st);
        wl_batch_free(b);
    }
}

/* The ingest sequences left in the pings column family. */
static size_t pings_left(struct fx *f, uint64_t *seqs, size_t max)
{
    struct wl_iter *it = wl_iter_new(f->store, WL_CF_PINGS);
    size_t n = 0;
    for (wl_iter_seek_first(it); wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen;
        const char *k = wl_iter_key(it, &klen);
        assert_int_equal(klen, 8);
        if (n < max)
            seqs[n] = wl_be64_get(k);
        n++;
    }
    wl_iter_free(it);
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

static void run(struct fx *f, int64_t cutoff, uint64_t want_deleted, uint64_t want_up_to)
{
    uint64_t deleted = 99, up_to = 99;
    char err[256] = "";
    int rc = wl_retention_run(f->store, cutoff, &deleted, &up_to, err, sizeof err);
    if (rc != 0)
        fail_msg("retention: %d %s", rc, err);
    assert_int_equal(deleted, want_deleted);
    assert_int_equal(up_to, want_up_to);
}

/* ---- tests ---- */

static void test_empty_store(void **state)
{
    struct fx *f = *state;
    run(f, now_ms(), 0, 0);
}

static void test_old_go_recent_stay(void **state)
{
    struct fx *f = *state;
    int64_t now = now_ms();
    int64_t t[10];
    for (int i = 0; i < 6; i++)
        t[i] = now - 500 * DAY + i * 1000;
    for (int i = 6; i < 10; i++)
        t[i] = now - 10 * DAY + i * 1000;
    ingest(f, t, 10, 3);
    uint64_t installs = count_cf(f, WL_CF_INSTALLS), orgs = count_cf(f, WL_CF_ORGS);
    uint64_t daily = count_cf(f, WL_CF_DAILY);

    run(f, now - 400 * DAY, 6, 6);
    uint64_t left[16];
    assert_int_equal(pings_left(f, left, 16), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(left[i], 7 + i);
    /* state is not the raw pings' business */
    assert_int_equal(count_cf(f, WL_CF_INSTALLS), installs);
    assert_int_equal(count_cf(f, WL_CF_ORGS), orgs);
    assert_int_equal(count_cf(f, WL_CF_DAILY), daily);
    /* again: nothing more */
    run(f, now - 400 * DAY, 0, 0);
    /* ingest goes on with the next sequence */
    int64_t later[1] = {now};
    ingest(f, later, 1, 3);
    assert_int_equal(pings_left(f, left, 16), 5);
    assert_int_equal(left[4], 11);
}

static void test_all_old(void **state)
{
    struct fx *f = *state;
    int64_t now = now_ms(), t[5];
    for (int i = 0; i < 5; i++)
        t[i] = now - 900 * DAY + i;
    ingest(f, t, 5, 2);
    run(f, now - 400 * DAY, 5, 5);
    uint64_t left[4];
    assert_int_equal(pings_left(f, left, 4), 0);
    assert_int_equal(count_cf(f, WL_CF_INSTALLS), 2);
}

static void test_none_old(void **state)
{
    struct fx *f = *state;
    int64_t now = now_ms(), t[5];
    for (int i = 0; i < 5; i++)
        t[i] = now - 3 * DAY + i;
    ingest(f, t, 5, 2);
    run(f, now - 400 * DAY, 0, 0);
    uint64_t left[8];
    assert_int_equal(pings_left(f, left, 8), 5);
}

/* Every boundary position, with holes in the sequence (pings forgotten):
 * what is left is exactly what a scan says should be. */
static void test_every_boundary_with_gaps(void **state)
{
    struct fx *f = *state;
    enum { N = 97 };
    int64_t base = now_ms() - 1000 * DAY, t[N];
    char err[256];
    for (int i = 0; i < N; i++)
        t[i] = base + (int64_t)i * DAY;
    ingest(f, t, N, 5);
    /* holes: every seventh ping */
    struct wl_batch *b = wl_batch_new(f->store);
    for (uint64_t s = 7; s <= N; s += 7) {
        uint8_t k[8];
        wl_be64_put(k, s);
        wl_batch_delete(b, WL_CF_PINGS, k, sizeof k);
    }
    assert_int_equal(wl_store_write(f->store, b, 0, err, sizeof err), 0);
    wl_batch_free(b);
    for (int cut = 0; cut <= N + 1; cut += 3) {
        int64_t cutoff = base + (int64_t)cut * DAY - 1; /* pings 1..cut are older */
        uint64_t left[N + 1];
        size_t n = pings_left(f, left, N + 1);
        uint64_t deleted = 0, up_to = 0;
        assert_int_equal(wl_retention_run(f->store, cutoff, &deleted, &up_to, err, sizeof err),
                         0);
        size_t after = pings_left(f, left, N + 1);
        for (size_t i = 0; i < after; i++)
            assert_true(left[i] > (uint64_t)cut); /* every old one went */
        size_t want = 0;
        for (uint64_t s = (uint64_t)cut + 1; s <= N; s++)
            want += s % 7 != 0;
        assert_int_equal(after, want); /* and nothing else */
        assert_true(after <= n);
        if (deleted > 0)
            assert_true(up_to <= (uint64_t)cut);
    }
}

static void test_thread_deletes_at_start(void **state)
{
    struct fx *f = *state;
    struct wl_config cfg;
    struct wl_retention *r = NULL;
    char err[256];
    int64_t now = now_ms(), t[6] = {now - 401 * DAY, now - 401 * DAY + 1, now - 401 * DAY + 2,
                                   now - DAY, now - DAY + 1, now};
    uint64_t before = wl_counter_get(WL_M_retention_pings_deleted);

    ingest(f, t, 6, 2);
    wl_config_defaults(&cfg);
    assert_int_equal(cfg.retention_days, 400);
    cfg.retention_check_ms = 3600 * 1000;
    assert_int_equal(wl_retention_start(&cfg, f->store, &r, err, sizeof err), 0);
    assert_non_null(r);
    uint64_t left[8];
    for (int i = 0; i < 500 && pings_left(f, left, 8) != 3; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    wl_retention_stop(r); /* does not wait for the hour */
    assert_int_equal(pings_left(f, left, 8), 3);
    assert_int_equal(left[0], 4);
    assert_int_equal(wl_counter_get(WL_M_retention_pings_deleted), before + 3);
    wl_config_free(&cfg);
}

static void test_zero_days_keeps_everything(void **state)
{
    struct fx *f = *state;
    struct wl_config cfg;
    struct wl_retention *r = (struct wl_retention *)&cfg; /* must be reset */
    char err[256];
    int64_t now = now_ms(), t[3] = {now - 5000 * DAY, now - 401 * DAY, now};

    ingest(f, t, 3, 1);
    wl_config_defaults(&cfg);
    cfg.retention_days = 0;
    assert_int_equal(wl_retention_start(&cfg, f->store, &r, err, sizeof err), 0);
    assert_non_null(r); /* it still sweeps the messageIds */
    wl_retention_stop(r);
    uint64_t left[4];
    assert_int_equal(pings_left(f, left, 4), 3);
    wl_config_free(&cfg);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_empty_store),
        T(test_old_go_recent_stay),
        T(test_all_old),
        T(test_none_old),
        T(test_every_boundary_with_gaps),
        T(test_thread_deletes_at_start),
        T(test_zero_days_keeps_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
