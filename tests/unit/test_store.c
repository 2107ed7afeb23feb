/* Unit tests for storage/store.h and storage/keys.h, on a real RocksDB in a
 * temporary directory: batches across column families, point reads, ordered
 * iteration, reopening, a secondary beside the primary, the schema check,
 * and the key helpers. */
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

#include "storage/keys.h"
#include "storage/store.h"
#include "tmpdir.h"

/* ---- a temporary directory per test ---- */

struct tmp {
    char root[64]; /* mkdtemp */
    char db[128];  /* root/db: created by the store */
};

static int setup(void **state)
{
    struct tmp *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -1;
    snprintf(t->root, sizeof t->root, "/tmp/wl-test-store-XXXXXX");
    if (mkdtemp(t->root) == NULL) {
        free(t);
        return -1;
    }
    snprintf(t->db, sizeof t->db, "%s/db", t->root);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct tmp *t = *state;
    int rc = wl_test_rmtree(t->root);
    struct stat st;
    int gone = stat(t->root, &st) != 0;
    free(t);
    return rc == 0 && gone ? 0 : -1;
}

static struct wl_store *open_or_fail(const char *dir, enum wl_store_mode mode)
{
    struct wl_store *s = NULL;
    char err[1024] = "";
    int rc = wl_store_open(dir, mode, &s, err, sizeof err);
    if (rc != 0)
        fail_msg("opening %s: rc %d: %s", dir, rc, err);
    assert_non_null(s);
    return s;
}

static void put_sync(struct wl_store *s, enum wl_cf cf, const char *key, const char *val)
{
    char err[512] = "";
    struct wl_batch *b = wl_batch_new(s);
    assert_non_null(b);
    wl_batch_put(b, cf, key, strlen(key), val, strlen(val));
    if (wl_store_write(s, b, 1, err, sizeof err) != 0)
        fail_msg("write: %s", err);
    wl_batch_free(b);
}

/* Expects key -> val in cf. */
static void want_value(struct wl_store *s, enum wl_cf cf, const void *key, size_t klen,
                         const void *want, size_t wantlen)
{
    char *val = NULL, err[512] = "";
    size_t vlen = 0;
    int rc = wl_store_get(s, cf, key, klen, &val, &vlen, err, sizeof err);
    if (rc != 0)
        fail_msg("get in %s: rc %d %s", wl_cf_name(cf), rc, err);
    assert_int_equal(vlen, wantlen);
    assert_memory_equal(val, want, wantlen);
    free(val);
}

static void want_absent(struct wl_store *s, enum wl_cf cf, const void *key, size_t klen)
{
    char *val = (char *)(uintptr_t)1, err[512] = "";
    size_t vlen = 12345;
    assert_int_equal(wl_store_get(s, cf, key, klen, &val, &vlen, err, sizeof err), -ENOENT);
}

#define S(lit) lit, sizeof(lit) - 1

/* ---- column families ---- */

static void test_cf_names(void **state)
{
    (void)state;
    assert_string_equal(wl_cf_name(WL_CF_DEFAULT), "default");
    assert_string_equal(wl_cf_name(WL_CF_PINGS), "pings");
    assert_string_equal(wl_cf_name(WL_CF_INSTALLS), "installs");
    assert_string_equal(wl_cf_name(WL_CF_ORGS), "orgs");
    assert_string_equal(wl_cf_name(WL_CF_QUARANTINE), "quarantine");
    assert_string_equal(wl_cf_name(WL_CF_META), "meta");
    assert_null(wl_cf_name(WL_CF_COUNT));
    assert_null(wl_cf_name((enum wl_cf)-1));
}

/* ---- write, read, reopen ---- */

