#include "nettable.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned __int128 u128;

#define NONE UINT32_MAX
#define SLOTS 65536u           /* the index: 16 bits of the address */

/* One family's ranges: range i covers [start[i], start[i + 1]) and resolves
 * to org val[i] (NONE: no prefix). start[0] is 0. */
struct ranges {
    void *start;               /* uint32_t (IPv4) or u128 (IPv6) */
    uint32_t *val;
    size_t n;
    uint32_t *index;           /* SLOTS + 1: the last range starting at or before the slot */
    int common;                /* leading bits every prefix shares (at most bits - 16) */
    u128 head;                 /* those bits: an address without them is in no prefix */
    int shift;                 /* the slot is the 16 bits after them: address >> shift */
};

struct wl_nettable {
    struct ranges v4, v6;
    uint8_t (*orgs)[32];       /* distinct org keys */
    size_t n_orgs;
    size_t count;              /* prefixes built from */
};

/* ---- addresses ---- */

static int addr_bytes(int family) { return family == 4 ? 4 : 16; }
static int addr_bits(int family) { return family == 4 ? 32 : 128; }

/* The address as a number (IPv4 in the low 32 bits). */
static u128 addr_num(int family, const uint8_t *a)
{
    u128 x = 0;
    for (int i = 0; i < addr_bytes(family); i++)
        x = (x << 8) | a[i];
    return x;
}

/* The host part's mask of a /len of the family. */
static u128 host_mask(int family, int len)
{
    int bits = addr_bits(family) - len;
    if (bits == 0)
        return 0;
    u128 all = family == 4 ? (u128)UINT32_MAX : ~(u128)0;
    return bits >= 128 ? all : (((u128)1 << bits) - 1) & all;
}

static void clear_host_bits(struct wl_net_prefix *p)
{
    for (int bit = p->len; bit < addr_bits(p->family); bit++)
        p->addr[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
}

static int has_host_bits(const struct wl_net_prefix *p)
{
    return (addr_num(p->family, p->addr) & host_mask(p->family, p->len)) != 0;
}

static int is_v4_mapped(const uint8_t *a)
{
    static const uint8_t head[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, head, sizeof head) == 0;
}

int wl_net_parse(const char *s, struct wl_net_prefix *p, char *why, size_t whylen)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    int family = memchr(s, ':', alen) != NULL ? 6 : 4;
    unsigned len = (unsigned)addr_bits(family);

    /* The text is never quoted back: a swapped column would be a domain. */
    memset(p->addr, 0, sizeof p->addr);
    if (alen == 0 || alen >= sizeof buf) {
        snprintf(why, whylen, "not an IPv4 or IPv6 network (address/length)");
        return -EINVAL;
    }
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    if (inet_pton(family == 4 ? AF_INET : AF_INET6, buf, p->addr) != 1) {
        snprintf(why, whylen, "not an IPv4 or IPv6 network (address/length): the address "
                 "does not parse as IPv%d", family);
        return -EINVAL;
    }
    if (slash != NULL) {
        const char *d = slash + 1;
        size_t nd = strspn(d, "0123456789");
        if (nd == 0 || nd > 3 || d[nd] != '\0' ||
            (len = (unsigned)atoi(d)) > (unsigned)addr_bits(family)) {
            snprintf(why, whylen, "the prefix length of an IPv%d network must be 0 to %d",
                     family, addr_bits(family));
            return -EINVAL;
        }
    }
    p->family = (uint8_t)family;
    p->len = (uint8_t)len;
    if (family == 6 && len >= 96 && is_v4_mapped(p->addr)) {
        snprintf(why, whylen, "an IPv4-mapped IPv6 prefix (::ffff:a.b.c.d/%u): write it as "
                 "IPv4 (a.b.c.d/%u), as mapped addresses are looked up", len, len - 96);
        return -EINVAL;
    }
    if (has_host_bits(p)) {
        char net[WL_NET_CIDR_MAX];
        struct wl_net_prefix q = *p;
        clear_host_bits(&q);
        wl_net_format(&q, net);
        snprintf(why, whylen, "host bits set past /%u: the network is %s", len, net);
        return -EINVAL;
    }
    return 0;
}

void wl_net_format(const struct wl_net_prefix *p, char out[WL_NET_CIDR_MAX])
{
    char a[INET6_ADDRSTRLEN] = "?";
    inet_ntop(p->family == 4 ? AF_INET : AF_INET6, p->addr, a, sizeof a);
    snprintf(out, WL_NET_CIDR_MAX, "%s/%u", a, p->len);
}

size_t wl_net_key(const struct wl_net_prefix *p, uint8_t key[WL_NET_KEY_MAX])
{
    size_t n = (size_t)addr_bytes(p->family);
    key[0] = p->family;
    memcpy(key + 1, p->addr, n);
    key[1 + n] = p->len;
    return n + 2;
}

