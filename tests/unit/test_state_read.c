/* Unit tests for collector/state_read.h: records packed from the writer's
 * memory for other threads, with a real store in a temporary directory.
 * The last test reads from two threads while this one applies pings and
 * checkpoints, as the writer does (run under the sanitizers by make
 * sanitize). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "records.pb-c.h"
#include "state_read.h"
#include "storage/keys.h"
#include "tmpdir.h"

typedef Warmline__Store__V1__OrgState org_rec;
typedef Warmline__Store__V1__InstallState install_rec;

struct fx {
    char root[64];
    char db[128];
    struct wl_store *store;
    struct wl_state *st;
    struct wl_state_reader *r;
};

static const struct wl_state_opts opts = {
    .install_ttl_ms = 1000ULL * 86400 * 3650,
    .score_half_life_ms = 14ULL * 86400 * 1000,
};

#define T0 1700000000000LL

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[512];
    if (f == NULL)
        return -1;
    snprintf(f->root, sizeof f->root, "/tmp/wl-test-state-read-XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    snprintf(f->db, sizeof f->db, "%s/db", f->root);
    if (wl_store_open(f->db, WL_STORE_PRIMARY, &f->store, err, sizeof err) != 0 ||
        wl_state_load(f->store, &opts, &f->st, err, sizeof err) != 0) {
        print_error("setup: %s\n", err);
        return -1;
    }
    f->r = wl_state_reader_new();
    if (f->r == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    wl_state_reader_set(f->r, NULL);
    wl_state_reader_free(f->r);
    wl_state_free(f->st);
    wl_store_close(f->store);
    int rc = wl_test_rmtree(f->root);
    free(f);
    return rc;
}

/* One ping of install id in the organization of key byte k (users). */
static void apply(struct fx *f, struct wl_batch *b, const char *id, int k, uint64_t seq,
                  uint32_t users, int64_t at)
{
    uint8_t key[32];
    wl_ping p = WARMLINE__V1__PING__INIT;
    memset(key, k, sizeof key);
    p.install_id = (char *)id;
    p.org_key.data = key;
    p.org_key.len = sizeof key;
    p.seq = seq;
    p.version = "9.11";
    p.edition = "team";
    p.registered_users = users;
    p.active_users_monthly = users;
    wl_state_change_begin(f->r);
    assert_int_equal(wl_state_apply(f->st, &p, at, at, b), WL_APPLY_ACCEPTED);
    wl_state_change_end(f->r);
}

/* A Rudder edge ping carrying one count. */
static void edge(struct fx *f, struct wl_batch *b, const char *id, enum wl_count c, uint32_t v,
                 int64_t at)
{
    wl_ping p = WARMLINE__V1__PING__INIT;
    struct wl_edge e = {.source = WL_SOURCE_RUDDER, .presence = WL_PRESENT(WL_FIELD_COUNT(c))};
    uint64_t counts[WL_N_COUNTS] = {0};
    counts[c] = v;
    p.install_id = (char *)id;
    p.seq = 1;
    p.registered_users = (uint32_t)counts[WL_COUNT_registered_users];
    p.active_users_daily = (uint32_t)counts[WL_COUNT_active_users_daily];
    p.bot_accounts = (uint32_t)counts[WL_COUNT_bot_accounts];
    p.guest_accounts = (uint32_t)counts[WL_COUNT_guest_accounts];
    p.teams = (uint32_t)counts[WL_COUNT_teams];
    wl_state_change_begin(f->r);
    assert_int_equal(wl_state_apply_edge(f->st, &p, &e, at, at, b), WL_APPLY_ACCEPTED);
    wl_state_change_end(f->r);
}

/* The group's write: with a checkpoint when asked. */
static void commit(struct fx *f, struct wl_batch *b, int checkpoint)
{
    char err[512] = "";
    if (checkpoint)
        wl_state_flush(f->st, b);
    else
        wl_state_stage(f->st, b);
    assert_int_equal(wl_store_write(f->store, b, 0, err, sizeof err), 0);
    wl_batch_clear(b);
    wl_state_change_begin(f->r);
    wl_state_commit(f->st);
    wl_state_change_end(f->r);
}

static size_t org_id(int k, uint8_t *out)
{
    uint8_t key[32];
    memset(key, k, sizeof key);
    return wl_org_id(out, key, sizeof key, NULL, 0);
}

static void test_no_state_then_unknown(void **state)
{
    struct fx *f = *state;
    org_rec *o = NULL;
    install_rec *in = NULL;
    uint8_t org[WL_ORG_ID_MAX];
    size_t n = org_id(1, org);
    struct wl_state_position pos;

    /* before the writer sets its state: the caller reads the store */
    assert_int_equal(wl_state_read_org(f->r, org, n, &o), -EAGAIN);
    assert_int_equal(wl_state_read_install(f->r, "a", &in), -EAGAIN);
    assert_int_equal(wl_state_read_position(f->r, &pos), -EAGAIN);
    wl_state_reader_set(f->r, f->st);
    assert_int_equal(wl_state_read_org(f->r, org, n, &o), -ENOENT);
    assert_int_equal(wl_state_read_install(f->r, "a", &in), -ENOENT);
    assert_null(o);
    assert_null(in);
}

/* Memory answers before any checkpoint and after: an install's record
 * names its latest ping by last_ingest_seq, and the log has it once the
 * group is written (memory keeps no ping). */
