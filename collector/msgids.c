/* The Rudder messageIds seen: keyed digests under their install. */
#include "msgids.h"

#include <errno.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/keys.h"

static const char META_MSGID_KEY[] = "msgid_key";

#define SWEEP_WRITE_MAX 10000

/* Bytes the writer has put into WL_CF_MSGIDS since the process started. */
static _Atomic uint64_t bytes_added;

/* The group's ids: an open-addressing set of their keys' digests (uniform
 * already: keyed BLAKE2b), emptied after each group's write. */
struct wl_msgids {
    struct wl_store *store;
    uint8_t key[crypto_generichash_KEYBYTES];
    uint8_t (*set)[WL_MSGID_DIGEST + 1];    /* digest + a used byte */
    size_t n, cap;
};

int wl_msgids_open(struct wl_store *store, struct wl_msgids **out, char *err, size_t errlen)
{
    struct wl_msgids *m = calloc(1, sizeof *m);
    char *val = NULL;
    size_t vlen = 0;
    int rc;

    if (m == NULL)
        return -ENOMEM;
    m->store = store;
    rc = wl_store_get(store, WL_CF_META, META_MSGID_KEY, sizeof META_MSGID_KEY - 1, &val, &vlen,
                      err, errlen);
    if (rc == 0 && vlen == sizeof m->key) {
        memcpy(m->key, val, sizeof m->key);
    } else if (rc == 0 || rc == -ENOENT) {
        struct wl_batch *b = wl_batch_new(store);
        randombytes_buf(m->key, sizeof m->key);
        rc = b == NULL ? -ENOMEM : 0;
        if (b != NULL) {
            wl_batch_put(b, WL_CF_META, META_MSGID_KEY, sizeof META_MSGID_KEY - 1, m->key,
                         sizeof m->key);
            rc = wl_store_write(store, b, 1, err, errlen);
            wl_batch_free(b);
        }
    }
    if (val != NULL) {
        sodium_memzero(val, vlen);
        free(val);
    }
    if (rc != 0) {
        wl_msgids_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void wl_msgids_free(struct wl_msgids *m)
{
    if (m == NULL)
        return;
    sodium_memzero(m->key, sizeof m->key);
    free(m->set);
    free(m);
}

static size_t prefix(uint8_t *out, const char *install, size_t ilen)
{
    out[0] = (uint8_t)ilen;
    memcpy(out + 1, install, ilen);
    return 1 + ilen;
}

/* The slot of digest d in the group's set (its own, or the empty one it
 * would take). */
static uint8_t *slot(struct wl_msgids *m, const uint8_t *d)
{
    uint32_t h;
    memcpy(&h, d, sizeof h);
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        uint8_t *e = m->set[i];
        if (!e[WL_MSGID_DIGEST] || memcmp(e, d, WL_MSGID_DIGEST) == 0)
            return e;
    }
}

/* The group set's key for k: its digest mixed with the install's bytes
 * (two installs may send one messageId). */
static void group_digest(const struct wl_msgid_key *k, uint8_t d[WL_MSGID_DIGEST])
{
    crypto_generichash(d, WL_MSGID_DIGEST, k->b, k->len, NULL, 0);
}

int wl_msgids_check(struct wl_msgids *m, const char *install, size_t ilen, const char *msgid,
                    size_t mlen, struct wl_msgid_key *k)
{
    char *val = NULL, err[256];
    size_t vlen = 0;
    uint8_t d[WL_MSGID_DIGEST];

    if (ilen > 64)
        return -EINVAL;
    k->len = prefix(k->b, install, ilen);
    crypto_generichash(k->b + k->len, WL_MSGID_DIGEST, (const uint8_t *)msgid, mlen, m->key,
                       sizeof m->key);
    k->len += WL_MSGID_DIGEST;
    if (m->n > 0) {
        group_digest(k, d);
        if (slot(m, d)[WL_MSGID_DIGEST])
            return 1;
    }
    int rc = wl_store_get(m->store, WL_CF_MSGIDS, k->b, k->len, &val, &vlen, err, sizeof err);
    free(val);
    if (rc == 0)
        return 1;
    return rc == -ENOENT ? 0 : -EIO;
}

void wl_msgids_add(struct wl_msgids *m, const struct wl_msgid_key *k, int64_t now_ms,
                   struct wl_batch *batch)
{
    uint8_t v[8], d[WL_MSGID_DIGEST];

    wl_be64_put(v, (uint64_t)now_ms);
    wl_batch_put(batch, WL_CF_MSGIDS, k->b, k->len, v, sizeof v);
    atomic_fetch_add_explicit(&bytes_added, k->len + sizeof v, memory_order_relaxed);
    if (2 * (m->n + 1) > m->cap) { /* at most half full */
        size_t cap = m->cap ? 2 * m->cap : 64;
        uint8_t(*old)[WL_MSGID_DIGEST + 1] = m->set;
        size_t old_cap = m->cap;
        m->set = calloc(cap, sizeof *m->set);
        if (m->set == NULL)
            abort(); /* as the state's tables: the writer cannot go on without memory */
        m->cap = cap;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i][WL_MSGID_DIGEST])
                memcpy(slot(m, old[i]), old[i], WL_MSGID_DIGEST + 1);
        free(old);
    }
    group_digest(k, d);
    uint8_t *e = slot(m, d);
    if (!e[WL_MSGID_DIGEST]) {
        memcpy(e, d, WL_MSGID_DIGEST);
        e[WL_MSGID_DIGEST] = 1;
        m->n++;
    }
}

