/* warmline account: one organization (GET /v1/accounts/{org}) as a
 * readable summary: who, its totals, installs, signals and recent days. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_client.h"
#include "cli.h"
#include "table.h"

static const char *const CMD = "account";

void wl_usage_account(FILE *out)
{
    fprintf(out,
            "Usage: warmline account ORG | --domain DOMAIN [--days N]\n"
            "                        [--url URL | --config FILE] [--token-file FILE]\n"
            "                        [--json | --csv]\n"
            "\n"
            "Shows one organization (GET /v1/accounts/{org}). ORG is its id as the other\n"
            "commands print it (64 hex digits, or install:ID for an install without an\n"
            "organization), or an install id (its organization); --domain DOMAIN names\n"
            "it by email domain instead (the collector derives the id).\n"
            "\n"
            "  --domain DOMAIN    the organization of this domain, e.g. acme.com\n"
            "  --days N           the daily history covers the last N days (the\n"
            "                     collector's default: 90)\n"
            "\n"
            "The summary: org, named account, score, installs (counting of total), first\n"
            "and last seen, versions, editions, features; the totals that are not zero;\n"
            "the installs; the signals (id, fired, rule, description, points or weight);\n"
            "the daily history (date, MAU, installs), consecutive days that did not\n"
            "change printed as one range.\n"
            "--json: the API's reply as one line. --csv: the daily history, one row per\n"
            "day: date, installs (counting), installs_total, then every total.\n"
            "\n");
    wl_api_usage_common(out);
}

static void join_strings(const json_t *arr, char *buf, size_t len)
{
    size_t used = 0, i;
    const json_t *v;

    buf[0] = '\0';
    json_array_foreach(arr, i, v) {
        int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
                         json_is_string(v) ? json_string_value(v) : "?");
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
}

static int is_zero(const json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v) == 0;
    if (json_is_real(v))
        return json_real_value(v) == 0;
    if (json_is_string(v))
        return strcmp(json_string_value(v), "0") == 0;
    return json_is_null(v);
}

static int print_section(const char *title)
{
    return printf("\n%s\n", title) < 0 ? -1 : 0;
}

static const struct wl_table_col kv_cols[] = {
    {"", WL_ALIGN_LEFT, 0, 0, 0},
    {"", WL_ALIGN_LEFT, 0, 0, 1},
};

static struct wl_table *header_table(const json_t *a)
{
    struct wl_table *t = wl_table_new(kv_cols, 2);
    const json_t *named = json_object_get(a, "named");
    char buf[2048], first[40], last[40];

    if (t == NULL)
        return NULL;
    wl_table_row(t);
    wl_table_cell(t, "org");
    wl_table_cell(t, wl_reply_str(a, "org"));
    wl_table_row(t);
    wl_table_cell(t, "named");
    if (json_is_object(named)) {
        const char *owner = wl_reply_str(named, "owner");
        wl_table_cellf(t, "%s (%s%s%s)", wl_reply_str(named, "name"),
                       wl_reply_str(named, "domain"), owner[0] ? ", owner " : "", owner);
    } else {
        wl_table_cell(t, "-");
    }
    double score = wl_reply_num(a, "score");
    wl_table_row(t);
    wl_table_cell(t, "score");
    if (isnan(score))
        wl_table_cell(t, "");
    else
        wl_table_cellf(t, "%.1f", score);
    const json_t *installs = json_object_get(a, "installs");
    wl_table_row(t);
    wl_table_cell(t, "installs");
    wl_table_cellf(t, "%lld counting of %zu", wl_reply_int(a, "installs_counting", 0),
                   json_array_size(installs));
    wl_reply_time(wl_reply_int(a, "first_seen", 0), WL_TIME_MINUTE, first, sizeof first);
    wl_reply_time(wl_reply_int(a, "last_seen", 0), WL_TIME_MINUTE, last, sizeof last);
    wl_table_row(t);
    wl_table_cell(t, "first seen");
    wl_table_cell(t, first);
    wl_table_row(t);
    wl_table_cell(t, "last seen");
    wl_table_cell(t, last);
    static const char *const lists[] = {"versions", "editions", "features"};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        join_strings(json_object_get(a, lists[i]), buf, sizeof buf);
        wl_table_row(t);
        wl_table_cell(t, lists[i]);
        wl_table_cell(t, buf[0] ? buf : "-");
    }
    return t;
}

static struct wl_table *totals_table(const json_t *totals)
{
    static const struct wl_table_col cols[] = {
        {"count", WL_ALIGN_LEFT, 0, 0, 0},
        {"value", WL_ALIGN_RIGHT, 0, 0, 0},
    };
    struct wl_table *t = wl_table_new(cols, 2);
    const char *key;
    const json_t *v;
    char num[64];

    if (t == NULL)
        return NULL;
    json_object_foreach((json_t *)totals, key, v) {
        if (is_zero(v))
            continue;
        wl_reply_number_text(v, num, sizeof num);
        wl_table_row(t);
        wl_table_cell(t, key);
        wl_table_cell(t, num);
    }
    return t;
}

static struct wl_table *installs_table(const json_t *installs)
{
    static const struct wl_table_col cols[] = {
        {"install", WL_ALIGN_LEFT, 0, 40, 1},
        {"counting", WL_ALIGN_LEFT, 0, 0, 0},
        {"first seen", WL_ALIGN_LEFT, 0, 0, 0},
        {"last seen", WL_ALIGN_LEFT, 0, 0, 0},
        {"last seq", WL_ALIGN_RIGHT, 0, 0, 0},
        {"version", WL_ALIGN_LEFT, 0, 16, 0},
        {"edition", WL_ALIGN_LEFT, 0, 16, 0},
        {"MAU", WL_ALIGN_RIGHT, 0, 0, 0},
    };
    struct wl_table *t = wl_table_new(cols, sizeof cols / sizeof cols[0]);
    const json_t *in;
    size_t i;
    char first[40], last[40], seq[32], mau[32];

    if (t == NULL)
        return NULL;
    json_array_foreach(installs, i, in) {
        const json_t *ping = json_object_get(in, "last_ping");
        const json_t *counting = json_object_get(in, "counting");
        wl_reply_time(wl_reply_int(in, "first_seen", 0), WL_TIME_DATE, first, sizeof first);
        wl_reply_time(wl_reply_int(in, "last_seen", 0), WL_TIME_MINUTE, last, sizeof last);
        wl_reply_number_text(json_object_get(in, "last_seq"), seq, sizeof seq);
        wl_reply_number_text(json_object_get(ping, "active_users_monthly"), mau, sizeof mau);
        wl_table_row(t);
        wl_table_cell(t, wl_reply_str(in, "install_id"));
        wl_table_cell(t, json_is_boolean(counting) ? (json_is_true(counting) ? "yes" : "no")
                                                   : "");
        wl_table_cell(t, first);
        wl_table_cell(t, last);
        wl_table_cell(t, seq);
        wl_table_cell(t, wl_reply_str(ping, "version"));
        wl_table_cell(t, wl_reply_str(ping, "edition"));
        wl_table_cell(t, mau);
    }
    return t;
}

static struct wl_table *signals_table(const json_t *signals)
{
    static const struct wl_table_col with_points[] = {
        {"id", WL_ALIGN_RIGHT, 0, 0, 0},
        {"fired", WL_ALIGN_LEFT, 0, 0, 0},
        {"rule", WL_ALIGN_LEFT, 0, 32, 0},
        {"description", WL_ALIGN_LEFT, 0, 60, 1},
        {"points", WL_ALIGN_RIGHT, 0, 0, 0},
    };
    static const struct wl_table_col with_weight[] = {
        {"id", WL_ALIGN_RIGHT, 0, 0, 0},
        {"fired", WL_ALIGN_LEFT, 0, 0, 0},
        {"rule", WL_ALIGN_LEFT, 0, 32, 0},
        {"description", WL_ALIGN_LEFT, 0, 60, 1},
        {"weight", WL_ALIGN_RIGHT, 0, 0, 0},
    };
    const json_t *s;
    size_t i;
    int points = 0;
    char id[32], fired[40], num[64];

    json_array_foreach(signals, i, s) {
        points = points || json_is_number(json_object_get(s, "points"));
    }
    struct wl_table *t = wl_table_new(points ? with_points : with_weight, 5);
    if (t == NULL)
        return NULL;
    json_array_foreach(signals, i, s) {
        wl_reply_number_text(json_object_get(s, "id"), id, sizeof id);
        wl_reply_time(wl_reply_int(s, "fired_at", 0), WL_TIME_MINUTE, fired, sizeof fired);
        if (points) {
            double p = wl_reply_num(s, "points");
            if (isnan(p))
                num[0] = '\0';
            else
                snprintf(num, sizeof num, "%.1f", p);
        } else {
            wl_reply_number_text(json_object_get(s, "weight"), num, sizeof num);
        }
        wl_table_row(t);
        wl_table_cell(t, id);
        wl_table_cell(t, fired);
        wl_table_cell(t, wl_reply_str(s, "rule"));
        wl_table_cell(t, wl_reply_str(s, "description"));
        wl_table_cell(t, num);
    }
    return t;
}

/* Consecutive days with the same MAU and installs become one row. */
static struct wl_table *daily_table(const json_t *daily)
{
    static const struct wl_table_col cols[] = {
        {"date", WL_ALIGN_LEFT, 0, 0, 0},
        {"MAU", WL_ALIGN_RIGHT, 0, 0, 0},
        {"installs", WL_ALIGN_RIGHT, 0, 0, 0},
    };
    struct wl_table *t = wl_table_new(cols, 3);
    size_t n = json_array_size(daily);