static void test_batch_across_cfs_and_reopen(void **state)
{
    struct tmp *t = *state;
    char err[512] = "";
    struct wl_store *s = open_or_fail(t->db, WL_STORE_PRIMARY);

    /* The schema version is recorded on first open. */
    want_value(s, WL_CF_META, S("schema_version"), S("1"));

    struct wl_batch *b = wl_batch_new(s);
    assert_non_null(b);
    assert_int_equal(wl_batch_count(b), 0);
    wl_batch_put(b, WL_CF_PINGS, S("k"), S("ping-value"));
    wl_batch_put(b, WL_CF_INSTALLS, S("k"), S("install-value"));
    wl_batch_put(b, WL_CF_ORGS, S("k"), S("org-value"));
    wl_batch_put(b, WL_CF_QUARANTINE, S("k"), S("quarantine-value"));
    wl_batch_put(b, WL_CF_META, S("k"), S("meta-value"));
    wl_batch_put(b, WL_CF_DEFAULT, S("k"), S("default-value"));
    wl_batch_put(b, WL_CF_ORGS, S("doomed"), S("x"));
    wl_batch_put(b, WL_CF_ORGS, S("bin\0key"), S("\0\1\2"));
    assert_int_equal(wl_batch_count(b), 8);
    assert_int_equal(wl_store_write(s, b, 1, err, sizeof err), 0);

    /* The same key is separate in each column family. */
    want_value(s, WL_CF_PINGS, S("k"), S("ping-value"));
    want_value(s, WL_CF_INSTALLS, S("k"), S("install-value"));
    want_value(s, WL_CF_ORGS, S("k"), S("org-value"));
    want_value(s, WL_CF_QUARANTINE, S("k"), S("quarantine-value"));
    want_value(s, WL_CF_META, S("k"), S("meta-value"));
    want_value(s, WL_CF_DEFAULT, S("k"), S("default-value"));
    want_value(s, WL_CF_ORGS, S("bin\0key"), S("\0\1\2"));
    want_absent(s, WL_CF_ORGS, S("bin"));
    want_absent(s, WL_CF_PINGS, S("missing"));
    want_absent(s, WL_CF_PINGS, S("doomed"));

    /* Clear, then a delete and an empty value; async write. */
    wl_batch_clear(b);
    assert_int_equal(wl_batch_count(b), 0);
    wl_batch_delete(b, WL_CF_ORGS, S("doomed"));
    wl_batch_put(b, WL_CF_META, S("empty"), "", 0);
    assert_int_equal(wl_batch_count(b), 2);
    assert_int_equal(wl_store_write(s, b, 0, err, sizeof err), 0);
    want_absent(s, WL_CF_ORGS, S("doomed"));
    want_value(s, WL_CF_META, S("empty"), "", 0);
    /* An empty batch is a valid write. */
    wl_batch_clear(b);
    assert_int_equal(wl_store_write(s, b, 1, err, sizeof err), 0);
    wl_batch_free(b);
    wl_store_close(s);

    /* Reopen: everything is still there. */
    s = open_or_fail(t->db, WL_STORE_PRIMARY);
    want_value(s, WL_CF_PINGS, S("k"), S("ping-value"));
    want_value(s, WL_CF_QUARANTINE, S("k"), S("quarantine-value"));
    want_value(s, WL_CF_ORGS, S("bin\0key"), S("\0\1\2"));
    want_value(s, WL_CF_META, S("empty"), "", 0);
    want_value(s, WL_CF_META, S("schema_version"), S("1"));
    want_absent(s, WL_CF_ORGS, S("doomed"));
    wl_store_close(s);
}

/* ---- iteration ---- */

/* The state's records (installs, organizations, days) are held back too,
 * values with their keys, and go into the WriteBatch in key order: a key's
 * operations keep their order, across a spill when what is held passes
 * 64 MiB, around a value too large to hold and around a range deletion. */
