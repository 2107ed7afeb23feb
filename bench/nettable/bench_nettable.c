/* bench/nettable: the network table's cost, in one run.
 *
 * Builds a table of N random prefixes (default 1,000,000: 80% IPv4 with
 * lengths 8 to 32, mostly /24, a third of them nested in another; 20% IPv6,
 * /28 to /64; 100,000 organizations), then times, over the same 1,000,000
 * random addresses (half inside some prefix, half anywhere):
 *   find     wl_nettable_find (the structure alone)
 *   lookup   wl_networks_lookup (sockaddr in, the read lock held: what the
 *            HTTP listener calls)
 *   hash     the baseline: wl_ptable_find with wl_keyhash (SipHash) over the
 *            same number of 16-byte keys, the collector's own table for
 *            installs and organizations
 * Each figure is the median of --runs rounds (5), every round printed.
 * Also: the build time, and the bytes the structure holds per prefix.
 *
 * Usage: bench_nettable [--prefixes N] [--runs R] [--seed S] */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "networks.h"
#include "nettable.h"
#include "ptable.h"

#define LOOKUPS 1000000
#define ORGS 100000

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void clear_host(struct wl_net_prefix *p)
{
    int bits = p->family == 4 ? 32 : 128;
    for (int b = p->len; b < bits; b++)
        p->addr[b / 8] &= (uint8_t)~(0x80u >> (b % 8));
}

static int v4_len(void)
{
    uint64_t r = rnd() % 100;
    return r < 55 ? 24 : r < 70 ? 16 + (int)(rnd() % 8) : r < 80 ? 8 + (int)(rnd() % 8)
                                                           : 25 + (int)(rnd() % 8);
}

/* n prefixes, distinct, sorted as wl_networks_replace wants them. */
static int cmp_prefix(const void *a, const void *b)
{
    const struct wl_net_prefix *x = a, *y = b;
    if (x->family != y->family)
        return x->family < y->family ? -1 : 1;
    int c = memcmp(x->addr, y->addr, 16);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static size_t make_some(struct wl_net_prefix *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct wl_net_prefix *p = &v[i];
        memset(p, 0, sizeof *p);
        int v6 = rnd() % 5 == 0;
        p->family = v6 ? 6 : 4;
        const struct wl_net_prefix *base =
            i > 0 ? &v[i - 1 - rnd() % (i < 1000 ? i : 1000)] : NULL;
        if (base != NULL && rnd() % 3 == 0 && base->family == p->family) {
            /* nested in a recent one */
            *p = *base;
            int max = v6 ? 64 : 32, len = base->len + 1 + (int)(rnd() % 8);
            p->len = (uint8_t)(len > max ? max : len);
            for (int k = base->len / 8; k < (v6 ? 16 : 4); k++)
                p->addr[k] |= (uint8_t)rnd();
        } else if (v6) {
            p->addr[0] = 0x20;
            for (int k = 1; k < 8; k++)
                p->addr[k] = (uint8_t)rnd();
            p->len = (uint8_t)(28 + rnd() % 37);
        } else {
            for (int k = 0; k < 4; k++)
                p->addr[k] = (uint8_t)rnd();
            p->len = (uint8_t)v4_len();
        }
        clear_host(p);
        uint64_t org = rnd() % ORGS;
        memcpy(p->org, &org, sizeof org);
    }
    qsort(v, n, sizeof *v, cmp_prefix);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || cmp_prefix(&v[m - 1], &v[i]) != 0)
            v[m++] = v[i];
    return m;
}

/* Exactly n distinct prefixes (v has room for 5n / 4), sorted. */
static size_t make_prefixes(struct wl_net_prefix *v, size_t n)
{
    size_t m = make_some(v, n + n / 4);
    if (m <= n)
        return m;
    unsigned char *drop = calloc(m, 1);
    for (size_t k = m - n; k > 0;) {
        size_t i = rnd() % m;
        if (!drop[i]) {
            drop[i] = 1;
            k--;
        }
    }
    size_t j = 0;
    for (size_t i = 0; i < m; i++)
        if (!drop[i])
            v[j++] = v[i];
    free(drop);
    return j;
}

