/* Unit tests for collector/nettable.h and collector/networks.h: the
 * longest-prefix structure against a brute-force oracle on random IPv4 and
 * IPv6 prefix sets (nested, /0, full-length, adjacent), CIDR parsing as
 * must_parse / must_not_parse tables, the CSV import's errors (each naming
 * its line, none quoting a domain), lookups by socket address (IPv4-mapped
 * IPv6 as IPv4), lookups racing replaces, and the table kept in a store
 * across a reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "networks.h"
#include "nettable.h"
#include "orgkey.h"
#include "storage/store.h"
#include "tmpdir.h"

static const uint8_t SALT[] = "unit-test-salt";
#define SALTLEN (sizeof SALT - 1)

/* ---- a small deterministic generator ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static int bits_of(int family) { return family == 4 ? 32 : 128; }

static void clear_host(uint8_t *a, int family, int len)
{
    for (int b = len; b < bits_of(family); b++)
        a[b / 8] &= (uint8_t)~(0x80u >> (b % 8));
}

static int covers(const struct wl_net_prefix *p, int family, const uint8_t *a)
{
    if (p->family != family)
        return 0;
    for (int b = 0; b < p->len; b++) {
        int m = 0x80 >> (b % 8);
        if ((p->addr[b / 8] & m) != (a[b / 8] & m))
            return 0;
    }
    return 1;
}

/* The oracle: the longest covering prefix, by scanning them all. */
static int oracle(const struct wl_net_prefix *v, size_t n, int family, const uint8_t *a,
                  uint8_t org[32])
{
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        if (covers(&v[i], family, a) && (best < 0 || v[i].len > v[best].len))
            best = (int)i;
    }
    if (best < 0)
        return 0;
    memcpy(org, v[best].org, 32);
    return 1;
}

static int same_prefix(const struct wl_net_prefix *x, const struct wl_net_prefix *y)
{
    return x->family == y->family && x->len == y->len && memcmp(x->addr, y->addr, 16) == 0;
}

/* With head_bits set, every prefix (and half the random probes) lies under
 * head's first head_bits bits, as IPv6 tables lie in 2000::/3. */
static int head_bits;
static const uint8_t head[16] = {0x20, 0x01, 0x0d, 0xb8, 0x42};

static void put_head(uint8_t *a)
{
    for (int b = 0; b < head_bits; b++) {
        uint8_t m = (uint8_t)(0x80u >> (b % 8));
        a[b / 8] = (uint8_t)((a[b / 8] & ~m) | (head[b / 8] & m));
    }
}

/* n random prefixes of the family, no two equal: some fresh, many nested
 * in (or next to) one already made, and /0 and full-length ones. */
static size_t random_prefixes(struct wl_net_prefix *v, size_t n, int family, int norgs)
{
    size_t m = 0;
    int bits = bits_of(family);
    while (m < n) {
        struct wl_net_prefix p;
        memset(&p, 0, sizeof p);
        p.family = (uint8_t)family;
        uint64_t r = rnd();
        int nbytes = bits / 8;
        if (m > 0 && r % 3 != 0) {
            const struct wl_net_prefix *base = &v[rnd() % m];
            memcpy(p.addr, base->addr, 16);
            int extra = (int)(rnd() % 9);
            p.len = (uint8_t)(base->len + extra > bits ? bits : base->len + extra);
            for (int b = base->len; b < bits; b++) /* random bits below the base */
                if (rnd() & 1)
                    p.addr[b / 8] ^= (uint8_t)(0x80u >> (b % 8));
            if (r % 7 == 0 && base->len > 0) { /* the sibling of the base */
                memcpy(p.addr, base->addr, 16);
                p.len = base->len;
                p.addr[(base->len - 1) / 8] ^= (uint8_t)(0x80u >> ((base->len - 1) % 8));
            }
        } else {
            for (int i = 0; i < nbytes; i++)
                p.addr[i] = (uint8_t)rnd();
            int choice = (int)(rnd() % 10);
            p.len = choice == 0 ? 0 : choice == 1 ? (uint8_t)bits : (uint8_t)(rnd() % (bits + 1));
        }
        if (head_bits > 0) {
            if (p.len < head_bits)
                p.len = (uint8_t)(head_bits + (int)(rnd() % 9));
            put_head(p.addr);
        }
        clear_host(p.addr, family, p.len);
        for (int i = 0; i < 32; i++)
            p.org[i] = 0;
        p.org[0] = (uint8_t)(rnd() % (uint64_t)norgs + 1);
        p.org[31] = (uint8_t)family;
        int dup = 0;
        for (size_t i = 0; i < m && !dup; i++)
            dup = same_prefix(&v[i], &p);
        if (!dup)
            v[m++] = p;
    }
    return m;
}

