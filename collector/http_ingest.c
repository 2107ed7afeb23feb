/* The public HTTP ingest listener: libmicrohttpd's daemon, the routes and
 * the jobs handed to the writer. Runs on libmicrohttpd's threads (a pool);
 * what they share is read-only (the configuration, the bulletins) or
 * thread-safe (the guard, the writer's queue, atomics). */
#include "http_ingest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "envelope.h"
#include "http_body.h"
#include "http_ingest_parts.h"
#include "http_log.h"
#include "log.h"
#include "metrics.h"
#include "networks.h"
#include "orgkey.h"
#include "rudder.h"

#define THREADS 4
/* Bodies one address may hold at once (unfinished or unanswered), in
 * http_max_body_bytes (and at most a quarter of the bodies' half of
 * max_held_bytes): past it its body is answered 503. */
#define HOLD_BODIES 4
/* A gzip body inflates to at most this many times its size (and
 * http_max_inflated_bytes): the CPU a body costs stays within a bound per
 * byte sent. JSON of the Rudder clients inflates 5 to 20 times. */
#define GZIP_RATIO_MAX 64
#define GZIP_RATIO_FLOOR (64 * 1024)
#define BULLETINS_PATH "/bulletins/"
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

static const char transport[] = "http";

/* libmicrohttpd's own messages for this listener: key=value, rate-limited. */
static struct wl_http_log http_log = WL_HTTP_LOG_INIT("http");

/* Security checks and batches with the writer (submitted, not yet back).
 * Process-wide: a check may come back after its listener stopped. */
static _Atomic uint64_t jobs_in_flight;

/* Bytes of POST bodies held (read, inflated): at most half of max_held_bytes. */
static _Atomic uint64_t bodies_held;

struct wl_http_ingest {
    const struct wl_config *cfg;
    struct wl_writer *writer;
    struct MHD_Daemon *mhd;
    struct wl_http_guard *guard;
    struct wl_bulletins bulletins;
    struct wl_trusted trusted;  /* http_trusted_proxies */
    struct wl_http_tls tls;     /* the PEM files; cert NULL: plain HTTP */
    struct wl_rudder_keys keys; /* rudder_write_keys */
    struct wl_networks *networks; /* the network table (the server's), or NULL */
    uint8_t *salt;              /* the org salt, for allowed_email_domain; NULL: none */
    size_t salt_len;
    pthread_mutex_t submit_mu;  /* quiesced and the submits it stops */
    int quiesced;
    char address[300];
};

enum route { ROUTE_NONE, ROUTE_SECURITY, ROUTE_BULLETIN, ROUTE_BATCH };

/* The routes: a path (or a path prefix, followed by at least one byte) and
 * its one method. A known path with another method is 405. */
static const struct route_row {
    const char *path;
    int prefix;
    const char *method;
    enum route route;
} routes[] = {
    {"/security", 0, MHD_HTTP_METHOD_GET, ROUTE_SECURITY},
    {BULLETINS_PATH, 1, MHD_HTTP_METHOD_GET, ROUTE_BULLETIN},
    {"/v1/batch", 0, MHD_HTTP_METHOD_POST, ROUTE_BATCH},
};

/* One request, from its request line (on_uri) to its end (on_completed). */
struct request {
    size_t query_len;           /* bytes after '?' in the raw request line */
    size_t query_params;        /* parameters in it: '&' separators + 1 (0 when empty) */
    int query_cut;              /* the query was refused and cut before libmicrohttpd split it */
    int path_nul;               /* the raw path holds %00: libmicrohttpd's unescaping would
                                   cut the path there (/security%00x routed as /security) */
    int calls;
    enum route route;           /* set at the headers */
    struct sockaddr_storage client; /* the client address (family 0: unknown), never kept
                                       past the request */
    /* POST /v1/batch */
    struct wl_body body;
    int gzip;                   /* Content-Encoding: gzip */
    int too_large;              /* past http_max_body_bytes: read past, answered 413 */
    int busy;                   /* past a budget (all bodies, or the address's): 503 */
    uint32_t held_units;        /* counted in the address's holds (the guard) */
    uint64_t charged;           /* bytes counted in bodies_held */
    enum { BATCH_READING, BATCH_WAITING, BATCH_DONE } phase;
    struct MHD_Connection *conn; /* resumed when the job is back */
    enum wl_status status;      /* the writer's, when done */
    struct wl_rudder_outcome out;
};

