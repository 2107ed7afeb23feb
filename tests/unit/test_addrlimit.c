/* Unit tests for collector/addrlimit.h: address keys, the token bucket,
 * connection counts and the fixed-size table under more addresses than it
 * holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "addrlimit.h"

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(1234)};
    assert_int_equal(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return a;
}

static struct sockaddr_in6 v6(const char *ip)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(1234)};
    assert_int_equal(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
    return a;
}

static struct wl_addr key4(const char *ip)
{
    struct sockaddr_in a = v4(ip);
    struct wl_addr k;
    wl_addr_key((struct sockaddr *)&a, &k);
    return k;
}

static void test_keys(void **state)
{
    (void)state;
    struct wl_addr a, b;

    /* Loopback is told apart, in every spelling. */
    struct { const char *ip; int v6; int loopback; } cases[] = {
        {"127.0.0.1", 0, 1},    {"127.0.0.2", 0, 1},      {"127.255.1.9", 0, 1},
        {"10.0.0.1", 0, 0},     {"::1", 1, 1},            {"::ffff:127.0.0.1", 1, 1},
        {"::ffff:10.0.0.1", 1, 0}, {"2001:db8::1", 1, 0}, {"128.0.0.1", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got;
        if (cases[i].v6) {
            struct sockaddr_in6 s = v6(cases[i].ip);
            got = wl_addr_key((struct sockaddr *)&s, &a);
        } else {
            struct sockaddr_in s = v4(cases[i].ip);
            got = wl_addr_key((struct sockaddr *)&s, &a);
        }
        if (got != cases[i].loopback)
            fail_msg("%s: loopback %d, want %d", cases[i].ip, got, cases[i].loopback);
    }

    /* IPv4 and IPv4-mapped IPv6 are one address; the port does not matter. */
    struct sockaddr_in s4 = v4("192.0.2.7");
    struct sockaddr_in6 s6 = v6("::ffff:192.0.2.7");
    wl_addr_key((struct sockaddr *)&s4, &a);
    s4.sin_port = htons(9);
    wl_addr_key((struct sockaddr *)&s6, &b);
    assert_memory_equal(a.b, b.b, 16);

    /* IPv6 is keyed by its /64. */
    struct sockaddr_in6 x = v6("2001:db8:1:2::1"), y = v6("2001:db8:1:2:ffff::9"),
                        z = v6("2001:db8:1:3::1");
    wl_addr_key((struct sockaddr *)&x, &a);
    wl_addr_key((struct sockaddr *)&y, &b);
    assert_memory_equal(a.b, b.b, 16);
    wl_addr_key((struct sockaddr *)&z, &b);
    assert_memory_not_equal(a.b, b.b, 16);

    /* Another family, or none. */
    struct sockaddr other = {.sa_family = AF_UNIX};
    assert_int_equal(wl_addr_key(&other, &a), -1);
    assert_int_equal(wl_addr_key(NULL, &a), -1);
}

