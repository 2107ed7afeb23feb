/* Unit tests for collector/ptable.h: the keyed hash and the pointer table
 * (find, add, remove, growth past any load, deleted slots reused, shrinking,
 * iteration), against a plain array as the model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptable.h"

struct elem {
    uint32_t hash;
    int key;
    int in;
};

static uint32_t elem_hash(const void *e) { return ((const struct elem *)e)->hash; }

static int elem_eq(const void *e, const void *key)
{
    return ((const struct elem *)e)->key == *(const int *)key;
}

static uint32_t key_hash(int key) { return (uint32_t)wl_keyhash(&key, sizeof key); }

static struct elem *find(const struct wl_ptable *t, int key)
{
    return wl_ptable_find(t, key_hash(key), elem_eq, &key);
}

static void test_keyhash_is_stable_and_spreads(void **state)
{
    (void)state;
    const char a[] = "install-0001", b[] = "install-0002";
    assert_true(wl_keyhash(a, sizeof a - 1) == wl_keyhash(a, sizeof a - 1));
    assert_true(wl_keyhash(a, sizeof a - 1) != wl_keyhash(b, sizeof b - 1));
    /* 65,536 keys that differ in one byte fill at least 60% of 65,536 buckets
     * (random: about 63%); a weak hash of such keys would bunch them. */
    uint8_t *seen = calloc(65536, 1);
    size_t used = 0;
    assert_non_null(seen);
    for (uint32_t i = 0; i < 65536; i++) {
        uint8_t key[33] = {1};
        key[31] = (uint8_t)(i >> 8);
        key[32] = (uint8_t)i;
        uint32_t bucket = (uint32_t)wl_keyhash(key, sizeof key) & 0xffff;
        used += !seen[bucket];
        seen[bucket] = 1;
    }
    free(seen);
    assert_true(used > 65536 * 6 / 10);
}

static void test_add_find_remove_against_a_model(void **state)
{
    (void)state;
    enum { N = 20000 };
    struct elem *v = calloc(N, sizeof *v);
    struct wl_ptable t;
    assert_non_null(v);
    wl_ptable_init(&t, elem_hash);
    assert_null(find(&t, 1));
    for (int i = 0; i < N; i++) {
        v[i].key = i;
        v[i].hash = key_hash(i);
    }
    srand(7);
    /* Rounds of random adds and removes: deleted slots pile up and must be
     * reused or cleared; the table must keep finding everything. */
    for (int round = 0; round < 200000; round++) {
        int i = rand() % N;
        if (v[i].in) {
            assert_ptr_equal(find(&t, i), &v[i]);
            wl_ptable_remove(&t, &v[i]);
            v[i].in = 0;
        } else {
            assert_null(find(&t, i));
            wl_ptable_add(&t, &v[i]);
            v[i].in = 1;
        }
        assert_true(4 * t.used <= 3 * t.cap);
    }
    size_t live = 0;
    for (int i = 0; i < N; i++) {
        live += (size_t)v[i].in;
        assert_ptr_equal(find(&t, i), v[i].in ? &v[i] : NULL);
    }
    assert_int_equal(t.live, live);
    /* Iteration sees every live element once. */
    size_t seen = 0;
    struct elem *e;
    for (size_t i = 0; (e = wl_ptable_next(&t, &i)) != NULL;) {
        assert_true(e->in);
        e->in = 2;
        seen++;
    }
    assert_int_equal(seen, live);
    /* Emptied, it gives its memory back. */
    for (int i = 0; i < N; i++) {
        if (v[i].in)
            wl_ptable_remove(&t, &v[i]);
    }
    assert_int_equal(t.live, 0);
    assert_true(t.cap <= 64);
    wl_ptable_free(&t);
    free(v);
}

/* A large table grows a few slots per add: while its old array still
 * holds elements, every element is found in one array or the other, is
 * removed from either, and iteration sees each live one once; the old
 * array is empty before the next growth begins. */
