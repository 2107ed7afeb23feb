/* warmline export: tables of the store as gzip-compressed NDJSON or CSV
 * files with a manifest, for data engineers. Reads one snapshot of a
 * secondary instance, so it runs beside a live collector. Incremental by a
 * named cursor kept in the output directory itself (the manifests), ad hoc
 * by --since/--until. What each piece does: export_table.h (tables and
 * rows), export_fmt.h (NDJSON, CSV), export_gz.h (gzip), export_dir.h
 * (names, cursor, crash-safe files), export_manifest.h. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cli.h"
#include "export_dir.h"
#include "export_fmt.h"
#include "export_gz.h"
#include "export_manifest.h"
#include "export_table.h"
#include "storage/store.h"

static const char *const CMD = "export";

#define DEFAULT_MAX_ROWS 500000
#define DEFAULT_CURSOR "default"
#define FLUSH_BYTES (256 * 1024) /* rows handed to the compressor at a time: still in cache */

void wl_usage_export(FILE *out)
{
    fprintf(out,
            "Usage: warmline export --table T --format ndjson|csv --out DIR\n"
            "                       [--data-dir DIR] [--cursor NAME] [--max-rows N]\n"
            "                       [--since SEQ] [--until SEQ] [--dry-run] [--config FILE]\n"
            "\n"
            "Writes a table of the store as gzip-compressed NDJSON or CSV files in DIR,\n"
            "then a manifest listing them (rows, bytes, sha256, sequence ranges). Reads\n"
            "one consistent snapshot and works while the collector runs.\n"
            "\n"
            "Tables (export schema %d; the columns are listed in each manifest):\n"
            "  pings     every stored ping with its organization, receive time, event\n"
            "            time, ingest_seq, source (wire, security, rudder) and, for an\n"
            "            edge ping, presence (the fields it carries); sequence = ingest_seq\n"
            "  signals   the signal log; sequence = signal id\n"
            "  daily     organization-day rows of complete UTC days (ended an hour or\n"
            "            more before the export and before the first ping the last\n"
            "            checkpoint does not hold); sequence = UTC day number\n"
            "  accounts  a snapshot of every organization with its score as of the\n"
            "            export; sequence = the ingest_seq of the last checkpoint\n"
            "daily and accounts come from the state records, which the collector\n"
            "writes at checkpoints: their manifest names the checkpoint (checkpoint_seq,\n"
            "checkpoint_at), and a cursor never passes what a later checkpoint writes.\n"
            "\n"
            "Incremental (default): --cursor NAME (default \"%s\") exports what came\n"
            "after the highest 'last' of the manifests of that table and cursor in DIR,\n"
            "up to what the snapshot holds. A new name starts from the beginning. The\n"
            "cursor advances only when the manifest is written: a run that stopped\n"
            "before redoes the same range, into the same files.\n"
            "Ad hoc: --since SEQ and/or --until SEQ (inclusive; for daily also\n"
            "YYYY-MM-DD) export that range without a cursor.\n"
            "\n"
            "  --table T       pings, signals, daily or accounts\n"
            "  --format F      ndjson or csv (gzip-compressed either way)\n"
            "  --out DIR       the output directory (created when missing)\n"
            "  --data-dir DIR  the collector's data directory (default: data_dir from\n"
            "                  the configuration)\n"
            "  --cursor NAME   a letter, then letters, digits or '_' (64 at most)\n"
            "  --max-rows N    rows per file at most (default %d)\n"
            "  --since SEQ     first sequence of an ad-hoc range\n"
            "  --until SEQ     last sequence of an ad-hoc range\n"
            "  --dry-run       print the ranges, row counts and file names; write nothing\n"
            "  --config FILE   the collector's INI file (score_half_life_ms for accounts)\n"
            "  -h, --help      this help\n"
            "\n"
            "Exit status: 0 exported, or nothing new to export; 1 reading the store or\n"
            "writing the files failed, or another export holds DIR (files of the run\n"
            "are removed); 2 usage error, bad configuration, the store cannot be\n"
            "opened or DIR cannot be written (nothing is written).\n",
            WL_EXPORT_SCHEMA, DEFAULT_CURSOR, DEFAULT_MAX_ROWS);
}

/* ---- signals ---------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    interrupted = sig;
}

static void catch_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int64_t now_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Test hooks (documented in the README section): the process ends with
 * _exit(9) at a chosen point, leaving the output directory as a crash
 * there would. The row source and the store are closed first only so that
 * the store's temporary secondary directory does not pile up in /tmp. */
