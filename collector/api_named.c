/* Named accounts: the sales team's labels for organizations (domain, name,
 * owner), keyed by the org key of the domain. The table is replaced whole
 * from a CSV upload in one atomic write; the raw domains live in this
 * column family alone. */
#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_csv.h"
#include "api_http.h"
#include "api_records.h"
#include "log.h"
#include "orgkey.h"
#include "ping.h"
#include "ping_json.h"
#include "records.pb-c.h"
#include "signal_json.h"
#include "storage/keys.h"

#define DOMAIN_MAX 253
#define TEXT_MAX 256            /* name and owner, bytes */
#define ERR_MAX 512

typedef Warmline__Store__V1__NamedAccount named_rec;

/* ---- the label of an organization ---- */

json_t *wl_api_named_label(struct wl_api *api, const struct wl_snapshot *snap,
                           const uint8_t *org, size_t org_len, char *err, size_t errlen)
{
    char *val = NULL;
    size_t vlen = 0;

    if (org_len != 1 + WL_ORG_KEY_BYTES || org[0] != WL_ORG_TAG_KEY)
        return json_null();
    int rc = wl_store_get_at(api->store, snap, WL_CF_NAMED, org + 1, WL_ORG_KEY_BYTES, &val,
                             &vlen, err, errlen);
    if (rc == -ENOENT)
        return json_null();
    if (rc != 0)
        return NULL;
    named_rec *r = warmline__store__v1__named_account__unpack(NULL, vlen, (const uint8_t *)val);
    free(val);
    if (r == NULL)
        return json_null(); /* a damaged label is no label */
    json_t *o = json_pack("{s:o,s:o,s:o}", "domain", wl_json_str(r->domain), "name",
                          wl_json_str(r->name), "owner", wl_json_str(r->owner));
    warmline__store__v1__named_account__free_unpacked(r, NULL);
    if (o == NULL)
        snprintf(err, errlen, "out of memory");
    return o;
}

/* ---- PUT /v1/named-accounts ---- */

struct entry {
    uint8_t key[WL_ORG_KEY_BYTES];
    char *domain, *name, *owner; /* point into the body */
    unsigned line;
};

