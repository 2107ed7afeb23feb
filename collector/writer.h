/* The writer: exactly one thread that owns aggregate state. It takes jobs
 * (decoded batches) from the ingest loop, validates and dedups each ping,
 * and commits a whole group of jobs as ONE atomic write, then hands the
 * finished jobs back, in submission order, for their acks. With durability
 * = sync a second thread, the syncer (writer_sync.h), fsyncs the log while
 * the writer applies the next group: a group's jobs come back only after a
 * sync that began after its write returned (one sync may cover several
 * groups), so an ack OK still means the ping is durable.
 *
 * When a write fails, every job of the group is answered RETRY_LATER, and
 * so is every later job of the same connections (they are "poisoned") until
 * one arrives with clear_poison: otherwise a later frame with newer seqs
 * could land first and make the resent ones duplicates, losing them. */
#ifndef WL_WRITER_H
#define WL_WRITER_H

#include <stddef.h>
#include <sys/socket.h>
#include <stdint.h>

#include "config.h"
#include "ping.h"
#include "storage/store.h"

struct wl_forget_req;
struct wl_state_reader;

/* Ack.Status values, named for the code that fills them. */
enum wl_status { WL_ACK_OK = 0, WL_ACK_PARTIAL = 1, WL_ACK_REJECTED = 2, WL_ACK_RETRY_LATER = 3 };

struct wl_job {
    struct wl_job *next;

    /* in: set by the submitter */
    wl_ping_batch *batch;     /* owned by the job; NULL when preset says why */
    enum wl_reason *ping_rejects; /* per ping, found before decoding (owned), or NULL */
    const struct wl_ping_bytes *ping_bytes; /* per ping, as it came (in the batch), or NULL */
    struct wl_edge *edge;     /* per ping for an edge job (HTTP: presence, source,
                                 messageId; owned), NULL for the wire */
    uint64_t batch_id;
    int64_t received_at;      /* unix ms */
    void *origin;             /* the TCP connection, or NULL for UDP */
    uint64_t origin_id;       /* the connection's id (never reused), 0 for UDP */
    int clear_poison;         /* the first frame after the connection's acks caught
                                 up with a RETRY_LATER: its frames may land again */
    enum wl_reason rejected;  /* envelope-level rejection, or WL_REJECT_NONE */
    int retry_later;          /* refused for overload before the writer saw it */
    int event_time_sent_at;   /* imported history: event time is each ping's sent_at */
    uint8_t *sample;          /* rejected input to quarantine (owned), or NULL */
    size_t sample_len;
    size_t input_len;         /* length of the input the sample was cut from */
    struct sockaddr_storage peer_addr; /* the sender (family 0: none) */
    char peer[64];            /* its text, made when first needed: wl_job_peer */
    const char *transport;    /* "udp" | "tcp" */
    size_t held_bytes;        /* what the ingest loop charged for it (max_held_bytes) */
    void *http_req;           /* a Rudder batch's request, suspended until the job is back
                                 (http_ingest.c), or NULL */
    struct wl_forget_req *forget; /* a forget (forget.h), not pings: applied alone, in
                                     its own write, and answered to its requester (the
                                     job is freed, never on the done list) */

    /* out: set by the writer */
    enum wl_status status;
    uint32_t accepted, duplicates, n_rejected;
    enum wl_reason first_reject;
};

struct wl_writer;

/* Called on the writer or the syncer thread whenever finished jobs are
 * ready to take. */
typedef void (*wl_writer_notify)(void *arg);
/* Called on the writer or the syncer thread once a commit that stored new
 * signals is durable. */
typedef void (*wl_writer_signals_hook)(void *arg, uint64_t last_signal_id);

/* Loads state from store and starts the thread. live: time also passes
 * without pings (installs expire by the wall clock); an import is not live.
 * hook (may be NULL) hears of every commit that stored new signals. */
int wl_writer_start(const struct wl_config *cfg, struct wl_store *store, int live,
                    wl_writer_notify notify, void *arg, wl_writer_signals_hook hook,
                    void *hook_arg, struct wl_writer **out, char *err, size_t errlen);

/* Queues a job (any thread). The writer owns it until it comes back. */
void wl_writer_submit(struct wl_writer *w, struct wl_job *job);
/* Submits jobs first..last (linked by next) at once: one lock, one wake.
 * pings: their pings, counted by the caller as it made them (a walk of a
 * list made over milliseconds misses the cache at every job). */
void wl_writer_submit_list(struct wl_writer *w, struct wl_job *first, struct wl_job *last,
                           uint64_t pings);
/* The sender as text ("1.2.3.4:5", "[::1]:5" or "-"), formatted on first use. */
const char *wl_job_peer(struct wl_job *job);

/* Takes every finished job, oldest first, as a list (any thread). */
struct wl_job *wl_writer_take_done(struct wl_writer *w);

/* Pings queued and not yet committed. */
uint64_t wl_writer_queued_pings(struct wl_writer *w);

/* What other threads read the writer's state through (state_read.h);
 * valid until wl_writer_stop. */
struct wl_state_reader *wl_writer_state_reader(struct wl_writer *w);

/* Commits everything queued and stops the thread; the finished jobs stay
 * for wl_writer_take_done. */
void wl_writer_join(struct wl_writer *w);

/* wl_writer_join, then frees the state. Finished jobs not yet taken are
 * freed. */
void wl_writer_stop(struct wl_writer *w);

/* Builds a job with a sample of input cut to the configured size. */
struct wl_job *wl_job_new(void);
void wl_job_set_sample(struct wl_job *job, const uint8_t *input, size_t len, size_t max);
void wl_job_free(struct wl_job *job);

/* Fills an Ack message text for the job ("2 rejected, first: seq_zero"). */
void wl_job_message(const struct wl_job *job, char *buf, size_t len);

#endif