uint64_t wl_msgids_bytes_added(void)
{
    return atomic_load_explicit(&bytes_added, memory_order_relaxed);
}

void wl_msgids_group_done(struct wl_msgids *m)
{
    if (m->n == 0)
        return;
    memset(m->set, 0, m->cap * sizeof *m->set);
    m->n = 0;
}

void wl_msgids_forget_install(struct wl_batch *batch, const char *install, size_t ilen)
{
    uint8_t begin[1 + 64], end[1 + 64 + WL_MSGID_DIGEST + 1];
    if (ilen > 64)
        return;
    size_t n = prefix(begin, install, ilen);
    memcpy(end, begin, n);
    memset(end + n, 0xff, WL_MSGID_DIGEST + 1); /* past every digest under the prefix */
    wl_batch_delete_range(batch, WL_CF_MSGIDS, begin, n, end, n + WL_MSGID_DIGEST + 1);
}

/* ---- the sweep ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* One pass: deletes ids seen before cutoff, and ties of them seen at
 * cutoff itself; with times != NULL, collects the times of the rest. */
static int sweep_pass(struct wl_store *store, const struct wl_snapshot *snap, uint64_t cutoff,
                      uint64_t ties, uint64_t **times, size_t *n_times,
                      struct wl_msgids_swept *out, uint64_t *deleted, char *err, size_t errlen)
{
    struct wl_iter *it = wl_iter_new_at(store, snap, WL_CF_MSGIDS);
    struct wl_batch *b = wl_batch_new(store);
    size_t cap = 0;
    int rc = 0;

    if (it == NULL || b == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    for (wl_iter_seek_first(it); wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen, vlen;
        const char *k = wl_iter_key(it, &klen);
        const char *v = wl_iter_value(it, &vlen);
        uint64_t at = vlen == 8 ? wl_be64_get(v) : 0; /* garbage counts as old */
        if (at < cutoff || (at == cutoff && ties > 0 && ties--)) {
            wl_batch_delete(b, WL_CF_MSGIDS, k, klen);
            (*deleted)++;
            if (wl_batch_count(b) >= SWEEP_WRITE_MAX) {
                if ((rc = wl_store_write(store, b, 0, err, errlen)) != 0)
                    goto done;
                wl_batch_clear(b);
            }
            continue;
        }
        out->kept++;
        out->kept_bytes += klen + vlen;
        if (times != NULL) {
            if (*n_times == cap) {
                size_t c = cap ? 2 * cap : 4096;
                uint64_t *t = realloc(*times, c * sizeof *t);
                if (t == NULL) {
                    rc = -ENOMEM;
                    goto done;
                }
                *times = t;
                cap = c;
            }
            (*times)[(*n_times)++] = at;
        }
    }
    if ((rc = wl_iter_status(it, err, errlen)) == 0 && wl_batch_count(b) > 0)
        rc = wl_store_write(store, b, 0, err, errlen);
done:
    wl_iter_free(it);
    wl_batch_free(b);
    return rc;
}

int wl_msgids_sweep(struct wl_store *store, int64_t now_ms, uint64_t ttl_ms, uint64_t max_bytes,
                    struct wl_msgids_swept *out, char *err, size_t errlen)
{
    uint64_t *times = NULL;
    size_t n = 0;
    uint64_t cutoff = (uint64_t)now_ms > ttl_ms ? (uint64_t)now_ms - ttl_ms : 0;

    /* Both passes read one snapshot: ids the writer adds meanwhile are not
     * what the first pass counted, and are not reported kept (the caller
     * counts bytes added from before the sweep began, so they are due next). */
    struct wl_snapshot *snap = wl_snapshot_new(store);
    if (snap == NULL) {
        snprintf(err, errlen, "no snapshot of the store (closed for a reopen, or out of memory)");
        return -EAGAIN;
    }
    memset(out, 0, sizeof *out);
    int rc = sweep_pass(store, snap, cutoff, 0, &times, &n, out, &out->expired, err, errlen);
    if (rc == 0 && out->kept_bytes > max_bytes && n > 0) {
        /* the oldest go until the rest fit: ids are about the same size,
         * so keep the newest max_bytes / (average bytes) of them */
        uint64_t avg = out->kept_bytes / n;
        size_t keep = (size_t)(max_bytes / (avg ? avg : 1));
        qsort(times, n, sizeof *times, cmp_u64);
        /* the newest keep stay: those before the oldest of them go, and as
         * many of its ties as are still too many */
        uint64_t evict_before = keep == 0 ? UINT64_MAX : keep < n ? times[n - keep] : 0;
        uint64_t older = 0;
        while (older < n && times[older] < evict_before)
            older++;
        uint64_t ties = keep < n && n - keep > older ? n - keep - older : 0;
        struct wl_msgids_swept second;
        memset(&second, 0, sizeof second);
        rc = sweep_pass(store, snap, evict_before, ties, NULL, NULL, &second, &out->evicted, err,
                        errlen);
        out->kept = second.kept;
        out->kept_bytes = second.kept_bytes;
    }
    wl_snapshot_free(snap);
    free(times);
    return rc;
}
