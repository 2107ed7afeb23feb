#include "store.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keys.h"

static const char *const cf_names[WL_CF_COUNT] = {
    [WL_CF_DEFAULT] = "default",       [WL_CF_PINGS] = "pings",
    [WL_CF_INSTALLS] = "installs",     [WL_CF_ORGS] = "orgs",
    [WL_CF_QUARANTINE] = "quarantine", [WL_CF_META] = "meta",
    [WL_CF_SIGNALS] = "signals",       [WL_CF_DAILY] = "daily",
    [WL_CF_RANK] = "rank",             [WL_CF_ORG_SIGNALS] = "org_signals",
    [WL_CF_NAMED] = "named",           [WL_CF_MSGIDS] = "msgids",
    [WL_CF_NETWORKS] = "networks",     [WL_CF_STAGE] = "stage",
};

/* After a failed write the primary is closed and opened again (see
 * wl_store_recover): a WAL write error leaves RocksDB 7.8 read-only for
 * good, and its C API has no Resume. Every use of db and cf holds lock for
 * reading (an iterator or a snapshot for its whole life); a reopen holds it
 * for writing, and waits at most REOPEN_WAIT_MS for readers to finish. */
#define REOPEN_WAIT_MS 2000
#define REOPEN_EVERY_MS 500 /* at most one reopen attempt this often */

struct wl_store {
    pthread_rwlock_t lock;
    int lock_ready;
    char dir[1024];
    atomic_int failed;   /* a write failed: the next wl_store_recover reopens */
    atomic_int sync_failed; /* a WAL sync failed: writes refused until that reopen (the
                               kernel may have dropped the unsynced pages: writing on
                               after them would leave a hole in the log) */
    int read_only;       /* the reopen could not open read-write: reads only */
    int64_t reopened_at; /* monotonic ms of the last reopen attempt */
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_options_t *cf_opts[WL_CF_COUNT];
    rocksdb_column_family_handle_t *cf[WL_CF_COUNT];
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts_sync;
    rocksdb_writeoptions_t *wopts_async;
    enum wl_store_mode mode;
    char secondary_dir[256];
};

/* An operation on a column family of the state's records (deferred_cf),
 * held back until the write. */
struct deferred {
    uint32_t off, n;  /* the key in keys, its value right after it; arrival order */
    uint32_t vlen;
    uint16_t len;
    uint8_t cf, del;
};

struct wl_batch {
    rocksdb_writebatch_t *wb;
    struct wl_store *store;
    struct deferred *dv;  /* index operations, in arrival order */
    size_t dn, dcap;
    uint8_t *keys;
    size_t kused, kcap;
    int held;             /* wl_batch_hold: the store's lock is held for reading */
};

static void undefer(struct wl_batch *b);

struct wl_iter {
    rocksdb_iterator_t *it;
    struct wl_store *store; /* holds its lock for reading while alive */
};

struct wl_snapshot {
    struct wl_store *store;
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ropts;
};

const char *wl_cf_name(enum wl_cf cf)
{
    return (cf >= 0 && cf < WL_CF_COUNT) ? cf_names[cf] : NULL;
}

static int set_err(char *err, size_t errlen, const char *what, char *rerr)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s: %s", what, rerr ? rerr : "unknown error");
    free(rerr);
    return -EIO;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

/* mkdir -p: creates dir and any missing parents. */
static int make_dirs(const char *dir)
{
    char path[1024];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path)
        return -ENAMETOOLONG;
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] == '/' || path[i] == '\0') {
            char c = path[i];
            path[i] = '\0';
            if (mkdir(path, 0750) != 0 && errno != EEXIST)
                return -errno;
            path[i] = c;
        }
    }
    return 0;
}

