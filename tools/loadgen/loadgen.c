/* warmline-loadgen: realistic pings at a collector, as fast as it takes
 * them (or at --rate); reports throughput and, over TCP, ack latency. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "collector/config.h"
#include "loadgen.h"

#define PROG "warmline-loadgen"
#define PREENCODE_MAX_PINGS 10000000ULL   /* about 1.7 GB of frames */
#define COLLECTOR_MAX_FRAME (1024 * 1024) /* the collector's default max_frame_bytes */
#define UDP_PAYLOAD_MAX 65507             /* IPv4: 65535 less the IP and UDP headers */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: " PROG " (--tcp HOST:PORT | --udp HOST:PORT | --csv FILE) [--connections N]\n"
            "                        [--pings N | --storm] [--batch N] [--installs N] [--orgs N]\n"
            "                        [--zipf S] [--zlib] [--statsd] [--inflight N] [--rate N]\n"
            "                        [--duration S] [--seed N] [--seq-base N] [--timeout S] [--json]\n"
            "                        [--metrics URL [--token-file F]] [--no-progress]\n"
            "\n"
            "Sends generated pings to a Warmline collector and reports what it saw.\n"
            "TCP: delimited Envelopes, pipelined; every Ack is checked (batch_id in frame\n"
            "order, status, counts) and timed. UDP: one Envelope per datagram with\n"
            "sendmmsg; there are no acks: with --metrics, the collector's own counters\n"
            "(read before and after) tell what it received and stored, and so what was\n"
            "lost (its event=stats_final line tells the same).\n"
            "\n"
            "Install i is \"inst-%%06u\" and always travels on connection i %% N, so its seqs\n"
            "arrive in order; its size, version, features and organization come from a\n"
            "hash of i and the seed (one install in ten has no org_key; the others share\n"
            "--orgs keys, HMAC-SHA256 of \"org-NNNNNN.example\" under a fixed salt). With\n"
            "--zipf S, organization sizes are heavy-tailed instead: install i < --orgs\n"
            "belongs to organization i, so each has one, and every other install (one in\n"
            "ten without an org) to the organization of rank k with probability\n"
            "proportional to 1/k^S.\n"
            "\n"
            "  --tcp HOST:PORT     send over TCP\n"
            "  --udp HOST:PORT     send over UDP\n"
            "  --csv FILE          send nothing: write the pings as CSV to FILE (- for stdout),\n"
            "                      one line each, connection after connection, with a header\n"
            "                      (install_id,org_key in hex,seq,sent_at,registered_users,\n"
            "                      active_users_daily,active_users_monthly,posts,\n"
            "                      posts_previous_day): the same load for another system\n"
            "  --connections N     TCP connections or UDP sockets (default 4)\n"
            "  --pings N           pings in all (default 1000000; with --duration, no limit\n"
            "                      unless given)\n"
            "  --storm             the top-of-the-hour storm: every install sends one ping,\n"
            "                      all at once (--pings = --installs; no --rate, --duration)\n"
            "  --batch N           pings per Envelope (default 100)\n"
            "  --installs N        distinct install ids (default 10000; at least --connections)\n"
            "  --orgs N            distinct org_keys (default 2000; 0: none)\n"
            "  --zipf S            heavy-tailed organization sizes, exponent S (e.g. 1;\n"
            "                      default 0: uniform)\n"
            "  --zlib              compress each payload with zlib\n"
            "  --statsd            UDP: send statsd counter lines instead of Envelopes, one\n"
            "                      per ping (--batch per datagram), for comparing with statsd:\n"
            "                      warmline.org.<first 8 bytes of org_key in hex>.posts:N|c\n"
            "  --inflight N        TCP: frames per connection written and not yet acked\n"
            "                      before it waits (default 32)\n"
            "  --rate N            pings per second in all (default 0: as fast as possible)\n"
            "  --duration S        stop sending after S seconds (TCP then waits for the acks)\n"
            "  --seed N            shapes the installs and the order (default 1)\n"
            "  --seq-base N        first seq of every install (default: unix ms x 1000 now, so\n"
            "                      a rerun against the same data is not counted as duplicates)\n"
            "  --timeout S         give up after S seconds without progress (default 10)\n"
            "  --json              print the report as one JSON object line on stdout (the\n"
            "                      human line goes to stderr)\n"
            "  --metrics URL       UDP: the collector's /metrics (e.g.\n"
            "                      http://127.0.0.1:7811/metrics), read before the run and\n"
            "                      after it, once its counters catch up with what was sent\n"
            "                      or stop moving (0.5 s; 3 s while some received pings are\n"
            "                      not stored yet; at most --timeout): reports the pings it\n"
            "                      received, stored and the loss\n"
            "  --token-file F      the API's read token for --metrics, when it has one\n"
            "  --no-progress       no progress line (drawn on stderr once a second when it\n"
            "                      is a terminal)\n"
            "  -h, --help          this help\n"
            "\n"
            "Frames are encoded before the clock starts when the run has at most %llu\n"
            "pings; longer or open-ended runs encode as they go, inside the measurement.\n"
            "\n"
            "Figures: pings/s is, over TCP, the pings whose frames were acked (accepted,\n"
            "duplicate or rejected; not RETRY_LATER) divided by the time from the first\n"
            "byte sent to the last ack; over UDP, the pings sent divided by the time from\n"
            "the first to the last datagram. Ack latency runs from the moment a frame's\n"
            "last byte was written to the moment its ack was read, so it includes the\n"
            "time queued behind the other frames in flight.\n"
            "\n"
            "Exit status: 0 everything sent (TCP: every ack came, in order, OK); 1 network\n"
            "failure, timeout, missing or out-of-order acks, or counts that do not add up;\n"
            "2 usage error; 3 every ack came but some were PARTIAL, REJECTED or RETRY_LATER.\n",
            PREENCODE_MAX_PINGS);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '" PROG " --help'.\n");
    return LG_EXIT_USAGE;
}

