/* warmline import: historical pings into a data directory through the
 * writer the collector uses (validation, dedup, accounts, rules, signals),
 * with each ping's sent_at as its event time. Refuses while a collector
 * holds the database. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cli.h"
#include "collector/envelope.h"
#include "collector/framing.h"
#include "collector/writer.h"
#include "ndjson_input.h"
#include "storage/store.h"

static const char *const CMD = "import";

#define MAX_INFLIGHT_JOBS 64

void wl_usage_import(FILE *out)
{
    fprintf(out,
            "Usage: warmline import FILE [--data-dir DIR] [--config FILE] [options]\n"
            "\n"
            "Feeds historical pings into the data directory through the same path as\n"
            "live ones (validation, dedup, accounts, daily history, rules and signals),\n"
            "with each ping's sent_at as its event time (a ping without sent_at takes\n"
            "the time of the import). Feed history in time order: an install's ping\n"
            "older than one already applied is a duplicate if its seq is not higher,\n"
            "and an organization's days only move forward.\n"
            "\n"
            "FILE ('-' for stdin) holds either NDJSON pings, as `warmline send` reads\n"
            "them, or delimited Envelopes (varint length + Envelope, as sent over TCP).\n"
            "\n"
            "It opens the database itself and refuses while a collector runs on it:\n"
            "stop the collector first. Signals it fires are stored; the collector's\n"
            "sinks deliver them when it next runs.\n"
            "\n"
            "  --data-dir DIR         the data directory (default: data_dir from the\n"
            "                         configuration)\n"
            "  --config FILE          the collector's INI file: rules, limits, TTL\n"
            "                         (default: built-in defaults, which have no rules)\n"
            "  --format F             auto (default: '{' first means ndjson), ndjson,\n"
            "                         delimited\n"
            "  --batch N              NDJSON pings per batch (default 1000)\n"
            "  --org-salt-file FILE   salt for org_domain (default: org_salt_file)\n"
            "  -h, --help             this help\n"
            "\n"
            "A summary goes to stderr. Exit status: 0 every ping stored or a duplicate;\n"
            "1 storage failure; 2 usage, configuration or input error, or the data\n"
            "directory is in use; 3 some pings or envelopes were rejected (the rest\n"
            "are stored).\n");
}

struct import_run {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct wl_writer *writer;
    struct wl_decoder decoder;
    size_t inflight;
    uint64_t accepted, duplicates, rejected, envelopes_rejected, retry_later;
    uint64_t reasons[WL_N_REASONS];
};

static void on_done(void *arg)
{
    struct import_run *run = arg;
    pthread_mutex_lock(&run->mu);
    pthread_cond_signal(&run->cv);
    pthread_mutex_unlock(&run->mu);
}

/* Takes finished jobs; with wait, blocks until at most max remain inflight. */
static void collect(struct import_run *run, size_t max)
{
    pthread_mutex_lock(&run->mu);
    for (;;) {
        struct wl_job *job = wl_writer_take_done(run->writer), *next;
        for (; job != NULL; job = next) {
            next = job->next;
            run->inflight--;
            run->accepted += job->accepted;
            run->duplicates += job->duplicates;
            run->rejected += job->n_rejected;
            if (job->status == WL_ACK_RETRY_LATER)
                run->retry_later++;
            if (job->rejected != WL_REJECT_NONE) {
                run->envelopes_rejected++;
                run->reasons[job->rejected]++;
            } else if (job->first_reject != WL_REJECT_NONE) {
                run->reasons[job->first_reject]++;
            }
            wl_job_free(job);
        }
        if (run->inflight <= max)
            break;
        pthread_cond_wait(&run->cv, &run->mu);
    }
    pthread_mutex_unlock(&run->mu);
}

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* One serialized Envelope through the collector's decoder to the writer. */
static void submit(struct import_run *run, const uint8_t *buf, size_t len)
{
    struct wl_job *job = wl_job_new();
    if (job == NULL)
        abort();
    job->received_at = now_ms();
    job->transport = "import";
    job->event_time_sent_at = 1;
    snprintf(job->peer, sizeof job->peer, "import");
    job->rejected = wl_envelope_decode(&run->decoder, buf, len, &job->batch, &job->batch_id,
                                       &job->ping_rejects);
    collect(run, MAX_INFLIGHT_JOBS - 1);
    pthread_mutex_lock(&run->mu);
    run->inflight++;
    pthread_mutex_unlock(&run->mu);
    wl_writer_submit(run->writer, job);
}

