#include "ptable.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static uint8_t hash_key[crypto_shorthash_KEYBYTES];
static pthread_once_t hash_key_once = PTHREAD_ONCE_INIT;

static void hash_key_make(void)
{
    if (sodium_init() < 0)
        abort(); /* no random source: nothing keyed can be trusted */
    crypto_shorthash_keygen(hash_key);
}

uint64_t wl_keyhash(const void *p, size_t len)
{
    uint8_t h[crypto_shorthash_BYTES];
    uint64_t v;
    pthread_once(&hash_key_once, hash_key_make);
    crypto_shorthash(h, p, len, hash_key);
    memcpy(&v, h, sizeof v);
    return v;
}

#define GONE ((void *)(uintptr_t)1) /* a deleted slot */
#define MIN_CAP 16

void wl_ptable_init(struct wl_ptable *t, uint32_t (*hash_of)(const void *elem))
{
    memset(t, 0, sizeof *t);
    t->hash_of = hash_of;
}

void wl_ptable_free(struct wl_ptable *t)
{
    free(t->slots);
    free(t->tags);
    t->slots = NULL;
    t->tags = NULL;
    t->cap = t->used = t->live = 0;
}

void *wl_ptable_find(const struct wl_ptable *t, uint32_t h,
                     int (*eq)(const void *elem, const void *key), const void *key)
{
    if (t->cap == 0)
        return NULL;
    size_t mask = t->cap - 1;
    uint8_t tag = (uint8_t)(h >> 24);
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        void *e = t->slots[i];
        if (e == NULL)
            return NULL;
        if (t->tags[i] == tag && e != GONE && t->hash_of(e) == h && eq(e, key))
            return e;
    }
}

static void place(void **slots, uint8_t *tags, size_t cap, void *e, uint32_t h)
{
    size_t mask = cap - 1, i = h & mask;
    while (slots[i] != NULL)
        i = (i + 1) & mask;
    slots[i] = e;
    tags[i] = (uint8_t)(h >> 24);
}

/* A new array for the live elements, at most half full after. */
static void rebuild(struct wl_ptable *t, size_t need)
{
    size_t cap = MIN_CAP;
    while (cap < 2 * need)
        cap *= 2;
    void **slots = calloc(cap, sizeof *slots);
    uint8_t *tags = malloc(cap);
    if (slots == NULL || tags == NULL)
        abort(); /* out of memory in the writer */
    for (size_t i = 0; i < t->cap; i++) {
        void *e = t->slots[i];
        if (e != NULL && e != GONE)
            place(slots, tags, cap, e, t->hash_of(e));
    }
    free(t->slots);
    free(t->tags);
    t->slots = slots;
    t->tags = tags;
    t->cap = cap;
    t->used = t->live;
}

void wl_ptable_add(struct wl_ptable *t, void *elem)
{
    if (4 * (t->used + 1) > 3 * t->cap)
        rebuild(t, t->live + 1); /* grows, or only clears deleted slots */
    place(t->slots, t->tags, t->cap, elem, t->hash_of(elem));
    t->used++;
    t->live++;
}

void wl_ptable_remove(struct wl_ptable *t, void *elem)
{
    size_t mask = t->cap - 1, i = t->hash_of(elem) & mask;
    while (t->slots[i] != elem)
        i = (i + 1) & mask;
    t->slots[i] = GONE;
    t->live--;
    if (t->cap > MIN_CAP && 8 * t->live < t->cap)
        rebuild(t, t->live); /* mostly empty: give the memory back */
}

void *wl_ptable_next(const struct wl_ptable *t, size_t *i)
{
    for (; *i < t->cap; (*i)++) {
        void *e = t->slots[*i];
        if (e != NULL && e != GONE) {
            (*i)++;
            return e;
        }
    }
    return NULL;
}
