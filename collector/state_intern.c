/* The writer's state: interned strings and feature lists (state_parts.h).
 * The writer thread. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "state_parts.h"

/* ---- interned strings and feature lists ---- */

struct wl_str *wl_st_str_of(const char *s)
{
    return (struct wl_str *)(void *)(s - offsetof(struct wl_str, s));
}

static struct wl_fset *fset_of(const char **v)
{
    return (struct wl_fset *)(void *)((char *)v - offsetof(struct wl_fset, s));
}

uint32_t wl_st_str_hash_of(const void *e) { return ((const struct wl_str *)e)->hash; }
uint32_t wl_st_fset_hash_of(const void *e) { return ((const struct wl_fset *)e)->hash; }

static int str_eq(const void *e, const void *key)
{
    const struct wl_str *x = e;
    const struct bytes_key *k = key;
    return x->len == k->len && memcmp(x->s, k->p, k->len) == 0;
}

static int fset_eq(const void *e, const void *key)
{
    const struct wl_fset *f = e;
    const struct bytes_key *k = key;
    return f->n * sizeof(const char *) == k->len && memcmp(f->s, k->p, k->len) == 0;
}

static size_t str_bytes(const struct wl_str *e) { return sizeof *e + e->len + 1; }
static size_t fset_bytes(const struct wl_fset *f) { return sizeof *f + f->n * sizeof *f->s; }

/* A new reference to the interned copy of s. */
const char *wl_st_intern(struct wl_state *st, const char *s)
{
    struct bytes_key k = {s, strlen(s)};
    uint32_t h = (uint32_t)wl_keyhash(s, k.len);
    struct wl_str *e = wl_ptable_find(&st->strings, h, str_eq, &k);
    if (e == NULL) {
        e = wl_st_xrealloc(NULL, sizeof *e + k.len + 1);
        memset(e, 0, sizeof *e);
        e->hash = h;
        e->len = (uint32_t)k.len;
        memcpy(e->s, s, k.len + 1);
        wl_ptable_add(&st->strings, e);
        st->interned_bytes += str_bytes(e);
    }
    e->refs++;
    return e->s;
}

const char *wl_st_str_ref(const char *s)
{
    if (s != NULL)
        wl_st_str_of(s)->refs++;
    return s;
}

void wl_st_str_unref(struct wl_state *st, const char *s)
{
    if (s == NULL)
        return;
    struct wl_str *e = wl_st_str_of(s);
    if (--e->refs > 0)
        return;
    wl_ptable_remove(&st->strings, e);
    st->interned_bytes -= str_bytes(e);
    free(e);
}

/* A reference to the interned list of v's n strings; takes over the
 * references v holds (one per entry). */
const char **wl_st_intern_fset(struct wl_state *st, const char **v, size_t n)
{
    if (n == 0)
        return NULL;
    struct bytes_key k = {v, n * sizeof *v};
    uint32_t h = (uint32_t)wl_keyhash(v, k.len);
    struct wl_fset *f = wl_ptable_find(&st->fsets, h, fset_eq, &k);
    if (f != NULL) {
        for (size_t i = 0; i < n; i++)
            wl_st_str_unref(st, v[i]); /* the list holds its own */
    } else {
        f = wl_st_xrealloc(NULL, sizeof *f + n * sizeof *v);
        memset(f, 0, sizeof *f);
        f->hash = h;
        f->n = (uint32_t)n;
        memcpy(f->s, v, n * sizeof *v);
        wl_ptable_add(&st->fsets, f);
        st->interned_bytes += fset_bytes(f);
    }
    f->refs++;
    return f->s;
}

void wl_st_fset_unref(struct wl_state *st, const char **v)
{
    if (v == NULL)
        return;
    struct wl_fset *f = fset_of(v);
    if (--f->refs > 0)
        return;
    wl_ptable_remove(&st->fsets, f);
    st->interned_bytes -= fset_bytes(f);
    for (uint32_t i = 0; i < f->n; i++)
        wl_st_str_unref(st, f->s[i]);
    free(f);
}

/* The interned copy of s, or NULL when nothing holds it. */
const char *wl_st_interned(const struct wl_state *st, const char *s)
{
    struct bytes_key k = {s, strlen(s)};
    struct wl_str *e = wl_ptable_find(&st->strings, (uint32_t)wl_keyhash(s, k.len), str_eq, &k);
    return e ? e->s : NULL;
}

/* The rules' operands: interned for good, and always tallied. */
void wl_st_pin_operand(void *arg, int is_feature, const char *text)
{
    struct wl_state *st = arg;
    (void)is_feature;
    const char *s = wl_st_interned(st, text);
    if (s == NULL || !wl_st_str_of(s)->ruled) {
        s = wl_st_intern(st, text); /* the state's reference, dropped at wl_state_free */
        wl_st_str_of(s)->ruled = 1;
        /* before any tally counts it: operands are pinned at the load's start */
        if (st->n_operand_bits < WL_OPERAND_BITS)
            wl_st_str_of(s)->operand_bit = (uint8_t)++st->n_operand_bits;
    }
    st->operands = wl_st_xrealloc(st->operands, (st->n_operands + 1) * sizeof *st->operands);
    st->operands[st->n_operands++] = (struct wl_operand){text, s};
}

/* A rule's operand by its text's address (wl_st_pin_operand), else by its
 * bytes; NULL when nothing holds it. */
const char *wl_st_operand(const struct wl_state *st, const char *text)
{
    for (size_t i = 0; i < st->n_operands; i++) {
        if (st->operands[i].text == text)
            return st->operands[i].s;
    }
    return wl_st_interned(st, text);
}
