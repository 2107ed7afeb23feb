/* The exported tables: their columns (export schema WL_EXPORT_SCHEMA), the
 * sequence that orders and bounds them, and a row source per table that
 * reads a range of that sequence from one store snapshot and formats rows
 * through export_fmt.h.
 *
 *   pings     key order of the pings column family; sequence = ingest_seq
 *   signals   key order of the signals column family; sequence = signal id
 *   daily     rows whose UTC day is in the range, in (organization, day)
 *             order; sequence = UTC day number (days since 1970-01-01)
 *   accounts  every organization, in key order: a snapshot; its range is
 *             the ingest sequences it took in since the previous snapshot
 *
 * daily and accounts are derived from the state records, which the
 * collector writes only at checkpoints (tools/checkpoint.h): they follow
 * the checkpoint, never the ping log. accounts' sequence is the
 * checkpoint's (state_seq), so a snapshot says what it holds and a later
 * checkpoint is a new snapshot; daily's last day is one whose every ping
 * the records hold. A cursor never passes a row a later checkpoint writes.
 *
 * The column lists are frozen per schema version: a field added to the
 * ping or the account is not exported until the schema version moves.
 * Schema 2 (issue 13) added the pings columns source ("wire", "security",
 * "rudder") and presence (null for a wire ping, which carries every field;
 * for an edge ping the names wl_presence_json gives, collector/ping_json.h)
 * after org; nothing else changed. Each manifest says its schema. */
#ifndef WL_EXPORT_TABLE_H
#define WL_EXPORT_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "export_fmt.h"
#include "storage/store.h"

#define WL_EXPORT_SCHEMA 2

/* A day is complete, and daily exports it, once it ended this long before
 * the export's as_of: pings received just before midnight may still be in
 * the collector's queue just after it. */
#define WL_EXPORT_DAY_GRACE_MS (3600 * 1000LL)

enum wl_export_table_id { WL_EXPORT_PINGS, WL_EXPORT_SIGNALS, WL_EXPORT_DAILY, WL_EXPORT_ACCOUNTS };

struct wl_export_table {
    enum wl_export_table_id id;
    const char *name;
    const char *sequence;   /* what first/last count: ingest_seq, signal_id, utc_day */
    uint64_t min_first;     /* the lowest sequence there is */
    int file_ranges;        /* 1: each file covers its own sub-range; 0: files are numbered
                               parts of the run's range (rows are not in sequence order) */
    const char *const *cols;
    size_t ncols;
};

extern const struct wl_export_table wl_export_tables[];
extern const size_t wl_export_n_tables;

/* NULL for an unknown name. */
const struct wl_export_table *wl_export_table_find(const char *name);

/* What every row source reads from. */
struct wl_export_ctx {
    struct wl_store *store;
    const struct wl_snapshot *snap;
    int64_t as_of;              /* unix ms: the export's clock (accounts' score, complete days) */
    uint64_t half_life_ms;      /* score_half_life_ms */
    uint64_t snapshot_seq;      /* the ingest_seq accounts rows carry: cp.seq */
    struct wl_checkpoint cp;    /* the state records' checkpoint (daily, accounts) */
};

/* The snapshot's ingest_seq (meta, or the last ping's when higher). */
int wl_export_ingest_seq(const struct wl_export_ctx *ctx, uint64_t *out, char *err,
                         size_t errlen);

/* The highest sequence of the table the snapshot can export: ingest_seq
 * (pings), the last signal id, the checkpoint's sequence (accounts: cp.seq),
 * the last complete day whose pings the records all hold (daily; -ENOENT
 * when there is none yet). 0 or a negative errno with err filled. */
int wl_export_upper(const struct wl_export_table *t, const struct wl_export_ctx *ctx,
                    uint64_t *out, char *err, size_t errlen);

struct wl_export_src;

/* A source of the table's rows in [first, last]. 0 or -ENOMEM/-EPROTO. */
int wl_export_src_open(const struct wl_export_table *t, const struct wl_export_ctx *ctx,
                       uint64_t first, uint64_t last, struct wl_export_src **out, char *err,
                       size_t errlen);

/* The next row: 1 with its sequence in *seq, formatted into rows unless rows
 * is NULL (counting only); 0 after the last; a negative errno with err filled
 * (-EINVAL: a record that does not decode; -EIO: the store failed). */
int wl_export_src_next(struct wl_export_src *s, struct wl_rows *rows, uint64_t *seq, char *err,
                       size_t errlen);

void wl_export_src_free(struct wl_export_src *s);

#endif
