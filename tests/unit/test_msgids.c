/* Unit tests for collector/msgids.h with a real store in a temporary
 * directory: seen ids, the group's own, the key across a reopen, a
 * forget's range delete, and the sweep (expiry, then the byte budget). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msgids.h"
#include "tmpdir.h"

struct fx {
    char root[64];
    char db[128];
    struct wl_store *store;
    struct wl_msgids *m;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[512];
    snprintf(f->root, sizeof f->root, "/tmp/wl-test-msgids-XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    snprintf(f->db, sizeof f->db, "%s/db", f->root);
    if (wl_store_open(f->db, WL_STORE_PRIMARY, &f->store, err, sizeof err) != 0 ||
        wl_msgids_open(f->store, &f->m, err, sizeof err) != 0) {
        print_error("%s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    wl_msgids_free(f->m);
    wl_store_close(f->store);
    int rc = wl_test_rmtree(f->root);
    free(f);
    return rc;
}

/* Checks (install, id); adds it when new. Returns what the check said. */
static int see(struct fx *f, struct wl_batch *b, const char *install, const char *id, int64_t at)
{
    struct wl_msgid_key k;
    int rc = wl_msgids_check(f->m, install, strlen(install), id, strlen(id), &k);
    if (rc == 0)
        wl_msgids_add(f->m, &k, at, b);
    return rc;
}

static void write_group(struct fx *f, struct wl_batch *b)
{
    char err[256];
    assert_int_equal(wl_store_write(f->store, b, 1, err, sizeof err), 0);
    wl_batch_clear(b);
    wl_msgids_group_done(f->m);
}

static void test_seen_in_group_and_after(void **state)
{
    struct fx *f = *state;
    struct wl_batch *b = wl_batch_new(f->store);
    assert_int_equal(see(f, b, "inst-a", "m-1", 1000), 0);
    assert_int_equal(see(f, b, "inst-a", "m-1", 1000), 1); /* twice in one group */
    assert_int_equal(see(f, b, "inst-b", "m-1", 1000), 0); /* another install's */
    for (int i = 0; i < 500; i++) {                        /* the group's set grows */
        char id[32];
        snprintf(id, sizeof id, "g-%d", i);
        assert_int_equal(see(f, b, "inst-a", id, 1000), 0);
    }
    assert_int_equal(see(f, b, "inst-a", "g-7", 1000), 1);
    write_group(f, b);
    assert_int_equal(see(f, b, "inst-a", "m-1", 2000), 1); /* from the store */
    assert_int_equal(see(f, b, "inst-a", "m-2", 2000), 0);
    wl_batch_clear(b);
    wl_msgids_group_done(f->m); /* a failed write: m-2 was never stored */
    assert_int_equal(see(f, b, "inst-a", "m-2", 2000), 0);
    write_group(f, b);
    wl_batch_free(b);

    /* the key is the data directory's: the same after a reopen */
    char err[256];
    wl_msgids_free(f->m);
    wl_store_close(f->store);
    assert_int_equal(wl_store_open(f->db, WL_STORE_PRIMARY, &f->store, err, sizeof err), 0);
    assert_int_equal(wl_msgids_open(f->store, &f->m, err, sizeof err), 0);
    b = wl_batch_new(f->store);
    assert_int_equal(see(f, b, "inst-a", "m-1", 3000), 1);
    assert_int_equal(see(f, b, "inst-a", "m-2", 3000), 1);
    wl_batch_free(b);
}

static uint64_t count(struct fx *f)
{
    struct wl_iter *it = wl_iter_new(f->store, WL_CF_MSGIDS);
    uint64_t n = 0;
    for (wl_iter_seek_first(it); wl_iter_valid(it); wl_iter_next(it))
        n++;
    wl_iter_free(it);
    return n;
}

static void test_forget_install_takes_only_its_ids(void **state)
{
    struct fx *f = *state;
    struct wl_batch *b = wl_batch_new(f->store);
    /* "inst" is a prefix of "inst2": its range must not reach it */
    for (int i = 0; i < 50; i++) {
        char id[32];
        snprintf(id, sizeof id, "x-%d", i);
        see(f, b, "inst", id, 1000);
        see(f, b, "inst2", id, 1000);
    }
    write_group(f, b);
    assert_int_equal(count(f), 100);
    wl_msgids_forget_install(b, "inst", 4);
    write_group(f, b);
    assert_int_equal(count(f), 50);
    assert_int_equal(see(f, b, "inst", "x-3", 2000), 0);  /* gone: new again */
    assert_int_equal(see(f, b, "inst2", "x-3", 2000), 1); /* kept */
    wl_batch_free(b);
}

static void test_sweep_expires_then_keeps_the_budget(void **state)
{
    struct fx *f = *state;
    struct wl_batch *b = wl_batch_new(f->store);
    char err[256];
    struct wl_msgids_swept s;

    for (int i = 0; i < 1000; i++) { /* seen at 1000 .. 1999 */
        char id[32];
        snprintf(id, sizeof id, "id-%d", i);
        assert_int_equal(see(f, b, "inst-s", id, 1000 + i), 0);
    }
    write_group(f, b);
    /* nothing older than the ttl, everything within the budget */
    assert_int_equal(wl_msgids_sweep(f->store, 2000, 5000, 1 << 20, &s, err, sizeof err), 0);
    assert_int_equal(s.kept, 1000);
    assert_int_equal(s.expired + s.evicted, 0);
    uint64_t per = s.kept_bytes / s.kept;
    assert_true(per >= 8 + 1 + 6 + 16);
    /* now 1,200: the first 200 are past the ttl */
    assert_int_equal(wl_msgids_sweep(f->store, 6200, 5000, 1 << 20, &s, err, sizeof err), 0);
    assert_int_equal(s.expired, 200);
    assert_int_equal(s.kept, 800);
    /* a budget of 300 ids: the oldest 500 go, the newest 300 stay */
    assert_int_equal(wl_msgids_sweep(f->store, 6200, 5000, 300 * per, &s, err, sizeof err), 0);
    assert_int_equal(s.evicted, 500);
    assert_int_equal(s.kept, 300);
    assert_true(s.kept_bytes <= 300 * per);
    assert_int_equal(count(f), 300);
    assert_int_equal(see(f, b, "inst-s", "id-699", 7000), 0); /* evicted: new again */
    assert_int_equal(see(f, b, "inst-s", "id-700", 7000), 1);
    wl_batch_free(b);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_seen_in_group_and_after),
        T(test_forget_install_takes_only_its_ids),
        T(test_sweep_expires_then_keeps_the_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
