/* Sinks: one thread that delivers signals from the durable signal log (the
 * signals column family) to the configured destinations, in id order, and
 * persists how far each got, so a restart neither loses nor re-sends a
 * delivered signal. A slow or dead destination never slows ingest: the
 * writer only nudges the thread. */
#ifndef WL_SINKS_H
#define WL_SINKS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "storage/store.h"

struct wl_sinks;

/* Starts the thread when any sink is configured (else *out = NULL and 0).
 * Reads the cursors from the meta column family. */
int wl_sinks_start(const struct wl_config *cfg, struct wl_store *store, struct wl_sinks **out,
                   char *err, size_t errlen);

/* Tells the thread that signals up to last_id are durable (any thread).
 * NULL is a no-op. */
void wl_sinks_notify(struct wl_sinks *s, uint64_t last_id);

/* Stops the thread: an attempt in progress finishes or times out; what is
 * not delivered stays in the log for the next start. NULL is a no-op. */
void wl_sinks_stop(struct wl_sinks *s);

#endif