static void test_records_from_memory(void **state)
{
    struct fx *f = *state;
    struct wl_batch *b = wl_batch_new(f->store);
    uint8_t org[WL_ORG_ID_MAX];
    size_t n = org_id(7, org);
    org_rec *o = NULL;
    install_rec *in = NULL;
    struct wl_state_position pos;

    wl_state_reader_set(f->r, f->st);
    apply(f, b, "srv-1", 7, 1, 10, T0);
    apply(f, b, "srv-2", 7, 1, 20, T0 + 1000);
    commit(f, b, 0);
    assert_int_equal(wl_state_read_org(f->r, org, n, &o), 0);
    assert_int_equal(o->installs_total, 2);
    assert_int_equal(o->installs_counting, 2);
    assert_int_equal(o->totals[WL_COUNT_registered_users], 30);
    assert_int_equal(o->n_versions, 1);
    assert_string_equal(o->versions[0], "9.11");
    assert_int_equal(o->day, (uint32_t)(T0 / 86400000));
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    assert_int_equal(wl_state_read_install(f->r, "srv-2", &in), 0);
    assert_string_equal(in->install_id, "srv-2");
    assert_int_equal(in->last_seq, 1);
    assert_null(in->last_ping); /* the log has it */
    assert_int_equal(in->n_counts, WL_N_COUNTS);
    assert_int_equal(in->counts[WL_COUNT_registered_users], 20);
    assert_string_equal(in->version, "9.11");
    assert_int_equal(in->last_ingest_seq, 2);
    wl_ping *lp = wl_latest_ping_read(f->store, NULL, in->last_ingest_seq, "srv-2");
    assert_non_null(lp);
    assert_int_equal(lp->registered_users, 20);
    warmline__v1__ping__free_unpacked(lp, NULL);
    assert_null(wl_latest_ping_read(f->store, NULL, in->last_ingest_seq, "srv-1")); /* not its */
    warmline__store__v1__install_state__free_unpacked(in, NULL);
    assert_int_equal(wl_state_read_position(f->r, &pos), 0);
    assert_int_equal(pos.ingest_seq, 2);
    assert_int_equal(pos.checkpoint_seq, 0);

    commit(f, b, 1); /* a checkpoint */
    assert_int_equal(wl_state_read_install(f->r, "srv-2", &in), 0);
    assert_int_equal(in->counts[WL_COUNT_registered_users], 20);
    warmline__store__v1__install_state__free_unpacked(in, NULL);
    assert_int_equal(wl_state_read_position(f->r, &pos), 0);
    assert_int_equal(pos.checkpoint_seq, 2);
    assert_true(pos.checkpoint_at > 0);
    /* changed again: memory again */
    apply(f, b, "srv-2", 7, 2, 21, T0 + 2000);
    commit(f, b, 0);
    assert_int_equal(wl_state_read_install(f->r, "srv-2", &in), 0);
    assert_int_equal(in->counts[WL_COUNT_registered_users], 21);
    warmline__store__v1__install_state__free_unpacked(in, NULL);
    assert_int_equal(wl_state_read_org(f->r, org, n, &o), 0);
    assert_int_equal(o->totals[WL_COUNT_registered_users], 31);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    wl_batch_free(b);
}

/* An organization whose last install moved away is gone for readers at
 * once, though its record goes at the next checkpoint. */
static void test_emptied_org_is_gone(void **state)
{
    struct fx *f = *state;
    struct wl_batch *b = wl_batch_new(f->store);
    uint8_t org[WL_ORG_ID_MAX];
    size_t n = org_id(3, org);
    org_rec *o = NULL;

    wl_state_reader_set(f->r, f->st);
    apply(f, b, "mover", 3, 1, 5, T0);
    commit(f, b, 1);
    apply(f, b, "mover", 4, 2, 5, T0 + 1000);
    wl_state_stage(f->st, b); /* applied, not yet committed */
    assert_int_equal(wl_state_read_org(f->r, org, n, &o), -ENOENT);
    commit(f, b, 0);
    assert_int_equal(wl_state_read_org(f->r, org, n, &o), -ENOENT);
    n = org_id(4, org);
    assert_int_equal(wl_state_read_org(f->r, org, n, &o), 0);
    assert_int_equal(o->installs_total, 1);
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    wl_batch_free(b);
}

/* An organization's record lists its smallest install ids, sorted, past
 * WL_ORG_INSTALL_IDS_MAX too: the same list whatever order installs came
 * in (a restart loads them in another). */
