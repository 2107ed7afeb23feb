/* What the files of the HTTP API share (collector/api*.c only; the rest of
 * the collector sees api.h): the server's state, one request, and the
 * helpers that answer and read query parameters. Every handler answers
 * with exactly one queued response and returns what MHD_queue_response
 * returned. */
#ifndef WL_API_HTTP_H
#define WL_API_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "storage/store.h"

struct wl_writer;
struct wl_networks;

#define WL_API_LIMIT_MAX 1000

struct wl_api {
    struct MHD_Daemon *mhd;
    const struct wl_config *cfg;
    struct wl_store *store;
    char *read_token;           /* NULL: none configured */
    char *admin_token;
    uint8_t *org_salt;          /* NULL: not loaded, salt_error says why */
    size_t org_salt_len;
    char salt_error[300];
    pthread_mutex_t named_lock; /* one named-accounts write at a time */
    char address[300];
    atomic_int ready;
    pthread_rwlock_t writer_lock; /* forgets hold it for reading while they use writer */
    struct wl_writer *writer;     /* NULL: forgets answer 503 */
    struct wl_networks *networks; /* the network table (networks.h), NULL: 503; atomic */
};

/* One request, as the handlers see it. */
struct wl_req {
    struct wl_api *api;
    struct MHD_Connection *conn;
    const char *path;           /* URL path, percent-decoded by MHD */
    const char *rest;           /* after a prefix route's prefix, else "" */
    char *body;                 /* the upload (PUT), NUL-terminated; NULL for none */
    size_t body_len;
    int64_t now;                /* unix ms when the request was answered */
};

/* ---- answers (api.c) ---- */

/* Sends obj (taken, even on failure) as JSON with a trailing newline. */
enum MHD_Result wl_api_send_json(struct MHD_Connection *conn, unsigned status, json_t *obj);

/* {"error":{"code":code,"message":...}}; the message is printf-formatted
 * and made valid UTF-8. */
enum MHD_Result wl_api_send_error(struct MHD_Connection *conn, unsigned status, const char *code,
                                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Sends body (malloc'd, taken) with the content type. */
enum MHD_Result wl_api_send_text(struct MHD_Connection *conn, unsigned status, const char *type,
                                 char *body, size_t len);

/* 204, no body. */
enum MHD_Result wl_api_send_no_content(struct MHD_Connection *conn);

/* 500 storage_error with the reason (logged too). */
enum MHD_Result wl_api_storage_error(struct MHD_Connection *conn, const char *what,
                                     const char *err);

/* ---- query parameters (api_params.c) ---- */

struct wl_api_param {
    const char *name;           /* set by the caller */
    const char *value;          /* NULL when not given ("" for "?name") */
};

/* Fills the values of params from the query string. An unknown or repeated
 * parameter queues a 400 naming it and returns -1; else 0. */
int wl_api_params(const struct wl_req *rq, struct wl_api_param *params, size_t n,
                  enum MHD_Result *ret);

/* The parameter as a whole number in [min, max] (def when not given); else
 * a 400 is queued and -1 returned. */
int wl_api_param_uint(const struct wl_req *rq, const struct wl_api_param *p, uint64_t min,
                      uint64_t max, uint64_t def, uint64_t *out, enum MHD_Result *ret);

/* A finite number >= 0 (def when not given). */
int wl_api_param_score(const struct wl_req *rq, const struct wl_api_param *p, double def,
                       double *out, enum MHD_Result *ret);

/* A time: unix ms, or "YYYY-MM-DD", or "YYYY-MM-DDTHH:MM[:SS[.fff]]" with
 * "Z" or "+HH:MM" / "-HH:MM". *given = 0 when absent. */
int wl_api_param_time(const struct wl_req *rq, const struct wl_api_param *p, int64_t *out,
                      int *given, enum MHD_Result *ret);

/* A rule name: [A-Za-z0-9_.-], 1 to 63 characters; NULL when absent. */
int wl_api_param_name(const struct wl_req *rq, const struct wl_api_param *p, const char **out,
                      enum MHD_Result *ret);

/* Parses a time as wl_api_param_time does: 0, or -EINVAL. */
int wl_api_parse_time(const char *s, int64_t *out_ms);

/* Bytes sent as base64url without padding (a cursor), min to max of them,
 * into out (max bytes); *len = 0 when absent. Else a 400 saying expected. */
int wl_api_param_b64(const struct wl_req *rq, const struct wl_api_param *p, uint8_t *out,
                     size_t min, size_t max, size_t *len, const char *expected,
                     enum MHD_Result *ret);

/* n bytes as a base64url JSON string without padding (NULL: ENOMEM). */
json_t *wl_api_b64_json(const uint8_t *b, size_t n);

/* ---- handlers ---- */

/* api_accounts.c */
enum MHD_Result wl_api_hot(struct wl_req *rq);
enum MHD_Result wl_api_account(struct wl_req *rq);   /* rq->rest: the organization */

/* api_signals.c */
enum MHD_Result wl_api_signals(struct wl_req *rq);

/* api_rules.c */
enum MHD_Result wl_api_rules(struct wl_req *rq);

/* api_named.c */
enum MHD_Result wl_api_named_put(struct wl_req *rq);
enum MHD_Result wl_api_named_list(struct wl_req *rq);
enum MHD_Result wl_api_named_delete(struct wl_req *rq); /* rq->rest: the domain */

/* api_networks.c */
enum MHD_Result wl_api_networks_put(struct wl_req *rq);
enum MHD_Result wl_api_networks_list(struct wl_req *rq);

/* api_forget.c */
enum MHD_Result wl_api_forget(struct wl_req *rq);
enum MHD_Result wl_api_deletions(struct wl_req *rq);

/* The organization's label {"domain","name","owner"}, or JSON null when it
 * has none (or is not an org_key organization). NULL on a storage error or
 * ENOMEM, with err set. */
json_t *wl_api_named_label(struct wl_api *api, const struct wl_snapshot *snap,
                           const uint8_t *org, size_t org_len, char *err, size_t errlen);

/* api_guard.c: without tokens, 1 when the request names the listener in its
 * Host and (when sent) its Origin, and, when media is set, its Content-Type
 * is media; else 0 with a 403 (host, origin) or 415 queued. With tokens, 1. */
int wl_api_guard(const struct wl_api *api, struct MHD_Connection *conn, const char *media,
                 enum MHD_Result *ret);

/* 503 no_org_salt when the salt is not loaded: returns 0 and queues it. */
int wl_api_need_salt(const struct wl_req *rq, enum MHD_Result *ret);

#endif
