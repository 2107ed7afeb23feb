/* Unit tests for collector/sinks.h and collector/signal_json.h, on a real
 * store in a temporary directory. Signals are written into the signals
 * column family directly. The file sink is checked by reading the file; the
 * webhook posts to a real HTTP receiver on 127.0.0.1 (libmicrohttpd, port
 * chosen by the OS) that can answer 503, or answer late. The sink has no
 * readiness signal of its own, so the tests poll the file or the receiver
 * with a short step and a deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "records.pb-c.h"
#include "signal_json.h"
#include "sinks.h"
#include "storage/keys.h"
#include "storage/store.h"
#include "tmpdir.h"

#define WAIT_MS 10000 /* deadline of every wait; a pass takes far less */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- signals ---- */

static const uint8_t ORG_KEY[WL_ORG_KEY_BYTES] = {0xab, 0x01, 0x02, 0x03, 0xff};
#define ORG_HEX "ab010203ff000000000000000000000000000000000000000000000000000000"
#define DESCRIPTION "Team over 10 & growing <fast>"

/* A signal whose content depends on id; freed with signal_clear. */
struct sigbuf {
    wl_signal sig;
    Warmline__Store__V1__Signal__Term t[3], *tp[3];
    char *installs[2];
    uint8_t org[1 + WL_ORG_KEY_BYTES];
    char rule[32];
};

static void signal_fill(struct sigbuf *b, uint64_t id)
{
    memset(b, 0, sizeof *b);
    warmline__store__v1__signal__init(&b->sig);
    for (int i = 0; i < 3; i++) {
        warmline__store__v1__signal__term__init(&b->t[i]);
        b->tp[i] = &b->t[i];
    }
    b->org[0] = WL_ORG_TAG_KEY;
    memcpy(b->org + 1, ORG_KEY, WL_ORG_KEY_BYTES);
    snprintf(b->rule, sizeof b->rule, "rule_%llu", (unsigned long long)id);
    b->t[0].metric = "teams";
    b->t[0].value = 12;
    b->t[0].op = ">=";
    b->t[0].threshold = 10;
    b->t[1].metric = "has_feature";
    b->t[1].value = 1;
    b->t[1].op = "has_feature";
    b->t[1].threshold = 1;
    b->t[1].text = "sso";
    b->t[2].metric = "growth_30d(active_users_monthly)";
    b->t[2].value = NAN;
    b->t[2].op = ">";
    b->t[2].threshold = 25.5;
    b->installs[0] = "inst-a";
    b->installs[1] = "inst-b";
    b->sig.id = id;
    b->sig.org.data = b->org;
    b->sig.org.len = sizeof b->org;
    b->sig.rule = b->rule;
    b->sig.description = DESCRIPTION;
    b->sig.weight = 0.1;
    b->sig.fired_at = 1714566896789LL + (int64_t)id;
    b->sig.n_terms = 3;
    b->sig.terms = b->tp;
    b->sig.n_install_ids = 2;
    b->sig.install_ids = b->installs;
    b->sig.ingest_seq = 100 + id;
}

static void put_signals(struct wl_store *store, uint64_t from, uint64_t to)
{
    char err[512];
    struct wl_batch *b = wl_batch_new(store);
    assert_non_null(b);
    for (uint64_t id = from; id <= to; id++) {
        struct sigbuf sb;
        uint8_t key[8], val[1024];
        signal_fill(&sb, id);
        size_t n = warmline__store__v1__signal__get_packed_size(&sb.sig);
        assert_true(n <= sizeof val);
        warmline__store__v1__signal__pack(&sb.sig, val);
        wl_be64_put(key, id);
        wl_batch_put(b, WL_CF_SIGNALS, key, sizeof key, val, n);
    }
    if (wl_store_write(store, b, 1, err, sizeof err) != 0)
        fail_msg("write: %s", err);
    wl_batch_free(b);
}

static void put_cursor(struct wl_store *store, const char *name, uint64_t id)
{
    char err[512];
    uint8_t v[8];
    struct wl_batch *b = wl_batch_new(store);
    wl_be64_put(v, id);
    wl_batch_put(b, WL_CF_META, name, strlen(name), v, sizeof v);
    if (wl_store_write(store, b, 1, err, sizeof err) != 0)
        fail_msg("write: %s", err);
    wl_batch_free(b);
}

