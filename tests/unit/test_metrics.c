/* Unit tests for collector/metrics.h: counters, gauges and histograms are
 * counted, rendered in the Prometheus text format and read back line by
 * line with exact values; bucket counts are cumulative; label values are
 * escaped; every family has one HELP and one TYPE line before its samples;
 * the event=stats line keeps its keys; the database size needs a store;
 * the UDP drop count comes from a real socket.
 *
 * The metrics are process-wide: each test reads what it added as the
 * difference between two renders, so the tests do not depend on order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metrics.h"
#include "rules.h"
#include "storage/store.h"
#include "tmpdir.h"

/* ---- reading the text back ---- */

static char *render(void)
{
    size_t len = 0;
    char *text = wl_metrics_prometheus(NULL, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    assert_true(len > 0 && text[len - 1] == '\n');
    return text;
}

/* The value of the one sample line whose series (name and labels, as
 * written) is key; fails when there is none or more than one. */
static double sample(const char *text, const char *key)
{
    size_t klen = strlen(key);
    int found = 0;
    double v = 0;

    for (const char *line = text; *line != '\0';) {
        const char *end = strchr(line, '\n');
        assert_non_null(end);
        if (line[0] != '#' && (size_t)(end - line) > klen && strncmp(line, key, klen) == 0 &&
            line[klen] == ' ') {
            char *stop;
            v = strtod(line + klen + 1, &stop);
            if (stop != end)
                fail_msg("%s: value is not a number: %.*s", key, (int)(end - line), line);
            found++;
        }
        line = end + 1;
    }
    if (found != 1)
        fail_msg("%d sample lines for %s, want 1", found, key);
    return v;
}

static int has_series(const char *text, const char *key)
{
    size_t klen = strlen(key);
    for (const char *line = text; *line != '\0'; line = strchr(line, '\n') + 1)
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
            return 1;
    return 0;
}

/* Counts lines that start with prefix. */
static int count_lines(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    int count = 0;
    for (const char *line = text; *line != '\0'; line = strchr(line, '\n') + 1)
        if (strncmp(line, prefix, n) == 0)
            count++;
    return count;
}

#define DELTA(before, after, key) (sample(after, key) - sample(before, key))

/* ---- tests ---- */

static void test_transport_names(void **state)
{
    (void)state;
    assert_int_equal(wl_transport_of("udp"), WL_TRANSPORT_UDP);
    assert_int_equal(wl_transport_of("tcp"), WL_TRANSPORT_TCP);
    assert_int_equal(wl_transport_of("import"), WL_TRANSPORT_IMPORT);
    assert_int_equal(wl_transport_of("http"), WL_TRANSPORT_HTTP);
    assert_int_equal(wl_transport_of("forget"), WL_TRANSPORT_OTHER);
    assert_int_equal(wl_transport_of(""), WL_TRANSPORT_OTHER);
    assert_int_equal(wl_transport_of(NULL), WL_TRANSPORT_OTHER);
}

static void test_counters_by_transport_and_reason(void **state)
{
    (void)state;
    char *a = render();

    wl_count_t(WL_TRANSPORT_UDP, WL_T_pings_received, 7);
    wl_count_t(WL_TRANSPORT_TCP, WL_T_pings_received, 11);
    wl_count_t(WL_TRANSPORT_IMPORT, WL_T_pings_received, 13);
    wl_count_t(WL_TRANSPORT_UDP, WL_T_pings_accepted, 5);
    wl_count_t(WL_TRANSPORT_TCP, WL_T_pings_duplicate, 2);
    wl_count_t(WL_TRANSPORT_TCP, WL_T_envelopes_received, 3);
    wl_count_t(WL_TRANSPORT_UDP, WL_T_received_bytes, 1500);
    wl_count_ping_reject(WL_TRANSPORT_UDP, WL_REJECT_SEQ_ZERO);
    wl_count_ping_reject(WL_TRANSPORT_UDP, WL_REJECT_SEQ_ZERO);
    wl_count_ping_reject(WL_TRANSPORT_TCP, WL_REJECT_COUNT_TOO_LARGE);
    wl_count_envelope_reject(WL_TRANSPORT_TCP, WL_REJECT_FRAME_BAD_VARINT);
    wl_count_envelope_reject(WL_TRANSPORT_UDP, WL_REJECT_DATAGRAM_TOO_LARGE);
    wl_count_envelope_reject(WL_TRANSPORT_UDP, WL_REJECT_INFLATE_FAILED);
    wl_count(WL_M_tcp_refused, 4);
    wl_count(WL_M_quarantined, 1);
    wl_count(WL_M_pings_accepted, 5); /* the legacy total: no series of its own */
    wl_gauge_set(WL_G_tcp_connections_open, 9);
    wl_gauge_set(WL_G_writer_queue_pings, 12345);
    wl_gauge_set(WL_G_installs, 3);
    wl_gauge_set(WL_G_organizations, 2);
    wl_count_sink_delivered(WL_SINK_FILE, 6);
    wl_count_sink_failure(WL_SINK_WEBHOOK);
    wl_count_sink_failure(WL_SINK_WEBHOOK);

    char *b = render();
    assert_int_equal(DELTA(a, b, "warmline_pings_received_total{transport=\"udp\"}"), 7);
    assert_int_equal(DELTA(a, b, "warmline_pings_received_total{transport=\"tcp\"}"), 11);
    assert_int_equal(DELTA(a, b, "warmline_pings_received_total{transport=\"import\"}"), 13);
    assert_int_equal(DELTA(a, b, "warmline_pings_accepted_total{transport=\"udp\"}"), 5);
    assert_int_equal(DELTA(a, b, "warmline_pings_accepted_total{transport=\"tcp\"}"), 0);
    assert_int_equal(DELTA(a, b, "warmline_pings_duplicate_total{transport=\"tcp\"}"), 2);
    assert_int_equal(DELTA(a, b, "warmline_envelopes_received_total{transport=\"tcp\"}"), 3);
    assert_int_equal(DELTA(a, b, "warmline_received_bytes_total{transport=\"udp\"}"), 1500);
    assert_int_equal(
        DELTA(a, b, "warmline_pings_rejected_total{transport=\"udp\",reason=\"seq_zero\"}"), 2);
    assert_int_equal(
        DELTA(a, b, "warmline_pings_rejected_total{transport=\"tcp\",reason=\"seq_zero\"}"), 0);
    assert_int_equal(DELTA(a, b,
                           "warmline_pings_rejected_total{transport=\"tcp\","
                           "reason=\"count_too_large\"}"),
                     1);
    assert_int_equal(DELTA(a, b,
                           "warmline_envelopes_rejected_total{transport=\"tcp\","
                           "reason=\"frame_bad_varint\"}"),
                     1);
    assert_int_equal(DELTA(a, b,
                           "warmline_envelopes_rejected_total{transport=\"udp\","
                           "reason=\"datagram_too_large\"}"),
                     1);
    assert_int_equal(DELTA(a, b,
                           "warmline_envelopes_rejected_total{transport=\"udp\","
                           "reason=\"inflate_failed\"}"),
                     1);
    assert_int_equal(DELTA(a, b, "warmline_tcp_refused_total"), 4);
    assert_int_equal(DELTA(a, b, "warmline_quarantined_total"), 1);
    assert_int_equal(sample(b, "warmline_tcp_connections_open"), 9);
    assert_int_equal(sample(b, "warmline_writer_queue_pings"), 12345);
    assert_int_equal(sample(b, "warmline_installs"), 3);
    assert_int_equal(sample(b, "warmline_organizations"), 2);
    assert_int_equal(DELTA(a, b, "warmline_sink_deliveries_total{sink=\"file\"}"), 6);
    assert_int_equal(DELTA(a, b, "warmline_sink_deliveries_total{sink=\"webhook\"}"), 0);
    assert_int_equal(DELTA(a, b, "warmline_sink_failures_total{sink=\"webhook\"}"), 2);
    assert_int_equal(DELTA(a, b, "warmline_sink_failures_total{sink=\"file\"}"), 0);

    /* A ping reason never shows as an envelope one, nor a UDP-only reason
     * under TCP, while zero; the legacy totals with a labelled family of the
     * same name have no unlabelled series. */
    assert_false(has_series(b, "warmline_envelopes_rejected_total{transport=\"udp\","
                               "reason=\"seq_zero\"}"));
    assert_false(has_series(b, "warmline_envelopes_rejected_total{transport=\"tcp\","
                               "reason=\"datagram_too_large\"}"));
    assert_false(has_series(b, "warmline_pings_accepted_total"));
    assert_false(has_series(b, "warmline_pings_rejected_total"));
    assert_int_equal(count_lines(b, "warmline_pings_received_total{transport=\"other\"}"), 0);

    /* An unknown transport appears once it has counted something. */
    wl_count_t(wl_transport_of("carrier-pigeon"), WL_T_pings_received, 1);
    char *c = render();
    assert_int_equal(sample(c, "warmline_pings_received_total{transport=\"other\"}"), 1);
    free(a);
    free(b);
    free(c);
}

static void check_histogram(const char *text, const char *name, const char *const *le, size_t n,
                            const uint64_t *want_cum)
{
    char key[160];
    double prev = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof key, "warmline_%s_bucket{le=\"%s\"}", name, le[i]);
        double v = sample(text, key);
        assert_true(v >= prev); /* cumulative */
        if (want_cum != NULL && (uint64_t)v != want_cum[i])
            fail_msg("%s: %.0f, want %" PRIu64, key, v, want_cum[i]);
        prev = v;
    }
    snprintf(key, sizeof key, "warmline_%s_bucket{le=\"+Inf\"}", name);
    double inf = sample(text, key);
    assert_true(inf >= prev);
    snprintf(key, sizeof key, "warmline_%s_count", name);
    assert_true(sample(text, key) == inf);
    snprintf(key, sizeof key, "warmline_%s_bucket{", name);
    assert_int_equal(count_lines(text, key), n + 1);
}

