/* An attacker's review of checkpoints written in place (state_checkpoint.c,
 * issue 15): each test drives the state the way a sender of pings can
 * (install ids and org keys of its choosing) while a checkpoint is written
 * in slices, "crashes" (the state dropped, the store kept) and compares
 * what the reload holds with a state flushed whole after every group.
 *
 * - An install changed before a checkpoint began, whose organization the
 *   checkpoint had not taken yet, moving to an organization it had taken
 *   (or one outside it): the checkpoint wrote neither its old organization
 *   with it nor its new one, yet said it was whole; the change before the
 *   begin was in no record and not replayed (first_seen, an edge ping's
 *   merge base).
 * - An organization with many changed installs is written in one slice
 *   whatever the budget: the bound stated is its changed installs, not the
 *   budget (documented, not fixed here). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aggregate.h"
#include "records.pb-c.h"
#include "state_read.h"
#include "tmpdir.h"

typedef Warmline__Store__V1__OrgState org_rec;
typedef Warmline__Store__V1__InstallState install_rec;

#define DAY_MS (86400LL * 1000)
#define T0 (1767225600000LL) /* 2026-01-01 */

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
    char err[256];
    struct fx *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->root, sizeof f->root, "/tmp/wl-test-attack15b-XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    if (wl_ruleset_add(&f->rules, "second_install", "installs >= 2", NULL, "5d", NULL, NULL, err,
                       sizeof err) != 0)
        fail_msg("rule: %s", err);
    f->opts = (struct wl_state_opts){
        .install_ttl_ms = 30 * DAY_MS,
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

/* ---- pings a sender chooses ---- */

struct tping {
    wl_ping p;
    char id[72];
    uint8_t key[32];
    char *features[2];
    int64_t at;
};

static void make_ping(struct tping *t, const char *id, char org, uint64_t seq, int64_t at,
                      uint32_t mau)
{
    wl_ping init = WARMLINE__V1__PING__INIT;
    memset(t, 0, sizeof *t);
    t->p = init;
    snprintf(t->id, sizeof t->id, "%s", id);
    t->p.install_id = t->id;
    memset(t->key, org, sizeof t->key);
    t->p.org_key.data = t->key;
    t->p.org_key.len = sizeof t->key;
    t->p.seq = seq;
    t->p.version = "10.0";
    t->p.edition = "team";
    t->p.active_users_monthly = mau;
    t->p.registered_users = 2 * mau;
    t->at = at;
}

/* One group: its pings, then (lazy) a checkpoint begun when begin says so
 * and none is under way, and a slice of budget records of it; (eager) a
 * whole flush. Returns the records the slice wrote (0 when it did not end
 * the checkpoint: the state counts only finished ones). */
static void group(struct side *s, struct tping *pings, size_t n, int eager, int begin,
                  size_t budget)
{
    char err[512];
    uint64_t records = 0;
    struct wl_batch *b = wl_batch_new(s->store);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(wl_state_apply(s->st, &pings[i].p, pings[i].at, pings[i].at, b),
                         WL_APPLY_ACCEPTED);
    if (eager) {
        wl_state_flush(s->st, b);
    } else {
        if (begin && !wl_state_checkpoint_busy(s->st) && wl_state_dirty(s->st))
            wl_state_checkpoint_begin(s->st, T0, b);
        if (wl_state_checkpoint_busy(s->st))
            wl_state_checkpoint_step(s->st, budget, b, &records);
        wl_state_stage(s->st, b);
    }
    if (wl_store_write(s->store, b, 1, err, sizeof err) != 0)
        fail_msg("write: %s", err);
    wl_state_commit(s->st);
    wl_batch_free(b);
}

static void both(struct fx *f, struct tping *pings, size_t n, int begin, size_t budget)
{
    group(&f->eager, pings, n, 1, 0, 0);
    group(&f->lazy, pings, n, 0, begin, budget);
}

static void crash(struct fx *f, struct side *s)
{
    char err[512];
    wl_state_free(s->st);
    s->st = NULL;
    if (wl_state_load(s->store, &f->opts, &s->st, err, sizeof err) != 0)
        fail_msg("reload: %s", err);
}

/* ---- comparing ---- */

static void expect_install(struct fx *f, const char *id)
{
    struct side *sides[2] = {&f->eager, &f->lazy};
    install_rec *r[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        struct wl_state_reader *rd = wl_state_reader_new();
        wl_state_reader_set(rd, sides[i]->st);
        int rc = wl_state_read_install(rd, id, &r[i]);
        wl_state_reader_set(rd, NULL);
        wl_state_reader_free(rd);
        if (rc == 1) { /* written: the record on disk */
            char *val = NULL, err[256];
            size_t vlen = 0;
            assert_int_equal(wl_store_get(sides[i]->store, WL_CF_INSTALLS, id, strlen(id), &val,
                                          &vlen, err, sizeof err),
                             0);
            r[i] = warmline__store__v1__install_state__unpack(NULL, vlen, (uint8_t *)val);
            free(val);
        } else {
            assert_int_equal(rc, 0);
        }
        assert_non_null(r[i]);
    }
    if (r[0]->first_seen != r[1]->first_seen || r[0]->last_seen != r[1]->last_seen ||
        r[0]->last_seq != r[1]->last_seq || r[0]->org.len != r[1]->org.len ||
        memcmp(r[0]->org.data, r[1]->org.data, r[0]->org.len) != 0)
        fail_msg("install %s after the reload: first_seen %lld/%lld, last_seen %lld/%lld, "
                 "last_seq %llu/%llu, org %c/%c",
                 id, (long long)r[0]->first_seen, (long long)r[1]->first_seen,
                 (long long)r[0]->last_seen, (long long)r[1]->last_seen,
                 (unsigned long long)r[0]->last_seq, (unsigned long long)r[1]->last_seq,
                 r[0]->org.data[1], r[1]->org.data[1]);
    for (int i = 0; i < 2; i++)
        warmline__store__v1__install_state__free_unpacked(r[i], NULL);
}

static void org_id_of(char c, uint8_t *id, size_t *len)
{
    uint8_t key[32];
    memset(key, c, sizeof key);
    *len = wl_org_id(id, key, sizeof key, NULL, 0);
}

static void expect_org(struct fx *f, char c)
{
    struct side *sides[2] = {&f->eager, &f->lazy};
    org_rec *r[2] = {NULL, NULL};
    uint8_t id[WL_ORG_ID_MAX];
    size_t len;
    org_id_of(c, id, &len);
    for (int i = 0; i < 2; i++) {
        struct wl_state_reader *rd = wl_state_reader_new();
        wl_state_reader_set(rd, sides[i]->st);
        assert_int_equal(wl_state_read_org(rd, id, len, &r[i]), 0);
        wl_state_reader_set(rd, NULL);
        wl_state_reader_free(rd);
    }
    if (r[0]->first_seen != r[1]->first_seen || r[0]->last_seen != r[1]->last_seen ||
        r[0]->installs_total != r[1]->installs_total || r[0]->totals[0] != r[1]->totals[0] ||
        r[0]->signals != r[1]->signals)
        fail_msg("org %c after the reload: first_seen %lld/%lld, last_seen %lld/%lld, "
                 "installs %u/%u, signals %llu/%llu",
                 c, (long long)r[0]->first_seen, (long long)r[1]->first_seen,
                 (long long)r[0]->last_seen, (long long)r[1]->last_seen, r[0]->installs_total,
                 r[1]->installs_total, (unsigned long long)r[0]->signals,
                 (unsigned long long)r[1]->signals);
    for (int i = 0; i < 2; i++)
        warmline__store__v1__org_state__free_unpacked(r[i], NULL);
}

/* ---- the tests ---- */

/* X (new) pings organization A; Y pings B. A checkpoint begins and its first
 * slice takes B alone (the work is last marked first). X then moves to B:
 * its change before the begin was to be written with A, which now never
 * has it; B was written before it came. The checkpoint ends, meta state_seq
 * says it is whole, and a crash replays only the move: X comes back with
 * the move's time as its first_seen, B with Y's. */
static void test_move_out_of_an_untaken_organization(void **state)
{
    struct fx *f = *state;
    struct tping g1[2], g2[1];
    make_ping(&g1[0], "install-x", 'a', 1, T0 + 1000, 10);
    make_ping(&g1[1], "install-y", 'b', 1, T0 + 5000, 10);
    both(f, g1, 2, 1, 1);
    assert_true(wl_state_checkpoint_busy(f->lazy.st)); /* A is not taken yet */
    make_ping(&g2[0], "install-x", 'b', 2, T0 + 9000, 12);
    both(f, g2, 1, 0, 1000);
    assert_false(wl_state_checkpoint_busy(f->lazy.st)); /* whole: state_seq says so */
    crash(f, &f->lazy);
    expect_install(f, "install-x");
    expect_install(f, "install-y");
    expect_org(f, 'b');
}

/* The same, the install moving on to a third organization no checkpoint
 * has in its work, then a crash while the next checkpoint has not begun. */
static void test_move_to_an_organization_outside_the_work(void **state)
{
    struct fx *f = *state;
    struct tping g1[3], g2[1];
    make_ping(&g1[0], "install-x", 'a', 1, T0 + 1000, 10);
    make_ping(&g1[1], "install-z", 'a', 1, T0 + 1500, 10);
    make_ping(&g1[2], "install-y", 'b', 1, T0 + 5000, 10);
    both(f, g1, 3, 1, 1);
    assert_true(wl_state_checkpoint_busy(f->lazy.st));
    make_ping(&g2[0], "install-x", 'c', 2, T0 + 9000, 12);
    both(f, g2, 1, 0, 1000);
    assert_false(wl_state_checkpoint_busy(f->lazy.st));
    crash(f, &f->lazy);
    expect_install(f, "install-x");
    expect_install(f, "install-z");
    expect_org(f, 'a');
    expect_org(f, 'c');
}

/* A crash after such a move, then more pings and a whole checkpoint: the
 * records of both stores alike. */
static void test_move_then_flush(void **state)
{
    struct fx *f = *state;
    struct tping g1[2], g2[1], g3[1];
    make_ping(&g1[0], "install-x", 'a', 1, T0 + 1000, 10);
    make_ping(&g1[1], "install-y", 'b', 1, T0 + 5000, 10);
    both(f, g1, 2, 1, 1);
    make_ping(&g2[0], "install-x", 'b', 2, T0 + 9000, 12);
    both(f, g2, 1, 0, 1000);
    crash(f, &f->lazy);
    make_ping(&g3[0], "install-y", 'b', 2, T0 + 12000, 14);
    group(&f->eager, g3, 1, 1, 0, 0);
    group(&f->lazy, g3, 1, 1, 0, 0);
    crash(f, &f->lazy);
    assert_int_equal(wl_state_replayed(f->lazy.st), 0);
    expect_install(f, "install-x");
    expect_org(f, 'b');
}

/* An organization whose N installs all changed is written whole in the
 * slice that takes it: a budget of 16 records writes N + 2. The bound a
 * slice keeps is the largest organization's changed installs, not the
 * budget (state_checkpoint.c; its installs cannot be written apart from
 * its record, which must not be older than any of them). Documented here
 * so that a change to it is seen. */
#define BIG 5000
static void test_one_slice_writes_a_whole_organization(void **state)
{
    struct fx *f = *state;
    static struct tping g[BIG];
    char id[32];
    for (size_t i = 0; i < BIG; i++) {
        snprintf(id, sizeof id, "big-%05zu", i);
        make_ping(&g[i], id, 'q', 1, T0 + 1000 + (int64_t)i, 1);
    }
    struct side *s = &f->lazy;
    char err[512];
    uint64_t records = 0;
    struct wl_batch *b = wl_batch_new(s->store);
    for (size_t i = 0; i < BIG; i++)
        assert_int_equal(wl_state_apply(s->st, &g[i].p, g[i].at, g[i].at, b), WL_APPLY_ACCEPTED);
    wl_state_stage(s->st, b);
    assert_int_equal(wl_store_write(s->store, b, 1, err, sizeof err), 0);
    wl_state_commit(s->st);
    wl_batch_clear(b);
    assert_int_equal(wl_state_dirty_installs(s->st), BIG);
    wl_state_checkpoint_begin(s->st, T0, b);
    int before = wl_batch_count(b);
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(wl_state_checkpoint_step(s->st, 16, b, &records), 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int written = wl_batch_count(b) - before;
    /* the installs, the organization, its day; and the sequences */
    assert_true(written >= BIG + 2);
    assert_true(written <= BIG + 8);
    assert_int_equal(records, BIG + 2);
    assert_int_equal(wl_store_write(s->store, b, 1, err, sizeof err), 0);
    wl_state_commit(s->st);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    print_message("  slice of %d records: packed in %.1f ms, written and committed in %.1f ms\n",
                  written,
        (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6,
        (t2.tv_sec - t1.tv_sec) * 1e3 + (t2.tv_nsec - t1.tv_nsec) / 1e6);
    wl_batch_free(b);
    assert_int_equal(wl_state_dirty_installs(s->st), 0);
}

/* The WAL's bytes (the store's *.log files): what the writes so far cost. */
static uint64_t wal_bytes(struct side *s)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "cat %s/*.log 2>/dev/null | wc -c", s->db);
    FILE *p = popen(cmd, "r");
    unsigned long long n = 0;
    assert_non_null(p);
    assert_int_equal(fscanf(p, "%llu", &n), 1);
    pclose(p);
    return n;
}

/* A move wrote the record of the organization the install left with the
 * ping (14f8f0c): O(its record), up to 1,000 install ids of 64 bytes and
 * max_org_features features, about 90 KB. Since 79c659b that organization
 * is written before the install's record, once: an install sent back and
 * forth between two organizations writes what a ping writes; one left
 * through a third is written once, before the next moved install's record
 * (st->left_v), so through three too. The bytes a move ping writes, against
 * a ping that stays, for two and three wide organizations (SECURITY.md;
 * review 15b, finding 2). */
#define WIDE 1100
#define MOVES 60
static uint64_t move_bytes(struct fx *f, int n_orgs, uint64_t *stay)
{
    struct side *s = &f->lazy;
    static struct tping g[3 * WIDE];
    static char feat[256][128];
    static char *fl[4][64];
    char id[72];
    for (int k = 0; k < 256; k++) {
        memset(feat[k], 'f', 120);
        snprintf(feat[k], 8, "%03d", k);
        feat[k][3] = 'f';
        feat[k][120] = 0;
        fl[k / 64][k % 64] = feat[k];
    }
    for (size_t i = 0; i < (size_t)n_orgs * WIDE; i++) {
        char org = (char)('a' + i / WIDE);
        snprintf(id, sizeof id, "%c%055zu-%07zu", org, i, i); /* 64 bytes */
        make_ping(&g[i], id, org, 1, T0 + 1000 + (int64_t)i, 1);
        if (i % WIDE < 4) { /* 256 features each organization */
            g[i].p.features = fl[i % WIDE];
            g[i].p.n_features = 64;
        }
    }
    group(s, g, (size_t)n_orgs * WIDE, 1, 0, 0); /* whole: all on disk */
    struct tping p;
    uint64_t w0 = wal_bytes(s);
    for (int k = 0; k < MOVES; k++) { /* stays in a */
        make_ping(&p, g[0].id, 'a', 2 + (uint64_t)k, T0 + 10000 + k, 2);
        group(s, &p, 1, 0, 0, 0);
    }
    uint64_t w1 = wal_bytes(s);
    for (int k = 0; k < MOVES; k++) { /* a, b, (c,) a, b ... */
        make_ping(&p, g[1].id, (char)('a' + (k + 1) % n_orgs), 2 + (uint64_t)k,
                  T0 + 20000 + k, 2);
        group(s, &p, 1, 0, 0, 0);
    }
    uint64_t w2 = wal_bytes(s);
    *stay = (w1 - w0) / MOVES;
    return (w2 - w1) / MOVES;
}

static void test_move_ping_between_two_writes_what_a_ping_writes(void **state)
{
    uint64_t stay, move = move_bytes(*state, 2, &stay);
    print_message("  WAL bytes a ping: %llu staying, %llu moving between two organizations of "
                  "%d installs and 256 features\n",
                  (unsigned long long)stay, (unsigned long long)move, WIDE);
    assert_true(stay < 2048);
    assert_true(move <= 2 * stay + 512);
}

static void test_move_ping_through_three_writes_a_record(void **state)
{
    uint64_t stay, move = move_bytes(*state, 3, &stay);
    print_message("  WAL bytes a ping: %llu staying, %llu moving through three organizations of "
                  "%d installs and 256 features\n",
                  (unsigned long long)stay, (unsigned long long)move, WIDE);
    assert_true(stay < 2048);
    assert_true(move <= 2 * stay + 512); /* written once, before the mover is */
}

/* An install cycling through three organizations while checkpoints are
 * written in slices of one organization, a crash every third group: the
 * first organization it left is written at once (through a third), the
 * last with the install; after each reload, the same as a state flushed
 * whole every group. */
static void test_cycle_through_three_with_crashes(void **state)
{
    struct fx *f = *state;
    struct tping g[3];
    make_ping(&g[0], "install-a", 'a', 1, T0 + 100, 3);
    make_ping(&g[1], "install-b", 'b', 1, T0 + 200, 4);
    make_ping(&g[2], "install-c", 'c', 1, T0 + 300, 5);
    both(f, g, 3, 1, 1000);
    for (int k = 0; k < 24; k++) {
        struct tping p[2];
        make_ping(&p[0], "install-x", (char)('a' + k % 3), 1 + (uint64_t)k,
                  T0 + 1000 + 1000 * k, 10 + (uint32_t)k);
        make_ping(&p[1], k % 2 ? "install-a" : "install-b", k % 2 ? 'a' : 'b',
                  2 + (uint64_t)k, T0 + 1500 + 1000 * k, 3 + (uint32_t)k);
        both(f, p, 2, k % 4 == 0, 1);
        if (k % 3 == 2) {
            crash(f, &f->lazy);
            for (char o = 'a'; o <= 'c'; o++)
                expect_org(f, o);
            expect_install(f, "install-x");
        }
    }
    group(&f->eager, NULL, 0, 1, 0, 0);
    group(&f->lazy, NULL, 0, 1, 0, 0);
    crash(f, &f->lazy);
    assert_int_equal(wl_state_replayed(f->lazy.st), 0);
    for (char o = 'a'; o <= 'c'; o++)
        expect_org(f, o);
    expect_install(f, "install-x");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_move_out_of_an_untaken_organization),
        T(test_move_to_an_organization_outside_the_work),
        T(test_move_then_flush),
        T(test_one_slice_writes_a_whole_organization),
        T(test_move_ping_between_two_writes_what_a_ping_writes),
        T(test_move_ping_through_three_writes_a_record),
        T(test_cycle_through_three_with_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
