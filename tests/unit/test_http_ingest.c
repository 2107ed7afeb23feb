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
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

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
    /* a request paid for at accept (HTTPS): used once, then admitted as any */
    assert_int_equal(wl_http_guard_conn_use_prepaid(g, s[2]), 0);
    wl_http_guard_conn_prepay(g, s[2]);
    assert_int_equal(wl_http_guard_conn_use_prepaid(g, s[1]), 0);
    assert_int_equal(wl_http_guard_conn_use_prepaid(g, s[2]), 1);
    assert_int_equal(wl_http_guard_conn_use_prepaid(g, s[2]), 0);
    wl_http_guard_conn_prepay(g, s[2]);
    assert_int_equal(wl_http_guard_conn_use_prepaid(g, NULL), 0);
    wl_http_guard_conn_close(g, s[2]);
    assert_ptr_equal(wl_http_guard_conn_open(g, 201), s[2]);
    assert_int_equal(wl_http_guard_conn_use_prepaid(g, s[2]), 0); /* a new connection's own */
    for (int i = 0; i < 4; i++)
        wl_http_guard_conn_close(g, s[i]);
    wl_http_guard_free(g);
}

/* ---- the client address ---- */

/* addr as text ("a.b.c.d" or "v6"), port checked 0 */
static const char *show(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        assert_int_equal(in->sin_port, 0);
        return inet_ntop(AF_INET, &in->sin_addr, buf, (socklen_t)len);
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    assert_int_equal(ss->ss_family, AF_INET6);
    assert_int_equal(in6->sin6_port, 0);
    return inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)len);
}

static struct sockaddr_storage sa_of(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(4242);
    } else {
        assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(4242);
    }
    return ss;
}

