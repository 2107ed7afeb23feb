/* Storage: the only room that includes rocksdb/c.h. One database, one
 * column family per kind of record; the rest of the code speaks in keys and
 * serialized records. Calls return 0 or a negative errno-style code and put a
 * human-readable reason in err when given one. */
#ifndef WL_STORE_H
#define WL_STORE_H

#include <stddef.h>
#include <stdint.h>

#define WL_SCHEMA_VERSION 1

enum wl_cf {
    WL_CF_DEFAULT = 0,
    WL_CF_PINGS,      /* big-endian ingest seq -> StoredPing */
    WL_CF_INSTALLS,   /* install_id -> InstallState */
    WL_CF_ORGS,       /* org id -> OrgState */
    WL_CF_QUARANTINE, /* big-endian quarantine seq -> Quarantined */
    WL_CF_META,       /* name -> value */
    WL_CF_SIGNALS,    /* big-endian signal id -> Signal */
    WL_CF_DAILY,      /* len(org id) + org id + big-endian day -> DailyState */
    WL_CF_RANK,       /* big-endian sortable score key + org id -> (empty) */
    WL_CF_ORG_SIGNALS,/* len(org id) + org id + big-endian signal id -> (empty) */
    WL_CF_NAMED,      /* 32-byte org_key -> NamedAccount (written by the API) */
    WL_CF_MSGIDS,     /* len(install id) + install id + 16-byte keyed digest of a Rudder
                         messageId -> big-endian unix ms it was first seen (the writer) */
    WL_CF_NETWORKS,   /* family byte (4|6) + address bytes + prefix length byte ->
                         32-byte org_key (written by the API: the network table) */
    WL_CF_STAGE,      /* stores from before in-place checkpoints: column family byte
                         (installs, orgs, daily) + its key -> its record as a checkpoint
                         staged it (empty: deleted); moved into place at the first load */
    WL_CF_COUNT
};

enum wl_store_mode {
    WL_STORE_PRIMARY,   /* the collector: read-write, holds the lock */
    WL_STORE_SECONDARY, /* tools: read-only view that works beside a running primary */
};

struct wl_store;
struct wl_batch;
struct wl_iter;
struct wl_snapshot;

/* Returns the column family's name ("pings", ...) or NULL for an unknown id. */
const char *wl_cf_name(enum wl_cf cf);

/* Opens (and for PRIMARY creates) the database in dir, with every column
 * family, and checks or records the schema version. */
int wl_store_open(const char *dir, enum wl_store_mode mode, struct wl_store **out, char *err,
                  size_t errlen);

/* Flushes nothing extra (the WAL is the durability), closes, frees. */
void wl_store_close(struct wl_store *store);

/* After a failed write RocksDB refuses every later one. PRIMARY: closes
 * and opens the database again, once readers let go (waits up to 2 s, then
 * -EBUSY) and at most every 500 ms (-EAGAIN sooner). 0 when it is writable
 * again (or never failed); otherwise, with the reason in err, it stays open
 * read-only (reads work, writes fail with -EROFS) until a later call
 * succeeds. Call it from a thread that holds no iterator or snapshot. */
int wl_store_recover(struct wl_store *store, char *err, size_t errlen);

/* 1 unless a write failed and no reopen has succeeded since. */
int wl_store_writable(struct wl_store *store);

/* Call once on a thread that writes a lot (the writer): turns off RocksDB's
 * per-thread perf counters, which nothing here reads. */
void wl_store_thread_init(void);

/* SECONDARY only: catches up with what the primary has written since. */
int wl_store_catch_up(struct wl_store *store, char *err, size_t errlen);

/* Writes the batch atomically; sync = fsync the WAL before returning.
 * -ENOSPC when the disk is full, -EIO on another error, -EROFS while a
 * failed write waits for wl_store_recover. After a failure the batch is in
 * no read; a reopen may still find it stored when only the WAL sync failed. */
int wl_store_write(struct wl_store *store, struct wl_batch *batch, int sync, char *err,
                   size_t errlen);

/* Makes every write that returned before the call durable: fsyncs the
 * write-ahead log, every file of it not yet synced (RocksDB's FlushWAL with
 * sync=true, which is SyncWAL: the logs up to the current one). Safe beside
 * writes on another thread; a write that returns meanwhile may or may not be
 * covered. A failure is handled as a failed write's: -ENOSPC or -EIO, and the
 * store waits for wl_store_recover (-EROFS meanwhile). */
