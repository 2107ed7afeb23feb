/* --metrics URL: the collector's own count of the UDP pings it received and
 * stored, read from its Prometheus text (GET /metrics) before and after a
 * run: UDP has no acks, so this is how a sender learns what was lost. */
#include <curl/curl.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"
#include "collector/token.h"

#define METRICS_MAX (4 << 20) /* the collector's whole page is a few KiB */

struct body {
    char *buf;
    size_t len, cap;
};

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    size_t add = size * n;
    if (b->len + add + 1 > METRICS_MAX)
        return 0; /* curl fails the transfer */
    if (b->len + add + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + add + 1)
            cap *= 2;
        char *nb = realloc(b->buf, cap);
        if (nb == NULL)
            return 0;
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, data, add);
    b->len += add;
    b->buf[b->len] = '\0';
    return add;
}

/* The value of "warmline_NAME_total{transport="udp"} V" at the start of a line. */
static int find_counter(const char *text, const char *name, uint64_t *out)
{
    char prefix[128];
    int n = snprintf(prefix, sizeof prefix, "warmline_%s_total{transport=\"udp\"} ", name);
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, prefix, (size_t)n) == 0) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(p + n, &end, 10);
            if (errno != 0 || end == p + n)
                return -1;
            *out = v;
            return 0;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

int lg_metrics_udp(const struct lg_options *opt, struct lg_udp_counts *out, char *err,
                   size_t errlen)
{
    struct body b = {0};
    struct curl_slist *headers = NULL;
    char *tok = NULL, *auth = NULL;
    long status = 0;
    int rc = -1;

    CURL *c = curl_easy_init();
    if (c == NULL) {
        snprintf(err, errlen, "metrics: cannot start libcurl");
        return -1;
    }
    if (opt->token_file[0] != '\0') {
        if (wl_token_from_file("--token-file", opt->token_file, &tok, err, errlen) != 0)
            goto done;
        if (asprintf(&auth, "Authorization: Bearer %s", tok) < 0) {
            auth = NULL;
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        headers = curl_slist_append(headers, auth);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    }
    curl_easy_setopt(c, CURLOPT_URL, opt->metrics);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cr = curl_easy_perform(c);
    if (cr != CURLE_OK) {
        snprintf(err, errlen, "metrics %s: %s", opt->metrics, curl_easy_strerror(cr));
        goto done;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        snprintf(err, errlen, "metrics %s: HTTP %ld%s", opt->metrics, status,
                 status == 401 ? " (the API wants its read token: --token-file)" : "");
        goto done;
    }
    if (b.buf == NULL || find_counter(b.buf, "pings_received", &out->received) != 0 ||
        find_counter(b.buf, "pings_accepted", &out->accepted) != 0 ||
        find_counter(b.buf, "pings_duplicate", &out->duplicate) != 0) {
        snprintf(err, errlen, "metrics %s: no warmline_pings_{received,accepted,duplicate}_total"
                 "{transport=\"udp\"} counters there (is it a Warmline collector's /metrics?)",
                 opt->metrics);
        goto done;
    }
    rc = 0;
done:
    if (tok != NULL) /* the token, wherever it went */
        sodium_memzero(tok, strlen(tok));
    if (auth != NULL)
        sodium_memzero(auth, strlen(auth));
    for (struct curl_slist *h = headers; h != NULL; h = h->next)
        sodium_memzero(h->data, strlen(h->data));
    free(tok);
    free(auth);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    free(b.buf);
    return rc;
}
