/* Ack latency histogram: fixed memory however long the run. */
#include "loadgen.h"


static size_t bucket_of(uint64_t v)
{
    if (v < 2 * LG_HIST_SUB)
        return (size_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v); /* >= 7 */
    unsigned shift = msb - 6;                          /* keeps 7 significant bits */
    return 2 * LG_HIST_SUB + (size_t)(shift - 1) * LG_HIST_SUB +
           (size_t)((v >> shift) - LG_HIST_SUB);
}

/* The middle of bucket b's range. */
static uint64_t value_of(size_t b)
{
    if (b < 2 * LG_HIST_SUB)
        return b;
    size_t k = b - 2 * LG_HIST_SUB;
    unsigned shift = (unsigned)(k / LG_HIST_SUB) + 1;
    uint64_t low = (uint64_t)(LG_HIST_SUB + k % LG_HIST_SUB) << shift;
    return low + ((1ULL << shift) >> 1);
}

void lg_hist_add(struct lg_hist *h, uint64_t us)
{
    h->count[bucket_of(us)]++;
    h->n++;
    if (us > h->max)
        h->max = us;
}

void lg_hist_merge(struct lg_hist *into, const struct lg_hist *from)
{
    for (size_t b = 0; b < LG_HIST_BUCKETS; b++)
        into->count[b] += from->count[b];
    into->n += from->n;
    if (from->max > into->max)
        into->max = from->max;
}

uint64_t lg_hist_quantile(const struct lg_hist *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->n + 0.999999); /* ceil, at least 1 */
    if (rank < 1)
        rank = 1;
    if (rank > h->n)
        rank = h->n;
    uint64_t seen = 0;
    for (size_t b = 0; b < LG_HIST_BUCKETS; b++) {
        seen += h->count[b];
        if (seen >= rank) {
            uint64_t v = value_of(b);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}
