/* Unit tests for collector/idset.h: ids added once whatever their order and
 * repeats, found by bytes and length (a prefix or an extension is another
 * id), lengths at the bounds refused or kept, and a set that grows through
 * many sizes keeps every id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "idset.h"

static void test_add_and_find(void **state)
{
    (void)state;
    struct wl_idset s = {0};
    assert_false(wl_idset_has(&s, "a", 1)); /* empty */
    assert_false(wl_idset_has(NULL, "a", 1));
    assert_int_equal(wl_idset_add(&s, "srv-1", 5), 0);
    assert_int_equal(wl_idset_add(&s, "srv-1", 5), 0); /* once */
    assert_int_equal(wl_idset_add(&s, "srv-12", 5), 0); /* the first 5 bytes: srv-1 */
    assert_int_equal(s.n, 1);
    assert_int_equal(wl_idset_add(&s, "srv-12", 6), 0);
    assert_int_equal(s.n, 2);
    assert_true(wl_idset_has(&s, "srv-1", 5));
    assert_true(wl_idset_has(&s, "srv-12", 6));
    assert_false(wl_idset_has(&s, "srv-", 4));
    assert_false(wl_idset_has(&s, "srv-123", 7));
    assert_false(wl_idset_has(&s, "", 0));
    assert_string_equal(s.v[0], "srv-1");
    assert_int_equal(s.lens[1], 6);
    wl_idset_free(&s);
    assert_int_equal(s.n, 0);
}

static void test_lengths(void **state)
{
    (void)state;
    struct wl_idset s = {0};
    char id[300];
    memset(id, 'x', sizeof id);
    assert_int_equal(wl_idset_add(&s, id, 0), -EINVAL);
    assert_int_equal(wl_idset_add(&s, id, 256), -EINVAL);
    assert_int_equal(wl_idset_add(&s, id, 255), 0);
    assert_int_equal(wl_idset_add(&s, id, 64), 0);
    assert_true(wl_idset_has(&s, id, 255));
    assert_true(wl_idset_has(&s, id, 64));
    assert_false(wl_idset_has(&s, id, 256));
    assert_false(wl_idset_has(&s, id, 65));
    wl_idset_free(&s);
}

/* 100,000 ids, every one added twice (the second time in reverse): each
 * kept once, each found, none of a disjoint set found. */
static void test_many(void **state)
{
    (void)state;
    struct wl_idset s = {0};
    char id[32];
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        int len = snprintf(id, sizeof id, "install-%d", i);
        assert_int_equal(wl_idset_add(&s, id, (size_t)len), 0);
    }
    for (int i = n - 1; i >= 0; i--) {
        int len = snprintf(id, sizeof id, "install-%d", i);
        assert_int_equal(wl_idset_add(&s, id, (size_t)len), 0);
    }
    assert_int_equal(s.n, (size_t)n);
    assert_true(s.nslots >= 2 * s.n);
    for (int i = 0; i < n; i++) {
        int len = snprintf(id, sizeof id, "install-%d", i);
        assert_true(wl_idset_has(&s, id, (size_t)len));
        len = snprintf(id, sizeof id, "other-%d", i);
        assert_false(wl_idset_has(&s, id, (size_t)len));
    }
    wl_idset_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_and_find),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