/* ---- answers ---- */

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, const char *type,
                              void *body, size_t len, enum MHD_ResponseMemoryMode mode,
                              const char *hname, const char *hvalue)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (r == NULL) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (hname != NULL)
        MHD_add_response_header(r, hname, hvalue);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* {"error":{"code":...,"message":...}}: fixed texts only, never the sender's bytes. */
static enum MHD_Result answer_error(struct MHD_Connection *conn, unsigned status,
                                    const char *code, const char *message, const char *hname,
                                    const char *hvalue)
{
    json_t *obj = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (text == NULL)
        return MHD_NO;
    return answer(conn, status, "application/json", text, strlen(text), MHD_RESPMEM_MUST_FREE,
                  hname, hvalue);
}

/* ---- GET /security ---- */

struct gather {
    struct wl_sq_param p[WL_SECURITY_PARAMS_MAX + 1];
    size_t n;
};

static enum MHD_Result gather_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                  size_t key_size, const char *value, size_t value_size)
{
    struct gather *g = cls;
    (void)kind;
    g->p[g->n] = (struct wl_sq_param){key, key_size, value, value ? value_size : 0};
    g->n++;
    /* one past the most read is enough to refuse */
    return g->n < sizeof g->p / sizeof g->p[0] ? MHD_YES : MHD_NO;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int overloaded(const struct wl_http_ingest *h)
{
    return atomic_load(&jobs_in_flight) >= h->cfg->http_max_inflight ||
           wl_writer_queued_pings(h->writer) >= h->cfg->writer_queue_pings;
}

/* Submits job unless the listener is quiesced (the writer is stopping):
 * 1, or 0 with the job still the caller's. */
static int hand_over(struct wl_http_ingest *h, struct wl_job *job)
{
    pthread_mutex_lock(&h->submit_mu);
    int ok = !h->quiesced;
    if (ok) {
        atomic_fetch_add(&jobs_in_flight, 1);
        wl_writer_submit(h->writer, job);
    }
    pthread_mutex_unlock(&h->submit_mu);
    return ok;
}

static const struct sockaddr *client_of(const struct request *req)
{
    return req->client.ss_family != 0 ? (const struct sockaddr *)&req->client : NULL;
}

/* Hands the check to the writer as one ping; the answer does not wait. */
static void submit(struct wl_http_ingest *h, const struct wl_security_check *c, int64_t now,
                   const struct sockaddr *client)
{
    struct wl_job *job;
    wl_ping_batch *batch;

    if (overloaded(h) || (batch = wl_security_batch(c, now)) == NULL) {
        wl_count(WL_M_http_security_overloaded, 1);
        return;
    }
    if ((job = wl_job_new()) == NULL) {
        wl_ping_batch_free(batch);
        wl_count(WL_M_http_security_overloaded, 1);
        return;
    }
    job->batch = batch;
    if ((job->edge = wl_security_edge(c)) == NULL) {
        wl_job_free(job);
        wl_count(WL_M_http_security_overloaded, 1);
        return;
    }
    wl_edge_apply_network(batch, job->edge, h->networks, client);
    job->received_at = now;
    job->transport = transport; /* no origin, no peer address: nothing of the sender kept */
    if (!hand_over(h, job)) {
        wl_job_free(job);
        wl_count(WL_M_http_security_overloaded, 1);
        return;
    }
    wl_count_t(WL_TRANSPORT_HTTP, WL_T_pings_received, 1);
    wl_count(WL_M_http_security_queued, 1);
}

static enum MHD_Result security(struct wl_http_ingest *h, struct MHD_Connection *conn,
                                const struct request *req)
{
    struct gather g = {.n = 0};
    struct wl_security_check c;
    char why[96];
    size_t len = 0;

    MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, gather_one, &g);
    if (wl_security_parse(g.p, g.n, h->cfg->max_count, &c, why, sizeof why) != 0) {
        wl_count(WL_M_http_security_bad_request, 1);
        return answer_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request", why, NULL, NULL);
    }
    if (c.test_run)
        wl_count(WL_M_http_security_test_run, 1); /* answered, not ingested */
    else
        submit(h, &c, now_ms(), client_of(req));
    char *body = wl_bulletins_answer(&h->bulletins, c.version, &len);
    if (body == NULL)
        return MHD_NO;
    return answer(conn, MHD_HTTP_OK, "application/json", body, len, MHD_RESPMEM_MUST_FREE, NULL,
                  NULL);
}

