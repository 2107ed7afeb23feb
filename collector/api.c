#include "api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_http.h"
#include "api_page.h"
#include "http_log.h"
#include "log.h"
#include "metrics.h"
#include "orgkey.h"
#include "signal_json.h"
#include "token.h"

#define THREADS 4

/* libmicrohttpd's own messages for this listener: key=value, rate-limited. */
static struct wl_http_log api_log = WL_HTTP_LOG_INIT("api");

/* ---- tokens ---- */

/* The token in the file that option names (*out = NULL when path is empty),
 * read by the same strict rules as the CLI's (token.h). */
static int load_token(const char *option, const char *path, char **out, char *err,
                      size_t errlen)
{
    *out = NULL;
    if (path[0] == '\0')
        return 0;
    return wl_token_from_file(option, path, out, err, errlen);
}

static int token_equal(const char *given, size_t glen, const char *want)
{
    size_t wlen = strlen(want);
    if (glen != wlen) /* lengths are not secret; the bytes are */
        return 0;
    return sodium_memcmp(given, want, wlen) == 0;
}

/* ---- answers ---- */

/* Queues body (taken) with the content type and, when allow is set, an
 * Allow header. */
static enum MHD_Result queue(struct MHD_Connection *conn, unsigned status, const char *type,
                             char *body, size_t len, const char *allow)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    if (type != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    /* data, never a document: no sniffing, nothing to run or frame */
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'none'; frame-ancestors 'none'");
    if (allow != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result wl_api_send_text(struct MHD_Connection *conn, unsigned status, const char *type,
                                 char *body, size_t len)
{
    return queue(conn, status, type, body, len, NULL);
}

enum MHD_Result wl_api_send_no_content(struct MHD_Connection *conn)
{
    return queue(conn, MHD_HTTP_NO_CONTENT, NULL, NULL, 0, NULL);
}

/* obj (taken) as one line of JSON and a newline. */
static enum MHD_Result queue_json(struct MHD_Connection *conn, unsigned status, json_t *obj,
                                  const char *allow)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(obj);
    if (text == NULL)
        return MHD_NO;
    size_t n = strlen(text);
    char *body = realloc(text, n + 2);
    if (body == NULL) {
        free(text);
        return MHD_NO;
    }
    body[n] = '\n';
    body[n + 1] = '\0';
    return queue(conn, status, "application/json", body, n + 1, allow);
}

enum MHD_Result wl_api_send_json(struct MHD_Connection *conn, unsigned status, json_t *obj)
{
    return queue_json(conn, status, obj, NULL);
}

static json_t *error_json(const char *code, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* messages quote what the client sent: keep them valid UTF-8 */
    return json_pack("{s:{s:s,s:o}}", "error", "code", code, "message",
                     wl_json_string_lossy(msg, strlen(msg)));
}

enum MHD_Result wl_api_send_error(struct MHD_Connection *conn, unsigned status, const char *code,
                                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *obj = error_json(code, fmt, ap);
    va_end(ap);
    return queue_json(conn, status, obj, NULL);
}

enum MHD_Result wl_api_storage_error(struct MHD_Connection *conn, const char *what,
                                     const char *err)
{
    wl_error("api_storage_error", "what=%s error=\"%s\"", what, err);
    return wl_api_send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "storage_error", "%s: %s",
                             what, err);
}

static enum MHD_Result method_not_allowed(struct MHD_Connection *conn, const char *allow)
{
    json_t *obj = json_pack("{s:{s:s,s:s+}}", "error", "code", "method_not_allowed",
                            "message", "use ", allow);
    return queue_json(conn, MHD_HTTP_METHOD_NOT_ALLOWED, obj, allow);
}

int wl_api_need_salt(const struct wl_req *rq, enum MHD_Result *ret)
{
    if (rq->api->org_salt != NULL)
        return 1;
    *ret = wl_api_send_error(rq->conn, MHD_HTTP_SERVICE_UNAVAILABLE, "no_org_salt",
                             "the org salt is not loaded (%s): domains cannot be matched",
                             rq->api->salt_error);
    return 0;
}

/* ---- auth ---- */

enum access { ACCESS_PUBLIC, ACCESS_READ, ACCESS_ADMIN };

