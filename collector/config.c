#include "config.h"

#include <errno.h>
#include <arpa/inet.h>
#include <ini.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

enum opt_type { OPT_STR, OPT_UINT, OPT_BYTES, OPT_DURATION, OPT_ENUM };

struct opt {
    const char *section;
    const char *name;
    enum opt_type type;
    size_t offset;
    size_t size;              /* OPT_STR: buffer size */
    const char *def;          /* default, as it would be written in the file */
    uint64_t min, max;        /* numeric bounds */
    const char *const *enums; /* OPT_ENUM: NULL-terminated names */
    const char *help;
};

static const char *const durability_names[] = {"sync", "async", NULL};
static const char *const level_names[] = {"debug", "info", "warn", "error", NULL};
static const char *const webhook_formats[] = {"json", "slack", NULL};
static const char *const off_on[] = {"off", "on", NULL};

#define STR(sec, field, def, help) \
    {sec, #field, OPT_STR, offsetof(struct wl_config, field), \
     sizeof(((struct wl_config *)0)->field), def, 0, 0, NULL, help}
#define NUM(sec, field, type, def, min, max, help) \
    {sec, #field, type, offsetof(struct wl_config, field), 0, def, min, max, NULL, help}
#define ENUM(sec, field, names, def, help) \
    {sec, #field, OPT_ENUM, offsetof(struct wl_config, field), 0, def, 0, 0, names, help}

#define KiB ((uint64_t)1024)
#define MiB (KiB * 1024)
#define GiB (1024ULL * MiB)
#define SEC ((uint64_t)1000)
#define DAY (86400 * SEC)

static const struct opt options[] = {
    STR("collector", data_dir, "./var/data", "RocksDB data directory"),
    STR("collector", udp_listen, "0.0.0.0:7810", "UDP listen HOST:PORT (empty: off; port 0: ephemeral)"),
    STR("collector", tcp_listen, "0.0.0.0:7810", "TCP listen HOST:PORT (empty: off; port 0: ephemeral)"),
    STR("collector", org_salt_file, "./var/org_salt", "file whose bytes key HMAC-SHA256(domain) org keys"),
    ENUM("collector", durability, durability_names, "sync",
         "sync: ack after the WAL is fsynced; async: ack after the write, before fsync"),
    ENUM("collector", log_level, level_names, "info", "debug | info | warn | error"),
    NUM("collector", stats_interval_ms, OPT_DURATION, "60s", 0, 7 * DAY,
        "how often an event=stats line is logged (0: only at shutdown)"),

    NUM("limits", max_frame_bytes, OPT_BYTES, "1MiB", 64, 64 * MiB,
        "largest TCP frame or UDP datagram; a longer TCP frame closes its connection"),
    NUM("limits", max_inflated_bytes, OPT_BYTES, "8MiB", 64, 256 * MiB,
        "largest inflated payload; inflation stops at this cap"),
    NUM("limits", max_pings_per_batch, OPT_UINT, "10000", 1, 1000000, "pings per envelope"),
    NUM("limits", max_connections, OPT_UINT, "1024", 1, 1000000,
        "concurrent TCP connections; further ones are closed at once"),
    NUM("limits", idle_timeout_ms, OPT_DURATION, "60s", 0, 7 * DAY,
        "close a TCP connection silent this long with nothing in flight (0: never)"),
    NUM("limits", max_count, OPT_UINT, "10000000", 1, UINT32_MAX,
        "ceiling for every per-ping count; a ping above it is rejected"),
    NUM("limits", max_inflight_frames, OPT_UINT, "256", 1, 100000,
        "frames per TCP connection awaiting their ack before reads pause"),
    NUM("limits", udp_recv_buffer, OPT_BYTES, "16MiB", 64 * KiB, 1 * GiB,
        "SO_RCVBUF asked for the UDP socket (the kernel may grant less; it is logged)"),
    NUM("limits", writer_queue_pings, OPT_UINT, "200000", 1000, 100000000,
        "decoded pings not yet answered (queued for the writer, or committed and awaiting "
        "their acks) above which UDP datagrams are dropped and TCP frames get RETRY_LATER"),
    NUM("limits", max_held_bytes, OPT_BYTES, "256MiB", 1 * MiB, 64 * GiB,
        "bytes held between the sockets and the writer (decoded batches with their jobs, "
        "rejected samples, acks not yet sent, TCP input buffers past 128 KiB each: at most "
        "half) above which UDP datagrams are dropped and TCP frames get RETRY_LATER or wait"),
    NUM("limits", max_group_pings, OPT_UINT, "50000", 1, 10000000,
        "pings the writer commits in one atomic write and one WAL sync"),
    NUM("limits", checkpoint_interval_ms, OPT_DURATION, "30s", 100, 3600 * SEC,
        "the state (installs, organizations, current days) is checkpointed at least this often "
        "while it changes; a crash replays the pings stored since"),
    NUM("limits", checkpoint_pings, OPT_UINT, "1000000", 1, 100000000,
        "or after this many pings, whichever comes first: bounds the replay after a crash"),
    NUM("limits", frame_timeout_ms, OPT_DURATION, "30s", 0, DAY,
        "close a TCP connection whose frame, once begun, is not complete this long "
        "(while the collector reads; 0: never)"),
    NUM("limits", rate_per_address, OPT_UINT, "1000", 0, 1000000000,
        "envelopes (UDP datagrams + TCP frames) per second per source address (IPv6: per /64); "
        "over it datagrams are dropped and TCP reads wait (0: no limit)"),
    NUM("limits", burst_per_address, OPT_UINT, "10000", 1, 1000000000,
        "envelopes a source address may send at once before rate_per_address applies"),
    NUM("limits", max_connections_per_address, OPT_UINT, "64", 0, 1000000,
        "open TCP connections per source address; further ones are closed at once (0: no limit)"),
    NUM("limits", address_table_size, OPT_UINT, "65536", 1024, 16777216,
        "source addresses tracked for the per-address limits (raised to 4 x max_connections); "
        "the least recently seen idle one is forgotten first"),
    ENUM("limits", limit_loopback, off_on, "off",
         "on: the per-address limits apply to loopback sources too (off: local senders and "
         "proxies are not limited)"),

    NUM("accounts", install_ttl_ms, OPT_DURATION, "14d", 60 * SEC, 3650 * DAY,
        "an install silent this long stops counting toward its organization"),
    NUM("accounts", score_half_life_ms, OPT_DURATION, "14d", 3600 * SEC, 3650 * DAY,
        "a signal's weight in the score halves every this long"),
    NUM("accounts", max_org_features, OPT_UINT, "256", 8, 10000,
        "distinct features (and editions) tallied per organization; past it only those the "
        "rules test are (the rest are counted: warmline_features_untallied_total)"),

    NUM("retention", retention_days, OPT_UINT, "400", 0, 36500,
        "raw pings received more than this many days ago are deleted (0: keep forever)"),
    NUM("retention", retention_check_ms, OPT_DURATION, "1h", 1 * SEC, 7 * DAY,
        "how often the collector deletes raw pings past retention_days"),

    STR("sinks", signal_file, "", "append every signal to this NDJSON file, fsynced (empty: off)"),
    STR("sinks", webhook_url, "", "POST every signal to this URL (empty: off)"),
    ENUM("sinks", webhook_format, webhook_formats, "json",
         "json: the signal as JSON; slack: a Slack-compatible {\"text\": ...} body"),
    NUM("sinks", webhook_timeout_ms, OPT_DURATION, "10s", 100, 600 * SEC,
        "one webhook attempt's timeout"),
    NUM("sinks", webhook_max_backoff_ms, OPT_DURATION, "5m", 100, DAY,
        "longest wait between webhook retries (backoff doubles from 500ms)"),

    STR("api", api_listen, "127.0.0.1:7811",
        "HTTP API HOST:PORT (empty: off; without tokens only loopback is allowed)"),
    STR("api", read_token_file, "", "file holding the bearer token of the query endpoints"),
    STR("api", admin_token_file, "",
        "file holding the bearer token of named accounts (it also reads)"),
    NUM("api", api_max_connections, OPT_UINT, "64", 1, 100000, "concurrent HTTP connections"),
    NUM("api", api_max_connections_per_address, OPT_UINT, "16", 0, 100000,
        "concurrent HTTP connections per client address; more are closed at once (0: no limit)"),
    NUM("api", api_max_body_bytes, OPT_BYTES, "4MiB", 1024, 256 * MiB, "largest request body"),
    NUM("api", api_timeout_ms, OPT_DURATION, "30s", 1 * SEC, 3600 * SEC,
        "close an HTTP connection that sent or read nothing this long"),
    NUM("api", api_max_networks_bytes, OPT_BYTES, "64MiB", 1 * KiB, 1 * GiB,
        "largest PUT /v1/networks body (a CSV of cidr,domain: a million prefixes is about "
        "40 MiB)"),

    STR("http", http_listen, "",
        "public HTTP ingest HOST:PORT: GET /security, GET /bulletins/<id>, POST /v1/batch "
        "(empty: off; port 0: ephemeral)"),
    STR("http", bulletins_file, "",
        "JSON list of security bulletins [{\"id\",\"applies_to_version\",\"body_file\"}] "
        "(empty: none, every check is answered [])"),
    NUM("http", http_max_connections, OPT_UINT, "256", 1, 100000,
        "concurrent HTTP ingest connections; more are refused"),
    NUM("http", http_max_connections_per_address, OPT_UINT, "8", 0, 100000,
        "concurrent HTTP ingest connections per source address (0: no limit)"),
    NUM("http", http_rate_per_address, OPT_UINT, "5", 0, 1000000,
        "HTTP ingest requests per second per source address (IPv6: per /64); over it 429 "
        "(0: no limit; loopback only with limit_loopback = on)"),
    NUM("http", http_burst_per_address, OPT_UINT, "50", 1, 1000000,
        "HTTP ingest requests a source address may send at once"),
    NUM("http", http_rate_total, OPT_UINT, "500", 0, 10000000,
        "HTTP ingest requests per second from all addresses together, loopback included; over "
        "it 429 (0: no limit)"),
    NUM("http", http_burst_total, OPT_UINT, "5000", 1, 100000000,
        "HTTP ingest requests all addresses together may send at once"),
    NUM("http", http_address_table_size, OPT_UINT, "65536", 1024, 16777216,
        "source addresses tracked for http_rate_per_address (a fixed table)"),
    NUM("http", http_max_header_bytes, OPT_BYTES, "16KiB", 4 * KiB, 1 * MiB,
        "request line and headers of one HTTP ingest request; more is refused"),
    NUM("http", http_max_query_bytes, OPT_BYTES, "2KiB", 256, 64 * KiB,
        "query string of one HTTP ingest request; more is 414"),
    NUM("http", http_timeout_ms, OPT_DURATION, "10s", 1 * SEC, 3600 * SEC,
        "close an HTTP ingest connection that sent or read nothing this long"),
    NUM("http", http_request_deadline_ms, OPT_DURATION, "15s", 100, 3600 * SEC,
        "close an HTTP ingest connection whose request is not answered this long after it "
        "began (a byte-by-byte sender never trips http_timeout_ms)"),
    NUM("http", http_max_inflight, OPT_UINT, "4096", 1, 10000000,
        "security checks and Rudder batches with the writer at once; past it a check is "
        "answered but not ingested (counted) and a batch is answered 503"),
    NUM("http", http_max_body_bytes, OPT_BYTES, "1MiB", 4 * KiB, 64 * MiB,
        "request body as sent (gzip or not); a longer one is 413"),
    NUM("http", http_max_inflated_bytes, OPT_BYTES, "2MiB", 4 * KiB, 256 * MiB,
        "a gzip request body once inflated; inflation stops at this cap and the request is 413"),
    NUM("http", http_max_json_depth, OPT_UINT, "32", 4, 1000,
        "nesting of arrays and objects in a JSON body; deeper is 400, checked before parsing"),
    NUM("http", http_max_json_values, OPT_UINT, "100000", 100, 10000000,
        "values (strings, numbers, arrays, objects...) in a JSON body; more is 400, counted "
        "before parsing"),
    NUM("http", rudder_max_messages, OPT_UINT, "2000", 1, 100000,
        "messages in one POST /v1/batch; more is 400"),
    STR("http", rudder_write_keys, "",
        "comma-separated RudderStack write keys accepted by POST /v1/batch (HTTP Basic user); "
        "empty: any key"),
    NUM("http", msgid_ttl_ms, OPT_DURATION, "48h", 24 * 3600 * SEC, 365 * DAY,
        "a Rudder messageId is remembered this long: a resend within it changes nothing"),
    NUM("http", msgid_max_bytes, OPT_BYTES, "64MiB", 1 * MiB, 64 * GiB,
        "bytes the messageId store may hold on disk; past it the oldest go first (counted)"),
    STR("http", http_tls_cert_file, "",
        "PEM certificate (chain) for HTTPS on http_listen (with http_tls_key_file; empty: "
        "plain HTTP)"),
    STR("http", http_tls_key_file, "", "PEM private key for http_tls_cert_file"),
    STR("http", http_trusted_proxies, "",
        "comma-separated CIDRs of reverse proxies whose X-Forwarded-For names the client "
        "(empty: nobody's is believed)"),

    NUM("quarantine", quarantine_max_records, OPT_UINT, "10000", 0, 100000000,
        "rejected samples kept (oldest deleted first; 0: keep none)"),
    NUM("quarantine", quarantine_sample_bytes, OPT_BYTES, "4KiB", 16, 1 * MiB,
        "bytes of each rejected input kept"),
    NUM("quarantine", quarantine_per_second, OPT_UINT, "100", 0, 1000000,
        "rejected samples written per second at most (all rejections are still counted)"),
};

#define N_OPTIONS (sizeof options / sizeof options[0])

static int parse_uint_unit(const char *value, enum opt_type type, uint64_t *out)
{
    char *end;
    errno = 0;
    if (value[0] == '-' || value[0] == '\0')
        return -EINVAL;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno != 0 || end == value)
        return -EINVAL;
    while (*end == ' ')
        end++;
    uint64_t mult = 1;
    if (*end != '\0') {
        static const struct { const char *s; enum opt_type t; uint64_t m; } units[] = {
            {"B", OPT_BYTES, 1}, {"KiB", OPT_BYTES, KiB}, {"K", OPT_BYTES, KiB},
            {"MiB", OPT_BYTES, MiB}, {"M", OPT_BYTES, MiB}, {"GiB", OPT_BYTES, GiB},
            {"G", OPT_BYTES, GiB}, {"ms", OPT_DURATION, 1}, {"s", OPT_DURATION, SEC},
            {"m", OPT_DURATION, 60 * SEC}, {"h", OPT_DURATION, 3600 * SEC},
            {"d", OPT_DURATION, DAY},
        };
        size_t i;
        for (i = 0; i < sizeof units / sizeof units[0]; i++) {
            if (units[i].t == type && strcmp(end, units[i].s) == 0)
                break;
        }
        if (i == sizeof units / sizeof units[0])
            return -EINVAL;
        mult = units[i].m;
    } else if (type == OPT_DURATION) {
        mult = SEC; /* a bare number of a duration is seconds */
    }
    if (mult != 0 && v > UINT64_MAX / mult)
        return -ERANGE;
    *out = v * mult;
    return 0;
}

static const char *type_expect(enum opt_type type)
{
    switch (type) {
    case OPT_BYTES: return "a size such as 4096, 64KiB or 8MiB";
    case OPT_DURATION: return "a duration such as 500ms, 60s, 5m, 12h or 14d (bare numbers are seconds)";
    default: return "a whole number";
    }
}

static int set_opt(struct wl_config *cfg, const struct opt *o, const char *value, char *err,
                   size_t errlen)
{
    char *base = (char *)cfg + o->offset;

    switch (o->type) {
    case OPT_STR:
        if (strlen(value) >= o->size) {
            snprintf(err, errlen, "%s: value longer than %zu bytes", o->name, o->size - 1);
            return -1;
        }
        strcpy(base, value);
        return 0;
    case OPT_ENUM:
        for (int i = 0; o->enums[i] != NULL; i++) {
            if (strcasecmp(value, o->enums[i]) == 0) {
                *(int *)base = i;
                return 0;
            }
        }
        {
            char names[128] = "";
            for (int i = 0; o->enums[i] != NULL; i++) {
                if (i > 0)
                    strncat(names, " | ", sizeof names - strlen(names) - 1);
                strncat(names, o->enums[i], sizeof names - strlen(names) - 1);
            }
            snprintf(err, errlen, "%s: '%s' is not one of %s", o->name, value, names);
        }
        return -1;
    default: {
        uint64_t v;
        if (parse_uint_unit(value, o->type, &v) != 0) {
            snprintf(err, errlen, "%s: '%s' is not %s", o->name, value, type_expect(o->type));
            return -1;
        }
        if (v < o->min || v > o->max) {
            snprintf(err, errlen, "%s: %s is out of range [%" PRIu64 ", %" PRIu64 "]", o->name,
                     value, o->min, o->max);
            return -1;
        }
        *(uint64_t *)base = v;
        return 0;
    }
    }
}

static const struct opt *find_opt(const char *section, const char *name)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (strcmp(options[i].name, name) == 0 &&
            (section == NULL || strcmp(options[i].section, section) == 0))
            return &options[i];
    }
    return NULL;
}

