#include "arena.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/random.h>

/* A chunk after the first: a header, then its bytes. A large request's own
 * chunk says so in check, a value no input can write (it mixes the chunk's
 * and the arena's addresses with a secret drawn at start): a free reads the
 * header before the pointer it is given (for a small request, the end of
 * the request before it, or a chunk's header, in the same malloc block),
 * and gives the chunk back only when check is right. */
struct wl_arena_chunk {
    struct wl_arena_chunk *next, *prev; /* prev: own chunks only (a double list) */
    size_t size;     /* its bytes, after the header */
    uintptr_t check; /* own_check(a, c) for a live own chunk, else 0 */
};

#define ROUND(n) (((n) + (WL_ARENA_ALIGN - 1)) & ~(size_t)(WL_ARENA_ALIGN - 1))
#define HEADER ROUND(sizeof(struct wl_arena_chunk))
#define SELF ROUND(sizeof(struct wl_arena))

static uintptr_t secret;
static pthread_once_t secret_once = PTHREAD_ONCE_INIT;

static void draw_secret(void)
{
    uintptr_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
        v = (uintptr_t)&v * 0x9e3779b97f4a7c15u; /* no entropy: the stack's address */
    secret = v | 1; /* odd: never the 0 of a chunk that is not an own live one */
}

static uintptr_t own_check(const struct wl_arena *a, const struct wl_arena_chunk *c)
{
    return (uintptr_t)c ^ (uintptr_t)a ^ secret;
}

static size_t clamp_chunk(size_t n)
{
    return n < WL_ARENA_CHUNK_MIN ? WL_ARENA_CHUNK_MIN
                                  : n > WL_ARENA_CHUNK_MAX ? WL_ARENA_CHUNK_MAX : n;
}

static void start(struct wl_arena *a, size_t limit)
{
    a->ptr = (uint8_t *)a + SELF;
    a->end = a->ptr + a->first_size;
    a->counted = a->peak = 0;
    a->limit = limit;
    a->held = (size_t)(a->end - (uint8_t *)a->first);
    a->next_chunk = clamp_chunk(a->first_size / 4);
    a->over_budget = 0;
}

struct wl_arena *wl_arena_new(size_t prefix, size_t first_size, size_t limit)
{
    prefix = ROUND(prefix);
    first_size = ROUND(first_size);
    if (first_size > SIZE_MAX - prefix - SELF)
        return NULL;
    pthread_once(&secret_once, draw_secret);
    uint8_t *base = malloc(prefix + SELF + first_size);
    if (base == NULL)
        return NULL;
    struct wl_arena *a = (struct wl_arena *)(base + prefix);
    a->magic = WL_ARENA_MAGIC;
    a->chunks = a->own = NULL;
    a->spares = NULL;
    a->first = base;
    a->first_size = first_size;
    start(a, limit);
    return a;
}

void *wl_arena_prefix(const struct wl_arena *a) { return a->first; }

struct wl_arena *wl_arena_of_prefix(void *p, size_t prefix)
{
    return (struct wl_arena *)((uint8_t *)p + ROUND(prefix));
}

static struct wl_arena_chunk *take_spare(struct wl_arena *a, size_t size);

void *wl_arena_alloc(struct wl_arena *a, size_t size)
{
    if (size > SIZE_MAX - WL_ARENA_ALIGN)
        goto refuse;
    size_t n = ROUND(size ? size : 1);
    if (a->counted > a->limit || n > a->limit - a->counted)
        goto refuse;
    int own = n > WL_ARENA_BIG;
    if (!own && n <= (size_t)(a->end - a->ptr)) {
        void *p = a->ptr;
        a->ptr += n;
        a->counted += n;
        if (a->counted > a->peak)
            a->peak = a->counted;
        return p;
    }
    /* A large request gets a chunk of its own and the current one goes on;
     * else a new chunk, never larger than what the limit has left. */
    size_t csize = n;
    if (!own) {
        size_t left = a->limit - a->counted;
        csize = a->next_chunk < left ? a->next_chunk : left;
    }
    if (csize > SIZE_MAX - HEADER)
        goto refuse;
    struct wl_arena_chunk *c = own ? take_spare(a, csize) : NULL;
    if (c == NULL && (c = malloc(HEADER + csize)) == NULL)
        return NULL;
    c->size = csize;
    a->held += HEADER + csize;
    a->counted += n;
    if (a->counted > a->peak)
        a->peak = a->counted;
    uint8_t *p = (uint8_t *)c + HEADER;
    if (own) {
        c->prev = NULL;
        c->next = a->own;
        if (a->own != NULL)
            a->own->prev = c;
        a->own = c;
        c->check = own_check(a, c);
    } else {
        c->check = 0;
        c->prev = NULL;
        c->next = a->chunks;
        a->chunks = c;
        a->ptr = p + n;
        a->end = p + csize;
        a->next_chunk = clamp_chunk(a->next_chunk * 2);
    }
    return p;

refuse:
    a->over_budget = 1;
    return NULL;
}

static void free_list(struct wl_arena_chunk *c)
{
    for (struct wl_arena_chunk *next; c != NULL; c = next) {
        next = c->next;
        c->check = 0;
        free(c);
    }
}

static void free_chunks(struct wl_arena *a)
{
    free_list(a->chunks);
    free_list(a->own);
    a->chunks = a->own = NULL;
}

void wl_arena_reset(struct wl_arena *a, size_t limit)
{
    free_chunks(a);
    start(a, limit);
}

void wl_arena_free(struct wl_arena *a)
{
    if (a == NULL)
        return;
    free_chunks(a);
    a->magic = 0;
    free(a->first);
}

static void *arena_alloc(void *data, size_t size) { return wl_arena_alloc(data, size); }

void wl_arena_give_back(struct wl_arena *a, void *p)
{
    struct wl_arena_chunk *c = (struct wl_arena_chunk *)((uint8_t *)p - HEADER);
    if (c->check != own_check(a, c))
        return; /* a small request's: nothing */
    c->check = 0;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        a->own = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    a->counted -= c->size;
    a->held -= HEADER + c->size;
    if (a->spares != NULL && a->spares->n < WL_ARENA_SPARES && c->size <= WL_ARENA_SPARE_MAX) {
        c->next = a->spares->list;
        a->spares->list = c;
        a->spares->n++;
    } else {
        free(c);
    }
}

/* A spare chunk of exactly size bytes, unlinked, or NULL. */
static struct wl_arena_chunk *take_spare(struct wl_arena *a, size_t size)
{
    if (a->spares == NULL)
        return NULL;
    for (struct wl_arena_chunk **pp = &a->spares->list; *pp != NULL; pp = &(*pp)->next) {
        struct wl_arena_chunk *c = *pp;
        if (c->size == size) {
            *pp = c->next;
            a->spares->n--;
            return c;
        }
    }
    return NULL;
}

void wl_arena_spares_free(struct wl_arena_spares *s)
{
    for (struct wl_arena_chunk *c = s->list, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    s->list = NULL;
    s->n = 0;
}

static void arena_free(void *data, void *p)
{
    if (p != NULL)
        wl_arena_give_back(data, p);
}

ProtobufCAllocator wl_arena_allocator(struct wl_arena *a)
{
    ProtobufCAllocator pa = {.alloc = arena_alloc, .free = arena_free, .allocator_data = a};
    return pa;
}
