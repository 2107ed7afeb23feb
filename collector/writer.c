#include "writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <uthash.h>

#include "aggregate.h"
#include "envelope.h"
#include "forget.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "msgids.h"
#include "quarantine.h"
#include "state_read.h"
#include "writer_sync.h"

/* Pipelined group commit (durability = sync): the writer writes a group
 * with sync=0 and applies the next while the syncer (writer_sync.h) fsyncs
 * the log; a group's acks, its signals' hook and notify wait for a sync that
 * began after its write returned. At most UNSYNCED_MAX groups are written
 * and not yet durable: the writer waits for the syncer before writing
 * another, which bounds both the memory the acks hold and what a failed
 * sync must answer for. Memory (what the API reads, state_read.h) may run
 * a group or two ahead of the durable log: it already ran one ahead while a
 * synced write was under way. So may the store's own readers (export, the
 * sinks' reads of signals): a write with sync=0 is visible at once, where a
 * synced one was visible after its fsync; the sinks hear of signals only
 * once they are durable.
 *
 * A memtable flush while the log's tail is unsynced leaves no column family
 * ahead of the pings after a crash: with more than one column family,
 * RocksDB (7.8, DBImpl::FlushMemTableToOutputFile) syncs every closed WAL
 * (SyncClosedLogs) before it commits the flush, and picks only memtables up
 * to the latest id it saw before that sync, so an SST never holds a write
 * whose WAL was not synced; and writes land in the WAL in order, each batch
 * whole, so the replay after a crash (point-in-time recovery) stops at a
 * group boundary, the same for every column family. */
#define UNSYNCED_MAX 2
#define UNSYNCED_RING 4 /* > UNSYNCED_MAX: a group is handed in after its write */

struct wl_writer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct wl_job *head, *tail;       /* queued, FIFO */
    /* The group's next wire ping to prefetch (two ahead of the applied):
     * the writer thread's */
    struct wl_job *pf_job;
    size_t pf_i;
    struct wl_job *done_head, *done_tail;
    uint64_t queued_pings;
    int stopping;
    int joined;              /* the thread has ended */
    /* Groups written and not yet durable (durability = sync), oldest first:
     * their acks, the signal hook and notify wait for the syncer. */
    struct unsynced {
        struct wl_job *first, *last; /* NULL for a tick */
        uint64_t n_pings, ticket, last_signal;
        uint64_t write_ns;           /* mono_ns its write began (0: it wrote nothing) */
    } unsynced[UNSYNCED_RING];
    unsigned unsynced_first, n_unsynced;
    uint64_t synced;         /* the last ticket durable and answered */
    int sync_failed;         /* the syncer failed: the writer answers for the groups */

    /* writer thread only */
    uint64_t untallied_published;     /* wl_state_untallied at the last publish_state */
    uint64_t group_write_ns;          /* mono_ns the last group's pipelined write began */
    const struct wl_config *cfg;
    struct wl_store *store;
    struct wl_state *state;
    struct wl_state_reader *reader;   /* the API reads state through it (state_read.h) */
    struct wl_quarantine quarantine;
    struct wl_msgids *msgids;         /* Rudder messageIds seen */
    struct wl_batch *batch;
    uint8_t *ping_buf;
    size_t ping_buf_cap;
    wl_writer_notify notify;
    void *notify_arg;
    wl_writer_signals_hook hook;
    void *hook_arg;
    int live;
    struct wl_state_opts state_opts;
    uint64_t signal_seq;     /* the last signal id committed */
    int64_t flushed_at;      /* when the state records were last written */
    uint64_t pings_since_checkpoint;  /* since the last one began */
    uint64_t ckpt_began_ns;           /* mono_ns when the one under way began */
    int64_t slice_at;                 /* now_ms of the last slice */
    struct poisoned *poisoned;
    struct wl_syncer *syncer; /* durability = sync: makes the log durable; else NULL */
};

#define ADVANCE_EVERY_MS 10000 /* live: how often idle time expires installs */

/* Checkpoints (state_checkpoint.c): one begins with a group every
 * checkpoint_interval_ms, or after checkpoint_pings pings, or when this many
 * installs changed, whichever comes first,
 * once the last one is done; it is then written a slice per group
 * (slice_budget), and while the queue is idle without pings. A whole checkpoint in one write
 * instead: when time passing changed the state (an idle tick expired
 * installs: the replay after a crash sees only pings, not the passing of
 * time); before a forget; at the stop. In between, a group writes its raw
 * pings, signals and sequences, and its slice. The API reads memory
 * (state_read.h), not the records; a crash replays the pings stored since
 * the last whole checkpoint (wl_state_load). */
#define CHECKPOINT_INSTALLS_MAX 1000000
#define CHECKPOINT_SLICE 1024
/* While the queue is idle, a checkpoint goes on in slices this small: a
 * frame that comes meanwhile waits for the slice under way (with 1,024
 * records, bench/checkpoint_latency at 50,000 pings/s read an ack p99 over
 * checkpoints of 22.7-40.7 ms; with 128, 12.9-23.2: bench/RESULTS.md). */
#define CHECKPOINT_IDLE_SLICE 128

/* Connections whose frames must not land until the client resends. */
struct poisoned {
    uint64_t id;
    UT_hash_handle hh;
};

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

struct wl_job *wl_job_new(void)
{
    struct wl_job *job = calloc(1, sizeof *job);
    if (job != NULL) {
        job->rejected = WL_REJECT_NONE;
        job->first_reject = WL_REJECT_NONE;
    }
    return job;
}

