/* warmline hot: the hottest accounts (GET /v1/accounts/hot) as a table,
 * JSON lines or CSV. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api_client.h"
#include "cli.h"
#include "table.h"

static const char *const CMD = "hot";

#define TOP_REASONS 3

void wl_usage_hot(FILE *out)
{
    fprintf(out,
            "Usage: warmline hot [--limit N] [--min-score X] [--rule NAME] [--since T]\n"
            "                    [--after CURSOR]\n"
            "                    [--url URL | --config FILE] [--token-file FILE]\n"
            "                    [--json | --csv]\n"
            "\n"
            "Lists the accounts whose usage signals score highest now (GET\n"
            "/v1/accounts/hot), best first.\n"
            "\n"
            "  --limit N          at most N accounts (the collector's default: 50)\n"
            "  --min-score X      only accounts scoring at least X (a decimal number)\n"
            "  --rule NAME        only accounts with a signal of this rule\n"
            "  --since T          only accounts with a signal since T: unix milliseconds,\n"
            "                     a UTC date or time (2025-01-31, 2025-01-31T10:00[:00][Z]),\n"
            "                     or an age such as 90m, 36h, 7d, 2w (that long ago);\n"
            "                     with --rule: a signal of that rule since T\n"
            "  --after CURSOR     the next page: the cursor the last page printed on\n"
            "                     stderr as \"next page: --after CURSOR\" (ranks go on)\n"
            "\n"
            "The table: rank; score (1 decimal); org (the named account's name when the\n"
            "organization is one, else its id); installs (counting installs, as\n"
            "counting/total when some stopped counting); MAU (monthly active users\n"
            "over the counting installs); last seen (UTC date); top reasons (the rules\n"
            "of the signals that bring the most points, at most 3).\n"
            "--csv: rank, score, org (id), name, domain, owner, installs,\n"
            "installs_counting, mau, first_seen, last_seen (ISO 8601 UTC), top_reasons.\n"
            "--json: each account as the API sends it, one per line.\n"
            "\n");
    wl_api_usage_common(out);
}

/* --since: unix ms, a UTC date or time, or an age. Returns 0 or -EINVAL. */
static int parse_since(const char *s, long long *ms)
{
    static const struct {
        char unit;
        long long ms;
    } ages[] = {{'s', 1000LL}, {'m', 60000LL}, {'h', 3600000LL}, {'d', 86400000LL},
                {'w', 7 * 86400000LL}};
    uint64_t n;
    struct tm tm = {0};
    char *end;

    if (wl_cli_parse_u64(s, &n) == 0) {
        if (n > (uint64_t)LLONG_MAX)
            return -EINVAL;
        *ms = (long long)n;
        return 0;
    }
    size_t len = strlen(s);
    if (len >= 2 && s[0] >= '0' && s[0] <= '9') {
        char digits[32];
        if (len - 1 >= sizeof digits)
            return -EINVAL;
        memcpy(digits, s, len - 1);
        digits[len - 1] = '\0';
        for (size_t i = 0; i < sizeof ages / sizeof ages[0]; i++) {
            if (s[len - 1] != ages[i].unit)
                continue;
            if (wl_cli_parse_u64(digits, &n) != 0 || n > (uint64_t)(LLONG_MAX / ages[i].ms))
                return -EINVAL;
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            *ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 -
                  (long long)n * ages[i].ms;
            return 0;
        }
    }
    end = strptime(s, "%Y-%m-%d", &tm);
    if (end != NULL && *end == 'T')
        end = strptime(end + 1, "%H:%M", &tm);
    if (end != NULL && *end == ':')
        end = strptime(end + 1, "%S", &tm);
    if (end != NULL && *end == 'Z')
        end++;
    if (end == NULL || *end != '\0')
        return -EINVAL;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -EINVAL;
    *ms = (long long)t * 1000;
    return 0;
}

/* installs and installs_counting: a count, or an array of installs. */
static long long count_of(const json_t *acct, const char *key)
{
    const json_t *v = json_object_get(acct, key);
    return json_is_array(v) ? (long long)json_array_size(v) : wl_reply_int(acct, key, 0);
}

