/* The network table over HTTP: PUT /v1/networks replaces it from a CSV of
 * cidr,domain (admin; its own body cap, api_max_networks_bytes), GET
 * /v1/networks lists it in key order, a page at a time (read). Domains are
 * hashed at the door: only org keys are stored, logged or answered. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_http.h"
#include "log.h"
#include "networks.h"
#include "ping_json.h"
#include "storage/keys.h"

#define ERR_MAX 512

/* The table; NULL after queueing a 503 when the server gave the API none. */
static struct wl_networks *need_networks(const struct wl_req *rq, enum MHD_Result *ret)
{
    struct wl_networks *n = __atomic_load_n(&rq->api->networks, __ATOMIC_ACQUIRE);
    if (n == NULL)
        *ret = wl_api_send_error(rq->conn, MHD_HTTP_SERVICE_UNAVAILABLE, "no_network_table",
                                 "the network table is not loaded");
    return n;
}

/* ---- PUT /v1/networks ---- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum MHD_Result import(struct wl_req *rq, struct wl_networks *table);

enum MHD_Result wl_api_networks_put(struct wl_req *rq)
{
    struct wl_api_param none[1];
    enum MHD_Result ret = MHD_NO;
    struct wl_networks *table;

    if (wl_api_params(rq, none, 0, &ret) != 0 || !wl_api_need_salt(rq, &ret) ||
        (table = need_networks(rq, &ret)) == NULL)
        return ret;
    if (rq->body == NULL || rq->body_len == 0)
        return wl_api_send_error(rq->conn, MHD_HTTP_BAD_REQUEST, "bad_csv",
                                 "line 1: the body is empty; to empty the table send the "
                                 "header row cidr,domain alone");
    if (wl_networks_import_begin(table) != 0)
        return wl_api_send_error(rq->conn, MHD_HTTP_CONFLICT, "import_in_progress",
                                 "another import of the network table is running; send "
                                 "this one again when it is done");
    ret = import(rq, table);
    wl_networks_import_end(table);
    return ret;
}

/* Parses and replaces: one import, the caller holds it. */
static enum MHD_Result import(struct wl_req *rq, struct wl_networks *table)
{
    struct wl_api *api = rq->api;
    struct wl_net_prefix *v = NULL;
    size_t n = 0, removed = 0;
    size_t max = (size_t)(api->cfg->api_max_networks_bytes / WL_NETWORKS_BYTES_PER_PREFIX);
    char err[ERR_MAX];

    int64_t t0 = mono_ms();
    int rc = wl_networks_parse_csv(rq->body, rq->body_len, api->org_salt,
                                   api->org_salt_len, max, &v, &n, err, sizeof err);
    if (rc == -EINVAL)
        return wl_api_send_error(rq->conn, MHD_HTTP_BAD_REQUEST, "bad_csv", "%s", err);
    if (rc != 0)
        return wl_api_send_error(rq->conn, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory",
                                 "%s", err);
    int64_t t1 = mono_ms();
    rc = wl_networks_replace(table, v, n, &removed, err, sizeof err);
    free(v);
    if (rc != 0)
        return wl_api_storage_error(rq->conn, "network table", err);
    wl_info("networks_imported",
            "prefixes=%zu removed=%zu body_bytes=%zu table_bytes=%zu parse_ms=%lld "
            "replace_ms=%lld", n, removed, rq->body_len, wl_networks_bytes(table),
            (long long)(t1 - t0), (long long)(mono_ms() - t1));
    return wl_api_send_json(rq->conn, MHD_HTTP_OK,
                            json_pack("{s:I,s:I}", "imported", (json_int_t)n, "removed",
                                      (json_int_t)removed));
}

/* ---- GET /v1/networks?after=CIDR&limit=N ---- */

static json_t *row_json(struct wl_api *api, const struct wl_snapshot *snap,
                        const struct wl_net_prefix *p, const uint8_t *org, char *err,
                        size_t errlen)
{
    char cidr[WL_NET_CIDR_MAX];
    uint8_t id[1 + WL_ORG_KEY_BYTES];

    wl_net_format(p, cidr);
    id[0] = WL_ORG_TAG_KEY;
    memcpy(id + 1, org, WL_ORG_KEY_BYTES);
    json_t *named = wl_api_named_label(api, snap, id, sizeof id, err, errlen);
    if (named == NULL)
        return NULL;
    return json_pack("{s:s,s:o,s:o}", "cidr", cidr, "org", wl_json_hex(org, WL_ORG_KEY_BYTES),
                     "named", named);
}

enum MHD_Result wl_api_networks_list(struct wl_req *rq)
{
    struct wl_api *api = rq->api;
    struct wl_api_param p[] = {{"after"}, {"limit"}};
    enum MHD_Result ret = MHD_NO;
    struct wl_net_prefix after, last;
    uint64_t limit;
    char err[ERR_MAX] = "out of memory", why[200];
    int rc = 0, have_last = 0, more = 0;

    if (wl_api_params(rq, p, 2, &ret) != 0 ||
        wl_api_param_uint(rq, &p[1], 1, WL_API_LIMIT_MAX, 100, &limit, &ret) != 0)
        return ret;
    if (p[0].value != NULL && wl_net_parse(p[0].value, &after, why, sizeof why) != 0)
        return wl_api_send_error(rq->conn, MHD_HTTP_BAD_REQUEST, "bad_parameter",
                                 "after: %s", why);
    json_t *list = json_array();
    struct wl_snapshot *snap = wl_snapshot_new(api->store);
    struct wl_iter *it = snap ? wl_iter_new_at(api->store, snap, WL_CF_NETWORKS) : NULL;
    if (list == NULL || it == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    if (p[0].value != NULL) {
        uint8_t key[WL_NET_KEY_MAX];
        size_t klen = wl_net_key(&after, key);
        wl_iter_seek(it, key, klen);
        size_t got;
        if (wl_iter_valid(it)) {
            const char *k = wl_iter_key(it, &got);
            if (got == klen && memcmp(k, key, klen) == 0)
                wl_iter_next(it);
        }
    } else {
        wl_iter_seek_first(it);
    }
    for (; wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen, vlen;
        const char *k = wl_iter_key(it, &klen);
        const char *val = wl_iter_value(it, &vlen);
        struct wl_net_prefix np;
        if (vlen != WL_ORG_KEY_BYTES || wl_net_from_key(k, klen, &np) != 0)
            continue; /* a damaged record is left out, as the lookup leaves it */
        if (json_array_size(list) == limit) {
            more = 1;
            break;
        }
        json_t *o = row_json(api, snap, &np, (const uint8_t *)val, err, sizeof err);
        if (o == NULL || json_array_append_new(list, o) != 0) {
            rc = -EIO;
            break;
        }
        last = np;
        have_last = 1;
    }
    if (rc == 0)
        rc = wl_iter_status(it, err, sizeof err);
done:
    wl_iter_free(it);
    wl_snapshot_free(snap);
    if (rc != 0) {
        json_decref(list);
        return wl_api_storage_error(rq->conn, "network table", err);
    }
    json_t *next = json_null();
    if (more && have_last) {
        char cidr[WL_NET_CIDR_MAX];
        wl_net_format(&last, cidr);
        json_decref(next);
        next = json_string(cidr);
    }
    return wl_api_send_json(rq->conn, MHD_HTTP_OK,
                            json_pack("{s:o,s:o}", "networks", list, "next_after", next));
}