void wl_config_free(struct wl_config *cfg)
{
    wl_ruleset_clear(&cfg->rules);
}

void wl_config_defaults(struct wl_config *cfg)
{
    char err[256];
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (set_opt(cfg, &options[i], options[i].def, err, sizeof err) != 0) {
            /* A bad default is a programming error caught by the unit tests. */
            fprintf(stderr, "warmline: bad default: %s\n", err);
            abort();
        }
    }
}

struct load_ctx {
    struct wl_config *cfg;
    const char *path;
    FILE *file;
    int line;      /* lines read so far: the line the handler is called for */
    int section_no;  /* section headers read so far */
    int indented;    /* the line read last starts with white space (a continuation) */
    int long_line; /* first line longer than inih's buffer, or 0 */
    int bad_line;  /* line of the first error the handler saw, or 0 */
    char why[512];
    int failed;
    /* the [rule "name"] section being read */
    int in_rule;
    int rule_section_no;
    char rule_name[WL_RULE_NAME_MAX + 8];
    int rule_line;                   /* its first key's line */
    char *rule_vals[5];              /* when weight cooldown hysteresis description */
    int rule_val_lines[5];
};

static const char *const rule_keys[5] = {"when", "weight", "cooldown", "hysteresis",
                                         "description"};

static void rule_reset(struct load_ctx *ctx)
{
    for (int i = 0; i < 5; i++) {
        free(ctx->rule_vals[i]);
        ctx->rule_vals[i] = NULL;
        ctx->rule_val_lines[i] = 0;
    }
    ctx->in_rule = 0;
    ctx->rule_section_no = 0;
}

