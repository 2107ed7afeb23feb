/* The writer's state inside (aggregate.h is its door): the structures and
 * the helpers its files share, all on the writer thread. Included by the
 * state's own files only; their rooms, one role each:
 *   aggregate.c      the hot path: a ping applied (edge pings merged into the
 *                    latest), installs joining and leaving organizations,
 *                    expiry by the clock, the rules stepped for what changed
 *   state_intern.c   interned strings and feature lists
 *   state_tally.c    per-organization tallies: lists, features, totals
 *   state_records.c  the records on disk: installs, organizations, days
 *                    packed; a whole checkpoint (flush), stage and commit
 *   state_checkpoint.c  a checkpoint written in slices between groups, in
 *                    place, an organization with its changed installs at a
 *                    time; a stage left by an older version, at load
 *   state_forget.c   forgetting installs and organizations
 *   state_load.c     loading and replay; stored pings read undecoded
 * A helper one file defines and another calls is named wl_st_. */
#ifndef WL_STATE_PARTS_H
#define WL_STATE_PARTS_H

#include <stddef.h>
#include <stdint.h>

#include "aggregate.h"
#include "ptable.h"
#include "records.pb-c.h"
#include "signals.h"

typedef Warmline__Store__V1__InstallState wl_install_rec;
typedef Warmline__Store__V1__OrgState wl_org_rec;
typedef Warmline__Store__V1__StoredPing wl_ping_rec;
typedef Warmline__Store__V1__DailyState wl_daily_rec;

static const char META_INGEST_SEQ[] = WL_META_INGEST_SEQ;
/* The ingest sequence the installs, orgs and current days on disk are
 * exact for: pings after it are replayed from the pings column family when
 * the state loads. Absent (databases from before it): the ingest sequence. */
static const char META_STATE_SEQ[] = WL_META_STATE_SEQ;
static const char META_SIGNAL_INDEX_SEQ[] = WL_META_SIGNAL_INDEX_SEQ;
/* When that checkpoint was written (absent: before checkpoints said so). */
static const char META_STATE_AT[] = WL_META_STATE_AT;
static const char META_STATE_CLOCK[] = WL_META_STATE_CLOCK;

#define SEEN_MAX 16 /* versions and editions remembered per organization */
/* Past days kept per organization for growth rules: more than any window
 * (a window of d days keeps at most d + 1); the oldest goes past it. */
#define HIST_MAX 1024
#define WL_ST_HINTS 4 /* wl_state_prefetch: this ping, the next two and one spare */

/* Interned strings: editions, versions and features repeat across installs.
 * Counted references (installs, their feature lists, organizations' seen
 * lists and tallies): a string is freed with its last reference, so memory
 * tracks what is stored, not every string a sender ever sent. A string a
 * rule tests holds one more reference, the state's own, and is always
 * tallied. */
struct wl_str {
    uint32_t refs;
    uint32_t hash;                          /* keyed (ptable.h) */
    uint32_t len;
    uint8_t ruled;
    uint8_t operand_bit;                    /* a rule operand's: 1 + its bit in wl_tallies.has, or 0 */
    char s[];
};

/* Interned feature lists: installs share a handful of them, so an install
 * points at one instead of owning an array (a malloc'd chunk each). The
 * entries are interned strings (one reference each): equal lists are equal
 * pointer arrays. Counted references, from installs. */
struct wl_fset {
    uint32_t refs;
    uint32_t hash;
    uint32_t n;
    const char *s[];
};

struct wl_org;

/* How many of an organization's installs run a string (interned): the
 * features and editions of its counting installs (the rules ask has_feature
 * and edition == of every changed organization, which must not cost a walk
 * over its installs), and the versions and editions of all its installs (its
 * record lists them). An open-addressing table keyed by the string's hash;
 * an entry leaves when its count reaches 0. Bounded: past a cap
 * (max_org_features, or SEEN_MAX for the lists) a new string is not tallied,
 * unless a rule tests it; each install remembers which of its strings it
 * tallied (wl_install.feat_tallied, .flags), so a count is always exact. */
struct wl_tally {
    const char *s;                          /* interned (one reference); NULL: empty */
    uint32_t n;
};

struct wl_tallies {
    struct wl_tally *v;
    uint16_t n, cap;                        /* cap: 0 or a power of two */
    /* Bit k: the string of operand_bit k + 1 has a count here. The rules'
     * has_feature and edition == read it in the organization itself rather
     * than probe the table (a cache miss each, several a ping). */
    uint32_t has;
};
#define WL_OPERAND_BITS 32