/* Addresses worth asking about: each prefix's first and last address and
 * their neighbours, and random ones. */
static void probe(const struct wl_nettable *t, const struct wl_net_prefix *v, size_t n,
                  int family)
{
    int bits = bits_of(family), nbytes = bits / 8;
    uint8_t a[16], want[32], got[32];
    size_t checked = 0;

    for (size_t i = 0; i < n + 2000; i++) {
        memset(a, 0, sizeof a);
        if (i < n && v[i].family == family) {
            memcpy(a, v[i].addr, 16);
            int kind = (int)(rnd() % 4);
            if (kind >= 1) /* the last address */
                for (int b = v[i].len; b < bits; b++)
                    a[b / 8] |= (uint8_t)(0x80u >> (b % 8));
            if (kind == 2) { /* one past it */
                for (int k = nbytes - 1; k >= 0 && ++a[k] == 0; k--)
                    ;
            } else if (kind == 3) { /* one before the first */
                memcpy(a, v[i].addr, 16);
                for (int k = nbytes - 1; k >= 0 && a[k]-- == 0; k--)
                    ;
            }
        } else {
            for (int k = 0; k < nbytes; k++)
                a[k] = (uint8_t)rnd();
            if (head_bits > 0 && (i & 1))
                put_head(a);
        }
        int w = oracle(v, n, family, a, want);
        memset(got, 0xee, sizeof got);
        int g = wl_nettable_find(t, family, a, got);
        assert_int_equal(g, w);
        if (w)
            assert_memory_equal(got, want, 32);
        checked++;
    }
    assert_true(checked > 0);
}

static void check_random(int family, size_t n, int norgs)
{
    struct wl_net_prefix *v = calloc(2 * n, sizeof *v);
    assert_non_null(v);
    size_t m = random_prefixes(v, n, family, norgs);
    /* the other family too, so the two do not mix */
    m += random_prefixes(v + m, n / 2, family == 4 ? 6 : 4, norgs);
    struct wl_nettable *t = NULL;
    assert_int_equal(wl_nettable_build(v, m, &t), 0);
    assert_int_equal(wl_nettable_count(t), m);
    probe(t, v, m, 4);
    probe(t, v, m, 6);
    wl_nettable_free(t);
    free(v);
}

static void test_random_v4_against_oracle(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++)
        check_random(4, 50 + (size_t)round * 40, round % 2 ? 3 : 1000);
}

static void test_random_v6_against_oracle(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++)
        check_random(6, 50 + (size_t)round * 40, round % 2 ? 3 : 1000);
}

/* Every prefix under one head (the index then skips the bits they share):
 * 3, 8, 17 and 36 bits, both families; addresses outside it find nothing. */
