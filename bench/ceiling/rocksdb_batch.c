/* rocksdb_batch: RocksDB's ceiling for the collector's raw log, and two
 * helpers that read a collector's data directory.
 *
 *   rocksdb_batch write DIR N GROUP SYNC VALUES_DIR|SIZE [SECONDS]
 *       Writes N records (or as many as SECONDS allow, batch by batch) under sequential big-endian 8-byte keys into a new
 *       database in DIR, GROUP records per WriteBatch, each batch one write
 *       (SYNC 1: with the WAL fsynced, as durability=sync does once per
 *       group; 0: without). Values are real StoredPing values read from the
 *       "pings" column family of a stopped collector's VALUES_DIR (cycled),
 *       or SIZE random bytes. Options as the collector's store gives its
 *       pings (increase_parallelism(2), LZ4, max_total_wal_size 128 MiB).
 *       Prints {"records":N,"group":G,"sync":S,"seconds":X,"per_s":X,
 *       "value_bytes_avg":X}: time from the first write to the last one done.
 *   rocksdb_batch measure DIR
 *       The pings column family of a stopped collector: records, average key
 *       and value bytes; and every column family's SST bytes.
 *   rocksdb_batch compact DIR
 *       Opens a stopped collector's data directory with its own latest
 *       options (so compression stays what it chose), compacts every column
 *       family fully, closes; prints every column family's SST bytes after.
 */
#include <inttypes.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SAMPLE_MAX 20000 /* real values kept for cycling */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void check(char *err, const char *what)
{
    if (err != NULL) {
        fprintf(stderr, "rocksdb_batch: %s: %s\n", what, err);
        exit(1);
    }
}

struct db {
    rocksdb_t *db;
    rocksdb_options_t *opts, **cf_opts;
    char **names;
    size_t n;
    rocksdb_column_family_handle_t **cf;
};

/* Opens DIR with the options it was last opened with. */
static void open_existing(const char *dir, int read_only, struct db *d)
{
    char *err = NULL;
    memset(d, 0, sizeof *d);
    rocksdb_load_latest_options(dir, rocksdb_create_default_env(), 0, NULL, &d->opts, &d->n,
                                &d->names, &d->cf_opts, &err);
    check(err, "loading the latest options");
    d->cf = calloc(d->n, sizeof *d->cf);
    if (read_only)
        d->db = rocksdb_open_for_read_only_column_families(
            d->opts, dir, (int)d->n, (const char *const *)d->names,
            (const rocksdb_options_t *const *)d->cf_opts, d->cf, 0, &err);
    else
        d->db = rocksdb_open_column_families(d->opts, dir, (int)d->n,
                                             (const char *const *)d->names,
                                             (const rocksdb_options_t *const *)d->cf_opts, d->cf,
                                             &err);
    check(err, "opening the database");
}

static void close_existing(struct db *d)
{
    for (size_t i = 0; i < d->n; i++)
        rocksdb_column_family_handle_destroy(d->cf[i]);
    rocksdb_close(d->db);
    rocksdb_load_latest_options_destroy(d->opts, d->names, d->cf_opts, d->n);
    free(d->cf);
}

static rocksdb_column_family_handle_t *find_cf(const struct db *d, const char *name)
{
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->names[i], name) == 0)
            return d->cf[i];
    }
    fprintf(stderr, "rocksdb_batch: no column family '%s'\n", name);
    exit(1);
}

static void print_sst_sizes(const struct db *d)
{
    printf("\"sst_bytes\":{");
    for (size_t i = 0; i < d->n; i++) {
        char *v = rocksdb_property_value_cf(d->db, d->cf[i], "rocksdb.total-sst-files-size");
        printf("%s\"%s\":%s", i ? "," : "", d->names[i], v ? v : "null");
        free(v);
    }
    printf("}");
}

/* Reads up to max values of DIR's pings column family into vals/lens;
 * counts every record and byte. */
static size_t read_pings(const char *dir, size_t max, char **vals, size_t *lens,
                         uint64_t *records, uint64_t *key_bytes, uint64_t *value_bytes,
                         struct db *keep_open)
{
    struct db d;
    size_t n = 0;
    open_existing(dir, 1, &d);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(d.db, ro, find_cf(&d, "pings"));
    *records = *key_bytes = *value_bytes = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        rocksdb_iter_key(it, &kl);
        const char *v = rocksdb_iter_value(it, &vl);
        (*records)++;
        *key_bytes += kl;
        *value_bytes += vl;
        if (n < max) {
            vals[n] = malloc(vl ? vl : 1);
            memcpy(vals[n], v, vl);
            lens[n++] = vl;
        }
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (keep_open != NULL)
        *keep_open = d;
    else
        close_existing(&d);
    return n;
}