void wl_job_set_sample(struct wl_job *job, const uint8_t *input, size_t len, size_t max)
{
    size_t n = len < max ? len : max;
    free(job->sample);
    job->sample = malloc(n ? n : 1);
    if (job->sample == NULL) {
        job->sample_len = 0;
        return;
    }
    memcpy(job->sample, input, n);
    job->sample_len = n;
    job->input_len = len;
}

void wl_job_free(struct wl_job *job)
{
    if (job == NULL)
        return;
    wl_ping_batch_free(job->batch);
    free(job->ping_rejects);
    free(job->edge);
    free(job->sample);
    free(job);
}

const char *wl_job_peer(struct wl_job *job)
{
    if (job->peer[0] == '\0')
        wl_format_addr(job->peer_addr.ss_family ? (struct sockaddr *)&job->peer_addr : NULL,
                       job->peer, sizeof job->peer);
    return job->peer;
}

void wl_job_message(const struct wl_job *job, char *buf, size_t len)
{
    switch (job->status) {
    case WL_ACK_REJECTED:
        if (job->rejected != WL_REJECT_NONE)
            snprintf(buf, len, "envelope rejected: %s", wl_reason_name(job->rejected));
        else
            snprintf(buf, len, "every ping rejected, first: %s",
                     wl_reason_name(job->first_reject));
        break;
    case WL_ACK_PARTIAL:
        snprintf(buf, len, "%u rejected, first: %s", job->n_rejected,
                 wl_reason_name(job->first_reject));
        break;
    case WL_ACK_RETRY_LATER:
        snprintf(buf, len, "collector busy or storage failing: nothing stored, send again");
        break;
    default:
        buf[0] = '\0';
    }
}

static uint64_t job_pings(const struct wl_job *job)
{
    return job->batch ? job->batch->n_pings : 0;
}

void wl_writer_submit_list(struct wl_writer *w, struct wl_job *first, struct wl_job *last,
                           uint64_t n)
{
    last->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->tail)
        w->tail->next = first;
    else
        w->head = first;
    w->tail = last;
    w->queued_pings += n;
    wl_gauge_set(WL_G_writer_queue_pings, w->queued_pings);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void wl_writer_submit(struct wl_writer *w, struct wl_job *job)
{
    job->next = NULL;
    wl_writer_submit_list(w, job, job, job_pings(job));
}

struct wl_job *wl_writer_take_done(struct wl_writer *w)
{
    pthread_mutex_lock(&w->mu);
    struct wl_job *list = w->done_head;
    w->done_head = w->done_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    return list;
}

uint64_t wl_writer_queued_pings(struct wl_writer *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t n = w->queued_pings;
    pthread_mutex_unlock(&w->mu);
    return n;
}

static void quarantine_ping(struct wl_writer *w, struct wl_job *job, const wl_ping *p,
                            enum wl_reason r, int64_t now)
{
    size_t n = warmline__v1__ping__get_packed_size(p);
    if (n > w->ping_buf_cap) {
        uint8_t *b = realloc(w->ping_buf, n);
        if (b == NULL)
            return;
        w->ping_buf = b;
        w->ping_buf_cap = n;
    }
    warmline__v1__ping__pack(p, w->ping_buf);
    size_t keep = n < w->cfg->quarantine_sample_bytes ? n : w->cfg->quarantine_sample_bytes;
    if (wl_quarantine_add(&w->quarantine, w->batch, now, r, wl_job_peer(job), job->transport,
                          w->ping_buf, keep, n))
        wl_count(WL_M_quarantined, 1);
}

/* Validates, dedups and stages one job's pings into the group's batch. */
static void poison_clear(struct wl_writer *w, uint64_t id)
{
    struct poisoned *p;
    HASH_FIND(hh, w->poisoned, &id, sizeof id, p);
    if (p != NULL) {
        HASH_DEL(w->poisoned, p);
        free(p);
    }
}

static void poison_add(struct wl_writer *w, uint64_t id)
{
    struct poisoned *p;
    HASH_FIND(hh, w->poisoned, &id, sizeof id, p);
    if (p != NULL || (p = calloc(1, sizeof *p)) == NULL)
        return;
    p->id = id;
    HASH_ADD(hh, w->poisoned, id, sizeof p->id, p);
}

#define APPLY_RUN 64 /* wire pings applied under one hold of the readers' lock */

/* ---- the group's wire pings, fetched ahead (aggregate.h: wl_state_prefetch) ----
 * A cursor over the group's jobs, across their ends (a UDP job holds one
 * ping), two pings ahead of the apply: one call for each wire ping
 * apply_job goes through. A job found rejected or sent back only after the
 * cursor passed it puts the cursor further ahead: the hints it outran are
 * lost, and those pings hashed at their apply, as without. */

static int prefetched(const struct wl_job *job)
{
    return job->edge == NULL && job->batch != NULL && job->rejected == WL_REJECT_NONE &&
           !job->retry_later;
}

static void prefetch_next(struct wl_writer *w)
{
    while (w->pf_job != NULL && (!prefetched(w->pf_job) || w->pf_i >= w->pf_job->batch->n_pings)) {
        w->pf_job = w->pf_job->next;
        w->pf_i = 0;
    }
    wl_state_prefetch(w->state, w->pf_job != NULL ? w->pf_job->batch->pings[w->pf_i++] : NULL);
}

static void prefetch_group(struct wl_writer *w, struct wl_job *group)
{
    wl_state_prefetch_clear(w->state); /* the hints name a group's pings */
    w->pf_job = group;
    w->pf_i = 0;
    if (group != NULL) {
        prefetch_next(w);
        prefetch_next(w);
    }
}

