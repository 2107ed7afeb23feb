/* What the API reads, shared by its files: records of the store decoded as
 * of a snapshot, and the JSON pieces several answers use. Internal to
 * collector/api*.c. Reads return 0, -ENOENT when the record is absent, or
 * another negative code with the reason in err. */
#ifndef WL_API_RECORDS_H
#define WL_API_RECORDS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "records.pb-c.h"
#include "signal_json.h"
#include "state_read.h"
#include "storage/store.h"

typedef Warmline__Store__V1__OrgState wl_org_state;
typedef Warmline__Store__V1__InstallState wl_install_state;
typedef Warmline__Store__V1__DailyState wl_daily_state;

/* An organization's signals in id order (oldest first). */
struct wl_org_signals {
    wl_signal **v;
    size_t n, cap;
};

/* The org_signals index (length byte + org id + signal id) as one request
 * reads it, from one organization to the next. An organization's newest
 * ids are in the writer's memory until a checkpoint writes their entries
 * (signals.h): the iterator is made (at the store's latest) after the
 * memory read it goes with, and made again when gen says ids have left
 * memory since, so that every id is in one or the other. */
struct wl_org_index {
    struct wl_iter *it;
    uint64_t gen;
};
void wl_org_index_free(struct wl_org_index *ix);

/* The organization's signals: those its index entries name and those
 * memory holds (mem: NULL when there was no state to read), in id order,
 * once; each from mem when its group is not yet written, else from the
 * store as it is now; an id without its signal is skipped (forgotten).
 * With max, the newest max ids alone (the index read from its end: the
 * cost does not grow with the organization's history). Free *out with
 * wl_org_signals_free (nothing to free on error). */
int wl_org_signals_load(struct wl_store *store, struct wl_org_index *ix, const uint8_t *org,
                        size_t org_len, const struct wl_signals_mem *mem, size_t max,
                        struct wl_org_signals *out, char *err, size_t errlen);
void wl_org_signals_free(struct wl_org_signals *s);

/* The organization's record; free with
 * warmline__store__v1__org_state__free_unpacked. */
int wl_org_state_get(struct wl_store *store, const struct wl_snapshot *snap, const uint8_t *org,
                     size_t org_len, wl_org_state **out, char *err, size_t errlen);

/* The install's record; free with
 * warmline__store__v1__install_state__free_unpacked. */
int wl_install_state_get(struct wl_store *store, const struct wl_snapshot *snap, const char *id,
                         wl_install_state **out, char *err, size_t errlen);

/* json_object_set_new that sets *bad on failure (the value is taken). */
void wl_json_put(json_t *o, const char *key, json_t *v, int *bad);

/* A string (NULL as ""), bytes that are not UTF-8 as '?'. */
json_t *wl_json_str(const char *s);
json_t *wl_json_str_array(char **v, size_t n);

/* An org id as people read it: 64 hex digits or "install:<id>". */
json_t *wl_json_org(const uint8_t *org, size_t org_len);

/* {count name: value}, in WL_COUNT_FIELDS order. */
json_t *wl_json_totals(const uint64_t *totals, size_t n);

/* Puts first_seen, last_seen, versions (when asked), editions, features
 * and totals of the organization. */
void wl_json_put_activity(json_t *o, const wl_org_state *st, int versions, int *bad);

#endif