/* ---- GET /bulletins/<id> ---- */

static enum MHD_Result bulletin(struct wl_http_ingest *h, struct MHD_Connection *conn,
                                const char *id)
{
    const struct wl_bulletin *b = wl_bulletins_find(&h->bulletins, id);
    if (b == NULL) {
        wl_count(WL_M_http_not_found, 1);
        return answer_error(conn, MHD_HTTP_NOT_FOUND, "not_found", "no such bulletin", NULL,
                            NULL);
    }
    wl_count(WL_M_http_bulletins_served, 1);
    /* the bodies live as long as the daemon */
    return answer(conn, MHD_HTTP_OK, "text/html; charset=utf-8", b->body, b->body_len,
                  MHD_RESPMEM_PERSISTENT, NULL, NULL);
}


/* ---- POST /v1/batch (RudderStack) ---- */

/* A body holds raw domains, customer and license ids: wiped before it goes. */
static void wipe_free(void *p, size_t len)
{
    if (p != NULL) {
        sodium_memzero(p, len);
        free(p);
    }
}

/* Counts n more bytes of bodies held: 0 when that passes the listener's
 * share of max_held_bytes (the request is then answered 503). */
static int body_charge(const struct wl_http_ingest *h, struct request *req, size_t n)
{
    uint64_t held = atomic_fetch_add(&bodies_held, n) + n;
    req->charged += n;
    return held <= h->cfg->max_held_bytes / 2;
}

static enum MHD_Result batch_error(struct MHD_Connection *conn, unsigned status,
                                   enum wl_counter c, const char *code, const char *message)
{
    wl_count(c, 1);
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
        return answer_error(conn, status, code, message, MHD_HTTP_HEADER_RETRY_AFTER, "5");
    return answer_error(conn, status, code, message, NULL, NULL);
}

/* At the headers: the write key, the encoding, the declared length. */
static enum MHD_Result batch_headers(struct wl_http_ingest *h, struct MHD_Connection *conn,
                                     struct request *req)
{
    char *pass = NULL;
    char *user = MHD_basic_auth_get_username_password(conn, &pass);
    int ok = wl_rudder_keys_allow(&h->keys, user, user ? strlen(user) : 0);
    if (user != NULL) {
        sodium_memzero(user, strlen(user));
        MHD_free(user);
    }
    if (pass != NULL) {
        sodium_memzero(pass, strlen(pass));
        MHD_free(pass);
    }
    if (!ok) {
        wl_count(WL_M_http_batch_unauthorized, 1);
        return answer_error(conn, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                            "no write key this collector accepts (HTTP Basic user)",
                            MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Basic realm=\"warmline\"");
    }
    const char *enc = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_CONTENT_ENCODING);
    if (enc != NULL && strcasecmp(enc, "gzip") == 0)
        req->gzip = 1;
    else if (enc != NULL && enc[0] != '\0' && strcasecmp(enc, "identity") != 0)
        return batch_error(conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                           WL_M_http_batch_bad_request, "unsupported_encoding",
                           "Content-Encoding must be gzip or none");
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL && strtoull(cl, NULL, 10) > h->cfg->http_max_body_bytes)
        return batch_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, WL_M_http_batch_too_large,
                           "too_large", "the body is over http_max_body_bytes");
    return MHD_YES;
}

/* A chunk of the body: kept up to http_max_body_bytes, read past after
 * (answered 413); past the budget of all bodies or the address's, 503. */
static void batch_read(struct wl_http_ingest *h, struct request *req, const char *data,
                       size_t n)
{
    if (req->too_large || req->busy)
        return;
    if (n > h->cfg->http_max_body_bytes - req->body.len) {
        req->too_large = 1;
        return;
    }
    if (wl_http_guard_hold(h->guard, client_of(req), req->body.len + n, &req->held_units) != 0 ||
        !body_charge(h, req, n) ||
        wl_body_add(&req->body, data, n, h->cfg->http_max_body_bytes) != 0)
        req->busy = 1;
}