static void test_install_ids_in_id_order(void **state)
{
    struct fx *f = *state;
    enum { N = WL_ORG_INSTALL_IDS_MAX + 500 };
    struct wl_batch *b = wl_batch_new(f->store);
    uint8_t org[WL_ORG_ID_MAX];
    size_t n = org_id(9, org);
    org_rec *o = NULL;
    char id[32];

    wl_state_reader_set(f->r, f->st);
    for (unsigned i = 0; i < N; i++) { /* 0..N-1, in a scrambled order */
        snprintf(id, sizeof id, "s-%05u", (i * 7919u) % N);
        apply(f, b, id, 9, 1, 1, T0 + i);
        if (i % 256 == 255)
            commit(f, b, 0);
    }
    commit(f, b, 0);
    assert_int_equal(wl_state_read_org(f->r, org, n, &o), 0);
    assert_int_equal(o->installs_total, N);
    assert_int_equal(o->n_install_ids, WL_ORG_INSTALL_IDS_MAX);
    for (unsigned i = 0; i < WL_ORG_INSTALL_IDS_MAX; i++) {
        snprintf(id, sizeof id, "s-%05u", i);
        assert_string_equal(o->install_ids[i], id);
    }
    warmline__store__v1__org_state__free_unpacked(o, NULL);

    /* Past the limit the writer keeps the list, so that a read never walks
     * every install under the lock: a newcomer joins it at once; one that
     * leaves leaves a hole at its end, which the next checkpoint fills. */
    commit(f, b, 1);
    apply(f, b, "s-00000a", 9, 1, 1, T0 + N);
    commit(f, b, 0);
    assert_int_equal(wl_state_read_org(f->r, org, n, &o), 0);
    assert_int_equal(o->n_install_ids, WL_ORG_INSTALL_IDS_MAX);
    assert_string_equal(o->install_ids[1], "s-00000a");
    assert_string_equal(o->install_ids[WL_ORG_INSTALL_IDS_MAX - 1], "s-00998");
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    apply(f, b, "s-00003", 8, 2, 1, T0 + N + 1); /* it moves away */
    commit(f, b, 0);
    assert_int_equal(wl_state_read_org(f->r, org, n, &o), 0);
    assert_int_equal(o->installs_total, N);
    assert_int_equal(o->n_install_ids, WL_ORG_INSTALL_IDS_MAX - 1);
    assert_string_equal(o->install_ids[0], "s-00000");
    assert_string_equal(o->install_ids[1], "s-00000a");
    assert_string_equal(o->install_ids[4], "s-00004");
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    apply(f, b, "s-00001", 9, 2, 1, T0 + N + 2); /* a ping: the org is dirty */
    commit(f, b, 1);
    assert_int_equal(wl_state_read_org(f->r, org, n, &o), 0);
    assert_int_equal(o->n_install_ids, WL_ORG_INSTALL_IDS_MAX); /* s-00003 gone */
    assert_string_equal(o->install_ids[WL_ORG_INSTALL_IDS_MAX - 1], "s-00999");
    warmline__store__v1__org_state__free_unpacked(o, NULL);
    wl_batch_free(b);
}

/* An edge ping merges into the install's latest ping, which memory does
 * not keep: the log's, once a checkpoint in slices wrote the record in
 * place. */
static void test_edge_ping_merges_into_the_written_record(void **state)
{
    struct fx *f = *state;
    struct wl_batch *b = wl_batch_new(f->store);
    install_rec *in = NULL;
    uint64_t records = 0;

    wl_state_reader_set(f->r, f->st);
    apply(f, b, "e1", 5, 1, 10, T0);
    commit(f, b, 1); /* in place: 10 users */
    apply(f, b, "e1", 5, 2, 20, T0 + 1000);
    commit(f, b, 0);
    wl_state_checkpoint_begin(f->st, T0, b);
    wl_state_checkpoint_step(f->st, 100, b, &records); /* written: 20 users */
    commit(f, b, 0);
    assert_false(wl_state_checkpoint_busy(f->st));
    assert_int_equal(records, 3); /* the install, its organization, its day */
    assert_int_equal(wl_state_read_install(f->r, "e1", &in), 0);
    assert_null(in->last_ping); /* the log holds it */
    warmline__store__v1__install_state__free_unpacked(in, NULL);

    wl_ping p = WARMLINE__V1__PING__INIT;
    struct wl_edge e = {.source = WL_SOURCE_RUDDER,
                        .presence = WL_PRESENT(WL_FIELD_COUNT(WL_COUNT_active_users_daily))};
    p.install_id = "e1";
    p.seq = 1;
    p.active_users_daily = 7;
    wl_state_change_begin(f->r);
    assert_int_equal(wl_state_apply_edge(f->st, &p, &e, T0 + 2000, T0 + 2000, b),
                     WL_APPLY_ACCEPTED);
    wl_state_change_end(f->r);
    commit(f, b, 0);
    assert_int_equal(wl_state_read_install(f->r, "e1", &in), 0);
    assert_int_equal(in->counts[WL_COUNT_registered_users], 20); /* the written one's, not 10 */
    assert_int_equal(in->counts[WL_COUNT_active_users_daily], 7);
    /* the log's edge ping holds the merge */
    wl_ping *lp = wl_latest_ping_read(f->store, NULL, in->last_ingest_seq, "e1");
    assert_non_null(lp);
    assert_int_equal(lp->registered_users, 20);
    assert_int_equal(lp->active_users_daily, 7);
    warmline__v1__ping__free_unpacked(lp, NULL);
    warmline__store__v1__install_state__free_unpacked(in, NULL);
    wl_batch_free(b);
}

/* An edge ping whose install's latest ping came in the same group: the
 * log does not have that one yet; the group's pings do. */
static void test_edge_base_in_the_same_group(void **state)
{
    struct fx *f = *state;
    struct wl_batch *b = wl_batch_new(f->store);
    install_rec *in = NULL;

    wl_state_reader_set(f->r, f->st);
    apply(f, b, "g1", 5, 1, 30, T0);
    edge(f, b, "g1", WL_COUNT_active_users_daily, 9, T0 + 10);
    edge(f, b, "g1", WL_COUNT_bot_accounts, 4, T0 + 20); /* its base: the edge ping before */
    commit(f, b, 0);
    assert_int_equal(wl_state_read_install(f->r, "g1", &in), 0);
    assert_int_equal(in->counts[WL_COUNT_registered_users], 30);
    assert_int_equal(in->counts[WL_COUNT_active_users_daily], 9);
    assert_int_equal(in->counts[WL_COUNT_bot_accounts], 4);
    wl_ping *lp = wl_latest_ping_read(f->store, NULL, in->last_ingest_seq, "g1");
    assert_non_null(lp);
    assert_int_equal(lp->registered_users, 30);
    assert_int_equal(lp->active_users_daily, 9);
    assert_int_equal(lp->bot_accounts, 4);
    assert_string_equal(lp->version, "9.11");
    assert_int_equal(lp->org_key.len, 32); /* the wire ping's organization stays */
    warmline__v1__ping__free_unpacked(lp, NULL);
    warmline__store__v1__install_state__free_unpacked(in, NULL);
    /* once written, the next group reads it from the log */
    edge(f, b, "g1", WL_COUNT_teams, 2, T0 + 30);
    commit(f, b, 0);
    assert_int_equal(wl_state_read_install(f->r, "g1", &in), 0);
    lp = wl_latest_ping_read(f->store, NULL, in->last_ingest_seq, "g1");
    assert_non_null(lp);
    assert_int_equal(lp->registered_users, 30);
    assert_int_equal(lp->bot_accounts, 4);
    assert_int_equal(lp->teams, 2);
    warmline__v1__ping__free_unpacked(lp, NULL);
    warmline__store__v1__install_state__free_unpacked(in, NULL);
    wl_batch_free(b);
}