static void apply_job(struct wl_writer *w, struct wl_job *job, int64_t now)
{
    if (job->clear_poison)
        poison_clear(w, job->origin_id);
    if (job->origin_id != 0 && w->poisoned != NULL) {
        struct poisoned *p;
        HASH_FIND(hh, w->poisoned, &job->origin_id, sizeof job->origin_id, p);
        if (p != NULL)
            job->retry_later = 1;
    }
    if (job->retry_later) {
        job->status = WL_ACK_RETRY_LATER;
        return;
    }
    if (job->rejected != WL_REJECT_NONE) {
        job->status = WL_ACK_REJECTED;
        if (job->sample != NULL &&
            wl_quarantine_add(&w->quarantine, w->batch, now, job->rejected, wl_job_peer(job),
                              job->transport, job->sample, job->sample_len, job->input_len))
            wl_count(WL_M_quarantined, 1);
        return;
    }
    /* A wire job's pings: each one's table slots are fetched two pings
     * ahead (prefetch_next), and the readers' lock is held over runs of them
     * (a reader waits for at most APPLY_RUN applies, some hundred
     * microseconds; taken per ping, its unlock alone was 2% of the
     * collector's CPU in a cold load). An edge
     * ping's message-id check may read the store: it is applied alone. */
    const size_t n = job->batch->n_pings;
    const int wire = job->edge == NULL;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const wl_ping *p = job->batch->pings[i];
        enum wl_reason r = job->ping_rejects ? job->ping_rejects[i] : WL_REJECT_NONE;
        if (wire)
            prefetch_next(w);
        if (r == WL_REJECT_NONE)
            r = wl_ping_validate(p, w->cfg->max_count);
        if (r != WL_REJECT_NONE) {
            if (job->n_rejected++ == 0)
                job->first_reject = r;
            wl_count_ping_reject(wl_transport_of(job->transport), r);
            quarantine_ping(w, job, p, r, now);
            continue;
        }
        int64_t event_at = job->received_at;
        if (job->event_time_sent_at && p->sent_at > 0)
            event_at = p->sent_at;
        /* a Rudder event resent (its messageId seen) changes nothing */
        const struct wl_edge *e = job->edge ? &job->edge[i] : NULL;
        struct wl_msgid_key mk;
        int seen = e != NULL && e->msgid_len > 0
                       ? wl_msgids_check(w->msgids, p->install_id, strlen(p->install_id),
                                         e->msgid, e->msgid_len, &mk)
                       : 0;
        if (seen == 1) {
            job->duplicates++;
            continue;
        }
        if (seen < 0) { /* the store could not say: the sender tries again */
            job->retry_later = 1;
            continue;
        }
        if (run++ == 0)
            wl_state_change_begin(w->reader);
        enum wl_apply a =
            wire ? wl_state_apply_wire(w->state, p, job->ping_bytes ? &job->ping_bytes[i] : NULL,
                                       job->received_at, event_at, w->batch)
                 : wl_state_apply_edge(w->state, p, &job->edge[i], job->received_at, event_at,
                                       w->batch);
        if (!wire || run == APPLY_RUN) {
            wl_state_change_end(w->reader);
            run = 0;
        }
        if (a == WL_APPLY_DUPLICATE) {
            job->duplicates++;
        } else {
            job->accepted++;
            if (e != NULL && e->msgid_len > 0)
                wl_msgids_add(w->msgids, &mk, job->received_at, w->batch);
        }
    }
    if (run != 0)
        wl_state_change_end(w->reader);
    if (job->retry_later)
        job->status = WL_ACK_RETRY_LATER;
    else if (job->n_rejected == 0)
        job->status = WL_ACK_OK;
    else if (job->accepted + job->duplicates > 0)
        job->status = WL_ACK_PARTIAL;
    else
        job->status = WL_ACK_REJECTED;
}

/* After a failed write RocksDB refuses every later one until the store is
 * reopened (wl_store_recover). The group's batch is all puts and deletes
 * computed from memory, so writing it again after a reopen is safe even if
 * the failed write did land (a WAL sync that failed after the append):
 * 1 when the reopen and the second write both worked. */
static int reopen_and_write_again(struct wl_writer *w, int sync)
{
    char err[512];
    int rc = wl_store_recover(w->store, err, sizeof err);
    if (rc == -EAGAIN)
        return 0; /* tried moments ago */
    if (rc != 0) {
        wl_warn("storage_reopen_failed", "error=\"%s\" writes=refused", err);
        return 0;
    }
    if (wl_store_write(w->store, w->batch, sync, err, sizeof err) != 0) {
        wl_error("write_failed", "error=\"%s\" after_reopen=1", err);
        wl_count(WL_M_write_errors, 1);
        return 0;
    }
    wl_info("storage_recovered", "how=reopen");
    return 1;
}

/* Memory rebuilt from disk. The API reads the old state until the new one
 * is loaded. */
static void reload_state(struct wl_writer *w)
{
    char err[512];
    struct wl_state *fresh = NULL;
    while (wl_state_load(w->store, &w->state_opts, &fresh, err, sizeof err) != 0) {
        wl_error("state_reload_failed", "error=\"%s\" retry_in_ms=1000", err);
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
        if (wl_store_recover(w->store, err, sizeof err) != 0 && !wl_store_writable(w->store))
            wl_warn("storage_reopen_failed", "error=\"%s\"", err);
    }
    wl_state_reader_set(w->reader, fresh);
    wl_state_free(w->state);
    w->state = fresh;
    if (wl_quarantine_init(&w->quarantine, w->store, w->cfg->quarantine_max_records,
                           w->cfg->quarantine_per_second, err, sizeof err) != 0)
        wl_error("quarantine_reload_failed", "error=\"%s\"", err);
}

