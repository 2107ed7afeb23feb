/* The request a forget's requester (collector/forget.c) hands the writer
 * (collector/forget_apply.c) one step at a time, and the marker both read.
 * Private to those two files: everyone else goes through forget.h.
 *
 * The requester owns the request; it submits one step and waits for the
 * writer's answer before it reads or changes anything here again. */
#ifndef WL_FORGET_REQ_H
#define WL_FORGET_REQ_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "aggregate.h"
#include "forget.h"
#include "idset.h"
#include "storage/keys.h"
#include "storage/store.h"

/* MEMORY: the first step; STALE: a resumed forget's first (installs its
 * slices had not deleted yet, loaded again at the start, leave memory). */
enum wl_forget_step {
    WL_FORGET_STEP_MEMORY = 1,
    WL_FORGET_STEP_SLICE,
    WL_FORGET_STEP_FINAL,
    WL_FORGET_STEP_STALE
};

/* Which count a deleted record adds to: WL_FORGET_COUNTS order. */
#define WL_FORGET_COUNT_ENUM(name) WL_FC_##name,
enum wl_forget_count { WL_FORGET_COUNTS(WL_FORGET_COUNT_ENUM) WL_FC_NONE };
#undef WL_FORGET_COUNT_ENUM

/* The count at index i of c (i < WL_FC_NONE). */
uint64_t *wl_forget_count_at(struct wl_forget_counts *c, enum wl_forget_count i);

/* A record to delete that is not a raw ping. */
struct wl_forget_key {
    uint8_t cf;        /* enum wl_cf */
    uint8_t count;     /* enum wl_forget_count */
    uint8_t indexed;   /* an org_signals key: the signal it names (last 8 bytes) goes too */
    uint8_t len;
    uint8_t key[1 + WL_ORG_ID_MAX + 8];
};

struct wl_forget_req {
    struct wl_forget_target target;
    char via[32];
    enum wl_forget_step step;
    size_t slice;                 /* records per slice */
    int resumed;                  /* taken up again from its marker */

    /* What the memory step forgot (or the marker says it did). */
    struct wl_idset installs;     /* every forgotten install, the target install too */
    uint8_t orgs[WL_FORGET_ORGS_MAX][WL_ORG_ID_MAX]; /* the organizations gone whole */
    size_t org_lens[WL_FORGET_ORGS_MAX];
    size_t n_orgs;
    uint64_t pings_upto;          /* the last ingest sequence when memory forgot */
    uint64_t signals_upto;        /* the last signal id then */

    /* What the requester's scan found; slices take them in this order. */
    uint64_t *edits;              /* signals of other organizations to keep without them */
    size_t n_edits, cap_edits, at_edits;
    struct wl_forget_key *keys;
    size_t n_keys, cap_keys, at_keys;
    uint64_t *pings;              /* raw ping keys, ascending */
    size_t n_pings, cap_pings, at_pings;

    char *blob;                   /* the forgotten install ids, one per line, as the
                                     marker holds them (malloc'd; the memory step) */
    size_t blob_len;
    uint64_t marker;              /* the marker's sequence once written, else 0 */
    struct wl_forget_result result;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, rc;
};

/* Meta keys: "forget_pending:<20 digits>" holds the marker (JSON: seq,
 * kind, org (hex) or install, via, pings_upto, signals_upto, orgs (hex),
 * deleted); "forget_installs:<20 digits>" the forgotten install ids, one
 * per line. */
#define WL_FORGET_RECORD "deletion:"      /* the deletion records */
#define WL_FORGET_RECORD_END "deletion;"
#define WL_FORGET_PENDING "forget_pending:"
#define WL_FORGET_PENDING_END "forget_pending;" /* ':' + 1: past every marker */
#define WL_FORGET_INSTALLS "forget_installs:"
#define WL_FORGET_SEQ_DIGITS 20
#define WL_FORGET_KEY_MAX 40

/* The meta key of prefix and seq into key (WL_FORGET_KEY_MAX); its length. */
size_t wl_forget_meta_key(char *key, const char *prefix, uint64_t seq);

/* The marker's JSON text for req (malloc'd), or NULL on ENOMEM. */
char *wl_forget_marker_json(const struct wl_forget_req *req);

/* Whether the organization (its id) goes whole with this forget: one the
 * memory step gave up, or for an organization forget one of its installs'
 * own (install:<id>). */
int wl_forget_gone_whole(const struct wl_forget_req *req, const uint8_t *org, size_t len);

/* The signal record v with the ids of installs taken out of its list,
 * unless it is skip_org's or goes whole (req). Returns 1 (it lists one:
 * with out non-NULL, *out is the packed record, malloc'd, *out_len its
 * length), 0 (nothing to edit) or -ENOMEM. */
int wl_forget_edit_of(const struct wl_forget_req *req, const char *v, size_t vlen,
                      uint8_t **out, size_t *out_len);

#endif