static int import_ndjson(struct import_run *run, FILE *in, const char *name,
                         struct wl_org_salt *salt, uint64_t per_batch)
{
    struct wl_ping_input pings = {0};
    int rc = wl_ping_input_read(CMD, in, name, salt, &pings);
    if (rc != 0)
        goto done;
    for (size_t off = 0; off < pings.n; off += per_batch) {
        size_t n = pings.n - off < per_batch ? pings.n - off : per_batch;
        wl_ping *ptrs[n];
        wl_ping_batch batch = WARMLINE__V1__PING_BATCH__INIT;
        uint8_t *env;
        size_t envlen;
        for (size_t i = 0; i < n; i++)
            ptrs[i] = &pings.pings[off + i];
        batch.n_pings = n;
        batch.pings = ptrs;
        if (wl_envelope_encode(&batch, 0, off / per_batch + 1, &env, &envlen) != 0) {
            wl_cli_error(CMD, "out of memory encoding batch %zu", off / per_batch + 1);
            rc = WL_EXIT_FAIL;
            goto done;
        }
        submit(run, env, envlen);
        free(env);
    }
done:
    wl_ping_input_free(&pings);
    return rc;
}

static int import_delimited(struct import_run *run, FILE *in, const char *name,
                            uint64_t max_frame)
{
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0, off = 0;
    uint64_t frame_no = 0;

    for (;;) { /* read it all: history files are read once */
        if (cap - len < 65536) {
            cap = cap ? cap * 2 : 1 << 20;
            uint8_t *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                wl_cli_error(CMD, "%s: out of memory", name);
                return WL_EXIT_FAIL;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, in);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(in)) {
        wl_cli_error(CMD, "%s: %s", name, strerror(errno ? errno : EIO));
        free(buf);
        return WL_EXIT_FAIL;
    }
    while (off < len) {
        size_t hdr, flen;
        frame_no++;
        enum wl_frame_status st = wl_frame_parse(buf + off, len - off, max_frame, &hdr, &flen);
        if (st != WL_FRAME_READY) {
            wl_cli_error(CMD, "%s: frame %llu at byte %zu: %s", name,
                         (unsigned long long)frame_no, off,
                         st == WL_FRAME_NEED_MORE    ? "the file ends inside it"
                         : st == WL_FRAME_TOO_LARGE ? "longer than max_frame_bytes"
                                                    : "malformed length varint");
            free(buf);
            return WL_EXIT_USAGE;
        }
        submit(run, buf + off + hdr, flen);
        off += hdr + flen;
    }
    free(buf);
    return 0;
}

static int detect_ndjson(FILE *in)
{
    int c;
    while ((c = fgetc(in)) == ' ' || c == '\t' || c == '\r' || c == '\n')
        ;
    if (c != EOF)
        ungetc(c, in);
    return c == '{';
}

