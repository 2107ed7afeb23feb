/* The rank: organizations that have signals, in the order of their decayed
 * score, highest first, kept in the writer's memory (a skiplist) and read
 * by the API under the state's read lock (state_read.h). Scores are stored
 * as log2 at a fixed epoch (signals.h, wl_score_add), so the order does not
 * change as time passes and only a firing moves an organization.
 *
 * The order is that of the rank key (wl_rank_key: sortable score bits, then
 * the org id bytes), descending: a hot-list cursor is a rank key, as it was
 * when the rank was a column family. Nothing of it is on disk: a load
 * builds it again from the organizations' records, whose score the
 * checkpoint writes.
 *
 * Node heights come from a generator seeded at random, so no choice of org
 * ids by a sender makes the list degenerate: O(log n) expected per insert
 * and seek, O(1) per removal, about 60 bytes per ranked organization. Writer thread
 * for changes; readers hold the state's read lock. */
#ifndef WL_RANK_H
#define WL_RANK_H

#include <stddef.h>
#include <stdint.h>

#define WL_RANK_LEVELS 16 /* 4^16 organizations before the list grows slower */

/* Each level links both ways, so that an organization leaves (and moves)
 * without a search from the top: its old place, deep in a long list, is
 * where the cache misses were. A link also holds the next node's score
 * bits, so that a search reads a node only to step onto it. */
struct wl_rank_link {
    struct wl_rank_node *next, *prev; /* prev NULL: the head */
    uint64_t next_bits;               /* next's bits (next NULL: 0) */
};

struct wl_rank_node {
    uint64_t bits;       /* the score's sortable bits (the rank key's first 8 bytes) */
    const uint8_t *id;   /* the organization's id, in its record (stable) */
    uint8_t id_len;
    uint8_t height;
    struct wl_rank_link lv[]; /* height of them */
};

struct wl_rank {
    struct wl_rank_link head[WL_RANK_LEVELS]; /* next: the highest at that level */
    int level;          /* levels in use */
    uint64_t n;
    uint64_t rng;
};

void wl_rank_init(struct wl_rank *r);
/* Frees every node. */
void wl_rank_free(struct wl_rank *r);

/* Puts the organization (id, stable while it is ranked) at score_log2; *node
 * is its node (NULL: not ranked yet), moved or made. */
void wl_rank_set(struct wl_rank *r, struct wl_rank_node **node, double score_log2,
                 const uint8_t *id, size_t id_len);
/* One organization of wl_rank_set_many. */
struct wl_rank_move {
    struct wl_rank_node **node;
    double score_log2;
    const uint8_t *id;
    size_t id_len;
    uint64_t bits; /* wl_rank_set_many's */
};

/* What wl_rank_set does for each of n organizations (distinct), faster
 * when many move at once: they leave their places first, then go in in key
 * order, each search starting from where the last one went (its path: a
 * finger) rather than from the top, so that moving k of n organizations
 * costs about k log(n/k) steps, not k log n. Reorders moves. */
void wl_rank_set_many(struct wl_rank *r, struct wl_rank_move *moves, size_t n);

/* Takes it out (*node NULL after; nothing when it is not ranked). */
void wl_rank_remove(struct wl_rank *r, struct wl_rank_node **node);

/* The first node strictly after the rank key (below it in score order);
 * key NULL: the top. The next below a node: node->lv[0].next. */
const struct wl_rank_node *wl_rank_after(const struct wl_rank *r, const uint8_t *key,
                                         size_t klen);

/* The rank key of a score: sortable big-endian bits of score_log2, then
 * the org id; out needs 8 + WL_ORG_ID_MAX bytes. Returns its length. */
size_t wl_rank_key(double score_log2, const uint8_t *org, size_t org_len, uint8_t *out);

/* The node's rank key into out (8 + WL_ORG_ID_MAX bytes); its length. */
size_t wl_rank_node_key(const struct wl_rank_node *n, uint8_t *out);

#endif
