#include "api_client.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli.h"
#include "collector/signal_json.h"
#include "collector/token.h"
#include "table.h"

#define REPLY_MAX (256u << 20)   /* a reply larger than this is refused */
#define CONNECT_TIMEOUT_MS 10000L
#define REQUEST_TIMEOUT_MS 60000L
#define TOKEN_ENV "WARMLINE_TOKEN"

struct wl_api_client {
    const char *cmd;
    char base[1100];
    int have_token;
    CURL *curl;
    struct curl_slist *headers; /* Accept, Expect, Authorization */
    volatile sig_atomic_t *cancel;
    char errbuf[CURL_ERROR_SIZE];
};

/* ---- shared options ---- */

int wl_api_opt(const char *cmd, struct wl_api_opts *o, int c, const char *arg)
{
    enum wl_out_format want;

    switch (c) {
    case WL_API_OPT_CONFIG: o->config_path = arg; return 1;
    case WL_API_OPT_URL: o->url = arg; return 1;
    case WL_API_OPT_TOKEN_FILE: o->token_file = arg; return 1;
    case WL_API_OPT_JSON: want = WL_OUT_JSON; break;
    case WL_API_OPT_CSV: want = WL_OUT_CSV; break;
    default: return 0;
    }
    if (o->format != WL_OUT_TABLE && o->format != want) {
        wl_cli_usage_error(cmd, "--json and --csv exclude each other");
        return -1;
    }
    o->format = want;
    return 1;
}

void wl_api_usage_common(FILE *out)
{
    fprintf(out,
            "  --url URL          the collector's API, e.g. http://127.0.0.1:7811 (default:\n"
            "                     http://HOST:PORT from api_listen of the configuration,\n"
            "                     0.0.0.0 and :: read as loopback)\n"
            "  --config FILE      the collector's INI file (default: built-in defaults)\n"
            "  --token-file FILE  the bearer token (the file's text less surrounding white\n"
            "                     space); without it the environment variable\n"
            "                     WARMLINE_TOKEN, if set, is the token. The token is never\n"
            "                     printed. A collector without token files needs none.\n"
            "  --json             one JSON object per line, as the API sends it\n"
            "  --csv              CSV (RFC 4180) with a header row\n"
            "  -h, --help         this help\n"
            "\n"
            "Without --json or --csv the output is a table. On a terminal long cells are\n"
            "cut with \"…\" and organization ids shortened to 12 hex digits; --json and\n"
            "--csv always print them whole. Times are UTC.\n"
            "\n"
            "Exit status: 0 done; 1 the collector could not be reached, refused the token\n"
            "(401), or answered another error (its message is printed); 2 usage error,\n"
            "bad configuration or token file, or a request the collector rejected as\n"
            "malformed (400, 413).\n");
}

/* ---- where the API is, and the token ---- */

static int url_from_option(const char *cmd, const char *url, char *base, size_t len)
{
    const char *scheme = strstr(url, "://") ? "" : "http://";
    if (*scheme == '\0' && strncasecmp(url, "http://", 7) != 0 &&
        strncasecmp(url, "https://", 8) != 0)
        return wl_cli_usage_error(cmd, "--url: '%s' is not an http:// or https:// URL", url);
    for (const char *p = url; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7F)
            return wl_cli_usage_error(cmd, "--url: white space or control characters in '%s'",
                                      url);
    }
    if ((size_t)snprintf(base, len, "%s%s", scheme, url) >= len)
        return wl_cli_usage_error(cmd, "--url: longer than %zu characters", len - 8);
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        base[--n] = '\0';
    if (strchr(base, '?') != NULL || strchr(base, '#') != NULL)
        return wl_cli_usage_error(cmd, "--url: give the base URL, without '?' or '#'");
    return 0;
}