/* wl_install.flags: which of its strings its organization counts. */
#define IN_EDITION_TALLIED 1                /* in org->eds (while counting) */
#define IN_VERSION_LISTED 2                 /* in org->versions */
#define IN_EDITION_LISTED 4                 /* in org->editions */
#define IN_ORG_BY_NETWORK 8                 /* its organization came from the network table */
/* It moved since its record was written: the organization it left last is
 * in st->moved (state_checkpoint.c). */
#define IN_MOVED 16
/* The checkpoint epoch (mod 4) it became dirty in (state_checkpoint.c). */
#define IN_DIRTY_EPOCH_SHIFT 5
#define IN_DIRTY_EPOCH (3u << IN_DIRTY_EPOCH_SHIFT)

#define HOUR_MS 3600000LL

/* The pings applied since the last write, packed (a wire ping as it came,
 * an edge ping's merge), by ingest sequence: an edge ping's base may be
 * one of them, and the log does not have them yet (aggregate.c). Let go
 * at each commit: memory keeps no install's ping longer than a group. */
struct wl_group_pings {
    uint64_t first;                         /* the ingest sequence of off[0] */
    uint8_t *buf;
    size_t len, cap;
    uint32_t *off;                          /* n + 1 offsets into buf */
    size_t n, cap_off;
};

/* One per install ever seen, so kept small (176 bytes and its id):
 * counts fit 32 bits (validation caps them at max_count <= UINT32_MAX),
 * the id is as long as it is. */
struct wl_install {
    struct wl_org *org;
    const char *edition, *version;          /* interned */
    const char **features;                  /* an interned list (wl_fset) */
    uint64_t last_seq;
    uint64_t last_ingest_seq;
    int64_t first_seen, last_seen;          /* event time */
    uint32_t counts[WL_N_COUNTS];
    uint64_t feat_tallied;                  /* bit i: features[i] is in org->feats */
    uint32_t heap_pos;                      /* in the expiry heap, while counting */
    uint32_t org_pos;                       /* in org->installs */
    uint32_t dirty_pos;                     /* in org->dirty_v, while dirty */
    uint32_t hash;                          /* of the id (keyed): the install table's */
    uint8_t n_features;
    uint8_t counting;
    uint8_t dirty;
    uint8_t flags;                          /* IN_* */
    uint32_t edge_seq;                      /* the seq of its latest edge ping (writer's) */
    uint32_t check_hour;                    /* the hour of its latest security check (0: none) */
    uint32_t heap_lag;                      /* last_seen's rise since it was placed in the heap */
    uint64_t check_digest;                  /* of that check's fields (check_digest()) */
    char id[];                              /* NUL-terminated */
};

struct wl_org {
    uint8_t id[WL_ORG_ID_MAX];
    uint8_t id_len;
    uint8_t dirty;                          /* on the dirty list, or the checkpoint's */
    uint8_t day_dirty;                      /* the current day's record is not written yet */
    uint8_t hist_ready;                     /* the growth history is in memory */
    uint8_t packed;                         /* in ckpt.packed_orgs */
    uint8_t in_extra;                       /* in ckpt.extra */
    uint8_t left_pending;                   /* in st->left_v */
    uint16_t n_first;                       /* first_ids' length */
    uint16_t hist_n, hist_cap;
    uint32_t hash;                          /* of the id (keyed): the organization table's */
    uint32_t day;                           /* UTC day of the latest change */
    uint32_t n_counting;
    int64_t first_seen, last_seen;
    int64_t updated_at;                     /* event time of the latest change */
    uint64_t totals[WL_N_COUNTS];           /* over counting installs */
    struct wl_install **installs;
    size_t n_installs, cap_installs;
    /* Past WL_ORG_INSTALL_IDS_MAX installs: its smallest install ids,
     * sorted (room for WL_ORG_INSTALL_IDS_MAX), so that neither a reader nor
     * a ping walks every install: made at load and when it grows past the
     * limit, exact again each time the writer packs its record, kept in
     * between by the installs that join (O(the limit) each) and leave (their
     * id taken out); NULL at or under the limit. */
    const char **first_ids;
    struct wl_tallies versions, editions;   /* over its installs, at most SEEN_MAX each */
    struct wl_tallies feats, eds;           /* over its counting installs */
    /* End-of-day values of the metrics growth rules use, for past days:
     * hist_days[i], hist_vals[i * n_tracked + k]; oldest first. */
    uint32_t *hist_days;
    uint64_t *hist_vals;
    struct wl_org_rules rules;
    struct wl_org *next_dirty;
    struct wl_org *next_extra;              /* in ckpt.extra */
    /* Its installs changed since their records were written: written with
     * its own record (state_checkpoint.c), so that no install on disk is
     * newer than its organization's record. */
    struct wl_install **dirty_v;
    uint32_t n_dirty, cap_dirty;
    /* The ingest sequence its record on disk is exact for (0: the
     * checkpoint's). Loading, the replay changes what is its own (rules,
     * days) only with later pings. */
    uint64_t rec_seq;
};

