#include "rank.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "storage/keys.h"

void wl_rank_init(struct wl_rank *r)
{
    memset(r, 0, sizeof *r);
    if (getrandom(&r->rng, sizeof r->rng, 0) != (ssize_t)sizeof r->rng)
        r->rng = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
    r->rng |= 1; /* xorshift never leaves 0 */
}

void wl_rank_free(struct wl_rank *r)
{
    struct wl_rank_node *n = r->head[0].next;
    while (n != NULL) {
        struct wl_rank_node *next = n->lv[0].next;
        free(n);
        n = next;
    }
    memset(r->head, 0, sizeof r->head);
    r->level = 0;
    r->n = 0;
}

/* Levels: each one more with probability 1/4. */
static int random_height(struct wl_rank *r)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    uint64_t x = r->rng;
    int h = 1;
    while (h < WL_RANK_LEVELS && (x & 3) == 0) {
        h++;
        x >>= 2;
    }
    return h;
}

/* The rank keys' order (memcmp of bits then id, the shorter first): <0,
 * 0, >0 as node n sorts before, with, after (bits, id). */
static int key_cmp(const struct wl_rank_node *n, uint64_t bits, const uint8_t *id, size_t len)
{
    if (n->bits != bits)
        return n->bits < bits ? -1 : 1;
    size_t m = n->id_len < len ? n->id_len : len;
    int c = memcmp(n->id, id, m);
    if (c != 0)
        return c;
    return n->id_len < len ? -1 : n->id_len > len;
}

static struct wl_rank_link *link_at(struct wl_rank *r, struct wl_rank_node *x, int i)
{
    return x != NULL ? &x->lv[i] : &r->head[i];
}

/* Of two nodes above a key (NULL: the head), the one nearer to it: the
 * lower key. */
static struct wl_rank_node *nearer(struct wl_rank_node *a, struct wl_rank_node *b)
{
    if (a == NULL)
        return b;
    if (b == NULL)
        return a;
    return key_cmp(a, b->bits, b->id, b->id_len) < 0 ? a : b;
}

/* The list runs from the highest key down: at each level, the last node
 * whose key is above (bits, id), or at or above with or_equal; NULL for
 * the head. finger (or NULL): nodes above the key, per level, that each
 * level's search may start from when nearer than where the level above
 * left off (wl_rank_set_many: the last insert's path). */
static void find(const struct wl_rank *r, uint64_t bits, const uint8_t *id, size_t len,
                 int or_equal, struct wl_rank_node *const *finger, struct wl_rank_node **prev)
{
    struct wl_rank_node *x = NULL;
    for (int i = r->level - 1; i >= 0; i--) {
        if (finger != NULL)
            x = nearer(x, finger[i]);
        for (;;) {
            const struct wl_rank_link *l = x != NULL ? &x->lv[i] : &r->head[i];
            if (l->next == NULL || l->next_bits < bits)
                break;
            if (l->next_bits == bits) { /* a tie: the ids decide */
                int c = key_cmp(l->next, bits, id, len);
                if (c < 0 || (c == 0 && !or_equal))
                    break;
            }
            x = l->next;
        }
        prev[i] = x;
    }
}

/* IEEE-754 doubles sort as integers once negatives are flipped whole and
 * positives have their sign bit set. */
static uint64_t score_bits(double score_log2)
{
    uint64_t bits;
    memcpy(&bits, &score_log2, sizeof bits);
    return (bits >> 63) ? ~bits : bits | (1ULL << 63);
}

size_t wl_rank_key(double score_log2, const uint8_t *org, size_t org_len, uint8_t *out)
{
    wl_be64_put(out, score_bits(score_log2));
    memcpy(out + 8, org, org_len);
    return 8 + org_len;
}

void wl_rank_remove(struct wl_rank *r, struct wl_rank_node **node)
{
    struct wl_rank_node *n = *node;
    if (n == NULL)
        return;
    for (int i = 0; i < n->height; i++) {
        struct wl_rank_node *next = n->lv[i].next, *prev = n->lv[i].prev;
        struct wl_rank_link *l = link_at(r, prev, i);
        l->next = next;
        l->next_bits = n->lv[i].next_bits;
        if (next != NULL)
            next->lv[i].prev = prev;
    }
    while (r->level > 0 && r->head[r->level - 1].next == NULL)
        r->level--;
    r->n--;
    free(n);
    *node = NULL;
}