/* The stored ping's bytes at seq (free them). */
static char *stored_bytes_at(struct fx *f, uint64_t seq, size_t *vlen)
{
    char *val = NULL, err[256];
    uint8_t key[8];
    wl_be64_put(key, seq);
    assert_int_equal(wl_store_get(f->store, WL_CF_PINGS, key, sizeof key, &val, vlen, err,
                                  sizeof err), 0);
    return val;
}

static Warmline__Store__V1__StoredPing *stored_ping_at(struct fx *f, uint64_t seq)
{
    size_t vlen = 0;
    char *val = stored_bytes_at(f, seq, &vlen);
    Warmline__Store__V1__StoredPing *rec =
        warmline__store__v1__stored_ping__unpack(NULL, vlen, (uint8_t *)val);
    free(val);
    assert_non_null(rec);
    return rec;
}

/* The writer packs a stored ping as StoredPingPacked (each ping packed
 * once): the bytes are exactly a StoredPing's, wire and edge pings alike,
 * so every reader of the log decodes them as before. */
static void test_stored_ping_bytes_are_a_stored_ping(void **state)
{
    struct fx *f = *state;
    struct wl_batch *b = wl_batch_new(f->store);

    apply(f, b, "p1", 5, 1, 30, T0);
    edge(f, b, "p1", WL_COUNT_teams, 7, T0 + 10);
    edge(f, b, "p2", WL_COUNT_bot_accounts, 3, T0 + 20); /* no base */
    commit(f, b, 0);
    for (uint64_t seq = 1; seq <= 3; seq++) {
        size_t vlen = 0;
        uint8_t again[1024];
        char *val = stored_bytes_at(f, seq, &vlen);
        Warmline__Store__V1__StoredPing *rec = stored_ping_at(f, seq);
        assert_int_equal(rec->ingest_seq, seq);
        assert_non_null(rec->ping);
        assert_int_equal(rec->latest != NULL, seq > 1); /* the edge pings' merges */
        size_t n = warmline__store__v1__stored_ping__get_packed_size(rec);
        assert_int_equal(n, vlen);
        assert_true(n <= sizeof again);
        warmline__store__v1__stored_ping__pack(rec, again);
        assert_memory_equal(again, val, vlen);
        if (seq == 2) {
            assert_int_equal(rec->ping->teams, 7);
            assert_int_equal(rec->ping->registered_users, 0); /* its own fields alone */
            assert_int_equal(rec->latest->registered_users, 30);
            assert_int_equal(rec->latest->teams, 7);
        }
        warmline__store__v1__stored_ping__free_unpacked(rec, NULL);
        free(val);
    }
    wl_batch_free(b);
}

/* A wire ping's record keeps the bytes it came as (wl_state_apply_wire),
 * not a packing of them again: here with a field this schema does not know,
 * which a packing would keep too, and in an order a packing would not
 * give. The record decodes to the ping, and an edge ping in the same group
 * merges into it. */
static void test_wire_ping_stored_as_it_came(void **state)
{
    struct fx *f = *state;
    struct wl_batch *b = wl_batch_new(f->store);
    uint8_t key[32], wire[512];
    wl_ping p = WARMLINE__V1__PING__INIT;

    memset(key, 3, sizeof key);
    p.org_key.data = key;
    p.org_key.len = sizeof key;
    p.version = "9.11";
    p.registered_users = 41;
    /* seq (field 3) first, then the rest packed, then unknown field 1000 */
    size_t n = 0;
    wire[n++] = 3 << 3;
    wire[n++] = 7;
    p.install_id = "w1";
    n += warmline__v1__ping__pack(&p, wire + n);
    wire[n++] = 0xc0; /* (1000 << 3) | 0 as a varint */
    wire[n++] = 0x3e;
    wire[n++] = 1;
    wl_ping *got = warmline__v1__ping__unpack(NULL, n, wire);
    assert_non_null(got);
    assert_int_equal(got->seq, 7);
    struct wl_ping_bytes bytes = {wire, n};
    wl_state_change_begin(f->r);
    assert_int_equal(wl_state_apply_wire(f->st, got, &bytes, T0, T0, b), WL_APPLY_ACCEPTED);
    wl_state_change_end(f->r);
    edge(f, b, "w1", WL_COUNT_teams, 7, T0 + 10);
    commit(f, b, 0);

    Warmline__Store__V1__StoredPing *rec = stored_ping_at(f, 1);
    size_t vlen = 0;
    char *val = stored_bytes_at(f, 1, &vlen);
    assert_true(vlen > n);
    assert_non_null(memmem(val, vlen, wire, n)); /* the bytes as they came */
    assert_string_equal(rec->ping->install_id, "w1");
    assert_int_equal(rec->ping->seq, 7);
    assert_int_equal(rec->ping->registered_users, 41);
    assert_int_equal(rec->ping->base.n_unknown_fields, 1);
    warmline__store__v1__stored_ping__free_unpacked(rec, NULL);
    free(val);
    rec = stored_ping_at(f, 2); /* the edge ping merged into it */
    assert_non_null(rec->latest);
    assert_int_equal(rec->latest->registered_users, 41);
    assert_int_equal(rec->latest->teams, 7);
    warmline__store__v1__stored_ping__free_unpacked(rec, NULL);
    warmline__v1__ping__free_unpacked(got, NULL);
    wl_batch_free(b);
}

