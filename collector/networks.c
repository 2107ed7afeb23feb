#include "networks.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_csv.h"
#include "log.h"
#include "metrics.h"
#include "orgkey.h"
#include "ping.h"

#define DOMAIN_MAX 253

struct wl_networks {
    struct wl_store *store;          /* NULL: memory only */
    pthread_rwlock_t lock;           /* guards table: read for a lookup, write for the swap */
    struct wl_nettable *table;
    pthread_mutex_t replace_lock;    /* one replace at a time */
    atomic_int importing;            /* an import (parse and replace) is running */
};

/* ---- the table in memory ---- */

static int new_networks(struct wl_store *store, struct wl_networks **out)
{
    pthread_rwlockattr_t attr;
    struct wl_networks *n = calloc(1, sizeof *n);

    if (n == NULL)
        return -ENOMEM;
    n->store = store;
    pthread_rwlockattr_init(&attr);
    /* lookups come all the time from several threads: let a swap through */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&n->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&n->replace_lock, NULL);
    *out = n;
    return 0;
}

/* Puts t in place of the table in use and frees the old one. */
static void swap_table(struct wl_networks *n, struct wl_nettable *t)
{
    if (n->store != NULL) { /* the process's table, not a test's or a bench's */
        wl_gauge_set(WL_G_network_prefixes, wl_nettable_count(t));
        wl_gauge_set(WL_G_network_table_bytes, wl_nettable_bytes(t));
    }
    pthread_rwlock_wrlock(&n->lock);
    struct wl_nettable *old = n->table;
    n->table = t;
    pthread_rwlock_unlock(&n->lock);
    wl_nettable_free(old); /* no reader holds it: they all held the lock */
}

int wl_networks_open(struct wl_store *store, struct wl_networks **out, size_t *skipped,
                     char *err, size_t errlen)
{
    struct wl_networks *n = NULL;
    struct wl_net_prefix *v = NULL;
    struct wl_iter *it = NULL;
    struct wl_nettable *t = NULL;
    size_t count = 0, cap = 0, bad = 0;
    int rc;

    *out = NULL;
    if ((rc = new_networks(store, &n)) != 0)
        goto oom;
    if (store != NULL) {
        if ((it = wl_iter_new(store, WL_CF_NETWORKS)) == NULL)
            goto oom;
        for (wl_iter_seek_first(it); wl_iter_valid(it); wl_iter_next(it)) {
            size_t klen, vlen;
            const char *k = wl_iter_key(it, &klen);
            const char *val = wl_iter_value(it, &vlen);
            if (count == cap) {
                size_t c2 = cap ? 2 * cap : 1024;
                struct wl_net_prefix *v2 = realloc(v, c2 * sizeof *v2);
                if (v2 == NULL)
                    goto oom;
                v = v2;
                cap = c2;
            }
            if (vlen != 32 || wl_net_from_key(k, klen, &v[count]) != 0) {
                bad++;
                continue;
            }
            memcpy(v[count].org, val, 32);
            count++;
        }
        if ((rc = wl_iter_status(it, err, errlen)) != 0)
            goto fail;
        wl_iter_free(it);
        it = NULL;
    }
    if ((rc = wl_nettable_build(v, count, &t)) != 0)
        goto oom;
    free(v);
    swap_table(n, t);
    if (bad > 0)
        wl_warn("networks_damaged", "skipped=%zu effect=\"left out of the network table\"",
                bad);
    if (skipped != NULL)
        *skipped = bad;
    wl_info("networks_loaded", "prefixes=%zu bytes=%zu", count, wl_nettable_bytes(t));
    *out = n;
    return 0;

oom:
    rc = -ENOMEM;
    snprintf(err, errlen, "network table: out of memory");
fail:
    wl_iter_free(it);
    free(v);
    wl_networks_free(n);
    return rc;
}

void wl_networks_free(struct wl_networks *n)
{
    if (n == NULL)
        return;
    wl_nettable_free(n->table);
    pthread_rwlock_destroy(&n->lock);
    pthread_mutex_destroy(&n->replace_lock);
    free(n);
}

int wl_networks_lookup(struct wl_networks *n, const struct sockaddr *sa, uint8_t org_key[32])
{
    uint8_t a[16];
    int family;

    if (n == NULL || sa == NULL)
        return 0;
    if (sa->sa_family == AF_INET) {
        memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        family = 4;
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(in6)) {
            memcpy(a, in6->s6_addr + 12, 4);
            family = 4;
        } else {
            memcpy(a, in6->s6_addr, 16);
            family = 6;
        }
    } else {
        return 0;
    }
    pthread_rwlock_rdlock(&n->lock);
    int found = wl_nettable_find(n->table, family, a, org_key);
    pthread_rwlock_unlock(&n->lock);
    return found;
}

