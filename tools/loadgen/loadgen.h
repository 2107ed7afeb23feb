/* warmline-loadgen: what its files share. gen.c makes realistic pings and
 * encodes them into frames, tcp.c and udp.c send those frames, latency.c
 * keeps the ack latency histogram, report.c prints the results, loadgen.c
 * parses the command line and runs it all. Names are lg_ (a program, not
 * the wl_ library). */
#ifndef LG_LOADGEN_H
#define LG_LOADGEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "collector/ping.h"

#define LG_EXIT_OK 0
#define LG_EXIT_FAIL 1   /* network failure, timeout, missing or out-of-order acks */
#define LG_EXIT_USAGE 2  /* bad command line */
#define LG_EXIT_NOT_OK 3 /* every ack came, but some were not OK */

#define LG_UNBOUNDED UINT64_MAX

struct lg_options {
    int tcp;                 /* 1: --tcp, 0: --udp */
    char host[256];
    int port;
    char target[300];        /* as written, for messages */
    unsigned connections;
    uint64_t pings;          /* LG_UNBOUNDED: until --duration ends */
    unsigned batch;
    unsigned installs;
    unsigned orgs;
    int zlib;
    unsigned inflight;
    uint64_t rate;           /* pings/s, 0 = as fast as possible */
    double duration;         /* seconds, 0 = until --pings are sent */
    uint64_t seed;
    uint64_t seq_base;       /* first seq of every install */
    double timeout;          /* seconds without progress before giving up */
    int json;
    double zipf;             /* 0: organizations drawn uniformly; s > 0: rank-Zipf sizes */
    int storm;               /* every install sends one ping, all at once */
    int statsd;              /* UDP: statsd counter lines instead of Envelopes */
    char csv[1024];          /* write the pings as CSV here instead of sending */
    char metrics[1024];      /* UDP: the collector's /metrics URL, read before and after */
    char token_file[1024];   /* its read token, when the API asks for one */
    int progress;            /* a progress line on stderr (a terminal) every second */
};

/* ---- gen.c: pings and frames ------------------------------------------ */

/* One encoded Envelope (TCP: with its varint length in front). */
struct lg_frame {
    uint8_t *buf;
    size_t len;
    uint32_t npings;
    uint64_t batch_id;
};

/* What every connection's pings have in common. */
struct lg_gen {
    const struct lg_options *opt;
    int64_t sent_at;         /* unix ms, stamped on every ping */
    uint8_t (*org_keys)[32]; /* opt->orgs keys, HMAC-SHA256 of "org-NNNNNN.example" */
    double *zipf_cdf;        /* with --zipf: cumulative weights of org ranks 1..orgs */
};

/* One connection's (or UDP socket's) stream of frames: its own installs,
 * their seqs, its share of the pings. Frames are either all encoded up
 * front (lg_source_init with preencode) or a few at a time on demand. */
struct lg_source {
    const struct lg_gen *gen;
    unsigned conn;
    uint32_t *installs;      /* install indexes owned, in a seeded shuffle */
    uint64_t *sent;          /* pings generated so far per owned install */
    size_t n_installs, cursor;
    uint64_t left;           /* pings still to generate */
    uint64_t next_frame;     /* frames generated so far */
    int preencoded, stopped;
    struct lg_frame *q;      /* generated, not yet consumed: q[pos..n) */
    size_t n, pos, cap;
    /* encoding scratch, one batch */
    wl_ping *pings;
    wl_ping **ptrs;
    char (*ids)[24];
    char **features;
};

int lg_gen_init(struct lg_gen *g, const struct lg_options *opt, char *err, size_t errlen);
void lg_gen_free(struct lg_gen *g);

/* Sets up connection conn's source with npings pings (LG_UNBOUNDED for
 * no end). With preencode, every frame is encoded now. Returns 0 or
 * -ENOMEM/-EIO with err filled. */
int lg_source_init(struct lg_source *s, const struct lg_gen *g, unsigned conn, uint64_t npings,
                   int preencode, char *err, size_t errlen);
void lg_source_free(struct lg_source *s);

/* Points *out at up to max consecutive frames ready to send; returns how
 * many (0: the source is finished). Encodes more when none are left. */
size_t lg_source_peek(struct lg_source *s, struct lg_frame **out, size_t max);

/* Consumes n frames returned by lg_source_peek (their bytes are freed
 * unless pre-encoded). */
void lg_source_advance(struct lg_source *s, size_t n);

/* Ends the source now: lg_source_peek returns 0 from here on
 * (--duration is over). */
void lg_source_stop(struct lg_source *s);

