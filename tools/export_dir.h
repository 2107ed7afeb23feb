/* The export's output directory: its file names, the cursor they hold, and
 * crash-safe publication (temp file, fsync, rename, fsync of the directory).
 *
 * Names (sequences zero-padded to 12 digits; CURSOR absent for an ad-hoc
 * --since/--until run):
 *   TABLE[-CURSOR]-FIRST-LAST.FORMAT.gz            pings, signals: one file
 *                                                  per sub-range
 *   TABLE[-CURSOR]-FIRST-LAST-PART.FORMAT.gz       daily, accounts: parts
 *                                                  (0001, ...) of a run
 *   manifest-TABLE[-CURSOR]-FIRST-LAST.json        written last
 *   .wl-export-N.tmp                               in progress
 * A cursor name is a letter then letters, digits or '_' (at most 64), so
 * names parse back without ambiguity. The cursor of TABLE-CURSOR is the
 * highest LAST of its manifests: nothing else is kept. */
#ifndef WL_EXPORT_DIR_H
#define WL_EXPORT_DIR_H

#include <stddef.h>
#include <stdint.h>

#define WL_EXPORT_CURSOR_MAX 64
#define WL_EXPORT_NAME_MAX 200

struct wl_export_name {
    int manifest;                          /* 1: a manifest; 0: a data file */
    char table[16];
    char cursor[WL_EXPORT_CURSOR_MAX + 1]; /* "" when ad hoc */
    uint64_t first, last;
    unsigned part;                         /* 0: none */
    char format[8];                        /* data files: ndjson, csv */
};

/* 1 when s is a valid cursor name. */
int wl_export_cursor_valid(const char *s);

/* Formats n into out (WL_EXPORT_NAME_MAX bytes). */
void wl_export_name_format(const struct wl_export_name *n, char *out);

/* Parses a file name; 0, or -1 when it is not an export name. */
int wl_export_name_parse(const char *s, struct wl_export_name *out);

struct wl_outdir {
    char path[4096];
    int fd;          /* the directory, -1 when it does not exist (dry run) */
    int created;     /* this run made it */
    unsigned tmp_seq;
};

/* Opens dir for writing: creates it (and its parents) when missing, takes an
 * exclusive lock on it (-EBUSY when another export holds it) and checks a
 * file can be created in it. With readonly, only opens it when it exists
 * (fd -1 otherwise) and changes nothing. 0 or a negative errno, err says. */
int wl_outdir_open(struct wl_outdir *d, const char *dir, int readonly, char *err,
                   size_t errlen);

/* Closes (the lock goes with it). remove_if_created: rmdir the directory
 * when this run made it and it is still empty. */
void wl_outdir_close(struct wl_outdir *d, int remove_if_created);

/* What the directory holds for one table and cursor. */
struct wl_export_scan {
    int have_cursor;        /* some manifest of this table and cursor exists */
    uint64_t cursor;        /* then: the highest last among them */
    size_t manifests;
    /* Data files of this table and cursor past the cursor: written by a run
     * that stopped before its manifest. */
    struct wl_export_name *orphans;
    size_t n_orphans;
    uint64_t orphan_last;   /* the highest last among them */
};

/* Lists the directory (an empty scan when it does not exist). cursor ""
 * scans nothing (ad-hoc runs have no cursor). 0 or -errno. */
int wl_outdir_scan(const struct wl_outdir *d, const char *table, const char *cursor,
                   struct wl_export_scan *out, char *err, size_t errlen);
void wl_export_scan_free(struct wl_export_scan *s);

/* Removes .wl-export-*.tmp files (left by a run that crashed; the lock
 * says no run is writing them now). Returns how many, or -errno. */
int wl_outdir_remove_temps(struct wl_outdir *d);

/* Creates a new temp file; its name goes to tmp (64 bytes). fd or -errno. */
int wl_outdir_tmp(struct wl_outdir *d, char tmp[64]);

/* fsyncs fd and closes it, renames tmp to name, fsyncs the directory.
 * 0 or -errno (fd is closed either way). */
int wl_outdir_publish(struct wl_outdir *d, int fd, const char *tmp, const char *name);

/* 1 when name exists in the directory. */
int wl_outdir_exists(const struct wl_outdir *d, const char *name);

/* unlink in the directory: 0 or -errno (-ENOENT included). */
int wl_outdir_unlink(struct wl_outdir *d, const char *name);

/* fsync of the directory itself. */
int wl_outdir_sync(struct wl_outdir *d);

#endif