    if (t == NULL)
        return NULL;
    for (size_t i = 0; i < n;) {
        const json_t *d = json_array_get(daily, i);
        char mau[64], next_mau[64];
        long long inst = wl_reply_int(d, "installs", 0);
        long long total = wl_reply_int(d, "installs_total", inst);
        long long day = wl_reply_int(d, "day", 0);
        size_t j = i + 1;

        wl_reply_number_text(json_object_get(json_object_get(d, "totals"),
                                             "active_users_monthly"), mau, sizeof mau);
        for (; j < n; j++) {
            const json_t *e = json_array_get(daily, j);
            wl_reply_number_text(json_object_get(json_object_get(e, "totals"),
                                                 "active_users_monthly"),
                                 next_mau, sizeof next_mau);
            if (wl_reply_int(e, "day", 0) != day + (long long)(j - i) ||
                wl_reply_int(e, "installs", 0) != inst ||
                wl_reply_int(e, "installs_total", inst) != total || strcmp(mau, next_mau) != 0)
                break;
        }
        wl_table_row(t);
        if (j - i > 1)
            wl_table_cellf(t, "%s..%s", wl_reply_str(d, "date"),
                           wl_reply_str(json_array_get(daily, j - 1), "date"));
        else
            wl_table_cell(t, wl_reply_str(d, "date"));
        wl_table_cell(t, mau);
        if (inst == total)
            wl_table_cellf(t, "%lld", inst);
        else
            wl_table_cellf(t, "%lld/%lld", inst, total);
        i = j;
    }
    return t;
}

