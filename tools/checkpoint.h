/* Where the stored state records stand: the checkpoint they are exact for,
 * read from one view of the store (a secondary instance, or a snapshot).
 * The collector keeps installs, organizations and current days in memory
 * and writes them only at checkpoints (collector/writer.c, "Checkpoints"),
 * so `warmline dump` and `warmline export` say which checkpoint the
 * records they print are from, and the derived exports (daily, accounts)
 * never move a cursor past what the records hold.
 *
 * Reads the meta keys of storage/keys.h (ingest_seq, state_seq, state_at)
 * and the pings stored after state_seq. A store from before checkpoints
 * (no state_seq) wrote its state with every group: its records are exact
 * at its ingest_seq. Runs on the caller's thread; no state of its own. */
#ifndef WL_TOOLS_CHECKPOINT_H
#define WL_TOOLS_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "storage/store.h"

struct wl_checkpoint {
    uint64_t ingest_seq;    /* the last ping stored: max(meta ingest_seq, the last key) */
    uint64_t seq;           /* the ingest sequence the state records are exact for */
    int64_t at;             /* unix ms that checkpoint was written; 0: not known (a store
                               before its first checkpoint, or from before checkpoints) */
    uint64_t pings_after;   /* pings stored after seq: in the collector's memory only */
    /* The earliest event time (min of received_at and event_at) of the first
     * ping stored after seq; 0 when there is none. Days that ended before it
     * (less a grace for pings still queued then) are whole in the records. */
    int64_t first_after_at;
};

/* Reads the checkpoint of one view (snap NULL: the store as opened). With
 * count, pings_after counts the stored pings past seq (a scan of keys, at
 * most one checkpoint window); without, it is ingest_seq - seq. 0, or a
 * negative errno with err filled (-EIO: the store failed; -EINVAL: a
 * meta value or the first ping after seq does not decode). */
int wl_checkpoint_read(struct wl_store *store, const struct wl_snapshot *snap, int count,
                       struct wl_checkpoint *out, char *err, size_t errlen);

/* unix ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (at least 32 bytes); ""
 * when ms is not above 0. Returns out. */
const char *wl_checkpoint_iso(int64_t ms, char *out, size_t outlen);

#endif
