#include "addrlimit.h"

#include <errno.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define WINDOW 16 /* slots probed per address */

struct slot {
    struct wl_addr key;
    double tokens;      /* as of last_ms */
    uint64_t last_ms;   /* last refill, which is the last time it was seen */
    uint32_t conns;     /* open TCP connections counted: never evicted while > 0 */
    uint8_t used;       /* a slot once used stays used: probing stops at an unused one */
};

struct wl_addrlimit {
    struct slot *slots;
    size_t mask;
    double rate, burst; /* tokens per ms; bucket size */
    uint8_t hash_key[crypto_shorthash_KEYBYTES];
};

int wl_addr_key(const struct sockaddr *sa, struct wl_addr *key)
{
    memset(key, 0, sizeof *key);
    if (sa == NULL)
        return -1;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        key->b[10] = key->b[11] = 0xff;
        memcpy(key->b + 12, &in->sin_addr, 4);
        return key->b[12] == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(key->b, a->s6_addr, 16);
            return key->b[12] == 127;
        }
        if (IN6_IS_ADDR_LOOPBACK(a)) {
            memcpy(key->b, a->s6_addr, 16);
            return 1;
        }
        memcpy(key->b, a->s6_addr, 8); /* the /64 */
        return 0;
    }
    return -1;
}

int wl_addrlimit_new(size_t min_entries, uint64_t rate, uint64_t burst, struct wl_addrlimit **out)
{
    struct wl_addrlimit *t;
    size_t cap = WINDOW;

    *out = NULL;
    while (cap < min_entries && cap < ((size_t)1 << 40))
        cap *= 2;
    if (sodium_init() < 0 || (t = calloc(1, sizeof *t)) == NULL)
        return -ENOMEM;
    /* calloc: pages of the table are only resident once touched. */
    if ((t->slots = calloc(cap, sizeof *t->slots)) == NULL) {
        free(t);
        return -ENOMEM;
    }
    t->mask = cap - 1;
    t->rate = (double)rate / 1000.0;
    t->burst = (double)(burst ? burst : 1);
    crypto_shorthash_keygen(t->hash_key);
    *out = t;
    return 0;
}

void wl_addrlimit_free(struct wl_addrlimit *t)
{
    if (t == NULL)
        return;
    free(t->slots);
    free(t);
}

size_t wl_addrlimit_capacity(const struct wl_addrlimit *t)
{
    return t->mask + 1;
}

size_t wl_addrlimit_bytes(const struct wl_addrlimit *t)
{
    return sizeof *t + (t->mask + 1) * sizeof *t->slots;
}

/* The bucket's tokens at now (without changing it). */
static double tokens_at(const struct wl_addrlimit *t, const struct slot *s, uint64_t now)
{
    double v = s->tokens;
    if (now > s->last_ms)
        v += (double)(now - s->last_ms) * t->rate;
    return v > t->burst ? t->burst : v;
}

static int same(const struct wl_addr *a, const struct wl_addr *b)
{
    return memcmp(a->b, b->b, sizeof a->b) == 0;
}

/* The address's slot; with create, a new one (fresh bucket) when it has
 * none, or NULL when every slot of its window has connections open. */
static struct slot *find(struct wl_addrlimit *t, const struct wl_addr *a, uint64_t now,
                         int create)
{
    uint8_t h[crypto_shorthash_BYTES];
    uint64_t start;
    struct slot *victim = NULL;
    int victim_full = 0;
    size_t window = t->mask + 1 < WINDOW ? t->mask + 1 : WINDOW;

    crypto_shorthash(h, a->b, sizeof a->b, t->hash_key);
    memcpy(&start, h, sizeof start);
    for (size_t i = 0; i < window; i++) {
        struct slot *s = &t->slots[(start + i) & t->mask];
        if (!s->used) {
            if (!create)
                return NULL;
            victim = s;
            break;
        }
        if (same(&s->key, a))
            return s;
        if (s->conns != 0 || victim_full)
            continue;
        /* A refilled bucket is as good as none; else the one seen longest ago. */
        if (t->rate == 0 || tokens_at(t, s, now) >= t->burst) {
            victim = s;
            victim_full = 1;
        } else if (victim == NULL || s->last_ms < victim->last_ms) {
            victim = s;
        }
    }
    if (!create || victim == NULL)
        return NULL;
    victim->key = *a;
    victim->tokens = t->burst;
    victim->last_ms = now;
    victim->conns = 0;
    victim->used = 1;
    return victim;
}

uint64_t wl_addrlimit_take(struct wl_addrlimit *t, const struct wl_addr *a, uint64_t now_ms)
{
    return wl_addrlimit_take_n(t, a, 1, now_ms);
}

uint64_t wl_addrlimit_take_n(struct wl_addrlimit *t, const struct wl_addr *a, uint32_t n,
                             uint64_t now_ms)
{
    if (t->rate == 0)
        return 0;
    struct slot *s = find(t, a, now_ms, 1);
    if (s == NULL)
        return 0; /* no slot to track it in: let it through */
    s->tokens = tokens_at(t, s, now_ms);
    if (now_ms > s->last_ms)
        s->last_ms = now_ms;
    /* more than a bucket can hold after the request's own token: what it can */
    double cap = t->burst > 1.0 ? t->burst - 1.0 : 1.0;
    double need = (double)n < cap ? (double)n : cap;
    if (s->tokens >= need) {
        s->tokens -= need;
        return 0;
    }
    double wait = (need - s->tokens) / t->rate;
    uint64_t ms = (uint64_t)wait;
    if ((double)ms < wait)
        ms++;
    return ms ? ms : 1;
}

int wl_addrlimit_conn_open(struct wl_addrlimit *t, const struct wl_addr *a, uint64_t max,
                           uint64_t now_ms)
{
    return wl_addrlimit_hold(t, a, 1, max, now_ms);
}

void wl_addrlimit_conn_close(struct wl_addrlimit *t, const struct wl_addr *a)
{
    wl_addrlimit_release(t, a, 1);
}

int wl_addrlimit_hold(struct wl_addrlimit *t, const struct wl_addr *a, uint32_t n, uint64_t max,
                      uint64_t now_ms)
{
    if (max == 0)
        return 1;
    struct slot *s = find(t, a, now_ms, 1);
    if (s == NULL)
        return 1;
    if ((uint64_t)s->conns + n > max)
        return -EMFILE;
    s->conns += n;
    return 0;
}

void wl_addrlimit_release(struct wl_addrlimit *t, const struct wl_addr *a, uint32_t n)
{
    struct slot *s = find(t, a, 0, 0);
    if (s != NULL)
        s->conns -= n < s->conns ? n : s->conns;
}

uint64_t wl_addrlimit_conns(const struct wl_addrlimit *t, const struct wl_addr *a)
{
    struct slot *s = find((struct wl_addrlimit *)t, a, 0, 0);
    return s ? s->conns : 0;
}
