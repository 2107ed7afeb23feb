/* Unit tests for collector/api_csv.h (RFC 4180 read in place), as tables of
 * inputs that must parse to given records and inputs that must fail on a
 * given line; and for wl_api_parse_time (the since= parameter). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_csv.h"
#include "api_http.h"

#define MAX_FIELDS 4
#define MAX_RECORDS 4

/* Records written as fields joined by '|', records by '/'. */
struct must_parse {
    const char *in;
    const char *want;
};

static const struct must_parse must_parse[] = {
    {"", ""},
    {"a,b,c", "a|b|c"},
    {"a,b,c\n", "a|b|c"},
    {"a,b,c\r\nd,e,f\r\n", "a|b|c/d|e|f"},
    {"a,b,c\rd,e,f", "a|b|c/d|e|f"},
    {"a,,c\n", "a||c"},
    {",,\n", "||"},
    {"a,b,\n", "a|b|"},
    {"\"a,b\",c\n", "a,b|c"},
    {"\"say \"\"hi\"\"\",x", "say \"hi\"|x"},
    {"\"\"\"\",x", "\"|x"},
    {"\"\",x", "|x"},
    {"\"two\r\nlines\",x\n", "two\r\nlines|x"},
    {"\n\r\n\na,b\n\n\nc,d\n\n", "a|b/c|d"},
    {" a , b ", " a | b "},
    {"a,b,c,d,e\n", "a|b|c|d"}, /* read on, kept MAX_FIELDS */
    {"\xc3\xa9t\xc3\xa9,x", "\xc3\xa9t\xc3\xa9|x"},
    {"a,b", "a|b"},
};

struct must_not_parse {
    const char *in;
    unsigned line;
    const char *reason;
};

static const struct must_not_parse must_not_parse[] = {
    {"a,b\"c,d\n", 1, "quote inside an unquoted field"},
    {"ok,ok\na,\"b\"c\n", 2, "after a closing quote"},
    {"ok\n\"never closed\n\n", 2, "never closed"},
    {"ok\nx,\"a\nb\nc", 2, "never closed"},
    {"\"a\nb\"x,y", 2, "after a closing quote"},
    {"ok\nab\"", 2, "quote inside"},
};

/* Parses in (a copy with room for the NUL) into "a|b/c|d" form. */
static int parse_all(const char *in, char *out, size_t outlen, unsigned *line, char *err,
                     size_t errlen)
{
    size_t len = strlen(in);
    char *buf = malloc(len + 1);
    struct wl_csv csv;
    char *f[MAX_FIELDS];
    int n, records = 0;
    size_t o = 0;

    assert_non_null(buf);
    memcpy(buf, in, len);
    buf[len] = 'Z'; /* the room: the parser may write there, never read it */
    out[0] = '\0';
    wl_csv_init(&csv, buf, len);
    while ((n = wl_csv_next(&csv, f, MAX_FIELDS, line, err, errlen)) > 0) {
        for (int i = 0; i < n && i < MAX_FIELDS; i++)
            o += (size_t)snprintf(out + o, outlen - o, "%s%s", i ? "|" : records ? "/" : "",
                                  f[i]);
        records++;
    }
    free(buf);
    return n;
}

