#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/sock_diag.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "rules.h"
#include "storage/store.h"

#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif

struct wl_metrics wl_metrics;

#define NAME_OF(name, help) #name,
#define HELP_OF(name, help) help,
static const char *const counter_names[WL_N_COUNTERS] = {WL_COUNTERS(NAME_OF)};
static const char *const counter_help[WL_N_COUNTERS] = {WL_COUNTERS(HELP_OF)};
static const char *const tcounter_names[WL_N_TCOUNTERS] = {WL_TRANSPORT_COUNTERS(NAME_OF)};
static const char *const tcounter_help[WL_N_TCOUNTERS] = {WL_TRANSPORT_COUNTERS(HELP_OF)};
static const char *const gauge_names[WL_N_GAUGES] = {WL_GAUGES(NAME_OF)};
static const char *const gauge_help[WL_N_GAUGES] = {WL_GAUGES(HELP_OF)};
#undef NAME_OF
#undef HELP_OF

static const char *const transport_names[WL_N_TRANSPORTS] = {"udp", "tcp", "import", "http",
                                                              "other"};
static const char *const sink_names[WL_N_SINKS] = {"file", "webhook"};

/* ---- what the hot paths do not touch ---- */

/* Fixed buckets: bucket[i] counts observations in (le[i-1], le[i]], the
 * last one those above every bound (+Inf). Values are integers in units;
 * exported as value / per_unit. The count is the sum of the buckets, so a
 * render is consistent with itself while observations land. */
#define HIST_MAX_BUCKETS 16

struct histogram {
    const char *name, *help;
    const uint64_t *le;
    size_t n_le;
    uint64_t per_unit;
    _Atomic uint64_t bucket[HIST_MAX_BUCKETS];
    _Atomic uint64_t sum;
};

static const uint64_t group_pings_le[] = {1, 10, 100, 1000, 5000, 10000, 50000};
static const uint64_t commit_ns_le[] = {100000,   500000,   1000000,   2500000,  5000000,
                                        10000000, 25000000, 50000000,  100000000, 250000000,
                                        500000000, 1000000000};

_Static_assert(sizeof commit_ns_le / sizeof commit_ns_le[0] < HIST_MAX_BUCKETS &&
                   sizeof group_pings_le / sizeof group_pings_le[0] < HIST_MAX_BUCKETS,
               "a histogram has more bounds than buckets");

static struct histogram group_pings = {
    .name = "group_commit_pings",
    .help = "Pings per committed group.",
    .le = group_pings_le,
    .n_le = sizeof group_pings_le / sizeof group_pings_le[0],
    .per_unit = 1,
};

static struct histogram commit_seconds = {
    .name = "group_commit_seconds",
    .help = "From one group's atomic write to its durability (the WAL fsync included, "
            "the syncer's with durability = sync): what its acks wait.",
    .le = commit_ns_le,
    .n_le = sizeof commit_ns_le / sizeof commit_ns_le[0],
    .per_unit = 1000000000,
};

static _Alignas(64) _Atomic uint64_t signals_fired[WL_RULES_MAX];
static char rule_names[WL_RULES_MAX][WL_RULE_NAME_MAX];
static _Atomic size_t n_rules;

static _Atomic uint64_t sink_delivered[WL_N_SINKS], sink_failed[WL_N_SINKS];

static _Atomic int udp_fd = -1;
static _Atomic uint64_t udp_drops; /* the last count read from the socket */

enum wl_transport wl_transport_of(const char *name)
{
    if (name != NULL)
        for (int t = 0; t < WL_TRANSPORT_OTHER; t++)
            if (strcmp(name, transport_names[t]) == 0)
                return (enum wl_transport)t;
    return WL_TRANSPORT_OTHER;
}

static void observe(struct histogram *h, uint64_t v)
{
    size_t i = 0;
    while (i < h->n_le && v > h->le[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

void wl_observe_group_pings(uint64_t pings) { observe(&group_pings, pings); }

void wl_observe_commit_ns(uint64_t ns) { observe(&commit_seconds, ns); }

void wl_metrics_set_rules(const struct wl_ruleset *rules)
{
    size_t n = rules->n < WL_RULES_MAX ? rules->n : WL_RULES_MAX;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rule_names[i], rules->rules[i].name) != 0) {
            snprintf(rule_names[i], sizeof rule_names[i], "%s", rules->rules[i].name);
            atomic_store_explicit(&signals_fired[i], 0, memory_order_relaxed);
        }
    }
    atomic_store_explicit(&n_rules, n, memory_order_release);
}