/* Once retention removed an install's latest ping from the log, it reads
 * as none, and an edge ping merges into what it carries alone; the
 * install's counts stay until then. */
static void test_latest_ping_removed_by_retention(void **state)
{
    struct fx *f = *state;
    struct wl_batch *b = wl_batch_new(f->store);
    install_rec *in = NULL;
    char err[256];
    uint8_t key[8];

    wl_state_reader_set(f->r, f->st);
    apply(f, b, "r1", 5, 1, 30, T0);
    commit(f, b, 1);
    wl_be64_put(key, 1);
    wl_batch_delete(b, WL_CF_PINGS, key, sizeof key);
    assert_int_equal(wl_store_write(f->store, b, 0, err, sizeof err), 0);
    wl_batch_clear(b);
    assert_int_equal(wl_state_read_install(f->r, "r1", &in), 0);
    assert_int_equal(in->counts[WL_COUNT_registered_users], 30);
    assert_null(wl_latest_ping_read(f->store, NULL, in->last_ingest_seq, "r1"));
    warmline__store__v1__install_state__free_unpacked(in, NULL);
    edge(f, b, "r1", WL_COUNT_teams, 3, T0 + 10);
    commit(f, b, 0);
    assert_int_equal(wl_state_read_install(f->r, "r1", &in), 0);
    assert_int_equal(in->counts[WL_COUNT_registered_users], 0);
    assert_int_equal(in->counts[WL_COUNT_teams], 3);
    assert_string_equal(in->version, "");
    wl_ping *lp = wl_latest_ping_read(f->store, NULL, in->last_ingest_seq, "r1");
    assert_non_null(lp);
    assert_int_equal(lp->teams, 3);
    assert_int_equal(lp->org_key.len, 0);
    warmline__v1__ping__free_unpacked(lp, NULL);
    warmline__store__v1__install_state__free_unpacked(in, NULL);
    wl_batch_free(b);
}


/* The stored ping at seq as a version before edge pings kept their merge
 * stored it: without StoredPing.latest. */
static void strip_latest(struct fx *f, uint64_t seq)
{
    char err[256];
    uint8_t key[8], buf[1024];
    Warmline__Store__V1__StoredPing *rec = stored_ping_at(f, seq);
    assert_non_null(rec->latest);
    warmline__v1__ping__free_unpacked(rec->latest, NULL);
    rec->latest = NULL;
    size_t n = warmline__store__v1__stored_ping__get_packed_size(rec);
    assert_true(n <= sizeof buf);
    warmline__store__v1__stored_ping__pack(rec, buf);
    warmline__store__v1__stored_ping__free_unpacked(rec, NULL);
    struct wl_batch *b = wl_batch_new(f->store);
    wl_be64_put(key, seq);
    wl_batch_put(b, WL_CF_PINGS, key, sizeof key, buf, n);
    assert_int_equal(wl_store_write(f->store, b, 0, err, sizeof err), 0);
    wl_batch_free(b);
}

static int has_latest(struct fx *f, uint64_t seq)
{
    Warmline__Store__V1__StoredPing *rec = stored_ping_at(f, seq);
    int has = rec->latest != NULL;
    warmline__store__v1__stored_ping__free_unpacked(rec, NULL);
    return has;
}

static void reload(struct fx *f, const struct wl_state_opts *o)
{
    char err[512];
    wl_state_reader_set(f->r, NULL);
    wl_state_free(f->st);
    f->st = NULL;
    if (wl_state_load(f->store, o, &f->st, err, sizeof err) != 0)
        fail_msg("reload: %s", err);
    wl_state_reader_set(f->r, f->st);
}

/* A store an older version wrote: an install record holding its latest
 * ping whole (last_ping, no counts) whose edge ping the log holds without
 * its merge, and edge pings after the checkpoint, also without: the load
 * writes each merge into the log, so the next edge ping finds its base. */
