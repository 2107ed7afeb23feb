/* The writer's state: per-organization tallies (state_parts.h), and an
 * install's strings and counts joining or leaving its organization's.
 * The writer thread. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "state_parts.h"

/* The slot holding s, or the empty one where it would go. */
static struct wl_tally *tally_slot(const struct wl_tallies *t, const char *s)
{
    size_t mask = (size_t)t->cap - 1;
    for (size_t i = wl_st_str_of(s)->hash & mask;; i = (i + 1) & mask) {
        if (t->v[i].s == s || t->v[i].s == NULL)
            return &t->v[i];
    }
}

/* A table for the entries of t with a count (or all, with zeros too) and
 * room for one more, at least twice as many slots as entries (none when it
 * would be empty); t's array is freed. max_org_features <= 10,000 keeps
 * the slots within uint16_t. */
void wl_st_tally_rebuild(struct wl_state *st, struct wl_tallies *t, int keep_zeros)
{
    size_t n = 0;
    for (uint16_t i = 0; i < t->cap; i++)
        n += t->v[i].s != NULL && (keep_zeros || t->v[i].n > 0);
    size_t cap = 2; /* most lists hold one string: 32 bytes */
    while (cap < 2 * (n + keep_zeros))
        cap *= 2;
    struct wl_tallies nt = {.cap = (uint16_t)cap, .n = (uint16_t)n, .has = t->has};
    if (n + keep_zeros > 0) {
        nt.v = wl_st_xrealloc(NULL, cap * sizeof *nt.v);
        memset(nt.v, 0, cap * sizeof *nt.v);
    } else {
        nt.cap = 0;
    }
    for (uint16_t i = 0; i < t->cap; i++) {
        if (t->v[i].s == NULL)
            continue;
        if (keep_zeros || t->v[i].n > 0)
            *tally_slot(&nt, t->v[i].s) = t->v[i];
        else
            wl_st_str_unref(st, t->v[i].s);
    }
    free(t->v);
    *t = nt;
}

/* Empties slot i of a linear-probing table, moving back the entries after
 * it that would no longer be found (so no deleted markers are needed). */
static void tally_erase(struct wl_tallies *t, size_t i)
{
    size_t mask = (size_t)t->cap - 1;
    for (size_t j = (i + 1) & mask; t->v[j].s != NULL; j = (j + 1) & mask) {
        size_t home = wl_st_str_of(t->v[j].s)->hash & mask;
        /* j stays when its home is cyclically in (i, j] */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            t->v[i] = t->v[j];
            i = j;
        }
    }
    t->v[i].s = NULL;
    t->v[i].n = 0;
    t->n--;
}

/* An entry for s, with count 0 when new; NULL when the table holds cap
 * entries already and no rule tests s. */
static struct wl_tally *tally_entry(struct wl_state *st, struct wl_tallies *t, const char *s,
                                    size_t cap)
{
    struct wl_tally *e = t->cap ? tally_slot(t, s) : NULL;
    if (e != NULL && e->s != NULL)
        return e;
    if (t->n >= cap && !wl_st_str_of(s)->ruled)
        return NULL;
    if (4 * ((size_t)t->n + 1) > 3 * (size_t)t->cap)
        wl_st_tally_rebuild(st, t, 1);
    e = tally_slot(t, s);
    e->s = wl_st_str_ref(s);
    e->n = 0;
    t->n++;
    return e;
}

/* One more install has s: 1 when it is tallied, 0 when the table is full. */
static int tally_add(struct wl_state *st, struct wl_tallies *t, const char *s, size_t cap)
{
    struct wl_tally *e = tally_entry(st, t, s, cap);
    if (e == NULL)
        return 0;
    if (e->n++ == 0 && wl_st_str_of(s)->operand_bit)
        t->has |= 1u << (wl_st_str_of(s)->operand_bit - 1);
    return 1;
}

/* One install fewer has s (which it tallied). */
static void tally_sub(struct wl_state *st, struct wl_tallies *t, const char *s)
{
    struct wl_tally *e = t->cap ? tally_slot(t, s) : NULL;
    if (e == NULL || e->s == NULL || e->n == 0)
        abort(); /* an install untallies only what it tallied */
    if (--e->n == 0) {
        if (wl_st_str_of(s)->operand_bit)
            t->has &= ~(1u << (wl_st_str_of(s)->operand_bit - 1));
        tally_erase(t, (size_t)(e - t->v));
        wl_st_str_unref(st, s);
    }
}

int wl_st_tally_has(const struct wl_tallies *t, const char *s)
{
    uint8_t bit = wl_st_str_of(s)->operand_bit;
    if (bit)
        return (t->has >> (bit - 1)) & 1;
    if (t->cap == 0)
        return 0;
    const struct wl_tally *e = tally_slot(t, s);
    return e->s == s && e->n > 0;
}

void wl_st_tally_clear(struct wl_state *st, struct wl_tallies *t)
{
    for (uint16_t i = 0; i < t->cap; i++)
        wl_st_str_unref(st, t->v[i].s);
    free(t->v);
    memset(t, 0, sizeof *t);
}

