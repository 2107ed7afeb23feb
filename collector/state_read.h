/* The writer's state read by other threads: the API answers hot accounts
 * and accounts from memory, so every acked ping is visible to the next
 * query without waiting for a checkpoint (collector/README.md, "Reads").
 *
 * The mechanism is a read-write lock around memory. The writer holds it
 * only while it changes memory: a run of at most 64 wire pings applied
 * (writer.c, APPLY_RUN: taken once a ping, the lock alone was 2% of the
 * collector), one edge ping, time advanced, a commit, a forget's memory
 * step, a state swapped in after a reload; never
 * across a write to disk, a checkpoint's write or a reopen. A reader holds
 * it only while it packs one record from memory (microseconds), into a
 * buffer of its own. Chosen over the two other ways:
 *   - queries as jobs on the writer's queue: a read would wait behind a
 *     group's write, a checkpoint and a disk-full reopen;
 *   - a snapshot the writer publishes: a copy of the state, or
 *     copy-on-write in every structure, against 300 B per install.
 * The lock prefers the writer, so a stream of readers cannot stall ingest.
 *
 * What a reader sees is the writer's memory: a ping is visible once it is
 * applied, a moment before its group's write returns and its ack goes; a
 * write that fails rolls memory back to what is on disk (writer.c,
 * recover_after_failed_write). */
#ifndef WL_STATE_READ_H
#define WL_STATE_READ_H

#include <stddef.h>
#include <stdint.h>

#include "records.pb-c.h"
#include "storage/keys.h"

struct wl_state;
struct wl_state_reader;

struct wl_state_reader *wl_state_reader_new(void);
void wl_state_reader_free(struct wl_state_reader *r);

/* ---- the writer's side ---- */

/* The state readers read (NULL: none, while it loads): the old one is no
 * longer read when this returns, so the writer may free it. */
void wl_state_reader_set(struct wl_state_reader *r, struct wl_state *st);
/* Around every change the writer makes to the state's memory. */
void wl_state_change_begin(struct wl_state_reader *r);
void wl_state_change_end(struct wl_state_reader *r);

/* ---- the readers' side: any thread ----
 * Each returns 0 with a record the caller frees (..._free_unpacked), or
 * -ENOENT when memory does not hold it, -EAGAIN when there is no state to
 * read (the collector is loading): the caller reads the store. */

/* The organization's record as the next checkpoint would write it. */
int wl_state_read_org(struct wl_state_reader *r, const uint8_t *org, size_t org_len,
                      Warmline__Store__V1__OrgState **out);

/* The install's record as the next checkpoint would write it: its latest
 * ping is the log's, at last_ingest_seq (wl_latest_ping_read). */
int wl_state_read_install(struct wl_state_reader *r, const char *id,
                          Warmline__Store__V1__InstallState **out);

/* What memory holds of an organization's signals (signals.h): the ids not
 * yet in the org_signals index, and of those the ones whose group is not
 * yet written, packed (the store has the others). gen changes whenever ids
 * leave memory for the index: an index read begun before that change may
 * miss them, so a reader reads the index again (api_records.h). */
struct wl_signals_mem {
    uint64_t *ids;          /* n of them, ascending */
    size_t n;
    uint64_t gen;
    uint64_t *pend_ids;     /* n_pend of them: each packed at pend_off[i] in pend */
    size_t *pend_off;
    size_t n_pend;
    uint8_t *pend;
    size_t pend_len;
};
/* 0 (with nothing when memory does not hold the organization), -EAGAIN
 * when there is no state, -ENOMEM. Free with wl_signals_mem_free. */
int wl_state_read_signals(struct wl_state_reader *r, const uint8_t *org, size_t org_len,
                          struct wl_signals_mem *out);
void wl_signals_mem_free(struct wl_signals_mem *m);

/* The rank (rank.h), a piece at a time: up to max rank keys (8 + org id,
 * WL_RANK_KEY_MAX bytes each, lens[i] long) strictly below after (a rank
 * key; after_len 0: from the top), into keys. Returns how many (0: no
 * more), or -EAGAIN when there is no state to read. */
#define WL_RANK_KEY_MAX (8 + WL_ORG_ID_MAX)
int wl_state_read_rank(struct wl_state_reader *r, const uint8_t *after, size_t after_len,
                       uint8_t (*keys)[WL_RANK_KEY_MAX], uint8_t *lens, size_t max);

/* When one of the organization's rules last fired (unix ms, the firing's
 * event time; 0: never), the latest of all its rules with rule NULL: what
 * the hot list filters on, at a cost that does not grow with the
 * organization's history. 0, -ENOENT when memory does not hold the
 * organization, -EAGAIN when there is no state. A rule no longer in the
 * configuration has no state: 0. */
int wl_state_read_last_fired(struct wl_state_reader *r, const uint8_t *org, size_t org_len,
                             const char *rule, int64_t *at);

/* Where the state stands. */
struct wl_state_position {
    uint64_t ingest_seq;         /* the last ping applied */
    uint64_t checkpoint_seq;     /* the ingest sequence the records on disk are exact for */
    int64_t checkpoint_at;       /* unix ms of that checkpoint (0: none since the start) */
};
int wl_state_read_position(struct wl_state_reader *r, struct wl_state_position *out);

#endif