static int url_from_config(const char *cmd, const char *config_path, char *base, size_t len)
{
    struct wl_config cfg;
    char host[256];
    int port, rc;
    const char *where = config_path ? config_path : "the built-in defaults";

    if ((rc = wl_cli_config(cmd, config_path, &cfg)) != 0)
        return rc;
    wl_config_free(&cfg); /* the rules; api_listen stays */
    if (cfg.api_listen[0] == '\0') {
        wl_cli_error(cmd, "api_listen is empty in %s (the API is off): give --url", where);
        return WL_EXIT_USAGE;
    }
    if (wl_parse_hostport(cfg.api_listen, host, sizeof host, &port) != 0) {
        wl_cli_error(cmd, "api_listen in %s: '%s' is not HOST:PORT", where, cfg.api_listen);
        return WL_EXIT_USAGE;
    }
    if (port == 0) {
        wl_cli_error(cmd,
                     "api_listen in %s has port 0 (ephemeral): give --url with the port of "
                     "the collector's event=ready line", where);
        return WL_EXIT_USAGE;
    }
    if (strcmp(host, "0.0.0.0") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    else if (strcmp(host, "::") == 0)
        snprintf(host, sizeof host, "::1");
    snprintf(base, len, strchr(host, ':') ? "http://[%s]:%d" : "http://%s:%d", host, port);
    return 0;
}

/* The token: --token-file, else $WARMLINE_TOKEN, else none (*tok = NULL).
 * Returns 0 or WL_EXIT_USAGE after saying why (never showing the token). */
static int load_token(const char *cmd, const char *path, char **tok)
{
    char err[1200];
    int rc;

    *tok = NULL;
    if (path != NULL) {
        rc = wl_token_from_file("--token-file", path, tok, err, sizeof err);
    } else {
        const char *env = getenv(TOKEN_ENV);
        if (env == NULL || env[0] == '\0')
            return 0;
        rc = wl_token_from_text(TOKEN_ENV, env, strlen(env), tok, err, sizeof err);
    }
    if (rc == 0)
        return 0;
    wl_cli_error(cmd, "%s", err);
    return rc == -ENOMEM ? WL_EXIT_FAIL : WL_EXIT_USAGE;
}

/* ---- libcurl ---- */

struct body {
    char *p;
    size_t len;
    int too_big;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n > REPLY_MAX) {
        b->too_big = 1;
        return 0;
    }
    char *p = realloc(b->p, b->len + n + 1);
    if (p == NULL)
        return 0;
    memcpy(p + b->len, ptr, n);
    b->p = p;
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

static int on_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct wl_api_client *c = clientp;
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return c->cancel != NULL && *c->cancel; /* non-zero aborts the transfer */
}

int wl_api_open(const char *cmd, const struct wl_api_opts *o, struct wl_api_client **out)
{
    struct wl_api_client *c = calloc(1, sizeof *c);
    char *token = NULL, *auth = NULL;
    int rc;

    *out = NULL;
    if (c == NULL) {
        wl_cli_error(cmd, "out of memory");
        return WL_EXIT_FAIL;
    }
    c->cmd = cmd;
    rc = o->url ? url_from_option(cmd, o->url, c->base, sizeof c->base)
                : url_from_config(cmd, o->config_path, c->base, sizeof c->base);
    if (rc == 0 && o->url != NULL && o->config_path != NULL) {
        struct wl_config cfg; /* still check the file: a typo should not pass */
        if ((rc = wl_cli_config(cmd, o->config_path, &cfg)) == 0)
            wl_config_free(&cfg);
    }
    if (rc == 0)
        rc = load_token(cmd, o->token_file, &token);
    if (rc != 0)
        goto fail;
    rc = WL_EXIT_FAIL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (c->curl = curl_easy_init()) == NULL) {
        wl_cli_error(cmd, "libcurl failed to initialize");
        goto fail;
    }
    const char *fixed[] = {"Accept: application/json",
                           "Expect:"}; /* no 100-continue round trip before a PUT body */
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        struct curl_slist *h = curl_slist_append(c->headers, fixed[i]);
        if (h == NULL)
            goto oom;
        c->headers = h;
    }
    if (token != NULL) {
        if (asprintf(&auth, "Authorization: Bearer %s", token) < 0) {
            auth = NULL;
            goto oom;
        }
        struct curl_slist *h = curl_slist_append(c->headers, auth);
        sodium_memzero(auth, strlen(auth));
        if (h == NULL)
            goto oom;
        c->headers = h;
        c->have_token = 1;
    }
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "warmline/" "0.1");
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, REQUEST_TIMEOUT_MS);
    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L);
    if (token != NULL) {
        sodium_memzero(token, strlen(token));
        free(token);
    }
    free(auth);
    signal(SIGPIPE, SIG_IGN); /* a closed pipe (| head) becomes EPIPE on write */
    *out = c;
    return 0;

oom:
    wl_cli_error(cmd, "out of memory");
fail:
    if (token != NULL) {
        sodium_memzero(token, strlen(token));
        free(token);
    }
    free(auth);
    wl_api_close(c);
    return rc;
}

void wl_api_close(struct wl_api_client *c)
{
    if (c == NULL)
        return;
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    for (struct curl_slist *h = c->headers; h != NULL; h = h->next)
        sodium_memzero(h->data, strlen(h->data));
    curl_slist_free_all(c->headers);
    free(c);
}

