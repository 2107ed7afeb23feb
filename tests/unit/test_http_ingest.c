/* The HTTP ingest listener's parts (collector/http_ingest_parts.h): the
 * security check's query as tables of must_parse / must_not_parse inputs,
 * the ping it maps to, the bulletins file and its errors, the guard's rate
 * limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "envelope.h"
#include "http_ingest_parts.h"

/* Splits "k=v&k2=v2" (no unescaping: the tests write raw bytes) into params. */
static size_t split(char *q, struct wl_sq_param *p, size_t max)
{
    size_t n = 0;
    for (char *part = q, *next; part != NULL && n < max; part = next) {
        next = strchr(part, '&');
        if (next != NULL)
            *next++ = '\0';
        char *eq = strchr(part, '=');
        if (eq != NULL)
            *eq++ = '\0';
        p[n++] = (struct wl_sq_param){part, strlen(part), eq, eq ? strlen(eq) : 0};
    }
    return n;
}

static int parse(const char *query, struct wl_security_check *c)
{
    char buf[8192], why[96];
    struct wl_sq_param p[64];
    snprintf(buf, sizeof buf, "%s", query);
    size_t n = split(buf, p, 64);
    return wl_security_parse(p, n, 10000000, c, why, sizeof why);
}

static const char *const must_parse[] = {
    "auc=3&b=11.6.0.1234&be=true&db=postgres&id=k7x3pq9s1bfj8ctw5yhzr4ud6e&os=linux&tc=2&uc=10"
    "&ut=0",
    "b=11.6.0.dev&be=false&db=mysql&id=ybndrfg8ejkmcpqxot1uwisza3&os=linux&ut=0",
    "id=x&b=1",
    "id=x&b=1&unknown=whatever&other",
    "id=x&b=1&uc=10000000&auc=0&tc=0",
    "id=x&b=1&ut=1",
};

static const char *const must_not_parse[] = {
    "",
    "b=11.6.0.1",                         /* no id */
    "id=&b=1",                            /* empty id */
    "id=x",                               /* no b */
    "id=x&b=",
    "id=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa&b=1", /* 65 */
    "id=a\x01&b=1",
    "id=a\x7f&b=1",
    "id=\xc3\xa9&b=1",
    "id=x&id=y&b=1",
    "id=x&b=1&uc=",
    "id=x&b=1&uc=-1",
    "id=x&b=1&uc=1e3",
    "id=x&b=1&uc=10000001",               /* over max_count */
    "id=x&b=1&auc=99999999999",
    "id=x&b=1&tc=4294967296",
    "id=x&b=1&be=yes",
    "id=x&b=1&be",
    "id=x&b=1&ut=2",
    "id=x&b=1&os=a\nb",
};

static void test_query_tables(void **state)
{
    (void)state;
    struct wl_security_check c;
    for (size_t i = 0; i < sizeof must_parse / sizeof must_parse[0]; i++)
        if (parse(must_parse[i], &c) != 0)
            fail_msg("must parse: %s", must_parse[i]);
    for (size_t i = 0; i < sizeof must_not_parse / sizeof must_not_parse[0]; i++)
        if (parse(must_not_parse[i], &c) == 0)
            fail_msg("must not parse: %s", must_not_parse[i]);
}

static void test_nul_in_value_and_too_many(void **state)
{
    (void)state;
    struct wl_security_check c;
    char why[96];
    /* "abc%00def" as MHD hands it over: 7 bytes with a NUL inside */
    struct wl_sq_param p[40] = {{"id", 2, "abc\0def", 7}, {"b", 1, "1", 1}};
    assert_int_equal(wl_security_parse(p, 2, 100, &c, why, sizeof why), -22);
    assert_non_null(strstr(why, "id"));
    p[0] = (struct wl_sq_param){"id", 2, "abc", 3};
    assert_int_equal(wl_security_parse(p, 2, 100, &c, why, sizeof why), 0);
    for (size_t i = 2; i < 40; i++)
        p[i] = (struct wl_sq_param){"k", 1, "v", 1};
    assert_int_equal(wl_security_parse(p, WL_SECURITY_PARAMS_MAX, 100, &c, why, sizeof why), 0);
    assert_int_equal(wl_security_parse(p, WL_SECURITY_PARAMS_MAX + 1, 100, &c, why, sizeof why),
                     -22);
}

