/* Quarantine: a bounded, rate-limited sample of rejected input with its
 * reason, kept in its own column family for people to look at. Used by the
 * writer thread only. */
#ifndef WL_QUARANTINE_H
#define WL_QUARANTINE_H

#include <stddef.h>
#include <stdint.h>

#include "reasons.h"
#include "storage/store.h"

struct wl_quarantine {
    uint64_t seq;          /* last sequence written */
    uint64_t max_records;  /* older records are deleted past this many */
    uint64_t per_second;   /* samples kept per second at most */
    int64_t window_start;  /* unix seconds of the current rate window */
    uint64_t in_window;
};

/* Reads where the sequence stands from the column family's last key. */
int wl_quarantine_init(struct wl_quarantine *q, struct wl_store *store, uint64_t max_records,
                       uint64_t per_second, char *err, size_t errlen);

/* Puts one sample into batch unless the rate or the size says no; returns 1
 * when it kept it. sample_len <= input_len: input_len is what arrived. */
int wl_quarantine_add(struct wl_quarantine *q, struct wl_batch *batch, int64_t now_ms,
                      enum wl_reason reason, const char *peer, const char *transport,
                      const uint8_t *sample, size_t sample_len, size_t input_len);

#endif