static const char *const PINGS_LE[] = {"1", "10", "100", "1000", "5000", "10000", "50000"};
static const char *const SECONDS_LE[] = {"0.0001", "0.0005", "0.001", "0.0025", "0.005",
                                         "0.01",   "0.025",  "0.05",  "0.1",    "0.25",
                                         "0.5",    "1"};

static void test_histograms(void **state)
{
    (void)state;
    char *a = render();
    double pings_sum0 = sample(a, "warmline_group_commit_pings_sum");
    double secs_sum0 = sample(a, "warmline_group_commit_seconds_sum");
    double pings_n0 = sample(a, "warmline_group_commit_pings_count");
    double secs_n0 = sample(a, "warmline_group_commit_seconds_count");
    uint64_t pings_cum0[7], secs_cum0[12];
    char key[160];
    for (size_t i = 0; i < 7; i++) {
        snprintf(key, sizeof key, "warmline_group_commit_pings_bucket{le=\"%s\"}", PINGS_LE[i]);
        pings_cum0[i] = (uint64_t)sample(a, key);
    }
    for (size_t i = 0; i < 12; i++) {
        snprintf(key, sizeof key, "warmline_group_commit_seconds_bucket{le=\"%s\"}",
                 SECONDS_LE[i]);
        secs_cum0[i] = (uint64_t)sample(a, key);
    }

    /* Bounds are inclusive: 1 is in le="1", 11 is not in le="10". */
    const uint64_t pings[] = {0, 1, 2, 10, 11, 5000, 50000, 50001, 70000};
    for (size_t i = 0; i < sizeof pings / sizeof pings[0]; i++)
        wl_observe_group_pings(pings[i]);
    /* 100 us exactly, 100.001 us, 2.5 ms, 3 s */
    wl_observe_commit_ns(100000);
    wl_observe_commit_ns(100001);
    wl_observe_commit_ns(2500000);
    wl_observe_commit_ns(3000000000u);

    char *b = render();
    const uint64_t pings_add[7] = {2, 4, 5, 5, 6, 6, 7};
    const uint64_t secs_add[12] = {1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3};
    uint64_t pings_cum[7], secs_cum[12];
    for (size_t i = 0; i < 7; i++)
        pings_cum[i] = pings_cum0[i] + pings_add[i];
    for (size_t i = 0; i < 12; i++)
        secs_cum[i] = secs_cum0[i] + secs_add[i];
    check_histogram(b, "group_commit_pings", PINGS_LE, 7, pings_cum);
    check_histogram(b, "group_commit_seconds", SECONDS_LE, 12, secs_cum);
    assert_true(sample(b, "warmline_group_commit_pings_count") - pings_n0 == 9);
    assert_true(sample(b, "warmline_group_commit_seconds_count") - secs_n0 == 4);
    assert_true(sample(b, "warmline_group_commit_pings_sum") - pings_sum0 == 175025);
    double secs = sample(b, "warmline_group_commit_seconds_sum") - secs_sum0;
    assert_true(secs > 3.002700000 && secs < 3.002700002);
    assert_true(sample(b, "warmline_group_commit_pings_bucket{le=\"+Inf\"}") -
                    sample(a, "warmline_group_commit_pings_bucket{le=\"+Inf\"}") ==
                9);
    free(a);
    free(b);
}