static void test_records_held_back_keep_their_order(void **state)
{
    struct tmp *t = *state;
    char err[512] = "";
    struct wl_store *s = open_or_fail(t->db, WL_STORE_PRIMARY);
    struct wl_batch *b = wl_batch_new(s);
    static char big[1 << 20];
    char *huge = malloc((65u << 20) + 1);

    assert_non_null(huge);
    memset(big, 'x', sizeof big);
    memset(huge, 'h', (65u << 20) + 1);
    wl_batch_put(b, WL_CF_ORGS, S("k"), S("v1"));
    wl_batch_put(b, WL_CF_INSTALLS, S("i"), S("a"));
    wl_batch_delete(b, WL_CF_ORGS, S("k"));
    wl_batch_put(b, WL_CF_ORGS, S("k"), S("v3"));
    wl_batch_put(b, WL_CF_DAILY, S("d"), S("x"));
    wl_batch_put(b, WL_CF_ORGS, S("j"), S("J1"));
    wl_batch_put(b, WL_CF_ORGS, S("j"), huge, (65u << 20) + 1); /* not held: after the rest */
    wl_batch_put(b, WL_CF_ORGS, S("m"), S("M1"));
    for (int i = 0; i < 66; i++) { /* past 64 MiB held: a spill */
        char k[16];
        int n = snprintf(k, sizeof k, "big%02d", i);
        wl_batch_put(b, WL_CF_ORGS, k, (size_t)n, big, sizeof big);
    }
    wl_batch_put(b, WL_CF_ORGS, S("k"), S("v4"));
    wl_batch_delete(b, WL_CF_ORGS, S("m"));
    wl_batch_put(b, WL_CF_DAILY, S("r1"), S("gone"));
    wl_batch_delete_range(b, WL_CF_DAILY, "", 0, S("s")); /* after the held puts */
    wl_batch_put(b, WL_CF_DAILY, S("r2"), S("kept"));
    assert_int_equal(wl_batch_count(b), 79);
    assert_int_equal(wl_store_write(s, b, 1, err, sizeof err), 0);
    want_value(s, WL_CF_ORGS, S("k"), S("v4"));
    want_absent(s, WL_CF_ORGS, S("m"));
    char *v = NULL;
    size_t vlen = 0;
    assert_int_equal(wl_store_get(s, WL_CF_ORGS, S("j"), &v, &vlen, err, sizeof err), 0);
    assert_int_equal(vlen, (65u << 20) + 1); /* after J1, as it came */
    free(v);
    want_value(s, WL_CF_INSTALLS, S("i"), S("a"));
    want_absent(s, WL_CF_DAILY, S("d"));
    want_absent(s, WL_CF_DAILY, S("r1"));
    want_value(s, WL_CF_DAILY, S("r2"), S("kept"));
    assert_int_equal(wl_store_get(s, WL_CF_ORGS, S("big65"), &v, &vlen, err, sizeof err), 0);
    assert_int_equal(vlen, sizeof big);
    free(v);
    free(huge);
    wl_batch_free(b);
    wl_store_close(s);
}

/* A batch grown past 16 MiB (a checkpoint slice of a large organization) is
 * made again when cleared, and writes as before (RocksDB's clear keeps
 * what it grew to). */
static void test_large_batch_cleared_writes_again(void **state)
{
    struct tmp *t = *state;
    char err[512] = "";
    struct wl_store *s = open_or_fail(t->db, WL_STORE_PRIMARY);
    struct wl_batch *b = wl_batch_new(s);
    static char big[1 << 20];
    memset(big, 'x', sizeof big);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 20; i++) { /* 20 MiB */
            char k[16];
            int n = snprintf(k, sizeof k, "k%02d", i);
            wl_batch_put(b, WL_CF_ORGS, k, (size_t)n, big, sizeof big);
        }
        assert_int_equal(wl_batch_count(b), 20);
        wl_batch_clear(b);
        assert_int_equal(wl_batch_count(b), 0);
    }
    wl_batch_put(b, WL_CF_ORGS, S("after"), S("small"));
    assert_int_equal(wl_batch_count(b), 1);
    assert_int_equal(wl_store_write(s, b, 1, err, sizeof err), 0);
    want_value(s, WL_CF_ORGS, S("after"), S("small"));
    want_absent(s, WL_CF_ORGS, S("k00"));
    wl_batch_free(b);
    wl_store_close(s);
}

/* Index operations (rank, org_signals) wait in the batch and go in key
 * order at the write; operations on one key keep their order, the count
 * includes them, and a batch written twice (the retry after a reopen)
 * writes them once. */