static void crash_point(const char *env, uint64_t n, struct wl_export_src *src,
                        struct wl_store *store)
{
    const char *v = getenv(env);
    uint64_t want;
    if (v != NULL && wl_cli_parse_u64(v, &want) == 0 && want == n) {
        wl_export_src_free(src);
        wl_store_close(store);
        _exit(9);
    }
}

/* ---- options ------------------------------------------------------------------- */

struct opts {
    const char *data_dir, *table, *format, *out, *cursor, *config;
    uint64_t max_rows, since, until;
    int has_since, has_until, dry_run;
};

/* SEQ, or for daily a date YYYY-MM-DD (its UTC day number). */
static int parse_seq(const char *s, int daily, uint64_t *out)
{
    if (wl_cli_parse_u64(s, out) == 0)
        return 0;
    struct tm tm = {0};
    char *end;
    if (!daily || (end = strptime(s, "%Y-%m-%d", &tm)) == NULL || *end != '\0')
        return -EINVAL;
    time_t t = timegm(&tm);
    if (t < 0)
        return -EINVAL;
    *out = (uint64_t)(t / 86400);
    return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    enum { O_DATA_DIR = 256, O_TABLE, O_FORMAT, O_OUT, O_CURSOR, O_MAX_ROWS, O_SINCE, O_UNTIL,
           O_DRY_RUN, O_CONFIG };
    static const struct option opts[] = {
        {"data-dir", required_argument, NULL, O_DATA_DIR},
        {"table", required_argument, NULL, O_TABLE},
        {"format", required_argument, NULL, O_FORMAT},
        {"out", required_argument, NULL, O_OUT},
        {"cursor", required_argument, NULL, O_CURSOR},
        {"max-rows", required_argument, NULL, O_MAX_ROWS},
        {"since", required_argument, NULL, O_SINCE},
        {"until", required_argument, NULL, O_UNTIL},
        {"dry-run", no_argument, NULL, O_DRY_RUN},
        {"config", required_argument, NULL, O_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *since = NULL, *until = NULL, *max_rows = NULL;
    int c;

    memset(o, 0, sizeof *o);
    o->max_rows = DEFAULT_MAX_ROWS;
    while ((c = wl_cli_getopt(CMD, argc, argv, ":h", opts)) != -1) {
        switch (c) {
        case O_DATA_DIR: o->data_dir = optarg; break;
        case O_TABLE: o->table = optarg; break;
        case O_FORMAT: o->format = optarg; break;
        case O_OUT: o->out = optarg; break;
        case O_CURSOR: o->cursor = optarg; break;
        case O_MAX_ROWS: max_rows = optarg; break;
        case O_SINCE: since = optarg; break;
        case O_UNTIL: until = optarg; break;
        case O_DRY_RUN: o->dry_run = 1; break;
        case O_CONFIG: o->config = optarg; break;
        case 'h': wl_usage_export(stdout); return -1;
        default: return WL_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return wl_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (o->table == NULL)
        return wl_cli_usage_error(CMD, "missing --table (pings, signals, daily or accounts)");
    const struct wl_export_table *t = wl_export_table_find(o->table);
    if (t == NULL)
        return wl_cli_usage_error(
            CMD, "unknown table '%s' (expected pings, signals, daily or accounts)", o->table);
    if (o->format == NULL)
        return wl_cli_usage_error(CMD, "missing --format (ndjson or csv)");
    if (strcmp(o->format, "ndjson") != 0 && strcmp(o->format, "csv") != 0)
        return wl_cli_usage_error(CMD, "unknown format '%s' (expected ndjson or csv)", o->format);
    if (o->out == NULL || o->out[0] == '\0')
        return wl_cli_usage_error(CMD, "missing --out DIR");
    if (max_rows != NULL && (wl_cli_parse_u64(max_rows, &o->max_rows) != 0 || o->max_rows == 0))
        return wl_cli_usage_error(CMD, "--max-rows: '%s' is not a whole number above 0",
                                  max_rows);
    int daily = t->id == WL_EXPORT_DAILY;
    if (since != NULL && parse_seq(since, daily, &o->since) != 0)
        return wl_cli_usage_error(CMD, "--since: '%s' is not a whole number%s", since,
                                  daily ? " or a date YYYY-MM-DD" : "");
    if (until != NULL && parse_seq(until, daily, &o->until) != 0)
        return wl_cli_usage_error(CMD, "--until: '%s' is not a whole number%s", until,
                                  daily ? " or a date YYYY-MM-DD" : "");
    o->has_since = since != NULL;
    o->has_until = until != NULL;
    if (o->has_since && o->has_until && o->since > o->until)
        return wl_cli_usage_error(CMD, "--since %llu is after --until %llu",
                                  (unsigned long long)o->since, (unsigned long long)o->until);
    if ((o->has_since || o->has_until) && o->cursor != NULL)
        return wl_cli_usage_error(CMD, "--cursor and --since/--until exclude each other: "
                                       "a cursor decides the range itself");
    if ((o->has_since || o->has_until) && t->id == WL_EXPORT_ACCOUNTS)
        return wl_cli_usage_error(CMD, "accounts is a snapshot as of now: it takes no "
                                       "--since/--until (use --cursor)");
    if (o->cursor != NULL && !wl_export_cursor_valid(o->cursor))
        return wl_cli_usage_error(CMD, "--cursor: '%s' is not a cursor name (a letter, then "
                                       "letters, digits or '_', 64 at most)", o->cursor);
    if (o->cursor == NULL && !o->has_since && !o->has_until)
        o->cursor = DEFAULT_CURSOR;
    return 0;
}

/* ---- the run ------------------------------------------------------------------- */

struct run {
    const struct wl_export_table *t;
    enum wl_export_format fmt;
    const char *cursor;          /* "" when ad hoc */
    uint64_t first, last, max_rows;
    int dry;
    struct wl_outdir *dir;

    struct wl_export_file *files;
    size_t n_files, cap_files;
    uint64_t rows;

    /* the file being written */
    int open;
    int fd;
    char tmp[64];
    struct wl_gz gz;
    uint64_t file_rows, file_first, next_first;
    unsigned part;

    char *header;                /* CSV header row */
    size_t header_len;

    /* progress on a terminal */
    int progress;
    int64_t progress_at, started;
};

static void progress(struct run *r, uint64_t seq, int final)
{
    int64_t now = now_ms(CLOCK_MONOTONIC);
    if (!r->progress || (!final && now - r->progress_at < 500))
        return;
    r->progress_at = now;
    double secs = (double)(now - r->started) / 1000.0;
    fprintf(stderr, "\rwarmline export: %s %llu rows", r->t->name, (unsigned long long)r->rows);
    if (r->t->file_ranges && r->last >= r->first)
        fprintf(stderr, " (%s %llu of %llu..%llu)", r->t->sequence, (unsigned long long)seq,
                (unsigned long long)r->first, (unsigned long long)r->last);
    if (secs > 0)
        fprintf(stderr, ", %.0f rows/s", (double)r->rows / secs);
    fprintf(stderr, "\033[K%s", final ? "\n" : "");
}

static int open_file(struct run *r, char *err, size_t errlen)
{
    int rc;
    r->file_rows = 0;
    r->file_first = r->next_first;
    r->part++;
    r->open = 1;
    if (r->dry)
        return 0;
    r->fd = wl_outdir_tmp(r->dir, r->tmp);
    if (r->fd < 0) {
        r->open = 0;
        snprintf(err, errlen, "%s: cannot create a file: %s", r->dir->path, strerror(-r->fd));
        return r->fd;
    }
    if ((rc = wl_gz_open(&r->gz, r->fd, WL_EXPORT_GZ_LEVEL)) != 0 ||
        (rc = wl_gz_write(&r->gz, r->header, r->header_len)) != 0) {
        snprintf(err, errlen, "%s: %s", r->dir->path, strerror(-rc));
        return rc;
    }
    return 0;
}

/* Ends the current file as covering file_first..hi and publishes it. */
static int close_file(struct run *r, uint64_t hi, char *err, size_t errlen)
{
    struct wl_export_name n = {.manifest = 0};
    struct wl_export_file *f;
    int rc;

    if (r->n_files == r->cap_files) {
        size_t cap = r->cap_files ? 2 * r->cap_files : 16;
        f = realloc(r->files, cap * sizeof *f);
        if (f == NULL) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        r->files = f;
        r->cap_files = cap;
    }
    f = &r->files[r->n_files];
    memset(f, 0, sizeof *f);
    snprintf(n.table, sizeof n.table, "%s", r->t->name);
    snprintf(n.cursor, sizeof n.cursor, "%s", r->cursor);
    snprintf(n.format, sizeof n.format, "%s", wl_export_format_name(r->fmt));
    if (r->t->file_ranges) {
        n.first = r->file_first;
        n.last = hi;
    } else {
        n.first = r->first;
        n.last = r->last;
        n.part = r->part;
    }
    wl_export_name_format(&n, f->name);
    f->first = n.first;
    f->last = n.last;
    f->part = n.part;
    f->rows = r->file_rows;
    r->open = 0;
    r->next_first = hi + 1;
    if (!r->dry) {
        if ((rc = wl_gz_finish(&r->gz, &f->bytes, f->sha256)) != 0) {
            snprintf(err, errlen, "%s: writing %s: %s", r->dir->path, f->name, strerror(-rc));
            close(r->fd);
            r->fd = -1;
            return rc;
        }
        f->existed = wl_outdir_exists(r->dir, f->name);
        rc = wl_outdir_publish(r->dir, r->fd, r->tmp, f->name);
        r->fd = -1;
        r->tmp[0] = '\0';
        if (rc != 0) {
            snprintf(err, errlen, "%s: writing %s: %s", r->dir->path, f->name, strerror(-rc));
            return rc;
        }
    }
    r->n_files++;
    return 0;
}

/* Removes what this run wrote (a failed run leaves the directory as it was;
 * a file it replaced held the same rows). */
static void undo(struct run *r)
{
    if (r->dry)
        return;
    if (r->open) {
        wl_gz_abort(&r->gz);
        if (r->fd >= 0)
            close(r->fd);
        r->open = 0;
    }
    if (r->tmp[0] != '\0')
        wl_outdir_unlink(r->dir, r->tmp);
    for (size_t i = 0; i < r->n_files; i++) {
        if (!r->files[i].existed)
            wl_outdir_unlink(r->dir, r->files[i].name);
    }
    wl_outdir_sync(r->dir);
}

static int write_rows(struct run *r, const struct wl_export_ctx *ctx, char *err, size_t errlen)
{
    struct wl_export_src *src = NULL;
    struct wl_rows rows;
    uint64_t seq = 0, prev = 0;
    int rc;

    if ((rc = wl_rows_init(&rows, r->fmt, r->t->cols, r->t->ncols)) != 0) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    wl_rows_header(&rows);
    if (rows.err != 0 || rows.buf.oom) {
        wl_rows_free(&rows);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    r->header = malloc(rows.buf.len + 1);
    if (r->header == NULL) {
        wl_rows_free(&rows);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (rows.buf.len > 0) /* JSON rows have no header: p may be NULL */
        memcpy(r->header, rows.buf.p, rows.buf.len);
    r->header_len = rows.buf.len;
    wl_rows_take(&rows);
    r->next_first = r->first;

    if ((rc = wl_export_src_open(r->t, ctx, r->first, r->last, &src, err, errlen)) != 0)
        goto done;
    for (;;) {
        size_t mark = rows.buf.len;
        rc = wl_export_src_next(src, r->dry ? NULL : &rows, &seq, err, errlen);
        if (rc <= 0)
            break;
        if (interrupted) {
            snprintf(err, errlen, "interrupted by signal %d", (int)interrupted);
            rc = -EINTR;
            goto done;
        }
        if (r->open && r->file_rows == r->max_rows) {
            /* The file is full and there is more: it ends at the last row. */
            if (!r->dry && (rc = wl_gz_write(&r->gz, rows.buf.p, mark)) != 0) {
                snprintf(err, errlen, "%s: %s", r->dir->path, strerror(-rc));
                goto done;
            }
            if ((rc = close_file(r, prev, err, errlen)) != 0)
                goto done;
            if (!r->dry)
                crash_point("WL_EXPORT_CRASH_AFTER_FILES", r->n_files, src, ctx->store);
            if (mark < rows.buf.len) /* a dry run formats nothing: p may be NULL */
                memmove(rows.buf.p, rows.buf.p + mark, rows.buf.len - mark);
            rows.buf.len -= mark;
        }
        if (!r->open && (rc = open_file(r, err, errlen)) != 0)
            goto done;
        r->file_rows++;
        r->rows++;
        prev = seq;
        if (rows.buf.len >= FLUSH_BYTES) {
            if ((rc = wl_gz_write(&r->gz, rows.buf.p, rows.buf.len)) != 0) {
                snprintf(err, errlen, "%s: %s", r->dir->path, strerror(-rc));
                goto done;
            }
            wl_rows_take(&rows);
        }
        if ((r->rows & 4095) == 0)
            progress(r, seq, 0);
    }
    if (rc < 0)
        goto done;
    if (r->open) {
        if (!r->dry && (rc = wl_gz_write(&r->gz, rows.buf.p, rows.buf.len)) != 0) {
            snprintf(err, errlen, "%s: %s", r->dir->path, strerror(-rc));
            goto done;
        }
        wl_rows_take(&rows);
        if ((rc = close_file(r, r->last, err, errlen)) != 0)
            goto done;
        if (!r->dry)
            crash_point("WL_EXPORT_CRASH_AFTER_FILES", r->n_files, src, ctx->store);
    }
    progress(r, r->last, 1);

done:
    wl_export_src_free(src);
    wl_rows_free(&rows);
    return rc;
}

/* daily and accounts: which checkpoint the state records are from. */
static void say_checkpoint(const struct wl_checkpoint *cp)
{
    char iso[40];
    wl_checkpoint_iso(cp->at, iso, sizeof iso);
    fprintf(stderr, "warmline export: the state records are as of checkpoint state_seq=%llu at %s; "
                 "%llu pings stored since wait for the next checkpoint\n",
            (unsigned long long)cp->seq, cp->at > 0 ? iso : "(time not recorded)",
            (unsigned long long)cp->pings_after);
}

static int write_manifest(struct run *r, const struct wl_export_ctx *ctx, char *name, char *err,
                          size_t errlen)
{
    struct wl_export_manifest m = {
        .table = r->t, .format = r->fmt, .cursor = r->cursor, .first = r->first,
        .last = r->last, .rows = r->rows, .as_of = ctx->as_of, .checkpoint = &ctx->cp,
        .files = r->files, .n_files = r->n_files,
    };
    struct wl_export_name n = {.manifest = 1, .first = r->first, .last = r->last};
    snprintf(n.table, sizeof n.table, "%s", r->t->name);
    snprintf(n.cursor, sizeof n.cursor, "%s", r->cursor);
    wl_export_name_format(&n, name);
    if (r->dry)
        return 0;

    char *text = wl_export_manifest_json(&m);
    if (text == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int fd = wl_outdir_tmp(r->dir, r->tmp), rc = 0;
    if (fd < 0) {
        rc = fd;
    } else {
        size_t len = strlen(text), off = 0;
        while (off < len && rc == 0) {
            ssize_t w = write(fd, text + off, len - off);
            if (w < 0 && errno != EINTR)
                rc = -errno;
            else if (w > 0)
                off += (size_t)w;
        }
        if (rc == 0) {
            rc = wl_outdir_publish(r->dir, fd, r->tmp, name);
            if (rc != 0) /* renamed but not synced, perhaps: the run did not happen */
                wl_outdir_unlink(r->dir, name);
        } else {
            close(fd);
        }
    }
    free(text);
    if (rc != 0)
        snprintf(err, errlen, "%s: writing %s: %s", r->dir->path, name, strerror(-rc));
    else
        r->tmp[0] = '\0';
    return rc;
}

/* Removes the files an interrupted run left past the cursor that this run
 * did not write again (a consumer would never load them: no manifest). */
static int remove_orphans(struct run *r, const struct wl_export_scan *scan, char *err,
                          size_t errlen)
{
    int removed = 0;
    for (size_t i = 0; i < scan->n_orphans; i++) {
        char name[WL_EXPORT_NAME_MAX];
        int rewritten = 0;
        wl_export_name_format(&scan->orphans[i], name);
        for (size_t j = 0; j < r->n_files && !rewritten; j++)
            rewritten = strcmp(r->files[j].name, name) == 0;
        if (rewritten)
            continue;
        int rc = wl_outdir_unlink(r->dir, name);
        if (rc != 0 && rc != -ENOENT) {
            snprintf(err, errlen, "%s: removing %s: %s", r->dir->path, name, strerror(-rc));
            return rc;
        }
        removed++;
    }
    if (removed > 0) {
        fprintf(stderr, "warmline export: removed %d file(s) of an interrupted run\n", removed);
        return wl_outdir_sync(r->dir);
    }
    return 0;
}

static void print_plan(const struct run *r, const char *manifest)
{
    const char *verb = r->dry ? "would write" : "wrote";
    for (size_t i = 0; i < r->n_files; i++) {
        const struct wl_export_file *f = &r->files[i];
        if (r->dry)
            printf("%s %s: %llu rows\n", verb, f->name, (unsigned long long)f->rows);
        else
            printf("%s %s: %llu rows, %llu bytes\n", verb, f->name, (unsigned long long)f->rows,
                   (unsigned long long)f->bytes);
    }
    printf("%s %s: %s %s %llu..%llu, %llu rows in %zu file(s)\n", verb, manifest, r->t->name,
           r->t->sequence, (unsigned long long)r->first, (unsigned long long)r->last,
           (unsigned long long)r->rows, r->n_files);
}

/* The run's range: after the cursor up to the view's end, or the ad-hoc
 * bounds clipped to it. A run that stopped before its manifest left files
 * past the cursor: the same range again, so that its files come out the
 * same (accounts excepted: a snapshot of now cannot be the same). */
static void plan_range(struct run *r, const struct opts *o, const struct wl_export_scan *scan,
                       uint64_t upper, int have_upper)
{
    if (r->cursor[0] == '\0') {
        r->first = o->has_since ? o->since : r->t->min_first;
        r->last = o->has_until ? o->until : upper;
        if (r->last > upper || !have_upper) {
            if (o->has_until)
                fprintf(stderr, "warmline export: --until %llu is past what the store holds: "
                                "the range ends at %llu\n",
                        (unsigned long long)o->until, (unsigned long long)upper);
            r->last = upper;
        }
        return;
    }
    r->first = scan->have_cursor ? scan->cursor + 1 : r->t->min_first;
    r->last = upper;
    if (!scan->have_cursor)
        fprintf(stderr, "warmline export: cursor %s of %s is new in %s: starting at %s %llu\n",
                r->cursor, r->t->name, r->dir->path, r->t->sequence,
                (unsigned long long)r->first);
    if (scan->n_orphans == 0)
        return;
    int same = r->t->id != WL_EXPORT_ACCOUNTS;
    for (size_t i = 0; i < scan->n_orphans && same; i++)
        same = strcmp(scan->orphans[i].format, o->format) == 0;
    if (same && have_upper && scan->orphan_last >= r->first && scan->orphan_last <= upper) {
        r->last = scan->orphan_last;
        fprintf(stderr, "warmline export: a run that stopped before its manifest left %zu "
                        "file(s): exporting %s %llu..%llu again\n",
                scan->n_orphans, r->t->sequence, (unsigned long long)r->first,
                (unsigned long long)r->last);
    } else {
        fprintf(stderr, "warmline export: a run that stopped before its manifest left %zu "
                        "file(s): %s\n", scan->n_orphans,
                r->dry ? "a run would remove them" : "they go once this run's files are written");
    }
}

int wl_cmd_export(int argc, char **argv)
{
    struct opts o;
    struct wl_config cfg;
    struct wl_store *store = NULL;
    const struct wl_snapshot *snap = NULL; /* see below: the secondary is the snapshot */
    struct wl_outdir dir = {.fd = -1};
    struct wl_export_scan scan = {0};
    struct run r = {.fd = -1};
    char err[8192], manifest[WL_EXPORT_NAME_MAX];
    int rc = parse_opts(argc, argv, &o);
    int dir_open = 0;

    if (rc != 0)
        return rc < 0 ? WL_EXIT_OK : rc;
    if ((rc = wl_cli_config(CMD, o.config, &cfg)) != 0)
        return rc;
    wl_config_free(&cfg); /* the rules are not needed here; the options stay */
    if (o.data_dir == NULL)
        o.data_dir = cfg.data_dir;
    /* Test hook: the export's clock (accounts' score, complete days). */
    const char *hook = getenv("WL_EXPORT_AS_OF_MS");
    uint64_t fixed = 0;
    if (hook != NULL && (wl_cli_parse_u64(hook, &fixed) != 0 || fixed > INT64_MAX))
        return wl_cli_usage_error(CMD, "WL_EXPORT_AS_OF_MS: '%s' is not unix milliseconds",
                                  hook);
    int64_t as_of = hook != NULL ? (int64_t)fixed : now_ms(CLOCK_REALTIME);
    r.t = wl_export_table_find(o.table);
    r.fmt = strcmp(o.format, "csv") == 0 ? WL_EXPORT_CSV : WL_EXPORT_NDJSON;
    r.cursor = o.cursor != NULL ? o.cursor : "";
    r.max_rows = o.max_rows;
    r.dry = o.dry_run;
    r.dir = &dir;
    catch_signals();

    /* One view for the whole run: a secondary instance sees the primary's
     * writes up to the moment it opens (whole write batches: the WAL is
     * replayed record by record) and nothing later unless it is told to
     * catch up, which the export never does. That frozen instance is the
     * snapshot (RocksDB refuses snapshots on a secondary: "Not implemented"),
     * so every read below passes snap = NULL. */
    wl_store_thread_init(); /* no per-thread perf counters: this thread reads a lot */
    if (wl_store_open(o.data_dir, WL_STORE_SECONDARY, &store, err, sizeof err) != 0) {
        wl_cli_error(CMD, "%s", err);
        return WL_EXIT_USAGE;
    }
    rc = WL_EXIT_FAIL;
    struct wl_export_ctx ctx = {
        .store = store, .snap = snap, .half_life_ms = cfg.score_half_life_ms,
        .as_of = as_of,
    };
    /* daily and accounts follow the state records' checkpoint. */
    if (wl_checkpoint_read(store, snap, 0, &ctx.cp, err, sizeof err) != 0) {
        wl_cli_error(CMD, "the checkpoint: %s", err);
        goto done;
    }
    ctx.snapshot_seq = ctx.cp.seq;

    dir_open = 1; /* closing is safe whatever happens: a directory made here goes */
    int orc = wl_outdir_open(&dir, o.out, o.dry_run, err, sizeof err);
    if (orc != 0) {
        wl_cli_error(CMD, "%s", err);
        rc = orc == -EBUSY ? WL_EXIT_FAIL : WL_EXIT_USAGE;
        goto done;
    }
    if (wl_outdir_scan(&dir, r.t->name, r.cursor, &scan, err, sizeof err) != 0) {
        wl_cli_error(CMD, "%s", err);
        goto done;
    }

    /* The range. */
    uint64_t upper = 0;
    int have_upper = 1;
    int urc = wl_export_upper(r.t, &ctx, &upper, err, sizeof err);
    if (urc == -ENOENT) {
        have_upper = 0;
    } else if (urc != 0) {
        wl_cli_error(CMD, "%s", err);
        goto done;
    }
    plan_range(&r, &o, &scan, upper, have_upper);
    int state = r.t->id == WL_EXPORT_DAILY || r.t->id == WL_EXPORT_ACCOUNTS;
    if (!have_upper || r.first > r.last) {
        if (!have_upper)
            printf("nothing to export: %s\n", err);
        else
            printf("nothing to export: %s %s %llu..%llu is empty (the snapshot ends at %llu)\n",
                   r.t->name, r.t->sequence, (unsigned long long)r.first,
                   (unsigned long long)r.last, (unsigned long long)upper);
        if (state)
            say_checkpoint(&ctx.cp);
        rc = WL_EXIT_OK;
        goto done;
    }
    if (state)
        say_checkpoint(&ctx.cp);

    if (!r.dry) {
        wl_outdir_remove_temps(&dir);
        r.progress = isatty(STDERR_FILENO);
        r.started = r.progress_at = now_ms(CLOCK_MONOTONIC);
    }
    if (write_rows(&r, &ctx, err, sizeof err) != 0 ||
        (!r.dry && remove_orphans(&r, &scan, err, sizeof err) != 0)) {
        if (r.progress)
            fputc('\n', stderr);
        wl_cli_error(CMD, "%s", err);
        undo(&r);
        goto done;
    }
    if (!r.dry)
        crash_point("WL_EXPORT_CRASH_BEFORE_MANIFEST", 1, NULL, store);
    if (write_manifest(&r, &ctx, manifest, err, sizeof err) != 0) {
        wl_cli_error(CMD, "%s", err);
        undo(&r);
        goto done;
    }
    print_plan(&r, manifest);
    rc = WL_EXIT_OK;
    if (fflush(stdout) != 0 && errno != EPIPE)
        rc = WL_EXIT_FAIL;

done:
    if (dir_open)
        wl_outdir_close(&dir, rc != WL_EXIT_OK);
    wl_export_scan_free(&scan);
    free(r.files);
    free(r.header);
    wl_store_close(store);
    return rc;
}