static void test_bucket(void **state)
{
    (void)state;
    struct wl_addrlimit *t;
    struct wl_addr a = key4("198.51.100.1"), b = key4("198.51.100.2");

    assert_int_equal(wl_addrlimit_new(1024, 10, 5, &t), 0); /* 10/s, burst 5 */
    for (int i = 0; i < 5; i++)
        assert_int_equal(wl_addrlimit_take(t, &a, 1000), 0);
    /* Empty: the next token is 100 ms away. */
    assert_int_equal(wl_addrlimit_take(t, &a, 1000), 100);
    assert_int_equal(wl_addrlimit_take(t, &a, 1050), 50);
    /* Another address is not affected. */
    assert_int_equal(wl_addrlimit_take(t, &b, 1050), 0);
    /* 100 ms later one token. */
    assert_int_equal(wl_addrlimit_take(t, &a, 1100), 0);
    assert_true(wl_addrlimit_take(t, &a, 1100) > 0);
    /* Refills to the burst, never beyond. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(wl_addrlimit_take(t, &a, 100000), 0);
    assert_true(wl_addrlimit_take(t, &a, 100000) > 0);
    /* A clock that does not move forward takes nothing back. */
    assert_true(wl_addrlimit_take(t, &a, 50) > 0);
    wl_addrlimit_free(t);

    /* Without a rate, everything passes. */
    assert_int_equal(wl_addrlimit_new(1024, 0, 1, &t), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(wl_addrlimit_take(t, &a, 0), 0);
    wl_addrlimit_free(t);
}

static void test_connections(void **state)
{
    (void)state;
    struct wl_addrlimit *t;
    struct wl_addr a = key4("203.0.113.5"), b = key4("203.0.113.6");

    assert_int_equal(wl_addrlimit_new(1024, 0, 1, &t), 0);
    assert_int_equal(wl_addrlimit_conn_open(t, &a, 2, 0), 0);
    assert_int_equal(wl_addrlimit_conn_open(t, &a, 2, 0), 0);
    assert_int_equal(wl_addrlimit_conn_open(t, &a, 2, 0), -EMFILE);
    assert_int_equal(wl_addrlimit_conns(t, &a), 2);
    assert_int_equal(wl_addrlimit_conn_open(t, &b, 2, 0), 0);
    wl_addrlimit_conn_close(t, &a);
    assert_int_equal(wl_addrlimit_conns(t, &a), 1);
    assert_int_equal(wl_addrlimit_conn_open(t, &a, 2, 0), 0);
    /* max 0: no limit, nothing counted. */
    assert_int_equal(wl_addrlimit_conn_open(t, &a, 0, 0), 1);
    assert_int_equal(wl_addrlimit_conns(t, &a), 2);
    /* Closing what was never counted does not go below zero. */
    struct wl_addr c = key4("203.0.113.7");
    wl_addrlimit_conn_close(t, &c);
    assert_int_equal(wl_addrlimit_conns(t, &c), 0);
    wl_addrlimit_free(t);
}

/* A million addresses through a table of 1024: it does not grow, and
 * entries with connections open survive. */
static void test_table_is_bounded(void **state)
{
    (void)state;
    struct wl_addrlimit *t;
    struct wl_addr pinned = key4("192.0.2.1"), busy = key4("192.0.2.2"), fresh;

    assert_int_equal(wl_addrlimit_new(1000, 1, 3, &t), 0);
    assert_int_equal(wl_addrlimit_capacity(t), 1024);
    size_t bytes = wl_addrlimit_bytes(t);
    assert_int_equal(wl_addrlimit_conn_open(t, &pinned, 5, 0), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(wl_addrlimit_take(t, &busy, 0), 0);
    assert_true(wl_addrlimit_take(t, &busy, 0) > 0);

    uint64_t limited = 0;
    for (uint32_t i = 0; i < 1000000; i++) {
        struct wl_addr k;
        memset(&k, 0, sizeof k);
        k.b[10] = k.b[11] = 0xff;
        uint32_t ip = htonl(0x0a000000u + i); /* 10.0.0.0/8 */
        memcpy(k.b + 12, &ip, 4);
        /* Each new address starts with a full bucket. */
        if (wl_addrlimit_take(t, &k, 0) != 0)
            limited++;
    }
    assert_int_equal(limited, 0);
    assert_int_equal(wl_addrlimit_bytes(t), bytes);
    assert_int_equal(wl_addrlimit_conns(t, &pinned), 1);

    /* Idle long enough to refill, an entry is the first forgotten: a later
     * address takes its slot before any drained one's. */
    fresh = key4("192.0.2.3");
    for (int i = 0; i < 3; i++)
        assert_int_equal(wl_addrlimit_take(t, &fresh, 1000000), 0);
    assert_true(wl_addrlimit_take(t, &fresh, 1000000) > 0);
    wl_addrlimit_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_bucket),
        cmocka_unit_test(test_connections),
        cmocka_unit_test(test_table_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
