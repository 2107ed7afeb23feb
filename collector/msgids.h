/* The Rudder messageIds seen (issue 13: a resent batch changes nothing and
 * yields no second signal). Each is kept as a keyed digest under its
 * install (WL_CF_MSGIDS: length byte, install id, 16-byte BLAKE2b of the
 * messageId keyed with a secret of the data directory's, meta
 * "msgid_key"), with the time it was first seen, written in the same atomic
 * write as the ping it came with: a crash keeps both or neither.
 *
 * Threads: the writer checks and adds (wl_msgids_check/add/group_done);
 * the retention thread sweeps (wl_msgids_sweep: expired ids, then the
 * oldest past the byte budget); a forget drops an install's ids with one
 * range delete (wl_msgids_forget_install, into the forget's write). */
#ifndef WL_MSGIDS_H
#define WL_MSGIDS_H

#include <stddef.h>
#include <stdint.h>

#include "storage/store.h"

#define WL_MSGID_DIGEST 16
#define WL_MSGID_KEY_MAX (1 + 64 + WL_MSGID_DIGEST)

struct wl_msgids;

/* One id's key in WL_CF_MSGIDS. */
struct wl_msgid_key {
    uint8_t b[WL_MSGID_KEY_MAX];
    size_t len;
};

/* Reads (or, the first time, creates and writes, synced) the data
 * directory's digest key. Returns 0 or a negative code with err. */
int wl_msgids_open(struct wl_store *store, struct wl_msgids **out, char *err, size_t errlen);
void wl_msgids_free(struct wl_msgids *m);

/* Fills k for (install, msgid) and returns 1 when it was seen (stored, or
 * added earlier in this group), 0 when not, -EIO when the store could not
 * be read (the caller refuses the ping for now). Writer thread. */
int wl_msgids_check(struct wl_msgids *m, const char *install, size_t ilen, const char *msgid,
                    size_t mlen, struct wl_msgid_key *k);

/* Puts k (first seen at now_ms) into batch and remembers it for the rest
 * of the group. */
void wl_msgids_add(struct wl_msgids *m, const struct wl_msgid_key *k, int64_t now_ms,
                   struct wl_batch *batch);

/* The group's write is done (or failed): forget what it added. */
void wl_msgids_group_done(struct wl_msgids *m);

/* Bytes put into WL_CF_MSGIDS since the process started (any thread): the
 * retention thread sweeps early when they would pass the budget. */
uint64_t wl_msgids_bytes_added(void);

/* Deletes every id of the install (one range delete) into batch. */
void wl_msgids_forget_install(struct wl_batch *batch, const char *install, size_t ilen);

/* What a sweep did. */
struct wl_msgids_swept {
    uint64_t kept, kept_bytes;      /* ids left, and their keys' and values' bytes */
    uint64_t expired;               /* older than ttl_ms */
    uint64_t evicted;               /* younger, but past max_bytes: the oldest first */
};

/* Deletes the ids first seen before now_ms - ttl_ms, then, while the rest
 * hold more than max_bytes (keys and values), the oldest. One pass over
 * the column family (bounded by the budget and what arrived since the last
 * sweep), in writes of at most 10,000 deletes. Any thread but the writer's
 * (its keys are the writer's too: a delete may race an id's first put only
 * for an id already expired). Returns 0 or a negative code with err. */
int wl_msgids_sweep(struct wl_store *store, int64_t now_ms, uint64_t ttl_ms, uint64_t max_bytes,
                    struct wl_msgids_swept *out, char *err, size_t errlen);

#endif