static void test_mapping(void **state)
{
    (void)state;
    struct wl_security_check c;
    assert_int_equal(parse("auc=3&b=11.6.0.1234&be=true&db=postgres&id=k7x3pq9s1bfj8ctw5yhzr4u"
                           "d6e&os=linux&tc=2&uc=10&ut=0", &c), 0);
    assert_string_equal(c.version, "11.6.0");
    assert_string_equal(c.edition, "enterprise");
    assert_int_equal(c.test_run, 0);
    int64_t at = 1796609575238LL;
    wl_ping_batch *b = wl_security_batch(&c, at);
    assert_non_null(b);
    assert_int_equal(b->n_pings, 1);
    const wl_ping *p = b->pings[0];
    assert_int_equal(wl_ping_validate(p, 10000000), WL_REJECT_NONE);
    assert_string_equal(p->install_id, "k7x3pq9s1bfj8ctw5yhzr4ud6e");
    assert_int_equal(p->seq, 1); /* a placeholder: the writer assigns edge seqs */
    assert_int_equal(p->sent_at, at);
    assert_string_equal(p->database_type, "postgres");
    assert_string_equal(p->operating_system, "linux");
    assert_string_equal(p->installation_type, "");
    assert_int_equal(p->registered_users, 10);
    assert_int_equal(p->active_users_daily, 3);
    assert_int_equal(p->teams, 2);
    assert_int_equal(p->org_key.len, 0);
    wl_ping_batch_free(b);

    /* the version part of b: the first three dot-separated parts */
    static const char *const bs[][2] = {{"11.6.0.dev", "11.6.0"}, {"11.6.0", "11.6.0"},
                                        {"10.11.0.77.3", "10.11.0"}, {"7", "7"},
                                        {"a.b.c.d", "a.b.c"}, {"...", ".."}};
    for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++) {
        char q[64];
        snprintf(q, sizeof q, "id=x&b=%s&be=false&ut=1", bs[i][0]);
        assert_int_equal(parse(q, &c), 0);
        assert_string_equal(c.version, bs[i][1]);
        assert_string_equal(c.edition, "team");
        assert_int_equal(c.test_run, 1);
    }
    assert_int_equal(parse("id=x&b=1", &c), 0);
    assert_string_equal(c.edition, "");
    assert_int_equal(c.has_uc + c.has_auc + c.has_tc, 0);
}

/* ---- bulletins ---- */

static char dir[64];

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int load(const char *json, struct wl_bulletins *b, char *err, size_t errlen)
{
    char path[256];
    write_file("b.json", json);
    snprintf(path, sizeof path, "%s/b.json", dir);
    return wl_bulletins_load(path, b, err, errlen);
}