static int check_schema(struct wl_store *s, char *err, size_t errlen)
{
    static const char key[] = "schema_version";
    char *val = NULL, *rerr = NULL;
    size_t vlen = 0;
    char want[16];

    snprintf(want, sizeof want, "%d", WL_SCHEMA_VERSION);
    val = rocksdb_get_cf(s->db, s->ropts, s->cf[WL_CF_META], key, sizeof key - 1, &vlen, &rerr);
    if (rerr != NULL)
        return set_err(err, errlen, "reading schema_version", rerr);
    if (val == NULL) {
        if (s->mode != WL_STORE_PRIMARY)
            return 0; /* a primary that has not written yet */
        rocksdb_put_cf(s->db, s->wopts_sync, s->cf[WL_CF_META], key, sizeof key - 1, want,
                       strlen(want), &rerr);
        if (rerr != NULL)
            return set_err(err, errlen, "writing schema_version", rerr);
        return 0;
    }
    int ok = vlen == strlen(want) && memcmp(val, want, vlen) == 0;
    if (!ok)
        snprintf(err, errlen, "schema version %.*s in the database, this build reads %s",
                 (int)(vlen > 8 ? 8 : vlen), val, want);
    rocksdb_free(val);
    return ok ? 0 : -EPROTO;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Opens s->db and s->cf in s->mode; a PRIMARY with read_only opens the
 * directory for reading alone (it writes nothing, so it opens on a full
 * disk). */
static int db_open(struct wl_store *s, int read_only, char *err, size_t errlen)
{
    const char *names[WL_CF_COUNT];
    const rocksdb_options_t *cfo[WL_CF_COUNT];
    char *rerr = NULL;

    for (int i = 0; i < WL_CF_COUNT; i++) {
        names[i] = cf_names[i];
        cfo[i] = s->cf_opts[i];
    }
    if (s->mode == WL_STORE_SECONDARY)
        s->db = rocksdb_open_as_secondary_column_families(s->opts, s->dir, s->secondary_dir,
                                                          WL_CF_COUNT, names, cfo, s->cf, &rerr);
    else if (read_only)
        s->db = rocksdb_open_for_read_only_column_families(s->opts, s->dir, WL_CF_COUNT, names,
                                                           cfo, s->cf, 0, &rerr);
    else
        s->db = rocksdb_open_column_families(s->opts, s->dir, WL_CF_COUNT, names, cfo, s->cf,
                                             &rerr);
    if (rerr != NULL) {
        char what[1200];
        s->db = NULL;
        memset(s->cf, 0, sizeof s->cf);
        snprintf(what, sizeof what, "cannot open RocksDB in %s", s->dir);
        return set_err(err, errlen, what, rerr);
    }
    return 0;
}

static void db_close(struct wl_store *s)
{
    if (s->db == NULL)
        return;
    for (int i = 0; i < WL_CF_COUNT; i++) {
        if (s->cf[i] != NULL)
            rocksdb_column_family_handle_destroy(s->cf[i]);
        s->cf[i] = NULL;
    }
    rocksdb_close(s->db);
    s->db = NULL;
}

/* Raw pings are written once on sequential keys and only read in ranges
 * (export, retention, forget, replay): zstd over 256 KiB blocks finds what
 * repeats between pings (org keys, versions, feature names, the field
 * layout) and stores a compacted ping in about 76 bytes, where LZ4 over
 * 4 KiB blocks took 130 (bench/RESULTS.md). Installs, organizations and
 * days are rewritten all the time, by random keys: their young levels,
 * which compaction soon rewrites anyway, are not compressed at all (the
 * CPU goes to ingest); their last level is, with LZ4. Signals are written
 * once, like pings, and keep the default (Snappy at every level). */
static int set_cf_options(struct wl_store *s, char *err, size_t errlen)
{
    rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_size(t, 256 << 10);
    rocksdb_options_set_block_based_table_factory(s->cf_opts[WL_CF_PINGS], t); /* copies t */
    rocksdb_block_based_options_destroy(t);
    rocksdb_options_set_compression(s->cf_opts[WL_CF_PINGS], rocksdb_zstd_compression);
    /* zstd where compaction writes, LZ4 where the flush does: the flush
     * runs while ingest runs, on its core, and zstd there was 12% of the
     * collector's CPU at saturation; every ping reaches a zstd level in its
     * first compaction all the same (a full compaction: 76.8 -> 74.8 B a
     * ping). Cold TCP load of 1,000,000 pings, five interleaved pairs:
     * collector CPU 4.52 -> 3.98 s, 220,900 -> 250,396 pings/s (medians;
     * bench/RESULTS.md, session 13). */
    {
        int per_level[7] = {rocksdb_lz4_compression};
        for (int l = 1; l < 7; l++)
            per_level[l] = rocksdb_zstd_compression;
        rocksdb_options_set_compression_per_level(s->cf_opts[WL_CF_PINGS], per_level, 7);
    }
    static const enum wl_cf rewritten[] = {WL_CF_INSTALLS, WL_CF_ORGS, WL_CF_DAILY};
    for (size_t i = 0; i < sizeof rewritten / sizeof rewritten[0]; i++) {
        rocksdb_options_set_compression(s->cf_opts[rewritten[i]], rocksdb_no_compression);
        rocksdb_options_set_bottommost_compression(s->cf_opts[rewritten[i]],
                                                   rocksdb_lz4_compression);
    }
    /* The state's records and the index operations go into each
     * WriteBatch in key order (undefer). With an
     * insert hint per first key byte, each memtable insert starts from where
     * the last one of that byte went instead of from the top of the
     * skiplist: 34% -> 27% of the writer's time in MemTable::Add for the
     * state alone (bench/RESULTS.md). The option has no C setter: it goes
     * through an options string. */
    static const enum wl_cf sorted[] = {WL_CF_INSTALLS, WL_CF_ORGS, WL_CF_DAILY, WL_CF_RANK,
                                        WL_CF_ORG_SIGNALS};
    for (size_t i = 0; i < sizeof sorted / sizeof sorted[0]; i++) {
        rocksdb_options_t *o = rocksdb_options_create();
        char *rerr = NULL;
        rocksdb_get_options_from_string(
            s->cf_opts[sorted[i]],
            "memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.1", o, &rerr);
        if (rerr != NULL) {
            rocksdb_options_destroy(o);
            return set_err(err, errlen, "RocksDB options", rerr);
        }
        rocksdb_options_destroy(s->cf_opts[sorted[i]]);
        s->cf_opts[sorted[i]] = o;
    }
    return 0;
}

int wl_store_open(const char *dir, enum wl_store_mode mode, struct wl_store **out, char *err,
                  size_t errlen)
{
    struct wl_store *s = calloc(1, sizeof *s);
    int rc;

    if (s == NULL)
        return -ENOMEM;
    if (strlen(dir) >= sizeof s->dir) {
        snprintf(err, errlen, "data directory path too long: %s", dir);
        free(s);
        return -ENAMETOOLONG;
    }
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    pthread_rwlock_init(&s->lock, NULL);
    s->lock_ready = 1;
    s->mode = mode;
    s->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(s->opts, mode == WL_STORE_PRIMARY);
    rocksdb_options_set_create_missing_column_families(s->opts, mode == WL_STORE_PRIMARY);
    rocksdb_options_increase_parallelism(s->opts, 2);
    /* RocksDB's flushes and compactions (zstd over the pings, the
     * checkpoints' records) run at the lowest CPU priority (nice 19): on a
     * busy core they take the time ingest leaves, instead of a third of it
     * while they run. They are never starved for good: a memtable that
     * cannot flush stalls the writes, which frees the CPU for the flush.
     * bench/checkpoint_latency at 56,000 pings/s, the collector pinned to
     * one core: ack p99 over checkpoints 42.7 -> 22.4 ms (medians of 3
     * interleaved runs; bench/RESULTS.md, session 9). Process-wide: the
     * default Env's pools, the ones every store of the process uses. */
    {
        rocksdb_env_t *env = rocksdb_create_default_env();
        rocksdb_env_lower_thread_pool_cpu_priority(env);
        rocksdb_env_lower_high_priority_thread_pool_cpu_priority(env);
        rocksdb_env_destroy(env);
    }
    rocksdb_options_set_keep_log_file_num(s->opts, 4);
    /* Room for RocksDB's background work to fall behind for a moment
     * without stopping the writes: four memtables a column family (two by
     * default) and the L0 slowdown and stop at 40 and 60 files (20, 36).
     * On a disk that sometimes takes hundreds of milliseconds for a write
     * or an unlink (ext4 with discard: a 64 MB unlink took 0.7 s of the
     * flush thread), a memtable waiting for its flush stalled every write,
     * and the acks with it. bench/checkpoint_latency --rate 90000
     * --duration 40, four interleaved pairs: ack p999 247, 253, 1004, 1139
     * ms -> 37, 59, 82, 134 ms (bench/RESULTS.md, session 12). The
     * write-ahead log stays bounded (max_total_wal_size below). */
    rocksdb_options_set_max_write_buffer_number(s->opts, 4);
    rocksdb_options_set_level0_slowdown_writes_trigger(s->opts, 40);
    rocksdb_options_set_level0_stop_writes_trigger(s->opts, 60);
    /* RocksDB's own info LOG lives in the data directory. On a full disk
     * its first failed append makes the next one abort the process (an
     * assertion in the Debian build of 7.8), and RocksDB logs exactly when
     * writes fail: keep only fatal messages. The collector logs every
     * storage error itself (event=write_failed). */
    rocksdb_options_set_info_log_level(s->opts, 4 /* FATAL_LEVEL */);
    /* RocksDB preallocates 4 MiB for each new MANIFEST: on a nearly full
     * ext4 that preallocation takes the last free blocks and the open (or a
     * reopen after a failed write) then fails for want of a few bytes. */
    rocksdb_options_set_manifest_preallocation_size(s->opts, 64 << 10);
    /* Bound the write-ahead log: memtables are flushed once it passes this,
     * so a tool opening the directory (dump, export) replays little. */
    rocksdb_options_set_max_total_wal_size(s->opts, 128ULL << 20);
    if (mode == WL_STORE_SECONDARY)
        rocksdb_options_set_max_open_files(s->opts, -1);

    /* No fallocate: RocksDB preallocates each WAL for a whole memtable
     * (70 MiB), which on ext4 takes whatever is free, up to that. On a
     * small or nearly full disk the WAL then holds every free block, and
     * after a crash the recovery cannot write the SST it must write before
     * that WAL may go: the collector would not start again. Not in the C
     * API as a setter: through an options string. */
    {
        rocksdb_options_t *o = rocksdb_options_create();
        char *rerr = NULL;
        rocksdb_get_options_from_string(s->opts, "allow_fallocate=false", o, &rerr);
        if (rerr != NULL) {
            rc = set_err(err, errlen, "RocksDB options", rerr);
            rocksdb_options_destroy(o);
            goto fail;
        }
        rocksdb_options_destroy(s->opts);
        s->opts = o;
    }
    for (int i = 0; i < WL_CF_COUNT; i++)
        s->cf_opts[i] = rocksdb_options_create_copy(s->opts);
    if ((rc = set_cf_options(s, err, errlen)) != 0)
        goto fail;

    if (mode == WL_STORE_PRIMARY) {
        if ((rc = make_dirs(dir)) != 0) {
            snprintf(err, errlen, "cannot create data directory %s: %s", dir, strerror(-rc));
            goto fail;
        }
    } else {
        snprintf(s->secondary_dir, sizeof s->secondary_dir, "/tmp/warmline-secondary-XXXXXX");
        if (mkdtemp(s->secondary_dir) == NULL) {
            snprintf(err, errlen, "cannot create a temporary directory: %s", strerror(errno));
            s->secondary_dir[0] = '\0';
            rc = -errno;
            goto fail;
        }
        struct stat st;
        if (stat(dir, &st) != 0) {
            snprintf(err, errlen, "data directory %s: %s", dir, strerror(errno));
            rc = -ENOENT;
            goto fail;
        }
    }
    if ((rc = db_open(s, 0, err, errlen)) != 0)
        goto fail;
    s->ropts = rocksdb_readoptions_create();
    s->wopts_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wopts_sync, 1);
    s->wopts_async = rocksdb_writeoptions_create();
    if ((rc = check_schema(s, err, errlen)) != 0)
        goto fail;
    *out = s;
    return 0;

fail:
    wl_store_close(s);
    return rc;
}