static void test_trusted_parse(void **state)
{
    (void)state;
    struct wl_trusted t;
    char err[256];
    static const struct {
        const char *list;
        size_t n;
    } good[] = {
        {"", 0},
        {" , ,", 0},
        {"127.0.0.1/32", 1},
        {" 10.0.0.0/8 ,192.168.0.0/16,\t2001:db8::/32 , ::1", 4},
        {"0.0.0.0/0,::/0", 2},
        {"203.0.113.7", 1},                   /* a bare address: /32 */
        {"::ffff:10.1.0.0/112", 1},           /* IPv4-mapped: 10.1.0.0/16 */
        {"10.0.0.0/8,", 1},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (wl_trusted_parse(good[i].list, &t, err, sizeof err) != 0)
            fail_msg("must parse: '%s': %s", good[i].list, err);
        assert_int_equal(t.n, good[i].n);
    }
    assert_int_equal(wl_trusted_parse("::ffff:10.1.0.0/112", &t, err, sizeof err), 0);
    assert_int_equal(t.v[0].family, AF_INET);
    assert_int_equal(t.v[0].bits, 16);
    static const char *const bad[][2] = {
        {"10.0.0.1/8", "host bits"},
        {"10.0.0.0/33", "is not"},
        {"2001:db8::/129", "is not"},
        {"10.0.0.0/", "is not"},
        {"10.0.0.0/08", "is not"},
        {"10.0.0.0/-1", "is not"},
        {"10.0.0/8", "is not"},
        {"localhost", "is not"},
        {"10.0.0.0/8 192.168.0.0/16", "is not"},  /* a space is not a separator */
        {"fe80::1%eth0", "is not"},
        {"[::1]", "is not"},
        {"2001:db8::1/32", "host bits"},
        {"127.0.0.1/32,\"x\nevent=forged", "is not"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (wl_trusted_parse(bad[i][0], &t, err, sizeof err) == 0)
            fail_msg("must not parse: '%s'", bad[i][0]);
        if (strstr(err, "http_trusted_proxies") == NULL || strstr(err, bad[i][1]) == NULL)
            fail_msg("error for '%s': '%s' lacks the option or '%s'", bad[i][0], err,
                     bad[i][1]);
        assert_null(strchr(err, '"'));   /* nothing that breaks a key="value" log */
        assert_null(strchr(err, '\n'));
    }
    /* more than WL_TRUSTED_MAX */
    char many[WL_TRUSTED_MAX * 16 + 32] = "";
    for (int i = 0; i <= WL_TRUSTED_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "10.0.%d.0/24,", i);
    assert_int_equal(wl_trusted_parse(many, &t, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "more than"));
    /* membership */
    assert_int_equal(wl_trusted_parse("10.0.0.0/8,2001:db8::/32,192.0.2.128/25", &t, err,
                                      sizeof err), 0);
    static const struct {
        const char *addr;
        int in;
    } member[] = {
        {"10.255.1.2", 1}, {"11.0.0.1", 0}, {"::ffff:10.1.2.3", 1}, {"2001:db8:ff::1", 1},
        {"2001:db9::1", 0}, {"192.0.2.200", 1}, {"192.0.2.127", 0}, {"::1", 0},
    };
    for (size_t i = 0; i < sizeof member / sizeof member[0]; i++) {
        struct sockaddr_storage ss = sa_of(member[i].addr);
        if (wl_trusted_has(&t, (struct sockaddr *)&ss) != member[i].in)
            fail_msg("%s: trusted must be %d", member[i].addr, member[i].in);
    }
}

static void test_xff_entry(void **state)
{
    (void)state;
    static const char *const must_parse[][2] = {
        {"203.0.113.9", "203.0.113.9"},
        {"  203.0.113.9\t", "203.0.113.9"},
        {"203.0.113.9:51234", "203.0.113.9"},
        {"2001:db8::7", "2001:db8::7"},
        {"[2001:db8::7]", "2001:db8::7"},
        {"[2001:db8::7]:443", "2001:db8::7"},
        {" [2001:db8::7]:0 ", "2001:db8::7"},
        {"::ffff:198.51.100.1", "198.51.100.1"},
        {"[::ffff:198.51.100.1]:80", "198.51.100.1"},
        {"::1", "::1"},
    };
    static const char *const must_not_parse[] = {
        "", "   ", "unknown", "_hidden", "203.0.113", "203.0.113.9:", "203.0.113.9:65536",
        "203.0.113.9:123456", "203.0.113.9:-1", "203.0.113.9:8o", "[203.0.113.9]",
        "[2001:db8::7", "[2001:db8::7]x", "[2001:db8::7]:", "2001:db8::7:443x",
        "fe80::1%eth0", "for=203.0.113.9", "203.0.113.9 203.0.113.10", "1.2.3.4.5",
        "2001:db8::7]:443",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    };
    struct sockaddr_storage ss;
    char buf[INET6_ADDRSTRLEN];
    for (size_t i = 0; i < sizeof must_parse / sizeof must_parse[0]; i++) {
        const char *in = must_parse[i][0];
        if (wl_xff_entry_parse(in, strlen(in), &ss) != 0)
            fail_msg("must parse: '%s'", in);
        assert_string_equal(show(&ss, buf, sizeof buf), must_parse[i][1]);
    }
    for (size_t i = 0; i < sizeof must_not_parse / sizeof must_not_parse[0]; i++) {
        const char *in = must_not_parse[i];
        if (wl_xff_entry_parse(in, strlen(in), &ss) == 0)
            fail_msg("must not parse: '%s'", in);
    }
    /* a NUL inside (libmicrohttpd passes lengths), and no reading past len */
    assert_int_equal(wl_xff_entry_parse("1.2.3.4\0x", 9, &ss), -EINVAL);
    assert_int_equal(wl_xff_entry_parse("1.2.3.4,5.6.7.8", 7, &ss), 0);
    assert_string_equal(show(&ss, buf, sizeof buf), "1.2.3.4");
}

/* The client of a request from peer with the XFF headers in hdrs (NULL-ended). */
static const char *client(const struct wl_trusted *t, const char *peer, const char *const *hdrs,
                          char *buf, size_t len)
{
    struct wl_xff x[8];
    size_t n = 0;
    for (; hdrs != NULL && hdrs[n] != NULL; n++)
        x[n] = (struct wl_xff){hdrs[n], strlen(hdrs[n])};
    struct sockaddr_storage p = sa_of(peer), out;
    assert_int_equal(wl_client_from_xff((struct sockaddr *)&p, t, x, n, &out), 0);
    return show(&out, buf, len);
}

static void test_client_walk(void **state)
{
    (void)state;
    struct wl_trusted t, none;
    char err[256], buf[INET6_ADDRSTRLEN];
    assert_int_equal(wl_trusted_parse("127.0.0.1/32,10.0.0.0/8,2001:db8:1::/48", &t, err,
                                      sizeof err), 0);
    assert_int_equal(wl_trusted_parse("", &none, err, sizeof err), 0);
#define H(...) ((const char *const[]){__VA_ARGS__, NULL})
    const struct { /* automatic: compound literals inside */
        const char *peer;
        const char *const *xff;
        const char *want;
    } cases[] = {
        /* no header, or an untrusted peer: the peer (port dropped) */
        {"127.0.0.1", NULL, "127.0.0.1"},
        {"198.51.100.1", H("203.0.113.9"), "198.51.100.1"},
        /* a trusted peer: the rightmost entry that is not a trusted proxy */
        {"127.0.0.1", H("203.0.113.9"), "203.0.113.9"},
        {"127.0.0.1", H("6.6.6.6, 203.0.113.9"), "203.0.113.9"},        /* a forged left part */
        {"127.0.0.1", H("6.6.6.6, 203.0.113.9, 10.1.1.1"), "203.0.113.9"},
        {"127.0.0.1", H("203.0.113.9 ,10.1.1.1,  10.2.2.2 "), "203.0.113.9"},
        /* several headers: one list, joined in order */
        {"127.0.0.1", H("6.6.6.6", "203.0.113.9", "10.1.1.1"), "203.0.113.9"},
        {"127.0.0.1", H("203.0.113.9, 10.1.1.1", ""), "203.0.113.9"},
        {"127.0.0.1", H("203.0.113.9", "10.1.1.1,,"), "203.0.113.9"}, /* empty entries skipped */
        /* every hop trusted: the leftmost */
        {"127.0.0.1", H("10.9.9.9, 10.1.1.1"), "10.9.9.9"},
        /* garbage stops the walk: the address believed last stands */
        {"127.0.0.1", H("garbage"), "127.0.0.1"},
        {"127.0.0.1", H("203.0.113.9, unknown"), "127.0.0.1"},
        {"127.0.0.1", H("203.0.113.9, garbage, 10.1.1.1"), "10.1.1.1"},
        {"127.0.0.1", H("garbage, 203.0.113.9"), "203.0.113.9"},         /* never reached */
        /* IPv6, brackets and ports */
        {"127.0.0.1", H("[2001:db8:2::5]:443"), "2001:db8:2::5"},
        {"127.0.0.1", H("2001:db8:2::5, 2001:db8:1::9"), "2001:db8:2::5"},
        {"2001:db8:1::1", H("203.0.113.9:1234"), "203.0.113.9"},
        {"::ffff:127.0.0.1", H("203.0.113.9"), "203.0.113.9"},             /* a mapped peer */
        {"::ffff:10.0.0.1", NULL, "10.0.0.1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = client(&t, cases[i].peer, cases[i].xff, buf, sizeof buf);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %zu (peer %s): got %s, want %s", i, cases[i].peer, got,
                     cases[i].want);
    }
    /* nobody trusted: the header is never read */
    assert_string_equal(client(&none, "127.0.0.1", H("203.0.113.9"), buf, sizeof buf),
                        "127.0.0.1");
    assert_string_equal(client(NULL, "127.0.0.1", H("203.0.113.9"), buf, sizeof buf),
                        "127.0.0.1");
#undef H
    /* a peer of another family */
    struct sockaddr un = {.sa_family = AF_UNIX};
    struct sockaddr_storage out;
    assert_int_equal(wl_client_from_xff(&un, &t, NULL, 0, &out), -EAFNOSUPPORT);
    assert_int_equal(wl_client_from_xff(NULL, &t, NULL, 0, &out), -EAFNOSUPPORT);
    /* 10,000 entries (about 120 KB): linear, the same answer */
    static char big[10000 * 16];
    size_t at = 0;
    for (int i = 0; i < 10000; i++)
        at += (size_t)snprintf(big + at, sizeof big - at, "10.%d.%d.1,", i / 250 % 250,
                               i % 250);
    snprintf(big + at, sizeof big - at, "10.0.0.2");
    assert_string_equal(client(&t, "127.0.0.1", (const char *const[]){big, NULL}, buf,
                               sizeof buf), "10.0.0.1"); /* the leftmost: all trusted */
}

/* Random X-Forwarded-For lists (addresses trusted or not, with ports and
 * brackets, garbage, empty entries, spread over 1 to 3 headers) against a
 * walk written from the rule alone, over the entries as generated. */
static void test_client_walk_random(void **state)
{
    (void)state;
    enum { ADDR, GARBAGE, EMPTY };
    static const struct {
        const char *text;
        int kind;
        const char *addr;
        int trusted;
    } pool[] = {
        {"203.0.113.9", ADDR, "203.0.113.9", 0},
        {" 198.51.100.7:8080", ADDR, "198.51.100.7", 0},
        {" [2001:db8:2::5]:80 ", ADDR, "2001:db8:2::5", 0},
        {"2001:db8:3::1", ADDR, "2001:db8:3::1", 0},
        {"10.1.1.1", ADDR, "10.1.1.1", 1},
        {"127.0.0.1:99", ADDR, "127.0.0.1", 1},
        {"[2001:db8:1::9]", ADDR, "2001:db8:1::9", 1},
        {"::ffff:10.2.2.2", ADDR, "10.2.2.2", 1},
        {"garbage", GARBAGE, NULL, 0},
        {"unknown", GARBAGE, NULL, 0},
        {"1.2.3.4.5", GARBAGE, NULL, 0},
        {"[10.0.0.1]", GARBAGE, NULL, 0},
        {"", EMPTY, NULL, 0},
        {" \t", EMPTY, NULL, 0},
    };
    const size_t npool = sizeof pool / sizeof pool[0];
    struct wl_trusted t;
    char err[256], got[INET6_ADDRSTRLEN];
    uint64_t rnd = 0x9e3779b97f4a7c15ull;
    assert_int_equal(wl_trusted_parse("127.0.0.1/32,10.0.0.0/8,2001:db8:1::/48", &t, err,
                                      sizeof err), 0);

    for (int iter = 0; iter < 20000; iter++) {
        size_t picks[12], n = 0;
        char hdr[3][512];
        struct wl_xff x[3];
        size_t nh = 0;

        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
        const char *peer = (rnd >> 60) < 13 ? "127.0.0.1" : "198.51.100.1";
        size_t count = (size_t)(rnd >> 33) % 12;
        for (size_t i = 0; i < count; i++) {
            rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
            picks[n++] = (size_t)(rnd >> 33) % npool;
        }
        /* the entries in order, cut into up to 3 headers */
        size_t at = 0;
        while (at < n || nh == 0) {
            rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
            size_t take = nh == 2 ? n - at : (size_t)(rnd >> 40) % (n - at + 1);
            hdr[nh][0] = '\0';
            for (size_t i = 0; i < take; i++)
                snprintf(hdr[nh] + strlen(hdr[nh]), sizeof hdr[nh] - strlen(hdr[nh]), "%s%s",
                         i ? "," : "", pool[picks[at + i]].text);
            x[nh] = (struct wl_xff){hdr[nh], strlen(hdr[nh])};
            nh++;
            at += take;
            if (nh == 3)
                break;
        }
        /* the rule */
        const char *want = peer;
        if (strcmp(peer, "127.0.0.1") == 0) {
            for (size_t i = n; i-- > 0;) {
                if (pool[picks[i]].kind == EMPTY)
                    continue;
                if (pool[picks[i]].kind == GARBAGE)
                    break;
                want = pool[picks[i]].addr;
                if (!pool[picks[i]].trusted)
                    break;
            }
        }
        struct sockaddr_storage p = sa_of(peer), out;
        assert_int_equal(wl_client_from_xff((struct sockaddr *)&p, &t, x, nh, &out), 0);
        show(&out, got, sizeof got);
        if (strcmp(got, want) != 0)
            fail_msg("iteration %d: peer %s, headers '%s' | '%s' | '%s': got %s, want %s", iter,
                     peer, nh > 0 ? hdr[0] : "", nh > 1 ? hdr[1] : "", nh > 2 ? hdr[2] : "",
                     got, want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_tables),
        cmocka_unit_test(test_nul_in_value_and_too_many),
        cmocka_unit_test(test_mapping),
        cmocka_unit_test(test_bulletins),
        cmocka_unit_test(test_guard_rate),
        cmocka_unit_test(test_trusted_parse),
        cmocka_unit_test(test_xff_entry),
        cmocka_unit_test(test_client_walk),
        cmocka_unit_test(test_client_walk_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
