/* Unit tests for libmicrohttpd's messages through our logger
 * (collector/http_log.h): the msg="..." value (bounded, no line breaks or
 * control characters, quotes and backslashes escaped, so parse_kv-style
 * readers get it back), and the per-listener token bucket on a made-up
 * clock (burst, refill, the suppressed count and its last report at the
 * stop, many threads at once). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector/http_log.h"

static size_t fmt(char *out, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    size_t n = wl_http_log_format(out, f, ap);
    va_end(ap);
    return n;
}

static void test_format(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"Server reached connection limit. Closing inbound connection.\n",
         "Server reached connection limit. Closing inbound connection."},
        {"plain", "plain"},
        {"trailing CRLF\r\n\n", "trailing CRLF"},
        {"two\nlines\r\nhere", "two lines  here"},
        {"tab\there", "tab here"},
        {"esc\x1b[31m bell\x07 del\x7f", "esc?[31m bell? del?"},
        {"a \"quoted\" value", "a \\\"quoted\\\" value"},
        {"back\\slash", "back\\\\slash"},
        {"forged\nts=x level=error event=fake msg=\"",
         "forged ts=x level=error event=fake msg=\\\""},
        {"utf-8 \xc3\xa9 kept", "utf-8 \xc3\xa9 kept"},
        {"", ""},
    };
    char out[WL_HTTP_LOG_OUT_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = fmt(out, "%s", cases[i].in);
        assert_string_equal(out, cases[i].want);
        assert_int_equal(n, strlen(cases[i].want));
    }
    assert_int_equal(fmt(out, "code %u (`%s')", 505u, "x"), strlen("code 505 (`x')"));
    assert_string_equal(out, "code 505 (`x')");
}

/* The longest message, all of it escaped, fits; longer ones are cut and
 * say so. */
static void test_format_bounds(void **state)
{
    (void)state;
    static char in[4 * WL_HTTP_LOG_MSG_MAX];
    char out[WL_HTTP_LOG_OUT_MAX + 16];
    memset(out, 'Z', sizeof out);
    memset(in, '"', sizeof in - 1);
    size_t n = fmt(out, "%s", in);
    assert_int_equal(n, 2 * WL_HTTP_LOG_MSG_MAX + 3);
    assert_true(n < WL_HTTP_LOG_OUT_MAX);
    assert_memory_equal(out + n - 3, "...", 3);
    assert_int_equal(out[n], '\0');
    assert_int_equal(out[WL_HTTP_LOG_OUT_MAX], 'Z'); /* nothing past the bound */
    memset(in, 'a', WL_HTTP_LOG_MSG_MAX);
    in[WL_HTTP_LOG_MSG_MAX] = '\0';
    assert_int_equal(fmt(out, "%s", in), WL_HTTP_LOG_MSG_MAX); /* exactly: not cut */
}

#define MS 1000000LL
#define SEC (1000 * MS)

static void test_bucket(void **state)
{
    (void)state;
    struct wl_http_log l = WL_HTTP_LOG_INIT("test");
    uint64_t sup = 99;
    int64_t t = 5 * SEC;

    for (int i = 0; i < WL_HTTP_LOG_BURST; i++) {
        assert_int_equal(wl_http_log_admit(&l, t, &sup), 1);
        assert_int_equal(sup, 0);
    }
    for (int i = 0; i < 1000; i++)
        assert_int_equal(wl_http_log_admit(&l, t + i, &sup), 0);
    /* one line's worth of refill (1/RATE s): one line, carrying the count */
    t += SEC / WL_HTTP_LOG_RATE;
    assert_int_equal(wl_http_log_admit(&l, t, &sup), 1);
    assert_int_equal(sup, 1000);
    assert_int_equal(wl_http_log_admit(&l, t, &sup), 0);
    /* a steady flood for 10 s: RATE lines a second, no more */
    int admitted = 0;
    uint64_t counted = 0; /* the suppressed= values reported */
    for (int64_t s = t + MS; s <= t + 10 * SEC; s += MS) {
        if (wl_http_log_admit(&l, s, &sup)) {
            admitted++;
            counted += sup;
        }
    }
    assert_int_equal(admitted, 10 * WL_HTTP_LOG_RATE);
    /* every call is a line or counted (and the one refused at t too) */
    assert_int_equal(admitted + counted, 10000 + 1);
    /* a clock that steps back gives nothing away */
    assert_int_equal(wl_http_log_admit(&l, t, &sup), 0);
    /* idle: the bucket fills up to the burst, not past it */
    t += 3600 * SEC;
    admitted = 0;
    for (int i = 0; i < 100; i++)
        admitted += wl_http_log_admit(&l, t, &sup);
    assert_int_equal(admitted, WL_HTTP_LOG_BURST);
    pthread_mutex_destroy(&l.lock);
}

/* The count left at the stop goes out in one line, then starts again. */
static void test_flush(void **state)
{
    (void)state;
    struct wl_http_log l = WL_HTTP_LOG_INIT("flushed");
    uint64_t sup;
    char path[] = "/tmp/wl-test-http-log-XXXXXX", text[512] = "";
    int fd = mkstemp(path), saved = dup(2);
    assert_true(fd >= 0 && saved >= 0);

    for (int i = 0; i < WL_HTTP_LOG_BURST + 7; i++)
        wl_http_log_admit(&l, SEC, &sup);
    fflush(stderr);
    dup2(fd, 2);
    wl_http_log_flush(&l);
    wl_http_log_flush(&l); /* nothing left: no line */
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_true(pread(fd, text, sizeof text - 1, 0) > 0);
    close(fd);
    unlink(path);
    assert_non_null(strstr(text, " level=warn event=http_server_messages_suppressed "
                                 "listener=flushed suppressed=7\n"));
    assert_null(strstr(strchr(text, '\n') + 1, "event="));
    assert_int_equal(wl_http_log_admit(&l, 100 * SEC, &sup), 1);
    assert_int_equal(sup, 0);
    pthread_mutex_destroy(&l.lock);
}

struct flood {
    struct wl_http_log *l;
    int admitted;
    uint64_t reported;
};

static void *flood_thread(void *arg)
{
    struct flood *f = arg;
    uint64_t sup;
    for (int i = 0; i < 20000; i++) {
        if (wl_http_log_admit(f->l, 7 * SEC + i * 1000, &sup)) { /* 20 ms in all */
            f->admitted++;
            f->reported += sup;
        }
    }
    return NULL;
}

/* Eight threads at once (libmicrohttpd's pool): no line given twice, none
 * lost from the count. */
static void test_bucket_threads(void **state)
{
    (void)state;
    struct wl_http_log l = WL_HTTP_LOG_INIT("threads");
    struct flood f[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        f[i] = (struct flood){.l = &l};
        assert_int_equal(pthread_create(&th[i], NULL, flood_thread, &f[i]), 0);
    }
    int admitted = 0;
    uint64_t reported = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        admitted += f[i].admitted;
        reported += f[i].reported;
    }
    assert_true(admitted >= WL_HTTP_LOG_BURST);
    assert_true(admitted <= WL_HTTP_LOG_BURST + 1); /* 20 ms: at most a fifth of a refill */
    assert_int_equal((uint64_t)admitted + reported + l.suppressed, 8 * 20000);
    pthread_mutex_destroy(&l.lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_bounds),
        cmocka_unit_test(test_bucket),
        cmocka_unit_test(test_flush),
        cmocka_unit_test(test_bucket_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
