/* Unit tests for wl_udp_pause_ms (collector/ingest_udp.c): how long UDP
 * reads may pause once the kernel's queue is emptied. The pause is the
 * longest allowed while datagrams arrive slowly, shorter as they come
 * faster, and none when the pause would fill more than a quarter of the
 * queue at the rate just read (a flood of large datagrams during a fixed
 * 10 ms pause would overflow the queue and drop everyone's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ingest.h"

#define MiB (1024ULL * 1024)

/* The bench's rate, 20,000 small datagrams a second (~1.3 KiB of queue
 * each): 200 in 10 ms. */
static void test_slow_small_datagrams_pause_the_longest(void **state)
{
    (void)state;
    assert_int_equal(wl_udp_pause_ms(16 * MiB, 200 * 1324, 10, 10), 10);
    assert_int_equal(wl_udp_pause_ms(4 * MiB, 200 * 1324, 10, 2), 2);
}

/* Nothing read since the last time: the longest pause. Read within the
 * loop's millisecond: counted as one. */
static void test_nothing_read_and_no_time(void **state)
{
    (void)state;
    assert_int_equal(wl_udp_pause_ms(16 * MiB, 0, 0, 10), 10);
    assert_int_equal(wl_udp_pause_ms(16 * MiB, 0, 5, 10), 10);
    /* 1 MiB in "0 ms": at most a quarter (4 MiB) at 1 MiB/ms: 4 ms */
    assert_int_equal(wl_udp_pause_ms(16 * MiB, 1 * MiB, 0, 10), 4);
}

/* Large datagrams fast: the pause shrinks so that it fills at most a
 * quarter of the queue, and goes when even 1 ms would fill more. */
static void test_fast_large_datagrams_shorten_then_stop_the_pause(void **state)
{
    (void)state;
    /* 16 MiB in 10 ms: 1.6 MiB/ms, a quarter (4 MiB) lasts 2.5 ms */
    assert_int_equal(wl_udp_pause_ms(16 * MiB, 16 * MiB, 10, 10), 2);
    /* 80 MiB in 10 ms: 8 MiB/ms, more than a quarter in any millisecond */
    assert_int_equal(wl_udp_pause_ms(16 * MiB, 80 * MiB, 10, 10), 0);
    /* the same rate on a 4 MiB queue */
    assert_int_equal(wl_udp_pause_ms(4 * MiB, 16 * MiB, 10, 2), 0);
}

/* The largest queue the configuration allows (1 GiB), read for a long
 * time: no overflow in the arithmetic. */
static void test_large_queue_long_time(void **state)
{
    (void)state;
    assert_int_equal(wl_udp_pause_ms(1024 * MiB, 1, 86400000ULL * 365, 10), 10);
    assert_int_equal(wl_udp_pause_ms(1024 * MiB, UINT64_MAX / 2, 1, 10), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_small_datagrams_pause_the_longest),
        cmocka_unit_test(test_nothing_read_and_no_time),
        cmocka_unit_test(test_fast_large_datagrams_shorten_then_stop_the_pause),
        cmocka_unit_test(test_large_queue_long_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
