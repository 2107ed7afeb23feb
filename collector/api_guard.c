/* No-token mode is not an open door. Without tokens the API listens on
 * loopback only, yet any page the operator's browser visits can send it
 * requests. So in that mode a request must name the listener itself in its
 * Host (a page reached through DNS rebinding names its own host) and, when
 * it carries an Origin, there too (a foreign page's fetch names its own);
 * and a state-changing one must carry the Content-Type its route reads (an
 * HTML form can send neither JSON nor CSV). With tokens, the bearer token
 * is the protection and nothing here applies. Runs on libmicrohttpd's pool;
 * reads only what wl_api_start set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_http.h"

#define SHOWN_MAX 64 /* bytes of a refused header quoted back */

/* The listener's port, from its address ("HOST:PORT", "[V6]:PORT"). */
static const char *own_port(const struct wl_api *api)
{
    const char *colon = strrchr(api->address, ':');
    return colon ? colon + 1 : "";
}

/* 1 when host (a Host header, or an Origin's host[:port]) names the
 * listener: its own address, or localhost, 127.0.0.1 or [::1], each with
 * the listener's port (without it on port 80, as browsers write it). */
static int own_host(const struct wl_api *api, const char *host, size_t len)
{
    static const char *const names[] = {"localhost", "127.0.0.1", "[::1]"};
    const char *port = own_port(api);
    char want[320];

    if (len == strlen(api->address) && strncasecmp(host, api->address, len) == 0)
        return 1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int n = snprintf(want, sizeof want, "%s:%s", names[i], port);
        if (n > 0 && (size_t)n == len && strncasecmp(host, want, len) == 0)
            return 1;
        if (strcmp(port, "80") == 0 && strlen(names[i]) == len &&
            strncasecmp(host, names[i], len) == 0)
            return 1;
    }
    return 0;
}

/* 1 when the Content-Type's media type (before any ';' parameters) is want. */
static int media_is(const char *ctype, const char *want)
{
    size_t n = strcspn(ctype, ";");
    while (n > 0 && (ctype[n - 1] == ' ' || ctype[n - 1] == '\t'))
        n--;
    return n == strlen(want) && strncasecmp(ctype, want, n) == 0;
}

static size_t shown(const char *s)
{
    size_t n = strlen(s);
    return n > SHOWN_MAX ? SHOWN_MAX : n;
}

static enum MHD_Result count_host(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    (void)value;
    if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0)
        (*(unsigned *)cls)++;
    return MHD_YES;
}

int wl_api_guard(const struct wl_api *api, struct MHD_Connection *conn, const char *media,
                 enum MHD_Result *ret)
{
    if (api->read_token != NULL || api->admin_token != NULL)
        return 1;
    unsigned hosts = 0;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_host, &hosts);
    if (hosts > 1) { /* RFC 9112: 400; which one a proxy or we read would differ */
        *ret = wl_api_send_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request",
                                 "more than one Host header");
        return 0;
    }
    /* a browser says where a request comes from: another site's page (an
     * <img>, a no-cors fetch, which send no Origin) reads nothing */
    const char *site = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-Fetch-Site");
    if (site != NULL && (strcasecmp(site, "cross-site") == 0 ||
                         strcasecmp(site, "same-site") == 0)) {
        *ret = wl_api_send_error(conn, MHD_HTTP_FORBIDDEN, "forbidden_site",
                                 "without tokens the API answers its own page and tools only "
                                 "(Sec-Fetch-Site: %s)",
                                 strcasecmp(site, "cross-site") == 0 ? "cross-site"
                                                                     : "same-site");
        return 0;
    }
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (host == NULL || !own_host(api, host, strlen(host))) {
        *ret = wl_api_send_error(conn, MHD_HTTP_FORBIDDEN, "forbidden_host",
                                 "without tokens the API answers requests for %s or "
                                 "localhost:%s only (Host: '%.*s')",
                                 api->address, own_port(api), host ? (int)shown(host) : 0,
                                 host ? host : "");
        return 0;
    }
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (origin != NULL &&
        (strncasecmp(origin, "http://", 7) != 0 || !own_host(api, origin + 7,
                                                               strlen(origin + 7)))) {
        *ret = wl_api_send_error(conn, MHD_HTTP_FORBIDDEN, "forbidden_origin",
                                 "without tokens the API answers pages of http://%s only "
                                 "(Origin: '%.*s')",
                                 api->address, (int)shown(origin), origin);
        return 0;
    }
    if (media == NULL)
        return 1;
    const char *ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ctype == NULL || !media_is(ctype, media)) {
        *ret = wl_api_send_error(conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                                 "this endpoint takes Content-Type: %s (got '%.*s')", media,
                                 ctype ? (int)shown(ctype) : 0, ctype ? ctype : "");
        return 0;
    }
    return 1;
}
