/* warmline signals: the signal log (GET /v1/signals), one page or, with
 * --follow, every new signal as it fires until interrupted. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api_client.h"
#include "cli.h"
#include "table.h"

static const char *const CMD = "signals";

#define DEFAULT_PAGE 100 /* the API's default limit */

void wl_usage_signals(FILE *out)
{
    fprintf(out,
            "Usage: warmline signals [--after ID] [--limit N] [--follow [--interval S]]\n"
            "                        [--url URL | --config FILE] [--token-file FILE]\n"
            "                        [--json | --csv]\n"
            "\n"
            "Prints the signal log in id order (GET /v1/signals): one page, or with\n"
            "--follow every signal from there on as it fires.\n"
            "\n"
            "  --after ID         signals with an id above ID (default 0: from the first)\n"
            "  --limit N          at most N signals per request (the collector's default:\n"
            "                     100)\n"
            "  --follow           keep asking for signals after the last one printed, every\n"
            "                     --interval seconds, until SIGINT (Ctrl-C) or SIGTERM,\n"
            "                     which end it with status 0. While the collector cannot be\n"
            "                     reached or answers 503 it says so once and keeps trying;\n"
            "                     another error ends it.\n"
            "  --interval S       seconds between requests with --follow (default 2; a\n"
            "                     decimal number, at least 0.05)\n"
            "\n"
            "The table: id, fired (UTC), org, rule, weight, description. Without\n"
            "--follow, when the page is full, how to ask for the next one is printed on\n"
            "stderr.\n"
            "--csv: id, fired_at (ISO 8601 UTC), org, rule, weight, description,\n"
            "install_ids (space-separated), ingest_seq.\n"
            "--json: each signal as the API sends it, one per line.\n"
            "\n");
    wl_api_usage_common(out);
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    stop = sig;
}