static uint64_t get_cursor(struct wl_store *store, const char *name)
{
    char err[512], *val = NULL;
    size_t vlen = 0;
    int rc = wl_store_get(store, WL_CF_META, name, strlen(name), &val, &vlen, err, sizeof err);
    if (rc == -ENOENT)
        return 0;
    assert_int_equal(rc, 0);
    assert_int_equal(vlen, 8);
    uint64_t id = wl_be64_get(val);
    free(val);
    return id;
}

/* ---- the file ---- */

struct lines {
    char **line;
    size_t n;
    int trailing; /* bytes after the last newline */
};

static void lines_free(struct lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->line[i]);
    free(l->line);
    memset(l, 0, sizeof *l);
}

/* The file's complete lines. */
static struct lines read_lines(const char *path)
{
    struct lines l = {0};
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return l;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, fp)) > 0) {
        if (line[n - 1] != '\n') {
            l.trailing = (int)n;
            break;
        }
        line[n - 1] = '\0';
        l.line = realloc(l.line, (l.n + 1) * sizeof *l.line);
        l.line[l.n++] = strdup(line);
    }
    free(line);
    fclose(fp);
    return l;
}

static size_t count_lines(const char *path)
{
    struct lines l = read_lines(path);
    size_t n = l.n;
    lines_free(&l);
    return n;
}

static void wait_lines(const char *path, size_t n)
{
    int64_t deadline = now_ms() + WAIT_MS;
    size_t have;
    while ((have = count_lines(path)) < n && now_ms() < deadline)
        sleep_ms(5);
    if (have < n)
        fail_msg("%s: %zu lines after %d ms, expected %zu", path, have, WAIT_MS, n);
}

static uint64_t json_id(const char *text)
{
    json_error_t e;
    json_t *o = json_loads(text, 0, &e);
    if (o == NULL)
        fail_msg("not JSON (%s): %s", e.text, text);
    json_t *id = json_object_get(o, "id");
    assert_true(json_is_integer(id));
    uint64_t v = (uint64_t)json_integer_value(id);
    json_decref(o);
    return v;
}

/* The file holds exactly the signals 1..n, in order, once each. */
static void assert_file_ids(const char *path, uint64_t n)
{
    struct lines l = read_lines(path);
    assert_int_equal(l.trailing, 0);
    assert_int_equal(l.n, n);
    for (size_t i = 0; i < l.n; i++)
        assert_int_equal(json_id(l.line[i]), i + 1);
    lines_free(&l);
}

/* ---- an HTTP receiver ---- */

#define MAX_REQS 64

struct req {
    char key[32];
    char ctype[64];
    char *body;
    unsigned status;
};

struct receiver {
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu;
    int fail_first;    /* answer 503 to this many requests */
    int fail_always;
    int slow_first_ms; /* answer the first request this late */
    struct req reqs[MAX_REQS];
    int n;
};

struct upload {
    char *data;
    size_t len;
};

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *data, size_t *data_size, void **con_cls)
{
    struct receiver *r = cls;
    struct upload *u = *con_cls;
    (void)url; (void)method; (void)version;

    if (u == NULL) {
        *con_cls = calloc(1, sizeof *u);
        return *con_cls ? MHD_YES : MHD_NO;
    }
    if (*data_size > 0) {
        u->data = realloc(u->data, u->len + *data_size + 1);
        memcpy(u->data + u->len, data, *data_size);
        u->len += *data_size;
        u->data[u->len] = '\0';
        *data_size = 0;
        return MHD_YES;
    }
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    pthread_mutex_lock(&r->mu);
    int i = r->n < MAX_REQS ? r->n++ : -1;
    unsigned status = r->fail_always || i < r->fail_first ? 503 : 200;
    int slow = i == 0 ? r->slow_first_ms : 0;
    if (i >= 0) {
        struct req *q = &r->reqs[i];
        snprintf(q->key, sizeof q->key, "%s", key ? key : "");
        snprintf(q->ctype, sizeof q->ctype, "%s", ctype ? ctype : "");
        q->body = u->data ? u->data : strdup("");
        u->data = NULL;
        q->status = status;
    }
    pthread_mutex_unlock(&r->mu);
    if (slow)
        sleep_ms(slow);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct upload *u = *con_cls;
    (void)cls; (void)c; (void)toe;
    if (u != NULL) {
        free(u->data);
        free(u);
        *con_cls = NULL;
    }
}