static void test_bulletins(void **state)
{
    (void)state;
    struct wl_bulletins b;
    char err[4096];
    size_t len;

    snprintf(dir, sizeof dir, "/tmp/wl-bulletins-XXXXXX");
    assert_non_null(mkdtemp(dir));
    write_file("one.html", "<p>one</p>");
    write_file("two.html", "<p>two</p>");

    assert_int_equal(wl_bulletins_load("", &b, err, sizeof err), 0);
    assert_int_equal(b.n, 0);
    char *a = wl_bulletins_answer(&b, "11.6.0", &len);
    assert_string_equal(a, "[]");
    free(a);

    assert_int_equal(load("[{\"id\":\"MMSA-1\",\"applies_to_version\":\"11.6.0\","
                          "\"body_file\":\"one.html\"},{\"id\":\"MMSA-2\","
                          "\"applies_to_version\":\"10.11.0\",\"body_file\":\"two.html\"}]",
                          &b, err, sizeof err), 0);
    assert_int_equal(b.n, 2);
    a = wl_bulletins_answer(&b, "11.6.0", &len);
    assert_string_equal(a, "[{\"id\":\"MMSA-1\",\"applies_to_version\":\"11.6.0\"}]");
    assert_int_equal(len, strlen(a));
    free(a);
    a = wl_bulletins_answer(&b, "11.6", &len);
    assert_string_equal(a, "[]");
    free(a);
    const struct wl_bulletin *one = wl_bulletins_find(&b, "MMSA-2");
    assert_non_null(one);
    assert_int_equal(one->body_len, 10);
    assert_memory_equal(one->body, "<p>two</p>", 10);
    assert_null(wl_bulletins_find(&b, "MMSA-3"));
    wl_bulletins_free(&b);

    static const char *const bad[][2] = {
        {"[{\"id\":\"A\",\n", "line 2"},
        {"{}", "expected a JSON array"},
        {"[{\"id\":\"A\",\"applies_to_version\":\"1\"}]", "entry 1"},
        {"[{\"id\":\"a/b\",\"applies_to_version\":\"1\",\"body_file\":\"one.html\"}]", "id:"},
        {"[{\"id\":\"\",\"applies_to_version\":\"1\",\"body_file\":\"one.html\"}]", "id:"},
        {"[{\"id\":\"A\",\"applies_to_version\":\"1\",\"body_file\":\"one.html\"},"
         "{\"id\":\"A\",\"applies_to_version\":\"2\",\"body_file\":\"two.html\"}]",
         "entry 2: id \"A\" is used twice"},
        {"[{\"id\":\"A\",\"applies_to_version\":\"\",\"body_file\":\"one.html\"}]",
         "applies_to_version"},
        {"[{\"id\":\"A\",\"applies_to_version\":\"1\",\"body_file\":\"nope.html\"}]",
         "cannot open body_file"},
        {"[{\"id\":\"A\",\"applies_to_version\":1,\"body_file\":\"one.html\"}]", "entry 1"},
        {"[{\"id\":\"A\",\"applies_to_version\":\"1\",\"body_file\":\"one.html\",\"x\":1}]",
         "entry 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (load(bad[i][0], &b, err, sizeof err) == 0)
            fail_msg("must not load: %s", bad[i][0]);
        if (strstr(err, bad[i][1]) == NULL || strstr(err, "b.json") == NULL)
            fail_msg("error for %s: '%s' lacks the file or '%s'", bad[i][0], err, bad[i][1]);
        assert_int_equal(b.n, 0);
        assert_null(b.v);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- the guard ---- */

static void test_guard_rate(void **state)
{
    (void)state;
    struct wl_http_guard *g;
    char err[256];
    struct wl_http_guard_opts o = {.table_size = 1024, .rate = 1, .burst = 3,
                                   .limit_loopback = 0, .max_conns = 4, .deadline_ms = 1000};
    struct sockaddr_in a = {.sin_family = AF_INET}, lo = {.sin_family = AF_INET};
    inet_pton(AF_INET, "192.0.2.7", &a.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &lo.sin_addr);

    assert_int_equal(wl_http_guard_new(&o, &g, err, sizeof err), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(wl_http_guard_admit(g, (struct sockaddr *)&a), 0);
    assert_true(wl_http_guard_admit(g, (struct sockaddr *)&a) >= 1);
    for (int i = 0; i < 10; i++) /* loopback: not limited without limit_loopback */
        assert_int_equal(wl_http_guard_admit(g, (struct sockaddr *)&lo), 0);
    /* connection slots: a fixed number, freed on close */
    void *s[4];
    for (int i = 0; i < 4; i++)
        assert_non_null(s[i] = wl_http_guard_conn_open(g, 100 + i));
    assert_null(wl_http_guard_conn_open(g, 200));
    wl_http_guard_conn_close(g, s[2]);
    assert_ptr_equal(wl_http_guard_conn_open(g, 201), s[2]);
    for (int i = 0; i < 4; i++)
        wl_http_guard_conn_close(g, s[i]);
    wl_http_guard_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_tables),
        cmocka_unit_test(test_nul_in_value_and_too_many),
        cmocka_unit_test(test_mapping),
        cmocka_unit_test(test_bulletins),
        cmocka_unit_test(test_guard_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