/* A clean close writes the memtables out, so that the next open (the
 * collector's restart, every export and dump) replays no write-ahead log
 * and holds no memtable rebuilt from it. On a full disk the flush fails
 * and nothing is lost: the log stays and is replayed as after a crash. */
static void flush_memtables(struct wl_store *s)
{
    if (s->db == NULL || s->mode != WL_STORE_PRIMARY || s->read_only)
        return;
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    for (int i = 0; i < WL_CF_COUNT; i++) {
        char *rerr = NULL;
        if (s->cf[i] != NULL)
            rocksdb_flush_cf(s->db, fo, s->cf[i], &rerr);
        free(rerr);
        if (rerr != NULL)
            break;
    }
    rocksdb_flushoptions_destroy(fo);
}

void wl_store_close(struct wl_store *s)
{
    if (s == NULL)
        return;
    flush_memtables(s);
    db_close(s);
    for (int i = 0; i < WL_CF_COUNT; i++) {
        if (s->cf_opts[i] != NULL)
            rocksdb_options_destroy(s->cf_opts[i]);
    }
    if (s->opts != NULL)
        rocksdb_options_destroy(s->opts);
    if (s->ropts != NULL)
        rocksdb_readoptions_destroy(s->ropts);
    if (s->wopts_sync != NULL)
        rocksdb_writeoptions_destroy(s->wopts_sync);
    if (s->wopts_async != NULL)
        rocksdb_writeoptions_destroy(s->wopts_async);
    if (s->secondary_dir[0] != '\0')
        nftw(s->secondary_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    if (s->lock_ready)
        pthread_rwlock_destroy(&s->lock);
    free(s);
}

int wl_store_recover(struct wl_store *s, char *err, size_t errlen)
{
    struct timespec deadline;
    int rc;

    if (s->mode != WL_STORE_PRIMARY)
        return 0;
    pthread_rwlock_rdlock(&s->lock);
    int failed = s->failed || s->sync_failed, recent = mono_ms() - s->reopened_at < REOPEN_EVERY_MS;
    pthread_rwlock_unlock(&s->lock);
    if (!failed)
        return 0;
    if (recent) {
        snprintf(err, errlen, "storage is read-only since a failed write; reopening again soon");
        return -EAGAIN;
    }
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += REOPEN_WAIT_MS / 1000;
    deadline.tv_nsec += (long)(REOPEN_WAIT_MS % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    if ((rc = pthread_rwlock_timedwrlock(&s->lock, &deadline)) != 0) {
        snprintf(err, errlen, "cannot reopen the database: readers still hold it (%s)",
                 strerror(rc));
        return -EBUSY;
    }
    s->reopened_at = mono_ms();
    db_close(s);
    rc = db_open(s, 0, err, errlen);
    if (rc == 0) {
        s->failed = 0;
        s->sync_failed = 0;
        s->read_only = 0;
    } else {
        /* Keep serving reads while the disk is full. */
        char err2[256];
        s->read_only = 1;
        if (db_open(s, 1, err2, sizeof err2) != 0 && err != NULL && errlen > 0) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, "; read-only: %s", err2);
        }
    }
    pthread_rwlock_unlock(&s->lock);
    return rc;
}