/* Entries with count 0 for the strings a record lists (at load). */
void wl_st_tally_seed(struct wl_state *st, struct wl_tallies *t, char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *s = wl_st_intern(st, v[i]);
        tally_entry(st, t, s, SIZE_MAX);
        wl_st_str_unref(st, s); /* the entry holds its own */
    }
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The table's strings, sorted (an organization record's lists): into the
 * state's buffer, valid until the next call. */
size_t wl_st_tally_list(const struct wl_tallies *t, const char **out)
{
    size_t n = 0;
    for (uint16_t i = 0; i < t->cap; i++) {
        if (t->v[i].s != NULL && t->v[i].n > 0)
            out[n++] = t->v[i].s;
    }
    if (n > 1)
        qsort(out, n, sizeof *out, str_cmp);
    return n;
}

/* Whether s (a ping's, "" for none) is the interned string i (NULL for
 * none). */
static int same_str(const char *i, const char *s)
{
    return s[0] == '\0' ? i == NULL : i != NULL && strcmp(i, s) == 0;
}

int wl_st_install_recount(struct wl_state *st, struct wl_org *org, struct wl_install *in,
                          const wl_ping *p)
{
    (void)st;
    size_t nf = p->n_features > WL_FEATURES_MAX ? WL_FEATURES_MAX : p->n_features;
    uint64_t all = in->n_features >= 64 ? UINT64_MAX : (1ULL << in->n_features) - 1;
    /* what the leave and join would do again: every string tallied and
     * listed, the same strings (an untallied one may find room now) */
    if (in->feat_tallied != all || nf != in->n_features ||
        (in->edition != NULL &&
         (in->flags & (IN_EDITION_TALLIED | IN_EDITION_LISTED)) !=
             (IN_EDITION_TALLIED | IN_EDITION_LISTED)) ||
        (in->version != NULL && !(in->flags & IN_VERSION_LISTED)) ||
        !same_str(in->edition, p->edition) || !same_str(in->version, p->version))
        return 0;
    for (size_t i = 0; i < nf; i++)
        if (strcmp(in->features[i], p->features[i]) != 0)
            return 0;
    uint64_t counts[WL_N_COUNTS];
    wl_ping_counts(p, counts);
    for (int i = 0; i < WL_N_COUNTS; i++) {
        uint32_t c = counts[i] > UINT32_MAX ? UINT32_MAX : (uint32_t)counts[i];
        org->totals[i] += (uint64_t)c - in->counts[i]; /* modulo 2^64: the difference */
        in->counts[i] = c;
    }
    return 1;
}

/* The install's version and edition join (sign +1) or leave (-1) its
 * organization's lists. */
void wl_st_org_list(struct wl_state *st, struct wl_org *org, struct wl_install *in, int sign)
{
    if (sign > 0) {
        if (in->version != NULL && tally_add(st, &org->versions, in->version, SEEN_MAX))
            in->flags |= IN_VERSION_LISTED;
        if (in->edition != NULL && tally_add(st, &org->editions, in->edition, SEEN_MAX))
            in->flags |= IN_EDITION_LISTED;
        return;
    }
    if (in->flags & IN_VERSION_LISTED)
        tally_sub(st, &org->versions, in->version);
    if (in->flags & IN_EDITION_LISTED)
        tally_sub(st, &org->editions, in->edition);
    in->flags &= (uint8_t)~(IN_VERSION_LISTED | IN_EDITION_LISTED);
}

/* A counting install's counts, features and edition enter (sign +1) or
 * leave (-1) its organization's account. What did not fit the tallies
 * (max_org_features) is counted, and not taken out again. */
void wl_st_org_count(struct wl_state *st, struct wl_org *org, struct wl_install *in, int sign)
{
    size_t cap = st->opts.max_org_features;
    for (int i = 0; i < WL_N_COUNTS; i++)
        org->totals[i] += sign > 0 ? in->counts[i] : -(uint64_t)in->counts[i];
    org->n_counting += sign > 0 ? 1 : -1;
    if (sign > 0) {
        in->feat_tallied = 0;
        for (uint8_t f = 0; f < in->n_features; f++) {
            if (tally_add(st, &org->feats, in->features[f], cap))
                in->feat_tallied |= 1ULL << f;
            else
                st->untallied++;
        }
        if (in->edition != NULL) {
            if (tally_add(st, &org->eds, in->edition, cap))
                in->flags |= IN_EDITION_TALLIED;
            else
                st->untallied++;
        }
        return;
    }
    for (uint8_t f = 0; f < in->n_features; f++) {
        if (in->feat_tallied & (1ULL << f))
            tally_sub(st, &org->feats, in->features[f]);
    }
    in->feat_tallied = 0;
    if (in->flags & IN_EDITION_TALLIED)
        tally_sub(st, &org->eds, in->edition);
    in->flags &= (uint8_t)~IN_EDITION_TALLIED;
}