/* --csv: one row per day, every total as a column (named after the first
 * day's). */
static int daily_csv(const json_t *daily)
{
    const json_t *first = json_object_get(json_array_get(daily, 0), "totals");
    size_t nt = json_object_size(first), ncols = 3 + nt, c = 3, i;
    struct wl_table_col *cols = calloc(ncols, sizeof *cols);
    struct wl_table *t = NULL;
    const char *key;
    const json_t *v, *d;
    char num[64];

    if (cols != NULL) {
        cols[0].header = "date";
        cols[1].header = "installs";
        cols[2].header = "installs_total";
        json_object_foreach((json_t *)first, key, v) {
            cols[c++].header = key;
        }
        t = wl_table_new(cols, ncols);
    }
    json_array_foreach(daily, i, d) {
        if (t == NULL)
            break;
        wl_table_row(t);
        wl_table_cell(t, wl_reply_str(d, "date"));
        wl_reply_number_text(json_object_get(d, "installs"), num, sizeof num);
        wl_table_cell(t, num);
        wl_reply_number_text(json_object_get(d, "installs_total"), num, sizeof num);
        wl_table_cell(t, num);
        for (c = 3; c < ncols; c++) {
            wl_reply_number_text(json_object_get(json_object_get(d, "totals"), cols[c].header),
                                 num, sizeof num);
            wl_table_cell(t, num);
        }
    }
    int rc = wl_api_emit_table(CMD, t, WL_OUT_CSV, 0);
    wl_table_free(t);
    free(cols);
    return rc;
}