/* The answer once the writer is done with the batch. */
static enum MHD_Result batch_answer(struct MHD_Connection *conn, struct request *req)
{
    size_t len = 0;
    if (req->status == WL_ACK_RETRY_LATER)
        return batch_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, WL_M_http_batch_unavailable,
                           "unavailable", "not stored: send the batch again");
    char *text = wl_rudder_answer(&req->out, &len);
    if (text == NULL)
        return MHD_NO;
    wl_count(WL_M_http_batch_stored, 1);
    return answer(conn, MHD_HTTP_OK, "application/json", text, len, MHD_RESPMEM_MUST_FREE, NULL,
                  NULL);
}

/* The whole body is in: read it, map it, and hand its pings to the writer;
 * the connection waits (suspended) until they are durable. */
static enum MHD_Result batch(struct wl_http_ingest *h, struct MHD_Connection *conn,
                             struct request *req)
{
    struct wl_rudder_result res;
    char why[128];
    uint8_t *inflated = NULL;
    size_t ilen = 0;

    if (req->phase == BATCH_DONE)
        return batch_answer(conn, req);
    if (req->phase == BATCH_WAITING)
        return MHD_YES;
    if (req->too_large)
        return batch_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, WL_M_http_batch_too_large,
                           "too_large", "the body is over http_max_body_bytes");
    if (req->busy)
        return batch_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, WL_M_http_batch_unavailable,
                           "unavailable", "too many bodies held: send the batch again");
    const char *json = (const char *)req->body.p;
    size_t jlen = req->body.len;
    if (req->gzip) {
        uint64_t cap = (uint64_t)req->body.len * GZIP_RATIO_MAX;
        if (cap < GZIP_RATIO_FLOOR)
            cap = GZIP_RATIO_FLOOR;
        if (cap > h->cfg->http_max_inflated_bytes)
            cap = h->cfg->http_max_inflated_bytes;
        int rc = wl_http_gunzip(req->body.p, req->body.len, cap, &inflated, &ilen);
        if (rc == -E2BIG)
            return batch_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, WL_M_http_batch_too_large,
                               "too_large",
                               "the body inflates past http_max_inflated_bytes or 64 times "
                               "its size");
        if (rc != 0)
            return batch_error(conn, MHD_HTTP_BAD_REQUEST, WL_M_http_batch_bad_request,
                               "bad_request", "the body is not a whole gzip stream");
        if (!body_charge(h, req, ilen)) {
            wipe_free(inflated, ilen);
            return batch_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, WL_M_http_batch_unavailable,
                               "unavailable", "too many bodies held: send the batch again");
        }
        json = (const char *)inflated;
        jlen = ilen;
    }
    struct wl_rudder_opts o = {
        .max_count = h->cfg->max_count,
        .max_messages = h->cfg->rudder_max_messages,
        .max_depth = h->cfg->http_max_json_depth,
        .max_values = h->cfg->http_max_json_values,
        .org_salt = h->salt,
        .org_salt_len = h->salt_len,
    };
    /* jansson's tree: at most 384 B a value + 3 B a byte of text (http_body.h),
     * and a value takes at least two bytes of text */
    uint64_t values = jlen / 2 + 1 < h->cfg->http_max_json_values ? jlen / 2 + 1
                                                                   : h->cfg->http_max_json_values;
    uint64_t tree = 3 * (uint64_t)jlen + 384 * values;
    if (!body_charge(h, req, tree)) {
        wipe_free(inflated, ilen);
        return batch_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, WL_M_http_batch_unavailable,
                           "unavailable", "too many bodies held: send the batch again");
    }
    int64_t now = now_ms();
    int rc = wl_rudder_map(json ? json : "", jlen, &o, now, &res, why, sizeof why);
    /* the tree is gone, and the inflated body goes (raw domains, customer
     * and license ids: wiped) */
    uint64_t gone = tree + (inflated != NULL ? ilen : 0);
    wipe_free(inflated, ilen);
    atomic_fetch_sub(&bodies_held, gone);
    req->charged -= gone;
    if (rc != 0)
        return batch_error(conn, MHD_HTTP_BAD_REQUEST, WL_M_http_batch_bad_request,
                           "bad_request", why);
    for (int d = 0; d < WL_RUDDER_N_DROPS; d++)
        req->out.dropped += res.dropped[d];
    req->out.ignored = res.ignored;
    wl_count(WL_M_http_batch_events_dropped, req->out.dropped);
    wl_count(WL_M_http_batch_events_ignored, req->out.ignored);
    if (res.batch->n_pings == 0) { /* nothing to store: answered at once */
        wl_rudder_result_free(&res);
        req->status = WL_ACK_OK;
        return batch_answer(conn, req);
    }
    /* the buckets count pings: the request's token paid for one */
    uint64_t wait = wl_http_guard_admit_n(h->guard, client_of(req),
                                          (uint32_t)(res.batch->n_pings - 1));
    if (wait > 0) {
        char after[24];
        wl_rudder_result_free(&res);
        snprintf(after, sizeof after, "%llu", (unsigned long long)(wait + 999) / 1000);
        wl_count(WL_M_http_rate_limited, 1);
        return answer_error(conn, MHD_HTTP_TOO_MANY_REQUESTS, "rate_limited",
                            "too many events from this address", MHD_HTTP_HEADER_RETRY_AFTER,
                            after);
    }
    struct wl_job *job;
    if (overloaded(h) || (job = wl_job_new()) == NULL) {
        wl_rudder_result_free(&res);
        return batch_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, WL_M_http_batch_unavailable,
                           "unavailable", "the writer is busy: send the batch again");
    }
    wl_edge_apply_network(res.batch, res.edge, h->networks, client_of(req));
    size_t n = res.batch->n_pings;
    job->batch = res.batch;
    job->edge = res.edge;
    job->received_at = now;
    job->transport = transport; /* no origin, no peer address: nothing of the sender kept */
    job->http_req = req;
    req->conn = conn;
    req->phase = BATCH_WAITING;
    MHD_suspend_connection(conn); /* until wl_http_job_done resumes it */
    if (!hand_over(h, job)) {
        req->phase = BATCH_DONE;
        req->status = WL_ACK_RETRY_LATER;
        wl_job_free(job);
        MHD_resume_connection(conn);
        return MHD_YES;
    }
    wl_count_t(WL_TRANSPORT_HTTP, WL_T_pings_received, n);
    wl_count(WL_M_http_batch_events_queued, n);
    return MHD_YES;
}