/* A new node for (bits, id), linked after prev[i] at each of its levels
 * (prev from find; those past the list's levels are set here). */
static struct wl_rank_node *insert(struct wl_rank *r, uint64_t bits, const uint8_t *id,
                                   size_t id_len, struct wl_rank_node **prev)
{
    int h = random_height(r);
    struct wl_rank_node *n = malloc(sizeof *n + (size_t)h * sizeof n->lv[0]);
    if (n == NULL)
        abort(); /* out of memory in the writer */
    n->bits = bits;
    n->id = id;
    n->id_len = (uint8_t)id_len;
    n->height = (uint8_t)h;
    for (int i = r->level; i < h; i++)
        prev[i] = NULL;
    if (h > r->level)
        r->level = h;
    for (int i = 0; i < h; i++) {
        struct wl_rank_link *l = link_at(r, prev[i], i);
        n->lv[i] = (struct wl_rank_link){l->next, prev[i], l->next_bits};
        if (l->next != NULL)
            l->next->lv[i].prev = n;
        l->next = n;
        l->next_bits = bits;
    }
    r->n++;
    return n;
}

void wl_rank_set(struct wl_rank *r, struct wl_rank_node **node, double score_log2,
                 const uint8_t *id, size_t id_len)
{
    struct wl_rank_node *prev[WL_RANK_LEVELS];
    uint64_t bits = score_bits(score_log2);
    if (*node != NULL && (*node)->bits == bits)
        return;
    wl_rank_remove(r, node);
    find(r, bits, id, id_len, 0, NULL, prev);
    *node = insert(r, bits, id, id_len, prev);
}

/* Descending key order: the list's. */
static int move_cmp(const void *x, const void *y)
{
    const struct wl_rank_move *a = x, *b = y;
    if (a->bits != b->bits)
        return a->bits > b->bits ? -1 : 1;
    size_t m = a->id_len < b->id_len ? a->id_len : b->id_len;
    int c = memcmp(a->id, b->id, m);
    if (c != 0)
        return -c;
    return a->id_len > b->id_len ? -1 : a->id_len < b->id_len;
}

void wl_rank_set_many(struct wl_rank *r, struct wl_rank_move *moves, size_t n)
{
    struct wl_rank_node *finger[WL_RANK_LEVELS] = {0}, *prev[WL_RANK_LEVELS];
    size_t k = 0;

    /* every one leaves first: no node a finger holds goes later */
    for (size_t i = 0; i < n; i++) {
        uint64_t bits = score_bits(moves[i].score_log2);
        if (*moves[i].node != NULL && (*moves[i].node)->bits == bits)
            continue; /* where it is */
        wl_rank_remove(r, moves[i].node);
        moves[k] = moves[i];
        moves[k++].bits = bits;
    }
    if (k > 1)
        qsort(moves, k, sizeof *moves, move_cmp);
    for (size_t j = 0; j < k; j++) {
        const struct wl_rank_move *m = &moves[j];
        /* the last insert's path is above this key: the moves go descending */
        find(r, m->bits, m->id, m->id_len, 0, finger, prev);
        struct wl_rank_node *nd = insert(r, m->bits, m->id, m->id_len, prev);
        for (int i = 0; i < r->level; i++)
            finger[i] = i < nd->height ? nd : prev[i];
        *m->node = nd;
    }
}

const struct wl_rank_node *wl_rank_after(const struct wl_rank *r, const uint8_t *key,
                                         size_t klen)
{
    struct wl_rank_node *prev[WL_RANK_LEVELS];
    if (key == NULL || klen < 8)
        return r->head[0].next;
    find(r, wl_be64_get(key), key + 8, klen - 8, 1, NULL, prev);
    if (r->level == 0)
        return NULL;
    return prev[0] != NULL ? prev[0]->lv[0].next : r->head[0].next;
}

size_t wl_rank_node_key(const struct wl_rank_node *n, uint8_t *out)
{
    wl_be64_put(out, n->bits);
    memcpy(out + 8, n->id, n->id_len);
    return 8 + (size_t)n->id_len;
}