struct addr {
    struct sockaddr_storage ss;
    uint8_t family;
    uint8_t a[16];
};

static void make_addrs(struct addr *q, size_t n, const struct wl_net_prefix *v, size_t nv)
{
    for (size_t i = 0; i < n; i++) {
        memset(&q[i], 0, sizeof q[i]);
        if (i % 2 == 0) { /* inside a prefix */
            const struct wl_net_prefix *p = &v[rnd() % nv];
            q[i].family = p->family;
            memcpy(q[i].a, p->addr, 16);
            int bits = p->family == 4 ? 32 : 128;
            for (int b = p->len; b < bits; b++)
                if (rnd() & 1)
                    q[i].a[b / 8] |= (uint8_t)(0x80u >> (b % 8));
        } else {
            q[i].family = rnd() % 5 == 0 ? 6 : 4;
            for (int k = 0; k < 16; k++)
                q[i].a[k] = (uint8_t)rnd();
            if (q[i].family == 6)
                q[i].a[0] = 0x20;
        }
        if (q[i].family == 4) {
            struct sockaddr_in *in = (struct sockaddr_in *)&q[i].ss;
            in->sin_family = AF_INET;
            memcpy(&in->sin_addr, q[i].a, 4);
        } else {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&q[i].ss;
            in6->sin6_family = AF_INET6;
            memcpy(&in6->sin6_addr, q[i].a, 16);
        }
    }
}

/* The baseline's elements: a 16-byte key and its hash. */
struct elem {
    uint32_t hash;
    uint8_t key[16];
};

static uint32_t elem_hash(const void *e) { return ((const struct elem *)e)->hash; }
static int elem_eq(const void *e, const void *key)
{
    return memcmp(((const struct elem *)e)->key, key, 16) == 0;
}