/* An install that moved since its record was written, and the last
 * organization it left, by id (it may be gone: then its deletion is
 * written). That organization's record is written before the install's. */
struct wl_moved {
    struct wl_install *in;
    uint64_t seq;                           /* the ping that moved it */
    uint8_t org_len;
    uint8_t org[WL_ORG_ID_MAX];
};

/* A checkpoint written in slices (state_checkpoint.c), begun at ingest
 * sequence seq: each organization dirty then is written in place, with its
 * changed installs, as it is when its slice comes; once all are, meta
 * state_seq says seq. */
enum wl_ckpt_phase { CKPT_IDLE, CKPT_WRITING };

struct wl_ckpt {
    enum wl_ckpt_phase phase;
    uint64_t seq;
    uint64_t signal_seq;                    /* the last signal id when it began */
    int64_t at;                             /* unix ms it began */
    int64_t clock;                          /* the state's clock when it began */
    struct wl_org *next;                    /* the dirty list at seq, what is left */
    struct wl_org *extra;                   /* brought in by installs (wl_st_ckpt_moved) */
    uint64_t n_orgs, taken;
    /* written since the last commit: empty ones go */
    struct wl_org **packed_orgs;
    size_t n_packed_orgs, cap_packed_orgs;
    uint64_t records;                       /* written so far */
    uint64_t expected;                      /* records at its begin, about */
    int done_pending;                       /* the batch completes it */
};

struct wl_state {
    struct wl_store *store;
    struct wl_state_opts opts;
    struct wl_ptable installs;              /* by id */
    struct wl_ptable orgs;                  /* by id */
    struct wl_ptable strings;               /* interned strings */
    struct wl_ptable fsets;                 /* interned feature lists */
    uint64_t interned_bytes;                /* what strings and fsets hold */
    /* The rules' operands (has_feature, edition ==), each with its interned
     * copy, pinned for the state's life: the rules look theirs up by the
     * text's address, with no hashing per evaluation. */
    struct wl_operand { const char *text, *s; } *operands;
    size_t n_operands;
    int n_operand_bits;                     /* given out (wl_str.operand_bit) */
    uint64_t untallied;                     /* features and editions left out of tallies */
    /* wl_state_prefetch's pings: hashes kept by the install id's address,
     * the group's own (cleared at each group's start and end) */
    struct wl_st_hint {
        const char *install_id;
        uint32_t idlen, install_hash, org_hash;
    } hints[WL_ST_HINTS];
    unsigned hint_next;
    struct wl_install **heap;               /* counting installs, a min-heap by last_seen */
    size_t heap_n, heap_cap;
    struct wl_org *dirty_orgs;              /* and their installs: org->dirty_v */
    uint64_t n_dirty_orgs;
    uint64_t n_dirty_installs;
    uint64_t state_seq;                     /* what the records on disk are exact for */
    /* Bumped each time ids leave an organization's signal list after their
     * org_signals entries are written: a reader that saw an older one
     * reads the index again (state_read.h). */
    uint64_t index_gen;
    int64_t checkpoint_at;                  /* unix ms that checkpoint was written */
    int64_t flush_at;                       /* the whole checkpoint's time (in the batch) */
    uint64_t staged_ingest_seq;             /* the ingest_seq last put into meta */
    int flushed;                            /* the batch holds a whole flush */
    struct wl_group_pings group;            /* the pings not yet written */
    struct wl_ckpt ckpt;                    /* a checkpoint in slices, when one is under way */
    uint64_t replayed;                      /* pings the load replayed */
    int replaying;                          /* loading: the log is on disk already */
    uint8_t ckpt_epoch;                     /* checkpoints begun (mod 256) */
    struct wl_ptable moved;                 /* struct wl_moved, by install (state_checkpoint.c) */
    struct wl_org **left_v;                 /* left through a third (state_checkpoint.c) */
    size_t n_left, cap_left;
    struct wl_signals signals;
    uint64_t ingest_seq;
    uint64_t group_last_signal;
    int64_t clock;
    uint64_t n_installs, n_orgs;
    int tracked[WL_N_COUNTS];               /* metrics growth rules use */
    int n_tracked;
    int hist_keep_days;                     /* 0: no history kept */
    uint8_t *scratch;
    size_t scratch_cap;
    void **sort_buf;                        /* the flush's dirty records in key order */
    size_t sort_cap;
    const char **feat_buf;                  /* an organization record's features */
    size_t feat_cap;
};