int wl_store_writable(struct wl_store *s)
{
    pthread_rwlock_rdlock(&s->lock);
    int ok = s->db != NULL && !s->failed && !s->sync_failed;
    pthread_rwlock_unlock(&s->lock);
    return ok;
}

void wl_store_thread_init(void)
{
    rocksdb_set_perf_level(rocksdb_disable);
}

int wl_store_catch_up(struct wl_store *s, char *err, size_t errlen)
{
    char *rerr = NULL;
    if (s->mode != WL_STORE_SECONDARY)
        return 0;
    pthread_rwlock_rdlock(&s->lock);
    rocksdb_try_catch_up_with_primary(s->db, &rerr);
    pthread_rwlock_unlock(&s->lock);
    if (rerr != NULL)
        return set_err(err, errlen, "catching up with the collector", rerr);
    return 0;
}

int wl_store_write(struct wl_store *s, struct wl_batch *b, int sync, char *err, size_t errlen)
{
    char *rerr = NULL;
    int rc = 0;

    pthread_rwlock_rdlock(&s->lock);
    if (s->db == NULL || s->read_only || atomic_load(&s->sync_failed)) {
        snprintf(err, errlen, "write: storage is read-only since a failed write (reopen pending)");
        rc = -EROFS;
        goto done;
    }
    undefer(b);
    rocksdb_write(s->db, sync ? s->wopts_sync : s->wopts_async, b->wb, &rerr);
    if (rerr != NULL) {
        /* RocksDB refuses every later write (a background error): only a
         * reopen (wl_store_recover) brings it back. */
        rc = strstr(rerr, "No space left") != NULL ? -ENOSPC : -EIO;
        atomic_store(&s->failed, 1);
        set_err(err, errlen, "write", rerr);
    } else if (atomic_load_explicit(&s->failed, memory_order_relaxed)) {
        /* RocksDB recovered by itself (a failed flush, once space returns) */
        atomic_store(&s->failed, 0);
    }
done:
    pthread_rwlock_unlock(&s->lock);
    return rc;
}

