/* Aggregate state, owned by the writer thread alone: the latest state of
 * every install and the account of every organization (totals over its
 * counting installs, versions, editions, features, daily history, rule
 * state and score), in memory, so that the hot path never reads the
 * database. Changes are staged into the group's one atomic batch.
 *
 * Time is event time: a live ping's receive time, an imported ping's
 * sent_at. The state's clock is the latest event time seen; an install
 * silent longer than install_ttl before the clock stops counting. */
#ifndef WL_AGGREGATE_H
#define WL_AGGREGATE_H

#include <stdint.h>

#include "ping.h"
#include "rules.h"
#include "storage/keys.h"
#include "storage/store.h"

struct wl_state;

/* Distinct features (and editions) an organization's tallies hold, past
 * which only those the rules test are tallied (the rest counted, see
 * wl_state_untallied): the cost of a ping never grows with what senders
 * made an organization run. */
#define WL_ORG_FEATURES_DEFAULT 256

struct wl_state_opts {
    uint64_t install_ttl_ms;
    uint64_t score_half_life_ms;
    uint32_t max_org_features;      /* 0: WL_ORG_FEATURES_DEFAULT */
    const struct wl_ruleset *rules; /* may be empty; must outlive the state */
};

enum wl_apply { WL_APPLY_ACCEPTED = 0, WL_APPLY_DUPLICATE = 1 };

/* An OrgState record lists at most this many install ids (installs_total
 * says how many there are). */
#define WL_ORG_INSTALL_IDS_MAX 1000

/* An organization record's install count, whichever version wrote it. */
#define WL_ORG_INSTALLS_TOTAL(rec)                                                         \
    ((rec)->installs_total > (rec)->n_install_ids ? (size_t)(rec)->installs_total           \
                                                  : (rec)->n_install_ids)

/* Rebuilds the state from the installs and orgs column families and meta,
 * then replays the pings stored after the state was last flushed (see
 * wl_state_flush): the state is then exact for every stored ping, and what
 * the replay changed is dirty, for the next flush. */
int wl_state_load(struct wl_store *store, const struct wl_state_opts *opts,
                  struct wl_state **out, char *err, size_t errlen);
void wl_state_free(struct wl_state *st);

/* Applies one valid ping: a duplicate when its seq is at or below the
 * install's last seq; otherwise the ping gets the next ingest sequence and
 * is put into batch, the clock advances to event_at (expiring silent
 * installs), its install and organization are updated, and the rules are
 * stepped for the organization (signals go into batch too). The ping must
 * stay alive until the flush. */
enum wl_apply wl_state_apply(struct wl_state *st, const wl_ping *ping, int64_t received_at,
                             int64_t event_at, struct wl_batch *batch);
/* The same, with the bytes the ping was decoded from (wire: ping decodes
 * from them, as wl_envelope_decode's do): its record keeps them as they
 * are, with no packing again. */
enum wl_apply wl_state_apply_wire(struct wl_state *st, const wl_ping *ping,
                                  const struct wl_ping_bytes *wire, int64_t received_at,
                                  int64_t event_at, struct wl_batch *batch);

/* Applies one valid edge ping (ping.h: a security check or a Rudder
 * event, carrying the fields edge->presence names). Its seq is assigned
 * here: the install's next edge seq, apart from the seq its wire pings
 * carry (an edge ping never makes a wire ping a duplicate). A security
 * check in the same hour as the install's last one is a duplicate. The
 * install's latest ping becomes its last one with those fields replaced
 * (read from its record when not in memory), and its organization follows
 * ping.h's precedence. The raw record keeps the ping as sent, its source
 * and presence, so a replay gives the same state. edge->msgid is the
 * writer's business (collector/msgids.h), not the state's. */
enum wl_apply wl_state_apply_edge(struct wl_state *st, const wl_ping *ping,
                                  const struct wl_edge *edge, int64_t received_at,
                                  int64_t event_at, struct wl_batch *batch);