static void test_index_operations_in_key_order(void **state)
{
    struct tmp *t = *state;
    char err[512] = "";
    struct wl_store *s = open_or_fail(t->db, WL_STORE_PRIMARY);
    struct wl_batch *b = wl_batch_new(s);

    wl_batch_put(b, WL_CF_RANK, S("m"), "", 0);
    wl_batch_put(b, WL_CF_RANK, S("zz"), "", 0);
    wl_batch_delete(b, WL_CF_RANK, S("m"));   /* put then delete: gone */
    wl_batch_delete(b, WL_CF_RANK, S("b"));   /* delete then put: there */
    wl_batch_put(b, WL_CF_RANK, S("b"), "", 0);
    wl_batch_put(b, WL_CF_RANK, S("a"), "", 0);
    wl_batch_put(b, WL_CF_RANK, S("ab"), "", 0);
    wl_batch_put(b, WL_CF_ORG_SIGNALS, S("a"), "", 0);
    wl_batch_put(b, WL_CF_PINGS, S("p"), S("ping")); /* not held back */
    assert_int_equal(wl_batch_count(b), 9);
    assert_int_equal(wl_store_write(s, b, 1, err, sizeof err), 0);
    assert_int_equal(wl_batch_count(b), 9); /* all in the WriteBatch now */
    assert_int_equal(wl_store_write(s, b, 1, err, sizeof err), 0); /* once more: the same */

    static const char *want[] = {"a", "ab", "b", "zz"};
    struct wl_iter *it = wl_iter_new(s, WL_CF_RANK);
    size_t n = 0, klen;
    for (wl_iter_seek_first(it); wl_iter_valid(it); wl_iter_next(it), n++) {
        const char *k = wl_iter_key(it, &klen);
        assert_true(n < 4);
        assert_int_equal(klen, strlen(want[n]));
        assert_memory_equal(k, want[n], klen);
    }
    assert_int_equal(n, 4);
    wl_iter_free(it);
    it = wl_iter_new(s, WL_CF_ORG_SIGNALS);
    wl_iter_seek_first(it);
    assert_true(wl_iter_valid(it));
    wl_iter_next(it);
    assert_false(wl_iter_valid(it));
    wl_iter_free(it);

    wl_batch_clear(b); /* a cleared batch drops what it held back */
    wl_batch_put(b, WL_CF_RANK, S("c"), "", 0);
    wl_batch_clear(b);
    assert_int_equal(wl_batch_count(b), 0);
    assert_int_equal(wl_store_write(s, b, 1, err, sizeof err), 0);
    char *v = NULL;
    size_t vlen = 0;
    assert_int_equal(wl_store_get(s, WL_CF_RANK, S("c"), &v, &vlen, err, sizeof err), -ENOENT);
    wl_batch_free(b);
    wl_store_close(s);
}

static void test_iterate_big_endian_order(void **state)
{
    struct tmp *t = *state;
    char err[512] = "";
    struct wl_store *s = open_or_fail(t->db, WL_STORE_PRIMARY);
    static const uint64_t written[] = {(uint64_t)1 << 40, 1, 256, 255, (uint64_t)1 << 63,
                                       65536, UINT64_MAX};
    static const uint64_t sorted[] = {1, 255, 256, 65536, (uint64_t)1 << 40, (uint64_t)1 << 63,
                                      UINT64_MAX};
    size_t n = sizeof written / sizeof written[0];

    struct wl_batch *b = wl_batch_new(s);
    for (size_t i = 0; i < n; i++) {
        uint8_t key[8];
        char val[32];
        wl_be64_put(key, written[i]);
        snprintf(val, sizeof val, "v%llu", (unsigned long long)written[i]);
        wl_batch_put(b, WL_CF_PINGS, key, sizeof key, val, strlen(val));
    }
    /* Something in another column family must not show up. */
    wl_batch_put(b, WL_CF_QUARANTINE, S("\0\0\0\0\0\0\0\2"), S("other"));
    assert_int_equal(wl_store_write(s, b, 1, err, sizeof err), 0);
    wl_batch_free(b);

    struct wl_iter *it = wl_iter_new(s, WL_CF_PINGS);
    assert_non_null(it);
    size_t i = 0;
    for (wl_iter_seek_first(it); wl_iter_valid(it); wl_iter_next(it), i++) {
        size_t klen, vlen;
        const char *k = wl_iter_key(it, &klen);
        const char *v = wl_iter_value(it, &vlen);
        char want[32];
        assert_true(i < n);
        assert_int_equal(klen, 8);
        assert_int_equal(wl_be64_get(k), sorted[i]);
        snprintf(want, sizeof want, "v%llu", (unsigned long long)sorted[i]);
        assert_int_equal(vlen, strlen(want));
        assert_memory_equal(v, want, vlen);
    }
    assert_int_equal(i, n);
    assert_int_equal(wl_iter_status(it, err, sizeof err), 0);

    /* seek lands on the first key at or after the target */
    uint8_t target[8];
    size_t klen;
    wl_be64_put(target, 2);
    wl_iter_seek(it, target, sizeof target);
    assert_true(wl_iter_valid(it));
    assert_int_equal(wl_be64_get(wl_iter_key(it, &klen)), 255);
    wl_be64_put(target, 256);
    wl_iter_seek(it, target, sizeof target);
    assert_int_equal(wl_be64_get(wl_iter_key(it, &klen)), 256);
    wl_iter_seek_last(it);
    assert_true(wl_iter_valid(it));
    assert_int_equal(wl_be64_get(wl_iter_key(it, &klen)), UINT64_MAX);
    wl_iter_next(it);
    assert_false(wl_iter_valid(it));
    wl_iter_free(it);

    /* An empty column family iterates to nothing. */
    it = wl_iter_new(s, WL_CF_INSTALLS);
    wl_iter_seek_first(it);
    assert_false(wl_iter_valid(it));
    wl_iter_seek_last(it);
    assert_false(wl_iter_valid(it));
    assert_int_equal(wl_iter_status(it, err, sizeof err), 0);
    wl_iter_free(it);
    wl_iter_free(NULL);
    wl_batch_free(NULL);
    wl_store_close(NULL);
    wl_store_close(s);
}

