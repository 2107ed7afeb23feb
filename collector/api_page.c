/* The sales-ops page's files over HTTP: ETag and revalidation, gzip when
 * the browser accepts it, and the page's security headers. */
#include "api_page.h"

#include <ctype.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "log.h"

#define ETAG_MAX 40

/* A file as served: its gzip copy (NULL when gzip does not shrink it) and
 * the ETag of each form. */
struct served {
    unsigned char *gz;
    size_t gz_len;
    char etag[ETAG_MAX], etag_gz[ETAG_MAX];
};

static struct served *served;  /* wl_page_n_files entries, set once */
static pthread_once_t prepare_once = PTHREAD_ONCE_INIT;

/* data as one gzip member, or NULL (no memory, or not smaller). */
static unsigned char *gzip_copy(const unsigned char *data, size_t len, size_t *out_len)
{
    z_stream zs = {0};
    unsigned char *out = NULL;

    if (deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    size_t cap = deflateBound(&zs, (uLong)len);
    if ((out = malloc(cap)) == NULL)
        goto fail;
    zs.next_in = (Bytef *)data;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END || zs.total_out >= len)
        goto fail;
    *out_len = zs.total_out;
    deflateEnd(&zs);
    return out;

fail:
    deflateEnd(&zs);
    free(out);
    return NULL;
}

static void prepare(void)
{
    struct served *s = calloc(wl_page_n_files ? wl_page_n_files : 1, sizeof *s);
    if (s == NULL)
        return; /* served stays NULL: every page request answers 503 */
    for (size_t i = 0; i < wl_page_n_files; i++) {
        const struct wl_page_file *f = &wl_page_files[i];
        unsigned char h[16];
        char hex[33];
        crypto_generichash(h, sizeof h, f->data, f->len, NULL, 0);
        sodium_bin2hex(hex, sizeof hex, h, 10);
        snprintf(s[i].etag, ETAG_MAX, "\"%s\"", hex);
        snprintf(s[i].etag_gz, ETAG_MAX, "\"%s-gz\"", hex);
        s[i].gz = gzip_copy(f->data, f->len, &s[i].gz_len);
    }
    served = s;
    wl_info("api_page_ready", "files=%zu", wl_page_n_files);
}

/* The next comma-separated element of *p, trimmed, as [*start, *end). */
static int next_item(const char **p, const char **start, const char **end)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t' || *s == ',')
        s++;
    if (*s == '\0')
        return 0;
    const char *e = s;
    while (*e != '\0' && *e != ',')
        e++;
    *p = e;
    *start = s;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *end = e;
    return 1;
}

/* Accept-Encoding names gzip (or *) with a weight other than 0. */
static int accepts_gzip(const char *h)
{
    const char *s, *e;
    if (h == NULL)
        return 0;
    while (next_item(&h, &s, &e)) {
        const char *semi = memchr(s, ';', (size_t)(e - s));
        const char *name_end = semi ? semi : e;
        while (name_end > s && isspace((unsigned char)name_end[-1]))
            name_end--;
        size_t n = (size_t)(name_end - s);
        if (!((n == 4 && strncasecmp(s, "gzip", 4) == 0) || (n == 1 && *s == '*')))
            continue;
        if (semi == NULL)
            return 1;
        const char *q = semi + 1;
        while (q < e && isspace((unsigned char)*q))
            q++;
        if (e - q < 2 || (q[0] != 'q' && q[0] != 'Q') || q[1] != '=')
            return 1;
        return strtod(q + 2, NULL) > 0; /* bounded by the header's ',' or NUL */
    }
    return 0;
}

/* If-None-Match lists etag (or is "*"); weak tags compare as strong. */
static int etag_matches(const char *h, const char *etag)
{
    const char *s, *e;
    size_t n = strlen(etag);
    if (h == NULL)
        return 0;
    while (next_item(&h, &s, &e)) {
        if (e - s >= 2 && s[0] == 'W' && s[1] == '/')
            s += 2;
        if ((e - s == 1 && *s == '*') || ((size_t)(e - s) == n && memcmp(s, etag, n) == 0))
            return 1;
    }
    return 0;
}

static void page_headers(struct MHD_Response *r, const char *etag)
{
    MHD_add_response_header(r, "Content-Security-Policy", WL_PAGE_CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "Vary", "Accept-Encoding");
    MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
}

static enum MHD_Result serve(struct wl_req *rq, size_t i)
{
    pthread_once(&prepare_once, prepare);
    if (served == NULL)
        return wl_api_send_error(rq->conn, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory",
                                 "the page could not be prepared");
    const struct wl_page_file *f = &wl_page_files[i];
    const struct served *s = &served[i];
    int gz = s->gz != NULL &&
             accepts_gzip(MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
                                                      MHD_HTTP_HEADER_ACCEPT_ENCODING));
    const char *etag = gz ? s->etag_gz : s->etag;
    int fresh = etag_matches(MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_IF_NONE_MATCH),
                             etag);
    struct MHD_Response *r;
    if (fresh)
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    else
        r = MHD_create_response_from_buffer(gz ? s->gz_len : f->len,
                                            (void *)(gz ? s->gz : f->data),
                                            MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    page_headers(r, etag);
    if (!fresh)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, f->type);
    if (gz && !fresh)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    enum MHD_Result ret = MHD_queue_response(rq->conn, fresh ? MHD_HTTP_NOT_MODIFIED
                                                               : MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result by_name(struct wl_req *rq, const char *name)
{
    for (size_t i = 0; i < wl_page_n_files; i++)
        if (strcmp(wl_page_files[i].name, name) == 0)
            return serve(rq, i);
    return wl_api_send_error(rq->conn, MHD_HTTP_NOT_FOUND, "not_found", "no such asset: %.100s",
                             name);
}

enum MHD_Result wl_api_page(struct wl_req *rq)
{
    return by_name(rq, "index.html");
}

enum MHD_Result wl_api_asset(struct wl_req *rq)
{
    return by_name(rq, rq->rest);
}