static void catch_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: sleeps end */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Sleeps seconds, or less when a signal stops it. */
static void pause_for(double seconds)
{
    struct timespec ts = {.tv_sec = (time_t)seconds,
                          .tv_nsec = (long)((seconds - floor(seconds)) * 1e9)};
    while (!stop && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static const struct wl_table_col table_cols[] = {
    {"id", WL_ALIGN_RIGHT, 5, 0, 0},
    {"fired", WL_ALIGN_LEFT, 16, 0, 0},
    {"org", WL_ALIGN_LEFT, 13, 32, 0},
    {"rule", WL_ALIGN_LEFT, 20, 32, 0},
    {"weight", WL_ALIGN_RIGHT, 6, 0, 0},
    {"description", WL_ALIGN_LEFT, 0, 60, 1},
};

/* --follow prints a table in pieces: fixed widths keep them aligned (on a
 * terminal cells are cut to them; in a pipe only unusually long ones push). */
static const struct wl_table_col follow_tty_cols[] = {
    {"id", WL_ALIGN_RIGHT, 6, 0, 0},
    {"fired", WL_ALIGN_LEFT, 16, 0, 0},
    {"org", WL_ALIGN_LEFT, 24, 24, 0},
    {"rule", WL_ALIGN_LEFT, 30, 30, 0},
    {"weight", WL_ALIGN_RIGHT, 6, 0, 0},
    {"description", WL_ALIGN_LEFT, 0, 60, 1},
};

static const struct wl_table_col follow_pipe_cols[] = {
    {"id", WL_ALIGN_RIGHT, 6, 0, 0},
    {"fired", WL_ALIGN_LEFT, 16, 0, 0},
    {"org", WL_ALIGN_LEFT, 64, 0, 0},
    {"rule", WL_ALIGN_LEFT, 30, 0, 0},
    {"weight", WL_ALIGN_RIGHT, 6, 0, 0},
    {"description", WL_ALIGN_LEFT, 0, 0, 0},
};

_Static_assert(sizeof follow_tty_cols == sizeof table_cols &&
                   sizeof follow_pipe_cols == sizeof table_cols,
               "the --follow tables have the same columns");

static const struct wl_table_col csv_cols[] = {
    {"id"}, {"fired_at"}, {"org"}, {"rule"}, {"weight"}, {"description"},
    {"install_ids"}, {"ingest_seq"},
};

static void add_row(struct wl_table *t, const json_t *s, enum wl_out_format fmt, int terminal)
{
    char id[32], fired[40], org[512], weight[64], seq[32], ids[2048];

    wl_reply_number_text(json_object_get(s, "id"), id, sizeof id);
    wl_reply_number_text(json_object_get(s, "weight"), weight, sizeof weight);
    wl_reply_time(wl_reply_int(s, "fired_at", 0), fmt == WL_OUT_CSV ? WL_TIME_ISO : WL_TIME_MINUTE,
                  fired, sizeof fired);
    wl_table_row(t);
    wl_table_cell(t, id);
    wl_table_cell(t, fired);
    if (fmt == WL_OUT_CSV) {
        size_t used = 0, i;
        const json_t *v;
        ids[0] = '\0';
        json_array_foreach(json_object_get(s, "install_ids"), i, v) {
            int n = snprintf(ids + used, sizeof ids - used, "%s%s", i ? " " : "",
                             json_is_string(v) ? json_string_value(v) : "");
            if (n < 0 || (size_t)n >= sizeof ids - used)
                break;
            used += (size_t)n;
        }
        wl_reply_number_text(json_object_get(s, "ingest_seq"), seq, sizeof seq);
        wl_table_cell(t, wl_reply_str(s, "org"));
        wl_table_cell(t, wl_reply_str(s, "rule"));
        wl_table_cell(t, weight);
        wl_table_cell(t, wl_reply_str(s, "description"));
        wl_table_cell(t, ids);
        wl_table_cell(t, seq);
        return;
    }
    wl_reply_org_label(wl_reply_str(s, "org"), json_object_get(s, "named"), terminal, org,
                       sizeof org);
    wl_table_cell(t, org);
    wl_table_cell(t, wl_reply_str(s, "rule"));
    wl_table_cell(t, weight);
    wl_table_cell(t, wl_reply_str(s, "description"));
}

/* Prints one page of signals; header says whether the table or CSV header
 * goes first, streaming whether --follow prints it. Returns an exit code. */
static int print_page(const json_t *signals, enum wl_out_format fmt, int terminal, int header,
                      int streaming)
{
    const struct wl_table_col *cols = !streaming ? table_cols
                                      : terminal ? follow_tty_cols
                                                 : follow_pipe_cols;
    const json_t *s;
    size_t i;

    if (fmt == WL_OUT_JSON) {
        json_array_foreach(signals, i, s) {
            if (wl_reply_print_json(s, stdout) != 0)
                break;
        }
        return wl_api_finish_output(CMD);
    }
    struct wl_table *t = fmt == WL_OUT_CSV
                             ? wl_table_new(csv_cols, sizeof csv_cols / sizeof csv_cols[0])
                             : wl_table_new(cols, sizeof table_cols / sizeof table_cols[0]);
    json_array_foreach(signals, i, s) {
        if (t != NULL)
            add_row(t, s, fmt, terminal);
    }
    unsigned flags = (terminal ? WL_TABLE_TERMINAL : 0) | (header ? 0 : WL_TABLE_NO_HEADER);
    int rc = wl_api_emit_table(CMD, t, fmt, flags);
    wl_table_free(t);
    return rc;
}

/* GET /v1/signals?after=..&limit=..; on success *signals (borrowed from
 * *reply) and *next. */
static int fetch(struct wl_api_client *api, unsigned long long after, const char *limit,
                 json_t **reply, const json_t **signals, unsigned long long *next,
                 struct wl_api_error *err)
{
    char *path = NULL;
    char num[32];

    snprintf(num, sizeof num, "%llu", after);
    if ((path = strdup("/v1/signals")) == NULL || wl_api_query(&path, "after", num) != 0 ||
        (limit != NULL && wl_api_query(&path, "limit", limit) != 0)) {
        free(path);
        memset(err, 0, sizeof *err);
        err->exit_code = WL_EXIT_FAIL;
        snprintf(err->message, sizeof err->message, "out of memory");
        return -1;
    }
    int rc = wl_api_request(api, "GET", path, NULL, NULL, 0, reply, err);
    free(path);
    if (rc != 0)
        return rc;
    *signals = json_object_get(*reply, "signals");
    if (!json_is_array(*signals)) {
        json_decref(*reply);
        *reply = NULL;
        memset(err, 0, sizeof *err);
        err->exit_code = WL_EXIT_FAIL;
        snprintf(err->message, sizeof err->message, "the reply from %s has no \"signals\" array",
                 wl_api_url(api));
        return -1;
    }
    /* The cursor: next_after, else the last id, else where we were. */
    long long n = wl_reply_int(*reply, "next_after", -1);
    if (n < 0) {
        size_t k = json_array_size(*signals);
        n = k ? wl_reply_int(json_array_get(*signals, k - 1), "id", (long long)after)
              : (long long)after;
    }
    *next = n > (long long)after ? (unsigned long long)n : after;
    return 0;
}

static int follow(struct wl_api_client *api, unsigned long long after, const char *limit,
                  double interval, enum wl_out_format fmt, int terminal)
{
    uint64_t page = DEFAULT_PAGE;
    int header = 1, failing = 0, rc = WL_EXIT_OK;

    if (limit != NULL)
        wl_cli_parse_u64(limit, &page);
    catch_signals();
    wl_api_cancel_on(api, &stop);
    if (fmt == WL_OUT_TABLE) { /* the header at once: something to look at */
        rc = print_page(NULL, fmt, terminal, 1, 1);
        header = 0;
    }
    while (!stop && rc == WL_EXIT_OK) {
        json_t *reply = NULL;
        const json_t *signals = NULL;
        struct wl_api_error err;
        unsigned long long next;

        if (fetch(api, after, limit, &reply, &signals, &next, &err) != 0) {
            if (err.canceled)
                break;
            if (!err.transient) {
                wl_cli_error(CMD, "%s", err.message);
                return err.exit_code;
            }
            if (!failing)
                wl_cli_error(CMD, "%s; trying again every %g s", err.message, interval);
            failing = 1;
            pause_for(interval);
            continue;
        }
        if (failing)
            wl_cli_error(CMD, "the collector at %s answers again", wl_api_url(api));
        failing = 0;
        size_t got = json_array_size(signals);
        if (got > 0 || header)
            rc = print_page(signals, fmt, terminal, header, 1);
        header = 0;
        after = next;
        json_decref(reply);
        if (got < page) /* a full page: more may be waiting, ask at once */
            pause_for(interval);
    }
    return rc;
}

int wl_cmd_signals(int argc, char **argv)
{
    enum { OPT_AFTER = 256, OPT_LIMIT, OPT_FOLLOW, OPT_INTERVAL };
    static const struct option opts[] = {
        WL_API_LONGOPTS,
        {"after", required_argument, NULL, OPT_AFTER},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"follow", no_argument, NULL, OPT_FOLLOW},
        {"interval", required_argument, NULL, OPT_INTERVAL},
        {NULL, 0, NULL, 0},
    };
    struct wl_api_opts o = {0};
    const char *limit = NULL;
    uint64_t after = 0;
    double interval = 2.0;
    int follow_mode = 0, interval_set = 0, c, rc;
    struct wl_api_client *api = NULL;

    while ((c = wl_cli_getopt(CMD, argc, argv, ":h", opts)) != -1) {
        int shared = wl_api_opt(CMD, &o, c, optarg);
        if (shared < 0)
            return WL_EXIT_USAGE;
        if (shared > 0)
            continue;
        switch (c) {
        case OPT_AFTER:
            if (wl_cli_parse_u64(optarg, &after) != 0)
                return wl_cli_usage_error(CMD, "--after: '%s' is not a signal id", optarg);
            break;
        case OPT_LIMIT: {
            uint64_t n;
            if (wl_cli_parse_u64(optarg, &n) != 0 || n == 0)
                return wl_cli_usage_error(CMD, "--limit: '%s' is not a positive whole number",
                                          optarg);
            limit = optarg;
            break;
        }
        case OPT_FOLLOW: follow_mode = 1; break;
        case OPT_INTERVAL: {
            char *end;
            errno = 0;
            interval = strtod(optarg, &end);
            if (optarg[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(interval) ||
                interval < 0.05 || interval > 86400)
                return wl_cli_usage_error(
                    CMD, "--interval: '%s' is not a number of seconds from 0.05 to 86400",
                    optarg);
            interval_set = 1;
            break;
        }
        case 'h': wl_usage_signals(stdout); return WL_EXIT_OK;
        default: return WL_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return wl_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (interval_set && !follow_mode)
        return wl_cli_usage_error(CMD, "--interval goes with --follow");
    if ((rc = wl_api_open(CMD, &o, &api)) != 0)
        return rc;
    int terminal = o.format == WL_OUT_TABLE && isatty(STDOUT_FILENO);

    if (follow_mode) {
        rc = follow(api, after, limit, interval, o.format, terminal);
    } else {
        json_t *reply = NULL;
        const json_t *signals = NULL;
        struct wl_api_error err;
        unsigned long long next;
        uint64_t page = DEFAULT_PAGE;

        if (limit != NULL)
            wl_cli_parse_u64(limit, &page);
        if (fetch(api, after, limit, &reply, &signals, &next, &err) != 0) {
            wl_cli_error(CMD, "%s", err.message);
            rc = err.exit_code;
        } else {
            rc = print_page(signals, o.format, terminal, 1, 0);
            if (rc == 0 && o.format == WL_OUT_TABLE && json_array_size(signals) >= page)
                fprintf(stderr, "warmline %s: more may follow: warmline signals --after %llu\n",
                        CMD, next);
        }
        json_decref(reply);
    }
    wl_api_close(api);
    return rc;
}