/* The distinct rules of the reasons bringing the most points, ", "-joined. */
static void top_reasons(const json_t *reasons, char *buf, size_t len)
{
    size_t n = json_array_size(reasons), used = 0, shown = 0;
    const json_t **order = calloc(n ? n : 1, sizeof *order);

    buf[0] = '\0';
    if (order == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        /* insertion sort by points, highest first; ties keep the API's order */
        const json_t *r = json_array_get(reasons, i);
        double p = wl_reply_num(r, "points");
        size_t j = i;
        while (j > 0 && wl_reply_num(order[j - 1], "points") < p) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = r;
    }
    for (size_t i = 0; i < n && shown < TOP_REASONS; i++) {
        const char *rule = wl_reply_str(order[i], "rule");
        int seen = rule[0] == '\0';
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(rule, wl_reply_str(order[k], "rule")) == 0;
        if (seen)
            continue;
        int w = snprintf(buf + used, len - used, "%s%s", shown ? ", " : "", rule);
        if (w < 0 || (size_t)w >= len - used)
            break;
        used += (size_t)w;
        shown++;
    }
    free(order);
}

static const struct wl_table_col table_cols[] = {
    {"rank", WL_ALIGN_RIGHT, 0, 0, 0},
    {"score", WL_ALIGN_RIGHT, 0, 0, 0},
    {"org", WL_ALIGN_LEFT, 0, 32, 1},
    {"installs", WL_ALIGN_RIGHT, 0, 0, 0},
    {"MAU", WL_ALIGN_RIGHT, 0, 0, 0},
    {"last seen", WL_ALIGN_LEFT, 0, 0, 0},
    {"top reasons", WL_ALIGN_LEFT, 0, 0, 1},
};

static const struct wl_table_col csv_cols[] = {
    {"rank"}, {"score"}, {"org"}, {"name"}, {"domain"}, {"owner"}, {"installs"},
    {"installs_counting"}, {"mau"}, {"first_seen"}, {"last_seen"}, {"top_reasons"},
};

static void add_row(struct wl_table *t, const json_t *a, enum wl_out_format fmt, int terminal)
{
    const json_t *named = json_object_get(a, "named");
    const json_t *totals = json_object_get(a, "totals");
    long long installs = count_of(a, "installs"), counting = count_of(a, "installs_counting");
    char label[512], mau[64], first[40], last[40], reasons[512], score[64];

    wl_table_row(t);
    wl_reply_number_text(json_object_get(totals, "active_users_monthly"), mau, sizeof mau);
    top_reasons(json_object_get(a, "reasons"), reasons, sizeof reasons);
    if (fmt == WL_OUT_CSV) {
        wl_reply_number_text(json_object_get(a, "score"), score, sizeof score);
        wl_reply_time(wl_reply_int(a, "first_seen", 0), WL_TIME_ISO, first, sizeof first);
        wl_reply_time(wl_reply_int(a, "last_seen", 0), WL_TIME_ISO, last, sizeof last);
        wl_table_cellf(t, "%lld", wl_reply_int(a, "rank", 0));
        wl_table_cell(t, score);
        wl_table_cell(t, wl_reply_str(a, "org"));
        wl_table_cell(t, wl_reply_str(named, "name"));
        wl_table_cell(t, wl_reply_str(named, "domain"));
        wl_table_cell(t, wl_reply_str(named, "owner"));
        wl_table_cellf(t, "%lld", installs);
        wl_table_cellf(t, "%lld", counting);
        wl_table_cell(t, mau);
        wl_table_cell(t, first);
        wl_table_cell(t, last);
        wl_table_cell(t, reasons);
        return;
    }
    wl_reply_org_label(wl_reply_str(a, "org"), named, terminal, label, sizeof label);
    wl_reply_time(wl_reply_int(a, "last_seen", 0), WL_TIME_DATE, last, sizeof last);
    double s = wl_reply_num(a, "score");
    wl_table_cellf(t, "%lld", wl_reply_int(a, "rank", 0));
    if (isnan(s))
        wl_table_cell(t, "");
    else
        wl_table_cellf(t, "%.1f", s);
    wl_table_cell(t, label);
    if (counting == installs)
        wl_table_cellf(t, "%lld", installs);
    else
        wl_table_cellf(t, "%lld/%lld", counting, installs);
    wl_table_cell(t, mau);
    wl_table_cell(t, last);
    wl_table_cell(t, reasons);
}

/* The accounts as a table (fmt WL_OUT_TABLE) or CSV rows; NULL on ENOMEM. */
static struct wl_table *build_table(const json_t *accounts, enum wl_out_format fmt)
{
    int terminal = fmt == WL_OUT_TABLE && isatty(STDOUT_FILENO);
    struct wl_table *t =
        fmt == WL_OUT_CSV ? wl_table_new(csv_cols, sizeof csv_cols / sizeof csv_cols[0])
                          : wl_table_new(table_cols, sizeof table_cols / sizeof table_cols[0]);
    size_t i;
    const json_t *a;

    json_array_foreach(accounts, i, a) {
        if (t != NULL)
            add_row(t, a, fmt, terminal);
    }
    return t;
}

