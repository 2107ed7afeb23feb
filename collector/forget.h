/* Forget: deletes every record of an organization or of an install, for
 * data-subject requests, and records that a deletion happened (when, which
 * kind, how many records of each table), never what was deleted.
 *
 * Time linear in what it deletes, and ingest never waits for a scan:
 * 1. Memory (one writer job, one atomic write): the writer takes the
 *    installs and the organization out of memory and deletes the org and
 *    rank records (an install forget: its install record too; an
 *    organization's install records go in the slices), the history and
 *    signals of the
 *    organizations that go whole (prefix reads of what it deletes), the
 *    named account (organization only), and writes a durable marker (meta
 *    forget_pending:<seq>, and forget_installs:<seq>: every install it
 *    forgot) naming the ingest and signal sequences it stopped at. What
 *    arrives after that is new: an install that pings again starts afresh.
 * 2. Scan (the requesting thread: an API thread, the CLI): raw pings and
 *    signals up to those sequences, the installs' own organizations
 *    (install:<id>, from before they sent an org key), quarantined samples;
 *    it lists what to delete and the signals of other organizations to keep
 *    without a forgotten install.
 * 3. Slices (writer jobs): at most opts.slice (WL_FORGET_SLICE) records
 *    each, with the marker's counts; ingest groups run between them. An
 *    install record is deleted unless the install pinged again since step
 *    1 (it is in memory: new data).
 * 4. Final (a writer job): the deletion record, and the marker goes, in one
 *    atomic write. The requester hears "done" only then.
 * No write grows with the organization but the marker's list of installs
 * (one value); every other write is at most one slice. A stop or crash
 * before the final step leaves the marker: the next start resumes the
 * forget (wl_forget_resume*, log event=forget_resumed): a first writer step
 * takes out of memory again the installs a restart loaded back from records
 * the slices had not deleted yet (wl_state_forget_stale), then step 2 on,
 * so nothing of the target is left afterwards. */
#ifndef WL_FORGET_H
#define WL_FORGET_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "aggregate.h"
#include "ping.h"
#include "storage/keys.h"
#include "storage/store.h"

/* Records per slice. Measured on the 2-core test machine under a load
 * average of 7: the longest of 21 slices of 5,000 deletes held the writer
 * 34-48 ms (slices of 20,000: 104-187 ms), under the 100 ms a write may
 * hold it. */
#define WL_FORGET_SLICE 5000

struct wl_writer;

enum wl_forget_kind { WL_FORGET_ORG = 1, WL_FORGET_INSTALL = 2 };

struct wl_forget_target {
    enum wl_forget_kind kind;
    uint8_t org[WL_ORG_ID_MAX];          /* ORG: the organization id (storage/keys.h) */
    size_t org_len;
    char install[WL_INSTALL_ID_MAX + 1]; /* INSTALL: the install id */
};

/* What a forget deleted, by table; signals_edited counts other
 * organizations' signals kept without a forgotten install in their list. */
#define WL_FORGET_COUNTS(X) \
    X(pings)                \
    X(installs)             \
    X(orgs)                 \
    X(daily)                \
    X(signals)              \
    X(named)                \
    X(quarantine)           \
    X(signals_edited)

#define WL_FORGET_COUNT_FIELD(name) uint64_t name;
struct wl_forget_counts {
    WL_FORGET_COUNTS(WL_FORGET_COUNT_FIELD)
};
#undef WL_FORGET_COUNT_FIELD

struct wl_forget_result {
    struct wl_forget_counts deleted;
    uint64_t deletion;                   /* the deletion record's sequence */
    int64_t at;                          /* unix ms */
    /* How the writer's share went (logs and tests): */
    uint64_t slices;                     /* slice jobs, the memory and final steps apart */
    uint64_t slice_max;                  /* records written by the largest slice */
    uint64_t memory_records;             /* records written by the memory step */
    uint64_t writer_iterated;            /* records the writer read by iterating (only the
                                            history and signal index of orgs gone whole) */
    uint64_t memory_us;                  /* the memory step, from its submission to its answer */
    uint64_t slice_us_max;               /* the longest slice, likewise */
};

/* An organization: 64 hex digits (its org key) or "install:<id>" (an
 * install's own organization). Returns 0, or -EINVAL with why in err. */
int wl_forget_target_org(struct wl_forget_target *t, const char *text, char *err, size_t errlen);