/* ---- the request ---- */

/* At the headers: the limits, then the route. Refusals are answered here
 * (libmicrohttpd then closes the connection: an abusive sender loses it);
 * a request that may go on returns MHD_YES with req->route set. */
static enum MHD_Result on_headers(struct wl_http_ingest *h, struct MHD_Connection *conn,
                                  const char *url, const char *method, struct request *req)
{
    wl_count(WL_M_http_requests, 1);
    struct sockaddr_storage client; /* used here, never kept */
    int known = wl_http_client_address(conn, &h->trusted, &client) == 0;
    const union MHD_ConnectionInfo *sc =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    uint64_t wait = sc != NULL && wl_http_guard_conn_use_prepaid(h->guard, sc->socket_context)
                        ? 0 /* paid at accept, with its TLS handshake (on_accept) */
                        : wl_http_guard_admit(h->guard, known ? (struct sockaddr *)&client : NULL);
    if (wait > 0) {
        char after[24];
        snprintf(after, sizeof after, "%llu", (unsigned long long)(wait + 999) / 1000);
        wl_count(WL_M_http_rate_limited, 1);
        return answer_error(conn, MHD_HTTP_TOO_MANY_REQUESTS, "rate_limited",
                            "too many requests from this address", MHD_HTTP_HEADER_RETRY_AFTER,
                            after);
    }
    if (req->query_len > h->cfg->http_max_query_bytes) {
        wl_count(WL_M_http_query_too_long, 1);
        return answer_error(conn, MHD_HTTP_URI_TOO_LONG, "query_too_long",
                            "the query string is over http_max_query_bytes", NULL, NULL);
    }
    const struct route_row *row = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0] && !req->path_nul; i++) {
        size_t plen = strlen(routes[i].path);
        if (routes[i].prefix ? strncmp(url, routes[i].path, plen) == 0 && url[plen] != '\0'
                             : strcmp(url, routes[i].path) == 0)
            row = &routes[i];
    }
    if (row == NULL) { /* no path of ours holds a NUL */
        wl_count(WL_M_http_not_found, 1);
        return answer_error(conn, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint", NULL,
                            NULL);
    }
    if (strcmp(method, row->method) != 0) {
        wl_count(WL_M_http_method_not_allowed, 1);
        return answer_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                            strcmp(row->method, MHD_HTTP_METHOD_GET) == 0 ? "use GET"
                                                                          : "use POST",
                            MHD_HTTP_HEADER_ALLOW, row->method);
    }
    if (req->query_cut && row->route == ROUTE_SECURITY) {
        /* over WL_SECURITY_PARAMS_MAX: what wl_security_parse says of 33 */
        wl_count(WL_M_http_security_bad_request, 1);
        return answer_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request",
                            "too many query parameters", NULL, NULL);
    }
    req->route = row->route; /* other routes read no query: a cut one is ignored */
    if (known)
        req->client = client;
    if (req->route == ROUTE_BATCH)
        return batch_headers(h, conn, req);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct wl_http_ingest *h = cls;
    struct request *req = *con_cls;
    (void)version;
    (void)upload_data;

    if (req == NULL) /* on_uri could not allocate */
        return MHD_NO;
    if (req->calls++ == 0)
        return on_headers(h, conn, url, method, req);
    if (req->route == ROUTE_BATCH) {
        if (*upload_size != 0) {
            batch_read(h, req, upload_data, *upload_size);
            *upload_size = 0;
            return MHD_YES;
        }
        return batch(h, conn, req);
    }
    if (*upload_size != 0) { /* a body on a GET: read past, never kept (the deadline bounds it) */
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->route == ROUTE_NONE) /* answered at the headers */
        return MHD_YES;
    /* answered once the request is whole, so the connection may be kept alive */
    if (req->route == ROUTE_SECURITY)
        return security(h, conn, req);
    return bulletin(h, conn, url + strlen(BULLETINS_PATH));
}

