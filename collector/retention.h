/* Retention: raw pings received more than retention_days ago are deleted
 * in the background, by a thread of its own, without blocking ingest.
 *
 * Ping keys are big-endian ingest sequences, and sequences grow with
 * receive time, so the pings to delete are the front of the column family.
 * Every retention_check_ms (and once at start) a binary search over the
 * keys (a few dozen seeks) finds the first ping received at or after the
 * cutoff, and one range delete removes everything before it. The writer
 * only ever writes keys above the last one, so this write and the writer's
 * never touch the same keys. Install, organization and daily state are
 * not touched: only the raw pings go. */
#ifndef WL_RETENTION_H
#define WL_RETENTION_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "storage/store.h"

struct wl_retention;

/* Starts the thread. With retention_days 0 raw pings are kept; the thread
 * still sweeps the Rudder messageIds past msgid_ttl_ms or msgid_max_bytes
 * (msgids.h) on the same schedule. */
int wl_retention_start(const struct wl_config *cfg, struct wl_store *store,
                       struct wl_retention **out, char *err, size_t errlen);

/* Stops the thread (a pass in progress finishes) and frees. NULL: no-op. */
void wl_retention_stop(struct wl_retention *r);

/* One pass (any thread): deletes the pings received before cutoff_ms.
 * *deleted: how many sequences the range covered (0: nothing to delete);
 * *up_to: the last sequence deleted. Returns 0 or a negative code. */
int wl_retention_run(struct wl_store *store, int64_t cutoff_ms, uint64_t *deleted,
                     uint64_t *up_to, char *err, size_t errlen);

#endif