static void test_records_and_edge_pings_of_an_older_version(void **state)
{
    struct fx *f = *state;
    struct wl_batch *b = wl_batch_new(f->store);
    install_rec *in = NULL;
    char err[256];

    wl_state_reader_set(f->r, f->st);
    apply(f, b, "old", 5, 1, 10, T0);                              /* ingest_seq 1 */
    edge(f, b, "old", WL_COUNT_active_users_daily, 5, T0 + 10);   /* 2 */
    commit(f, b, 1);
    /* the install's record as it was written then: the merge in last_ping */
    assert_int_equal(wl_state_read_install(f->r, "old", &in), 0);
    in->last_ping = wl_latest_ping_read(f->store, NULL, 2, "old");
    assert_non_null(in->last_ping);
    free(in->counts);
    in->counts = NULL;
    in->n_counts = 0;
    uint8_t buf[1024];
    size_t n = warmline__store__v1__install_state__get_packed_size(in);
    assert_true(n <= sizeof buf);
    warmline__store__v1__install_state__pack(in, buf);
    wl_batch_put(b, WL_CF_INSTALLS, "old", 3, buf, n);
    assert_int_equal(wl_store_write(f->store, b, 0, err, sizeof err), 0);
    wl_batch_clear(b);
    warmline__store__v1__install_state__free_unpacked(in, NULL);
    strip_latest(f, 2);
    /* two edge pings after the checkpoint, replayed at the load */
    edge(f, b, "old", WL_COUNT_bot_accounts, 3, T0 + 20);          /* 3 */
    edge(f, b, "old", WL_COUNT_teams, 6, T0 + 30);                 /* 4 */
    commit(f, b, 0);
    strip_latest(f, 3);
    strip_latest(f, 4);

    reload(f, &opts);
    assert_int_equal(wl_state_replayed(f->st), 2);
    assert_true(has_latest(f, 2) && has_latest(f, 3) && has_latest(f, 4));
    edge(f, b, "old", WL_COUNT_guest_accounts, 8, T0 + 40);        /* 5 */
    commit(f, b, 0);
    assert_int_equal(wl_state_read_install(f->r, "old", &in), 0);
    assert_int_equal(in->n_counts, WL_N_COUNTS);
    assert_int_equal(in->counts[WL_COUNT_registered_users], 10);
    assert_int_equal(in->counts[WL_COUNT_active_users_daily], 5);
    assert_int_equal(in->counts[WL_COUNT_bot_accounts], 3);
    assert_int_equal(in->counts[WL_COUNT_teams], 6);
    assert_int_equal(in->counts[WL_COUNT_guest_accounts], 8);
    wl_ping *lp = wl_latest_ping_read(f->store, NULL, in->last_ingest_seq, "old");
    assert_non_null(lp);
    assert_int_equal(lp->registered_users, 10);
    assert_int_equal(lp->active_users_daily, 5);
    assert_int_equal(lp->teams, 6);
    assert_int_equal(lp->guest_accounts, 8);
    assert_string_equal(lp->version, "9.11");
    warmline__v1__ping__free_unpacked(lp, NULL);
    warmline__store__v1__install_state__free_unpacked(in, NULL);
    wl_batch_free(b);
}

/* Each organization's account equals a sum over its installs' latest
 * pings, whichever way a ping changes an install (only its counts, which
 * take a shortcut, or its strings, or its organization): a random stream,
 * checked after every group. */
static void test_account_is_the_sum_of_its_installs(void **state)
{
    struct fx *f = *state;
    struct wl_batch *b = wl_batch_new(f->store);
    static const char *const editions[] = {"", "team", "enterprise"};
    static const char *const versions[] = {"", "9.11", "10.0"};
    static const char *const feats[] = {"saml_configured", "ldap_configured", "x"};
    enum { N_IN = 6, N_ORG = 3 };
    struct { int org, set; uint32_t users, bots; const char *ed, *ver; uint64_t seq; } w[N_IN];
    uint32_t rnd = 12345;

    memset(w, 0, sizeof w);
    wl_state_reader_set(f->r, f->st);
    for (int step = 0; step < 400; step++) {
        rnd = rnd * 1103515245u + 12345u;
        int i = (int)((rnd >> 8) % N_IN);
        uint32_t r = rnd >> 12;
        uint8_t key[32];
        char id[8];
        char *fl[3];
        size_t nf = 0;
        wl_ping p = WARMLINE__V1__PING__INIT;
        if (!w[i].set || r % 8 == 0) /* a new organization now and then */
            w[i].org = (int)((r >> 3) % N_ORG);
        if (!w[i].set || r % 4 == 1) { /* new strings one ping in four */
            w[i].ed = editions[(r >> 5) % 3];
            w[i].ver = versions[(r >> 7) % 3];
        }
        for (int k = 0; k < 3; k++)
            if ((r >> (9 + k)) & 1 && (i + k) % 2 == 0)
                fl[nf++] = (char *)feats[k];
        w[i].users = (r >> 2) % 1000;
        w[i].bots = (r >> 4) % 7;
        w[i].set = 1;
        snprintf(id, sizeof id, "s-%d", i);
        memset(key, 0x50 + w[i].org, sizeof key);
        p.install_id = id;
        p.org_key.data = key;
        p.org_key.len = sizeof key;
        p.seq = ++w[i].seq;
        p.edition = (char *)w[i].ed;
        p.version = (char *)w[i].ver;
        p.registered_users = w[i].users;
        p.bot_accounts = w[i].bots;
        p.features = fl;
        p.n_features = nf;
        wl_state_change_begin(f->r);
        assert_int_equal(wl_state_apply(f->st, &p, T0 + step, T0 + step, b), WL_APPLY_ACCEPTED);
        wl_state_change_end(f->r);
        commit(f, b, step % 50 == 49);
        for (int o = 0; o < N_ORG; o++) {
            uint64_t users = 0, bots = 0;
            uint32_t n = 0;
            uint8_t org[WL_ORG_ID_MAX];
            size_t len = org_id(0x50 + o, org);
            org_rec *rec = NULL;
            for (int k = 0; k < N_IN; k++) {
                if (w[k].set && w[k].org == o) {
                    users += w[k].users;
                    bots += w[k].bots;
                    n++;
                }
            }
            int rc = wl_state_read_org(f->r, org, len, &rec);
            if (n == 0) {
                assert_int_equal(rc, -ENOENT);
                continue;
            }
            assert_int_equal(rc, 0);
            assert_int_equal(rec->installs_counting, n);
            assert_int_equal(rec->totals[WL_COUNT_registered_users], users);
            assert_int_equal(rec->totals[WL_COUNT_bot_accounts], bots);
            /* its versions: those its installs run */
            for (size_t v = 1; v < 3; v++) {
                int runs = 0, listed = 0;
                for (int k = 0; k < N_IN; k++)
                    runs |= w[k].set && w[k].org == o && strcmp(w[k].ver, versions[v]) == 0;
                for (size_t j = 0; j < rec->n_versions; j++)
                    listed |= strcmp(rec->versions[j], versions[v]) == 0;
                assert_int_equal(runs, listed);
            }
            warmline__store__v1__org_state__free_unpacked(rec, NULL);
        }
    }
    wl_batch_free(b);
}