int wl_store_sync_wal(struct wl_store *s, char *err, size_t errlen)
{
    char *rerr = NULL;
    int rc = 0;

    pthread_rwlock_rdlock(&s->lock);
    if (s->db == NULL || s->read_only) {
        snprintf(err, errlen, "sync: storage is read-only since a failed write (reopen pending)");
        rc = -EROFS;
        goto done;
    }
    rocksdb_flush_wal(s->db, 1, &rerr);
    if (rerr != NULL) {
        /* Whether RocksDB refuses later writes by itself or not, what was
         * written since the last good sync is not known durable: reopen. */
        rc = strstr(rerr, "No space left") != NULL ? -ENOSPC : -EIO;
        atomic_store(&s->sync_failed, 1);
        atomic_store(&s->failed, 1);
        set_err(err, errlen, "sync", rerr);
    }
done:
    pthread_rwlock_unlock(&s->lock);
    return rc;
}

struct wl_snapshot *wl_snapshot_new(struct wl_store *s)
{
    struct wl_snapshot *snap = calloc(1, sizeof *snap);
    if (snap == NULL)
        return NULL;
    snap->store = s;
    pthread_rwlock_rdlock(&s->lock); /* until wl_snapshot_free */
    if (s->db == NULL) {
        pthread_rwlock_unlock(&s->lock);
        free(snap);
        return NULL;
    }
    snap->snap = rocksdb_create_snapshot(s->db);
    snap->ropts = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(snap->ropts, snap->snap);
    return snap;
}

void wl_snapshot_free(struct wl_snapshot *snap)
{
    if (snap == NULL)
        return;
    rocksdb_readoptions_destroy(snap->ropts);
    rocksdb_release_snapshot(snap->store->db, snap->snap);
    pthread_rwlock_unlock(&snap->store->lock);
    free(snap);
}

