#include "ping_json.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signal_json.h"

#define FIELD_SIZE(name) sizeof(((wl_ping *)0)->name)
#define F_STRING(name) {#name, WL_PF_STRING, offsetof(wl_ping, name)},
#define F_COUNT(name)                                                                      \
    {#name, FIELD_SIZE(name) == sizeof(uint64_t) ? WL_PF_U64 : WL_PF_U32,                  \
     offsetof(wl_ping, name)},

/* Proto order; the lists in ping.h supply the strings and the counts. */
const struct wl_ping_field wl_ping_fields[] = {
    {"install_id", WL_PF_STRING, offsetof(wl_ping, install_id)},
    {"org_key", WL_PF_ORG_KEY, offsetof(wl_ping, org_key)},
    {"seq", WL_PF_U64, offsetof(wl_ping, seq)},
    {"sent_at", WL_PF_I64, offsetof(wl_ping, sent_at)},
    WL_STRING_FIELDS(F_STRING)
    WL_COUNT_FIELDS(F_COUNT)
    {"features", WL_PF_FEATURES, offsetof(wl_ping, features)},
};
const size_t wl_ping_n_fields = sizeof wl_ping_fields / sizeof wl_ping_fields[0];

/* The table reads counts as uint32_t or uint64_t: fail the build if a
 * count of another width is ever added. */
#define CHECK_COUNT_WIDTH(name)                                              \
    _Static_assert(FIELD_SIZE(name) == sizeof(uint32_t) ||                   \
                       FIELD_SIZE(name) == sizeof(uint64_t),                 \
                   #name " must be uint32 or uint64");
WL_COUNT_FIELDS(CHECK_COUNT_WIDTH)
#undef CHECK_COUNT_WIDTH

json_t *wl_presence_json(uint64_t presence)
{
    json_t *a = json_array();
    char name[64];
    for (int bit = 1; a != NULL && bit < 64; bit++) {
        if (!(presence & WL_PRESENT(bit)))
            continue;
        const char *n = NULL;
        if (bit == WL_ORG_BY_NETWORK)
            n = "org_by_network";
        else if ((size_t)bit <= wl_ping_n_fields)
            n = wl_ping_fields[bit - 1].name; /* the table is in field-number order */
        else if (bit >= WL_FEATURE_BIT(0) && bit < WL_FEATURE_BIT(WL_N_EDGE_FEATURES))
            n = (snprintf(name, sizeof name, "feature:%s",
                          wl_edge_feature_names[bit - WL_FEATURE_BIT(0)]), name);
        if (n != NULL && json_array_append_new(a, json_string(n)) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

json_t *wl_json_u64(uint64_t v)
{
    char buf[24];

    if (v <= (uint64_t)INT64_MAX)
        return json_integer((json_int_t)v);
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return json_string(buf);
}

json_t *wl_json_hex(const uint8_t *b, size_t len)
{
    char *hex = malloc(2 * len + 1);
    if (hex == NULL)
        return NULL;
    sodium_bin2hex(hex, 2 * len + 1, b, len);
    json_t *j = json_stringn(hex, 2 * len);
    free(hex);
    return j;
}

static json_t *field_to_json(const wl_ping *p, const struct wl_ping_field *f)
{
    switch (f->kind) {
    case WL_PF_STRING: {
        const char *s = *WL_PING_FIELD_AT_CONST(p, f, char *);
        return wl_json_string_lossy(s, s ? strlen(s) : 0);
    }
    case WL_PF_U32:
        return json_integer(*WL_PING_FIELD_AT_CONST(p, f, uint32_t));
    case WL_PF_U64:
        return wl_json_u64(*WL_PING_FIELD_AT_CONST(p, f, uint64_t));
    case WL_PF_I64:
        return json_integer(*WL_PING_FIELD_AT_CONST(p, f, int64_t));
    case WL_PF_ORG_KEY:
        return wl_json_hex(p->org_key.data, p->org_key.len);
    case WL_PF_FEATURES: {
        json_t *arr = json_array();
        for (size_t i = 0; arr != NULL && i < p->n_features; i++) {
            const char *s = p->features[i];
            if (json_array_append_new(arr, wl_json_string_lossy(s, s ? strlen(s) : 0)) != 0) {
                json_decref(arr);
                arr = NULL;
            }
        }
        return arr;
    }
    }
    return NULL;
}

int wl_ping_json_add(json_t *obj, const wl_ping *p)
{
    for (size_t i = 0; i < wl_ping_n_fields; i++) {
        /* set_new takes the value even when it fails, and rejects NULL. */
        if (json_object_set_new(obj, wl_ping_fields[i].name,
                                field_to_json(p, &wl_ping_fields[i])) != 0)
            return -ENOMEM;
    }
    return 0;
}