/* Compiles the rule read so far into the ruleset; 0 or -1 with ctx->why. */
static int rule_finish(struct load_ctx *ctx)
{
    char why[400];
    if (!ctx->in_rule)
        return 0;
    int rc = wl_ruleset_add(&ctx->cfg->rules, ctx->rule_name, ctx->rule_vals[0],
                            ctx->rule_vals[1], ctx->rule_vals[2], ctx->rule_vals[3],
                            ctx->rule_vals[4], why, sizeof why);
    if (rc != 0) {
        /* Point at the line of the value the reason names, if it names one. */
        ctx->bad_line = ctx->rule_line;
        for (int i = 0; i < 5; i++) {
            size_t kl = strlen(rule_keys[i]);
            if (strncmp(why, rule_keys[i], kl) == 0 && why[kl] == ':' && ctx->rule_val_lines[i])
                ctx->bad_line = ctx->rule_val_lines[i];
        }
        snprintf(ctx->why, sizeof ctx->why, "rule \"%s\": %s", ctx->rule_name, why);
        ctx->failed = 1;
    }
    rule_reset(ctx);
    return rc;
}

/* One key of a [rule "name"] section. Returns 1, or 0 on an error. */
static int rule_line(struct load_ctx *ctx, const char *section, const char *name,
                     const char *value)
{
    if (!ctx->in_rule || ctx->section_no != ctx->rule_section_no) {
        if (rule_finish(ctx) != 0)
            return 0;
        const char *q = section + 4;
        size_t len;
        while (*q == ' ')
            q++;
        len = strlen(q);
        if (len < 3 || q[0] != '"' || q[len - 1] != '"' || len - 2 >= sizeof ctx->rule_name) {
            snprintf(ctx->why, sizeof ctx->why,
                     "section [%s]: a rule section is written [rule \"name\"]", section);
            ctx->failed = 1;
            return 0;
        }
        memcpy(ctx->rule_name, q + 1, len - 2);
        ctx->rule_name[len - 2] = '\0';
        ctx->rule_section_no = ctx->section_no;
        ctx->in_rule = 1;
        ctx->rule_line = ctx->line;
    }
    for (int i = 0; i < 5; i++) {
        if (strcmp(name, rule_keys[i]) != 0)
            continue;
        if (ctx->rule_vals[i] != NULL && i == 0 && ctx->indented) { /* when, continued */
            size_t a = strlen(ctx->rule_vals[0]), b = strlen(value);
            char *joined = realloc(ctx->rule_vals[0], a + b + 2);
            if (joined == NULL)
                return 0;
            joined[a] = ' ';
            memcpy(joined + a + 1, value, b + 1);
            ctx->rule_vals[0] = joined;
            return 1;
        }
        if (ctx->rule_vals[i] != NULL) {
            snprintf(ctx->why, sizeof ctx->why, "rule \"%s\": %s given twice", ctx->rule_name,
                     name);
            ctx->failed = 1;
            return 0;
        }
        ctx->rule_vals[i] = strdup(value);
        ctx->rule_val_lines[i] = ctx->line;
        return 1;
    }
    snprintf(ctx->why, sizeof ctx->why,
             "rule \"%s\": unknown key '%s' (expected when, weight, cooldown, hysteresis or "
             "description)", ctx->rule_name, name);
    ctx->failed = 1;
    return 0;
}