static int cmd_write(const char *dir, uint64_t records, uint64_t group, int sync,
                     const char *values, double max_s)
{
    static char *vals[SAMPLE_MAX];
    static size_t lens[SAMPLE_MAX];
    size_t nvals;
    char *end, *err = NULL;
    unsigned long size = strtoul(values, &end, 10);

    if (*end == '\0' && size > 0) {
        nvals = 1;
        vals[0] = malloc(size);
        lens[0] = size;
        srand(7);
        for (size_t i = 0; i < size; i++)
            vals[0][i] = (char)rand();
    } else {
        uint64_t r, kb, vb;
        nvals = read_pings(values, SAMPLE_MAX, vals, lens, &r, &kb, &vb, NULL);
        if (nvals == 0) {
            fprintf(stderr, "rocksdb_batch: no pings in %s\n", values);
            return 1;
        }
    }
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_increase_parallelism(o, 2);
    rocksdb_options_set_keep_log_file_num(o, 4);
    rocksdb_options_set_max_total_wal_size(o, 128ULL << 20);
    rocksdb_options_set_compression(o, rocksdb_lz4_compression);
    rocksdb_t *db = rocksdb_open(o, dir, &err);
    check(err, "opening the database");
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(wo, (unsigned char)sync);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    uint64_t value_bytes = 0, t0 = now_ns(), i = 0;
    while (i < records) {
        if (max_s > 0 && (double)(now_ns() - t0) / 1e9 >= max_s)
            break;
        rocksdb_writebatch_clear(b);
        for (uint64_t j = 0; j < group && i < records; j++, i++) {
            unsigned char key[8];
            for (int k = 0; k < 8; k++)
                key[k] = (unsigned char)((i + 1) >> (56 - 8 * k));
            size_t v = i % nvals;
            rocksdb_writebatch_put(b, (const char *)key, sizeof key, vals[v], lens[v]);
            value_bytes += lens[v];
        }
        rocksdb_write(db, wo, b, &err);
        check(err, "writing a batch");
    }
    double s = (double)(now_ns() - t0) / 1e9;
    records = i;
    printf("{\"records\":%" PRIu64 ",\"group\":%" PRIu64 ",\"sync\":%d,\"seconds\":%.4f,"
           "\"per_s\":%.0f,\"value_bytes_avg\":%.1f,\"distinct_values\":%zu}\n",
           records, group, sync, s, (double)records / s, (double)value_bytes / (double)records,
           nvals);
    rocksdb_writebatch_destroy(b);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
    for (size_t i = 0; i < nvals; i++)
        free(vals[i]);
    return 0;
}

static int cmd_measure(const char *dir)
{
    uint64_t r, kb, vb;
    struct db d;
    read_pings(dir, 0, NULL, NULL, &r, &kb, &vb, &d);
    printf("{\"records\":%" PRIu64 ",\"key_bytes_avg\":%.1f,\"value_bytes_avg\":%.1f,", r,
           r ? (double)kb / (double)r : 0.0, r ? (double)vb / (double)r : 0.0);
    print_sst_sizes(&d);
    printf("}\n");
    close_existing(&d);
    return 0;
}

static int cmd_compact(const char *dir)
{
    struct db d;
    open_existing(dir, 0, &d);
    for (size_t i = 0; i < d.n; i++)
        rocksdb_compact_range_cf(d.db, d.cf[i], NULL, 0, NULL, 0);
    printf("{");
    print_sst_sizes(&d);
    printf("}\n");
    close_existing(&d);
    return 0;
}

int main(int argc, char **argv)
{
    if ((argc == 7 || argc == 8) && strcmp(argv[1], "write") == 0) {
        uint64_t n = strtoull(argv[3], NULL, 10), g = strtoull(argv[4], NULL, 10);
        if (n == 0 || g == 0) {
            fprintf(stderr, "rocksdb_batch: N and GROUP must be positive\n");
            return 2;
        }
        return cmd_write(argv[2], n, g, atoi(argv[5]) != 0, argv[6],
                         argc == 8 ? atof(argv[7]) : 0);
    }
    if (argc == 3 && strcmp(argv[1], "measure") == 0)
        return cmd_measure(argv[2]);
    if (argc == 3 && strcmp(argv[1], "compact") == 0)
        return cmd_compact(argv[2]);
    fprintf(stderr, "Usage: rocksdb_batch write DIR N GROUP SYNC VALUES_DIR|SIZE [SECONDS]\n"
                    "       rocksdb_batch measure DIR\n"
                    "       rocksdb_batch compact DIR\n");
    return argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) ? 0 : 2;
}