size_t wl_networks_count(struct wl_networks *n)
{
    pthread_rwlock_rdlock(&n->lock);
    size_t c = wl_nettable_count(n->table);
    pthread_rwlock_unlock(&n->lock);
    return c;
}

size_t wl_networks_bytes(struct wl_networks *n)
{
    pthread_rwlock_rdlock(&n->lock);
    size_t c = wl_nettable_bytes(n->table);
    pthread_rwlock_unlock(&n->lock);
    return c;
}

/* ---- the CSV ---- */

/* 8 bytes as a big-endian number: a million-row sort compares tens of
 * millions of times, memcmp's call was most of it. */
static uint64_t be64_at(const uint8_t *p)
{
    uint64_t x;
    memcpy(&x, p, sizeof x);
    return __builtin_bswap64(x);
}

/* Storage key order: family, address, length. */
static int prefix_cmp(const struct wl_net_prefix *x, const struct wl_net_prefix *y)
{
    if (x->family != y->family)
        return x->family < y->family ? -1 : 1;
    uint64_t a = be64_at(x->addr), b = be64_at(y->addr);
    if (a == b) {
        a = be64_at(x->addr + 8);
        b = be64_at(y->addr + 8);
    }
    if (a != b)
        return a < b ? -1 : 1;
    return (x->len > y->len) - (x->len < y->len);
}

struct row {
    struct wl_net_prefix p;
    uint32_t line;
};

static int row_cmp(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    int c = prefix_cmp(&x->p, &y->p);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

static char *trim(char *s)
{
    while (*s != '\0' && strchr(" \t\v\f", *s) != NULL)
        s++;
    size_t n = strlen(s);
    while (n > 0 && strchr(" \t\v\f", s[n - 1]) != NULL)
        s[--n] = '\0';
    return s;
}

/* Why domain is refused, in words that do not quote it; NULL when it is a
 * domain. */
static const char *domain_fault(const char *d)
{
    char why[256];
    size_t n = strlen(d);

    if (n == 0)
        return "empty";
    if (n > DOMAIN_MAX)
        return "longer than 253 bytes";
    if (!wl_utf8_valid(d, n))
        return "not valid UTF-8";
    if (wl_org_domain_check(d, why, sizeof why) == 0)
        return NULL;
    if (strchr(d, '@') != NULL)
        return "an email address: give only its domain";
    return "not a domain (whitespace or a control character inside)";
}

static int is_header(char *cidr, char *domain)
{
    return strcasecmp(trim(cidr), "cidr") == 0 && strcasecmp(trim(domain), "domain") == 0;
}

int wl_networks_parse_csv(char *body, size_t len, const uint8_t *salt, size_t saltlen,
                          size_t max_prefixes, struct wl_net_prefix **out, size_t *count,
                          char *err, size_t errlen)
{
    struct wl_csv csv;
    struct row *v = NULL;
    size_t n = 0, cap = 0;
    char *f[2], why[300];
    unsigned line = 1;
    int k, first = 1;

    *out = NULL;
    *count = 0;
    if (len >= 3 && memcmp(body, "\xEF\xBB\xBF", 3) == 0) { /* a BOM, as spreadsheets write */
        body += 3;
        len -= 3;
    }
    wl_csv_init(&csv, body, len);
    while ((k = wl_csv_next(&csv, f, 2, &line, why, sizeof why)) > 0) {
        if (k != 2) {
            snprintf(why, sizeof why, "expected 2 fields (cidr,domain), got %d", k);
            goto bad;
        }
        if (first && is_header(f[0], f[1])) {
            first = 0;
            continue;
        }
        first = 0;
        if (n == max_prefixes) {
            snprintf(why, sizeof why, "more than %zu prefixes (one per %d bytes of "
                     "api_max_networks_bytes)", max_prefixes, WL_NETWORKS_BYTES_PER_PREFIX);
            goto bad;
        }
        if (n == cap) {
            size_t c2 = cap ? 2 * cap : 1024;
            if (c2 > max_prefixes)
                c2 = max_prefixes;
            struct row *v2 = realloc(v, c2 * sizeof *v2);
            if (v2 == NULL)
                goto oom;
            v = v2;
            cap = c2;
        }
        char pwhy[200];
        if (wl_net_parse(trim(f[0]), &v[n].p, pwhy, sizeof pwhy) != 0) {
            snprintf(why, sizeof why, "cidr: %s", pwhy);
            goto bad;
        }
        const char *domain = trim(f[1]), *fault = domain_fault(domain);
        if (fault != NULL) {
            snprintf(why, sizeof why, "domain: %s", fault);
            goto bad;
        }
        wl_org_key(salt, saltlen, domain, v[n].p.org);
        v[n].line = line;
        n++;
    }
    if (k < 0)
        goto bad;
    if (n > 1)
        qsort(v, n, sizeof *v, row_cmp);
    /* duplicates: the same domain twice is one row, two domains an error */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && prefix_cmp(&v[m - 1].p, &v[i].p) == 0) {
            if (memcmp(v[m - 1].p.org, v[i].p.org, 32) == 0)
                continue;
            char net[WL_NET_CIDR_MAX];
            wl_net_format(&v[i].p, net);
            snprintf(err, errlen, "line %u: %s is already on line %u with another domain",
                     v[i].line, net, v[m - 1].line);
            free(v);
            return -EINVAL;
        }
        v[m++] = v[i];
    }
    /* rows to prefixes, in place (a prefix is smaller than a row) */
    struct wl_net_prefix *p = (struct wl_net_prefix *)v;
    for (size_t i = 0; i < m; i++)
        memmove(&p[i], &v[i].p, sizeof *p);
    if (m > 0) {
        struct wl_net_prefix *p2 = realloc(p, m * sizeof *p2);
        if (p2 != NULL)
            p = p2;
    }
    *out = p;
    *count = m;
    return 0;