int wl_cmd_hot(int argc, char **argv)
{
    enum { OPT_LIMIT = 256, OPT_MIN_SCORE, OPT_RULE, OPT_SINCE, OPT_AFTER };
    static const struct option opts[] = {
        WL_API_LONGOPTS,
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"min-score", required_argument, NULL, OPT_MIN_SCORE},
        {"rule", required_argument, NULL, OPT_RULE},
        {"since", required_argument, NULL, OPT_SINCE},
        {"after", required_argument, NULL, OPT_AFTER},
        {NULL, 0, NULL, 0},
    };
    struct wl_api_opts o = {0};
    const char *limit = NULL, *min_score = NULL, *rule = NULL, *after = NULL;
    char since[32] = "";
    struct wl_api_client *api = NULL;
    struct wl_table *t = NULL;
    json_t *reply = NULL;
    char *path = NULL;
    int c, rc;

    while ((c = wl_cli_getopt(CMD, argc, argv, ":h", opts)) != -1) {
        int shared = wl_api_opt(CMD, &o, c, optarg);
        if (shared < 0)
            return WL_EXIT_USAGE;
        if (shared > 0)
            continue;
        switch (c) {
        case OPT_LIMIT: {
            uint64_t n;
            if (wl_cli_parse_u64(optarg, &n) != 0 || n == 0)
                return wl_cli_usage_error(CMD, "--limit: '%s' is not a positive whole number",
                                          optarg);
            limit = optarg;
            break;
        }
        case OPT_MIN_SCORE: {
            char *end;
            errno = 0;
            double x = strtod(optarg, &end);
            if (optarg[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(x) || x < 0)
                return wl_cli_usage_error(CMD, "--min-score: '%s' is not a number >= 0",
                                          optarg);
            min_score = optarg;
            break;
        }
        case OPT_RULE:
            if (optarg[0] == '\0')
                return wl_cli_usage_error(CMD, "--rule: empty rule name");
            rule = optarg;
            break;
        case OPT_SINCE: {
            long long ms;
            if (parse_since(optarg, &ms) != 0)
                return wl_cli_usage_error(CMD,
                                          "--since: '%s' is not unix milliseconds, a date "
                                          "(2025-01-31[T10:00[:00]]) or an age (36h, 7d)",
                                          optarg);
            snprintf(since, sizeof since, "%lld", ms);
            break;
        }
        case OPT_AFTER:
            if (optarg[0] == '\0')
                return wl_cli_usage_error(CMD, "--after: empty cursor");
            after = optarg; /* the collector says what is wrong with a bad one */
            break;
        case 'h': wl_usage_hot(stdout); return WL_EXIT_OK;
        default: return WL_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return wl_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if ((rc = wl_api_open(CMD, &o, &api)) != 0)
        return rc;

    rc = WL_EXIT_FAIL;
    if ((path = strdup("/v1/accounts/hot")) == NULL ||
        (limit && wl_api_query(&path, "limit", limit) != 0) ||
        (min_score && wl_api_query(&path, "min_score", min_score) != 0) ||
        (rule && wl_api_query(&path, "rule", rule) != 0) ||
        (since[0] && wl_api_query(&path, "since", since) != 0) ||
        (after && wl_api_query(&path, "after", after) != 0)) {
        wl_cli_error(CMD, "out of memory");
        goto done;
    }
    if ((rc = wl_api_call(api, "GET", path, NULL, NULL, 0, &reply)) != 0)
        goto done;
    const json_t *accounts = json_object_get(reply, "accounts");
    if (!json_is_array(accounts)) {
        wl_cli_error(CMD, "the reply from %s has no \"accounts\" array", wl_api_url(api));
        rc = WL_EXIT_FAIL;
        goto done;
    }
    if (o.format == WL_OUT_JSON) {
        size_t i;
        const json_t *a;
        json_array_foreach(accounts, i, a) {
            if (wl_reply_print_json(a, stdout) != 0)
                break;
        }
        rc = wl_api_finish_output(CMD);
    } else {
        t = build_table(accounts, o.format);
        rc = wl_api_emit_table(CMD, t, o.format, isatty(STDOUT_FILENO) ? WL_TABLE_TERMINAL : 0);
    }
    const char *next = json_string_value(json_object_get(reply, "next"));
    if (rc == 0 && next != NULL && json_array_size(accounts) > 0)
        fprintf(stderr, "%s: next page: --after %s\n", CMD, next);
    if (rc == 0 && json_is_true(json_object_get(reply, "truncated")))
        wl_cli_error(CMD, "the collector stopped after scanning as many organizations as it "
                          "will for one request: more accounts may match these filters");

done:
    wl_table_free(t);
    json_decref(reply);
    free(path);
    wl_api_close(api);
    return rc;
}