int wl_net_from_key(const void *key, size_t klen, struct wl_net_prefix *p)
{
    const uint8_t *k = key;
    if (klen < 1 || (k[0] != 4 && k[0] != 6) || klen != (size_t)addr_bytes(k[0]) + 2)
        return -EINVAL;
    p->family = k[0];
    memset(p->addr, 0, sizeof p->addr);
    memcpy(p->addr, k + 1, klen - 2);
    p->len = k[klen - 1];
    if (p->len > addr_bits(p->family) || has_host_bits(p))
        return -EINVAL;
    return 0;
}

/* ---- building ---- */

struct item {
    u128 s, e;                 /* the prefix's first and last address */
    uint32_t val;              /* its org */
    uint32_t order;            /* its place in the input: of two equal prefixes the later wins */
};

static int by_start(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    if (x->s != y->s)
        return x->s < y->s ? -1 : 1;
    if (x->e != y->e)
        return x->e > y->e ? -1 : 1; /* the shorter prefix (wider range) first */
    return (x->order > y->order) - (x->order < y->order);
}

/* Ranges under construction, as u128 starts whatever the family. */
struct out {
    u128 *start;
    uint32_t *val;
    size_t n;
};

/* Appends a range from s resolving to v: merged into the previous one when
 * it resolves the same, replacing it when it starts at s too. */
static void emit(struct out *o, u128 s, uint32_t v)
{
    if (o->n > 0 && o->start[o->n - 1] == s) {
        o->val[o->n - 1] = v;
        if (o->n > 1 && o->val[o->n - 2] == v)
            o->n--;
        return;
    }
    if (o->n > 0 && o->val[o->n - 1] == v)
        return;
    o->start[o->n] = s;
    o->val[o->n] = v;
    o->n++;
}

/* The sweep: items sorted by_start are nested or disjoint (prefixes are);
 * a stack holds the prefixes open at the current address. */
static int sweep(struct item *it, size_t n, u128 max, struct out *o)
{
    struct item **stack = malloc((n ? n : 1) * sizeof *stack);
    size_t sp = 0;

    if (stack == NULL)
        return -ENOMEM;
    emit(o, 0, NONE);
    for (size_t i = 0; i < n; i++) {
        while (sp > 0 && stack[sp - 1]->e < it[i].s) {
            struct item *t = stack[--sp];
            emit(o, t->e + 1, sp ? stack[sp - 1]->val : NONE);
        }
        emit(o, it[i].s, it[i].val);
        stack[sp++] = &it[i];
    }
    while (sp > 0) {
        struct item *t = stack[--sp];
        if (t->e != max)
            emit(o, t->e + 1, sp ? stack[sp - 1]->val : NONE);
    }
    free(stack);
    return 0;
}

/* Builds one family's ranges and index from the prefixes of v of that
 * family (org ids in ids). */
static int build_family(const struct wl_net_prefix *v, const uint32_t *ids, size_t n,
                        int family, struct ranges *r)
{
    struct item *it = NULL;
    struct out o = {0};
    size_t m = 0;
    int rc = -ENOMEM;
    int bits = addr_bits(family);
    u128 max = family == 4 ? (u128)UINT32_MAX : ~(u128)0;

    for (size_t i = 0; i < n; i++)
        m += v[i].family == family;
    it = malloc((m ? m : 1) * sizeof *it);
    o.start = malloc((2 * m + 1) * sizeof *o.start);
    o.val = malloc((2 * m + 1) * sizeof *o.val);
    r->index = malloc((SLOTS + 1) * sizeof *r->index);
    if (it == NULL || o.start == NULL || o.val == NULL || r->index == NULL)
        goto done;
    m = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].family != family)
            continue;
        u128 s = addr_num(family, v[i].addr);
        it[m].s = s;
        it[m].e = s | host_mask(family, v[i].len);
        it[m].val = ids[i];
        it[m].order = (uint32_t)i;
        m++;
    }
    if (m > 1)
        qsort(it, m, sizeof *it, by_start);
    /* The bits every prefix shares (IPv6 tables sit in 2000::/3): the index
     * spends its 16 bits after them. */
    r->common = 0;
    if (m > 0) {
        u128 hi_e = 0;
        for (size_t i = 0; i < m; i++)
            hi_e = it[i].e > hi_e ? it[i].e : hi_e;
        u128 diff = it[0].s ^ hi_e;
        while (r->common < bits - 16 && !((diff >> (bits - 1 - r->common)) & 1))
            r->common++;
    }
    r->shift = bits - r->common - 16;
    r->head = r->common ? it[0].s >> (bits - r->common) : 0;
    if ((rc = sweep(it, m, max, &o)) != 0)
        goto done;
    rc = -ENOMEM;
    r->n = o.n;
    r->val = o.val;
    o.val = NULL;
    if (family == 4) {
        uint32_t *s4 = malloc(o.n * sizeof *s4);
        if (s4 == NULL)
            goto done;
        for (size_t i = 0; i < o.n; i++)
            s4[i] = (uint32_t)o.start[i];
        r->start = s4;
    } else {
        r->start = o.start;
        o.start = NULL;
    }
    const u128 *st = family == 4 ? o.start : r->start;
    u128 base = r->common ? r->head << (bits - r->common) : 0;
    size_t i = 0;
    for (uint32_t b = 0; b <= SLOTS; b++) {
        /* the slot's first address; past the last slot, the region's last */
        u128 at = b < SLOTS       ? base | (u128)b << r->shift
                  : r->common == 0 ? max
                                   : base | (((u128)1 << (bits - r->common)) - 1);
        while (i + 1 < o.n && st[i + 1] <= at)
            i++;
        r->index[b] = (uint32_t)i;
    }
    rc = 0;