uint64_t wl_store_disk_bytes(struct wl_store *s)
{
    uint64_t total = 0, v = 0;
    pthread_rwlock_rdlock(&s->lock);
    for (int i = 0; s->db != NULL && i < WL_CF_COUNT; i++) {
        if (rocksdb_property_int_cf(s->db, s->cf[i], "rocksdb.total-sst-files-size", &v) == 0)
            total += v;
    }
    if (s->db != NULL && rocksdb_property_int(s->db, "rocksdb.live-sst-files-size", &v) == 0 &&
        v > total)
        total = v;
    pthread_rwlock_unlock(&s->lock);
    return total;
}

int wl_store_get(struct wl_store *s, enum wl_cf cf, const void *key, size_t klen, char **val,
                 size_t *vlen, char *err, size_t errlen)
{
    return wl_store_get_at(s, NULL, cf, key, klen, val, vlen, err, errlen);
}

int wl_store_get_at(struct wl_store *s, const struct wl_snapshot *snap, enum wl_cf cf,
                    const void *key, size_t klen, char **val, size_t *vlen, char *err,
                    size_t errlen)
{
    char *rerr = NULL;
    size_t n = 0;
    pthread_rwlock_rdlock(&s->lock);
    if (s->db == NULL) {
        pthread_rwlock_unlock(&s->lock);
        snprintf(err, errlen, "read: the database is not open (reopen pending)");
        return -EIO;
    }
    char *v = rocksdb_get_cf(s->db, snap ? snap->ropts : s->ropts, s->cf[cf], key, klen, &n,
                             &rerr);
    pthread_rwlock_unlock(&s->lock);
    if (rerr != NULL)
        return set_err(err, errlen, "read", rerr);
    if (v == NULL)
        return -ENOENT;
    *val = malloc(n ? n : 1);
    if (*val == NULL) {
        rocksdb_free(v);
        return -ENOMEM;
    }
    memcpy(*val, v, n);
    *vlen = n;
    rocksdb_free(v);
    return 0;
}

struct wl_batch *wl_batch_new(struct wl_store *store)
{
    struct wl_batch *b = calloc(1, sizeof *b);
    if (b != NULL) {
        b->wb = rocksdb_writebatch_create();
        b->store = store;
    }
    return b;
}

/* The state's records (installs, organizations, days) and the index
 * column families get their keys as the writer evaluates or checkpoints
 * organizations: in random order. Held back and added to the WriteBatch in
 * key order when it is written (operations on one key keep their order), so
 * that each memtable insert starts from the last one's place (a hint per
 * first key byte, set_cf_options) instead of from the top of the skiplist:
 * a random insert into a memtable of a million entries compares its key
 * some 20 times, a sorted one a few. An operation that is not held (a key
 * or value too large, a range deletion) first moves what is held into the
 * WriteBatch, so none goes ahead of an earlier one. */
static int deferred_cf(enum wl_cf cf)
{
    return cf == WL_CF_RANK || cf == WL_CF_ORG_SIGNALS || cf == WL_CF_INSTALLS ||
           cf == WL_CF_ORGS || cf == WL_CF_DAILY;
}

/* Held back at most this much at once: past it (a whole checkpoint of a
 * large state) what is held goes into the WriteBatch, sorted, and holding
 * begins again; operations on one key still keep their order. */
#define DEFER_MAX ((size_t)64 << 20)

static void defer(struct wl_batch *b, enum wl_cf cf, int del, const void *key, size_t klen,
                  const void *val, size_t vlen)
{
    if (b->dn > 0 && (b->kused + klen + vlen > DEFER_MAX || b->dn >= UINT32_MAX)) {
        pthread_rwlock_rdlock(&b->store->lock);
        undefer(b);
        pthread_rwlock_unlock(&b->store->lock);
    }
    if (b->dn == b->dcap) {
        size_t cap = b->dcap ? 2 * b->dcap : 256;
        struct deferred *dv = realloc(b->dv, cap * sizeof *dv);
        if (dv == NULL)
            abort(); /* out of memory in the writer */
        b->dv = dv;
        b->dcap = cap;
    }
    if (b->kused + klen + vlen > b->kcap) {
        size_t cap = b->kcap ? 2 * b->kcap : 8192;
        while (cap < b->kused + klen + vlen)
            cap *= 2;
        uint8_t *keys = realloc(b->keys, cap);
        if (keys == NULL)
            abort();
        b->keys = keys;
        b->kcap = cap;
    }
    memcpy(b->keys + b->kused, key, klen);
    if (vlen > 0)
        memcpy(b->keys + b->kused + klen, val, vlen);
    b->dv[b->dn] = (struct deferred){.off = (uint32_t)b->kused, .n = (uint32_t)b->dn,
                                     .vlen = (uint32_t)vlen, .len = (uint16_t)klen,
                                     .cf = (uint8_t)cf, .del = (uint8_t)del};
    b->kused += klen + vlen;
    b->dn++;
}