static void test_exact_sum_text(void **state)
{
    (void)state;
    /* The sum is exact decimal, not a rounded float: read the raw text. */
    char *a = render();
    const char *p = strstr(a, "\nwarmline_group_commit_seconds_sum ");
    assert_non_null(p);
    p += strlen("\nwarmline_group_commit_seconds_sum ");
    /* digits, at most one '.', no exponent, no trailing zero after a '.' */
    size_t n = strcspn(p, "\n");
    assert_true(n > 0);
    int dots = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '.')
            dots++;
        else
            assert_true(p[i] >= '0' && p[i] <= '9');
    }
    assert_true(dots <= 1);
    if (dots)
        assert_true(p[n - 1] != '0' && p[n - 1] != '.');
    free(a);
}

static void test_signals_by_rule_and_escaping(void **state)
{
    (void)state;
    static struct wl_ruleset rs; /* large: not on the stack */
    memset(&rs, 0, sizeof rs);
    snprintf(rs.rules[0].name, sizeof rs.rules[0].name, "mau_over_25");
    snprintf(rs.rules[1].name, sizeof rs.rules[1].name, "q\"b\\s\nn");
    snprintf(rs.rules[2].name, sizeof rs.rules[2].name, "never");
    rs.n = 3;
    wl_metrics_set_rules(&rs);
    wl_count_signals(0, 2);
    wl_count_signals(1, 1);
    wl_count_signals(WL_RULES_MAX, 1); /* out of range: ignored */

    char *a = render();
    assert_int_equal(sample(a, "warmline_signals_fired_total{rule=\"mau_over_25\"}"), 2);
    assert_int_equal(sample(a, "warmline_signals_fired_total{rule=\"q\\\"b\\\\s\\nn\"}"), 1);
    assert_int_equal(sample(a, "warmline_signals_fired_total{rule=\"never\"}"), 0);
    assert_int_equal(count_lines(a, "warmline_signals_fired_total{"), 3);
    assert_null(strstr(a, "q\"b")); /* never unescaped */

    /* Set again: a rule keeps its count when its name is the same, starts
     * from zero when the index now names another rule. */
    snprintf(rs.rules[1].name, sizeof rs.rules[1].name, "second_install");
    rs.n = 2;
    wl_metrics_set_rules(&rs);
    char *b = render();
    assert_int_equal(sample(b, "warmline_signals_fired_total{rule=\"mau_over_25\"}"), 2);
    assert_int_equal(sample(b, "warmline_signals_fired_total{rule=\"second_install\"}"), 0);
    assert_int_equal(count_lines(b, "warmline_signals_fired_total{"), 2);
    free(a);
    free(b);
}