/* ---- readers on other threads while pings are applied ---- */

enum { N_ORGS = 8, N_INSTALLS = 64, ROUNDS = 40 };

struct reader_arg {
    struct fx *f;
    atomic_int *stop;
    atomic_ullong reads;
    uint64_t found;
    int bad;
};

static void *reader_main(void *p)
{
    struct reader_arg *a = p;
    uint8_t org[WL_ORG_ID_MAX];
    char id[32];
    for (unsigned i = 0; !atomic_load(a->stop); i++) {
        org_rec *o = NULL;
        install_rec *in = NULL;
        size_t n = org_id((int)(i % N_ORGS) + 1, org);
        int rc = wl_state_read_org(a->f->r, org, n, &o);
        if (rc == 0) {
            /* a record is one moment: its installs all count (the ttl is
             * long), and each install's users are its round number */
            if (o->installs_counting != o->installs_total || o->installs_total > N_INSTALLS)
                a->bad++;
            a->found++;
            warmline__store__v1__org_state__free_unpacked(o, NULL);
        } else if (rc != -ENOENT) {
            a->bad++;
        }
        snprintf(id, sizeof id, "i-%u", i % N_INSTALLS);
        rc = wl_state_read_install(a->f->r, id, &in);
        if (rc == 0) {
            if (in->n_counts != WL_N_COUNTS ||
                in->counts[WL_COUNT_registered_users] != in->last_seq)
                a->bad++;
            warmline__store__v1__install_state__free_unpacked(in, NULL);
        } else if (rc != -ENOENT) {
            a->bad++;
        }
        a->reads++;
    }
    return NULL;
}

static void test_readers_beside_the_writer(void **state)
{
    struct fx *f = *state;
    struct wl_batch *b = wl_batch_new(f->store);
    atomic_int stop = 0;
    pthread_t th[2];
    struct reader_arg args[2] = {{f, &stop, 0, 0, 0}, {f, &stop, 0, 0, 0}};
    char id[32];

    wl_state_reader_set(f->r, f->st);
    for (int t = 0; t < 2; t++)
        assert_int_equal(pthread_create(&th[t], NULL, reader_main, &args[t]), 0);
    /* both read before the writer starts, so that they read beside it on a
     * loaded machine too */
    while (atomic_load(&args[0].reads) == 0 || atomic_load(&args[1].reads) == 0)
        sched_yield();
    for (int round = 1; round <= ROUNDS; round++) {
        for (int i = 0; i < N_INSTALLS; i++) {
            snprintf(id, sizeof id, "i-%d", i);
            /* the install's users say its seq; it moves between orgs */
            apply(f, b, id, (i + round) % N_ORGS + 1, (uint64_t)round, (uint32_t)round,
                  T0 + round * 1000 + i);
        }
        commit(f, b, round % 4 == 0);
    }
    atomic_store(&stop, 1);
    for (int t = 0; t < 2; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(args[t].bad, 0);
        assert_true(args[t].reads > 0);
    }
    /* and the last state, read once more */
    uint8_t org[WL_ORG_ID_MAX];
    uint64_t total = 0;
    for (int k = 1; k <= N_ORGS; k++) {
        org_rec *o = NULL;
        size_t n = org_id(k, org);
        if (wl_state_read_org(f->r, org, n, &o) == 0) {
            total += o->installs_total;
            warmline__store__v1__org_state__free_unpacked(o, NULL);
        }
    }
    assert_int_equal(total, N_INSTALLS);
    wl_batch_free(b);
}

/* ---- signal ids not yet in the org_signals index ---- */

/* The entries of org_signals for organization k, as signal ids in key order. */
static size_t index_ids(struct fx *f, int k, uint64_t *out, size_t max)
{
    uint8_t org[WL_ORG_ID_MAX], prefix[1 + WL_ORG_ID_MAX];
    size_t n = org_id(k, org), got = 0, klen;
    prefix[0] = (uint8_t)n;
    memcpy(prefix + 1, org, n);
    struct wl_iter *it = wl_iter_new(f->store, WL_CF_ORG_SIGNALS);
    for (wl_iter_seek(it, prefix, 1 + n); wl_iter_valid(it); wl_iter_next(it)) {
        const char *key = wl_iter_key(it, &klen);
        if (klen != 1 + n + 8 || memcmp(key, prefix, 1 + n) != 0)
            break;
        if (got < max)
            out[got] = wl_be64_get(key + 1 + n);
        got++;
    }
    wl_iter_free(it);
    return got;
}

/* The ids memory holds for organization k: n, the first into *first. */
static size_t memory_ids(struct fx *f, int k, uint64_t *first, uint64_t *gen)
{
    uint8_t org[WL_ORG_ID_MAX];
    size_t n = org_id(k, org), got = 0;
    struct wl_signals_mem m;
    assert_int_equal(wl_state_read_signals(f->r, org, n, &m), 0);
    got = m.n;
    if (got > 0)
        *first = m.ids[0];
    *gen = m.gen;
    assert_int_equal(m.n_pend, 0); /* committed: the store has them */
    wl_signals_mem_free(&m);
    return got;
}

