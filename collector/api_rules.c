/* GET /v1/rules: the rules this collector evaluates, as its configuration
 * names them (read at start, never changed while it runs), for a client's
 * rule filter and for reading reasons. Runs on libmicrohttpd's pool; reads
 * only the configuration. */
#include <jansson.h>
#include <stdio.h>

#include "api_http.h"
#include "api_records.h"
#include "rules.h"

static json_t *rule_json(const struct wl_rule *r)
{
    json_t *o = json_object();
    int bad = o == NULL;

    wl_json_put(o, "name", wl_json_str(r->name), &bad);
    wl_json_put(o, "description", wl_json_str(r->description), &bad);
    wl_json_put(o, "weight", json_real(r->weight), &bad);
    wl_json_put(o, "cooldown_ms", json_integer((json_int_t)r->cooldown_ms), &bad);
    wl_json_put(o, "hysteresis", json_real(r->hysteresis), &bad);
    wl_json_put(o, "when", wl_json_str(r->when_text), &bad);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

enum MHD_Result wl_api_rules(struct wl_req *rq)
{
    const struct wl_ruleset *rs = &rq->api->cfg->rules;
    enum MHD_Result ret = MHD_NO;
    json_t *rules = json_array();

    if (wl_api_params(rq, NULL, 0, &ret) != 0) {
        json_decref(rules);
        return ret;
    }
    for (size_t i = 0; rules != NULL && i < rs->n; i++) {
        if (json_array_append_new(rules, rule_json(&rs->rules[i])) != 0) {
            json_decref(rules);
            rules = NULL;
        }
    }
    if (rules == NULL)
        return MHD_NO;
    return wl_api_send_json(rq->conn, MHD_HTTP_OK, json_pack("{s:o}", "rules", rules));
}