/* Every job of group answered RETRY_LATER, its connection poisoned: the
 * number of frames. */
static uint64_t answer_retry_later(struct wl_writer *w, struct wl_job *group)
{
    uint64_t n = 0;
    for (struct wl_job *job = group; job != NULL; job = job->next, n++) {
        job->status = WL_ACK_RETRY_LATER;
        job->accepted = job->duplicates = job->n_rejected = 0;
        if (job->origin_id != 0)
            poison_add(w, job->origin_id);
    }
    return n;
}

/* A failed write leaves memory ahead of disk: rebuild it from disk. */
static void recover_after_failed_write(struct wl_writer *w, struct wl_job *group)
{
    reload_state(w);
    uint64_t n = answer_retry_later(w, group);
    if (n > 0)
        wl_warn("frames_retry_later", "frames=%llu reason=storage", (unsigned long long)n);
}

/* The state's size, for the installs and organizations gauges. */
static void publish_state(struct wl_writer *w)
{
    uint64_t untallied = wl_state_untallied(w->state);
    wl_gauge_set(WL_G_installs, wl_state_n_installs(w->state));
    wl_gauge_set(WL_G_organizations, wl_state_n_orgs(w->state));
    wl_gauge_set(WL_G_interned_bytes, wl_state_interned_bytes(w->state));
    wl_gauge_set(WL_G_interned_strings, wl_state_interned(w->state));
    if (untallied > w->untallied_published) /* a reload starts the state's count again */
        wl_count(WL_M_features_untallied, untallied - w->untallied_published);
    w->untallied_published = untallied;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Under mu: moves the groups whose ticket is durable to the done list,
 * oldest first. 1 when jobs moved; *last_signal: the newest signal id among
 * them (unchanged when none). */
static int release_synced(struct wl_writer *w, uint64_t *last_signal)
{
    int moved = 0;
    while (w->n_unsynced > 0) {
        struct unsynced *u = &w->unsynced[w->unsynced_first];
        if (u->ticket > w->synced)
            break;
        if (u->first != NULL) {
            if (w->done_tail)
                w->done_tail->next = u->first;
            else
                w->done_head = u->first;
            w->done_tail = u->last;
            moved = 1;
        }
        w->queued_pings -= u->n_pings;
        if (u->write_ns != 0) /* from its write to its durability: what its acks waited */
            wl_observe_commit_ns(mono_ns() - u->write_ns);
        if (u->last_signal > *last_signal)
            *last_signal = u->last_signal;
        w->unsynced_first = (w->unsynced_first + 1) % UNSYNCED_RING;
        w->n_unsynced--;
    }
    wl_gauge_set(WL_G_writer_queue_pings, w->queued_pings);
    return moved;
}

/* After a release, without mu: the sinks hear of durable signals, the
 * ingest loop of finished jobs (both only wake another thread). */
static void announce(struct wl_writer *w, int moved, uint64_t last_signal)
{
    if (last_signal != 0 && w->hook)
        w->hook(w->hook_arg, last_signal);
    if (moved && w->notify)
        w->notify(w->notify_arg);
}

/* The syncer's callback, on its thread: tickets up to upto are durable, or
 * (rc != 0) a sync failed and the writer must answer for what it wrote. */
static void on_synced(void *arg, uint64_t upto, int rc)
{
    struct wl_writer *w = arg;
    uint64_t last_signal = 0;
    int moved = 0;

    pthread_mutex_lock(&w->mu);
    if (rc == 0) {
        w->synced = upto;
        moved = release_synced(w, &last_signal);
    } else {
        w->sync_failed = 1;
        pthread_cond_signal(&w->cv); /* the writer may be idle */
    }
    pthread_mutex_unlock(&w->mu);
    announce(w, moved, last_signal);
}

/* A group committed (first..last, NULL for a tick), handed back for its
 * acks: at once when its ticket is durable (0 without a syncer), else when
 * the syncer says so, after every group before it. */
static void hand_back(struct wl_writer *w, struct wl_job *first, struct wl_job *last,
                      uint64_t n_pings, uint64_t ticket, uint64_t last_signal)
{
    if (first == NULL && last_signal == 0)
        return;
    pthread_mutex_lock(&w->mu);
    if (w->n_unsynced == UNSYNCED_RING)
        abort(); /* cannot be: the writer waits for the syncer past UNSYNCED_MAX */
    w->unsynced[(w->unsynced_first + w->n_unsynced) % UNSYNCED_RING] = (struct unsynced){
        .first = first, .last = last, .n_pings = n_pings, .ticket = ticket,
        .last_signal = last_signal, .write_ns = w->group_write_ns};
    w->n_unsynced++;
    uint64_t released_signal = 0;
    int moved = release_synced(w, &released_signal);
    pthread_mutex_unlock(&w->mu);
    announce(w, moved, released_signal);
}

/* A failed sync: no group written since the last good one is known durable
 * (an fsync that fails may leave the kernel's pages dropped). Each of them,
 * and group (applied to memory, not written: NULL for none), is answered
 * RETRY_LATER and its connection poisoned; the store is reopened and memory
 * reloaded from what it holds. Some of those groups may be stored after
 * all: their pings, sent again, are duplicates by (install_id, seq) (a
 * Rudder event by its messageId), counted once and acked as such. Their
 * batches are not kept to be written again: a reopen replays whatever of
 * them the log holds, and the next sync would have to cover it anyway. */
static void recover_after_failed_sync(struct wl_writer *w, struct wl_job *group)
{
    char err[512];
    uint64_t frames = 0, last_signal = 0;

    int rc = wl_store_recover(w->store, err, sizeof err);
    if (rc == 0)
        wl_info("storage_recovered", "how=reopen after=wal_sync");
    else
        wl_warn("storage_reopen_failed", "error=\"%s\" writes=refused", err);
    reload_state(w);
    pthread_mutex_lock(&w->mu);
    for (unsigned i = 0; i < w->n_unsynced; i++) {
        struct unsynced *u = &w->unsynced[(w->unsynced_first + i) % UNSYNCED_RING];
        frames += answer_retry_later(w, u->first);
        u->write_ns = 0; /* never durable: not a commit's time */
    }
    w->sync_failed = 0;
    pthread_mutex_unlock(&w->mu);
    frames += answer_retry_later(w, group);
    wl_syncer_reset(w->syncer);
    uint64_t written = wl_syncer_written(w->syncer);
    pthread_mutex_lock(&w->mu);
    w->synced = written;
    int moved = release_synced(w, &last_signal);
    pthread_mutex_unlock(&w->mu);
    announce(w, moved, 0); /* their signals are what the reload found: none to push */
    if (frames > 0)
        wl_warn("frames_retry_later", "frames=%llu reason=storage", (unsigned long long)frames);
    publish_state(w);
}

/* Waits until the syncer has made every group written durable (and they
 * are answered): a forget, a whole checkpoint and the stop are durable when
 * they report done, and so is everything before them. 0, or -EIO after a
 * failed sync, answered for (group, applied and not written, with it). */
static int drain_syncer(struct wl_writer *w, struct wl_job *group)
{
    char err[512];
    if (w->syncer == NULL ||
        wl_syncer_wait(w->syncer, wl_syncer_written(w->syncer), err, sizeof err) == 0)
        return 0;
    recover_after_failed_sync(w, group);
    return -EIO;
}

/* A checkpoint's slice with a group of n pings, dt ms after the last: what
 * is left of it spread evenly over what is left of a window (by pings or by
 * time, whichever ends first), so that no group carries more than its share
 * (the writer's spare time at half of peak: bench/checkpoint_latency). A
 * window after its begin, as large as the
 * records those pings change (up to three a ping), or at full ingest it
 * never ends and the replay after a crash grows without bound. While idle,
 * a small slice, again and again. */
static size_t slice_budget(const struct wl_writer *w, uint64_t n, int64_t now)
{
    if (n == 0)
        return CHECKPOINT_IDLE_SLICE;
    uint64_t window = w->cfg->checkpoint_pings, since = w->pings_since_checkpoint;
    int64_t elapsed = now - w->flushed_at, interval = (int64_t)w->cfg->checkpoint_interval_ms;
    if (since >= window || elapsed >= interval)
        return CHECKPOINT_SLICE + 3 * n;
    double left = (double)wl_state_checkpoint_left(w->state);
    double share = (double)n / (double)(window - since);
    double dt = (double)(now - w->slice_at);
    if (dt > 0 && dt / (double)(interval - elapsed) > share)
        share = dt / (double)(interval - elapsed);
    return 16 + (size_t)(1.25 * left * share); /* a quarter ahead of the pace */
}

/* Whether a checkpoint begins with this group. */
static int checkpoint_due(const struct wl_writer *w, int64_t now)
{
    if (!wl_state_dirty(w->state))
        return 0;
    return now - w->flushed_at >= (int64_t)w->cfg->checkpoint_interval_ms ||
           w->pings_since_checkpoint >= w->cfg->checkpoint_pings ||
           wl_state_dirty_installs(w->state) >= CHECKPOINT_INSTALLS_MAX;
}

/* After a checkpoint's write: t0 when its packing began (mono_ns). */
static void checkpoint_done(struct wl_writer *w, uint64_t records, uint64_t t0)
{
    uint64_t ms = (mono_ns() - t0) / 1000000;
    if (records > CHECKPOINT_SLICE / 2) /* one in slices, or a large whole one */
        wl_info("checkpoint_done", "records=%llu ms=%llu pings_since=%llu",
                (unsigned long long)records, (unsigned long long)ms,
                (unsigned long long)w->pings_since_checkpoint);
    w->pings_since_checkpoint = 0;
    wl_count(WL_M_state_flushes, 1);
    wl_gauge_set(WL_G_checkpoint_records, records);
    wl_gauge_set(WL_G_checkpoint_ms, ms);
    wl_gauge_set(WL_G_checkpoint_seq, wl_state_ingest_seq(w->state));
}

/* group NULL: a tick, time passing. Returns the ticket the group's acks
 * wait for (hand_back); *last_signal: the newest signal it stored, or 0. */
static uint64_t commit_group(struct wl_writer *w, struct wl_job *group, uint64_t n_pings,
                             uint64_t *last_signal_out)
{
    uint64_t expired = 0;
    int64_t now = now_ms();
    uint64_t accepted = 0, duplicates = 0, rejected = 0, batches_rejected = 0;
    uint64_t t_accepted[WL_N_TRANSPORTS] = {0}, t_duplicates[WL_N_TRANSPORTS] = {0};
    char err[512];

    wl_batch_clear(w->batch);
    w->group_write_ns = 0;
    wl_msgids_group_done(w->msgids); /* the last group's are in the store (or failed) */
    prefetch_group(w, group);
    if (group != NULL)
        wl_batch_hold(w->batch); /* released before any reopen below */
    for (struct wl_job *job = group; job != NULL; job = job->next) {
        apply_job(w, job, now);
        enum wl_transport t = wl_transport_of(job->transport);
        t_accepted[t] += job->accepted;
        t_duplicates[t] += job->duplicates;
        accepted += job->accepted;
        duplicates += job->duplicates;
        rejected += job->n_rejected;
        batches_rejected += job->rejected != WL_REJECT_NONE;
    }
    prefetch_group(w, NULL);
    if (group != NULL)
        wl_batch_release(w->batch);
    /* A tick with no jobs: time passes; not while a checkpoint is written
     * in slices (the expiry would make it one whole write: the next ping's
     * expiry, or a later tick, does it). */
    if (group == NULL && !wl_state_checkpoint_busy(w->state)) {
        wl_state_change_begin(w->reader);
        expired = wl_state_advance(w->state, now, w->batch);
        wl_state_change_end(w->reader);
    }
    w->pings_since_checkpoint += accepted;
    /* Time passing that changed the state is checkpointed whole with the
     * tick (the replay after a crash sees only pings, not the passing of
     * time); ticks come only while the queue is idle. */
    int flush = expired > 0 && wl_state_dirty(w->state);
    int changed = accepted > 0 || flush, staged = 0;
    uint64_t t_ckpt = mono_ns(), records = 0;
    /* Checkpoints write to memory too (flags, the packers' caches): under
     * the readers' lock, which the write below is not. */
    if (flush) {
        wl_state_change_begin(w->reader);
        records = wl_state_flush(w->state, w->batch);
        wl_state_change_end(w->reader);
    } else {
        wl_state_change_begin(w->reader);
        if (!wl_state_checkpoint_busy(w->state) && checkpoint_due(w, now)) {
            if (wl_state_dirty_installs(w->state) <= CHECKPOINT_SLICE / 2) {
                flush = changed = 1; /* one slice's worth: whole, in place at once */
            } else {
                wl_info("checkpoint_begun", "installs=%llu pings_since=%llu ingest_seq=%llu",
                        (unsigned long long)wl_state_dirty_installs(w->state),
                        (unsigned long long)w->pings_since_checkpoint,
                        (unsigned long long)wl_state_ingest_seq(w->state));
                wl_state_checkpoint_begin(w->state, now, w->batch);
                w->ckpt_began_ns = t_ckpt;
                w->pings_since_checkpoint = 0;
                w->flushed_at = w->slice_at = now;
            }
        }
        if (wl_state_checkpoint_busy(w->state)) {
            staged = wl_state_checkpoint_step(w->state, slice_budget(w, n_pings, now), w->batch,
                                              &records);
            w->slice_at = now;
        }
        if (flush)
            records = wl_state_flush(w->state, w->batch);
        wl_state_change_end(w->reader);
        if (!flush)
            wl_state_stage(w->state, w->batch);
    }
    *last_signal_out = 0;
    /* durability = sync: the syncer makes the write durable, unless it is a
     * whole checkpoint (flush), durable before it counts as done: written
     * synced, once the syncer is drained. Otherwise at most UNSYNCED_MAX
     * groups written and not durable, this one among them. */
    int pipelined = w->syncer != NULL && !flush, durable = w->syncer == NULL || flush;
    if (w->syncer != NULL) {
        uint64_t written = wl_syncer_written(w->syncer);
        uint64_t upto = flush ? written : written + 1 > UNSYNCED_MAX
                                              ? written + 1 - UNSYNCED_MAX : 0;
        if (wl_syncer_wait(w->syncer, upto, err, sizeof err) != 0) {
            recover_after_failed_sync(w, group);
            return wl_syncer_written(w->syncer);
        }
    }
    if (wl_batch_count(w->batch) > 0) {
        /* Only pings and state need the sync; quarantine alone can wait. */
        int sync = changed && w->cfg->durability == WL_DURABILITY_SYNC;
        uint64_t t0 = mono_ns();
        if (wl_store_write(w->store, w->batch, sync && !pipelined, err, sizeof err) != 0) {
            wl_error("write_failed", "error=\"%s\" pings=%llu", err,
                     (unsigned long long)n_pings);
            wl_count(WL_M_write_errors, 1);
            /* What the syncer has under way settles first: when it fails
             * too, every group since the last good sync is answered for;
             * when it does not, this group alone is written again, synced. */
            if (drain_syncer(w, group) != 0)
                return wl_syncer_written(w->syncer);
            durable = 1;
            if (!reopen_and_write_again(w, sync)) {
                recover_after_failed_write(w, group);
                publish_state(w);
                return w->syncer ? wl_syncer_written(w->syncer) : 0;
            }
        }
        if (pipelined) /* observed once durable (release_synced) */
            w->group_write_ns = t0;
        else
            wl_observe_commit_ns(mono_ns() - t0);
        wl_observe_group_pings(n_pings);
        wl_count(WL_M_groups_committed, 1);
    }
    if (flush)
        checkpoint_done(w, records, t_ckpt);
    else if (staged)
        checkpoint_done(w, records, w->ckpt_began_ns);
    wl_gauge_set(WL_G_pings_since_checkpoint, w->pings_since_checkpoint);
    wl_state_change_begin(w->reader);
    uint64_t last_signal = wl_state_commit(w->state);
    wl_state_change_end(w->reader);
    if (last_signal != 0)
        w->signal_seq = last_signal; /* the hook hears of it once durable (hand_back) */
    *last_signal_out = last_signal;
    wl_count(WL_M_pings_accepted, accepted);
    wl_count(WL_M_pings_duplicate, duplicates);
    wl_count(WL_M_pings_rejected, rejected);
    wl_count(WL_M_batches_rejected, batches_rejected);
    for (int t = 0; t < WL_N_TRANSPORTS; t++) {
        if (t_accepted[t])
            wl_count_t((enum wl_transport)t, WL_T_pings_accepted, t_accepted[t]);
        if (t_duplicates[t])
            wl_count_t((enum wl_transport)t, WL_T_pings_duplicate, t_duplicates[t]);
    }
    publish_state(w);
    if (durable)
        return w->syncer ? wl_syncer_written(w->syncer) : 0;
    /* Every group takes a ticket, one that wrote nothing too: its acks may
     * count duplicates of pings a group before it wrote, not yet durable. */
    return group != NULL || last_signal != 0 ? wl_syncer_wrote(w->syncer) : 0;
}

/* The state records alone, synced, with nothing else in the batch: before
 * a forget and at the stop. After a failure the state is rebuilt from disk
 * (the stored pings replayed): still dirty, nothing lost. */
static int flush_state(struct wl_writer *w, const char *why)
{
    char err[512];

    if (drain_syncer(w, NULL) != 0)
        return -EIO; /* reloaded from disk: still dirty, nothing lost */
    wl_batch_clear(w->batch);
    uint64_t t0 = mono_ns();
    wl_state_change_begin(w->reader);
    uint64_t records = wl_state_flush(w->state, w->batch);
    wl_state_change_end(w->reader);
    if (wl_store_write(w->store, w->batch, 1, err, sizeof err) != 0) {
        wl_error("write_failed", "error=\"%s\" state_flush=%s", err, why);
        wl_count(WL_M_write_errors, 1);
        wl_batch_clear(w->batch);
        recover_after_failed_write(w, NULL);
        return -EIO;
    }
    wl_state_change_begin(w->reader);
    wl_state_commit(w->state);
    wl_state_change_end(w->reader);
    checkpoint_done(w, records, t0);
    wl_gauge_set(WL_G_pings_since_checkpoint, 0);
    wl_batch_clear(w->batch);
    return 0;
}

/* One step of a forget (forget.h), alone: one atomic write, synced, when
 * the step has anything to write; then its requester hears how it went.
 * The memory step starts from written state. A failure may leave memory
 * ahead of disk: it is rebuilt. */
static void commit_forget(struct wl_writer *w, struct wl_job *job)
{
    char err[512];
    int rc = 0, memory = wl_forget_wants_flushed_state(job->forget);

    /* What came before is durable first (after a failed sync, reloaded):
     * the forget's writes are synced, and nothing after them may be lost
     * when they are not. */
    drain_syncer(w, NULL);
    if (memory && wl_state_dirty(w->state))
        rc = flush_state(w, "forget");
    wl_batch_clear(w->batch);
    /* The memory step changes memory; the others read it. Rare, and
     * bounded: a forget's slices are (forget.h). */
    wl_state_change_begin(w->reader);
    if (rc == 0)
        rc = wl_forget_apply(job->forget, w->state, w->store, w->batch, now_ms());
    wl_state_change_end(w->reader);
    if (rc == 0 && wl_batch_count(w->batch) > 0 &&
        wl_store_write(w->store, w->batch, 1, err, sizeof err) != 0) {
        wl_error("write_failed", "error=\"%s\" forget=1", err);
        wl_count(WL_M_write_errors, 1);
        rc = -EIO;
    }
    if (rc == 0 && memory) {
        wl_state_change_begin(w->reader);
        wl_state_commit(w->state);
        wl_state_change_end(w->reader);
    } else if (rc != 0 && rc != -ENOENT) {
        wl_error("forget_failed", "kind=%s error=%s", wl_forget_kind_name(job->forget),
                 strerror(-rc));
        wl_batch_clear(w->batch);
        recover_after_failed_write(w, NULL);
    }
    wl_batch_clear(w->batch);
    publish_state(w);
    wl_forget_done(job->forget, rc);
    wl_job_free(job);
}

static void *writer_main(void *arg)
{
    struct wl_writer *w = arg;

    pthread_setname_np(pthread_self(), "wl-writer"); /* for top -H, perf, gdb */
    wl_store_thread_init();
    for (;;) {
        pthread_mutex_lock(&w->mu);
        int timed_out = 0;
        while (w->head == NULL && !w->stopping && !timed_out && !w->sync_failed) {
            if (!w->live) {
                pthread_cond_wait(&w->cv, &w->mu);
                continue;
            }
            /* a checkpoint's slices go on while idle, and one due begins */
            if (wl_state_checkpoint_busy(w->state) || (w->flushed_at == 0 &&
                                                       wl_state_dirty(w->state))) {
                timed_out = 1;
                break;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += ADVANCE_EVERY_MS / 1000;
            timed_out = pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT;
        }
        if (w->sync_failed) { /* a sync failed: answer for what it covered */
            pthread_mutex_unlock(&w->mu);
            recover_after_failed_sync(w, NULL);
            continue;
        }
        if (w->head == NULL && !timed_out) { /* stopping, and nothing left */
            pthread_mutex_unlock(&w->mu);
            drain_syncer(w, NULL); /* every ack out before the thread ends */
            if (wl_state_dirty(w->state)) /* leave nothing to replay */
                flush_state(w, "stop");
            break;
        }
        if (w->head == NULL) { /* live and idle: let time pass */
            pthread_mutex_unlock(&w->mu);
            uint64_t last_signal, ticket = commit_group(w, NULL, 0, &last_signal);
            hand_back(w, NULL, NULL, 0, ticket, last_signal);
            continue;
        }
        struct wl_job *group = w->head, *last = w->head;
        if (group->forget != NULL) { /* a forget goes alone */
            w->head = group->next;
            if (w->head == NULL)
                w->tail = NULL;
            group->next = NULL;
            pthread_mutex_unlock(&w->mu);
            commit_forget(w, group);
            continue;
        }
        /* Take a group: whole jobs, up to max_group_pings (at least one),
         * up to the next forget. */
        uint64_t n = job_pings(last);
        while (last->next != NULL && last->next->forget == NULL &&
               n + job_pings(last->next) <= w->cfg->max_group_pings) {
            last = last->next;
            n += job_pings(last);
        }
        w->head = last->next;
        if (w->head == NULL)
            w->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&w->mu);

        uint64_t last_signal, ticket = commit_group(w, group, n, &last_signal);
        hand_back(w, group, last, n, ticket, last_signal);
    }
    return NULL;
}

int wl_writer_start(const struct wl_config *cfg, struct wl_store *store, int live,
                    wl_writer_notify notify, void *arg, wl_writer_signals_hook hook,
                    void *hook_arg, struct wl_writer **out, char *err, size_t errlen)
{
    struct wl_writer *w = calloc(1, sizeof *w);
    int rc;

    if (w == NULL)
        return -ENOMEM;
    w->cfg = cfg;
    w->store = store;
    w->notify = notify;
    w->notify_arg = arg;
    w->hook = hook;
    w->hook_arg = hook_arg;
    w->live = live;
    w->state_opts = (struct wl_state_opts){
        .install_ttl_ms = cfg->install_ttl_ms,
        .score_half_life_ms = cfg->score_half_life_ms,
        .max_org_features = (uint32_t)cfg->max_org_features,
        .rules = &cfg->rules,
    };
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if ((w->reader = wl_state_reader_new()) == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = wl_state_load(store, &w->state_opts, &w->state, err, errlen)) != 0)
        goto fail;
    wl_state_reader_set(w->reader, w->state);
    w->signal_seq = wl_state_signal_seq(w->state);
    wl_metrics_set_rules(&cfg->rules);
    publish_state(w);
    if ((rc = wl_quarantine_init(&w->quarantine, store, cfg->quarantine_max_records,
                                 cfg->quarantine_per_second, err, errlen)) != 0)
        goto fail;
    if ((rc = wl_msgids_open(store, &w->msgids, err, errlen)) != 0)
        goto fail;
    w->batch = wl_batch_new(store);
    /* What a crash left to replay is checkpointed: a slice's worth at once,
     * more in slices from the first group on (written back whole first, a
     * million replayed installs took 6.6 s of the restart; a crash before
     * that checkpoint is whole replays the same pings again). */
    uint64_t replayed = wl_state_replayed(w->state);
    w->flushed_at = now_ms();
    if (wl_state_dirty(w->state) && wl_state_dirty_installs(w->state) <= CHECKPOINT_SLICE / 2)
        flush_state(w, "replay");
    else if (wl_state_dirty(w->state))
        w->flushed_at = 0; /* due at once */
    wl_gauge_set(WL_G_checkpoint_seq, wl_state_state_seq(w->state));
    if (cfg->durability == WL_DURABILITY_SYNC &&
        (rc = wl_syncer_start(store, on_synced, w, &w->syncer, err, errlen)) != 0)
        goto fail;
    if ((rc = pthread_create(&w->thread, NULL, writer_main, w)) != 0) {
        snprintf(err, errlen, "cannot start the writer thread: %s", strerror(rc));
        rc = -rc;
        goto fail;
    }
    wl_info("writer_started",
            "installs=%llu orgs=%llu ingest_seq=%llu signal_seq=%llu replayed=%llu rules=%zu "
            "durability=%s",
            (unsigned long long)wl_state_n_installs(w->state),
            (unsigned long long)wl_state_n_orgs(w->state),
            (unsigned long long)wl_state_ingest_seq(w->state),
            (unsigned long long)w->signal_seq, (unsigned long long)replayed, cfg->rules.n,
            cfg->durability == WL_DURABILITY_SYNC ? "sync" : "async");
    *out = w;
    return 0;

fail:
    wl_syncer_stop(w->syncer);
    wl_batch_free(w->batch);
    wl_msgids_free(w->msgids);
    wl_state_free(w->state);
    wl_state_reader_free(w->reader);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
    return rc;
}

struct wl_state_reader *wl_writer_state_reader(struct wl_writer *w) { return w->reader; }

void wl_writer_join(struct wl_writer *w)
{
    if (w == NULL || w->joined)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    wl_syncer_stop(w->syncer); /* idle: the writer drained it before it ended */
    w->syncer = NULL;
    w->joined = 1;
}

void wl_writer_stop(struct wl_writer *w)
{
    if (w == NULL)
        return;
    wl_writer_join(w);
    for (struct wl_job *job = wl_writer_take_done(w), *next; job != NULL; job = next) {
        next = job->next;
        wl_job_free(job);
    }
    wl_info("writer_stopped", "ingest_seq=%llu",
            (unsigned long long)wl_state_ingest_seq(w->state));
    wl_batch_free(w->batch);
    wl_state_reader_set(w->reader, NULL);
    wl_state_free(w->state);
    wl_state_reader_free(w->reader);
    wl_msgids_free(w->msgids);
    free(w->ping_buf);
    struct poisoned *p, *tmp;
    HASH_ITER(hh, w->poisoned, p, tmp) {
        HASH_DEL(w->poisoned, p);
        free(p);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