/* One HELP and one TYPE line per family, before its samples; every sample
 * belongs to the family declared last; names are warmline_*, counters end
 * in _total; every line is a comment or "series value". */
static void test_format_families(void **state)
{
    (void)state;
    wl_count(WL_M_write_errors, 1); /* anything */
    char *text = render();
    char family[128] = "", type[32] = "";
    int n_families = 0, n_samples = 0;

    for (char *line = text; *line != '\0';) {
        char *end = strchr(line, '\n');
        *end = '\0';
        if (strncmp(line, "# HELP ", 7) == 0) {
            char name[128];
            assert_int_equal(sscanf(line + 7, "%127s", name), 1);
            char help_prefix[160], type_prefix[160];
            snprintf(help_prefix, sizeof help_prefix, "# HELP %s ", name);
            snprintf(type_prefix, sizeof type_prefix, "# TYPE %s ", name);
            /* once each in the whole text (it is cut at this line: search
             * what follows and what came before separately) */
            *end = '\n';
            assert_int_equal(count_lines(text, help_prefix), 1);
            assert_int_equal(count_lines(text, type_prefix), 1);
            *end = '\0';
            /* TYPE follows HELP at once */
            char *next = end + 1;
            assert_int_equal(strncmp(next, type_prefix, strlen(type_prefix)), 0);
            snprintf(family, sizeof family, "%s", name);
            assert_int_equal(strncmp(family, "warmline_", 9), 0);
            n_families++;
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[128];
            assert_int_equal(sscanf(line + 7, "%127s %31s", name, type), 2);
            assert_string_equal(name, family);
            assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                        strcmp(type, "histogram") == 0);
            if (strcmp(type, "counter") == 0) {
                size_t l = strlen(name);
                assert_true(l > 6 && strcmp(name + l - 6, "_total") == 0);
            }
        } else {
            assert_true(line[0] != '#' && line[0] != '\0');
            size_t fl = strlen(family);
            assert_true(fl > 0);
            assert_int_equal(strncmp(line, family, fl), 0);
            const char *rest = line + fl;
            if (strcmp(type, "histogram") == 0)
                assert_true(strncmp(rest, "_bucket{le=\"", 12) == 0 ||
                            strncmp(rest, "_sum ", 5) == 0 || strncmp(rest, "_count ", 7) == 0);
            else
                assert_true(rest[0] == ' ' || rest[0] == '{');
            char *sp = strrchr(line, ' ');
            assert_non_null(sp);
            char *stop;
            strtod(sp + 1, &stop);
            assert_true(*stop == '\0' && stop != sp + 1);
            n_samples++;
        }
        *end = '\n';
        line = end + 1;
    }
    assert_true(n_families >= 20);
    assert_true(n_samples > n_families);
    free(text);
}