static int deferred_cmp(const void *x, const void *y, void *keys)
{
    const struct deferred *a = x, *b = y;
    if (a->cf != b->cf)
        return a->cf < b->cf ? -1 : 1;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp((uint8_t *)keys + a->off, (uint8_t *)keys + b->off, n);
    if (c != 0)
        return c;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return a->n < b->n ? -1 : a->n > b->n;
}

/* Moves the held-back operations into the WriteBatch, in key order: once,
 * so that writing the batch again (after a reopen) writes them once. With
 * the store's lock held for reading and the database open. */
static void undefer(struct wl_batch *b)
{
    if (b->dn == 0)
        return;
    qsort_r(b->dv, b->dn, sizeof *b->dv, deferred_cmp, b->keys);
    for (size_t i = 0; i < b->dn; i++) {
        const struct deferred *d = &b->dv[i];
        const char *k = (const char *)b->keys + d->off;
        if (d->del)
            rocksdb_writebatch_delete_cf(b->wb, b->store->cf[d->cf], k, d->len);
        else
            rocksdb_writebatch_put_cf(b->wb, b->store->cf[d->cf], k, d->len, k + d->len,
                                      d->vlen);
    }
    b->dn = b->kused = 0;
}

void wl_batch_put(struct wl_batch *b, enum wl_cf cf, const void *key, size_t klen,
                  const void *val, size_t vlen)
{
    if (deferred_cf(cf) && klen <= UINT16_MAX && vlen <= DEFER_MAX) {
        defer(b, cf, 0, key, klen, val, vlen);
        return;
    }
    if (!b->held)
        pthread_rwlock_rdlock(&b->store->lock); /* the handle lives until a reopen */
    if (deferred_cf(cf))
        undefer(b); /* too large to hold: after what is held, as it came */
    rocksdb_writebatch_put_cf(b->wb, b->store->cf[cf], key, klen, val, vlen);
    if (!b->held)
        pthread_rwlock_unlock(&b->store->lock);
}

void wl_batch_hold(struct wl_batch *b)
{
    pthread_rwlock_rdlock(&b->store->lock);
    b->held = 1;
}

void wl_batch_release(struct wl_batch *b)
{
    b->held = 0;
    pthread_rwlock_unlock(&b->store->lock);
}

void wl_batch_delete(struct wl_batch *b, enum wl_cf cf, const void *key, size_t klen)
{
    if (deferred_cf(cf) && klen <= UINT16_MAX) {
        defer(b, cf, 1, key, klen, NULL, 0);
        return;
    }
    if (!b->held)
        pthread_rwlock_rdlock(&b->store->lock);
    if (deferred_cf(cf))
        undefer(b);
    rocksdb_writebatch_delete_cf(b->wb, b->store->cf[cf], key, klen);
    if (!b->held)
        pthread_rwlock_unlock(&b->store->lock);
}

void wl_batch_delete_range(struct wl_batch *b, enum wl_cf cf, const void *begin, size_t blen,
                           const void *end, size_t elen)
{
    /* RocksDB (7.8) keeps one insert hint per key prefix for a column
     * family's point and range-deletion memtables alike: a range deletion
     * from a key a hinted put shares its first byte with inserts into the
     * wrong skiplist (an assertion in Debian's build). On the hinted
     * families (set_cf_options) only a whole clearing, from "", is safe. */
    if (deferred_cf(cf) && blen > 0)
        abort();
    pthread_rwlock_rdlock(&b->store->lock);
    if (deferred_cf(cf))
        undefer(b); /* what is held came first: the range deletes it too */
    rocksdb_writebatch_delete_range_cf(b->wb, b->store->cf[cf], begin, blen, end, elen);
    pthread_rwlock_unlock(&b->store->lock);
}

int wl_batch_count(const struct wl_batch *b)
{
    return rocksdb_writebatch_count(b->wb) + (int)b->dn;
}

/* A batch past this is made again when cleared: RocksDB's clear keeps
 * what the largest write grew it to (one checkpoint slice of a large
 * organization, hundreds of megabytes), for the writer's whole life. */
#define BATCH_KEEP (16u << 20)