static struct receiver *receiver_start(int fail_first, int fail_always, int slow_first_ms)
{
    struct receiver *r = calloc(1, sizeof *r);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    assert_non_null(r);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->fail_first = fail_first;
    r->fail_always = fail_always;
    r->slow_first_ms = slow_first_ms;
    pthread_mutex_init(&r->mu, NULL);
    r->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
                            NULL, NULL, on_request, r, MHD_OPTION_SOCK_ADDR, &sa,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, r, MHD_OPTION_END);
    assert_non_null(r->d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(r->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    r->port = info->port;
    assert_true(r->port > 0);
    return r;
}

static void receiver_stop(struct receiver *r)
{
    MHD_stop_daemon(r->d);
    for (int i = 0; i < r->n; i++)
        free(r->reqs[i].body);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static int receiver_count(struct receiver *r, int ok_only)
{
    pthread_mutex_lock(&r->mu);
    int n = 0;
    for (int i = 0; i < r->n; i++)
        n += !ok_only || r->reqs[i].status == 200;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void wait_requests(struct receiver *r, int n, int ok_only)
{
    int64_t deadline = now_ms() + WAIT_MS;
    int have;
    while ((have = receiver_count(r, ok_only)) < n && now_ms() < deadline)
        sleep_ms(5);
    if (have < n)
        fail_msg("%d %srequests after %d ms, expected %d", have, ok_only ? "2xx " : "",
                 WAIT_MS, n);
}

/* ---- fixture ---- */

struct fx {
    char root[64];
    char db[128];
    char file[128];
    struct wl_config cfg;
    struct wl_store *store;
    struct wl_sinks *sinks;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[512];
    if (f == NULL)
        return -1;
    wl_log_min_level = WL_LOG_WARN;
    snprintf(f->root, sizeof f->root, "/tmp/wl-test-sinks-XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    snprintf(f->db, sizeof f->db, "%s/db", f->root);
    snprintf(f->file, sizeof f->file, "%s/signals.ndjson", f->root);
    wl_config_defaults(&f->cfg);
    f->cfg.webhook_timeout_ms = 2000;
    f->cfg.webhook_max_backoff_ms = 200;
    if (wl_store_open(f->db, WL_STORE_PRIMARY, &f->store, err, sizeof err) != 0) {
        print_error("store: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    wl_sinks_stop(f->sinks);
    wl_store_close(f->store);
    int rc = wl_test_rmtree(f->root);
    free(f);
    return rc;
}

static void start(struct fx *f)
{
    char err[512] = "";
    assert_null(f->sinks);
    if (wl_sinks_start(&f->cfg, f->store, &f->sinks, err, sizeof err) != 0)
        fail_msg("wl_sinks_start: %s", err);
    assert_non_null(f->sinks);
}

static void stop(struct fx *f)
{
    wl_sinks_stop(f->sinks);
    f->sinks = NULL;
}

static void use_file(struct fx *f)
{
    snprintf(f->cfg.signal_file, sizeof f->cfg.signal_file, "%s", f->file);
}

static void use_webhook(struct fx *f, struct receiver *r, int format)
{
    /* a token in the URL, as Slack's have: it must not reach the logs */
    snprintf(f->cfg.webhook_url, sizeof f->cfg.webhook_url,
             "http://127.0.0.1:%d/hook/T000/SECRET?token=secret", r->port);
    f->cfg.webhook_format = format;
}

/* ---- signal_json ---- */

static void test_signal_json_fields(void **state)
{
    (void)state;
    struct sigbuf b;
    signal_fill(&b, 7);
    json_t *o = wl_signal_json(&b.sig);
    assert_non_null(o);

    assert_int_equal(json_integer_value(json_object_get(o, "id")), 7);
    assert_string_equal(json_string_value(json_object_get(o, "org")), ORG_HEX);
    assert_string_equal(json_string_value(json_object_get(o, "rule")), "rule_7");
    assert_string_equal(json_string_value(json_object_get(o, "description")), DESCRIPTION);
    assert_true(json_is_real(json_object_get(o, "weight")));
    assert_true(fabs(json_real_value(json_object_get(o, "weight")) - 0.1) < 1e-12);
    assert_int_equal(json_integer_value(json_object_get(o, "fired_at")), 1714566896796LL);
    assert_string_equal(json_string_value(json_object_get(o, "fired_at_iso")),
                        "2024-05-01T12:34:56.796Z");
    assert_int_equal(json_integer_value(json_object_get(o, "ingest_seq")), 107);

    json_t *terms = json_object_get(o, "terms");
    assert_int_equal(json_array_size(terms), 3);
    json_t *t0 = json_array_get(terms, 0), *t1 = json_array_get(terms, 1),
           *t2 = json_array_get(terms, 2);
    assert_string_equal(json_string_value(json_object_get(t0, "metric")), "teams");
    assert_true(json_is_integer(json_object_get(t0, "value"))); /* whole: an integer */
    assert_int_equal(json_integer_value(json_object_get(t0, "value")), 12);
    assert_string_equal(json_string_value(json_object_get(t0, "op")), ">=");
    assert_int_equal(json_integer_value(json_object_get(t0, "threshold")), 10);
    assert_null(json_object_get(t0, "text")); /* only with a string operand */
    assert_string_equal(json_string_value(json_object_get(t1, "text")), "sso");
    assert_string_equal(json_string_value(json_object_get(t1, "op")), "has_feature");
    assert_true(json_is_null(json_object_get(t2, "value"))); /* NaN: undefined */
    assert_true(fabs(json_real_value(json_object_get(t2, "threshold")) - 25.5) < 1e-12);

    json_t *inst = json_object_get(o, "install_ids");
    assert_int_equal(json_array_size(inst), 2);
    assert_string_equal(json_string_value(json_array_get(inst, 0)), "inst-a");
    assert_string_equal(json_string_value(json_array_get(inst, 1)), "inst-b");
    assert_int_equal(json_object_size(o), 10);
    json_decref(o);

    /* one line; 0.1 prints short */
    char *text = wl_signal_json_text(&b.sig);
    assert_non_null(text);
    assert_null(strchr(text, '\n'));
    assert_non_null(strstr(text, "\"weight\":0.1,"));
    assert_non_null(strstr(text, "{\"id\":7,\"org\":"));
    free(text);
}

static void test_signal_json_odd_records(void **state)
{
    (void)state;
    struct sigbuf b;
    signal_fill(&b, 1);
    /* an install org, invalid UTF-8, a time before 1970, no terms */
    static uint8_t org[] = {WL_ORG_TAG_INSTALL, 's', 'r', 'v', '-', '1'};
    b.sig.org.data = org;
    b.sig.org.len = sizeof org;
    b.sig.description = "bad \xff byte";
    b.sig.fired_at = -1;
    b.sig.n_terms = 0;
    json_t *o = wl_signal_json(&b.sig);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "org")), "install:srv-1");
    assert_string_equal(json_string_value(json_object_get(o, "description")), "bad ? byte");
    assert_string_equal(json_string_value(json_object_get(o, "fired_at_iso")),
                        "1969-12-31T23:59:59.999Z");
    assert_int_equal(json_array_size(json_object_get(o, "terms")), 0);
    json_decref(o);
}

static void test_signal_summary(void **state)
{
    (void)state;
    struct sigbuf b;
    char buf[1000];
    signal_fill(&b, 3);
    b.sig.description = "Line one\nline two";
    size_t n = wl_signal_summary(&b.sig, buf, sizeof buf);
    assert_int_equal(n, strlen(buf));
    assert_string_equal(buf, "signal 3 for org " ORG_HEX ": Line one line two [rule_3] - "
                             "teams 12 (>= 10), has_feature(sso), "
                             "growth_30d(active_users_monthly) n/a (> 25.5)");

    /* truncated on a character boundary, marked */
    b.sig.description = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9";
    char small[96];
    n = wl_signal_summary(&b.sig, small, sizeof small);
    assert_int_equal(n, strlen(small));
    assert_true(n < sizeof small);
    assert_string_equal(small + n - 3, "...");
    json_t *j = json_string(small); /* valid UTF-8, or NULL */
    assert_non_null(j);
    json_decref(j);
}

/* ---- start ---- */

static void test_nothing_configured(void **state)
{
    struct fx *f = *state;
    char err[512] = "";
    struct wl_sinks *s = (struct wl_sinks *)1;
    assert_int_equal(wl_sinks_start(&f->cfg, f->store, &s, err, sizeof err), 0);
    assert_null(s);
    wl_sinks_notify(NULL, 5);
    wl_sinks_stop(NULL);
}

static void test_bad_configuration(void **state)
{
    struct fx *f = *state;
    char err[512];
    struct wl_sinks *s = NULL;

    snprintf(f->cfg.webhook_url, sizeof f->cfg.webhook_url, "ftp://host/SECRET");
    assert_true(wl_sinks_start(&f->cfg, f->store, &s, err, sizeof err) < 0);
    assert_null(s);
    assert_non_null(strstr(err, "webhook_url"));
    assert_null(strstr(err, "SECRET"));

    snprintf(f->cfg.webhook_url, sizeof f->cfg.webhook_url, "no url at all SECRET");
    assert_true(wl_sinks_start(&f->cfg, f->store, &s, err, sizeof err) < 0);
    assert_null(strstr(err, "SECRET"));

    f->cfg.webhook_url[0] = '\0';
    snprintf(f->cfg.signal_file, sizeof f->cfg.signal_file, "%s/missing/dir/s.ndjson", f->root);
    assert_true(wl_sinks_start(&f->cfg, f->store, &s, err, sizeof err) < 0);
    assert_null(s);
    assert_non_null(strstr(err, "missing/dir"));
}

/* ---- file sink ---- */

static void test_file_in_order_and_resumes(void **state)
{
    struct fx *f = *state;
    use_file(f);
    put_signals(f->store, 1, 5);
    start(f);
    wl_sinks_notify(f->sinks, 5);
    wait_lines(f->file, 5);
    stop(f);
    assert_file_ids(f->file, 5);
    assert_int_equal(get_cursor(f->store, "sink.file.cursor"), 5);

    struct stat st;
    assert_int_equal(stat(f->file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);

    /* the line is the signal's JSON */
    struct lines l = read_lines(f->file);
    struct sigbuf b;
    signal_fill(&b, 3);
    char *want = wl_signal_json_text(&b.sig);
    assert_string_equal(l.line[2], want);
    free(want);
    lines_free(&l);

    /* stopped: more signals; restarted: only those are appended */
    put_signals(f->store, 6, 8);
    start(f);
    wl_sinks_notify(f->sinks, 8);
    wait_lines(f->file, 8);
    assert_file_ids(f->file, 8);

    /* written with no nudge (an import): the tick finds them */
    put_signals(f->store, 9, 10);
    wait_lines(f->file, 10);
    stop(f);
    assert_file_ids(f->file, 10);
    assert_int_equal(get_cursor(f->store, "sink.file.cursor"), 10);
}

static void test_file_many_batches(void **state)
{
    struct fx *f = *state;
    use_file(f);
    put_signals(f->store, 1, 300);
    start(f);
    wl_sinks_notify(f->sinks, 300);
    wait_lines(f->file, 300);
    stop(f);
    assert_file_ids(f->file, 300);
}

/* A crash after the fsync and before the cursor: the file has 4 while the
 * cursor says 3; a crash during a write: part of line 5 at the end. */
static void test_file_crash_window(void **state)
{
    struct fx *f = *state;
    use_file(f);
    put_signals(f->store, 1, 6);
    put_cursor(f->store, "sink.file.cursor", 3);
    FILE *fp = fopen(f->file, "w");
    assert_non_null(fp);
    for (uint64_t id = 1; id <= 4; id++) {
        struct sigbuf b;
        signal_fill(&b, id);
        char *text = wl_signal_json_text(&b.sig);
        fprintf(fp, "%s\n", text);
        free(text);
    }
    fputs("{\"id\":5,\"org\":\"ab01", fp);
    fclose(fp);

    start(f);
    wl_sinks_notify(f->sinks, 6);
    wait_lines(f->file, 6);
    stop(f);
    assert_file_ids(f->file, 6); /* 4 once, 5 whole, nothing partial */
    assert_int_equal(get_cursor(f->store, "sink.file.cursor"), 6);
}

/* Only a partial line (the first write of a file cut short): removed. */
static void test_file_only_partial_line(void **state)
{
    struct fx *f = *state;
    use_file(f);
    put_signals(f->store, 1, 2);
    FILE *fp = fopen(f->file, "w");
    fputs("{\"id\":1,\"or", fp);
    fclose(fp);
    start(f);
    wl_sinks_notify(f->sinks, 2);
    wait_lines(f->file, 2);
    stop(f);
    assert_file_ids(f->file, 2);
}

/* A last line whose id is not in the log (a file kept from another
 * database) moves nothing: the log's signals are appended after it. */
static void test_file_ahead_of_log(void **state)
{
    struct fx *f = *state;
    use_file(f);
    put_signals(f->store, 1, 2);
    FILE *fp = fopen(f->file, "w");
    fputs("{\"id\":99}\n", fp);
    fclose(fp);
    start(f);
    wl_sinks_notify(f->sinks, 2);
    wait_lines(f->file, 3);
    stop(f);
    struct lines l = read_lines(f->file);
    assert_int_equal(l.n, 3);
    assert_int_equal(json_id(l.line[0]), 99);
    assert_int_equal(json_id(l.line[1]), 1);
    assert_int_equal(json_id(l.line[2]), 2);
    lines_free(&l);
}

/* ---- webhook ---- */

static void test_webhook_retries_in_order(void **state)
{
    struct fx *f = *state;
    struct receiver *r = receiver_start(3, 0, 0);
    use_webhook(f, r, WL_WEBHOOK_JSON);
    put_signals(f->store, 1, 4);
    start(f);
    wl_sinks_notify(f->sinks, 4);
    wait_requests(r, 4, 1);
    stop(f);

    /* three 503s for signal 1, then 1, 2, 3, 4 in order */
    static const char *const keys[] = {"1", "1", "1", "1", "2", "3", "4"};
    static const unsigned status[] = {503, 503, 503, 200, 200, 200, 200};
    pthread_mutex_lock(&r->mu);
    assert_int_equal(r->n, 7);
    for (int i = 0; i < 7; i++) {
        assert_string_equal(r->reqs[i].key, keys[i]);
        assert_int_equal(r->reqs[i].status, status[i]);
        assert_string_equal(r->reqs[i].ctype, "application/json");
        assert_int_equal(json_id(r->reqs[i].body), strtoull(keys[i], NULL, 10));
    }
    /* the retried body is the same body */
    assert_string_equal(r->reqs[0].body, r->reqs[3].body);
    pthread_mutex_unlock(&r->mu);
    assert_int_equal(get_cursor(f->store, "sink.webhook.cursor"), 4);

    /* restarted: 1..4 are not sent again, the next one is */
    put_signals(f->store, 5, 5);
    start(f);
    wl_sinks_notify(f->sinks, 5);
    wait_requests(r, 8, 0);
    stop(f);
    pthread_mutex_lock(&r->mu);
    assert_int_equal(r->n, 8);
    assert_string_equal(r->reqs[7].key, "5");
    pthread_mutex_unlock(&r->mu);
    receiver_stop(r);
}

static void test_webhook_slack(void **state)
{
    struct fx *f = *state;
    struct receiver *r = receiver_start(0, 0, 0);
    use_webhook(f, r, WL_WEBHOOK_SLACK);
    put_signals(f->store, 1, 1);
    start(f);
    wl_sinks_notify(f->sinks, 1);
    wait_requests(r, 1, 1);
    stop(f);

    json_t *o = json_loads(r->reqs[0].body, 0, NULL);
    assert_non_null(o);
    assert_int_equal(json_object_size(o), 1);
    const char *text = json_string_value(json_object_get(o, "text"));
    assert_non_null(text);
    assert_string_equal(text, "signal 1 for org " ORG_HEX ": Team over 10 &amp; growing "
                              "&lt;fast&gt; [rule_1] - teams 12 (&gt;= 10), has_feature(sso), "
                              "growth_30d(active_users_monthly) n/a (&gt; 25.5)");
    assert_string_equal(r->reqs[0].key, "1");
    json_decref(o);
    receiver_stop(r);
}

/* An attempt that outlasts webhook_timeout_ms fails and is retried. */
static void test_webhook_timeout(void **state)
{
    struct fx *f = *state;
    struct receiver *r = receiver_start(0, 0, 700);
    use_webhook(f, r, WL_WEBHOOK_JSON);
    f->cfg.webhook_timeout_ms = 200;
    f->cfg.webhook_max_backoff_ms = 100;
    put_signals(f->store, 1, 1);
    start(f);
    wl_sinks_notify(f->sinks, 1);
    wait_requests(r, 2, 0);
    /* the late answer does not count: delivered only by the second request */
    int64_t deadline = now_ms() + WAIT_MS;
    while (get_cursor(f->store, "sink.webhook.cursor") != 1 && now_ms() < deadline)
        sleep_ms(5);
    stop(f);
    assert_int_equal(get_cursor(f->store, "sink.webhook.cursor"), 1);
    pthread_mutex_lock(&r->mu);
    assert_int_equal(r->n, 2);
    assert_string_equal(r->reqs[0].key, "1");
    assert_string_equal(r->reqs[1].key, "1");
    pthread_mutex_unlock(&r->mu);
    receiver_stop(r);
}

/* A webhook that always fails: the file still gets every signal, the
 * webhook never goes past signal 1, and stop does not wait for the backoff. */
static void test_dead_webhook_holds_nothing(void **state)
{
    struct fx *f = *state;
    struct receiver *r = receiver_start(0, 1, 0);
    use_file(f);
    use_webhook(f, r, WL_WEBHOOK_JSON);
    f->cfg.webhook_max_backoff_ms = 60000;
    put_signals(f->store, 1, 3);
    start(f);
    wl_sinks_notify(f->sinks, 3);
    wait_lines(f->file, 3);
    wait_requests(r, 1, 0);

    /* the webhook waits out its backoff (at least 375 ms); the file does not */
    put_signals(f->store, 4, 5);
    wl_sinks_notify(f->sinks, 5);
    wait_lines(f->file, 5);

    int64_t t0 = now_ms();
    stop(f);
    int64_t took = now_ms() - t0;
    assert_true(took < 250);

    assert_file_ids(f->file, 5);
    assert_int_equal(get_cursor(f->store, "sink.webhook.cursor"), 0);
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n; i++)
        assert_string_equal(r->reqs[i].key, "1");
    pthread_mutex_unlock(&r->mu);
    receiver_stop(r);
}

/* Nothing listens: connection refused is a failure like any other. */
static void test_webhook_refused(void **state)
{
    struct fx *f = *state;
    struct receiver *r = receiver_start(0, 0, 0);
    int port = r->port;
    receiver_stop(r); /* the port is free again */
    snprintf(f->cfg.webhook_url, sizeof f->cfg.webhook_url, "http://127.0.0.1:%d/", port);
    put_signals(f->store, 1, 1);
    start(f);
    wl_sinks_notify(f->sinks, 1);
    sleep_ms(300); /* a few attempts at 100..200 ms */
    stop(f);
    assert_int_equal(get_cursor(f->store, "sink.webhook.cursor"), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signal_json_fields),
        cmocka_unit_test(test_signal_json_odd_records),
        cmocka_unit_test(test_signal_summary),
        T(test_nothing_configured),
        T(test_bad_configuration),
        T(test_file_in_order_and_resumes),
        T(test_file_many_batches),
        T(test_file_crash_window),
        T(test_file_only_partial_line),
        T(test_file_ahead_of_log),
        T(test_webhook_retries_in_order),
        T(test_webhook_slack),
        T(test_webhook_timeout),
        T(test_dead_webhook_holds_nothing),
        T(test_webhook_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