/* Trims surrounding white space in place. */
static char *trim(char *s)
{
    while (*s != '\0' && strchr(" \t\v\f", *s) != NULL)
        s++;
    size_t n = strlen(s);
    while (n > 0 && strchr(" \t\v\f", s[n - 1]) != NULL)
        s[--n] = '\0';
    return s;
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

static int by_key(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    int c = memcmp(x->key, y->key, WL_ORG_KEY_BYTES);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

static int check_text(const char *what, const char *s, char *why, size_t len)
{
    size_t n = strlen(s);
    if (n > TEXT_MAX) {
        snprintf(why, len, "%s: longer than %d bytes", what, TEXT_MAX);
        return -EINVAL;
    }
    if (!wl_utf8_valid(s, n)) {
        snprintf(why, len, "%s: not valid UTF-8", what);
        return -EINVAL;
    }
    return 0;
}

/* Checks one row and fills e. */
static int parse_row(struct wl_api *api, char **f, struct entry *e, char *why, size_t len)
{
    char derr[256];

    e->domain = trim(f[0]);
    e->name = trim(f[1]);
    e->owner = trim(f[2]);
    if (wl_org_domain_check(e->domain, derr, sizeof derr) != 0) {
        snprintf(why, len, "domain: %s", derr);
        return -EINVAL;
    }
    if (strlen(e->domain) > DOMAIN_MAX || !wl_utf8_valid(e->domain, strlen(e->domain))) {
        snprintf(why, len, "domain: '%.64s' is not a domain (at most %d bytes of UTF-8)",
                 e->domain, DOMAIN_MAX);
        return -EINVAL;
    }
    if (check_text("name", e->name, why, len) != 0 || check_text("owner", e->owner, why, len))
        return -EINVAL;
    lower(e->domain);
    wl_org_key(api->org_salt, api->org_salt_len, e->domain, e->key);
    return 0;
}

/* Parses the whole body; on a fault returns -EINVAL with "line N: ..." */
static int parse_table(struct wl_api *api, char *body, size_t len, struct entry **out,
                       size_t *count, char *err, size_t errlen)
{
    struct wl_csv csv;
    char *f[3], why[300];
    unsigned line = 1;
    size_t n = 0, cap = 0;
    struct entry *v = NULL;
    int k;

    *out = NULL;
    *count = 0;
    if (len >= 3 && memcmp(body, "\xEF\xBB\xBF", 3) == 0) { /* a BOM, as spreadsheets write */
        body += 3;
        len -= 3;
    }
    wl_csv_init(&csv, body, len);
    k = wl_csv_next(&csv, f, 3, &line, why, sizeof why);
    if (k < 0)
        goto bad;
    if (k == 0) {
        snprintf(err, errlen, "line 1: the body is empty; expected the header row "
                              "domain,name,owner");
        return -EINVAL;
    }
    if (k != 3 || strcasecmp(trim(f[0]), "domain") != 0 || strcasecmp(trim(f[1]), "name") != 0 ||
        strcasecmp(trim(f[2]), "owner") != 0) {
        snprintf(err, errlen,
                 "line %u: expected the header row domain,name,owner, got "
                 "'%.40s%s%.40s%s%.40s%s'",
                 line, f[0], k > 1 ? "," : "", k > 1 ? f[1] : "", k > 2 ? "," : "",
                 k > 2 ? f[2] : "", k > 3 ? ",..." : "");
        return -EINVAL;
    }
    while ((k = wl_csv_next(&csv, f, 3, &line, why, sizeof why)) > 0) {
        if (k != 3) {
            snprintf(why, sizeof why, "expected 3 fields (domain,name,owner), got %d", k);
            goto bad;
        }
        if (n == cap) {
            size_t c2 = cap ? 2 * cap : 64;
            struct entry *v2 = realloc(v, c2 * sizeof *v2);
            if (v2 == NULL) {
                free(v);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
            }
            v = v2;
            cap = c2;
        }
        v[n].line = line;
        if (parse_row(api, f, &v[n], why, sizeof why) != 0)
            goto bad;
        n++;
    }
    if (k < 0)
        goto bad;
    if (n > 1) /* v is NULL for a header alone: qsort(NULL, 0) is undefined */
        qsort(v, n, sizeof *v, by_key);
    for (size_t i = 1; i < n; i++) {
        if (memcmp(v[i].key, v[i - 1].key, WL_ORG_KEY_BYTES) == 0) {
            snprintf(err, errlen, "line %u: domain '%.64s' is already on line %u", v[i].line,
                     v[i].domain, v[i - 1].line);
            free(v);
            return -EINVAL;
        }
    }
    *out = v;
    *count = n;
    return 0;

bad:
    free(v);
    snprintf(err, errlen, "line %u: %s", line, why);
    return -EINVAL;
}

static int is_new(const struct entry *v, size_t n, const char *key)
{
    struct entry probe;
    memcpy(probe.key, key, WL_ORG_KEY_BYTES);
    probe.line = 0;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = memcmp(v[mid].key, probe.key, WL_ORG_KEY_BYTES);
        if (c == 0)
            return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* One batch: every old key deleted, every new one put. */
static int replace_table(struct wl_api *api, const struct entry *v, size_t n, int64_t now,
                         size_t *removed, char *err, size_t errlen)
{
    struct wl_batch *b = wl_batch_new(api->store);
    struct wl_iter *it = wl_iter_new_at(api->store, NULL, WL_CF_NAMED);
    uint8_t *buf = NULL;
    size_t cap = 0;
    int rc = 0;

    *removed = 0;
    if (b == NULL || it == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto done;
    }
    for (wl_iter_seek_first(it); wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen;
        const char *k = wl_iter_key(it, &klen);
        wl_batch_delete(b, WL_CF_NAMED, k, klen);
        if (klen != WL_ORG_KEY_BYTES || !is_new(v, n, k))
            (*removed)++;
    }
    if ((rc = wl_iter_status(it, err, errlen)) != 0)
        goto done;
    for (size_t i = 0; i < n; i++) {
        named_rec r = WARMLINE__STORE__V1__NAMED_ACCOUNT__INIT;
        r.domain = v[i].domain;
        r.name = v[i].name;
        r.owner = v[i].owner;
        r.updated_at = now;
        size_t len = warmline__store__v1__named_account__get_packed_size(&r);
        if (len > cap) {
            uint8_t *b2 = realloc(buf, len);
            if (b2 == NULL) {
                snprintf(err, errlen, "out of memory");
                rc = -ENOMEM;
                goto done;
            }
            buf = b2;
            cap = len;
        }
        warmline__store__v1__named_account__pack(&r, buf);
        wl_batch_put(b, WL_CF_NAMED, v[i].key, WL_ORG_KEY_BYTES, buf, len);
    }
    rc = wl_store_write(api->store, b, 1, err, errlen);
done:
    free(buf);
    wl_iter_free(it);
    wl_batch_free(b);
    return rc;
}

enum MHD_Result wl_api_named_put(struct wl_req *rq)
{
    struct wl_api *api = rq->api;
    struct wl_api_param none[1];
    enum MHD_Result ret = MHD_NO;
    struct entry *v = NULL;
    size_t n = 0, removed = 0;
    char err[ERR_MAX];
    char empty[1] = "";

    if (wl_api_params(rq, none, 0, &ret) != 0 || !wl_api_need_salt(rq, &ret))
        return ret;
    int rc = parse_table(api, rq->body ? rq->body : empty, rq->body_len, &v, &n, err,
                         sizeof err);
    if (rc == -EINVAL)
        return wl_api_send_error(rq->conn, MHD_HTTP_BAD_REQUEST, "bad_csv", "%s", err);
    if (rc != 0)
        return MHD_NO;
    pthread_mutex_lock(&api->named_lock);
    rc = replace_table(api, v, n, rq->now, &removed, err, sizeof err);
    pthread_mutex_unlock(&api->named_lock);
    free(v);
    if (rc != 0)
        return wl_api_storage_error(rq->conn, "named accounts", err);
    wl_info("named_accounts_imported", "imported=%zu removed=%zu", n, removed);
    return wl_api_send_json(rq->conn, MHD_HTTP_OK,
                            json_pack("{s:I,s:I}", "imported", (json_int_t)n, "removed",
                                      (json_int_t)removed));
}

/* ---- GET /v1/named-accounts ---- */

static int by_domain(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    return strcmp(json_string_value(json_object_get(x, "domain")),
                  json_string_value(json_object_get(y, "domain")));
}

static json_t *named_json(const char *key, size_t klen, const char *val, size_t vlen)
{
    named_rec *r = warmline__store__v1__named_account__unpack(NULL, vlen, (const uint8_t *)val);
    if (r == NULL)
        return NULL;
    json_t *o = json_pack("{s:o,s:o,s:o,s:o,s:I}", "domain", wl_json_str(r->domain), "name",
                          wl_json_str(r->name), "owner", wl_json_str(r->owner), "org",
                          wl_json_hex((const uint8_t *)key, klen), "updated_at",
                          (json_int_t)r->updated_at);
    warmline__store__v1__named_account__free_unpacked(r, NULL);
    return o;
}

enum MHD_Result wl_api_named_list(struct wl_req *rq)
{
    struct wl_api_param none[1];
    enum MHD_Result ret = MHD_NO;
    char err[ERR_MAX] = "out of memory";
    json_t **v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    if (wl_api_params(rq, none, 0, &ret) != 0)
        return ret;
    struct wl_iter *it = wl_iter_new_at(rq->api->store, NULL, WL_CF_NAMED);
    if (it == NULL)
        return MHD_NO;
    for (wl_iter_seek_first(it); wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen, vlen;
        const char *k = wl_iter_key(it, &klen);
        const char *val = wl_iter_value(it, &vlen);
        json_t *o = named_json(k, klen, val, vlen);
        if (o == NULL)
            continue; /* a damaged record is left out */
        if (n == cap) {
            size_t c2 = cap ? 2 * cap : 64;
            json_t **v2 = realloc(v, c2 * sizeof *v2);
            if (v2 == NULL) {
                json_decref(o);
                rc = -ENOMEM;
                break;
            }
            v = v2;
            cap = c2;
        }
        v[n++] = o;
    }
    if (rc == 0)
        rc = wl_iter_status(it, err, sizeof err);
    wl_iter_free(it);
    if (n > 1) /* v is NULL when there are none: qsort(NULL, 0) is undefined */
        qsort(v, n, sizeof *v, by_domain);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        if (list != NULL && json_array_append_new(list, v[i]) != 0)
            rc = -ENOMEM;
        else if (list == NULL)
            json_decref(v[i]);
    }
    free(v);
    if (rc != 0 || list == NULL) {
        json_decref(list);
        return wl_api_storage_error(rq->conn, "named accounts", err);
    }
    return wl_api_send_json(rq->conn, MHD_HTTP_OK, json_pack("{s:o}", "named_accounts", list));
}

/* ---- DELETE /v1/named-accounts/{domain} ---- */

enum MHD_Result wl_api_named_delete(struct wl_req *rq)
{
    struct wl_api *api = rq->api;
    struct wl_api_param none[1];
    enum MHD_Result ret = MHD_NO;
    uint8_t key[WL_ORG_KEY_BYTES];
    char err[ERR_MAX], why[256];
    char *val = NULL;
    size_t vlen = 0;

    if (wl_api_params(rq, none, 0, &ret) != 0 || !wl_api_need_salt(rq, &ret))
        return ret;
    if (wl_org_domain_check(rq->rest, why, sizeof why) != 0)
        return wl_api_send_error(rq->conn, MHD_HTTP_BAD_REQUEST, "bad_domain", "domain: %s",
                                 why);
    wl_org_key(api->org_salt, api->org_salt_len, rq->rest, key);
    pthread_mutex_lock(&api->named_lock);
    int rc = wl_store_get_at(api->store, NULL, WL_CF_NAMED, key, sizeof key, &val, &vlen, err,
                             sizeof err);
    free(val);
    if (rc == 0) {
        struct wl_batch *b = wl_batch_new(api->store);
        if (b == NULL) {
            snprintf(err, sizeof err, "out of memory");
            rc = -ENOMEM;
        } else {
            wl_batch_delete(b, WL_CF_NAMED, key, sizeof key);
            rc = wl_store_write(api->store, b, 1, err, sizeof err);
            wl_batch_free(b);
        }
    }
    pthread_mutex_unlock(&api->named_lock);
    if (rc == -ENOENT)
        return wl_api_send_error(rq->conn, MHD_HTTP_NOT_FOUND, "not_found",
                                 "no named account for '%.100s'", rq->rest);
    if (rc != 0)
        return wl_api_storage_error(rq->conn, "named accounts", err);
    char hex[2 * WL_ORG_KEY_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, key, sizeof key);
    wl_info("named_account_deleted", "org=%s", hex);
    return wl_api_send_no_content(rq->conn);
}
