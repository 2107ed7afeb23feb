/* Data-subject requests over the API (admin token):
 *   POST /v1/forget     {"org": "<64 hex>" | "install:<id>"} or {"domain": "acme.com"}
 *                       or {"install": "<id>"}: the writer deletes every record of it
 *                       (collector/forget.h) and answers how many of each table,
 *                       once every slice of it is in; 404 when nothing matched.
 *   GET /v1/deletions   the deletion records: when, which kind, how many; never whom. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_http.h"
#include "forget.h"
#include "orgkey.h"

#define ERR_MAX 512

/* The target the body names; else a 400 (or 503 without the salt) is
 * queued and -1 returned. */
static int parse_target(struct wl_req *rq, struct wl_forget_target *t, enum MHD_Result *ret)
{
    static const char *const keys[] = {"org", "domain", "install"};
    const char *which = NULL, *value = NULL;
    json_error_t jerr;
    char why[256];
    json_t *doc = rq->body ? json_loadb(rq->body, rq->body_len, 0, &jerr) : NULL;
    const char *k;
    json_t *v;

    if (doc == NULL || !json_is_object(doc)) {
        json_decref(doc);
        *ret = wl_api_send_error(rq->conn, MHD_HTTP_BAD_REQUEST, "bad_body",
                                 "expected a JSON object: {\"org\": \"<64 hex>\"}, "
                                 "{\"domain\": \"acme.com\"} or {\"install\": \"<id>\"}");
        return -1;
    }
    json_object_foreach(doc, k, v) {
        size_t i;
        for (i = 0; i < sizeof keys / sizeof keys[0] && strcmp(k, keys[i]) != 0; i++)
            ;
        if (i == sizeof keys / sizeof keys[0] || which != NULL || !json_is_string(v)) {
            *ret = wl_api_send_error(rq->conn, MHD_HTTP_BAD_REQUEST, "bad_body",
                                     "%s: give exactly one of org, domain or install, as a "
                                     "string",
                                     i == sizeof keys / sizeof keys[0] ? "unknown field"
                                     : which != NULL                   ? "more than one target"
                                                                       : keys[i]);
            json_decref(doc);
            return -1;
        }
        which = keys[i];
        value = json_string_value(v);
    }
    if (which == NULL) {
        json_decref(doc);
        *ret = wl_api_send_error(rq->conn, MHD_HTTP_BAD_REQUEST, "bad_body",
                                 "give one of org, domain or install");
        return -1;
    }
    int rc = 0;
    if (strcmp(which, "org") == 0) {
        rc = wl_forget_target_org(t, value, why, sizeof why);
    } else if (strcmp(which, "install") == 0) {
        rc = wl_forget_target_install(t, value, why, sizeof why);
    } else if (!wl_api_need_salt(rq, ret)) {
        json_decref(doc);
        return -1;
    } else if ((rc = wl_org_domain_check(value, why, sizeof why)) == 0) {
        uint8_t key[WL_ORG_KEY_BYTES];
        wl_org_key(rq->api->org_salt, rq->api->org_salt_len, value, key);
        wl_forget_target_key(t, key);
    }
    if (rc != 0)
        *ret = wl_api_send_error(rq->conn, MHD_HTTP_BAD_REQUEST, "bad_target", "%s: %s", which,
                                 why);
    json_decref(doc);
    return rc != 0 ? -1 : 0;
}

enum MHD_Result wl_api_forget(struct wl_req *rq)
{
    struct wl_api *api = rq->api;
    struct wl_api_param none[1];
    struct wl_forget_target t;
    struct wl_forget_result res;
    enum MHD_Result ret = MHD_NO;
    char err[ERR_MAX] = "";
    int rc;

    if (wl_api_params(rq, none, 0, &ret) != 0 || parse_target(rq, &t, &ret) != 0)
        return ret;
    pthread_rwlock_rdlock(&api->writer_lock);
    if (api->writer == NULL)
        rc = -ESHUTDOWN;
    else
        rc = wl_forget(api->writer, api->store, &t, "api", &res, err, sizeof err);
    pthread_rwlock_unlock(&api->writer_lock);
    if (rc == -ESHUTDOWN)
        return wl_api_send_error(rq->conn, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                                 "the collector is stopping: try again once it runs");
    if (rc == -ENOENT)
        return wl_api_send_error(rq->conn, MHD_HTTP_NOT_FOUND, "not_found",
                                 "nothing matched: no record of that %s",
                                 t.kind == WL_FORGET_ORG ? "organization" : "install");
    if (rc != 0)
        return wl_api_storage_error(rq->conn, "forget", err);
    return wl_api_send_json(rq->conn, MHD_HTTP_OK,
                            json_pack("{s:o,s:{s:I,s:I}}", "deleted",
                                      wl_forget_counts_json(&res.deleted), "deletion", "seq",
                                      (json_int_t)res.deletion, "at", (json_int_t)res.at));
}

static int add_record(void *arg, const char *text, size_t len)
{
    json_t *list = arg;
    json_t *o = json_loadb(text, len, 0, NULL);
    if (o == NULL)
        return 0; /* a damaged record is left out */
    return json_array_append_new(list, o) != 0 ? -1 : 0;
}

enum MHD_Result wl_api_deletions(struct wl_req *rq)
{
    struct wl_api_param none[1];
    enum MHD_Result ret = MHD_NO;
    char err[ERR_MAX] = "out of memory";

    if (wl_api_params(rq, none, 0, &ret) != 0)
        return ret;
    json_t *list = json_array();
    if (list == NULL ||
        wl_forget_records(rq->api->store, NULL, add_record, list, err, sizeof err) != 0) {
        json_decref(list);
        return wl_api_storage_error(rq->conn, "deletions", err);
    }
    return wl_api_send_json(rq->conn, MHD_HTTP_OK, json_pack("{s:o}", "deletions", list));
}
