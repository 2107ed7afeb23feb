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

#define GONE ((uintptr_t)1) /* a deleted slot */
#define TAG_SHIFT 48
#define ADDR_MASK ((UINT64_C(1) << TAG_SHIFT) - 1)
#define MIN_CAP 16
/* Old slots moved with each add while a growth is under way. A growth
 * leaves the new array at most half full; it must grow again only past
 * 3/4, a quarter of its slots (a third of the old array's live elements,
 * at the least) adds later, and the old array (at most 4/3 of its live
 * elements, at 3/4 full) is empty after a twelfth of that at 16 a time. */
#define MOVE_PER_ADD 16

static uintptr_t tag_of(uint32_t h) { return (uintptr_t)(h >> 16) << TAG_SHIFT; }
static void *elem_of(uintptr_t v) { return (void *)(v & ADDR_MASK); }
static int live(uintptr_t v) { return v != 0 && v != GONE; }

void wl_ptable_init(struct wl_ptable *t, uint32_t (*hash_of)(const void *elem))
{
    memset(t, 0, sizeof *t);
    t->hash_of = hash_of;
}

static void old_free(struct wl_ptable *t)
{
    free(t->old_slots);
    t->old_slots = NULL;
    t->old_cap = t->old_pos = 0;
}

void wl_ptable_free(struct wl_ptable *t)
{
    free(t->slots);
    t->slots = NULL;
    t->cap = t->used = t->live = 0;
    old_free(t);
}

static void *probe(const uintptr_t *slots, size_t cap, uint32_t (*hash_of)(const void *),
                   uint32_t h, int (*eq)(const void *elem, const void *key), const void *key)
{
    size_t mask = cap - 1;
    uintptr_t tag = tag_of(h);
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uintptr_t v = slots[i];
        if (v == 0)
            return NULL;
        if ((v & ~ADDR_MASK) == tag && v != GONE) {
            void *e = elem_of(v);
            if (hash_of(e) == h && eq(e, key))
                return e;
        }
    }
}

void *wl_ptable_find(const struct wl_ptable *t, uint32_t h,
                     int (*eq)(const void *elem, const void *key), const void *key)
{
    if (t->cap == 0)
        return NULL;
    void *e = probe(t->slots, t->cap, t->hash_of, h, eq, key);
    if (e == NULL && t->old_slots != NULL)
        e = probe(t->old_slots, t->old_cap, t->hash_of, h, eq, key);
    return e;
}

void wl_ptable_prefetch(const struct wl_ptable *t, uint32_t h)
{
    if (t->cap != 0)
        __builtin_prefetch(&t->slots[h & (t->cap - 1)]);
}

const void *wl_ptable_peek(const struct wl_ptable *t, uint32_t h)
{
    if (t->cap == 0)
        return NULL;
    uintptr_t v = t->slots[h & (t->cap - 1)];
    return live(v) && (v & ~ADDR_MASK) == tag_of(h) ? elem_of(v) : NULL;
}

static void place(uintptr_t *slots, size_t cap, void *e, uint32_t h)
{
    size_t mask = cap - 1, i = h & mask;
    while (slots[i] != 0)
        i = (i + 1) & mask;
    slots[i] = (uintptr_t)e | tag_of(h);
}

/* Moves up to n old slots into the new array (a moved one is left
 * deleted: the old probes stay whole); frees the old array once empty. */
static void move_old(struct wl_ptable *t, size_t n)
{
    if (t->old_slots == NULL)
        return;
    for (; n > 0 && t->old_pos < t->old_cap; n--, t->old_pos++) {
        uintptr_t v = t->old_slots[t->old_pos];
        if (live(v)) {
            void *e = elem_of(v);
            place(t->slots, t->cap, e, t->hash_of(e));
            t->used++;
            t->old_slots[t->old_pos] = GONE;
        }
    }
    if (t->old_pos == t->old_cap)
        old_free(t);
}

/* A new array for the live elements, at most half full after: they move
 * into it with the adds to come (incremental), or now. */
static void rebuild(struct wl_ptable *t, size_t need, int incremental)
{
    move_old(t, SIZE_MAX); /* a growth under way ends first (never, by MOVE_PER_ADD) */
    size_t cap = MIN_CAP;
    while (cap < 2 * need)
        cap *= 2;
    uintptr_t *slots = calloc(cap, sizeof *slots);
    if (slots == NULL)
        abort(); /* out of memory in the writer */
    t->old_slots = t->slots;
    t->old_cap = t->cap;
    t->old_pos = 0;
    t->slots = slots;
    t->cap = cap;
    t->used = 0;
    if (t->old_slots == NULL)
        old_free(t); /* the first array */
    else if (!incremental)
        move_old(t, SIZE_MAX);
}

void wl_ptable_add(struct wl_ptable *t, void *elem)
{
    if (((uintptr_t)elem & ~ADDR_MASK) != 0)
        abort(); /* an address above 48 bits: no room for the tag (ptable.h) */
    if (4 * (t->used + 1) > 3 * t->cap)
        /* grows, or only clears deleted slots; a small table at once */
        rebuild(t, t->live + 1, t->cap >= 4096);
    move_old(t, MOVE_PER_ADD);
    place(t->slots, t->cap, elem, t->hash_of(elem));
    t->used++;
    t->live++;
}

/* The slot of elem in an array, or NULL when it is not there. */
static uintptr_t *slot_of(uintptr_t *slots, size_t cap, uint32_t h, const void *elem)
{
    size_t mask = cap - 1;
    for (size_t i = h & mask; slots[i] != 0; i = (i + 1) & mask)
        if (live(slots[i]) && elem_of(slots[i]) == elem)
            return &slots[i];
    return NULL;
}

void wl_ptable_remove(struct wl_ptable *t, void *elem)
{
    uint32_t h = t->hash_of(elem);
    uintptr_t *s = slot_of(t->slots, t->cap, h, elem);
    if (s == NULL) /* not moved yet */
        s = slot_of(t->old_slots, t->old_cap, h, elem);
    *s = GONE;
    t->live--;
    if (t->cap > MIN_CAP && 8 * t->live < t->cap)
        rebuild(t, t->live, 0); /* mostly empty: give the memory back */
}

void *wl_ptable_next(const struct wl_ptable *t, size_t *i)
{
    /* the new array's slots, then the old one's */
    for (; *i < t->cap + t->old_cap; (*i)++) {
        uintptr_t v = *i < t->cap ? t->slots[*i] : t->old_slots[*i - t->cap];
        if (live(v)) {
            (*i)++;
            return elem_of(v);
        }
    }
    return NULL;
}