void wl_count_signals(size_t rule, uint64_t n)
{
    if (rule < WL_RULES_MAX)
        atomic_fetch_add_explicit(&signals_fired[rule], n, memory_order_relaxed);
}

void wl_count_sink_delivered(enum wl_sink_kind sink, uint64_t n)
{
    atomic_fetch_add_explicit(&sink_delivered[sink], n, memory_order_relaxed);
}

void wl_count_sink_failure(enum wl_sink_kind sink)
{
    atomic_fetch_add_explicit(&sink_failed[sink], 1, memory_order_relaxed);
}

/* The kernel's drop count of the UDP socket (sk_drops, what SO_RXQ_OVFL
 * would report per datagram), read with one getsockopt; the last count
 * once the socket is closed. */
static uint64_t udp_receive_queue_drops(void)
{
    int fd = atomic_load_explicit(&udp_fd, memory_order_relaxed);
    uint32_t mem[SK_MEMINFO_VARS];
    socklen_t len = sizeof mem;

    if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) == 0 &&
        len > SK_MEMINFO_DROPS * sizeof mem[0]) {
        uint64_t v = mem[SK_MEMINFO_DROPS], old = atomic_load(&udp_drops);
        while (v > old && !atomic_compare_exchange_weak(&udp_drops, &old, v))
            ;
    }
    return atomic_load_explicit(&udp_drops, memory_order_relaxed);
}

void wl_metrics_set_udp_fd(int fd)
{
    if (fd < 0)
        udp_receive_queue_drops(); /* keep the last count */
    atomic_store_explicit(&udp_fd, fd, memory_order_relaxed);
}

