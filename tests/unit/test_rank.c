/* Unit tests for collector/rank.h: the rank in memory against a sorted
 * array of the same keys, through random sets, moves and removals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "rank.h"

#define N_ORGS 600
#define ROUNDS 20000

struct org {
    uint8_t id[9];
    size_t len;
    double score;
    int ranked;
    struct wl_rank_node *node;
};

static struct org orgs[N_ORGS];

static int key_cmp_desc(const void *a, const void *b)
{
    const uint8_t *x = a, *y = b;
    size_t lx = x[0], ly = y[0];
    size_t m = lx < ly ? lx : ly;
    int c = memcmp(x + 1, y + 1, m);
    if (c == 0)
        c = lx < ly ? -1 : lx > ly;
    return -c;
}

/* Every ranked org's rank key, highest first: [len][key] rows of 80. */
static size_t expected(uint8_t (*rows)[80])
{
    size_t n = 0;
    for (size_t i = 0; i < N_ORGS; i++) {
        if (!orgs[i].ranked)
            continue;
        rows[n][0] = (uint8_t)wl_rank_key(orgs[i].score, orgs[i].id, orgs[i].len, rows[n] + 1);
        n++;
    }
    qsort(rows, n, sizeof rows[0], key_cmp_desc);
    return n;
}

static void check(const struct wl_rank *r)
{
    static uint8_t rows[N_ORGS][80];
    uint8_t key[80];
    size_t n = expected(rows), i = 0;
    assert_int_equal(r->n, n);
    /* every level links both ways */
    for (int lv = 0; lv < WL_RANK_LEVELS; lv++) {
        const struct wl_rank_node *prev = NULL;
        uint64_t bits = r->head[lv].next_bits;
        for (const struct wl_rank_node *x = r->head[lv].next; x != NULL; x = x->lv[lv].next) {
            assert_true(x->height > lv);
            assert_ptr_equal(x->lv[lv].prev, prev);
            assert_int_equal(x->bits, bits); /* the link before holds its bits */
            bits = x->lv[lv].next_bits;
            prev = x;
        }
        assert_int_equal(bits, 0);
    }
    for (const struct wl_rank_node *x = wl_rank_after(r, NULL, 0); x != NULL;
         x = x->lv[0].next, i++) {
        assert_true(i < n);
        size_t len = wl_rank_node_key(x, key);
        assert_int_equal(len, rows[i][0]);
        assert_memory_equal(key, rows[i] + 1, len);
    }
    assert_int_equal(i, n);
    /* after each key comes the next; after a key between two, the lower */
    for (i = 0; i < n; i++) {
        const struct wl_rank_node *x = wl_rank_after(r, rows[i] + 1, rows[i][0]);
        if (i + 1 == n) {
            assert_null(x);
            continue;
        }
        assert_non_null(x);
        size_t len = wl_rank_node_key(x, key);
        assert_int_equal(len, rows[i + 1][0]);
        assert_memory_equal(key, rows[i + 1] + 1, len);
        /* the same key with one more byte sorts just above it: after it, it */
        memcpy(key, rows[i] + 1, rows[i][0]);
        key[rows[i][0]] = 0;
        x = wl_rank_after(r, key, rows[i][0] + 1u);
        assert_non_null(x);
        assert_int_equal(wl_rank_node_key(x, key), rows[i][0]);
        assert_memory_equal(key, rows[i] + 1, rows[i][0]);
    }
}