static void test_growth_moves_a_few_at_a_time(void **state)
{
    (void)state;
    enum { N = 100000 };
    struct elem *v = calloc(N, sizeof *v);
    struct wl_ptable t;
    size_t growths = 0, checked = 0, removed = 0;
    assert_non_null(v);
    wl_ptable_init(&t, elem_hash);
    srand(11);
    for (int i = 0; i < N; i++) {
        v[i].key = i;
        v[i].hash = key_hash(i);
        size_t cap = t.cap;
        if (4 * (t.used + 1) > 3 * t.cap)
            assert_null(t.old_slots); /* the last growth ended before this one */
        wl_ptable_add(&t, &v[i]);
        v[i].in = 1;
        if (t.cap != cap && cap >= 4096) {
            growths++;
            assert_non_null(t.old_slots); /* under way, not done at once */
        }
        if (t.old_slots == NULL || rand() % 64 != 0)
            continue;
        /* mid-growth: an element still in the old array goes */
        for (size_t j = t.old_pos; j < t.old_cap; j++) {
            uintptr_t slot = t.old_slots[j]; /* tagged (ptable.h): 0 empty, 1 deleted */
            struct elem *e = (struct elem *)(slot & ((UINT64_C(1) << 48) - 1));
            if (slot > 1) {
                wl_ptable_remove(&t, e);
                e->in = 0;
                assert_null(find(&t, e->key));
                removed++;
                break;
            }
        }
        size_t seen = 0, live = 0;
        struct elem *e;
        for (size_t k = 0; (e = wl_ptable_next(&t, &k)) != NULL;) {
            assert_int_equal(e->in, 1);
            e->in = 2;
            seen++;
        }
        for (int k = 0; k <= i; k++) {
            assert_ptr_equal(find(&t, k), v[k].in ? &v[k] : NULL);
            live += v[k].in != 0;
            if (v[k].in == 2)
                v[k].in = 1;
        }
        assert_int_equal(seen, live);
        assert_int_equal(t.live, live);
        checked++;
    }
    assert_true(growths >= 4);
    assert_true(checked > 0 && removed > 0);
    wl_ptable_free(&t);
    free(v);
}

/* Elements that all hash alike (as colliding keys would under an unkeyed
 * hash) are still all found and the table still grows: no state in which it
 * stops growing. */
static void test_same_hash_still_grows(void **state)
{
    (void)state;
    enum { N = 3000 };
    struct elem *v = calloc(N, sizeof *v);
    struct wl_ptable t;
    assert_non_null(v);
    wl_ptable_init(&t, elem_hash);
    for (int i = 0; i < N; i++) {
        v[i].key = i;
        v[i].hash = 42;
        wl_ptable_add(&t, &v[i]);
    }
    for (int i = 0; i < N; i++)
        assert_ptr_equal(wl_ptable_find(&t, 42, elem_eq, &i), &v[i]);
    assert_true(4 * t.used <= 3 * t.cap && t.cap >= N);
    wl_ptable_free(&t);
    free(v);
}

/* peek: an empty table, a slot empty or deleted, and a slot whose tag is
 * another hash's give NULL; the home slot's element otherwise (it may be
 * another key's with the same tag: only a find decides). */
static void test_peek_reads_the_home_slot(void **state)
{
    (void)state;
    struct elem e[3] = {{.hash = 0x12340005, .key = 1},
                        {.hash = 0x56780006, .key = 2},
                        {.hash = 0x12340015, .key = 3}};
    struct wl_ptable t;
    wl_ptable_init(&t, elem_hash);
    wl_ptable_prefetch(&t, 0x12340005); /* no slots yet: nothing to fetch */
    assert_null(wl_ptable_peek(&t, 0x12340005));
    wl_ptable_add(&t, &e[0]);
    wl_ptable_add(&t, &e[1]);
    wl_ptable_prefetch(&t, 0x12340005);
    assert_ptr_equal(wl_ptable_peek(&t, 0x12340005), &e[0]);
    assert_ptr_equal(wl_ptable_peek(&t, 0x56780006), &e[1]);
    assert_null(wl_ptable_peek(&t, 0x9abc0005)); /* e[0]'s slot, another tag */
    assert_null(wl_ptable_peek(&t, 0x12340007)); /* an empty slot */
    /* same tag and home slot, another element: peek shows e[0], find e[2] */
    wl_ptable_add(&t, &e[2]);
    assert_ptr_equal(wl_ptable_peek(&t, 0x12340015), &e[0]);
    assert_ptr_equal(wl_ptable_find(&t, 0x12340015, elem_eq, &e[2].key), &e[2]);
    wl_ptable_remove(&t, &e[0]);
    assert_null(wl_ptable_peek(&t, 0x12340005)); /* deleted */
    wl_ptable_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyhash_is_stable_and_spreads),
        cmocka_unit_test(test_add_find_remove_against_a_model),
        cmocka_unit_test(test_same_hash_still_grows),
        cmocka_unit_test(test_growth_moves_a_few_at_a_time),
        cmocka_unit_test(test_peek_reads_the_home_slot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