const char *wl_api_url(const struct wl_api_client *c)
{
    return c->base;
}

void wl_api_cancel_on(struct wl_api_client *c, volatile sig_atomic_t *flag)
{
    c->cancel = flag;
}

char *wl_api_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *p = out;
    if (out == NULL)
        return NULL;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            *p++ = (char)ch;
        } else {
            *p++ = '%';
            *p++ = hex[ch >> 4];
            *p++ = hex[ch & 15];
        }
    }
    *p = '\0';
    return out;
}

int wl_api_query(char **path, const char *name, const char *value)
{
    char *v = wl_api_escape(value), *p = NULL;
    int n = v ? asprintf(&p, "%s%c%s=%s", *path, strchr(*path, '?') ? '&' : '?', name, v) : -1;
    free(v);
    if (n < 0)
        return -ENOMEM;
    free(*path);
    *path = p;
    return 0;
}

/* Fills err for a transfer that got no HTTP answer. */
static void transport_error(struct wl_api_client *c, CURLcode cc, struct wl_api_error *err)
{
    long os_errno = 0;
    const char *why = c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc);

    curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
        if (os_errno != 0)
            why = strerror((int)os_errno);
        /* fall through */
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
        err->transient = 1;
        snprintf(err->message, sizeof err->message,
                 "cannot reach the collector at %s: %s (is it running? see --url)", c->base,
                 why);
        return;
    case CURLE_WRITE_ERROR:
        snprintf(err->message, sizeof err->message, "the reply from %s is larger than %u MiB",
                 c->base, REPLY_MAX >> 20);
        return;
    default:
        snprintf(err->message, sizeof err->message, "request to %s failed: %s", c->base, why);
    }
}

/* Fills err for an HTTP answer other than 2xx. */
static void http_error(struct wl_api_client *c, const char *method, const char *path,
                       const struct body *b, struct wl_api_error *err)
{
    json_t *doc = b->len ? json_loadb(b->p, b->len, 0, NULL) : NULL;
    json_t *e = json_object_get(doc, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    char what[700];

    snprintf(what, sizeof what, "%s", msg ? msg : "no error message");
    /* The API's text may echo a client's input: keep one printable line. */
    for (char *p = what; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7F)
            *p = ' ';
    }
    if (err->status == 401 && c->have_token)
        snprintf(err->message, sizeof err->message,
                 "the token was refused by the collector at %s: %s (see --token-file or "
                 "WARMLINE_TOKEN)", c->base, what);
    else if (err->status == 401)
        snprintf(err->message, sizeof err->message,
                 "the collector at %s wants a token: %s (see --token-file or WARMLINE_TOKEN)",
                 c->base, what);
    else
        snprintf(err->message, sizeof err->message, "%s (HTTP %ld%s%s, %s %s)", what,
                 err->status, code ? " " : "", code ? code : "", method, path);
    if (err->status == 400 || err->status == 413)
        err->exit_code = WL_EXIT_USAGE;
    if (err->status == 503 || err->status == 502 || err->status == 504)
        err->transient = 1;
    json_decref(doc);
}

int wl_api_request(struct wl_api_client *c, const char *method, const char *path,
                   const char *ctype, const char *body, size_t len, json_t **reply,
                   struct wl_api_error *err)
{
    struct body b = {0};
    struct curl_slist *hdrs = c->headers, *ct = NULL;
    char *url = NULL, *type = NULL;
    int rc = -1;

    *reply = NULL;
    memset(err, 0, sizeof *err);
    err->exit_code = WL_EXIT_FAIL;
    if (asprintf(&url, "%s%s", c->base, path) < 0) {
        url = NULL;
        goto oom;
    }
    if (ctype != NULL) {
        /* A copy of the shared list plus Content-Type for this request. */
        if (asprintf(&type, "Content-Type: %s", ctype) < 0) {
            type = NULL;
            goto oom;
        }
        for (struct curl_slist *h = c->headers; h != NULL; h = h->next) {
            struct curl_slist *n = curl_slist_append(ct, h->data);
            if (n == NULL)
                goto oom;
            ct = n;
        }
        struct curl_slist *n = curl_slist_append(ct, type);
        if (n == NULL)
            goto oom;
        hdrs = ct = n;
    }
    c->errbuf[0] = '\0';
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") ? method : NULL);
    if (body != NULL) {
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
    }
    CURLcode cc = curl_easy_perform(c->curl);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
    if (cc == CURLE_ABORTED_BY_CALLBACK && c->cancel != NULL && *c->cancel) {
        err->canceled = 1;
        snprintf(err->message, sizeof err->message, "interrupted");
        goto done;
    }
    if (cc == CURLE_WRITE_ERROR && !b.too_big)
        goto oom;
    if (cc != CURLE_OK) {
        transport_error(c, cc, err);
        goto done;
    }
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &err->status);
    if (err->status < 200 || err->status > 299) {
        http_error(c, method, path, &b, err);
        goto done;
    }
    if (b.len > 0) {
        json_error_t jerr;
        *reply = json_loadb(b.p, b.len, 0, &jerr);
        if (*reply == NULL) {
            snprintf(err->message, sizeof err->message,
                     "the reply to %s %s is not JSON: %s (line %d)", method, path, jerr.text,
                     jerr.line);
            goto done;
        }
    }
    rc = 0;
    goto done;

