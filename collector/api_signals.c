/* The signal log over HTTP, in id order, for tailing: ask for the signals
 * after the last id seen. */
#include <errno.h>
#include <stdint.h>

#include "api_http.h"
#include "records.pb-c.h"
#include "signal_json.h"
#include "storage/keys.h"

#define ERR_MAX 256

enum MHD_Result wl_api_signals(struct wl_req *rq)
{
    struct wl_api_param p[] = {{"after"}, {"limit"}};
    enum MHD_Result ret = MHD_NO;
    uint64_t after, limit, next;
    char err[ERR_MAX] = "out of memory";
    uint8_t key[8];
    int rc = 0;

    if (wl_api_params(rq, p, 2, &ret) != 0 ||
        wl_api_param_uint(rq, &p[0], 0, (uint64_t)INT64_MAX, 0, &after, &ret) != 0 ||
        wl_api_param_uint(rq, &p[1], 1, WL_API_LIMIT_MAX, 100, &limit, &ret) != 0)
        return ret;
    next = after;
    json_t *signals = json_array();
    struct wl_iter *it = wl_iter_new_at(rq->api->store, NULL, WL_CF_SIGNALS);
    if (signals == NULL || it == NULL) {
        json_decref(signals);
        wl_iter_free(it);
        return MHD_NO;
    }
    wl_be64_put(key, after + 1);
    for (wl_iter_seek(it, key, sizeof key); wl_iter_valid(it) && json_array_size(signals) < limit;
         wl_iter_next(it)) {
        size_t klen, vlen;
        const char *k = wl_iter_key(it, &klen);
        const char *v = wl_iter_value(it, &vlen);
        if (klen != 8)
            continue;
        wl_signal *s = warmline__store__v1__signal__unpack(NULL, vlen, (const uint8_t *)v);
        next = wl_be64_get(k); /* past a damaged record too: a tail must not stick on it */
        if (s == NULL)
            continue;
        json_t *j = wl_signal_json(s);
        warmline__store__v1__signal__free_unpacked(s, NULL);
        if (j == NULL || json_array_append_new(signals, j) != 0) {
            rc = -ENOMEM;
            break;
        }
    }
    if (rc == 0)
        rc = wl_iter_status(it, err, sizeof err);
    wl_iter_free(it);
    if (rc != 0) {
        json_decref(signals);
        return wl_api_storage_error(rq->conn, "signals", err);
    }
    return wl_api_send_json(rq->conn, MHD_HTTP_OK,
                            json_pack("{s:o,s:I}", "signals", signals, "next_after",
                                      (json_int_t)next));
}