/* Reads one line for inih and counts lines, so that errors name theirs. A
 * line longer than inih's fixed buffer would be split silently: flag it. */
static char *read_line(char *str, int num, void *stream)
{
    struct load_ctx *ctx = stream;
    if (fgets(str, num, ctx->file) == NULL)
        return NULL;
    size_t n = strlen(str);
    const char *p = str;
    while (*p == ' ' || *p == '\t')
        p++;
    ctx->indented = p != str;
    if (*p == '[')
        ctx->section_no++;
    if (n > 0 && str[n - 1] == '\n') {
        ctx->line++;
    } else if (!feof(ctx->file)) {
        if (ctx->long_line == 0)
            ctx->long_line = ctx->line + 1;
        int c; /* skip the rest of the line; it is an error anyway */
        while ((c = fgetc(ctx->file)) != EOF && c != '\n')
            ;
        ctx->line++;
    } else {
        ctx->line++;
    }
    return str;
}

/* Returns 0 on an error so that ini_parse_file reports the line. */
static int on_ini_line(void *user, const char *section, const char *name, const char *value)
{
    struct load_ctx *ctx = user;
    if (ctx->failed)
        return 1; /* only the first error is reported */
    ctx->bad_line = ctx->line;
    if (strncmp(section, "rule ", 5) == 0 || strcmp(section, "rule") == 0)
        return rule_line(ctx, section, name, value);
    if (ctx->in_rule && rule_finish(ctx) != 0)
        return 0;
    const struct opt *o = find_opt(section, name);
    if (o == NULL) {
        const struct opt *elsewhere = find_opt(NULL, name);
        if (elsewhere != NULL && section[0] == '\0')
            snprintf(ctx->why, sizeof ctx->why,
                     "option '%s' outside any section (it belongs in section [%s])", name,
                     elsewhere->section);
        else if (elsewhere != NULL)
            snprintf(ctx->why, sizeof ctx->why, "option '%s' belongs in section [%s], not [%s]",
                     name, elsewhere->section, section);
        else if (section[0] == '\0')
            snprintf(ctx->why, sizeof ctx->why,
                     "option '%s' outside any section (expected [collector], [limits] or "
                     "[quarantine])", name);
        else
            snprintf(ctx->why, sizeof ctx->why, "unknown option '%s' in section [%s]", name,
                     section);
        ctx->failed = 1;
        return 0;
    }
    if (set_opt(ctx->cfg, o, value, ctx->why, sizeof ctx->why) != 0) {
        ctx->failed = 1;
        return 0;
    }
    ctx->bad_line = 0;
    return 1;
}

