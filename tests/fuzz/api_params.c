/* Fuzz target: the HTTP API's query parameters (collector/api_params.c).
 *
 * Input: byte 0 picks an endpoint's parameter list (the hot accounts, the
 * signal log, one account, or none), the rest is its query string. It is
 * sent as a real request through libmicrohttpd (a daemon without a listen
 * socket, the connection a socketpair, driven by MHD_run in this thread),
 * so MHD splits and unescapes it as it does in the collector; the handler
 * reads the parameters as the endpoints do. The answer must be 200 with
 * every value in its range, or 400 naming the parameter. Bytes that cannot
 * appear in a request line are sent percent-encoded; '%' is sent as is, so
 * bad escapes reach MHD too. The query is also parsed as a time directly. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api_http.h"
#include "fuzz.h"

#define QUERY_MAX 2048

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    struct wl_req rq = {.conn = conn, .path = url, .rest = ""};
    enum MHD_Result ret = MHD_NO;
    (void)cls, (void)method, (void)version, (void)upload, (void)upload_size, (void)con_cls;

    if (strcmp(url, "/hot") == 0) {
        struct wl_api_param p[] = {{"limit"}, {"min_score"}, {"rule"}, {"since"}, {"after"}};
        uint64_t limit;
        double score;
        const char *rule;
        int64_t since;
        int given;
        uint8_t cursor[78]; /* the hot list's cursor: 14 to 78 bytes */
        size_t clen;
        if (wl_api_params(&rq, p, 5, &ret) != 0 ||
            wl_api_param_uint(&rq, &p[0], 1, WL_API_LIMIT_MAX, 50, &limit, &ret) != 0 ||
            wl_api_param_score(&rq, &p[1], 0, &score, &ret) != 0 ||
            wl_api_param_name(&rq, &p[2], &rule, &ret) != 0 ||
            wl_api_param_time(&rq, &p[3], &since, &given, &ret) != 0 ||
            wl_api_param_b64(&rq, &p[4], cursor, 14, sizeof cursor, &clen, "a cursor",
                             &ret) != 0)
            return ret;
        FUZZ_CHECK((clen == 0) == (p[4].value == NULL));
        FUZZ_CHECK(clen == 0 || (clen >= 14 && clen <= sizeof cursor));
        FUZZ_CHECK(limit >= 1 && limit <= WL_API_LIMIT_MAX);
        FUZZ_CHECK(isfinite(score) && score >= 0);
        FUZZ_CHECK(rule == NULL || (strlen(rule) >= 1 && strlen(rule) <= 63));
        FUZZ_CHECK(given == (p[3].value != NULL));
    } else if (strcmp(url, "/signals") == 0) {
        struct wl_api_param p[] = {{"after"}, {"limit"}};
        uint64_t after, limit;
        if (wl_api_params(&rq, p, 2, &ret) != 0 ||
            wl_api_param_uint(&rq, &p[0], 0, (uint64_t)INT64_MAX, 0, &after, &ret) != 0 ||
            wl_api_param_uint(&rq, &p[1], 1, WL_API_LIMIT_MAX, 100, &limit, &ret) != 0)
            return ret;
        FUZZ_CHECK(after <= (uint64_t)INT64_MAX);
        FUZZ_CHECK(limit >= 1 && limit <= WL_API_LIMIT_MAX);
    } else if (strcmp(url, "/account") == 0) {
        struct wl_api_param p[] = {{"days"}};
        uint64_t days;
        if (wl_api_params(&rq, p, 1, &ret) != 0 ||
            wl_api_param_uint(&rq, &p[0], 1, 3650, 90, &days, &ret) != 0)
            return ret;
        FUZZ_CHECK(days >= 1 && days <= 3650);
    } else {
        struct wl_api_param none[1];
        if (wl_api_params(&rq, none, 0, &ret) != 0)
            return ret;
    }
    return wl_api_send_json(conn, MHD_HTTP_OK, json_object());
}

static struct MHD_Daemon *daemon_get(void)
{
    static struct MHD_Daemon *d;
    if (d == NULL) {
        d = MHD_start_daemon(MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, handle, NULL,
                             MHD_OPTION_END);
        FUZZ_CHECK(d != NULL);
    }
    return d;
}

/* Sends one request over a socketpair and returns the status code. */
static int request(const char *line, size_t len)
{
    struct MHD_Daemon *d = daemon_get();
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char resp[4096];
    size_t got = 0;
    int sv[2];

    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    FUZZ_CHECK(write(sv[1], line, len) == (ssize_t)len);
    FUZZ_CHECK(fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0);
    FUZZ_CHECK(MHD_add_connection(d, sv[0], (struct sockaddr *)&peer, sizeof peer) == MHD_YES);
    for (int turn = 0;; turn++) {
        FUZZ_CHECK(turn < 10000); /* MHD answers within a few turns */
        FUZZ_CHECK(MHD_run(d) == MHD_YES);
        ssize_t n = read(sv[1], resp + got, sizeof resp - 1 - got);
        if (n == 0 || (n > 0 && got + (size_t)n == sizeof resp - 1))
            break;
        if (n > 0)
            got += (size_t)n;
        else
            FUZZ_CHECK(errno == EAGAIN);
    }
    close(sv[1]);
    MHD_run(d); /* let MHD notice the close */
    resp[got] = '\0';
    int status = 0;
    FUZZ_CHECK(sscanf(resp, "HTTP/1.1 %d", &status) == 1);
    return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const paths[] = {"/hot", "/signals", "/account", "/none"};
    static const char hex[] = "0123456789ABCDEF";
    char line[64 + 3 * QUERY_MAX + 64];
    size_t len;

    if (size < 1 || size > QUERY_MAX + 1)
        return 0;

    /* the query as a time, as GET /v1/hot?since= reads it */
    char *text = malloc(size);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    int64_t t;
    if (wl_api_parse_time(text, &t) == 0)
        FUZZ_CHECK(t > -24LL * 3600 * 1000); /* not before 1970-01-01 at +23:59 */
    free(text);

    len = (size_t)snprintf(line, sizeof line, "GET %s?", paths[data[0] % 4]);
    for (size_t i = 1; i < size; i++) {
        uint8_t c = data[i];
        if (c > 0x20 && c < 0x7f && c != '#') {
            line[len++] = (char)c;
        } else {
            line[len++] = '%';
            line[len++] = hex[c >> 4];
            line[len++] = hex[c & 15];
        }
    }
    len += (size_t)snprintf(line + len, sizeof line - len,
                            " HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n");
    int status = request(line, len);
    FUZZ_CHECK(status == 200 || status == 400);
    return 0;
}