done:
    free(it);
    free(o.start);
    free(o.val);
    return rc;
}

/* Orders prefix indexes by their org keys (ctx: the prefixes). */
static int by_org(const void *a, const void *b, void *ctx)
{
    const struct wl_net_prefix *v = ctx;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    uint64_t p, q;
    memcpy(&p, v[x].org, 8); /* any order will do, as long as equal keys meet */
    memcpy(&q, v[y].org, 8);
    if (p != q)
        return p < q ? -1 : 1;
    return memcmp(v[x].org + 8, v[y].org + 8, 24);
}

/* The distinct org keys of v into t->orgs, and each prefix's place among
 * them into ids. */
static int dedup_orgs(const struct wl_net_prefix *v, size_t n, uint32_t *ids,
                      struct wl_nettable *t)
{
    uint32_t *order = malloc((n ? n : 1) * sizeof *order);
    if (order == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    if (n > 1)
        qsort_r(order, n, sizeof *order, by_org, (void *)v);
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || memcmp(v[order[i]].org, v[order[i - 1]].org, 32) != 0)
            d++;
        ids[order[i]] = (uint32_t)(d - 1);
    }
    t->orgs = malloc((d ? d : 1) * sizeof *t->orgs);
    if (t->orgs == NULL) {
        free(order);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        memcpy(t->orgs[ids[order[i]]], v[order[i]].org, 32);
    t->n_orgs = d;
    free(order);
    return 0;
}

int wl_nettable_build(const struct wl_net_prefix *v, size_t n, struct wl_nettable **out)
{
    struct wl_nettable *t = NULL;
    uint32_t *ids = NULL;
    int rc;

    *out = NULL;
    if (n >= NONE)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if ((v[i].family != 4 && v[i].family != 6) || v[i].len > addr_bits(v[i].family) ||
            has_host_bits(&v[i]))
            return -EINVAL;
    }
    t = calloc(1, sizeof *t);
    ids = malloc((n ? n : 1) * sizeof *ids);
    if (t == NULL || ids == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    t->count = n;
    if ((rc = dedup_orgs(v, n, ids, t)) != 0 || (rc = build_family(v, ids, n, 4, &t->v4)) != 0 ||
        (rc = build_family(v, ids, n, 6, &t->v6)) != 0)
        goto fail;
    free(ids);
    *out = t;
    return 0;

fail:
    free(ids);
    wl_nettable_free(t);
    return rc;
}

/* ---- looking up ---- */

int wl_nettable_find(const struct wl_nettable *t, int family, const uint8_t *addr,
                     uint8_t org[32])
{
    const struct ranges *r;
    uint32_t lo, hi, v;

    if (family == 4) {
        r = &t->v4;
        uint32_t a = (uint32_t)addr[0] << 24 | (uint32_t)addr[1] << 16 |
                     (uint32_t)addr[2] << 8 | addr[3];
        const uint32_t *s = r->start;
        if (r->common > 0 && a >> (32 - r->common) != (uint32_t)r->head)
            return 0;
        uint32_t b = (a >> r->shift) & (SLOTS - 1);
        lo = r->index[b];
        hi = r->index[b + 1];
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo + 1) / 2;
            if (s[mid] <= a)
                lo = mid;
            else
                hi = mid - 1;
        }
    } else {
        r = &t->v6;
        u128 a = addr_num(6, addr);
        const u128 *s = r->start;
        if (r->common > 0 && a >> (128 - r->common) != r->head)
            return 0;
        uint32_t b = (uint32_t)(a >> r->shift) & (SLOTS - 1);
        lo = r->index[b];
        hi = r->index[b + 1];
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo + 1) / 2;
            if (s[mid] <= a)
                lo = mid;
            else
                hi = mid - 1;
        }
    }
    v = r->val[lo];
    if (v == NONE)
        return 0;
    memcpy(org, t->orgs[v], 32);
    return 1;
}

size_t wl_nettable_count(const struct wl_nettable *t)
{
    return t->count;
}

size_t wl_nettable_bytes(const struct wl_nettable *t)
{
    return sizeof *t + t->n_orgs * 32 + 2 * (SLOTS + 1) * sizeof(uint32_t) +
           t->v4.n * (sizeof(uint32_t) + sizeof(uint32_t)) +
           t->v6.n * (sizeof(u128) + sizeof(uint32_t));
}

static void ranges_free(struct ranges *r)
{
    free(r->start);
    free(r->val);
    free(r->index);
}

void wl_nettable_free(struct wl_nettable *t)
{
    if (t == NULL)
        return;
    ranges_free(&t->v4);
    ranges_free(&t->v6);
    free(t->orgs);
    free(t);
}