/* The request line is in: the request's state starts here (it becomes
 * *con_cls). Only the query's length and parameter count are kept, never the
 * line.
 *
 * libmicrohttpd calls this before it splits the query into parameters, and
 * splits it in place right after, in the same buffer (0.9.75 and 1.0 alike).
 * Each parameter takes a 64-byte record from the connection's memory pool
 * (http_max_header_bytes), and a query of a few hundred '&' runs the pool
 * dry: 0.9.75 then queues its 431 but goes on reading headers with no
 * buffer, and the connection hangs unanswered until the deadline. So a query
 * this listener will refuse anyway (over http_max_query_bytes, or more
 * parameters than any route reads) is cut here, its first byte made the end
 * of the string: libmicrohttpd splits nothing, and on_headers answers the
 * refusal at once. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct wl_http_ingest *h = cls;
    struct request *req = calloc(1, sizeof *req);
    (void)conn;
    if (req == NULL || uri == NULL)
        return req;
    char *q = strchr(uri, '?');
    size_t plen = q ? (size_t)(q - uri) : strlen(uri);
    req->path_nul = memmem(uri, plen, "%00", 3) != NULL;
    if (q == NULL)
        return req;
    req->query_len = strlen(q + 1);
    for (const char *p = q + 1; *p != '\0'; p++)
        req->query_params += *p == '&';
    req->query_params += req->query_len > 0;
    if (req->query_len > h->cfg->http_max_query_bytes ||
        req->query_params > WL_SECURITY_PARAMS_MAX) {
        q[1] = '\0'; /* the buffer is libmicrohttpd's own, writable: see above */
        req->query_cut = 1;
    }
    return req;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct wl_http_ingest *h = cls;
    struct request *req = *con_cls;
    (void)toe;
    if (req != NULL) {
        atomic_fetch_sub(&bodies_held, req->charged);
        wl_http_guard_release(h->guard, client_of(req), req->held_units);
        wl_body_free(&req->body);
    }
    free(req);
    *con_cls = NULL;
    /* the next request on this connection gets a deadline of its own */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci != NULL)
        wl_http_guard_conn_restart(h->guard, ci->socket_context);
}