static void test_database_bytes_with_a_store(void **state)
{
    (void)state;
    char root[64] = "/tmp/wl-test-metrics-XXXXXX", db[128], err[512] = "";
    struct wl_store *store = NULL;
    size_t len;

    assert_non_null(mkdtemp(root));
    snprintf(db, sizeof db, "%s/db", root);
    if (wl_store_open(db, WL_STORE_PRIMARY, &store, err, sizeof err) != 0)
        fail_msg("open: %s", err);
    char *with = wl_metrics_prometheus(store, &len);
    char *without = wl_metrics_prometheus(NULL, NULL);
    assert_non_null(with);
    assert_non_null(without);
    assert_int_equal(count_lines(with, "# TYPE warmline_database_bytes gauge"), 1);
    assert_true(sample(with, "warmline_database_bytes") ==
                (double)wl_store_disk_bytes(store));
    assert_int_equal(count_lines(without, "warmline_database_bytes"), 0);
    assert_int_equal(count_lines(without, "# HELP warmline_database_bytes"), 0);
    free(with);
    free(without);
    wl_store_close(store);
    assert_int_equal(wl_test_rmtree(root), 0);
}

/* The stats line keeps its keys: every counter by its old name, and the
 * rejected_<reason> sums over transports (envelopes and pings alike). */