static void test_must_parse(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof must_parse / sizeof must_parse[0]; i++) {
        char out[256], err[256] = "";
        unsigned line = 0;
        int rc = parse_all(must_parse[i].in, out, sizeof out, &line, err, sizeof err);
        if (rc != 0 || strcmp(out, must_parse[i].want) != 0) {
            print_error("case %zu %s: rc %d (%s), got \"%s\", want \"%s\"\n", i,
                        must_parse[i].in, rc, err, out, must_parse[i].want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void test_must_not_parse(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof must_not_parse / sizeof must_not_parse[0]; i++) {
        const struct must_not_parse *c = &must_not_parse[i];
        char out[256], err[256] = "";
        unsigned line = 0;
        int rc = parse_all(c->in, out, sizeof out, &line, err, sizeof err);
        if (rc != -EINVAL || line != c->line || strstr(err, c->reason) == NULL) {
            print_error("case %zu: rc %d line %u err \"%s\"; want -EINVAL, line %u, \"%s\"\n",
                        i, rc, line, err, c->line, c->reason);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void test_nul_byte(void **state)
{
    (void)state;
    char buf[] = {'a', ',', 'b', '\n', 'c', '\0', 'd', '\n', 0};
    struct wl_csv csv;
    char *f[MAX_FIELDS], err[128];
    unsigned line = 0;

    wl_csv_init(&csv, buf, 8);
    assert_int_equal(wl_csv_next(&csv, f, MAX_FIELDS, &line, err, sizeof err), 2);
    assert_int_equal(line, 1);
    assert_int_equal(wl_csv_next(&csv, f, MAX_FIELDS, &line, err, sizeof err), -EINVAL);
    assert_int_equal(line, 2);
    assert_non_null(strstr(err, "NUL"));
}

static void test_record_lines(void **state)
{
    (void)state;
    char buf[] = "h1,h2\n\"a\nb\",c\n\nd,e\n";
    struct wl_csv csv;
    char *f[MAX_FIELDS], err[128];
    unsigned line = 0;

    wl_csv_init(&csv, buf, strlen(buf));
    assert_int_equal(wl_csv_next(&csv, f, MAX_FIELDS, &line, err, sizeof err), 2);
    assert_int_equal(line, 1);
    assert_int_equal(wl_csv_next(&csv, f, MAX_FIELDS, &line, err, sizeof err), 2);
    assert_int_equal(line, 2);
    assert_string_equal(f[0], "a\nb");
    assert_int_equal(wl_csv_next(&csv, f, MAX_FIELDS, &line, err, sizeof err), 2);
    assert_int_equal(line, 5); /* the record after the blank line 4 */
    assert_string_equal(f[1], "e");
    assert_int_equal(wl_csv_next(&csv, f, MAX_FIELDS, &line, err, sizeof err), 0);
}

/* ---- since= ---- */

static void test_parse_time(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t want;
    } ok[] = {
        {"0", 0},
        {"1793534400000", 1793534400000LL},
        {"2026-11-01", 1793491200000LL},
        {"2026-11-01T12:00:00Z", 1793534400000LL},
        {"2026-11-01T12:00Z", 1793534400000LL},
        {"2026-11-01T12:00:00.25Z", 1793534400250LL},
        {"2026-11-01T12:00:00.123456Z", 1793534400123LL},
        {"2026-11-01T13:30:00+01:30", 1793534400000LL},
        {"2026-11-01T10:00:00-02:00", 1793534400000LL},
        {"2024-02-29", 1709164800000LL},
    };
    static const char *const bad[] = {
        "", "x", "-1", "2026-11", "2026-13-01", "2026-02-29", "2026-11-31", "2026-11-01T12:00:00",
        "2026-11-01T24:00:00Z", "2026-11-01T12:60Z", "2026-11-01T12:00:00.Z",
        "2026-11-01Z", "2026-11-01T12:00:00Zx", "1e3", "99999999999999999999",
        "1969-12-31", "2026-11-01T12:00:00+1:00",
    };
    int fails = 0;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t got = -1;
        if (wl_api_parse_time(ok[i].in, &got) != 0 || got != ok[i].want) {
            print_error("'%s': got %lld, want %lld\n", ok[i].in, (long long)got,
                        (long long)ok[i].want);
            fails++;
        }
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t got = -1;
        if (wl_api_parse_time(bad[i], &got) != -EINVAL) {
            print_error("'%s' parsed (%lld), want -EINVAL\n", bad[i], (long long)got);
            fails++;
        }
    }
    assert_int_equal(fails, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_must_parse),
        cmocka_unit_test(test_must_not_parse),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_record_lines),
        cmocka_unit_test(test_parse_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