/* Strict decimal in [min, max]. */
static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    if (s[0] < '0' || s[0] > '9')
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v > 0) || v > 7 * 86400)
        return -EINVAL;
    *out = v;
    return 0;
}

void lg_error(struct lg_result *res, const char *fmt, ...)
{
    va_list ap;
    if (res->error[0] != '\0')
        return;
    va_start(ap, fmt);
    vsnprintf(res->error, sizeof res->error, fmt, ap);
    va_end(ap);
}

uint64_t lg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int64_t lg_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int lg_resolve(const struct lg_options *opt, int socktype, struct sockaddr_storage *ss,
               socklen_t *sslen, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = socktype};
    struct addrinfo *ai = NULL;
    char port[8];

    snprintf(port, sizeof port, "%d", opt->port);
    int gai = getaddrinfo(opt->host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", opt->target, gai_strerror(gai));
        return -1;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sslen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* UDP with --metrics: waits until the collector's counters have caught up
 * with what was sent, or stop moving (what is missing then is lost), or
 * --timeout; then records their growth. */
static void count_at_collector(const struct lg_options *opt, const struct lg_udp_counts *before,
                               struct lg_result *res)
{
    struct lg_udp_counts now, last = {UINT64_MAX, UINT64_MAX, UINT64_MAX};
    uint64_t start = lg_now_ns(), still_since = 0;
    char err[1200];

    for (;;) {
        if (lg_metrics_udp(opt, &now, err, sizeof err) != 0) {
            lg_error(res, "%s", err);
            return;
        }
        uint64_t received = now.received - before->received;
        uint64_t stored = (now.accepted - before->accepted) + (now.duplicate - before->duplicate);
        uint64_t t = lg_now_ns();
        if (now.received != last.received || now.accepted != last.accepted ||
            now.duplicate != last.duplicate)
            still_since = t;
        last = now;
        /* Still: nothing moved for 0.5 s once all it received is stored, for
         * 3 s while some is not (rejected pings never are; a busy writer
         * stores them in one group). */
        uint64_t quiet = stored >= received ? 500000000u : 3000000000u;
        if ((received >= res->pings_sent && stored >= received) || t - still_since >= quiet ||
            (double)(t - start) / 1e9 >= opt->timeout)
            break;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    res->counted = 1;
    res->c_received = now.received - before->received;
    res->c_accepted = now.accepted - before->accepted;
    res->c_duplicate = now.duplicate - before->duplicate;
}

/* Returns 0, LG_EXIT_USAGE after printing why, or -1 after printing --help. */
static int parse_args(int argc, char **argv, struct lg_options *o)
{
    enum { O_TCP = 256, O_UDP, O_CONN, O_PINGS, O_BATCH, O_INSTALLS, O_ORGS, O_ZLIB, O_INFLIGHT,
           O_RATE, O_DURATION, O_SEED, O_SEQ_BASE, O_TIMEOUT, O_JSON, O_ZIPF, O_STORM, O_STATSD,
           O_CSV, O_METRICS, O_TOKEN_FILE, O_NO_PROGRESS };
    static const struct option opts[] = {
        {"tcp", required_argument, NULL, O_TCP},
        {"udp", required_argument, NULL, O_UDP},
        {"connections", required_argument, NULL, O_CONN},
        {"pings", required_argument, NULL, O_PINGS},
        {"batch", required_argument, NULL, O_BATCH},
        {"installs", required_argument, NULL, O_INSTALLS},
        {"orgs", required_argument, NULL, O_ORGS},
        {"zlib", no_argument, NULL, O_ZLIB},
        {"inflight", required_argument, NULL, O_INFLIGHT},
        {"rate", required_argument, NULL, O_RATE},
        {"duration", required_argument, NULL, O_DURATION},
        {"seed", required_argument, NULL, O_SEED},
        {"seq-base", required_argument, NULL, O_SEQ_BASE},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"json", no_argument, NULL, O_JSON},
        {"zipf", required_argument, NULL, O_ZIPF},
        {"storm", no_argument, NULL, O_STORM},
        {"statsd", no_argument, NULL, O_STATSD},
        {"csv", required_argument, NULL, O_CSV},
        {"metrics", required_argument, NULL, O_METRICS},
        {"token-file", required_argument, NULL, O_TOKEN_FILE},
        {"no-progress", no_argument, NULL, O_NO_PROGRESS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *target = NULL;
    int pings_given = 0, seq_given = 0, rate_given = 0, c;
    uint64_t v;

    *o = (struct lg_options){
        .connections = 4,
        .pings = 1000000,
        .batch = 100,
        .installs = 10000,
        .orgs = 2000,
        .inflight = 32,
        .seed = 1,
        .timeout = 10,
        .progress = isatty(STDERR_FILENO),
    };
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
#define NUM(name, min, max, field)                                                        \
    do {                                                                                  \
        if (parse_u64(optarg, min, max, &v) != 0)                                         \
            return usage_error("--" name ": '%s' is not a whole number from %llu to %llu", \
                               optarg, (unsigned long long)(min), (unsigned long long)(max)); \
        field = v;                                                                        \
    } while (0)
        switch (c) {
        case O_TCP:
        case O_UDP:
            if (target != NULL)
                return usage_error("give one target: --tcp, --udp or --csv, once");
            target = optarg;
            o->tcp = c == O_TCP;
            break;
        case O_CONN: NUM("connections", 1, 10000, o->connections); break;
        case O_PINGS: NUM("pings", 1, UINT64_MAX - 1, o->pings); pings_given = 1; break;
        case O_BATCH: NUM("batch", 1, 1000000, o->batch); break;
        case O_INSTALLS: NUM("installs", 1, 100000000, o->installs); break;
        case O_ORGS: NUM("orgs", 0, 10000000, o->orgs); break;
        case O_ZLIB: o->zlib = 1; break;
        case O_INFLIGHT: NUM("inflight", 1, 100000, o->inflight); break;
        case O_RATE: NUM("rate", 0, 1000000000, o->rate); rate_given = 1; break;
        case O_SEED: NUM("seed", 0, UINT64_MAX, o->seed); break;
        case O_SEQ_BASE: NUM("seq-base", 1, UINT64_MAX / 2, o->seq_base); seq_given = 1; break;
        case O_DURATION:
            if (parse_seconds(optarg, &o->duration) != 0)
                return usage_error("--duration: '%s' is not a number of seconds above 0 "
                                   "(at most 7 days)", optarg);
            break;
        case O_TIMEOUT:
            if (parse_seconds(optarg, &o->timeout) != 0)
                return usage_error("--timeout: '%s' is not a number of seconds above 0 "
                                   "(at most 7 days)", optarg);
            break;
        case O_JSON: o->json = 1; break;
        case O_STORM: o->storm = 1; break;
        case O_STATSD: o->statsd = 1; break;
        case O_ZIPF: {
            char *end;
            errno = 0;
            o->zipf = strtod(optarg, &end);
            if (errno != 0 || end == optarg || *end != '\0' || !(o->zipf >= 0) || o->zipf > 10)
                return usage_error("--zipf: '%s' is not an exponent from 0 to 10", optarg);
            break;
        }
        case O_CSV:
            if (target != NULL)
                return usage_error("give one target: --tcp, --udp or --csv, once");
            if (optarg[0] == '\0' || strlen(optarg) >= sizeof o->csv)
                return usage_error("--csv: give a file name (or - for stdout)");
            snprintf(o->csv, sizeof o->csv, "%s", optarg);
            target = optarg;
            break;
        case O_METRICS:
            if (strncmp(optarg, "http://", 7) != 0 && strncmp(optarg, "https://", 8) != 0)
                return usage_error("--metrics: '%s' is not an http:// or https:// URL (the "
                                   "collector's, e.g. http://127.0.0.1:7811/metrics)", optarg);
            if (strlen(optarg) >= sizeof o->metrics)
                return usage_error("--metrics: the URL is too long");
            snprintf(o->metrics, sizeof o->metrics, "%s", optarg);
            break;
        case O_TOKEN_FILE:
            if (optarg[0] == '\0' || strlen(optarg) >= sizeof o->token_file)
                return usage_error("--token-file: give a file name");
            snprintf(o->token_file, sizeof o->token_file, "%s", optarg);
            break;
        case O_NO_PROGRESS: o->progress = 0; break;
        case 'h': usage(stdout); return -1;
        case ':': return usage_error("%s needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
#undef NUM
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (target == NULL)
        return usage_error("no target: give --tcp HOST:PORT, --udp HOST:PORT or --csv FILE");
    if (o->csv[0] == '\0' &&
        (wl_parse_hostport(target, o->host, sizeof o->host, &o->port) != 0 || o->port == 0))
        return usage_error("--%s: '%s' is not HOST:PORT with a port from 1 to 65535",
                           o->tcp ? "tcp" : "udp", target);
    snprintf(o->target, sizeof o->target, "%s", target);
    if (o->statsd && (o->tcp || o->csv[0] != '\0'))
        return usage_error("--statsd goes with --udp only");
    if (o->metrics[0] != '\0' && (o->tcp || o->csv[0] != '\0' || o->statsd))
        return usage_error("--metrics goes with --udp only (TCP has acks; statsd is not a "
                           "collector)");
    if (o->token_file[0] != '\0' && o->metrics[0] == '\0')
        return usage_error("--token-file goes with --metrics");
    if (o->statsd && o->zlib)
        return usage_error("--statsd lines are not compressed: drop --zlib");
    if (o->storm) {
        if (pings_given || o->duration > 0 || rate_given)
            return usage_error("--storm sends one ping per install at once: no --pings, "
                               "--duration or --rate");
        o->pings = o->installs;
        pings_given = 1;
    }
    if (o->installs < o->connections)
        return usage_error("--installs (%u) must be at least --connections (%u): each "
                           "connection sends for installs of its own", o->installs,
                           o->connections);
    if (o->duration > 0 && !pings_given) {
        if (o->csv[0] != '\0')
            return usage_error("--csv needs --pings (or --storm), not --duration");
        o->pings = LG_UNBOUNDED;
    }
    if (!seq_given)
        o->seq_base = (uint64_t)lg_unix_ms() * 1000;
    return 0;
}

/* --csv: every connection's pings, one after the other, as CSV lines. */
static int write_csv(const struct lg_options *opt, const struct lg_gen *gen, struct lg_source *src)
{
    char err[512];
    FILE *out = strcmp(opt->csv, "-") == 0 ? stdout : fopen(opt->csv, "w");
    int rc = LG_EXIT_OK;

    if (out == NULL) {
        fprintf(stderr, PROG ": --csv %s: %s\n", opt->csv, strerror(errno));
        return LG_EXIT_FAIL;
    }
    fprintf(out, "%s\n", lg_csv_header);
    for (unsigned c = 0; c < opt->connections && rc == LG_EXIT_OK; c++) {
        uint64_t share = opt->pings / opt->connections + (c < opt->pings % opt->connections);
        if (lg_source_init(&src[c], gen, c, share, 0, err, sizeof err) != 0) {
            fprintf(stderr, PROG ": %s\n", err);
            rc = LG_EXIT_FAIL;
            break;
        }
        if (lg_source_write_csv(&src[c], out) != 0) {
            fprintf(stderr, PROG ": --csv %s: write failed\n", opt->csv);
            rc = LG_EXIT_FAIL;
        }
        lg_source_free(&src[c]);
    }
    if ((out == stdout ? fflush(out) : fclose(out)) != 0 && rc == LG_EXIT_OK) {
        fprintf(stderr, PROG ": --csv %s: %s\n", opt->csv, strerror(errno));
        rc = LG_EXIT_FAIL;
    }
    return rc;
}

int main(int argc, char **argv)
{
    struct lg_options opt;
    struct lg_gen gen;
    struct lg_source *src = NULL;
    struct lg_result *res = NULL;
    char err[512];
    size_t max_frame = 0;
    unsigned ready = 0;
    int rc;

    if ((rc = parse_args(argc, argv, &opt)) != 0)
        return rc < 0 ? LG_EXIT_OK : rc; /* -1: --help was printed */
    signal(SIGPIPE, SIG_IGN);
    if (lg_gen_init(&gen, &opt, err, sizeof err) != 0) {
        fprintf(stderr, PROG ": %s\n", err);
        return LG_EXIT_FAIL;
    }
    src = calloc(opt.connections, sizeof *src);
    res = calloc(1, sizeof *res); /* the histogram is ~30 KB: not on the stack */
    if (src == NULL || res == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        rc = LG_EXIT_FAIL;
        goto done;
    }

    if (opt.csv[0] != '\0') {
        rc = write_csv(&opt, &gen, src);
        goto done_csv;
    }

    int preencode = opt.pings <= PREENCODE_MAX_PINGS;
    uint64_t t = lg_now_ns();
    for (; ready < opt.connections; ready++) {
        uint64_t share = opt.pings == LG_UNBOUNDED
                             ? LG_UNBOUNDED
                             : opt.pings / opt.connections + (ready < opt.pings % opt.connections);
        if (lg_source_init(&src[ready], &gen, ready, share, preencode, err, sizeof err) != 0) {
            fprintf(stderr, PROG ": %s\n", err);
            rc = LG_EXIT_FAIL;
            goto done;
        }
        size_t m = lg_source_max_frame(&src[ready]);
        if (m > max_frame)
            max_frame = m;
    }
    double encode_s = (double)(lg_now_ns() - t) / 1e9;
    if (!preencode)
        fprintf(stderr, PROG ": frames are encoded while sending (%s)\n",
                opt.pings == LG_UNBOUNDED ? "an open-ended run" : "more than 10M pings");
    if (!opt.tcp && max_frame > UDP_PAYLOAD_MAX) {
        fprintf(stderr, PROG ": frames of up to %zu bytes do not fit in a datagram (%d bytes at "
                "most); use a smaller --batch or --zlib\n", max_frame, UDP_PAYLOAD_MAX);
        rc = LG_EXIT_USAGE;
        goto done;
    }
    if (opt.tcp && max_frame > COLLECTOR_MAX_FRAME)
        fprintf(stderr, PROG ": warning: frames of up to %zu bytes, over the collector's default "
                "max_frame_bytes (1 MiB), which closes the connection; use a smaller --batch "
                "or --zlib\n", max_frame);

    struct lg_udp_counts before = {0};
    if (opt.metrics[0] != '\0') {
        char err[1200];
        if (lg_metrics_udp(&opt, &before, err, sizeof err) != 0) {
            fprintf(stderr, PROG ": %s\n", err);
            rc = LG_EXIT_USAGE;
            goto done;
        }
    }
    rc = opt.tcp ? lg_run_tcp(&opt, src, res) : lg_run_udp(&opt, src, res);
    lg_progress_end(res);
    if (opt.metrics[0] != '\0' && res->started_at_ms != 0)
        count_at_collector(&opt, &before, res);
    if (rc == LG_EXIT_OK && (res->out_of_order > 0 || res->ack_count_mismatch > 0)) {
        if (res->ack_count_mismatch > 0)
            lg_error(res, "%llu acks whose accepted+duplicates+rejected is not their frame's "
                     "ping count", (unsigned long long)res->ack_count_mismatch);
        rc = LG_EXIT_FAIL;
    }
    if (rc == LG_EXIT_OK && opt.tcp && res->ack_status[0] != res->acks)
        rc = LG_EXIT_NOT_OK;

    if (res->started_at_ms != 0) /* it got as far as sending */
        lg_report_human(opt.json ? stderr : stdout, &opt, res);
    if (res->error[0] != '\0')
        fprintf(stderr, PROG ": error: %s\n", res->error);
    if (res->first_not_ok[0] != '\0')
        fprintf(stderr, PROG ": first ack other than OK: %s\n", res->first_not_ok);
    if (opt.json) {
        struct lg_run_info info = {.preencoded = preencode, .encode_s = encode_s,
                                   .max_frame = max_frame, .exit_code = rc};
        lg_report_json(stdout, &opt, res, &info);
    }
    if (fflush(stdout) != 0 && rc == LG_EXIT_OK)
        rc = LG_EXIT_FAIL;

done:
    for (unsigned i = 0; i < ready; i++)
        lg_source_free(&src[i]);
done_csv:
    free(src);
    free(res);
    lg_gen_free(&gen);
    return rc;
}
