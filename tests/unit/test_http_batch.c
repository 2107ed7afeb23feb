/* Unit tests for the Rudder batch endpoint's parts (http_ingest_batch.c):
 * write keys, the body cap, the network's organization, the answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "http_ingest_parts.h"

static void test_write_keys(void **state)
{
    struct wl_rudder_keys k;
    char err[128];
    (void)state;

    assert_int_equal(wl_rudder_keys_parse("", &k, err, sizeof err), 0);
    assert_int_equal(k.n, 0);
    assert_true(wl_rudder_keys_allow(&k, "anything", 8)); /* none: any key */
    assert_true(wl_rudder_keys_allow(&k, NULL, 0));

    assert_int_equal(wl_rudder_keys_parse(" key-one ,key-two", &k, err, sizeof err), 0);
    assert_int_equal(k.n, 2);
    assert_true(wl_rudder_keys_allow(&k, "key-one", 7));
    assert_true(wl_rudder_keys_allow(&k, "key-two", 7));
    assert_false(wl_rudder_keys_allow(&k, "key-tw", 6));
    assert_false(wl_rudder_keys_allow(&k, "key-one ", 8));
    assert_false(wl_rudder_keys_allow(&k, "", 0));
    assert_false(wl_rudder_keys_allow(&k, NULL, 0));

    assert_int_equal(wl_rudder_keys_parse("a,,b", &k, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "empty key"));
    assert_int_equal(wl_rudder_keys_parse("a,", &k, err, sizeof err), -EINVAL);
}

static void test_body_cap(void **state)
{
    struct wl_body b = {0};
    char chunk[5000];
    (void)state;

    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 4; i++)
        assert_int_equal(wl_body_add(&b, chunk, sizeof chunk, 20000), 0);
    assert_int_equal(b.len, 20000);
    assert_false(b.over);
    assert_true(b.cap <= 20000);
    assert_int_equal(wl_body_add(&b, chunk, 1, 20000), 0); /* one byte past: over */
    assert_true(b.over);
    assert_int_equal(b.len, 20000);
    assert_int_equal(wl_body_add(&b, chunk, sizeof chunk, 20000), 0); /* read past */
    assert_int_equal(b.len, 20000);
    wl_body_free(&b);
}

static void test_answer(void **state)
{
    struct wl_rudder_outcome o = {3, 1, 0, 2, 5};
    size_t len = 0;
    (void)state;
    char *t = wl_rudder_answer(&o, &len);
    assert_non_null(t);
    assert_int_equal(len, strlen(t));
    assert_string_equal(t, "{\"accepted\":3,\"duplicates\":1,\"rejected\":0,\"dropped\":2,"
                           "\"ignored\":5}");
    free(t);
}

static void test_no_network_table_changes_nothing(void **state)
{
    wl_ping_batch *b = calloc(1, sizeof *b);
    struct wl_edge e[1] = {{.presence = 0, .source = WL_SOURCE_RUDDER}};
    struct sockaddr_in sa = {.sin_family = AF_INET};
    (void)state;
    warmline__v1__ping_batch__init(b);
    inet_pton(AF_INET, "10.1.2.3", &sa.sin_addr);
    assert_int_equal(wl_edge_apply_network(b, e, NULL, (struct sockaddr *)&sa), 0);
    assert_int_equal(e[0].presence, 0);
    wl_ping_batch_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_keys),
        cmocka_unit_test(test_body_cap),
        cmocka_unit_test(test_answer),
        cmocka_unit_test(test_no_network_table_changes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