/* The writer's next wire pings, before they are applied: their
 * install's and organization's hashes are computed and the table slots
 * they probe fetched while the pings before them are applied (the tables
 * outgrow the caches; a find was a cache miss or two). Call it for each
 * ping two before its apply (the elements are fetched a call later), NULL
 * when there is none; wl_state_prefetch_clear forgets them (at each
 * group's start and end: the hashes are kept by the pings' addresses,
 * which later pings may reuse). Optional: a ping never prefetched, or
 * whose hints were overwritten, is applied the same. */
void wl_state_prefetch(struct wl_state *st, const wl_ping *ping);
void wl_state_prefetch_clear(struct wl_state *st);

/* Advances the clock with no ping (time passing): expires silent installs
 * and steps the rules of the organizations that changed. Returns how many
 * installs stopped counting (0: nothing changed). */
uint64_t wl_state_advance(struct wl_state *st, int64_t now, struct wl_batch *batch);

/* Every group's write carries its raw pings and signals (put by apply and
 * advance) and the sequences: wl_state_stage puts the sequences. The
 * records of state (installs, organizations, current days) may lag: the
 * state is flushed when the writer chooses (wl_state_flush: every dirty
 * install, organization and day, the sequences, and the ingest sequence
 * the records are now exact for). A crash between flushes loses nothing:
 * the pings after that sequence are replayed at the next load. */
void wl_state_stage(struct wl_state *st, struct wl_batch *batch);
/* Returns how many records the flush put (installs, organizations, days). */
uint64_t wl_state_flush(struct wl_state *st, struct wl_batch *batch);

/* ---- checkpoints in slices (state_checkpoint.c) ----
 * A checkpoint of every record dirty now, written in place a slice per
 * group: begin puts the work aside (the dirty list starts again), each step
 * writes organizations with their changed installs and days, up to about
 * budget records, each as it is then. step returns 1 when its batch
 * completes the checkpoint (meta state_seq in it; *records: how many it
 * wrote). A whole flush (wl_state_flush) finishes one under way. left: about
 * how many records it has still to write. */
int wl_state_checkpoint_busy(const struct wl_state *st);
void wl_state_checkpoint_begin(struct wl_state *st, int64_t now, struct wl_batch *batch);
int wl_state_checkpoint_step(struct wl_state *st, size_t budget, struct wl_batch *batch,
                             uint64_t *records);
uint64_t wl_state_checkpoint_left(const struct wl_state *st);

/* After the write: forget the group's staging (and, when the batch held a
 * flush, the dirty marks). Returns the id of the last signal the group
 * fired, or 0 when it fired none. */
uint64_t wl_state_commit(struct wl_state *st);

/* 1 when anything changed since the last whole checkpoint (one under way
 * in slices included), or a load would replay pings (meta state_seq
 * behind the ingest sequence, everything written though). */
int wl_state_dirty(const struct wl_state *st);
/* An install's latest ping, the one its record's last_ingest_seq names,
 * read from the log (snap NULL: the latest): a wire ping as it came, an
 * edge ping's merge (StoredPing.latest). NULL when the log no longer has
 * it (retention, a forget), when that ping is not install_id's, or when it
 * is an edge ping stored before edge pings kept their merge (the record's
 * last_ping has it then). Free with warmline__v1__ping__free_unpacked.
 * Memory keeps no install's ping: the account view and the dump read it
 * here, one read per install shown. */
wl_ping *wl_latest_ping_read(struct wl_store *store, const struct wl_snapshot *snap,
                             uint64_t ingest_seq, const char *install_id);
/* Installs changed since the last flush. */
uint64_t wl_state_dirty_installs(const struct wl_state *st);
/* The ingest sequence the stored state records are exact for. */
uint64_t wl_state_state_seq(const struct wl_state *st);
/* Pings the load replayed. */
uint64_t wl_state_replayed(const struct wl_state *st);

/* ---- forgetting (data-subject requests, collector/forget.h) ---- */

#define WL_FORGET_ORGS_MAX 2

/* What a forget took out of memory: the installs, and the organizations
 * gone whole (whose history and signals go too). */
