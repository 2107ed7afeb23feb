/* Arenas: where protobuf-c decodes. A bump allocator over chunks taken
 * from malloc: an allocation is a pointer moved forward, and every chunk
 * goes at once (wl_arena_free) or all but the first (wl_arena_reset, for a
 * scratch arena reused per decode). A request over WL_ARENA_BIG bytes gets
 * a chunk of its own, which a free gives back (protobuf-c's scanning
 * scratch, freed as each message ends); any other free does nothing.
 *
 * An arena counts what it hands out (each request rounded up to 8 bytes,
 * the alignment protobuf-c's structs need, less what was given back) and
 * refuses, setting over_budget, a request that would take the count past
 * its limit. What it holds is that count plus its chunks' headers (32
 * bytes each), the current chunk's free bytes, the first chunk's if it was
 * left with some, and the tails of the chunks it moved on from, each under
 * WL_ARENA_BIG in a chunk of WL_ARENA_CHUNK_MIN or more (an eighth):
 * held, below, says exactly. A chunk is never larger than what the limit
 * has left, so past the first one nothing holds more than the limit
 * allows plus those tails.
 *
 * Not thread-safe: one thread allocates (the ingest loop, while decoding);
 * wl_arena_free may run on any thread once nothing allocates any more. An
 * arena made with a prefix lives in its own first chunk, after the prefix
 * (a decoded batch's top-level struct: envelope.c). */
#ifndef WL_ARENA_H
#define WL_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#define WL_ARENA_ALIGN 8
#define WL_ARENA_CHUNK_MIN ((size_t)4096)
#define WL_ARENA_CHUNK_MAX ((size_t)1 << 20)
#define WL_ARENA_BIG ((size_t)512)

struct wl_arena_chunk;

struct wl_arena {
    uint64_t magic;                /* WL_ARENA_MAGIC while the arena is live */
    uint8_t *ptr, *end;            /* the current chunk's free space */
    struct wl_arena_chunk *chunks; /* the chunks bumped in but the first, newest first */
    struct wl_arena_chunk *own;    /* the large requests' chunks */
    void *first;                   /* the first chunk (holds the arena when it has a prefix) */
    size_t first_size;             /* its usable bytes (after the prefix and the arena) */
    size_t counted;                /* bytes handed out, each rounded up to WL_ARENA_ALIGN */
    size_t peak;                   /* ... the most at once */
    size_t limit;                  /* ... at most */
    size_t held;                   /* bytes taken from malloc, chunk headers included */
    size_t next_chunk;             /* the size of the next chunk */
    int over_budget;               /* a request was refused */
    struct wl_arena_spares *spares; /* where given-back chunks go, or NULL: freed */
};

/* Chunks given back, kept for the next large request of the same size (the
 * parser's scratch: a ping of more than 16 fields takes 1 KiB and gives it
 * back): at most WL_ARENA_SPARES of at most WL_ARENA_SPARE_MAX bytes each,
 * owned by one thread (the decoder's). */
#define WL_ARENA_SPARES 8
#define WL_ARENA_SPARE_MAX ((size_t)16 * 1024)
struct wl_arena_spares {
    struct wl_arena_chunk *list;
    int n;
};

/* Frees the spares. */
void wl_arena_spares_free(struct wl_arena_spares *s);

#define WL_ARENA_MAGIC UINT64_C(0x776c6172656e6121) /* "wlarena!" */

/* An arena in a first chunk of prefix + first_size bytes (prefix rounded
 * up to WL_ARENA_ALIGN), the arena itself between the two; NULL when out of
 * memory. wl_arena_prefix gives the prefix's address: the chunk's start. */
struct wl_arena *wl_arena_new(size_t prefix, size_t first_size, size_t limit);
void *wl_arena_prefix(const struct wl_arena *a);

/* The arena behind a prefix made by wl_arena_new(prefix, ...). */
struct wl_arena *wl_arena_of_prefix(void *p, size_t prefix);

/* size bytes aligned to WL_ARENA_ALIGN, or NULL: over the limit (and
 * a->over_budget set), or out of memory. */
void *wl_arena_alloc(struct wl_arena *a, size_t size);

/* What protobuf-c's free does: gives p's chunk back (to a->spares, else to
 * malloc) if p was a large request, in O(1); else nothing. p must be a
 * pointer a made and did not give back. */
void wl_arena_give_back(struct wl_arena *a, void *p);

/* Frees every chunk but the first, and starts the count again under limit. */
void wl_arena_reset(struct wl_arena *a, size_t limit);

/* Frees every chunk, the arena's own included. */
void wl_arena_free(struct wl_arena *a);

/* protobuf-c's view of an arena: allocations from it, free a no-op. */
ProtobufCAllocator wl_arena_allocator(struct wl_arena *a);

#endif