/* ---- a secondary beside the primary ---- */

static void test_secondary_beside_primary(void **state)
{
    struct tmp *t = *state;
    char err[512] = "";
    struct wl_store *p = open_or_fail(t->db, WL_STORE_PRIMARY);
    put_sync(p, WL_CF_INSTALLS, "alpha", "1");

    struct wl_store *s = open_or_fail(t->db, WL_STORE_SECONDARY);
    want_value(s, WL_CF_INSTALLS, S("alpha"), S("1"));
    want_value(s, WL_CF_META, S("schema_version"), S("1"));

    /* The primary writes on; after catch_up the secondary sees it. */
    put_sync(p, WL_CF_INSTALLS, "beta", "2");
    put_sync(p, WL_CF_INSTALLS, "alpha", "3");
    struct wl_batch *b = wl_batch_new(p);
    wl_batch_delete(b, WL_CF_META, S("nothing"));
    wl_batch_put(b, WL_CF_ORGS, S("org"), S("o"));
    assert_int_equal(wl_store_write(p, b, 1, err, sizeof err), 0);
    wl_batch_free(b);

    if (wl_store_catch_up(s, err, sizeof err) != 0)
        fail_msg("catch_up: %s", err);
    want_value(s, WL_CF_INSTALLS, S("beta"), S("2"));
    want_value(s, WL_CF_INSTALLS, S("alpha"), S("3"));
    want_value(s, WL_CF_ORGS, S("org"), S("o"));

    /* Iteration on the secondary sees the caught-up view, in order. */
    struct wl_iter *it = wl_iter_new(s, WL_CF_INSTALLS);
    size_t klen, n = 0;
    for (wl_iter_seek_first(it); wl_iter_valid(it); wl_iter_next(it), n++) {
        const char *k = wl_iter_key(it, &klen);
        assert_memory_equal(k, n == 0 ? "alpha" : "beta", klen);
    }
    assert_int_equal(n, 2);
    wl_iter_free(it);

    /* catch_up on a primary is a no-op */
    assert_int_equal(wl_store_catch_up(p, err, sizeof err), 0);

    wl_store_close(s);
    wl_store_close(p);
}

static void test_secondary_missing_dir(void **state)
{
    struct tmp *t = *state;
    char dir[256], err[1024] = "";
    struct wl_store *s = (struct wl_store *)(uintptr_t)1;
    snprintf(dir, sizeof dir, "%s/does-not-exist", t->root);
    int rc = wl_store_open(dir, WL_STORE_SECONDARY, &s, err, sizeof err);
    assert_true(rc < 0);
    assert_ptr_equal(s, (struct wl_store *)(uintptr_t)1); /* not touched */
    if (strstr(err, dir) == NULL || strstr(err, "No such file") == NULL)
        fail_msg("error does not name the directory and why: %s", err);
    /* ... and it did not create it either. */
    struct stat st;
    assert_int_not_equal(stat(dir, &st), 0);
}

