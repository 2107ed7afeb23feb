/* The manifest of one export run: what a consumer loads. Written last, so
 * its presence says every file it lists is complete and durable.
 *
 *   {"schema_version": WL_EXPORT_SCHEMA (2), "table": "pings", "format": "ndjson",
 *    "compression": "gzip", "cursor": "etl" | null,
 *    "sequence": "ingest_seq", "first": 1, "last": 1000000, "rows": 1000000,
 *    "as_of": ms, "as_of_iso": "...",            (daily and accounts only)
 *    "checkpoint_seq": N, "checkpoint_at": ms | null,
 *    "checkpoint_at_iso": "..." | null,          (daily and accounts only: the
 *                                                 state records' checkpoint)
 *    "columns": ["ingest_seq", ...],
 *    "files": [{"name": "...", "first": 1, "last": 500000, "part": 1 (daily,
 *               accounts), "rows": 500000, "bytes": 12345678,
 *               "sha256": "<64 hex>"}, ...]}
 *
 * first..last are inclusive; the files' ranges tile the run's range (daily
 * and accounts: every part covers the whole range). A manifest lists only
 * files of its own schema: a directory that earlier builds wrote may hold
 * manifests of older schemas, each with its columns (the cursor is only the
 * names, so a new build goes on after them). */
#ifndef WL_EXPORT_MANIFEST_H
#define WL_EXPORT_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "export_dir.h"
#include "export_fmt.h"
#include "export_table.h"

struct wl_export_file {
    char name[WL_EXPORT_NAME_MAX];
    uint64_t first, last;
    unsigned part;
    uint64_t rows, bytes;
    char sha256[65];
    int existed;            /* the name was in the directory before this run */
};

struct wl_export_manifest {
    const struct wl_export_table *table;
    enum wl_export_format format;
    const char *cursor;     /* "" when ad hoc */
    uint64_t first, last, rows;
    int64_t as_of;          /* written for daily and accounts */
    const struct wl_checkpoint *checkpoint; /* likewise; at 0: not recorded (null) */
    const struct wl_export_file *files;
    size_t n_files;
};

/* "ndjson" or "csv". */
const char *wl_export_format_name(enum wl_export_format f);

/* The manifest as JSON text ending in a newline; malloc'd, NULL on ENOMEM. */
char *wl_export_manifest_json(const struct wl_export_manifest *m);

#endif
