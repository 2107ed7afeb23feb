/* Keyed hashing and a table of pointers, for every table whose keys come
 * from senders (install ids, organization ids, interned strings).
 *
 * The hash is SipHash-2-4 (libsodium's crypto_shorthash) under a key drawn
 * at random once per process: a sender who does not know the key cannot
 * compute colliding keys, so no chain grows past what chance gives.
 *
 * The table is open addressing with linear probing over a power-of-two
 * array of element pointers, at most 3/4 full (live and deleted slots).
 * It grows whenever it must (it never stops growing, whatever the keys) and
 * shrinks when most of it is empty. Growing moves the elements to the new
 * array a few at a time, with each add (MOVE_PER_ADD old slots), not all
 * at once: a million installs moved at once stopped the writer, and every
 * ack, for tens of milliseconds. Until the old array is empty, a find looks
 * in both (a moved slot is left deleted, so the old probes stay whole);
 * it is empty long before the new one must grow. Elements keep their own 32-bit hash
 * (hash_of reads it) and are compared by the caller's eq. In each slot,
 * above the element's address, 16 bits of its hash (user-space addresses
 * on x86-64 and arm64 fit in 48 bits; an element above aborts): a probe
 * reads an element (a cache miss in a large table) only when they match,
 * about 1 in 65,536 of the others, and reads nothing beside the slot. Not
 * thread-safe: one owner (the writer, for the aggregate state). */
#ifndef WL_PTABLE_H
#define WL_PTABLE_H

#include <stddef.h>
#include <stdint.h>

/* SipHash of bytes under the process's key (thread-safe; the key is made
 * on first use). */
uint64_t wl_keyhash(const void *p, size_t len);

struct wl_ptable {
    uintptr_t *slots;                         /* tagged: hash bits 16-31 above the address */
    size_t cap;                               /* 0, or a power of two */
    size_t used;                              /* live and deleted slots (of slots) */
    size_t live;                              /* in both arrays */
    uint32_t (*hash_of)(const void *elem);    /* the element's stored hash */
    /* the array before the last growth, while elements are left in it */
    uintptr_t *old_slots;
    size_t old_cap, old_pos;                  /* slots before old_pos are moved */
};

void wl_ptable_init(struct wl_ptable *t, uint32_t (*hash_of)(const void *elem));
/* Frees the slots, not the elements. */
void wl_ptable_free(struct wl_ptable *t);

/* The element with hash h for which eq(elem, key) is true, or NULL. */
void *wl_ptable_find(const struct wl_ptable *t, uint32_t h,
                     int (*eq)(const void *elem, const void *key), const void *key);

/* Prefetching for a find to come (the writer's next pings): the slot a
 * find of h reads first is fetched without waiting; once it is in cache,
 * peek returns the element in it if its tag matches h (it may not be the
 * one a find returns: prefetch it, never use it). */
void wl_ptable_prefetch(const struct wl_ptable *t, uint32_t h);
const void *wl_ptable_peek(const struct wl_ptable *t, uint32_t h);

/* Adds elem (not already in), whose hash_of is h. Aborts on ENOMEM (the
 * writer has nothing sane to do then). */
void wl_ptable_add(struct wl_ptable *t, void *elem);

/* Takes elem (which is in) out. */
void wl_ptable_remove(struct wl_ptable *t, void *elem);

/* Iteration: every live element once, in slot order. for (size_t i = 0;
 * (e = wl_ptable_next(t, &i)) != NULL;) ... Do not add or remove while
 * iterating. */
void *wl_ptable_next(const struct wl_ptable *t, size_t *i);

#endif
