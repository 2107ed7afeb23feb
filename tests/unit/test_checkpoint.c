/* tools/checkpoint.c on a real RocksDB: where the state records' checkpoint
 * stands (a store from before checkpoints, a window of pings after one, bad
 * meta values, a ping that does not decode), and the bounds the derived
 * exports take from it (tools/export_table.c: accounts at state_seq, daily
 * whole only before the first ping the checkpoint does not hold). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "records.pb-c.h"
#include "storage/keys.h"
#include "storage/store.h"
#include "tmpdir.h"
#include "tools/checkpoint.c"
#include "tools/export_fmt.c"
#include "tools/export_table.c"

#define DAY_MS 86400000LL
#define HOUR_MS 3600000LL

struct fx {
    char root[64], db[96];
    struct wl_store *store;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[512];
    if (f == NULL)
        return -1;
    snprintf(f->root, sizeof f->root, "/tmp/wl-test-checkpoint-XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    snprintf(f->db, sizeof f->db, "%s/db", f->root);
    if (wl_store_open(f->db, WL_STORE_PRIMARY, &f->store, err, sizeof err) != 0) {
        print_error("setup: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    wl_store_close(f->store);
    int rc = wl_test_rmtree(f->root);
    free(f);
    return rc;
}

static void write_batch(struct fx *f, struct wl_batch *b)
{
    char err[512];
    assert_int_equal(wl_store_write(f->store, b, 0, err, sizeof err), 0);
    wl_batch_free(b);
}

static void put_meta(struct wl_batch *b, const char *name, uint64_t v)
{
    uint8_t val[8];
    wl_be64_put(val, v);
    wl_batch_put(b, WL_CF_META, name, strlen(name), val, sizeof val);
}

static void put_ping(struct wl_batch *b, uint64_t seq, int64_t received_at, int64_t event_at)
{
    Warmline__Store__V1__StoredPing sp = WARMLINE__STORE__V1__STORED_PING__INIT;
    uint8_t key[8], buf[64];
    sp.ingest_seq = seq;
    sp.received_at = received_at;
    sp.event_at = event_at;
    size_t n = warmline__store__v1__stored_ping__get_packed_size(&sp);
    assert_true(n <= sizeof buf);
    warmline__store__v1__stored_ping__pack(&sp, buf);
    wl_be64_put(key, seq);
    wl_batch_put(b, WL_CF_PINGS, key, 8, buf, n);
}

static void read_cp(struct fx *f, int count, struct wl_checkpoint *cp)
{
    char err[512] = "";
    int rc = wl_checkpoint_read(f->store, NULL, count, cp, err, sizeof err);
    if (rc != 0)
        print_error("wl_checkpoint_read: %s\n", err);
    assert_int_equal(rc, 0);
}

/* An empty store, and one from before checkpoints (no state_seq: its
 * records are exact at ingest_seq). */
static void test_empty_and_before_checkpoints(void **state)
{
    struct fx *f = *state;
    struct wl_checkpoint cp;
    read_cp(f, 1, &cp);
    assert_int_equal(cp.ingest_seq, 0);
    assert_int_equal(cp.seq, 0);
    assert_int_equal(cp.at, 0);
    assert_int_equal(cp.pings_after, 0);
    assert_int_equal(cp.first_after_at, 0);

    struct wl_batch *b = wl_batch_new(f->store);
    for (uint64_t s = 1; s <= 5; s++)
        put_ping(b, s, 1000 * (int64_t)s, 1000 * (int64_t)s);
    put_meta(b, WL_META_INGEST_SEQ, 4); /* the last key is higher: it wins */
    write_batch(f, b);
    read_cp(f, 1, &cp);
    assert_int_equal(cp.ingest_seq, 5);
    assert_int_equal(cp.seq, 5);
    assert_int_equal(cp.at, 0);
    assert_int_equal(cp.pings_after, 0);
    assert_int_equal(cp.first_after_at, 0);
}

/* A checkpoint at 3 with pings 4..7 after it (6 deleted: counted as
 * stored, not as sequences). */