/* The largest frame pre-encoded so far (0 when none). */
size_t lg_source_max_frame(const struct lg_source *s);

/* --csv: writes every ping of s (initialized without preencode) as one CSV
 * line instead of encoding frames. Returns 0 or -EIO. */
int lg_source_write_csv(struct lg_source *s, FILE *out);
/* The CSV header line's columns, in order. */
extern const char lg_csv_header[];

/* ---- latency.c: ack latency histogram --------------------------------- */

#define LG_HIST_SUB 64
#define LG_HIST_BUCKETS (2 * LG_HIST_SUB + 57 * LG_HIST_SUB)

/* Log-linear: exact below 128 us, then 64 buckets per power of two
 * (under 1.6% error). */
struct lg_hist {
    uint64_t count[LG_HIST_BUCKETS];
    uint64_t n, max;
};

void lg_hist_add(struct lg_hist *h, uint64_t us);
void lg_hist_merge(struct lg_hist *into, const struct lg_hist *from);
/* The value at quantile q (0..1), in microseconds; 0 when empty. */
uint64_t lg_hist_quantile(const struct lg_hist *h, double q);

/* ---- tcp.c / udp.c: sending ------------------------------------------- */

struct lg_result {
    uint64_t pings_sent, frames_sent, bytes_sent;
    /* TCP acks */
    uint64_t acks, ack_status[4]; /* OK, PARTIAL, REJECTED, RETRY_LATER */
    uint64_t ack_other;           /* unknown status values */
    uint64_t accepted, duplicates, rejected;
    uint64_t pings_retry_later;   /* pings in RETRY_LATER frames (not stored, not resent) */
    uint64_t acks_missing;        /* frames written whose ack never came */
    uint64_t out_of_order;        /* acks whose batch_id was not the one due */
    uint64_t ack_count_mismatch;  /* acks whose counts do not add up to the frame's pings */
    char first_not_ok[256];       /* the first ack other than OK, for the report */
    struct lg_hist latency;
    /* UDP */
    uint64_t send_errors;
    /* both */
    double elapsed;               /* seconds: first send to last ack (TCP) or last send (UDP) */
    int64_t started_at_ms, finished_at_ms; /* unix ms */
    char error[512];              /* the first failure, empty when none */
    /* UDP with --metrics: what the collector counted (its counters' growth) */
    int counted;
    uint64_t c_received, c_accepted, c_duplicate;
    /* the progress line */
    uint64_t progress_at_ns;
    int progress_shown;
};

/* ---- progress.c, metrics.c -------------------------------------------- */

/* With opt->progress, redraws one line on stderr at most once a second. */
void lg_progress(const struct lg_options *opt, struct lg_result *res, uint64_t t0_ns);
/* Ends the progress line, if one was drawn. */
void lg_progress_end(struct lg_result *res);

/* The collector's UDP ping counters, from its Prometheus text at opt->metrics. */
struct lg_udp_counts {
    uint64_t received, accepted, duplicate;
};
int lg_metrics_udp(const struct lg_options *opt, struct lg_udp_counts *out, char *err,
                   size_t errlen);

/* Records the first failure of the run in res->error (later ones are
 * usually its consequences). */
void lg_error(struct lg_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Monotonic and wall clocks. */
uint64_t lg_now_ns(void);
int64_t lg_unix_ms(void);

/* Resolves opt->host:port for SOCK_STREAM or SOCK_DGRAM. Returns 0 or -1
 * with err filled. */
int lg_resolve(const struct lg_options *opt, int socktype, struct sockaddr_storage *ss,
               socklen_t *sslen, char *err, size_t errlen);

/* Run the whole load over opt->connections connections/sockets. Return an
 * LG_EXIT_ code; the result holds what happened either way. */
int lg_run_tcp(const struct lg_options *opt, struct lg_source *src, struct lg_result *res);
int lg_run_udp(const struct lg_options *opt, struct lg_source *src, struct lg_result *res);

/* ---- report.c ---------------------------------------------------------- */

struct lg_run_info {
    int preencoded;
    double encode_s;   /* time spent encoding before the clock started */
    size_t max_frame;  /* largest pre-encoded frame, 0 when encoded while sending */
    int exit_code;
};

/* "tcp HOST:PORT: N pings in M frames ..., X pings/s, ... ack latency ..." */
void lg_report_human(FILE *out, const struct lg_options *o, const struct lg_result *r);
/* The settings and every figure as one JSON object line. */
void lg_report_json(FILE *out, const struct lg_options *o, const struct lg_result *r,
                    const struct lg_run_info *info);

#endif
