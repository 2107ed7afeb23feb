#include "checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "records.pb-c.h"
#include "storage/keys.h"

/* A big-endian u64 meta value: 0 (*have 1), 0 with *have 0 when absent, or
 * a negative errno. */
static int meta_u64(struct wl_store *store, const struct wl_snapshot *snap, const char *name,
                    uint64_t *out, int *have, char *err, size_t errlen)
{
    char *val = NULL;
    size_t vlen = 0;
    int rc = wl_store_get_at(store, snap, WL_CF_META, name, strlen(name), &val, &vlen, err,
                             errlen);
    *have = 0;
    if (rc == -ENOENT)
        return 0;
    if (rc != 0)
        return rc;
    if (vlen != 8) {
        snprintf(err, errlen, "meta %s: %zu bytes, not a big-endian 64-bit number", name, vlen);
        free(val);
        return -EINVAL;
    }
    *out = wl_be64_get(val);
    *have = 1;
    free(val);
    return 0;
}

static int64_t earliest(const Warmline__Store__V1__StoredPing *p)
{
    int64_t t = p->received_at;
    if (p->event_at > 0 && (t <= 0 || p->event_at < t))
        t = p->event_at;
    return t > 0 ? t : 1; /* a ping with no time still says "not whole yet" */
}

/* The pings after cp->seq: the first one's time, and how many when count. */
static int scan_after(struct wl_store *store, const struct wl_snapshot *snap, int count,
                      struct wl_checkpoint *cp, char *err, size_t errlen)
{
    uint8_t k8[8];
    size_t klen, vlen;
    int rc = 0;
    struct wl_iter *it = wl_iter_new_at(store, snap, WL_CF_PINGS);

    if (it == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    wl_be64_put(k8, cp->seq + 1);
    wl_iter_seek(it, k8, 8);
    if (wl_iter_valid(it)) {
        const char *key = wl_iter_key(it, &klen);
        const char *val = wl_iter_value(it, &vlen);
        Warmline__Store__V1__StoredPing *p =
            warmline__store__v1__stored_ping__unpack(NULL, vlen, (const uint8_t *)val);
        if (p == NULL) {
            snprintf(err, errlen, "pings: the record at ingest_seq %llu does not decode",
                     klen == 8 ? (unsigned long long)wl_be64_get(key) : 0ULL);
            rc = -EINVAL;
            goto done;
        }
        cp->first_after_at = earliest(p);
        warmline__store__v1__stored_ping__free_unpacked(p, NULL);
    }
    if (count) {
        cp->pings_after = 0;
        for (; wl_iter_valid(it); wl_iter_next(it))
            cp->pings_after++;
    }
    if (wl_iter_status(it, err, errlen) != 0)
        rc = -EIO;
done:
    wl_iter_free(it);
    return rc;
}

int wl_checkpoint_read(struct wl_store *store, const struct wl_snapshot *snap, int count,
                       struct wl_checkpoint *out, char *err, size_t errlen)
{
    uint64_t ingest = 0, seq = 0, at = 0, last = 0;
    int have_ingest, have_seq, have_at, rc;

    memset(out, 0, sizeof *out);
    if ((rc = meta_u64(store, snap, WL_META_INGEST_SEQ, &ingest, &have_ingest, err, errlen)) ||
        (rc = meta_u64(store, snap, WL_META_STATE_SEQ, &seq, &have_seq, err, errlen)) ||
        (rc = meta_u64(store, snap, WL_META_STATE_AT, &at, &have_at, err, errlen)))
        return rc;
    if (wl_store_last_seq(store, snap, WL_CF_PINGS, &last, err, errlen) != 0)
        return -EIO;
    if (last > ingest)
        ingest = last;
    out->ingest_seq = ingest;
    /* No state_seq: a store from before checkpoints, exact at ingest_seq. */
    out->seq = have_seq && seq < ingest ? seq : ingest;
    out->at = have_at && at <= INT64_MAX ? (int64_t)at : 0;
    out->pings_after = out->ingest_seq - out->seq;
    if (out->seq < out->ingest_seq)
        return scan_after(store, snap, count, out, err, errlen);
    return 0;
}

const char *wl_checkpoint_iso(int64_t ms, char *out, size_t outlen)
{
    struct tm tm;
    time_t t = (time_t)(ms / 1000);
    out[0] = '\0';
    if (ms <= 0 || gmtime_r(&t, &tm) == NULL)
        return out;
    size_t n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n > 0)
        snprintf(out + n, outlen - n, ".%03dZ", (int)(ms % 1000));
    return out;
}