bad:
    free(v);
    snprintf(err, errlen, "line %u: %s", line, why);
    return -EINVAL;
oom:
    free(v);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

/* ---- replacing ---- */

int wl_networks_import_begin(struct wl_networks *n)
{
    int idle = 0;
    return atomic_compare_exchange_strong(&n->importing, &idle, 1) ? 0 : -EBUSY;
}

void wl_networks_import_end(struct wl_networks *n)
{
    atomic_store(&n->importing, 0);
}

static int in_new(const struct wl_net_prefix *v, size_t n, const struct wl_net_prefix *p)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = prefix_cmp(&v[mid], p);
        if (c == 0)
            return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* The write: one range deletion over every key (they start with 4 or 6),
 * then a put per prefix; *removed counted from the old records. */
static int write_table(struct wl_store *store, const struct wl_net_prefix *v, size_t count,
                       size_t *removed, char *err, size_t errlen)
{
    static const uint8_t begin[1] = {0x00}, end[1] = {0xff};
    struct wl_batch *b = wl_batch_new(store);
    struct wl_iter *it = wl_iter_new(store, WL_CF_NETWORKS);
    int rc = -ENOMEM;

    if (b == NULL || it == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (wl_iter_seek_first(it); wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen;
        const char *k = wl_iter_key(it, &klen);
        struct wl_net_prefix p;
        if (wl_net_from_key(k, klen, &p) != 0 || !in_new(v, count, &p))
            (*removed)++;
    }
    if ((rc = wl_iter_status(it, err, errlen)) != 0)
        goto done;
    wl_batch_delete_range(b, WL_CF_NETWORKS, begin, sizeof begin, end, sizeof end);
    for (size_t i = 0; i < count; i++) {
        uint8_t key[WL_NET_KEY_MAX];
        size_t klen = wl_net_key(&v[i], key);
        wl_batch_put(b, WL_CF_NETWORKS, key, klen, v[i].org, 32);
    }
    rc = wl_store_write(store, b, 1, err, errlen);
done:
    wl_iter_free(it);
    wl_batch_free(b);
    return rc;
}

int wl_networks_replace(struct wl_networks *n, const struct wl_net_prefix *v, size_t count,
                        size_t *removed, char *err, size_t errlen)
{
    struct wl_nettable *t = NULL;
    int rc;

    *removed = 0;
    for (size_t i = 1; i < count; i++) {
        if (prefix_cmp(&v[i - 1], &v[i]) >= 0) {
            snprintf(err, errlen, "network table: prefixes not sorted or given twice");
            return -EINVAL;
        }
    }
    pthread_mutex_lock(&n->replace_lock);
    if ((rc = wl_nettable_build(v, count, &t)) != 0) {
        snprintf(err, errlen, "network table: %s", rc == -ENOMEM ? "out of memory"
                                                                  : "a prefix is not one");
        goto done;
    }
    if (n->store != NULL && (rc = write_table(n->store, v, count, removed, err, errlen)) != 0) {
        wl_nettable_free(t);
        goto done;
    }
    if (n->store == NULL)
        *removed = wl_nettable_count(n->table); /* memory only: a rough figure */
    swap_table(n, t);
done:
    pthread_mutex_unlock(&n->replace_lock);
    return rc;
}