/* The key the tables (ptable.h) look installs, organizations and strings up by. */
struct bytes_key {
    const void *p;
    size_t len;
};

/* aggregate.c: the hot path, and the installs and organizations it keeps. */
void *wl_st_xrealloc(void *p, size_t n); /* aborts when out of memory */
uint8_t *wl_st_scratch(struct wl_state *st, size_t need); /* the state's buffer, reused */
/* The expiry heap of the counting installs. */
void wl_st_heap_push(struct wl_state *st, struct wl_install *in);
void wl_st_heap_remove(struct wl_state *st, struct wl_install *in);
/* Organizations by id; attach and detach move an install in or out. */
uint32_t wl_st_org_hash_of(const void *e);
struct wl_org *wl_st_org_find(const struct wl_state *st, const uint8_t *id, size_t len);
struct wl_org *wl_st_org_new(struct wl_state *st, const uint8_t *id, size_t len);
void wl_st_org_touch(struct wl_state *st, struct wl_org *org, int64_t t, struct wl_batch *batch);
void wl_st_org_attach(struct wl_org *org, struct wl_install *in);
void wl_st_org_detach(struct wl_state *st, struct wl_org *org, struct wl_install *in);
void wl_st_org_reseen(struct wl_org *org);
/* Onto the dirty list (the next checkpoint writes it, with its installs
 * marked in aggregate.c). */
void wl_st_org_mark(struct wl_state *st, struct wl_org *org);
/* An edge ping stored by an older version, without its merge, written
 * again with it (StoredPing.latest: latest), at once, its other fields as
 * they were: the next edge ping of its install reads it as its base. */
void wl_st_edge_merge_write(struct wl_state *st, const uint8_t *stored, size_t stored_len,
                            const wl_ping *latest);
/* The group's pings (struct wl_group_pings): let go after a write, freed. */
void wl_st_group_written(struct wl_state *st);
void wl_st_group_free(struct wl_state *st);
/* Installs by id, and the strings they hold: what the state keeps of an
 * install's latest ping (counts, edition, version, features). */
void wl_st_install_set_ping(struct wl_state *st, struct wl_install *in, const wl_ping *p);
void wl_st_install_set(struct wl_state *st, struct wl_install *in, const uint64_t *counts,
                       size_t n_counts, const char *edition, const char *version,
                       char *const *features, size_t n_features);
void wl_st_install_release(struct wl_state *st, struct wl_install *in);
/* A counting install staying in org whose ping p carries the strings it has
 * (edition, version, features, each tallied and listed): its counts move,
 * in the totals too, and 1; else 0 and nothing changed (the caller takes
 * it out of org's account and puts it back). O(its features). */
int wl_st_install_recount(struct wl_state *st, struct wl_org *org, struct wl_install *in,
                          const wl_ping *p);
uint32_t wl_st_install_hash_of(const void *e);
struct wl_install *wl_st_install_find(const struct wl_state *st, const char *id, size_t len);
void wl_st_install_unlink(struct wl_state *st, struct wl_install *in);
struct wl_install *wl_st_install_new(struct wl_state *st, const char *id, size_t len);
/* A ping through the state: wl_state_apply(_wire), wl_state_apply_edge, and
 * the replay (stored: the ping's record; latest: an edge record's merge, NULL
 * in one stored before it kept one; wire: a wire ping's bytes as they came,
 * or NULL). */
enum wl_apply wl_st_apply(struct wl_state *st, const wl_ping *ping, uint32_t source,
                          uint64_t presence, int64_t received_at, int64_t event_at,
                          struct wl_batch *batch, const uint8_t *stored, size_t stored_len,
                          const wl_ping *latest, const struct wl_ping_bytes *wire);