static uint64_t load(_Atomic uint64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

/* ---- the stats line ---- */

void wl_metrics_log(const char *event)
{
    char line[4096];
    size_t n = 0;

    for (int i = 0; i < WL_N_COUNTERS && n < sizeof line; i++) {
        n += (size_t)snprintf(line + n, sizeof line - n, "%s%s=%" PRIu64, i ? " " : "",
                              counter_names[i], wl_counter_get((enum wl_counter)i));
    }
    for (int r = 0; r < WL_N_REASONS && n < sizeof line; r++) {
        uint64_t v = 0;
        for (int t = 0; t < WL_N_TRANSPORTS; t++)
            v += load(&wl_metrics.envelope_rejected[t][r]) + load(&wl_metrics.ping_rejected[t][r]);
        if (v != 0)
            n += (size_t)snprintf(line + n, sizeof line - n, " rejected_%s=%" PRIu64,
                                  wl_reason_name((enum wl_reason)r), v);
    }
    if (n < sizeof line)
        n += (size_t)snprintf(line + n, sizeof line - n,
                              " udp_rate_limited=%" PRIu64 " tcp_rate_limited=%" PRIu64,
                              load(&wl_metrics.by_transport[WL_TRANSPORT_UDP][WL_T_rate_limited]),
                              load(&wl_metrics.by_transport[WL_TRANSPORT_TCP][WL_T_rate_limited]));
    if (n < sizeof line)
        snprintf(line + n, sizeof line - n, " udp_receive_queue_drops=%" PRIu64,
                 udp_receive_queue_drops());
    wl_info(event, "%s", line);
}

/* ---- the exposition format ---- */

struct out {
    char *buf;
    size_t len, cap;
    int failed;
};

static int reserve(struct out *o, size_t more)
{
    if (o->failed)
        return -1;
    if (o->len + more + 1 <= o->cap)
        return 0;
    size_t cap = o->cap ? o->cap : 16384;
    while (cap < o->len + more + 1)
        cap *= 2;
    char *b = realloc(o->buf, cap);
    if (b == NULL) {
        o->failed = 1;
        return -1;
    }
    o->buf = b;
    o->cap = cap;
    return 0;
}

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    char small[256];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(o, (size_t)n) != 0) {
        o->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        memcpy(o->buf + o->len, small, (size_t)n + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(o->buf + o->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    o->len += (size_t)n;
}

/* A label value: backslash, double quote and newline escaped. In HELP
 * text (help = 1) a double quote stays as it is. */
static void put_escaped(struct out *o, const char *s, int help)
{
    if (reserve(o, 2 * strlen(s)) != 0)
        return;
    for (; *s != '\0'; s++) {
        if (*s == '\\' || (*s == '"' && !help)) {
            o->buf[o->len++] = '\\';
            o->buf[o->len++] = *s;
        } else if (*s == '\n') {
            o->buf[o->len++] = '\\';
            o->buf[o->len++] = 'n';
        } else {
            o->buf[o->len++] = *s;
        }
    }
    o->buf[o->len] = '\0';
}

static void family(struct out *o, const char *name, const char *suffix, const char *type,
                   const char *help)
{
    put(o, "# HELP warmline_%s%s ", name, suffix);
    put_escaped(o, help, 1);
    put(o, "\n# TYPE warmline_%s%s %s\n", name, suffix, type);
}

static void sample_label(struct out *o, const char *name, const char *label, const char *value,
                         uint64_t v)
{
    put(o, "warmline_%s{%s=\"", name, label);
    put_escaped(o, value, 0);
    put(o, "\"} %" PRIu64 "\n", v);
}

/* v / per_unit as an exact decimal without trailing zeros ("0.0025", "1"). */
static void fmt_decimal(uint64_t v, uint64_t per_unit, char *out, size_t len)
{
    int n = snprintf(out, len, "%" PRIu64, v / per_unit);
    uint64_t frac = v % per_unit;
    if (frac == 0 || n < 0 || (size_t)n >= len)
        return;
    out[n++] = '.';
    for (uint64_t d = per_unit / 10; d > 0 && frac > 0 && (size_t)n + 1 < len; d /= 10) {
        out[n++] = (char)('0' + frac / d);
        frac %= d;
    }
    out[n] = '\0';
}

static void put_histogram(struct out *o, struct histogram *h)
{
    uint64_t counts[HIST_MAX_BUCKETS], cum = 0;
    char le[32], sum[32];

    for (size_t i = 0; i <= h->n_le; i++)
        counts[i] = load(&h->bucket[i]);
    fmt_decimal(load(&h->sum), h->per_unit, sum, sizeof sum);
    family(o, h->name, "", "histogram", h->help);
    for (size_t i = 0; i <= h->n_le; i++) {
        cum += counts[i];
        if (i < h->n_le)
            fmt_decimal(h->le[i], h->per_unit, le, sizeof le);
        put(o, "warmline_%s_bucket{le=\"%s\"} %" PRIu64 "\n", h->name,
            i < h->n_le ? le : "+Inf", cum);
    }
    put(o, "warmline_%s_sum %s\nwarmline_%s_count %" PRIu64 "\n", h->name, sum, h->name, cum);
}

/* Reasons are listed envelope first, pings from INSTALL_ID_EMPTY (reasons.h). */
static int is_ping_reason(int r) { return r >= WL_REJECT_INSTALL_ID_EMPTY; }

/* The series shown even at zero, so that rates start from the first
 * scrape; any other one is shown once it is non-zero. */
static int expected_envelope_reason(int t, int r)
{
    if (is_ping_reason(r) || (t != WL_TRANSPORT_UDP && t != WL_TRANSPORT_TCP))
        return 0;
    if (r == WL_REJECT_DATAGRAM_TOO_LARGE)
        return t == WL_TRANSPORT_UDP;
    if (r == WL_REJECT_FRAME_TOO_LARGE || r == WL_REJECT_FRAME_BAD_VARINT)
        return t == WL_TRANSPORT_TCP;
    return 1;
}

static int expected_ping_series(int t)
{
    return t != WL_TRANSPORT_OTHER;
}

static void put_rejected(struct out *o, const char *name, const char *help,
                         _Atomic uint64_t (*by)[WL_N_REASONS], int pings)
{
    family(o, name, "_total", "counter", help);
    for (int t = 0; t < WL_N_TRANSPORTS; t++) {
        for (int r = 0; r < WL_N_REASONS; r++) {
            uint64_t v = load(&by[t][r]);
            int expected = pings ? expected_ping_series(t) && is_ping_reason(r)
                                 : expected_envelope_reason(t, r);
            if (v == 0 && !expected)
                continue;
            put(o, "warmline_%s_total{transport=\"%s\",reason=\"%s\"} %" PRIu64 "\n", name,
                transport_names[t], wl_reason_name((enum wl_reason)r), v);
        }
    }
}

static void put_by_transport(struct out *o, int c)
{
    char name[64];
    int pings = strncmp(tcounter_names[c], "pings_", 6) == 0;

    snprintf(name, sizeof name, "%s_total", tcounter_names[c]);
    family(o, tcounter_names[c], "_total", "counter", tcounter_help[c]);
    for (int t = 0; t < WL_N_TRANSPORTS; t++) {
        uint64_t v = load(&wl_metrics.by_transport[t][c]);
        int expected = t == WL_TRANSPORT_UDP || t == WL_TRANSPORT_TCP ||
                       (t == WL_TRANSPORT_IMPORT && pings);
        if (v != 0 || expected)
            sample_label(o, name, "transport", transport_names[t], v);
    }
}

/* Unlabelled counters whose name a family by transport already has. */
static int has_transport_family(const char *name)
{
    if (strcmp(name, "pings_rejected") == 0)
        return 1;
    for (int c = 0; c < WL_N_TCOUNTERS; c++)
        if (strcmp(name, tcounter_names[c]) == 0)
            return 1;
    return 0;
}

char *wl_metrics_prometheus(struct wl_store *store, size_t *len)
{
    struct out o = {0};

    for (int c = 0; c < WL_N_TCOUNTERS; c++) {
        put_by_transport(&o, c);
        if (c == WL_T_pings_duplicate)
            put_rejected(&o, "pings_rejected", "Pings that failed validation, by reason.",
                         wl_metrics.ping_rejected, 1);
        if (c == WL_T_envelopes_received)
            put_rejected(&o, "envelopes_rejected",
                         "Envelopes rejected whole, and broken frames, by reason.",
                         wl_metrics.envelope_rejected, 0);
    }
    for (int i = 0; i < WL_N_COUNTERS; i++) {
        if (has_transport_family(counter_names[i]))
            continue;
        family(&o, counter_names[i], "_total", "counter", counter_help[i]);
        put(&o, "warmline_%s_total %" PRIu64 "\n", counter_names[i],
            wl_counter_get((enum wl_counter)i));
    }
    family(&o, "udp_receive_queue_drops", "_total", "counter",
           "Datagrams the kernel dropped at the UDP socket, mostly for a full receive queue.");
    put(&o, "warmline_udp_receive_queue_drops_total %" PRIu64 "\n", udp_receive_queue_drops());

    for (int g = 0; g < WL_N_GAUGES; g++) {
        family(&o, gauge_names[g], "", "gauge", gauge_help[g]);
        put(&o, "warmline_%s %" PRIu64 "\n", gauge_names[g], load(&wl_metrics.gauge[g]));
    }
    if (store != NULL) {
        family(&o, "database_bytes", "", "gauge",
               "Bytes of the database on disk (approximate).");
        put(&o, "warmline_database_bytes %" PRIu64 "\n", wl_store_disk_bytes(store));
    }

    put_histogram(&o, &group_pings);
    put_histogram(&o, &commit_seconds);

    family(&o, "signals_fired", "_total", "counter", "Signals committed, by rule.");
    size_t n = atomic_load_explicit(&n_rules, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        sample_label(&o, "signals_fired_total", "rule", rule_names[i], load(&signals_fired[i]));

    family(&o, "sink_deliveries", "_total", "counter", "Signals a sink delivered.");
    for (int s = 0; s < WL_N_SINKS; s++)
        sample_label(&o, "sink_deliveries_total", "sink", sink_names[s], load(&sink_delivered[s]));
    family(&o, "sink_failures", "_total", "counter", "Failed delivery attempts of a sink.");
    for (int s = 0; s < WL_N_SINKS; s++)
        sample_label(&o, "sink_failures_total", "sink", sink_names[s], load(&sink_failed[s]));

    if (o.failed || reserve(&o, 0) != 0) {
        free(o.buf);
        errno = ENOMEM;
        return NULL;
    }
    if (len != NULL)
        *len = o.len;
    return o.buf;
}