/* 1 when the request may go on; else the 401 is queued. */
static int authorized(struct wl_api *api, struct MHD_Connection *conn, enum access need,
                      enum MHD_Result *ret)
{
    if (need == ACCESS_PUBLIC || (api->read_token == NULL && api->admin_token == NULL))
        return 1; /* no tokens: loopback only, enforced at start */
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    if (h != NULL && strncmp(h, "Bearer ", 7) == 0) {
        const char *tok = h + 7;
        size_t len = strlen(tok);
        if (api->admin_token != NULL && token_equal(tok, len, api->admin_token))
            return 1;
        if (need == ACCESS_READ && api->read_token != NULL &&
            token_equal(tok, len, api->read_token))
            return 1;
    }
    *ret = wl_api_send_error(conn, MHD_HTTP_UNAUTHORIZED, "unauthorized", "%s",
                             h == NULL ? "missing Authorization: Bearer <token>"
                                       : "wrong token for this endpoint");
    return 0;
}

/* ---- routes ---- */

static enum MHD_Result healthz(struct wl_req *rq)
{
    return wl_api_send_json(rq->conn, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
}

static enum MHD_Result readyz(struct wl_req *rq)
{
    int ready = atomic_load(&rq->api->ready);
    return wl_api_send_json(rq->conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                            json_pack("{s:s}", "status", ready ? "ready" : "stopping"));
}

static enum MHD_Result metrics(struct wl_req *rq)
{
    size_t len = 0;
    char *text = wl_metrics_prometheus(rq->api->store, &len);
    if (text == NULL)
        return MHD_NO;
    return wl_api_send_text(rq->conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                            text, len);
}

struct route {
    const char *path;
    int prefix;                 /* path is a prefix; the rest (not empty) is rq->rest */
    const char *method;
    enum access access;
    enum MHD_Result (*fn)(struct wl_req *rq);
    int networks_body;          /* its body's cap is api_max_networks_bytes */
    const char *media;          /* the Content-Type its body is (no tokens: required) */
};

/* Rows with the same path are one resource, listed together; the first
 * resource whose path matches is the one. */
static const struct route routes[] = {
    {"/healthz", 0, "GET", ACCESS_PUBLIC, healthz},
    {"/readyz", 0, "GET", ACCESS_PUBLIC, readyz},
    {"/", 0, "GET", ACCESS_PUBLIC, wl_api_page},          /* the page: no data */
    {"/assets/", 1, "GET", ACCESS_PUBLIC, wl_api_asset},
    {"/metrics", 0, "GET", ACCESS_READ, metrics},
    {"/v1/accounts/hot", 0, "GET", ACCESS_READ, wl_api_hot},
    {"/v1/accounts/", 1, "GET", ACCESS_READ, wl_api_account},
    {"/v1/signals", 0, "GET", ACCESS_READ, wl_api_signals},
    {"/v1/rules", 0, "GET", ACCESS_READ, wl_api_rules},
    {"/v1/named-accounts", 0, "GET", ACCESS_READ, wl_api_named_list},
    {"/v1/named-accounts", 0, "PUT", ACCESS_ADMIN, wl_api_named_put, 0, "text/csv"},
    {"/v1/named-accounts/", 1, "DELETE", ACCESS_ADMIN, wl_api_named_delete},
    {"/v1/networks", 0, "GET", ACCESS_READ, wl_api_networks_list},
    {"/v1/networks", 0, "PUT", ACCESS_ADMIN, wl_api_networks_put, 1, "text/csv"},
    {"/v1/forget", 0, "POST", ACCESS_ADMIN, wl_api_forget, 0, "application/json"},
    {"/v1/deletions", 0, "GET", ACCESS_ADMIN, wl_api_deletions},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

static int path_matches(const struct route *r, const char *url)
{
    if (!r->prefix)
        return strcmp(url, r->path) == 0;
    size_t n = strlen(r->path);
    return strncmp(url, r->path, n) == 0 && url[n] != '\0';
}

/* The route for url and method. NULL with *first = NULL: no such path;
 * NULL with *first set: the path exists, not with this method (allow
 * lists its methods). */
static const struct route *find_route(const char *url, const char *method,
                                      const struct route **first, char *allow, size_t allowlen)
{
    size_t i = 0, n = 0;

    *first = NULL;
    allow[0] = '\0';
    while (i < N_ROUTES && !path_matches(&routes[i], url))
        i++;
    if (i == N_ROUTES)
        return NULL;
    *first = &routes[i];
    for (; i < N_ROUTES && strcmp(routes[i].path, (*first)->path) == 0; i++) {
        if (strcmp(routes[i].method, method) == 0)
            return &routes[i];
        n += (size_t)snprintf(allow + n, n < allowlen ? allowlen - n : 0, "%s%s",
                              n ? ", " : "", routes[i].method);
    }
    return NULL;
}

/* What one request carries from its headers to its answer. */
struct request {
    const struct route *route;  /* NULL once answered at the headers */
    char *body;                 /* NUL-terminated */
    size_t len, cap;
    int too_large;
};

static void request_free(struct request *req)
{
    if (req == NULL)
        return;
    free(req->body);
    free(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    request_free(*con_cls);
    *con_cls = NULL;
}

static int takes_body(const struct route *r)
{
    return strcmp(r->method, "PUT") == 0 || strcmp(r->method, "POST") == 0;
}

/* The largest body the route takes, and the option that says so. */
static uint64_t body_cap(const struct wl_api *api, const struct route *r, const char **option)
{
    *option = r->networks_body ? "api_max_networks_bytes" : "api_max_body_bytes";
    return r->networks_body ? api->cfg->api_max_networks_bytes : api->cfg->api_max_body_bytes;
}

static enum MHD_Result too_large(struct wl_api *api, struct MHD_Connection *conn,
                                 const struct route *r)
{
    const char *option;
    uint64_t cap = body_cap(api, r, &option);
    return wl_api_send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
                             "the body is over %s (%llu bytes)", option,
                             (unsigned long long)cap);
}

/* At the headers: route, authorize, and turn away a body declared too
 * large. Returns MHD_YES to read on, or the queued answer. */
static enum MHD_Result on_headers(struct wl_api *api, struct MHD_Connection *conn,
                                  const char *url, const char *method, struct request *req)
{
    const struct route *first, *r;
    enum MHD_Result ret = MHD_NO;
    char allow[64];

    r = find_route(url, method, &first, allow, sizeof allow);
    if (r == NULL) {
        /* a wrong method answers to readers; only the public paths to all */
        if (!authorized(api, conn, first && first->access == ACCESS_PUBLIC ? ACCESS_PUBLIC
                                                                            : ACCESS_READ,
                        &ret))
            return ret;
        if (first == NULL)
            return wl_api_send_error(conn, MHD_HTTP_NOT_FOUND, "not_found",
                                     "no such endpoint: %s", url);
        return method_not_allowed(conn, allow);
    }
    if (!authorized(api, conn, r->access, &ret))
        return ret;
    if (r->access != ACCESS_PUBLIC && !wl_api_guard(api, conn, r->media, &ret))
        return ret; /* no tokens: the listener's own Host and Origin, the route's body type */
    if (takes_body(r)) {
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        const char *option;
        if (cl != NULL && strtoull(cl, NULL, 10) > body_cap(api, r, &option))
            return too_large(api, conn, r);
    }
    req->route = r;
    return MHD_YES;
}

/* Keeps up to the route's body cap of the body; past that, notes it. */
static int add_body(struct wl_api *api, struct request *req, const char *data, size_t n)
{
    const char *option;
    uint64_t max = body_cap(api, req->route, &option);
    if (req->too_large || req->len + n > max) {
        req->too_large = 1;
        free(req->body);
        req->body = NULL;
        req->len = req->cap = 0;
        return 0;
    }
    if (req->len + n + 1 > req->cap) {
        size_t cap = req->cap ? req->cap : 4096;
        while (cap < req->len + n + 1)
            cap *= 2;
        char *b = realloc(req->body, cap);
        if (b == NULL)
            return -ENOMEM;
        req->body = b;
        req->cap = cap;
    }
    memcpy(req->body + req->len, data, n);
    req->len += n;
    req->body[req->len] = '\0';
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct wl_api *api = cls;
    struct request *req = *con_cls;
    (void)version;

    if (req == NULL) { /* the headers */
        if ((req = calloc(1, sizeof *req)) == NULL)
            return MHD_NO;
        *con_cls = req;
        return on_headers(api, conn, url, method, req);
    }
    if (*upload_size != 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (req->route != NULL && takes_body(req->route) &&
            add_body(api, req, upload_data, n) != 0)
            return MHD_NO;
        return MHD_YES;
    }
    if (req->route == NULL) /* answered at the headers */
        return MHD_YES;
    if (req->too_large)
        return too_large(api, conn, req->route);
    const struct route *r = req->route;
    struct wl_req rq = {
        .api = api,
        .conn = conn,
        .path = url,
        .rest = r->prefix ? url + strlen(r->path) : "",
        .body = req->body,
        .body_len = req->len,
        .now = now_ms(),
    };
    return r->fn(&rq);
}

/* ---- lifecycle ---- */

static int is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    return 0;
}

int wl_api_start(const struct wl_config *cfg, struct wl_store *store, struct wl_api **out,
                 char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    char host[256];
    int port, rc;

    *out = NULL;
    if (cfg->api_listen[0] == '\0')
        return 0;
    if (wl_parse_listen("api_listen", cfg->api_listen, &ss, host, sizeof host, err, errlen) != 0)
        return -EINVAL;
    port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
    struct wl_api *api = calloc(1, sizeof *api);
    if (api == NULL)
        return -ENOMEM;
    api->cfg = cfg;
    api->store = store;
    api->named_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    pthread_rwlock_init(&api->writer_lock, NULL);
    atomic_store(&api->ready, 1);
    if (wl_org_salt_load(cfg->org_salt_file, &api->org_salt, &api->org_salt_len,
                         api->salt_error, sizeof api->salt_error) != 0)
        wl_warn("api_no_org_salt", "reason=\"%s\" effect=\"domain: lookups and named "
                "accounts answer 503\"", api->salt_error);
    if ((rc = load_token("read_token_file", cfg->read_token_file, &api->read_token, err,
                         errlen)) != 0 ||
        (rc = load_token("admin_token_file", cfg->admin_token_file, &api->admin_token, err,
                         errlen)) != 0)
        goto fail;
    if (api->read_token == NULL && api->admin_token == NULL && !is_loopback(&ss)) {
        snprintf(err, errlen,
                 "api_listen %s is not a loopback address and no token file is set: set "
                 "read_token_file and admin_token_file, or listen on 127.0.0.1",
                 cfg->api_listen);
        rc = -EPERM;
        goto fail;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    api->mhd = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, api,
        MHD_OPTION_EXTERNAL_LOGGER, wl_mhd_logger, &api_log, /* first: it logs the rest */
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)THREADS,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->api_max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->api_max_connections_per_address,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(cfg->api_timeout_ms / 1000),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_END);
    if (api->mhd == NULL) {
        snprintf(err, errlen, "cannot listen on HTTP %s (address in use?)", cfg->api_listen);
        rc = -EADDRINUSE;
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(api->mhd, MHD_DAEMON_INFO_BIND_PORT);
    int bound = info ? info->port : port;
    if (ss.ss_family == AF_INET6)
        snprintf(api->address, sizeof api->address, "[%s]:%d", host, bound);
    else
        snprintf(api->address, sizeof api->address, "%s:%d", host, bound);
    wl_info("api_started", "api=%s auth=%s", api->address,
            api->read_token || api->admin_token ? "tokens" : "loopback_only");
    *out = api;
    return 0;

fail:
    wl_api_stop(api);
    return rc;
}

void wl_api_address(const struct wl_api *api, char *out, size_t len)
{
    snprintf(out, len, "%s", api->address);
}

void wl_api_set_ready(struct wl_api *api, int ready)
{
    atomic_store(&api->ready, ready);
}

void wl_api_set_writer(struct wl_api *api, struct wl_writer *writer)
{
    if (api == NULL)
        return;
    pthread_rwlock_wrlock(&api->writer_lock);
    api->writer = writer;
    pthread_rwlock_unlock(&api->writer_lock);
}

void wl_api_set_networks(struct wl_api *api, struct wl_networks *networks)
{
    if (api != NULL)
        __atomic_store_n(&api->networks, networks, __ATOMIC_RELEASE);
}

void wl_api_stop(struct wl_api *api)
{
    if (api == NULL)
        return;
    if (api->mhd != NULL) {
        MHD_stop_daemon(api->mhd);
        wl_http_log_flush(&api_log);
    }
    if (api->read_token != NULL) {
        sodium_memzero(api->read_token, strlen(api->read_token));
        free(api->read_token);
    }
    if (api->admin_token != NULL) {
        sodium_memzero(api->admin_token, strlen(api->admin_token));
        free(api->admin_token);
    }
    if (api->org_salt != NULL) {
        sodium_memzero(api->org_salt, api->org_salt_len);
        free(api->org_salt);
    }
    pthread_mutex_destroy(&api->named_lock);
    pthread_rwlock_destroy(&api->writer_lock);
    free(api);
}
