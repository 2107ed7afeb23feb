/* The Rudder batch endpoint's parts (POST /v1/batch): the write keys, the
 * body as it is read, the organization an address gives, and the answer.
 * Pure or thread-safe; the route itself is in http_ingest.c. */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_ingest_parts.h"
#include "networks.h"

/* ---- write keys ---- */

int wl_rudder_keys_parse(const char *csv, struct wl_rudder_keys *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (csv[0] == '\0')
        return 0;
    for (const char *p = csv;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == 0) {
            snprintf(err, errlen, "rudder_write_keys: an empty key in the list");
            return -EINVAL;
        }
        if (out->n == WL_RUDDER_KEYS_MAX) {
            snprintf(err, errlen, "rudder_write_keys: more than %d keys", WL_RUDDER_KEYS_MAX);
            return -EINVAL;
        }
        crypto_generichash(out->hash[out->n++], sizeof out->hash[0], (const uint8_t *)p, n,
                           NULL, 0);
        if (end == NULL)
            break;
        p = end + 1;
    }
    return 0;
}

int wl_rudder_keys_allow(const struct wl_rudder_keys *k, const char *user, size_t len)
{
    uint8_t h[sizeof k->hash[0]];
    int ok = 0;

    if (k->n == 0)
        return 1; /* none configured: any key */
    if (user == NULL)
        return 0;
    crypto_generichash(h, sizeof h, (const uint8_t *)user, len, NULL, 0);
    for (size_t i = 0; i < k->n; i++) /* every key compared: the time says nothing */
        ok |= sodium_memcmp(h, k->hash[i], sizeof h) == 0;
    return ok;
}

/* ---- the body ---- */

int wl_body_add(struct wl_body *b, const char *data, size_t n, size_t max)
{
    if (b->over || n > max - b->len) {
        b->over = 1; /* read past, not kept */
        return 0;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + n)
            cap *= 2;
        if (cap > max)
            cap = max;
        uint8_t *p = malloc(cap); /* not realloc: the old bytes are wiped, not left behind */
        if (p == NULL)
            return -ENOMEM;
        if (b->p != NULL) {
            memcpy(p, b->p, b->len);
            sodium_memzero(b->p, b->cap);
            free(b->p);
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

void wl_body_free(struct wl_body *b)
{
    if (b->p != NULL) /* raw domains, customer and license ids */
        sodium_memzero(b->p, b->cap);
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- the organization an address gives ---- */

size_t wl_edge_apply_network(wl_ping_batch *batch, struct wl_edge *edge,
                             struct wl_networks *nets, const struct sockaddr *client)
{
    uint8_t key[32];
    size_t n = 0;

    if (nets == NULL || client == NULL || wl_networks_lookup(nets, client, key) != 1)
        return 0;
    for (size_t i = 0; i < batch->n_pings; i++) {
        wl_ping *p = batch->pings[i];
        if (edge[i].presence & WL_PRESENT(WL_FIELD_ORG_KEY))
            continue; /* a domain said already: it goes first */
        uint8_t *copy = malloc(sizeof key);
        if (copy == NULL)
            continue;
        memcpy(copy, key, sizeof key);
        free(p->org_key.data); /* empty: NULL, or protobuf-c's (never ours to free) */
        p->org_key.data = copy;
        p->org_key.len = sizeof key;
        edge[i].presence |= WL_PRESENT(WL_FIELD_ORG_KEY) | WL_PRESENT(WL_ORG_BY_NETWORK);
        n++;
    }
    sodium_memzero(key, sizeof key);
    return n;
}

/* ---- the answer ---- */

char *wl_rudder_answer(const struct wl_rudder_outcome *o, size_t *len)
{
    json_t *obj = json_pack("{s:I,s:I,s:I,s:I,s:I}", "accepted", (json_int_t)o->accepted,
                            "duplicates", (json_int_t)o->duplicates, "rejected",
                            (json_int_t)o->rejected, "dropped", (json_int_t)o->dropped,
                            "ignored", (json_int_t)o->ignored);
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (text != NULL)
        *len = strlen(text);
    return text;
}