void wl_batch_clear(struct wl_batch *b)
{
    size_t size = 0;
    rocksdb_writebatch_data(b->wb, &size);
    if (size > BATCH_KEEP) {
        rocksdb_writebatch_t *fresh = rocksdb_writebatch_create();
        if (fresh != NULL) {
            rocksdb_writebatch_destroy(b->wb);
            b->wb = fresh;
        }
    }
    rocksdb_writebatch_clear(b->wb);
    if (b->kcap > BATCH_KEEP) {
        free(b->keys);
        b->keys = NULL;
        b->kcap = 0;
    }
    b->dn = b->kused = 0;
}

void wl_batch_free(struct wl_batch *b)
{
    if (b == NULL)
        return;
    rocksdb_writebatch_destroy(b->wb);
    free(b->dv);
    free(b->keys);
    free(b);
}

struct wl_iter *wl_iter_new(struct wl_store *s, enum wl_cf cf)
{
    return wl_iter_new_at(s, NULL, cf);
}

struct wl_iter *wl_iter_new_at(struct wl_store *s, const struct wl_snapshot *snap, enum wl_cf cf)
{
    struct wl_iter *it = calloc(1, sizeof *it);
    if (it == NULL)
        return NULL;
    pthread_rwlock_rdlock(&s->lock); /* until wl_iter_free */
    it->store = s;
    if (s->db != NULL)
        it->it = rocksdb_create_iterator_cf(s->db, snap ? snap->ropts : s->ropts, s->cf[cf]);
    return it;
}

int wl_store_last_seq(struct wl_store *s, const struct wl_snapshot *snap, enum wl_cf cf,
                      uint64_t *out, char *err, size_t errlen)
{
    struct wl_iter *it = wl_iter_new_at(s, snap, cf);
    size_t klen;
    *out = 0;
    if (it == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    wl_iter_seek_last(it);
    if (wl_iter_valid(it)) {
        const char *k = wl_iter_key(it, &klen);
        if (klen == 8)
            *out = wl_be64_get(k);
    }
    int rc = wl_iter_status(it, err, errlen);
    wl_iter_free(it);
    return rc;
}

struct wl_iter *wl_iter_new_scan(struct wl_store *s, enum wl_cf cf, size_t readahead)
{
    struct wl_iter *it = calloc(1, sizeof *it);
    if (it == NULL)
        return NULL;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    if (ro == NULL) {
        free(it);
        return NULL;
    }
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_readoptions_set_readahead_size(ro, readahead);
    pthread_rwlock_rdlock(&s->lock); /* until wl_iter_free */
    it->store = s;
    if (s->db != NULL) /* the iterator keeps its own copy of the options */
        it->it = rocksdb_create_iterator_cf(s->db, ro, s->cf[cf]);
    rocksdb_readoptions_destroy(ro);
    return it;
}

/* An iterator made while the database was not open (a reopen failed) is
 * empty and reports an error. */
void wl_iter_seek_first(struct wl_iter *it)
{
    if (it->it != NULL)
        rocksdb_iter_seek_to_first(it->it);
}
void wl_iter_seek_last(struct wl_iter *it)
{
    if (it->it != NULL)
        rocksdb_iter_seek_to_last(it->it);
}
void wl_iter_seek(struct wl_iter *it, const void *key, size_t klen)
{
    if (it->it != NULL)
        rocksdb_iter_seek(it->it, key, klen);
}
void wl_iter_seek_for_prev(struct wl_iter *it, const void *key, size_t klen)
{
    if (it->it != NULL)
        rocksdb_iter_seek_for_prev(it->it, key, klen);
}
void wl_iter_prev(struct wl_iter *it) { rocksdb_iter_prev(it->it); }
int wl_iter_valid(const struct wl_iter *it) { return it->it != NULL && rocksdb_iter_valid(it->it); }
void wl_iter_next(struct wl_iter *it) { rocksdb_iter_next(it->it); }
const char *wl_iter_key(const struct wl_iter *it, size_t *klen)
{
    return rocksdb_iter_key(it->it, klen);
}
const char *wl_iter_value(const struct wl_iter *it, size_t *vlen)
{
    return rocksdb_iter_value(it->it, vlen);
}

int wl_iter_status(const struct wl_iter *it, char *err, size_t errlen)
{
    char *rerr = NULL;
    if (it->it == NULL) {
        snprintf(err, errlen, "iteration: the database is not open (reopen pending)");
        return -EIO;
    }
    rocksdb_iter_get_error(it->it, &rerr);
    if (rerr != NULL)
        return set_err(err, errlen, "iteration", rerr);
    return 0;
}

void wl_iter_free(struct wl_iter *it)
{
    if (it == NULL)
        return;
    if (it->it != NULL)
        rocksdb_iter_destroy(it->it);
    pthread_rwlock_unlock(&it->store->lock);
    free(it);
}