int wl_config_load(struct wl_config *cfg, const char *path, char *err, size_t errlen)
{
    struct load_ctx ctx = {.cfg = cfg, .path = path};

    ctx.file = fopen(path, "r");
    if (ctx.file == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    int rc = ini_parse_stream(read_line, &ctx, on_ini_line, &ctx);
    fclose(ctx.file);
    if (!ctx.failed)
        rule_finish(&ctx);
    rule_reset(&ctx);
    /* inih returns the line of the first error of any kind; ours may be later. */
    int first = rc > 0 ? rc : 0;
    if (ctx.long_line > 0 && (first == 0 || ctx.long_line <= first)) {
        snprintf(err, errlen, "%s:%d: line longer than %d characters", path, ctx.long_line,
                 INI_MAX_LINE - 2);
        return -1;
    }
    if (ctx.failed && (first == 0 || ctx.bad_line <= first)) {
        snprintf(err, errlen, "%s:%d: %s", path, ctx.bad_line, ctx.why);
        return -1;
    }
    if (rc > 0) {
        snprintf(err, errlen, "%s:%d: syntax error (expected [section] or name = value)", path,
                 rc);
        return -1;
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s: cannot parse (error %d)", path, rc);
        return -1;
    }
    return 0;
}

int wl_config_set(struct wl_config *cfg, const char *name, const char *value, char *err,
                  size_t errlen)
{
    char section[64] = "";
    const char *dot = strchr(name, '.');
    const struct opt *o;

    if (dot != NULL && (size_t)(dot - name) < sizeof section) {
        memcpy(section, name, (size_t)(dot - name));
        section[dot - name] = '\0';
        o = find_opt(section, dot + 1);
    } else {
        o = find_opt(NULL, name);
    }
    if (o == NULL) {
        snprintf(err, errlen, "unknown option '%s'", name);
        return -1;
    }
    return set_opt(cfg, o, value, err, errlen);
}

int wl_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -EINVAL;
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return -EINVAL;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen)
        return -EINVAL;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || p < 0 || p > 65535)
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