static void test_clustered_against_oracle(void **state)
{
    (void)state;
    static const int heads[] = {3, 8, 17, 36};
    for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++) {
        for (int round = 0; round < 6; round++) {
            head_bits = heads[h];
            int family = round % 2 ? 4 : 6;
            if (family == 4 && head_bits > 24)
                head_bits = 24;
            struct wl_net_prefix *v = calloc(400, sizeof *v);
            assert_non_null(v);
            size_t m = random_prefixes(v, 100 + (size_t)round * 50, family, 50);
            struct wl_nettable *t = NULL;
            assert_int_equal(wl_nettable_build(v, m, &t), 0);
            probe(t, v, m, family);
            wl_nettable_free(t);
            free(v);
        }
    }
    head_bits = 0;
}

static struct wl_net_prefix pfx(const char *cidr, int org)
{
    struct wl_net_prefix p;
    char why[200];
    memset(&p, 0, sizeof p);
    assert_int_equal(wl_net_parse(cidr, &p, why, sizeof why), 0);
    p.org[0] = (uint8_t)org;
    return p;
}

static int find_text(const struct wl_nettable *t, const char *addr)
{
    uint8_t a[16], org[32];
    int family = strchr(addr, ':') ? 6 : 4;
    assert_int_equal(inet_pton(family == 4 ? AF_INET : AF_INET6, addr, a), 1);
    if (!wl_nettable_find(t, family, a, org))
        return 0;
    return org[0];
}

