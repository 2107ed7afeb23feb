/* Fuzz target: the network table's CSV and lookup structure
 * (collector/networks.c, collector/nettable.c).
 *
 * Input: the body of PUT /v1/networks, parsed as the API does (at most 64
 * prefixes). Refused: the message names a line. Taken: the prefixes are
 * sorted by storage key with none twice, each one's key reads back as
 * itself and its text parses back to it; the structure built from them
 * answers, for each prefix's first and last address and its neighbours and
 * for addresses cut from the input, what a scan of every prefix answers
 * (the longest covering prefix). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "networks.h"
#include "nettable.h"

#define MAX_PREFIXES 64

static const uint8_t SALT[] = "fuzz-salt";

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

static void check_address(const struct wl_nettable *t, const struct wl_net_prefix *v, size_t n,
                          int family, const uint8_t *a)
{
    uint8_t got[32], want[32];
    int best = -1;
    for (size_t i = 0; i < n; i++)
        if (covers(&v[i], family, a) && (best < 0 || v[i].len > v[best].len))
            best = (int)i;
    int found = wl_nettable_find(t, family, a, got);
    FUZZ_CHECK(found == (best >= 0));
    if (found) {
        memcpy(want, v[best].org, 32);
        FUZZ_CHECK(memcmp(got, want, 32) == 0);
    }
}

static void check_around(const struct wl_nettable *t, const struct wl_net_prefix *v, size_t n,
                         const struct wl_net_prefix *p)
{
    int bits = p->family == 4 ? 32 : 128, nbytes = bits / 8;
    uint8_t a[16];

    memcpy(a, p->addr, 16);
    check_address(t, v, n, p->family, a);
    for (int k = nbytes - 1; k >= 0 && a[k]-- == 0; k--) /* one before */
        ;
    check_address(t, v, n, p->family, a);
    memcpy(a, p->addr, 16);
    for (int b = p->len; b < bits; b++)
        a[b / 8] |= (uint8_t)(0x80u >> (b % 8));
    check_address(t, v, n, p->family, a); /* the last */
    for (int k = nbytes - 1; k >= 0 && ++a[k] == 0; k--) /* one past */
        ;
    check_address(t, v, n, p->family, a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1), err[512];
    struct wl_net_prefix *v = NULL;
    size_t n = 0;

    FUZZ_CHECK(buf != NULL);
    memcpy(buf, data, size);
    err[0] = '\0';
    int rc = wl_networks_parse_csv(buf, size, SALT, sizeof SALT - 1, MAX_PREFIXES, &v, &n, err,
                                   sizeof err);
    free(buf);
    if (rc != 0) {
        FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM);
        if (rc == -EINVAL)
            FUZZ_CHECK(strncmp(err, "line ", 5) == 0 && err[5] >= '1' && err[5] <= '9');
        FUZZ_CHECK(v == NULL);
        return 0;
    }
    FUZZ_CHECK(n <= MAX_PREFIXES);
    for (size_t i = 0; i < n; i++) {
        uint8_t key[WL_NET_KEY_MAX];
        struct wl_net_prefix q;
        char text[WL_NET_CIDR_MAX], why[200];
        size_t klen = wl_net_key(&v[i], key);
        FUZZ_CHECK(wl_net_from_key(key, klen, &q) == 0);
        FUZZ_CHECK(q.family == v[i].family && q.len == v[i].len &&
                   memcmp(q.addr, v[i].addr, 16) == 0);
        wl_net_format(&v[i], text);
        FUZZ_CHECK(wl_net_parse(text, &q, why, sizeof why) == 0);
        FUZZ_CHECK(q.family == v[i].family && q.len == v[i].len &&
                   memcmp(q.addr, v[i].addr, 16) == 0);
        if (i > 0) {
            uint8_t prev[WL_NET_KEY_MAX];
            size_t plen = wl_net_key(&v[i - 1], prev);
            int c = memcmp(prev, key, plen < klen ? plen : klen);
            FUZZ_CHECK(c < 0 || (c == 0 && plen < klen));
        }
    }
    struct wl_nettable *t = NULL;
    rc = wl_nettable_build(v, n, &t);
    FUZZ_CHECK(rc == 0 || rc == -ENOMEM);
    if (rc == 0) {
        FUZZ_CHECK(wl_nettable_count(t) == n);
        for (size_t i = 0; i < n; i++)
            check_around(t, v, n, &v[i]);
        for (size_t off = 0; off + 16 <= size && off < 16 * 64; off += 16) {
            check_address(t, v, n, 4, data + off);
            check_address(t, v, n, 6, data + off);
        }
        wl_nettable_free(t);
    }
    free(v);
    return 0;
}