/* A directory that exists but holds no database is no database to read. */
static void test_secondary_empty_dir(void **state)
{
    struct tmp *t = *state;
    char err[1024] = "";
    struct wl_store *s = NULL;
    assert_int_equal(mkdir(t->db, 0700), 0);
    int rc = wl_store_open(t->db, WL_STORE_SECONDARY, &s, err, sizeof err);
    assert_true(rc < 0);
    assert_non_null(strstr(err, t->db));
}

static void test_primary_cannot_create(void **state)
{
    struct tmp *t = *state;
    char file[256], dir[300], err[1024] = "";
    struct wl_store *s = NULL;
    /* A parent that is a regular file cannot hold a directory. */
    snprintf(file, sizeof file, "%s/plainfile", t->root);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(dir, sizeof dir, "%s/db", file);
    int rc = wl_store_open(dir, WL_STORE_PRIMARY, &s, err, sizeof err);
    assert_int_equal(rc, -ENOTDIR);
    assert_non_null(strstr(err, dir));
    unlink(file);
}

/* Missing parents of the data directory are created, like mkdir -p. */
static void test_primary_creates_parents(void **state)
{
    struct tmp *t = *state;
    char dir[256], err[1024] = "";
    struct wl_store *s = NULL;
    struct stat st;
    snprintf(dir, sizeof dir, "%s/no/such/parent", t->root);
    assert_int_equal(wl_store_open(dir, WL_STORE_PRIMARY, &s, err, sizeof err), 0);
    wl_store_close(s);
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
}

/* Only one primary at a time: the second is refused (RocksDB's lock). */
static void test_second_primary_refused(void **state)
{
    struct tmp *t = *state;
    char err[1024] = "";
    struct wl_store *p = open_or_fail(t->db, WL_STORE_PRIMARY);
    struct wl_store *q = NULL;
    int rc = wl_store_open(t->db, WL_STORE_PRIMARY, &q, err, sizeof err);
    assert_true(rc < 0);
    assert_null(q);
    assert_non_null(strstr(err, t->db));
    wl_store_close(p);
}

/* ---- schema version ---- */

static void test_schema_mismatch(void **state)
{
    struct tmp *t = *state;
    char err[1024] = "";
    struct wl_store *s = open_or_fail(t->db, WL_STORE_PRIMARY);
    put_sync(s, WL_CF_META, "schema_version", "99");
    wl_store_close(s);

    s = NULL;
    int rc = wl_store_open(t->db, WL_STORE_PRIMARY, &s, err, sizeof err);
    assert_true(rc < 0);
    assert_null(s);
    if (strstr(err, "schema") == NULL || strstr(err, "99") == NULL)
        fail_msg("error does not explain the schema mismatch: %s", err);

    err[0] = '\0';
    rc = wl_store_open(t->db, WL_STORE_SECONDARY, &s, err, sizeof err);
    assert_true(rc < 0);
    assert_null(s);
    assert_non_null(strstr(err, "schema"));

    /* Refusing did not rewrite it: the next open is refused the same way. */
    err[0] = '\0';
    rc = wl_store_open(t->db, WL_STORE_PRIMARY, &s, err, sizeof err);
    assert_true(rc < 0);
    assert_non_null(strstr(err, "99"));
}

/* ---- keys.h ---- */