/* HTTPS: a TLS handshake costs the listener about 2.4 ms of CPU (a key
 * exchange and a signature) before any request is read, so each connection
 * takes a token from its address's bucket and the total one at accept,
 * before the handshake; a refused one is closed at once (counted as rate
 * limited). That token pays for the connection's first request (on_connection
 * marks it prepaid), so a client that asks once costs one token as over HTTP.
 * Trusted proxies are exempt: their clients are limited per request. Plain
 * HTTP: accepting costs little, only requests take tokens. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t len)
{
    struct wl_http_ingest *h = cls;
    (void)len;
    if (h->tls.cert == NULL || wl_trusted_has(&h->trusted, addr) ||
        wl_http_guard_admit(h->guard, addr) == 0)
        return MHD_YES;
    wl_count(WL_M_http_rate_limited, 1);
    return MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct wl_http_ingest *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = ci ? wl_http_guard_conn_open(h->guard, ci->connect_fd) : NULL;
        if (*socket_context == NULL && ci != NULL) /* no slot: not served */
            shutdown(ci->connect_fd, SHUT_RDWR);
        const union MHD_ConnectionInfo *pi =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (h->tls.cert != NULL && pi != NULL && !wl_trusted_has(&h->trusted, pi->client_addr))
            wl_http_guard_conn_prepay(h->guard, *socket_context); /* as on_accept took */
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        wl_http_guard_conn_close(h->guard, *socket_context);
        *socket_context = NULL;
    }
}

/* ---- jobs back from the writer ---- */

int wl_http_job(const struct wl_job *job)
{
    return job->transport == transport;
}

void wl_http_job_done(struct wl_job *job)
{
    struct request *req = job->http_req;
    atomic_fetch_sub(&jobs_in_flight, 1);
    if (req != NULL) { /* a batch: its connection waits for this */
        req->status = job->status;
        req->out.accepted = job->accepted;
        req->out.duplicates = job->duplicates;
        req->out.rejected = job->n_rejected;
        req->phase = BATCH_DONE;
        struct MHD_Connection *conn = req->conn;
        wl_job_free(job);
        MHD_resume_connection(conn); /* req is libmicrohttpd's again */
        return;
    }
    wl_job_free(job);
}

void wl_http_ingest_quiesce(struct wl_http_ingest *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->submit_mu);
    h->quiesced = 1;
    pthread_mutex_unlock(&h->submit_mu);
}

/* ---- lifecycle ---- */