/* An organization by its 32-byte org key (a domain, once hashed). */
void wl_forget_target_key(struct wl_forget_target *t, const uint8_t key[WL_ORG_KEY_BYTES]);

/* An install: 1 to 64 printable ASCII characters. 0 or -EINVAL. */
int wl_forget_target_install(struct wl_forget_target *t, const char *id, char *err,
                             size_t errlen);

/* Forgets the target through w, the writer running on store; via ("api",
 * "cli") goes into the deletion record. Blocks until every step is in.
 * Returns 0, -ENOENT when nothing matched (nothing written), or another
 * negative code with the reason in err; after a failure past the memory
 * step the marker stays and the next start finishes the forget. Any
 * thread but the writer's; a stopped writer must not be passed. */
int wl_forget(struct wl_writer *w, struct wl_store *store, const struct wl_forget_target *t,
              const char *via, struct wl_forget_result *out, char *err, size_t errlen);

/* What tests (and the resume) vary. */
struct wl_forget_opts {
    size_t slice;                       /* records per slice, at least 4 (0: WL_FORGET_SLICE) */
    void (*before_writer)(void *arg);   /* called before the memory step */
    void (*after_memory)(void *arg);    /* called after it, before the scan */
    void *arg;
    unsigned stop_after;                /* tests: give up after this many writer steps that
                                           wrote, as a crash would (0: never) */
    const int *cancel;                  /* read between steps and during the scan: non-zero
                                           gives up with -ECANCELED (the marker stays) */
};

/* wl_forget with opts (NULL: the defaults). */
int wl_forget_ex(struct wl_writer *w, struct wl_store *store, const struct wl_forget_target *t,
                 const char *via, const struct wl_forget_opts *opts,
                 struct wl_forget_result *out, char *err, size_t errlen);

/* {"pings": n, "installs": n, ...} in WL_FORGET_COUNTS order; NULL on ENOMEM. */
json_t *wl_forget_counts_json(const struct wl_forget_counts *c);

/* Calls fn with each deletion record, oldest first: JSON text
 * {"seq","at","kind","via","deleted":{...}} (meta "deletion:<20-digit seq>").
 * Stops early when fn returns non-zero. Returns 0 or a negative code. */
int wl_forget_records(struct wl_store *store, const struct wl_snapshot *snap,
                      int (*fn)(void *arg, const char *json, size_t len), void *arg, char *err,
                      size_t errlen);

/* ---- interrupted forgets (a stop or crash before the final step) ---- */

/* Finishes every forget whose marker is in store, oldest first, through w
 * (same deletion record, counts carried over), on the calling thread;
 * *n (may be NULL) says how many. Stops early, marker kept, when *cancel
 * (may be NULL) turns non-zero. 0 or a negative code with err. */
int wl_forget_resume(struct wl_writer *w, struct wl_store *store, const int *cancel, size_t *n,
                     char *err, size_t errlen);

/* wl_forget_resume on a thread of its own (the collector's start: ingest
 * does not wait). The markers are listed before it returns, so forgets
 * requested later are not taken for interrupted ones. *out is NULL when
 * none is pending. */
struct wl_forget_resumer;
int wl_forget_resume_start(struct wl_writer *w, struct wl_store *store,
                           struct wl_forget_resumer **out, char *err, size_t errlen);
/* Asks it to stop at its next step (what is left resumes at the next
 * start), waits for it and frees it. Before the writer stops. NULL: no-op. */
void wl_forget_resume_stop(struct wl_forget_resumer *r);

/* ---- the writer's side (collector/writer.c) ---- */

struct wl_forget_req;

/* 1 when the step needs the state flushed first (the memory step). */
int wl_forget_wants_flushed_state(const struct wl_forget_req *req);

/* Applies the request's current step into batch, on the writer thread,
 * between groups; the batch may stay empty (nothing to write). Returns 0;
 * -ENOENT when nothing matched (batch and state untouched); or another
 * negative code, after which the state must be reloaded. */
int wl_forget_apply(struct wl_forget_req *req, struct wl_state *st, struct wl_store *store,
                    struct wl_batch *batch, int64_t now);

/* After the write, rc 0 or why it failed: wakes the requester. The writer
 * must not touch req afterwards. */
void wl_forget_done(struct wl_forget_req *req, int rc);

/* For the log line: "org" or "install". */
const char *wl_forget_kind_name(const struct wl_forget_req *req);

#endif