static void test_be64(void **state)
{
    (void)state;
    uint8_t b[8];
    wl_be64_put(b, 0x0102030405060708ULL);
    assert_memory_equal(b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    assert_int_equal(wl_be64_get(b), 0x0102030405060708ULL);
    wl_be64_put(b, 1);
    assert_memory_equal(b, "\0\0\0\0\0\0\0\x01", 8);
    wl_be64_put(b, UINT64_MAX);
    assert_int_equal(wl_be64_get(b), UINT64_MAX);
    /* byte order == numeric order */
    uint8_t x[8], y[8];
    static const uint64_t v[] = {0, 1, 255, 256, 65535, 65536, (uint64_t)1 << 40,
                                 ((uint64_t)1 << 40) + 1, (uint64_t)1 << 63, UINT64_MAX};
    for (size_t i = 0; i + 1 < sizeof v / sizeof v[0]; i++) {
        wl_be64_put(x, v[i]);
        wl_be64_put(y, v[i + 1]);
        assert_true(memcmp(x, y, 8) < 0);
        assert_int_equal(wl_be64_get(x), v[i]);
    }
}

static void test_org_id_from_key(void **state)
{
    (void)state;
    uint8_t key[WL_ORG_KEY_BYTES], id[WL_ORG_ID_MAX + 8];
    char text[2 * WL_ORG_KEY_BYTES + 1 + 8];
    for (int i = 0; i < WL_ORG_KEY_BYTES; i++)
        key[i] = (uint8_t)(i * 8 + 7); /* 07 0f 17 ... ff */
    memset(id, 0xee, sizeof id);
    size_t n = wl_org_id(id, key, sizeof key, "ignored-install", 15);
    assert_int_equal(n, 1 + WL_ORG_KEY_BYTES);
    assert_int_equal(id[0], 'k');
    assert_memory_equal(id + 1, key, WL_ORG_KEY_BYTES);
    assert_int_equal(id[n], 0xee);

    memset(text, 'X', sizeof text);
    wl_org_id_format(id, n, text, sizeof text);
    assert_string_equal(text,
                        "070f171f272f373f474f575f676f777f878f979fa7afb7bfc7cfd7dfe7eff7ff");
    assert_int_equal(strlen(text), 64);
}

static void test_org_id_from_install(void **state)
{
    (void)state;
    uint8_t id[WL_ORG_ID_MAX];
    char text[8 + 64 + 1];
    char longest[65];
    memset(longest, 'z', 64);
    longest[64] = '\0';

    /* no org_key */
    size_t n = wl_org_id(id, NULL, 0, "abc-123", 7);
    assert_int_equal(n, 8);
    assert_int_equal(id[0], 'i');
    assert_memory_equal(id + 1, "abc-123", 7);
    wl_org_id_format(id, n, text, sizeof text);
    assert_string_equal(text, "install:abc-123");

    /* a key of the wrong length is no key */
    uint8_t shortkey[31] = {0};
    n = wl_org_id(id, shortkey, sizeof shortkey, "x", 1);
    assert_int_equal(n, 2);
    assert_memory_equal(id, "ix", 2);

    /* the longest install id fits WL_ORG_ID_MAX and formats whole */
    n = wl_org_id(id, NULL, 0, longest, 64);
    assert_int_equal(n, WL_ORG_ID_MAX);
    wl_org_id_format(id, n, text, sizeof text);
    assert_int_equal(strlen(text), 8 + 64);
    assert_memory_equal(text, "install:", 8);
    assert_memory_equal(text + 8, longest, 64);

    /* A key-tagged id and an install-tagged id never collide, even for an
     * install id that looks like a key. */
    uint8_t a[WL_ORG_ID_MAX], b[WL_ORG_ID_MAX], key[32];
    memset(key, 'q', sizeof key);
    size_t na = wl_org_id(a, key, 32, "q", 1);
    size_t nb = wl_org_id(b, NULL, 0, "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", 32);
    assert_int_equal(na, nb);
    assert_memory_not_equal(a, b, na);

    /* unknown tags */
    wl_org_id_format((const uint8_t *)"z123", 4, text, sizeof text);
    assert_string_equal(text, "unknown");
    wl_org_id_format((const uint8_t *)"", 0, text, sizeof text);
    assert_string_equal(text, "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cf_names),
        cmocka_unit_test_setup_teardown(test_batch_across_cfs_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterate_big_endian_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_operations_in_key_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_batch_cleared_writes_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_held_back_keep_their_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secondary_beside_primary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secondary_missing_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secondary_empty_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_primary_cannot_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_primary_creates_parents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_primary_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_mismatch, setup, teardown),
        cmocka_unit_test(test_be64),
        cmocka_unit_test(test_org_id_from_key),
        cmocka_unit_test(test_org_id_from_install),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