static void test_against_a_sorted_array(void **state)
{
    (void)state;
    struct wl_rank r;
    uint64_t rng = 12345;
    wl_rank_init(&r);
    for (size_t i = 0; i < N_ORGS; i++) {
        /* unique ids of many lengths (a few of them one byte long) */
        orgs[i].len = i < 200 ? 1 + i % 8 : 2 + i % 7;
        for (size_t k = 0; k < orgs[i].len; k++)
            orgs[i].id[k] = (uint8_t)((i * 7 + k) % 3);
        if (orgs[i].len == 1)
            orgs[i].id[0] = (uint8_t)i;
        else {
            orgs[i].id[0] = (uint8_t)(i >> 8 | 0x80);
            orgs[i].id[1] = (uint8_t)i;
        }
    }
    for (int round = 0; round < ROUNDS; round++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        struct org *o = &orgs[(rng >> 33) % N_ORGS];
        if ((rng >> 20) % 5 == 0) {
            wl_rank_remove(&r, &o->node);
            assert_null(o->node);
            o->ranked = 0;
        } else {
            /* few distinct scores (ties decided by the id), negatives too */
            o->score = (double)((int)((rng >> 40) % 9) - 3) * 0.5;
            wl_rank_set(&r, &o->node, o->score, o->id, o->len);
            o->ranked = 1;
        }
        if (round % 997 == 0)
            check(&r);
    }
    check(&r);
    wl_rank_free(&r);
    assert_null(wl_rank_after(&r, NULL, 0));
}

/* wl_rank_set_many: groups of distinct organizations moved together (some
 * to the score they have, some new, ties and negatives among them), with
 * removals between groups, and many at once; the same checks. */
static void test_many_at_once(void **state)
{
    (void)state;
    struct wl_rank r;
    struct wl_rank_move moves[N_ORGS];
    int in_group[N_ORGS];
    uint64_t rng = 987654321;
    wl_rank_init(&r);
    for (size_t i = 0; i < N_ORGS; i++) {
        orgs[i].ranked = 0;
        orgs[i].node = NULL;
    }
    for (int round = 0; round < 400; round++) {
        size_t n = 0, want = round % 50 == 0 ? N_ORGS : 1 + round % 40;
        memset(in_group, 0, sizeof in_group);
        for (size_t t = 0; t < want; t++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t k = want == N_ORGS ? t : (rng >> 33) % N_ORGS;
            struct org *o = &orgs[k];
            if (in_group[k])
                continue;
            if ((rng >> 20) % 7 == 0) { /* between groups in the writer: here beside one */
                wl_rank_remove(&r, &o->node);
                o->ranked = 0;
                continue;
            }
            in_group[k] = 1;
            if ((rng >> 24) % 4 != 0 || !o->ranked) /* else: the score it has */
                o->score = (double)((int)((rng >> 40) % 9) - 3) * 0.5;
            moves[n++] = (struct wl_rank_move){&o->node, o->score, o->id, o->len, 0};
            o->ranked = 1;
        }
        wl_rank_set_many(&r, moves, n);
        for (size_t k = 0; k < N_ORGS; k++)
            assert_true(orgs[k].ranked == (orgs[k].node != NULL));
        if (round % 37 == 0 || want == N_ORGS)
            check(&r);
    }
    check(&r);
    wl_rank_free(&r);
}

static void test_empty_and_one(void **state)
{
    (void)state;
    struct wl_rank r;
    struct wl_rank_node *node = NULL;
    uint8_t id[] = "\x01org", key[80];
    wl_rank_init(&r);
    assert_null(wl_rank_after(&r, NULL, 0));
    assert_null(wl_rank_after(&r, id, sizeof id - 1));
    wl_rank_set(&r, &node, 3.0, id, sizeof id - 1);
    assert_non_null(node);
    assert_ptr_equal(wl_rank_after(&r, NULL, 0), node);
    size_t len = wl_rank_node_key(node, key);
    assert_null(wl_rank_after(&r, key, len));
    wl_rank_set(&r, &node, 3.0, id, sizeof id - 1); /* the same score: stays */
    assert_int_equal(r.n, 1);
    wl_rank_remove(&r, &node);
    assert_null(node);
    wl_rank_remove(&r, &node); /* not ranked: nothing */
    assert_int_equal(r.n, 0);
    assert_null(wl_rank_after(&r, NULL, 0));
    wl_rank_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_one),
        cmocka_unit_test(test_against_a_sorted_array),
        cmocka_unit_test(test_many_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