struct wl_forgotten {
    char **installs;              /* malloc'd ids; wl_forgotten_free */
    size_t n_installs, cap_installs;
    uint8_t orgs[WL_FORGET_ORGS_MAX][WL_ORG_ID_MAX];
    size_t org_lens[WL_FORGET_ORGS_MAX];
    uint8_t org_loaded[WL_FORGET_ORGS_MAX]; /* it was in memory (its record is counted) */
    size_t n_orgs;
    uint64_t install_records;     /* install and org records deleted into the batch */
    uint64_t org_records;
};

/* Forgets an organization (its id) and every install it has from memory:
 * its org and rank records are deleted into batch, its installs' records
 * are not (install_records stays 0): a forget deletes them in slices of its
 * own (collector/forget_apply.c), so that this step's one write does not
 * grow with the organization. Until they are deleted a restart loads those
 * installs again: wl_state_forget_stale takes them out. The organization
 * is named in out->orgs even when it is not in memory (its history may
 * outlive its installs). Call between groups, with nothing staged: -EBUSY
 * otherwise. The rules are not stepped. */
int wl_state_forget_org_memory(struct wl_state *st, const uint8_t *org, size_t org_len,
                               struct wl_batch *batch, struct wl_forgotten *out);

/* 1 when the install is in memory (a forget's slice does not delete the
 * record of an install that pinged again since). */
int wl_state_has_install(const struct wl_state *st, const char *id, size_t len);

/* Takes out of memory each of the n installs (ids, lens) that is there and
 * has no ping after ingest sequence upto: those a forget's first step had
 * forgotten, loaded again from records its slices had not yet deleted when
 * the collector stopped. Records are not deleted (the slices do); an
 * organization left with no install goes (its record and rank entry into
 * batch). Between groups, as wl_state_forget_org_memory: -EBUSY otherwise. */
int wl_state_forget_stale(struct wl_state *st, char *const *ids, const uint8_t *lens, size_t n,
                          uint64_t upto, struct wl_batch *batch, struct wl_forgotten *out);

/* Forgets one install. Its organization goes whole when this was its last
 * install; otherwise it stays, with its totals, counting installs,
 * versions and editions those of the installs it keeps, and its
 * record and current day are rewritten at the flush. The install's own
 * organization id (install:<id>) is always named in out->orgs. As
 * wl_state_forget_org_memory otherwise. */
int wl_state_forget_install(struct wl_state *st, const char *install_id, struct wl_batch *batch,
                            struct wl_forgotten *out);

void wl_forgotten_free(struct wl_forgotten *f);

/* Every install id the organization has in memory, as malloc'd strings in
 * *out (free each, then the array); returns how many (0 and *out NULL when
 * the organization is not in memory). Linear in its installs; its record
 * lists only the first WL_ORG_INSTALL_IDS_MAX (the tests and the state fuzz
 * target check membership with it). Writer thread. */
size_t wl_state_org_install_ids(const struct wl_state *st, const uint8_t *org, size_t org_len,
                                char ***out);

/* The fields of a StoredPing record (pings column family) that retention
 * and forget read, without decoding the ping: pointers into the value. */
struct wl_ping_peek {
    int64_t received_at;
    const uint8_t *org;           /* organization id */
    size_t org_len;
    const char *install_id;       /* not NUL-terminated */
    size_t install_len;
    const uint8_t *ping;          /* the packed Ping */
    size_t ping_len;
};

/* Returns 0, or -EPROTO when val is not a well-formed StoredPing. */
int wl_ping_peek(const void *val, size_t vlen, struct wl_ping_peek *out);

uint64_t wl_state_ingest_seq(const struct wl_state *st);
uint64_t wl_state_signal_seq(const struct wl_state *st);
int64_t wl_state_clock(const struct wl_state *st);
uint64_t wl_state_n_installs(const struct wl_state *st);
uint64_t wl_state_n_orgs(const struct wl_state *st);
/* Bytes held by interned strings and feature lists, and how many there are. */
uint64_t wl_state_interned_bytes(const struct wl_state *st);
uint64_t wl_state_interned(const struct wl_state *st);
/* Features and editions left out of an organization's tallies (past
 * max_org_features), since the state was loaded. */
uint64_t wl_state_untallied(const struct wl_state *st);

#endif
