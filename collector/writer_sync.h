/* The syncer: one thread ("wl-syncer") that makes the write-ahead log
 * durable behind the writer when durability = sync (writer.c). The writer
 * writes each group with sync=0 and takes a ticket (wl_syncer_wrote); the
 * syncer runs wl_store_sync_wal, which covers every write that returned
 * before it began, and then calls synced(arg, upto, 0): the groups of
 * tickets 1..upto are durable. One sync covers every group written while the
 * last one ran (group commit), and the writer applies the next group while
 * it runs, instead of waiting for its own fsync.
 *
 * A failed sync calls synced(arg, last_good, rc) and syncs nothing more
 * until wl_syncer_reset: what was written since the last good sync is not
 * known durable, and only the writer can answer for it (writer.c,
 * recover_after_failed_sync).
 *
 * Threads: the callback runs on the syncer thread, with no lock of the
 * syncer held; every other call is the writer's (one thread). The tickets,
 * the last result and the stop flag are under the syncer's own lock. */
#ifndef WL_WRITER_SYNC_H
#define WL_WRITER_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "storage/store.h"

struct wl_syncer;

/* upto: the last ticket known durable; rc: 0, or the failed sync's -errno. */
typedef void (*wl_syncer_synced)(void *arg, uint64_t upto, int rc);

int wl_syncer_start(struct wl_store *store, wl_syncer_synced synced, void *arg,
                    struct wl_syncer **out, char *err, size_t errlen);

/* A write returned (or a group that wrote nothing wants the writes before
 * it durable): its ticket, 1, 2, ...; wakes the syncer. */
uint64_t wl_syncer_wrote(struct wl_syncer *s);

/* The last ticket taken. */
uint64_t wl_syncer_written(struct wl_syncer *s);

/* Waits until ticket is durable and the callback for it has returned: 0, or
 * the failed sync's -errno (with its reason in err) once a sync failed. */
int wl_syncer_wait(struct wl_syncer *s, uint64_t ticket, char *err, size_t errlen);

/* After a failure was answered for (the store reopened, every ticket taken
 * answered RETRY_LATER): counts every ticket taken as settled and syncs
 * again from the next. */
void wl_syncer_reset(struct wl_syncer *s);

/* Lets the sync under way (and the one its writes wait for) finish, ends
 * the thread, frees. NULL: nothing. */
void wl_syncer_stop(struct wl_syncer *s);

#endif