oom:
    snprintf(err->message, sizeof err->message, "out of memory");
done:
    curl_slist_free_all(ct);
    free(type);
    free(url);
    free(b.p);
    return rc;
}

int wl_api_call(struct wl_api_client *c, const char *method, const char *path,
                const char *ctype, const char *body, size_t len, json_t **reply)
{
    struct wl_api_error err;
    if (wl_api_request(c, method, path, ctype, body, len, reply, &err) == 0)
        return WL_EXIT_OK;
    wl_cli_error(c->cmd, "%s", err.message);
    return err.exit_code;
}

/* ---- reading replies ---- */

const char *wl_reply_str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

long long wl_reply_int(const json_t *obj, const char *key, long long def)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (long long)json_real_value(v);
    if (json_is_string(v)) {
        char *end;
        errno = 0;
        long long n = strtoll(json_string_value(v), &end, 10);
        if (errno == 0 && *end == '\0' && end != json_string_value(v))
            return n;
    }
    return def;
}

double wl_reply_num(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

void wl_reply_number_text(const json_t *v, char *buf, size_t len)
{
    if (json_is_integer(v))
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, len, "%.15g", json_real_value(v));
    else if (json_is_string(v))
        snprintf(buf, len, "%s", json_string_value(v));
    else if (len > 0)
        buf[0] = '\0';
}

void wl_reply_time(long long ms, enum wl_time_style style, char *buf, size_t len)
{
    static const char *const fmt[] = {"%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"};
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (len == 0)
        return;
    buf[0] = '\0';
    if (ms <= 0 || gmtime_r(&t, &tm) == NULL)
        return;
    size_t n = strftime(buf, len, fmt[style], &tm);
    if (style == WL_TIME_ISO && n > 0)
        snprintf(buf + n, len - n, ".%03lldZ", ms % 1000);
}

static int is_hex64(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        if (!isxdigit((unsigned char)s[n]))
            return 0;
    }
    return n == 64;
}

void wl_reply_org_label(const char *org, const json_t *named, int shorten, char *buf,
                        size_t len)
{
    if (json_is_object(named)) {
        const char *name = wl_reply_str(named, "name");
        snprintf(buf, len, "%s", name[0] ? name : wl_reply_str(named, "domain"));
        if (buf[0] != '\0')
            return;
    }
    if (shorten && is_hex64(org))
        snprintf(buf, len, "%.12s\xe2\x80\xa6", org);
    else
        snprintf(buf, len, "%s", org);
}

int wl_reply_print_json(const json_t *obj, FILE *out)
{
    errno = 0;
    if (json_dumpf(obj, out, WL_SIGNAL_JSON_FLAGS | JSON_PRESERVE_ORDER) != 0 ||
        fputc('\n', out) == EOF)
        return errno ? -errno : -EIO;
    return 0;
}

int wl_api_finish_output(const char *cmd)
{
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout))
        return WL_EXIT_OK;
    if (errno != EPIPE)
        wl_cli_error(cmd, "cannot write the output: %s", strerror(errno ? errno : EIO));
    return WL_EXIT_FAIL;
}

int wl_api_emit_table(const char *cmd, struct wl_table *t, enum wl_out_format fmt,
                      unsigned flags)
{
    int rc = t == NULL ? -ENOMEM
             : fmt == WL_OUT_CSV ? wl_table_print_csv(t, stdout, flags & WL_TABLE_NO_HEADER)
                                 : wl_table_print(t, stdout, flags);
    if (rc == -ENOMEM) {
        wl_cli_error(cmd, "out of memory");
        return WL_EXIT_FAIL;
    }
    return wl_api_finish_output(cmd);
}