int wl_store_sync_wal(struct wl_store *store, char *err, size_t errlen);

/* Point read. On 0, *val is malloc'd (caller frees). -ENOENT when absent. */
int wl_store_get(struct wl_store *store, enum wl_cf cf, const void *key, size_t klen,
                 char **val, size_t *vlen, char *err, size_t errlen);

/* A batch for this store's column families. */
/* A consistent view for several reads (any thread). PRIMARY only: a
 * secondary instance does not support snapshots, but it is frozen at the
 * moment it opened (until wl_store_catch_up), which is a view already. */
struct wl_snapshot *wl_snapshot_new(struct wl_store *store);
void wl_snapshot_free(struct wl_snapshot *snap);

/* wl_store_get as of a snapshot (NULL: the latest). */
int wl_store_get_at(struct wl_store *store, const struct wl_snapshot *snap, enum wl_cf cf,
                    const void *key, size_t klen, char **val, size_t *vlen, char *err,
                    size_t errlen);

/* Bytes on disk: SST files and write-ahead logs (approximate). */
uint64_t wl_store_disk_bytes(struct wl_store *store);

struct wl_batch *wl_batch_new(struct wl_store *store);
void wl_batch_put(struct wl_batch *b, enum wl_cf cf, const void *key, size_t klen,
                  const void *val, size_t vlen);
void wl_batch_delete(struct wl_batch *b, enum wl_cf cf, const void *key, size_t klen);
/* Deletes every key k with begin <= k < end (one range tombstone). */
void wl_batch_delete_range(struct wl_batch *b, enum wl_cf cf, const void *begin, size_t blen,
                           const void *end, size_t elen);
/* The store's lock, which each put takes for its column family's handle,
 * held for reading across many puts (the writer's apply of a group): the
 * puts between take none. Release it before anything on the same thread
 * that may reopen the store (wl_store_recover would wait for it). */
void wl_batch_hold(struct wl_batch *b);
void wl_batch_release(struct wl_batch *b);
int wl_batch_count(const struct wl_batch *b);
void wl_batch_clear(struct wl_batch *b);
void wl_batch_free(struct wl_batch *b);

/* Ordered iteration over one column family (a consistent view). An
 * iterator or a snapshot holds the store open (wl_store_recover waits for
 * it): free it on the thread that made it, and soon. */
struct wl_iter *wl_iter_new(struct wl_store *store, enum wl_cf cf);
/* An iterator over a snapshot (NULL: the latest). */
struct wl_iter *wl_iter_new_at(struct wl_store *store, const struct wl_snapshot *snap,
                               enum wl_cf cf);
/* The last key of a column family keyed by big-endian sequences (pings,
 * signals, quarantine) as a number, at snap (NULL: the latest); 0 when it
 * is empty. 0, or the iterator's error. */
int wl_store_last_seq(struct wl_store *store, const struct wl_snapshot *snap, enum wl_cf cf,
                      uint64_t *out, char *err, size_t errlen);
/* An iterator over the latest view for one long forward scan (an export):
 * it reads files readahead bytes at a time and leaves the block cache as it
 * was. */
struct wl_iter *wl_iter_new_scan(struct wl_store *store, enum wl_cf cf, size_t readahead);
void wl_iter_seek_first(struct wl_iter *it);
void wl_iter_seek_last(struct wl_iter *it);
void wl_iter_seek(struct wl_iter *it, const void *key, size_t klen);
/* Positions at the last key <= key. */
void wl_iter_seek_for_prev(struct wl_iter *it, const void *key, size_t klen);
void wl_iter_prev(struct wl_iter *it);
int wl_iter_valid(const struct wl_iter *it);
void wl_iter_next(struct wl_iter *it);
const char *wl_iter_key(const struct wl_iter *it, size_t *klen);
const char *wl_iter_value(const struct wl_iter *it, size_t *vlen);
/* Returns 0, or -EIO with the reason when iteration stopped on an error. */
int wl_iter_status(const struct wl_iter *it, char *err, size_t errlen);
void wl_iter_free(struct wl_iter *it);

#endif