static void test_edges(void **state)
{
    (void)state;
    struct wl_net_prefix v[] = {
        pfx("0.0.0.0/0", 1),         pfx("10.0.0.0/8", 2),    pfx("10.1.0.0/16", 3),
        pfx("10.1.2.3/32", 4),       pfx("255.255.255.255", 5), pfx("10.255.255.255/32", 6),
        pfx("2001:db8::/32", 7),     pfx("2001:db8:1::/48", 8), pfx("::/0", 9),
        pfx("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", 10),  pfx("::/128", 11),
    };
    struct wl_nettable *t = NULL;
    assert_int_equal(wl_nettable_build(v, sizeof v / sizeof v[0], &t), 0);
    assert_int_equal(find_text(t, "0.0.0.0"), 1);
    assert_int_equal(find_text(t, "9.255.255.255"), 1);
    assert_int_equal(find_text(t, "10.0.0.0"), 2);
    assert_int_equal(find_text(t, "10.1.2.2"), 3);
    assert_int_equal(find_text(t, "10.1.2.3"), 4);
    assert_int_equal(find_text(t, "10.1.2.4"), 3);
    assert_int_equal(find_text(t, "10.2.0.0"), 2);
    assert_int_equal(find_text(t, "10.255.255.254"), 2);
    assert_int_equal(find_text(t, "10.255.255.255"), 6);
    assert_int_equal(find_text(t, "11.0.0.0"), 1);
    assert_int_equal(find_text(t, "255.255.255.254"), 1);
    assert_int_equal(find_text(t, "255.255.255.255"), 5);
    assert_int_equal(find_text(t, "::"), 11);
    assert_int_equal(find_text(t, "::1"), 9);
    assert_int_equal(find_text(t, "2001:db8::1"), 7);
    assert_int_equal(find_text(t, "2001:db8:1:ffff::"), 8);
    assert_int_equal(find_text(t, "2001:db9::"), 9);
    assert_int_equal(find_text(t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"), 9);
    assert_int_equal(find_text(t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 10);
    wl_nettable_free(t);

    /* empty: nothing found, either family */
    assert_int_equal(wl_nettable_build(NULL, 0, &t), 0);
    assert_int_equal(find_text(t, "10.0.0.1"), 0);
    assert_int_equal(find_text(t, "::1"), 0);
    assert_true(wl_nettable_bytes(t) > 0);
    wl_nettable_free(t);

    /* a prefix with host bits is refused by the build too */
    struct wl_net_prefix bad = pfx("10.0.0.0/8", 1);
    bad.addr[3] = 1;
    assert_int_equal(wl_nettable_build(&bad, 1, &t), -EINVAL);
    assert_null(t);
}

/* ---- CIDR text ---- */

static void test_parse_tables(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } must_parse[] = {
        {"10.0.0.0/8", "10.0.0.0/8"},       {"0.0.0.0/0", "0.0.0.0/0"},
        {"1.2.3.4", "1.2.3.4/32"},          {"1.2.3.4/32", "1.2.3.4/32"},
        {"2001:db8::/32", "2001:db8::/32"}, {"::/0", "::/0"},
        {"::1", "::1/128"},                 {"2001:DB8:0:0::/64", "2001:db8::/64"},
        {"::fffe:0:0/95", "::fffe:0:0/95"}, {"192.168.0.0/016", "192.168.0.0/16"},
    };
    static const struct {
        const char *in, *why;
    } must_not_parse[] = {
        {"", "not an IPv4"},
        {"10.0.0.1/8", "host bits set past /8: the network is 10.0.0.0/8"},
        {"2001:db8::1/32", "the network is 2001:db8::/32"},
        {"10.0.0.0/33", "0 to 32"},
        {"::/129", "0 to 128"},
        {"10.0.0.0/", "0 to 32"},
        {"10.0.0.0/-1", "0 to 32"},
        {"10.0.0.0/8x", "0 to 32"},
        {"10.0.0.0/ 8", "0 to 32"},
        {"10.0.0.0/0008", "0 to 32"},
        {"10.0.0/8", "IPv4"},
        {"10.0.0.256/32", "IPv4"},
        {"acme.com", "not an IPv4"},
        {"acme.com/8", "not an IPv4"},
        {" 10.0.0.0/8", "IPv4"},
        {"::ffff:10.0.0.0/104", "IPv4-mapped"},
        {"::ffff:0:0/96", "IPv4-mapped"},
        {"2001:db8:::/32", "IPv6"},
        {"1.2.3.4/32/1", "0 to 32"},
    };
    char why[200], out[WL_NET_CIDR_MAX];
    struct wl_net_prefix p;

    for (size_t i = 0; i < sizeof must_parse / sizeof must_parse[0]; i++) {
        if (wl_net_parse(must_parse[i].in, &p, why, sizeof why) != 0)
            fail_msg("'%s' should parse: %s", must_parse[i].in, why);
        wl_net_format(&p, out);
        assert_string_equal(out, must_parse[i].out);
        uint8_t key[WL_NET_KEY_MAX];
        struct wl_net_prefix q;
        size_t klen = wl_net_key(&p, key);
        assert_int_equal(klen, p.family == 4 ? 6 : 18);
        assert_int_equal(wl_net_from_key(key, klen, &q), 0);
        assert_true(same_prefix(&p, &q));
    }
    for (size_t i = 0; i < sizeof must_not_parse / sizeof must_not_parse[0]; i++) {
        why[0] = '\0';
        if (wl_net_parse(must_not_parse[i].in, &p, why, sizeof why) != -EINVAL)
            fail_msg("'%s' should not parse", must_not_parse[i].in);
        if (strstr(why, must_not_parse[i].why) == NULL)
            fail_msg("'%s': '%s' does not say '%s'", must_not_parse[i].in, why,
                     must_not_parse[i].why);
        assert_null(strstr(why, "acme"));
    }
    /* keys that are not prefixes */
    static const uint8_t k1[] = {5, 1, 2, 3, 4, 8}, k2[] = {4, 10, 0, 0, 1, 8},
                         k3[] = {4, 10, 0, 0, 0, 33}, k4[] = {4, 10, 0, 0};
    assert_int_equal(wl_net_from_key(k1, sizeof k1, &p), -EINVAL);
    assert_int_equal(wl_net_from_key(k2, sizeof k2, &p), -EINVAL);
    assert_int_equal(wl_net_from_key(k3, sizeof k3, &p), -EINVAL);
    assert_int_equal(wl_net_from_key(k4, sizeof k4, &p), -EINVAL);
}

/* ---- the CSV ---- */

static int parse(const char *text, size_t max, struct wl_net_prefix **v, size_t *n, char *err,
                 size_t errlen)
{
    size_t len = strlen(text);
    char *buf = malloc(len + 1);
    assert_non_null(buf);
    memcpy(buf, text, len + 1);
    int rc = wl_networks_parse_csv(buf, len, SALT, SALTLEN, max, v, n, err, errlen);
    free(buf);
    return rc;
}

static void test_csv_good(void **state)
{
    (void)state;
    struct wl_net_prefix *v = NULL;
    size_t n = 0;
    char err[512];
    uint8_t acme[32], beta[32];
    wl_org_key(SALT, SALTLEN, "acme.com", acme);
    wl_org_key(SALT, SALTLEN, "beta.example", beta);

    assert_int_equal(parse("\xEF\xBB\xBF" "CIDR, Domain\r\n"
                           "10.0.0.0/8,acme.com\r\n"
                           "\r\n"
                           " 2001:db8::/32 , ACME.com \r\n"
                           "\"192.168.0.0/16\",\"beta.example\"\n"
                           "10.0.0.0/8,acme.com\n", /* the same row twice: kept once */
                           100, &v, &n, err, sizeof err),
                     0);
    assert_int_equal(n, 3);
    char out[WL_NET_CIDR_MAX];
    wl_net_format(&v[0], out); /* sorted by key: IPv4 first, by address */
    assert_string_equal(out, "10.0.0.0/8");
    assert_memory_equal(v[0].org, acme, 32);
    wl_net_format(&v[1], out);
    assert_string_equal(out, "192.168.0.0/16");
    assert_memory_equal(v[1].org, beta, 32);
    wl_net_format(&v[2], out);
    assert_string_equal(out, "2001:db8::/32");
    assert_memory_equal(v[2].org, acme, 32); /* the domain is lower-cased and trimmed */
    free(v);

    /* no header; the header row alone is an empty table */
    assert_int_equal(parse("10.0.0.0/8,acme.com", 100, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    free(v);
    assert_int_equal(parse("cidr,domain\n", 100, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    free(v);
}

static void test_csv_errors_name_the_line(void **state)
{
    (void)state;
    static const struct {
        const char *csv, *want;
    } bad[] = {
        {"cidr,domain\n10.0.0.0/8,acme.com\n10.0.0.1/8,secret-one.com\n",
         "line 3: cidr: host bits set past /8: the network is 10.0.0.0/8"},
        {"10.0.0.0/8,acme.com\nsecret-one.com,10.0.0.0/8\n", "line 2: cidr: not an IPv4"},
        {"10.0.0.0/8\n", "line 1: expected 2 fields (cidr,domain), got 1"},
        {"10.0.0.0/8,secret-one.com,x\n", "line 1: expected 2 fields (cidr,domain), got 3"},
        {"10.0.0.0/8,\n", "line 1: domain: empty"},
        {"10.0.0.0/8,bob@secret-one.com\n", "line 1: domain: an email address"},
        {"10.0.0.0/8,secret one.com\n", "line 1: domain: not a domain"},
        {"10.0.0.0/8,secret-one.com\n\n\n10.0.0.0/8,secret-two.com\n",
         "line 4: 10.0.0.0/8 is already on line 1 with another domain"},
        {"1.0.0.0/8,secret-one.com\n2.0.0.0/8,secret-one.com\n3.0.0.0/8,secret-one.com\n",
         "line 3: more than 2 prefixes"},
        {"10.0.0.0/8,\"secret-one.com\n", "line 1:"},
        {"10.0.0.0/8,secret-\xff.com\n", "line 1: domain: not valid UTF-8"},
        {"::ffff:10.0.0.0/104,secret-one.com\n", "line 1: cidr: an IPv4-mapped"},
    };
    char err[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct wl_net_prefix *v = NULL;
        size_t n = 0;
        err[0] = '\0';
        if (parse(bad[i].csv, 2, &v, &n, err, sizeof err) != -EINVAL)
            fail_msg("case %zu should be refused", i);
        assert_null(v);
        if (strstr(err, bad[i].want) == NULL)
            fail_msg("case %zu: '%s' does not say '%s'", i, err, bad[i].want);
        if (strstr(err, "secret") != NULL)
            fail_msg("case %zu: '%s' quotes a domain", i, err);
    }
}

/* ---- the process's table ---- */

static void sa_of(const char *addr, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (strchr(addr, ':') == NULL) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, addr, &in->sin_addr), 1);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, addr, &in6->sin6_addr), 1);
    }
}

static int lookup(struct wl_networks *n, const char *addr)
{
    struct sockaddr_storage ss;
    uint8_t org[32];
    sa_of(addr, &ss);
    if (!wl_networks_lookup(n, (struct sockaddr *)&ss, org))
        return 0;
    return org[0];
}

static void test_lookup_by_address(void **state)
{
    (void)state;
    struct wl_networks *n = NULL;
    char err[256];
    size_t removed;
    assert_int_equal(wl_networks_open(NULL, &n, NULL, err, sizeof err), 0);
    assert_int_equal(lookup(n, "10.1.2.3"), 0);
    struct wl_net_prefix v[] = {pfx("10.0.0.0/8", 1), pfx("10.1.0.0/16", 2),
                                pfx("2001:db8::/32", 3)};
    assert_int_equal(wl_networks_replace(n, v, 3, &removed, err, sizeof err), 0);
    assert_int_equal(wl_networks_count(n), 3);
    assert_int_equal(lookup(n, "10.1.2.3"), 2);
    assert_int_equal(lookup(n, "10.2.2.3"), 1);
    assert_int_equal(lookup(n, "::ffff:10.1.2.3"), 2); /* mapped: looked up as IPv4 */
    assert_int_equal(lookup(n, "::ffff:11.1.2.3"), 0);
    assert_int_equal(lookup(n, "2001:db8::5"), 3);
    assert_int_equal(lookup(n, "11.0.0.1"), 0);
    struct sockaddr un = {.sa_family = AF_UNIX};
    uint8_t org[32];
    assert_int_equal(wl_networks_lookup(n, &un, org), 0);
    assert_int_equal(wl_networks_lookup(NULL, &un, org), 0);
    /* one import at a time */
    assert_int_equal(wl_networks_import_begin(n), 0);
    assert_int_equal(wl_networks_import_begin(n), -EBUSY);
    wl_networks_import_end(n);
    assert_int_equal(wl_networks_import_begin(n), 0);
    wl_networks_import_end(n);
    /* unsorted or repeated input is refused, nothing changes */
    struct wl_net_prefix w[] = {pfx("10.1.0.0/16", 5), pfx("10.0.0.0/8", 5)};
    assert_int_equal(wl_networks_replace(n, w, 2, &removed, err, sizeof err), -EINVAL);
    assert_int_equal(lookup(n, "10.1.2.3"), 2);
    wl_networks_free(n);
}

/* Readers look up while a replacer swaps two tables: every answer is one
 * of the two tables' answers, never a mix or a crash. */
struct race {
    struct wl_networks *n;
    int stop;
    long lookups, bad;
};

static void *reader(void *arg)
{
    struct race *r = arg;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        int a = lookup(r->n, "10.1.2.3"), b = lookup(r->n, "192.168.1.1");
        /* table A: 10/8 -> 1, 192.168/16 -> 2; table B: 10.1/16 -> 3, none for 192.168 */
        if (!((a == 1 || a == 3) && (b == 2 || b == 0)))
            __atomic_add_fetch(&r->bad, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&r->lookups, 2, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void test_lookups_race_replaces(void **state)
{
    (void)state;
    struct race r = {0};
    char err[256];
    size_t removed;
    pthread_t th[3];
    struct wl_net_prefix a[] = {pfx("10.0.0.0/8", 1), pfx("192.168.0.0/16", 2)};
    struct wl_net_prefix b[] = {pfx("10.1.0.0/16", 3)};

    assert_int_equal(wl_networks_open(NULL, &r.n, NULL, err, sizeof err), 0);
    assert_int_equal(wl_networks_replace(r.n, a, 2, &removed, err, sizeof err), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader, &r), 0);
    for (int i = 0; i < 400; i++) {
        assert_int_equal(wl_networks_replace(r.n, i % 2 ? a : b, i % 2 ? 2 : 1, &removed, err,
                                             sizeof err),
                         0);
    }
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(r.bad, 0);
    assert_true(r.lookups > 0);
    wl_networks_free(r.n);
}

static void test_stored_and_reloaded(void **state)
{
    (void)state;
    char dir[] = "/tmp/wl_test_nettable_XXXXXX", err[512];
    struct wl_store *store = NULL;
    struct wl_networks *n = NULL;
    size_t removed = 99, skipped = 99;

    assert_non_null(mkdtemp(dir));
    assert_int_equal(wl_store_open(dir, WL_STORE_PRIMARY, &store, err, sizeof err), 0);
    assert_int_equal(wl_networks_open(store, &n, &skipped, err, sizeof err), 0);
    assert_int_equal(skipped, 0);
    struct wl_net_prefix a[] = {pfx("10.0.0.0/8", 1), pfx("10.1.0.0/16", 2),
                                pfx("2001:db8::/32", 3)};
    struct wl_net_prefix b[] = {pfx("10.1.0.0/16", 4), pfx("172.16.0.0/12", 5)};
    assert_int_equal(wl_networks_replace(n, a, 3, &removed, err, sizeof err), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(wl_networks_replace(n, b, 2, &removed, err, sizeof err), 0);
    assert_int_equal(removed, 2); /* 10/8 and 2001:db8::/32 went; 10.1/16 stayed */
    assert_int_equal(lookup(n, "10.2.0.1"), 0);
    assert_int_equal(lookup(n, "10.1.0.1"), 4);
    wl_networks_free(n);

    /* a damaged record beside them is left out at load */
    struct wl_batch *bt = wl_batch_new(store);
    static const uint8_t junk_key[] = {4, 10, 0, 0, 1, 8};
    wl_batch_put(bt, WL_CF_NETWORKS, junk_key, sizeof junk_key, "x", 1);
    assert_int_equal(wl_store_write(store, bt, 1, err, sizeof err), 0);
    wl_batch_free(bt);
    wl_store_close(store);

    assert_int_equal(wl_store_open(dir, WL_STORE_PRIMARY, &store, err, sizeof err), 0);
    assert_int_equal(wl_networks_open(store, &n, &skipped, err, sizeof err), 0);
    assert_int_equal(skipped, 1);
    assert_int_equal(wl_networks_count(n), 2);
    assert_int_equal(lookup(n, "10.1.0.1"), 4);
    assert_int_equal(lookup(n, "172.31.255.255"), 5);
    assert_int_equal(lookup(n, "2001:db8::1"), 0);
    /* a replace takes the damaged record out too */
    assert_int_equal(wl_networks_replace(n, a, 3, &removed, err, sizeof err), 0);
    assert_int_equal(removed, 2); /* 172.16/12 and the damaged one */
    wl_networks_free(n);
    wl_store_close(store);
    assert_int_equal(wl_test_rmtree(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_v4_against_oracle),
        cmocka_unit_test(test_random_v6_against_oracle),
        cmocka_unit_test(test_clustered_against_oracle),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_parse_tables),
        cmocka_unit_test(test_csv_good),
        cmocka_unit_test(test_csv_errors_name_the_line),
        cmocka_unit_test(test_lookup_by_address),
        cmocka_unit_test(test_lookups_race_replaces),
        cmocka_unit_test(test_stored_and_reloaded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