static void test_window_after_a_checkpoint(void **state)
{
    struct fx *f = *state;
    struct wl_checkpoint cp;
    struct wl_batch *b = wl_batch_new(f->store);
    for (uint64_t s = 1; s <= 7; s++) {
        if (s != 6)
            put_ping(b, s, 10 * DAY_MS + (int64_t)s, s == 4 ? 9 * DAY_MS : 10 * DAY_MS);
    }
    put_meta(b, WL_META_INGEST_SEQ, 7);
    put_meta(b, WL_META_STATE_SEQ, 3);
    put_meta(b, WL_META_STATE_AT, 1700000000123ULL);
    write_batch(f, b);

    read_cp(f, 1, &cp);
    assert_int_equal(cp.ingest_seq, 7);
    assert_int_equal(cp.seq, 3);
    assert_int_equal(cp.at, 1700000000123LL);
    assert_int_equal(cp.pings_after, 3);
    /* ping 4: imported, its event time the earlier */
    assert_int_equal(cp.first_after_at, 9 * DAY_MS);
    read_cp(f, 0, &cp);
    assert_int_equal(cp.pings_after, 4); /* without counting: the sequences */
    char iso[40];
    assert_string_equal(wl_checkpoint_iso(cp.at, iso, sizeof iso), "2023-11-14T22:13:20.123Z");
    assert_string_equal(wl_checkpoint_iso(0, iso, sizeof iso), "");

    /* The derived exports' bounds. */
    struct wl_export_ctx ctx = {.store = f->store, .as_of = 20 * DAY_MS + 5 * HOUR_MS, .cp = cp};
    const struct wl_export_table *daily = wl_export_table_find("daily");
    const struct wl_export_table *accounts = wl_export_table_find("accounts");
    const struct wl_export_table *pings = wl_export_table_find("pings");
    uint64_t upper = 0;
    char err[256];
    assert_int_equal(wl_export_upper(accounts, &ctx, &upper, err, sizeof err), 0);
    assert_int_equal(upper, 3);
    assert_int_equal(wl_export_upper(pings, &ctx, &upper, err, sizeof err), 0);
    assert_int_equal(upper, 7);
    /* Ping 4 (day 9) is not in the records: a day is whole once it ended an
     * hour before it (pings queued across midnight), so day 7 here. */
    assert_int_equal(wl_export_upper(daily, &ctx, &upper, err, sizeof err), 0);
    assert_int_equal(upper, 7);
    ctx.cp.first_after_at = 9 * DAY_MS + HOUR_MS;
    assert_int_equal(wl_export_upper(daily, &ctx, &upper, err, sizeof err), 0);
    assert_int_equal(upper, 8);
    ctx.cp.first_after_at = 9 * DAY_MS + HOUR_MS - 1;
    assert_int_equal(wl_export_upper(daily, &ctx, &upper, err, sizeof err), 0);
    assert_int_equal(upper, 7);
    ctx.cp.first_after_at = 0; /* nothing after the checkpoint: the clock decides */
    assert_int_equal(wl_export_upper(daily, &ctx, &upper, err, sizeof err), 0);
    assert_int_equal(upper, 19);
    ctx.cp.first_after_at = HOUR_MS / 2; /* the first day is not whole */
    assert_int_equal(wl_export_upper(daily, &ctx, &upper, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "the next checkpoint"));
}

/* A state_seq past the pings (nothing stored after it) is clipped. */
static void test_state_seq_past_the_pings(void **state)
{
    struct fx *f = *state;
    struct wl_checkpoint cp;
    struct wl_batch *b = wl_batch_new(f->store);
    put_ping(b, 1, 5, 5);
    put_meta(b, WL_META_STATE_SEQ, 9);
    write_batch(f, b);
    read_cp(f, 1, &cp);
    assert_int_equal(cp.ingest_seq, 1);
    assert_int_equal(cp.seq, 1);
    assert_int_equal(cp.pings_after, 0);
}

static void test_bad_records(void **state)
{
    struct fx *f = *state;
    struct wl_checkpoint cp;
    char err[512] = "";
    struct wl_batch *b = wl_batch_new(f->store);
    wl_batch_put(b, WL_CF_META, WL_META_STATE_SEQ, strlen(WL_META_STATE_SEQ), "\0\0\0\1", 4);
    write_batch(f, b);
    assert_int_equal(wl_checkpoint_read(f->store, NULL, 1, &cp, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "meta state_seq: 4 bytes"));

    /* A ping after the checkpoint that does not decode. */
    b = wl_batch_new(f->store);
    put_meta(b, WL_META_STATE_SEQ, 0);
    uint8_t key[8];
    wl_be64_put(key, 1);
    wl_batch_put(b, WL_CF_PINGS, key, 8, "\xff\xff\xff", 3);
    write_batch(f, b);
    err[0] = '\0';
    assert_int_equal(wl_checkpoint_read(f->store, NULL, 1, &cp, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "ingest_seq 1 does not decode"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty_and_before_checkpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_after_a_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_seq_past_the_pings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_records, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