static void test_stats_line_keys(void **state)
{
    (void)state;
    char path[] = "/tmp/wl-test-metrics-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);

    wl_count_ping_reject(WL_TRANSPORT_UDP, WL_REJECT_STRING_HAS_NUL);
    wl_count_ping_reject(WL_TRANSPORT_TCP, WL_REJECT_STRING_HAS_NUL);
    wl_count_ping_reject(WL_TRANSPORT_IMPORT, WL_REJECT_STRING_HAS_NUL);
    wl_count_envelope_reject(WL_TRANSPORT_TCP, WL_REJECT_ENVELOPE_VERSION);

    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    wl_metrics_log("stats");
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);

    char line[8192] = "";
    ssize_t n = pread(fd, line, sizeof line - 1, 0);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    line[n] = '\0';
    const char *keys[] = {" event=stats ", " udp_datagrams=", " udp_dropped_overload=",
                          " tcp_connections=", " tcp_refused=", " tcp_closed_bad_frame=",
                          " tcp_closed_idle=", " tcp_frames=", " tcp_retry_later=",
                          " batches_rejected=", " pings_accepted=", " pings_duplicate=",
                          " pings_rejected=", " groups_committed=", " write_errors=",
                          " quarantined=", " rejected_string_has_nul=3",
                          " rejected_envelope_version=", " udp_receive_queue_drops="};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strstr(line, keys[i]) == NULL)
            fail_msg("stats line lacks '%s': %s", keys[i], line);
    assert_null(strstr(line, "rejected_count_too_large=0")); /* zero reasons are left out */
}

/* A real socket that drops: a tiny receive buffer, many datagrams, no reads. */
static void test_udp_receive_queue_drops(void **state)
{
    (void)state;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof addr;
    int rx = socket(AF_INET, SOCK_DGRAM, 0), tx = socket(AF_INET, SOCK_DGRAM, 0);
    int small = 1;
    char payload[1024] = {0};

    assert_true(rx >= 0 && tx >= 0);
    assert_int_equal(setsockopt(rx, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    assert_int_equal(bind(rx, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(getsockname(rx, (struct sockaddr *)&addr, &alen), 0);

    char *a = render();
    double before = sample(a, "warmline_udp_receive_queue_drops_total");
    wl_metrics_set_udp_fd(rx);
    for (int i = 0; i < 200; i++)
        sendto(tx, payload, sizeof payload, 0, (struct sockaddr *)&addr, sizeof addr);
    char *b = render();
    double during = sample(b, "warmline_udp_receive_queue_drops_total");
    assert_true(during > before);
    wl_metrics_set_udp_fd(-1); /* closing: the count stays */
    close(rx);
    close(tx);
    char *c = render();
    assert_true(sample(c, "warmline_udp_receive_queue_drops_total") >= during);
    free(a);
    free(b);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transport_names),
        cmocka_unit_test(test_counters_by_transport_and_reason),
        cmocka_unit_test(test_histograms),
        cmocka_unit_test(test_exact_sum_text),
        cmocka_unit_test(test_signals_by_rule_and_escaping),
        cmocka_unit_test(test_format_families),
        cmocka_unit_test(test_database_bytes_with_a_store),
        cmocka_unit_test(test_stats_line_keys),
        cmocka_unit_test(test_udp_receive_queue_drops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