int main(int argc, char **argv)
{
    size_t n = 1000000;
    int runs = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--prefixes") == 0)
            n = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--runs") == 0)
            runs = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seed") == 0)
            rng = strtoull(argv[i + 1], NULL, 10) | 1;
    }
    if (runs < 1 || runs > 50 || n < 1) {
        fprintf(stderr, "usage: bench_nettable [--prefixes N] [--runs 1..50] [--seed S]\n");
        return 2;
    }
    struct wl_net_prefix *v = malloc((n + n / 4) * sizeof *v);
    struct addr *q = malloc(LOOKUPS * sizeof *q);
    struct elem *elems = malloc(LOOKUPS * sizeof *elems);
    double *t_build = calloc((size_t)runs, sizeof(double)), *t_find = calloc((size_t)runs, 8),
           *t_lookup = calloc((size_t)runs, 8), *t_hash = calloc((size_t)runs, 8),
           *t_find4 = calloc((size_t)runs, 8), *t_find6 = calloc((size_t)runs, 8);
    if (!v || !q || !elems || !t_build || !t_find || !t_lookup || !t_hash || !t_find4 ||
        !t_find6) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    size_t nv = make_prefixes(v, n), v4 = 0;
    for (size_t i = 0; i < nv; i++)
        v4 += v[i].family == 4;
    make_addrs(q, LOOKUPS, v, nv);
    uint8_t (*a4)[16] = malloc(LOOKUPS * 16), (*a6)[16] = malloc(LOOKUPS * 16);
    size_t n4 = 0, n6 = 0;
    if (a4 == NULL || a6 == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < LOOKUPS; i++)
        memcpy(q[i].family == 4 ? a4[n4++] : a6[n6++], q[i].a, 16);

    struct wl_networks *net = NULL;
    char err[256];
    size_t removed, bytes = 0;
    if (wl_networks_open(NULL, &net, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    struct wl_ptable pt;
    wl_ptable_init(&pt, elem_hash);
    for (size_t i = 0; i < LOOKUPS; i++) { /* the baseline's table: every probe is in it */
        memcpy(elems[i].key, &i, sizeof i); /* distinct: its place, then address bytes */
        memcpy(elems[i].key + sizeof i, q[i].a, 16 - sizeof i);
        elems[i].hash = (uint32_t)wl_keyhash(elems[i].key, 16);
        wl_ptable_add(&pt, &elems[i]);
    }
    uint64_t sink = 0, found = 0;
    for (int r = 0; r < runs; r++) {
        double t0 = now_s();
        struct wl_nettable *t = NULL;
        int rc = wl_nettable_build(v, nv, &t);
        if (rc != 0) {
            fprintf(stderr, "build failed: %s\n", strerror(-rc));
            return 1;
        }
        t_build[r] = now_s() - t0;
        bytes = wl_nettable_bytes(t);
        uint8_t org[32];

        found = 0;
        t0 = now_s();
        for (size_t i = 0; i < LOOKUPS; i++) {
            if (wl_nettable_find(t, q[i].family, q[i].a, org)) {
                found++;
                sink += org[0];
            }
        }
        t_find[r] = (now_s() - t0) / LOOKUPS * 1e9;
        for (int fam = 4; fam <= 6; fam += 2) { /* each family alone, its own packed array */
            const uint8_t (*a)[16] = fam == 4 ? a4 : a6;
            size_t k = fam == 4 ? n4 : n6;
            t0 = now_s();
            for (size_t i = 0; i < k; i++)
                if (wl_nettable_find(t, fam, a[i], org))
                    sink += org[0];
            (fam == 4 ? t_find4 : t_find6)[r] = (now_s() - t0) / (double)(k ? k : 1) * 1e9;
        }
        wl_nettable_free(t);

        if (r == 0 && wl_networks_replace(net, v, nv, &removed, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        t0 = now_s();
        for (size_t i = 0; i < LOOKUPS; i++)
            if (wl_networks_lookup(net, (const struct sockaddr *)&q[i].ss, org))
                sink += org[0];
        t_lookup[r] = (now_s() - t0) / LOOKUPS * 1e9;

        t0 = now_s();
        for (size_t i = 0; i < LOOKUPS; i++) {
            size_t j = (i * 7919) % LOOKUPS; /* not in insertion order */
            uint32_t h = (uint32_t)wl_keyhash(elems[j].key, 16);
            struct elem *e = wl_ptable_find(&pt, h, elem_eq, elems[j].key);
            sink += e != NULL;
        }
        t_hash[r] = (now_s() - t0) / LOOKUPS * 1e9;
    }
    printf("prefixes: %zu (%zu IPv4, %zu IPv6), %d organizations at most; %d lookups a round, "
           "%.0f%% found\n", nv, v4, nv - v4, ORGS, LOOKUPS, 100.0 * (double)found / LOOKUPS);
    printf("structure: %zu bytes, %.1f bytes per prefix\n", bytes, (double)bytes / (double)nv);
    printf("%-8s %10s  rounds\n", "", "median");
    double *all[] = {t_build, t_find, t_find4, t_find6, t_lookup, t_hash};
    const char *names[] = {"build s", "find ns", "  IPv4 ns", "  IPv6 ns", "lookup ns",
                           "hash ns"};
    double med[6];
    for (int k = 0; k < 6; k++) {
        double *s = malloc((size_t)runs * sizeof *s);
        memcpy(s, all[k], (size_t)runs * sizeof *s);
        qsort(s, (size_t)runs, sizeof *s, cmp_double);
        med[k] = s[runs / 2];
        printf("%-10s %8.*f  ", names[k], k == 0 ? 3 : 1, med[k]);
        for (int r = 0; r < runs; r++)
            printf("%s%.*f", r ? " " : "", k == 0 ? 3 : 1, all[k][r]);
        printf("\n");
        free(s);
    }
    printf("find / hash: %.2fx; lookup / hash: %.2fx (sink %llu)\n", med[1] / med[5],
           med[4] / med[5], (unsigned long long)(sink & 1));
    wl_networks_free(net);
    wl_ptable_free(&pt);
    free(v);
    free(q);
    free(elems);
    free(t_build);
    free(t_find);
    free(t_lookup);
    free(t_hash);
    free(t_find4);
    free(t_find6);
    free(a4);
    free(a6);
    return 0;
}
