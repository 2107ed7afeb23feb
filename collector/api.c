#include "api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define TOKEN_MAX 4096

struct wl_api {
    struct MHD_Daemon *mhd;
    const struct wl_config *cfg;
    struct wl_store *store;
    char *read_token;   /* NULL: none configured */
    char *admin_token;
    char address[300];
    atomic_int ready;
};

/* ---- tokens ---- */

/* Reads a token file: its bytes less surrounding white space. */
static int load_token(const char *path, char **out, char *err, size_t errlen)
{
    char buf[TOKEN_MAX + 2];
    FILE *f;
    size_t n;

    *out = NULL;
    if (path[0] == '\0')
        return 0;
    if ((f = fopen(path, "r")) == NULL) {
        snprintf(err, errlen, "token file %s: %s", path, strerror(errno));
        return -errno;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    if (n > TOKEN_MAX) {
        snprintf(err, errlen, "token file %s: longer than %d bytes", path, TOKEN_MAX);
        return -EINVAL;
    }
    buf[n] = '\0';
    char *s = buf, *e = buf + n;
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        e--;
    *e = '\0';
    if (strlen(s) < 16) {
        snprintf(err, errlen, "token file %s: a token needs at least 16 characters", path);
        sodium_memzero(buf, sizeof buf);
        return -EINVAL;
    }
    *out = strdup(s);
    sodium_memzero(buf, sizeof buf);
    return *out ? 0 : -ENOMEM;
}

static int token_equal(const char *given, size_t glen, const char *want)
{
    size_t wlen = strlen(want);
    if (glen != wlen) /* lengths are not secret; the bytes are */
        return 0;
    return sodium_memcmp(given, want, wlen) == 0;
}

/* ---- responses ---- */

static enum MHD_Result send_body(struct MHD_Connection *conn, unsigned status, const char *type,
                                 char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Sends obj (taking it) as JSON. */
static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, json_t *obj)
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
    return send_body(conn, status, "application/json", body, n + 1);
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *code,
                                  const char *message)
{
    return send_json(conn, status,
                     json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message));
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
    *ret = send_error(conn, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                      h == NULL ? "missing Authorization: Bearer <token>"
                                : "wrong token for this endpoint");
    return 0;
}

/* ---- routes ---- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct wl_api *api = cls;
    enum MHD_Result ret = MHD_NO;
    (void)version;
    (void)upload_data;

    if (*con_cls == NULL) { /* the headers: answer once the body is in */
        *con_cls = api;
        return MHD_YES;
    }
    if (*upload_size != 0) { /* no endpoint takes a body yet */
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(url, "/healthz") == 0) {
        if (strcmp(method, "GET") != 0)
            return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                              "use GET");
        return send_json(conn, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
    }
    if (strcmp(url, "/readyz") == 0) {
        if (strcmp(method, "GET") != 0)
            return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                              "use GET");
        int ready = atomic_load(&api->ready);
        return send_json(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                         json_pack("{s:s}", "status", ready ? "ready" : "stopping"));
    }
    if (!authorized(api, conn, ACCESS_READ, &ret))
        return ret;
    return send_error(conn, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
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

static int parse_addr(const char *host, int port, struct sockaddr_storage *ss)
{
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof *ss);
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
    return -EINVAL;
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
    if (wl_parse_hostport(cfg->api_listen, host, sizeof host, &port) != 0 ||
        parse_addr(host, port, &ss) != 0) {
        snprintf(err, errlen, "api_listen: '%s' is not a numeric HOST:PORT", cfg->api_listen);
        return -EINVAL;
    }
    struct wl_api *api = calloc(1, sizeof *api);
    if (api == NULL)
        return -ENOMEM;
    api->cfg = cfg;
    api->store = store;
    atomic_store(&api->ready, 1);
    if ((rc = load_token(cfg->read_token_file, &api->read_token, err, errlen)) != 0 ||
        (rc = load_token(cfg->admin_token_file, &api->admin_token, err, errlen)) != 0)
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
        flags, (uint16_t)port, NULL, NULL, on_request, api, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)2,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->api_max_connections,
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

void wl_api_stop(struct wl_api *api)
{
    if (api == NULL)
        return;
    if (api->mhd != NULL)
        MHD_stop_daemon(api->mhd);
    if (api->read_token != NULL) {
        sodium_memzero(api->read_token, strlen(api->read_token));
        free(api->read_token);
    }
    if (api->admin_token != NULL) {
        sodium_memzero(api->admin_token, strlen(api->admin_token));
        free(api->admin_token);
    }
    free(api);
}