static int summary(const json_t *a, int terminal, const char *days)
{
    unsigned flags = terminal ? WL_TABLE_TERMINAL : 0;
    struct wl_table *t = header_table(a);
    int rc = wl_api_emit_table(CMD, t, WL_OUT_TABLE, flags | WL_TABLE_NO_HEADER);
    wl_table_free(t);

    static const struct {
        const char *title, *key;
        struct wl_table *(*build)(const json_t *);
    } sections[] = {
        {"totals (not zero)", "totals", totals_table},
        {"installs", "installs", installs_table},
        {"signals", "signals", signals_table},
        {"daily", "daily", daily_table},
    };
    for (size_t i = 0; rc == 0 && i < sizeof sections / sizeof sections[0]; i++) {
        const json_t *part = json_object_get(a, sections[i].key);
        char title[96];
        if (part == NULL)
            continue;
        if (strcmp(sections[i].key, "daily") == 0 && days != NULL)
            snprintf(title, sizeof title, "daily (last %s days, UTC)", days);
        else if (strcmp(sections[i].key, "daily") == 0)
            snprintf(title, sizeof title, "daily (UTC)");
        else
            snprintf(title, sizeof title, "%s", sections[i].title);
        if ((json_is_array(part) && json_array_size(part) == 0) ||
            (json_is_object(part) && json_object_size(part) == 0)) {
            printf("\n%s: none\n", sections[i].key);
            continue;
        }
        if (print_section(title) != 0)
            break;
        t = sections[i].build(part);
        rc = wl_api_emit_table(CMD, t, WL_OUT_TABLE, flags);
        wl_table_free(t);
    }
    return rc ? rc : wl_api_finish_output(CMD);
}

int wl_cmd_account(int argc, char **argv)
{
    enum { OPT_DOMAIN = 256, OPT_DAYS };
    static const struct option opts[] = {
        WL_API_LONGOPTS,
        {"domain", required_argument, NULL, OPT_DOMAIN},
        {"days", required_argument, NULL, OPT_DAYS},
        {NULL, 0, NULL, 0},
    };
    struct wl_api_opts o = {0};
    const char *domain = NULL, *days = NULL, *org;
    struct wl_api_client *api = NULL;
    json_t *reply = NULL;
    char *id = NULL, *path = NULL, *esc = NULL;
    int c, rc;

    while ((c = wl_cli_getopt(CMD, argc, argv, ":h", opts)) != -1) {
        int shared = wl_api_opt(CMD, &o, c, optarg);
        if (shared < 0)
            return WL_EXIT_USAGE;
        if (shared > 0)
            continue;
        switch (c) {
        case OPT_DOMAIN:
            if (optarg[0] == '\0')
                return wl_cli_usage_error(CMD, "--domain: empty domain");
            domain = optarg;
            break;
        case OPT_DAYS: {
            uint64_t n;
            if (wl_cli_parse_u64(optarg, &n) != 0 || n == 0)
                return wl_cli_usage_error(CMD, "--days: '%s' is not a positive whole number",
                                          optarg);
            days = optarg;
            break;
        }
        case 'h': wl_usage_account(stdout); return WL_EXIT_OK;
        default: return WL_EXIT_USAGE;
        }
    }
    if (domain != NULL && optind < argc)
        return wl_cli_usage_error(CMD, "give ORG or --domain, not both");
    if (domain == NULL && optind >= argc)
        return wl_cli_usage_error(CMD, "missing ORG (or --domain DOMAIN)");
    if (argc - optind > 1)
        return wl_cli_usage_error(CMD, "one ORG at a time (got '%s' too)", argv[optind + 1]);
    org = domain ? NULL : argv[optind];
    if (org != NULL && org[0] == '\0')
        return wl_cli_usage_error(CMD, "empty ORG");
    if ((rc = wl_api_open(CMD, &o, &api)) != 0)
        return rc;

    rc = WL_EXIT_FAIL;
    if (domain == NULL)
        id = strdup(org);
    else if (asprintf(&id, "domain:%s", domain) < 0)
        id = NULL;
    if (id != NULL && (esc = wl_api_escape(id)) != NULL &&
        asprintf(&path, "/v1/accounts/%s", esc) < 0)
        path = NULL;
    if (path == NULL ||
        (days != NULL && wl_api_query(&path, "days", days) != 0)) {
        wl_cli_error(CMD, "out of memory");
        goto done;
    }
    if ((rc = wl_api_call(api, "GET", path, NULL, NULL, 0, &reply)) != 0)
        goto done;
    if (!json_is_object(reply)) {
        wl_cli_error(CMD, "the reply from %s is not a JSON object", wl_api_url(api));
        rc = WL_EXIT_FAIL;
        goto done;
    }
    if (o.format == WL_OUT_JSON) {
        wl_reply_print_json(reply, stdout);
        rc = wl_api_finish_output(CMD);
    } else if (o.format == WL_OUT_CSV) {
        rc = daily_csv(json_object_get(reply, "daily"));
    } else {
        rc = summary(reply, isatty(STDOUT_FILENO), days);
    }

done:
    json_decref(reply);
    free(path);
    free(esc);
    free(id);
    wl_api_close(api);
    return rc;
}
