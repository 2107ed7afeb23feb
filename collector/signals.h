/* Signals: the writer's side of the rules. For one organization whose
 * account changed, steps every rule's edge trigger and, for each firing,
 * puts a Signal record into the group's batch, adds its weight to the
 * organization's decayed score and moves the organization in the rank
 * (rank.h: in memory only). The organization's index entry (org_signals) is not written with
 * the signal: its id waits in memory (wl_org_rules.recent) and goes to disk
 * with the organization's record at the next checkpoint (wl_signals_index),
 * as state does; readers take the ids still in memory from the writer
 * (state_read.h). Used by the writer thread only. */
#ifndef WL_SIGNALS_H
#define WL_SIGNALS_H

#include <stddef.h>
#include <stdint.h>

#include "rank.h"
#include "rules.h"
#include "storage/store.h"

/* An organization's signal ids not yet in the org_signals index, in the
 * order they fired; the first n_written are in a batch not yet known to be
 * written (they go once it is: wl_signals_index_written). */
struct wl_signal_ids {
    uint32_t n, cap, n_written;
    uint64_t id[];
};

/* Per organization: what the rules remember. Zeroed = nothing fired yet. */
struct wl_org_rules {
    struct wl_rule_state *states; /* one per rule of the set, once anything fired */
    double score_log2;            /* WL_SCORE_NONE until the first signal */
    uint64_t n_signals;
    struct wl_signal_ids *recent; /* NULL: every signal of it is in the index */
    struct wl_rank_node *rank;    /* its place in the rank (NULL: no signal yet) */
    uint32_t rank_due;            /* 1 + its index in wl_signals.due, or 0 */
};

struct wl_signals {
    const struct wl_ruleset *rules;
    uint64_t half_life_ms;
    uint64_t seq;                 /* the last signal id handed out */
    struct wl_rank rank;          /* the organizations with signals, by score */
    uint64_t fired;               /* signals put into the current group */
    uint32_t fired_by_rule[WL_RULES_MAX]; /* the group's, counted once committed */
    uint8_t *buf;
    size_t cap;
    /* The group's signals, packed, until its write is in (readers find an
     * organization ranked by a signal before the store has it): ids
     * ascending, each at pend_off[i] in pend, up to the next. */
    uint8_t *pend;
    size_t pend_len, pend_cap;
    uint64_t *pend_id;
    size_t *pend_off;
    size_t pend_n, pend_ncap;
    /* Organizations whose score the group moved: ranked again together
     * when its write is in (wl_signals_committed), by wl_rank_set_many,
     * each once however often it fired. NULL orules: unranked since. */
    struct wl_rank_due {
        struct wl_org_rules *orules;
        const uint8_t *org;
        size_t org_len;
    } *due;
    size_t due_n, due_cap;
    struct wl_rank_move *moves;   /* wl_signals_committed's */
    size_t moves_cap;
};

/* Reads the last signal id from meta. */
int wl_signals_init(struct wl_signals *sg, struct wl_store *store, const struct wl_ruleset *rules,
                    uint64_t half_life_ms, char *err, size_t errlen);
void wl_signals_free(struct wl_signals *sg);

/* A signal names at most this many of its organization's installs. */
#define WL_SIGNAL_INSTALLS_MAX 100

/* What fired is explained by the organization's counting installs: asked
 * for only when something fires (an organization may have thousands). */
struct wl_signal_cause {
    const uint8_t *org;
    size_t org_len;
    int64_t at;                   /* event time, unix ms */
    uint64_t ingest_seq;          /* the ping that caused it, 0 for a timer */
    size_t (*installs)(void *ctx, const char **out, size_t max); /* fills out, returns n */
    void *installs_ctx;
};

/* Steps every rule for one organization; returns how many fired. With
 * batch NULL (a replay of pings whose signals are stored already) the rule
 * states and the score change as they did, and nothing is written. */
int wl_signals_evaluate(struct wl_signals *sg, struct wl_org_rules *orules,
                        const struct wl_account_view *view, const struct wl_signal_cause *cause,
                        struct wl_batch *batch);

/* Puts the last signal id into meta (once per group, when anything fired). */
void wl_signals_flush(struct wl_signals *sg, struct wl_batch *batch);

/* After the group's write: ranks again the organizations it moved (once
 * each, together), counts its signals by rule in the metrics; the group's
 * packed signals go. */
void wl_signals_committed(struct wl_signals *sg);

/* A signal of the group not yet written, packed: 0 with *p and *len, or
 * -ENOENT. Under the state's read lock (state_read.h). */
int wl_signals_pending(const struct wl_signals *sg, uint64_t id, const uint8_t **p,
                       size_t *len);


/* The organization leaves the rank (its installs all went, or it is
 * forgotten): before its rules are freed, which leaves the rank alone. */
void wl_signals_unrank(struct wl_signals *sg, struct wl_org_rules *orules);
void wl_org_rules_free(struct wl_org_rules *orules);

/* The index keys of the organization's signal ids still in memory go into
 * batch (an entry naming a stored signal is true whenever it is written). */
void wl_signals_index(struct wl_org_rules *orules, const uint8_t *org, size_t org_len,
                      struct wl_batch *batch);
/* After the batch of the last wl_signals_index is written: those ids go.
 * Returns whether any went. */
int wl_signals_index_written(struct wl_org_rules *orules);
/* A stored signal's id back into memory, at load (ids come in any order). */
void wl_signals_recent_add(struct wl_org_rules *orules, uint64_t id);

#endif
