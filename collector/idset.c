#include "idset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ptable.h"

/* The slot that holds id, or the empty one where it would go. */
static size_t slot_of(const struct wl_idset *s, const char *id, size_t len)
{
    size_t mask = s->nslots - 1, i = (size_t)wl_keyhash(id, len) & mask;
    for (;; i = (i + 1) & mask) {
        uint32_t at = s->slots[i];
        if (at == 0)
            return i;
        if (s->lens[at - 1] == len && memcmp(s->v[at - 1], id, len) == 0)
            return i;
    }
}

static int grow_slots(struct wl_idset *s)
{
    size_t n = s->nslots ? 2 * s->nslots : 64;
    uint32_t *slots = calloc(n, sizeof *slots);
    if (slots == NULL)
        return -ENOMEM;
    free(s->slots);
    s->slots = slots;
    s->nslots = n;
    for (size_t k = 0; k < s->n; k++)
        s->slots[slot_of(s, s->v[k], s->lens[k])] = (uint32_t)(k + 1);
    return 0;
}

int wl_idset_add(struct wl_idset *s, const char *id, size_t len)
{
    if (len == 0 || len > UINT8_MAX)
        return -EINVAL;
    if (s->n >= UINT32_MAX - 1)
        return -ENOMEM;
    if (2 * (s->n + 1) > s->nslots && grow_slots(s) != 0)
        return -ENOMEM;
    size_t i = slot_of(s, id, len);
    if (s->slots[i] != 0)
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        char **v = realloc(s->v, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        s->v = v;
        uint8_t *lens = realloc(s->lens, cap);
        if (lens == NULL)
            return -ENOMEM;
        s->lens = lens;
        s->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, id, len);
    copy[len] = '\0';
    s->v[s->n] = copy;
    s->lens[s->n] = (uint8_t)len;
    s->n++;
    s->slots[i] = (uint32_t)s->n;
    return 0;
}

int wl_idset_has(const struct wl_idset *s, const char *id, size_t len)
{
    if (s == NULL || s->n == 0 || len == 0 || len > UINT8_MAX)
        return 0;
    return s->slots[slot_of(s, id, len)] != 0;
}

void wl_idset_free(struct wl_idset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    free(s->lens);
    free(s->slots);
    memset(s, 0, sizeof *s);
}