/* state_intern.c: interned strings and feature lists, counted references. */
struct wl_str *wl_st_str_of(const char *s);
uint32_t wl_st_str_hash_of(const void *e);
uint32_t wl_st_fset_hash_of(const void *e);
const char *wl_st_intern(struct wl_state *st, const char *s);
const char *wl_st_str_ref(const char *s);
void wl_st_str_unref(struct wl_state *st, const char *s);
const char **wl_st_intern_fset(struct wl_state *st, const char **v, size_t n);
void wl_st_fset_unref(struct wl_state *st, const char **v);
const char *wl_st_interned(const struct wl_state *st, const char *s);
void wl_st_pin_operand(void *arg, int is_feature, const char *text); /* wl_expr_operands' */
const char *wl_st_operand(const struct wl_state *st, const char *text);

/* state_tally.c: per-organization tallies, and an install joining or
 * leaving its organization's lists (org_list) and account (org_count). */
void wl_st_tally_rebuild(struct wl_state *st, struct wl_tallies *t, int keep_zeros);
int wl_st_tally_has(const struct wl_tallies *t, const char *s);
void wl_st_tally_clear(struct wl_state *st, struct wl_tallies *t);
void wl_st_tally_seed(struct wl_state *st, struct wl_tallies *t, char **v, size_t n);
/* The strings of t with a count, sorted, into out (room for t->cap);
 * returns how many. Reads t only: readers use it under the read lock. */
size_t wl_st_tally_list(const struct wl_tallies *t, const char **out);
void wl_st_org_list(struct wl_state *st, struct wl_org *org, struct wl_install *in, int sign);
void wl_st_org_count(struct wl_state *st, struct wl_org *org, struct wl_install *in, int sign);

/* state_checkpoint.c: an organization written in place with its changed
 * installs and its day, exact for the ingest sequence now (its record
 * says which); returns the records written. */
uint64_t wl_st_ckpt_org_write(struct wl_state *st, struct wl_org *org, struct wl_batch *batch);
/* An install moved from old to another organization (apply, replaying
 * too): the organization it left is written before its record is. */
void wl_st_ckpt_moved(struct wl_state *st, struct wl_install *in, const struct wl_org *old,
                      struct wl_org *to);
void wl_st_ckpt_moved_free(struct wl_state *st);

/* The load's first step: a checkpoint an older version staged in part is
 * dropped, one staged whole is moved into place. */
int wl_st_ckpt_recover(struct wl_store *store, char *err, size_t errlen);
/* A whole flush while a checkpoint in slices is under way: what it has
 * not written goes with the flush. */
int wl_st_ckpt_absorb(struct wl_state *st, struct wl_batch *batch);
/* After a write: what was written and is not dirty again lets go of its
 * kept ping (an empty organization goes); a checkpoint written whole moves
 * state_seq. */
void wl_st_ckpt_committed(struct wl_state *st);
void wl_st_ckpt_free(struct wl_state *st);

/* state_records.c: the records. The packers read memory only, into a
 * buffer they grow (wl_st_grow): the writer packs into its scratch, a
 * reader (state_read.c) into its own under the read lock. */
uint8_t *wl_st_grow(uint8_t **buf, size_t *cap, size_t need); /* aborts when out of memory */
size_t wl_st_pack_install(const struct wl_install *in, uint8_t **buf, size_t *cap);
/* The writer: a large organization's first ids, computed again (before it
 * packs the record, at load); freed at or under the limit. The install
 * joining or leaving them (wl_st_org_attach, wl_st_org_detach). */
void wl_st_org_first_ids(struct wl_org *org);
void wl_st_first_ids_join(struct wl_org *org, struct wl_install *in);
void wl_st_first_ids_leave(struct wl_org *org, struct wl_install *in);
/* feats: a buffer for the organization's sorted feature list, grown too. */
size_t wl_st_pack_org(const struct wl_state *st, const struct wl_org *org, const char ***feats,
                      size_t *feats_cap, uint8_t **buf, size_t *cap);
void wl_st_put_daily(struct wl_state *st, struct wl_org *org, struct wl_batch *batch);
void wl_st_put_install(struct wl_state *st, struct wl_install *in, struct wl_batch *batch);
/* ids: a large organization's first install ids computed again (a walk
 * over its installs), or as the writer keeps them (wl_st_first_ids_join). */
void wl_st_put_org(struct wl_state *st, struct wl_org *org, struct wl_batch *batch, int ids);

/* Meta signal_index_seq: every signal up to id is in the org_signals index. */
void wl_st_put_signal_index_seq(struct wl_batch *batch, uint64_t id);
/* Meta state_seq, state_at, state_clock: a checkpoint is whole. */
void wl_st_put_state_seq(struct wl_batch *batch, uint64_t seq, int64_t at, int64_t clock);
void wl_st_org_destroy(struct wl_state *st, struct wl_org *org); /* its memory, not its records */

#endif
