/* A set of install ids for a forget: the ids a forget takes, looked up once
 * per stored ping, signal and quarantined sample its requester scans.
 *
 * Ids come from senders, so lookups go through the process's keyed hash
 * (wl_keyhash, ptable.h: SipHash-2-4 under a random key): adding n ids
 * costs O(n) whatever they are, a lookup O(1).
 * One owner at a time (the requester builds it; the writer may read it
 * while the requester waits for it). */
#ifndef WL_IDSET_H
#define WL_IDSET_H

#include <stddef.h>
#include <stdint.h>

struct wl_idset {
    char **v;          /* the ids, malloc'd, in the order they were added */
    uint8_t *lens;     /* their lengths (install ids have at most 64 bytes) */
    size_t n, cap;
    uint32_t *slots;   /* open addressing: index into v + 1, 0 = empty */
    size_t nslots;     /* 0 or a power of two, at least twice n */
};

/* Adds a copy of id (1 to 255 bytes) unless it is in already: 0, or
 * -ENOMEM (the set is unchanged), or -EINVAL for a bad length. */
int wl_idset_add(struct wl_idset *s, const char *id, size_t len);

/* 1 when id is in the set (any length; an empty set is fine). */
int wl_idset_has(const struct wl_idset *s, const char *id, size_t len);

void wl_idset_free(struct wl_idset *s);

#endif