int wl_parse_listen(const char *name, const char *value, struct sockaddr_storage *ss, char *host,
                    size_t hostlen, char *err, size_t errlen)
{
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    int port;

    memset(ss, 0, sizeof *ss);
    if (wl_parse_hostport(value, host, hostlen, &port) == 0) {
        if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
            in->sin_family = AF_INET;
            in->sin_port = htons((uint16_t)port);
            return 0;
        }
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
            in6->sin6_family = AF_INET6;
            in6->sin6_port = htons((uint16_t)port);
            return 0;
        }
    }
    snprintf(err, errlen, "%s: '%s' is not a numeric HOST:PORT (e.g. 0.0.0.0:7810 or [::1]:0)",
             name, value);
    return -EINVAL;
}

int wl_config_validate(const struct wl_config *cfg, char *err, size_t errlen)
{
    char host[256];

    if (cfg->data_dir[0] == '\0') {
        snprintf(err, errlen, "data_dir: must not be empty");
        return -1;
    }
    if (cfg->udp_listen[0] == '\0' && cfg->tcp_listen[0] == '\0') {
        snprintf(err, errlen, "udp_listen and tcp_listen are both empty: nothing to listen on");
        return -1;
    }
    const char *listens[4][2] = {{"udp_listen", cfg->udp_listen},
                                 {"tcp_listen", cfg->tcp_listen},
                                 {"api_listen", cfg->api_listen},
                                 {"http_listen", cfg->http_listen}};
    for (int i = 0; i < 4; i++) {
        struct sockaddr_storage ss;
        if (listens[i][1][0] != '\0' &&
            wl_parse_listen(listens[i][0], listens[i][1], &ss, host, sizeof host, err, errlen) != 0)
            return -1;
    }
    if (cfg->max_inflated_bytes < cfg->max_frame_bytes) {
        /* Uncompressed payloads are bounded by the frame; keep the two coherent. */
        snprintf(err, errlen,
                 "max_inflated_bytes (%" PRIu64 ") must be at least max_frame_bytes (%" PRIu64 ")",
                 cfg->max_inflated_bytes, cfg->max_frame_bytes);
        return -1;
    }
    if ((cfg->http_tls_cert_file[0] == '\0') != (cfg->http_tls_key_file[0] == '\0')) {
        snprintf(err, errlen, "http_tls_cert_file and http_tls_key_file go together: set both "
                              "(HTTPS) or neither (plain HTTP)");
        return -1;
    }
    if (cfg->http_max_inflated_bytes < cfg->http_max_body_bytes) {
        snprintf(err, errlen,
                 "http_max_inflated_bytes (%" PRIu64 ") must be at least http_max_body_bytes "
                 "(%" PRIu64 ")",
                 cfg->http_max_inflated_bytes, cfg->http_max_body_bytes);
        return -1;
    }
    return 0;
}

