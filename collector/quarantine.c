#include "quarantine.h"

#include <stdlib.h>

#include "records.pb-c.h"
#include "storage/keys.h"

int wl_quarantine_init(struct wl_quarantine *q, struct wl_store *store, uint64_t max_records,
                       uint64_t per_second, char *err, size_t errlen)
{
    q->max_records = max_records;
    q->per_second = per_second;
    q->window_start = 0;
    q->in_window = 0;
    return wl_store_last_seq(store, NULL, WL_CF_QUARANTINE, &q->seq, err, errlen);
}

int wl_quarantine_add(struct wl_quarantine *q, struct wl_batch *batch, int64_t now_ms,
                      enum wl_reason reason, const char *peer, const char *transport,
                      const uint8_t *sample, size_t sample_len, size_t input_len)
{
    Warmline__Store__V1__Quarantined rec = WARMLINE__STORE__V1__QUARANTINED__INIT;
    uint8_t key[8];

    if (q->max_records == 0)
        return 0;
    if (now_ms / 1000 != q->window_start) {
        q->window_start = now_ms / 1000;
        q->in_window = 0;
    }
    if (q->in_window >= q->per_second)
        return 0;
    q->in_window++;

    rec.seq = ++q->seq;
    rec.received_at = now_ms;
    rec.reason = (char *)wl_reason_name(reason);
    rec.peer = (char *)(peer ? peer : "");
    rec.transport = (char *)(transport ? transport : "");
    rec.sample.data = (uint8_t *)sample;
    rec.sample.len = sample_len;
    rec.sample_truncated_from = sample_len < input_len ? (uint32_t)input_len : 0;
    size_t n = warmline__store__v1__quarantined__get_packed_size(&rec);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return 0;
    warmline__store__v1__quarantined__pack(&rec, buf);
    wl_be64_put(key, rec.seq);
    wl_batch_put(batch, WL_CF_QUARANTINE, key, sizeof key, buf, n);
    free(buf);
    if (rec.seq > q->max_records) { /* keep the newest max_records */
        wl_be64_put(key, rec.seq - q->max_records);
        wl_batch_delete(batch, WL_CF_QUARANTINE, key, sizeof key);
    }
    return 1;
}
