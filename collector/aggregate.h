/* Aggregate state, owned by the writer thread alone: the latest state of
 * every install and the totals of every organization, in memory, so that
 * the hot path never reads the database. Changes are staged per group and
 * written by wl_state_flush into the group's one atomic batch. */
#ifndef WL_AGGREGATE_H
#define WL_AGGREGATE_H

#include <stdint.h>

#include "ping.h"
#include "storage/keys.h"
#include "storage/store.h"

struct wl_state;

enum wl_apply { WL_APPLY_ACCEPTED = 0, WL_APPLY_DUPLICATE = 1 };

/* Rebuilds the state from the installs column family and meta. */
int wl_state_load(struct wl_store *store, struct wl_state **out, char *err, size_t errlen);
void wl_state_free(struct wl_state *st);

/* Applies one valid ping received at received_at (unix ms): a duplicate when
 * its seq is at or below the install's last seq; otherwise the ping gets the
 * next ingest sequence, is put into batch, and its install and organization
 * are updated and marked dirty. The ping must stay alive until the flush. */
enum wl_apply wl_state_apply(struct wl_state *st, const wl_ping *ping, int64_t received_at,
                             struct wl_batch *batch);

/* Puts every dirty install and organization, and the ingest sequence, into
 * batch. Call once per group, before the write. */
void wl_state_flush(struct wl_state *st, struct wl_batch *batch);

/* After the write: forget the group's staging (the records are durable). */
void wl_state_commit(struct wl_state *st);

/* The last ingest sequence handed out. */
uint64_t wl_state_ingest_seq(const struct wl_state *st);

/* Installs and organizations held. */
uint64_t wl_state_n_installs(const struct wl_state *st);
uint64_t wl_state_n_orgs(const struct wl_state *st);

#endif