/* A duration as the largest whole unit: "14d", "90s", "500ms". */
static void format_duration(uint64_t v, char *buf, size_t len)
{
    if (v != 0 && v % DAY == 0)
        snprintf(buf, len, "%" PRIu64 "d", v / DAY);
    else if (v != 0 && v % (3600 * SEC) == 0)
        snprintf(buf, len, "%" PRIu64 "h", v / (3600 * SEC));
    else if (v % SEC == 0)
        snprintf(buf, len, "%" PRIu64 "s", v / SEC);
    else
        snprintf(buf, len, "%" PRIu64 "ms", v);
}

static void format_value(const struct wl_config *cfg, const struct opt *o, char *buf, size_t len)
{
    const char *base = (const char *)cfg + o->offset;
    switch (o->type) {
    case OPT_STR: snprintf(buf, len, "%s", base); break;
    case OPT_ENUM: snprintf(buf, len, "%s", o->enums[*(const int *)base]); break;
    case OPT_DURATION: format_duration(*(const uint64_t *)base, buf, len); break;
    default: snprintf(buf, len, "%" PRIu64, *(const uint64_t *)base); break;
    }
}

void wl_config_print(const struct wl_config *cfg, FILE *out)
{
    const char *section = "";
    char value[1100];
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (strcmp(section, options[i].section) != 0) {
            section = options[i].section;
            fprintf(out, "%s[%s]\n", i ? "\n" : "", section);
        }
        format_value(cfg, &options[i], value, sizeof value);
        fprintf(out, "%s = %s\n", options[i].name, value);
    }
    for (size_t i = 0; i < cfg->rules.n; i++) {
        const struct wl_rule *r = &cfg->rules.rules[i];
        format_duration(r->cooldown_ms, value, sizeof value);
        fprintf(out, "\n[rule \"%s\"]\nwhen = %s\nweight = %g\ncooldown = %s\n"
                     "hysteresis = %g%%\ndescription = %s\n",
                r->name, r->when_text, r->weight, value, r->hysteresis * 100, r->description);
    }
}

void wl_config_print_help(FILE *out)
{
    const char *section = "";
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (strcmp(section, options[i].section) != 0) {
            section = options[i].section;
            fprintf(out, "  [%s]\n", section);
        }
        fprintf(out, "    %-24s default %-14s %s\n", options[i].name,
                options[i].def[0] ? options[i].def : "(empty)", options[i].help);
    }
}