static uint64_t meta_u64(struct fx *f, const char *name)
{
    char *val = NULL, err[256];
    size_t vlen = 0;
    uint64_t v = 0;
    if (wl_store_get(f->store, WL_CF_META, name, strlen(name), &val, &vlen, err, sizeof err) ==
            0 &&
        vlen == 8)
        v = wl_be64_get(val);
    free(val);
    return v;
}

/* A signal's index entry waits in memory, where readers find it, until a
 * checkpoint writes it with the organization (whole or in slices); a crash
 * before that gives the id back to its organization at load. */
static void test_signal_ids_wait_for_the_checkpoint(void **state)
{
    struct fx *f = *state;
    struct wl_ruleset rules = {0};
    char err[256];
    uint64_t id = 0, gen0 = 0, gen = 0, v[4];
    assert_int_equal(wl_ruleset_add(&rules, "big", "active_users_monthly > 25", NULL, NULL,
                                    NULL, NULL, err, sizeof err),
                     0);
    assert_int_equal(wl_ruleset_add(&rules, "two", "installs >= 2", NULL, NULL, NULL, NULL, err,
                                    sizeof err),
                     0);
    struct wl_state_opts o = opts;
    o.rules = &rules;
    reload(f, &o);
    struct wl_batch *b = wl_batch_new(f->store);

    apply(f, b, "srv-1", 7, 1, 30, T0); /* big fires: signal 1 */
    struct wl_signals_mem m; /* before its group's write: memory has it, packed */
    uint8_t org7[WL_ORG_ID_MAX];
    assert_int_equal(wl_state_read_signals(f->r, org7, org_id(7, org7), &m), 0);
    assert_int_equal(m.n, 1);
    assert_int_equal(m.n_pend, 1);
    assert_int_equal(m.pend_ids[0], 1);
    Warmline__Store__V1__Signal *sig =
        warmline__store__v1__signal__unpack(NULL, m.pend_len, m.pend);
    assert_non_null(sig);
    assert_string_equal(sig->rule, "big");
    warmline__store__v1__signal__free_unpacked(sig, NULL);
    wl_signals_mem_free(&m);
    commit(f, b, 0);
    assert_int_equal(memory_ids(f, 7, &id, &gen0), 1);
    assert_int_equal(id, 1);
    assert_int_equal(index_ids(f, 7, v, 4), 0); /* not written with the signal */

    commit(f, b, 1); /* a whole checkpoint writes it, and memory lets it go */
    assert_int_equal(index_ids(f, 7, v, 4), 1);
    assert_int_equal(v[0], 1);
    assert_int_equal(memory_ids(f, 7, &id, &gen), 0);
    assert_true(gen != gen0);
    assert_int_equal(meta_u64(f, WL_META_SIGNAL_INDEX_SEQ), 1);

    apply(f, b, "srv-2", 7, 1, 5, T0 + 1000); /* two fires: signal 2 */
    commit(f, b, 0);
    assert_int_equal(memory_ids(f, 7, &id, &gen), 1);
    assert_int_equal(id, 2);
    reload(f, &o); /* a crash: the id comes back from the signals column family */
    assert_int_equal(memory_ids(f, 7, &id, &gen), 1);
    assert_int_equal(id, 2);
    assert_int_equal(index_ids(f, 7, v, 4), 1);
    commit(f, b, 1); /* its organization was marked: this checkpoint indexes it */
    assert_int_equal(index_ids(f, 7, v, 4), 2);
    assert_int_equal(v[1], 2);
    assert_int_equal(memory_ids(f, 7, &id, &gen), 0);

    /* in slices: written with its organization, as it is when its slice
     * comes, then gone from memory */
    apply(f, b, "srv-3", 8, 1, 40, T0 + 2000); /* big fires for org 8: signal 3 */
    commit(f, b, 0);
    assert_int_equal(memory_ids(f, 8, &id, &gen0), 1);
    uint64_t records = 0;
    wl_state_change_begin(f->r);
    wl_state_checkpoint_begin(f->st, T0, b);
    wl_state_change_end(f->r);
    apply(f, b, "srv-4", 8, 1, 1, T0 + 3000); /* two fires for org 8 after the begin */
    wl_state_change_begin(f->r);
    wl_state_checkpoint_step(f->st, 100, b, &records);
    wl_state_change_end(f->r);
    commit(f, b, 0);
    /* as it was when its slice came, after srv-4: with signals 3 and 4;
     * the meta key says what fired before the checkpoint began */
    assert_false(wl_state_checkpoint_busy(f->st));
    assert_int_equal(index_ids(f, 8, v, 4), 2);
    assert_int_equal(v[0], 3);
    assert_int_equal(meta_u64(f, WL_META_SIGNAL_INDEX_SEQ), 3);
    assert_int_equal(memory_ids(f, 8, &id, &gen), 0);
    assert_true(gen != gen0);
    commit(f, b, 1);
    assert_int_equal(index_ids(f, 8, v, 4), 2);
    assert_int_equal(v[1], 4);
    assert_int_equal(memory_ids(f, 8, &id, &gen), 0);
    assert_int_equal(meta_u64(f, WL_META_SIGNAL_INDEX_SEQ), 4);
    wl_batch_free(b);
    reload(f, &opts);
    wl_ruleset_clear(&rules);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_state_then_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_from_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emptied_org_is_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_install_ids_in_id_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edge_ping_merges_into_the_written_record, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_edge_base_in_the_same_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latest_ping_removed_by_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stored_ping_bytes_are_a_stored_ping, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wire_ping_stored_as_it_came, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_account_is_the_sum_of_its_installs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_records_and_edge_pings_of_an_older_version, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_readers_beside_the_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signal_ids_wait_for_the_checkpoint, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
