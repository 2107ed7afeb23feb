/* Forget: deletes every record of an organization or of an install, for
 * data-subject requests, and records that a deletion happened (when, which
 * kind, how many records of each table), never what was deleted.
 *
 * Two phases, so that ingest never waits for a full scan:
 * 1. The requesting thread (an API thread, or the CLI) scans the
 *    append-only logs, raw pings and signals, as of a snapshot.
 * 2. The writer applies the forget alone, as one group: it takes the
 *    installs and the organization out of memory and, in ONE atomic write,
 *    deletes the pings the scan found and those written since, the install
 *    and org records, the daily history, the signals and their index, the
 *    rank entry, the named account (organization only), the quarantined
 *    samples that name the target, rewrites other organizations' signals
 *    that list a forgotten install without it, and puts the deletion
 *    record into meta.
 * A forget of more than WL_FORGET_ATOMIC_PINGS raw pings deletes them
 * first, in their own writes (old ping keys are never written again, so
 * this is safe beside the writer); the rest stays one atomic write. */
#ifndef WL_FORGET_H
#define WL_FORGET_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "aggregate.h"
#include "ping.h"
#include "storage/keys.h"
#include "storage/store.h"

#define WL_FORGET_ATOMIC_PINGS 1000000

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
 * "cli") goes into the deletion record. Blocks until the writer has
 * written it. Returns 0, -ENOENT when nothing matched (nothing written),
 * or another negative code with the reason in err. Any thread but the
 * writer's; a stopped writer must not be passed. */
int wl_forget(struct wl_writer *w, struct wl_store *store, const struct wl_forget_target *t,
              const char *via, struct wl_forget_result *out, char *err, size_t errlen);

/* What tests vary. */
struct wl_forget_opts {
    size_t atomic_pings;          /* more pings than this go first (WL_FORGET_ATOMIC_PINGS) */
    void (*after_scan)(void *arg); /* called between the scan and the writer's part */
    void *arg;
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

/* ---- the writer's side (collector/writer.c) ---- */

struct wl_forget_req;

/* Applies the request into batch, on the writer thread, between groups.
 * Returns 0; -ENOENT when nothing matched (batch and state untouched); or
 * another negative code, after which the state must be reloaded. */
int wl_forget_apply(struct wl_forget_req *req, struct wl_state *st, struct wl_store *store,
                    struct wl_batch *batch, int64_t now);

/* After the write, rc 0 or why it failed: wakes the requester. The writer
 * must not touch req afterwards. */
void wl_forget_done(struct wl_forget_req *req, int rc);

/* For the log line: "org" or "install". */
const char *wl_forget_kind_name(const struct wl_forget_req *req);
const struct wl_forget_result *wl_forget_req_result(const struct wl_forget_req *req);

#endif