int wl_http_ingest_start(const struct wl_config *cfg, struct wl_writer *writer,
                         struct wl_networks *networks, struct wl_http_ingest **out, char *err,
                         size_t errlen)
{
    struct sockaddr_storage ss;
    char host[256];
    int rc;

    *out = NULL;
    if (cfg->http_listen[0] == '\0')
        return 0;
    if (wl_parse_listen("http_listen", cfg->http_listen, &ss, host, sizeof host, err,
                        errlen) != 0)
        return -EINVAL;
    int port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    struct wl_http_ingest *h = calloc(1, sizeof *h);
    if (h == NULL)
        return -ENOMEM;
    h->cfg = cfg;
    h->writer = writer;
    h->networks = networks;
    pthread_mutex_init(&h->submit_mu, NULL);
    if (cfg->org_salt_file[0] != '\0' &&
        wl_org_salt_load(cfg->org_salt_file, &h->salt, &h->salt_len, err, errlen) != 0)
        wl_warn("http_no_org_salt", "reason=\"%s\" effect=\"allowed_email_domain is not "
                "used: installs without a network are their own organization\"", err);
    if ((rc = wl_rudder_keys_parse(cfg->rudder_write_keys, &h->keys, err, errlen)) != 0 ||
        (rc = wl_bulletins_load(cfg->bulletins_file, &h->bulletins, err, errlen)) != 0 ||
        (rc = wl_trusted_parse(cfg->http_trusted_proxies, &h->trusted, err, errlen)) != 0 ||
        (rc = wl_http_tls_load(cfg->http_tls_cert_file, cfg->http_tls_key_file, &h->tls, err,
                               errlen)) != 0)
        goto fail;
    struct wl_http_guard_opts go = {
        .table_size = cfg->http_address_table_size,
        .rate = cfg->http_rate_per_address,
        .burst = cfg->http_burst_per_address,
        .rate_total = cfg->http_rate_total,
        .burst_total = cfg->http_burst_total,
        .limit_loopback = cfg->limit_loopback,
        .max_conns = cfg->http_max_connections,
        .deadline_ms = cfg->http_request_deadline_ms,
        /* a few bodies each, and at most a quarter of the bodies' budget: one
         * address cannot take it */
        .hold_max_bytes = HOLD_BODIES * cfg->http_max_body_bytes < cfg->max_held_bytes / 8
                              ? HOLD_BODIES * cfg->http_max_body_bytes
                              : cfg->max_held_bytes / 8,
    };
    if ((rc = wl_http_guard_new(&go, &h->guard, err, errlen)) != 0)
        goto fail;
    /* suspend and resume: a batch is answered once the writer made it durable */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* HTTPS: TLS 1.2 and 1.3 only (Go's client and every current one speak them) */
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls.cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls.key},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL},
    };
    if (h->tls.cert != NULL)
        flags |= MHD_USE_TLS;
    else
        tls_opts[0].option = MHD_OPTION_END;
    h->mhd = MHD_start_daemon(
        flags, (uint16_t)port, on_accept, h, on_request, h,
        MHD_OPTION_EXTERNAL_LOGGER, wl_mhd_logger, &http_log, /* first: it logs the rest */
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)THREADS,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, h,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections_per_address,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(cfg->http_timeout_ms / 1000),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->http_max_header_bytes,
        MHD_OPTION_ARRAY, tls_opts,
        MHD_OPTION_END);
    if (h->mhd == NULL) {
        snprintf(err, errlen, "cannot listen on HTTP%s %s (address in use?)",
                 h->tls.cert ? "S" : "", cfg->http_listen);
        rc = -EADDRINUSE;
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    int bound = info ? info->port : port;
    snprintf(h->address, sizeof h->address, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
             host, bound);
    wl_info("http_started",
            "http=%s https=%d trusted_proxies=%zu bulletins=%zu rate_per_address=%llu "
            "burst_per_address=%llu max_connections=%llu request_deadline_ms=%llu",
            h->address, h->tls.cert != NULL, h->trusted.n, h->bulletins.n,
            (unsigned long long)cfg->http_rate_per_address,
            (unsigned long long)cfg->http_burst_per_address,
            (unsigned long long)cfg->http_max_connections,
            (unsigned long long)cfg->http_request_deadline_ms);
    *out = h;
    return 0;

fail:
    wl_http_ingest_stop(h);
    return rc;
}

int wl_http_ingest_check(const struct wl_config *cfg, char *err, size_t errlen)
{
    struct wl_bulletins b;
    struct wl_trusted t;
    int rc = wl_bulletins_load(cfg->bulletins_file, &b, err, errlen);
    if (rc != 0)
        return rc;
    wl_bulletins_free(&b);
    struct wl_rudder_keys keys;
    if ((rc = wl_trusted_parse(cfg->http_trusted_proxies, &t, err, errlen)) != 0 ||
        (rc = wl_rudder_keys_parse(cfg->rudder_write_keys, &keys, err, errlen)) != 0)
        return rc;
    struct wl_http_tls tls;
    if ((rc = wl_http_tls_load(cfg->http_tls_cert_file, cfg->http_tls_key_file, &tls, err,
                               errlen)) == 0)
        wl_http_tls_free(&tls);
    return rc;
}

void wl_http_ingest_address(const struct wl_http_ingest *h, char *out, size_t len)
{
    snprintf(out, len, "%s", h->address);
}

void wl_http_ingest_stop(struct wl_http_ingest *h)
{
    if (h == NULL)
        return;
    if (h->mhd != NULL) {
        MHD_stop_daemon(h->mhd);
        wl_http_log_flush(&http_log);
    }
    wl_http_guard_free(h->guard);
    wl_bulletins_free(&h->bulletins);
    wl_http_tls_free(&h->tls);
    if (h->salt != NULL) {
        sodium_memzero(h->salt, h->salt_len);
        free(h->salt);
    }
    pthread_mutex_destroy(&h->submit_mu);
    free(h);
}