int wl_cmd_import(int argc, char **argv)
{
    enum { OPT_DATA_DIR = 256, OPT_CONFIG, OPT_FORMAT, OPT_BATCH, OPT_SALT };
    static const struct option longopts[] = {
        {"data-dir", required_argument, NULL, OPT_DATA_DIR},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"org-salt-file", required_argument, NULL, OPT_SALT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *data_dir = NULL, *config_path = NULL, *format = "auto", *file = NULL;
    uint64_t per_batch = 1000;
    struct wl_org_salt salt = {0};
    struct wl_config cfg;
    struct wl_store *store = NULL;
    struct import_run run;
    char err[1400];
    int c, rc;

    while ((c = wl_cli_getopt(CMD, argc, argv, ":h", longopts)) != -1) {
        switch (c) {
        case OPT_DATA_DIR: data_dir = optarg; break;
        case OPT_CONFIG: config_path = optarg; break;
        case OPT_FORMAT: format = optarg; break;
        case OPT_BATCH:
            if (wl_cli_parse_u64(optarg, &per_batch) != 0 || per_batch == 0 || per_batch > 100000)
                return wl_cli_usage_error(CMD, "--batch takes 1 to 100000, got '%s'", optarg);
            break;
        case OPT_SALT: salt.path = optarg; break;
        case 'h': wl_usage_import(stdout); return WL_EXIT_OK;
        default: return WL_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc)
        return wl_cli_usage_error(CMD, optind >= argc ? "FILE is missing"
                                                      : "one FILE at a time, got '%s'",
                                  argv[argc - 1]);
    file = argv[optind];
    if (strcmp(format, "auto") != 0 && strcmp(format, "ndjson") != 0 &&
        strcmp(format, "delimited") != 0)
        return wl_cli_usage_error(CMD, "--format is auto, ndjson or delimited, got '%s'", format);
    if ((rc = wl_cli_config(CMD, config_path, &cfg)) != 0)
        return rc;
    if (data_dir == NULL)
        data_dir = cfg.data_dir;
    if (salt.path == NULL)
        salt.path = cfg.org_salt_file;

    FILE *in = stdin;
    if (strcmp(file, "-") != 0 && (in = fopen(file, "rb")) == NULL) {
        wl_cli_error(CMD, "%s: %s", file, strerror(errno));
        wl_config_free(&cfg);
        return WL_EXIT_USAGE;
    }
    if (wl_store_open(data_dir, WL_STORE_PRIMARY, &store, err, sizeof err) != 0) {
        if (strstr(err, "lock") != NULL || strstr(err, "LOCK") != NULL)
            wl_cli_error(CMD, "%s is in use by a running collector: stop it first, or send the "
                              "pings to it with `warmline send`", data_dir);
        else
            wl_cli_error(CMD, "%s", err);
        rc = WL_EXIT_USAGE;
        goto close_input;
    }

    memset(&run, 0, sizeof run);
    pthread_mutex_init(&run.mu, NULL);
    pthread_cond_init(&run.cv, NULL);
    wl_decoder_init(&run.decoder, cfg.max_inflated_bytes, cfg.max_pings_per_batch);
    if (wl_writer_start(&cfg, store, 0, on_done, &run, NULL, NULL, &run.writer, err,
                        sizeof err) != 0) {
        wl_cli_error(CMD, "%s", err);
        rc = WL_EXIT_FAIL;
        goto close_store;
    }
    int ndjson = strcmp(format, "ndjson") == 0 ||
                 (strcmp(format, "auto") == 0 && detect_ndjson(in));
    rc = ndjson ? import_ndjson(&run, in, strcmp(file, "-") ? file : "stdin", &salt, per_batch)
                : import_delimited(&run, in, strcmp(file, "-") ? file : "stdin",
                                   cfg.max_frame_bytes);
    collect(&run, 0);
    wl_writer_stop(run.writer);

    fprintf(stderr, "warmline import: %llu accepted, %llu duplicates, %llu rejected",
            (unsigned long long)run.accepted, (unsigned long long)run.duplicates,
            (unsigned long long)run.rejected);
    if (run.envelopes_rejected)
        fprintf(stderr, ", %llu envelopes rejected", (unsigned long long)run.envelopes_rejected);
    for (int r = 0; r < WL_N_REASONS; r++) {
        if (run.reasons[r])
            fprintf(stderr, " %s=%llu", wl_reason_name((enum wl_reason)r),
                    (unsigned long long)run.reasons[r]);
    }
    fprintf(stderr, "\n");
    if (rc == 0 && run.retry_later)
        rc = WL_EXIT_FAIL;
    else if (rc == 0 && (run.rejected || run.envelopes_rejected))
        rc = WL_EXIT_NOT_OK;

close_store:
    wl_decoder_free(&run.decoder);
    pthread_mutex_destroy(&run.mu);
    pthread_cond_destroy(&run.cv);
    wl_store_close(store);
close_input:
    if (in != stdin)
        fclose(in);
    wl_org_salt_free(&salt);
    wl_config_free(&cfg);
    return rc;
}
