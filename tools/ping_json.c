#include "ping_json.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "collector/signal_json.h"
#include "storage/keys.h"

#define AT(p, f, type) WL_PING_FIELD_AT(p, f, type)

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number with a fraction or exponent";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "something else";
}

/* A malloc'd copy of a JSON string, or NULL with err set. */
static char *dup_string(const json_t *v, const char *what, char *err, size_t errlen)
{
    if (!json_is_string(v)) {
        snprintf(err, errlen, "%s: expected a string, got %s", what, type_name(v));
        return NULL;
    }
    size_t len = json_string_length(v);
    const char *s = json_string_value(v);
    if (memchr(s, '\0', len) != NULL) {
        snprintf(err, errlen, "%s: contains a NUL character", what);
        return NULL;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        snprintf(err, errlen, "%s: out of memory", what);
        return NULL;
    }
    memcpy(copy, s, len + 1);
    return copy;
}

/* A JSON integer in [0, max], or for max > INT64_MAX also a decimal string. */
static int get_unsigned(const json_t *v, uint64_t max, const char *what, uint64_t *out, char *err,
                        size_t errlen)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i >= 0 && (uint64_t)i <= max) {
            *out = (uint64_t)i;
            return 0;
        }
    } else if (json_is_string(v) && max > (uint64_t)INT64_MAX) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        unsigned long long u = strtoull(s, &end, 10);
        if (s[0] >= '0' && s[0] <= '9' && *end == '\0' && errno == 0) {
            *out = u;
            return 0;
        }
    } else {
        snprintf(err, errlen, "%s: expected an integer, got %s", what, type_name(v));
        return -EINVAL;
    }
    snprintf(err, errlen, "%s: expected an integer from 0 to %llu", what, (unsigned long long)max);
    return -EINVAL;
}

static int set_org_key(wl_ping *p, const json_t *v, char *err, size_t errlen)
{
    if (!json_is_string(v)) {
        snprintf(err, errlen, "org_key: expected a string of %d hex digits, got %s",
                 2 * WL_ORG_KEY_BYTES, type_name(v));
        return -EINVAL;
    }
    const char *hex = json_string_value(v);
    size_t hexlen = json_string_length(v);
    if (hexlen == 0)
        return 0; /* no organization: the collector files the install alone */
    uint8_t key[WL_ORG_KEY_BYTES];
    size_t binlen = 0;
    const char *end = NULL;
    if (hexlen != 2 * WL_ORG_KEY_BYTES ||
        sodium_hex2bin(key, sizeof key, hex, hexlen, NULL, &binlen, &end) != 0 ||
        binlen != WL_ORG_KEY_BYTES || end != hex + hexlen) {
        snprintf(err, errlen, "org_key: expected %d hex digits (or \"\" for none)",
                 2 * WL_ORG_KEY_BYTES);
        return -EINVAL;
    }
    p->org_key.data = malloc(WL_ORG_KEY_BYTES);
    if (p->org_key.data == NULL) {
        snprintf(err, errlen, "org_key: out of memory");
        return -ENOMEM;
    }
    memcpy(p->org_key.data, key, WL_ORG_KEY_BYTES);
    p->org_key.len = WL_ORG_KEY_BYTES;
    return 0;
}

static int set_features(wl_ping *p, const json_t *v, char *err, size_t errlen)
{
    if (!json_is_array(v)) {
        snprintf(err, errlen, "features: expected an array of strings, got %s", type_name(v));
        return -EINVAL;
    }
    size_t n = json_array_size(v);
    if (n == 0)
        return 0;
    p->features = calloc(n, sizeof *p->features);
    if (p->features == NULL) {
        snprintf(err, errlen, "features: out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        char what[32];
        snprintf(what, sizeof what, "features[%zu]", i);
        p->features[i] = dup_string(json_array_get(v, i), what, err, errlen);
        if (p->features[i] == NULL)
            return -EINVAL;
        p->n_features = i + 1;
    }
    return 0;
}

static int set_field(wl_ping *p, const struct wl_ping_field *f, const json_t *v, char *err,
                     size_t errlen)
{
    uint64_t u;

    switch (f->kind) {
    case WL_PF_STRING: {
        char *s = dup_string(v, f->name, err, errlen);
        if (s == NULL)
            return -EINVAL;
        *AT(p, f, char *) = s;
        return 0;
    }
    case WL_PF_U32:
        if (get_unsigned(v, UINT32_MAX, f->name, &u, err, errlen) != 0)
            return -EINVAL;
        *AT(p, f, uint32_t) = (uint32_t)u;
        return 0;
    case WL_PF_U64:
        if (get_unsigned(v, UINT64_MAX, f->name, &u, err, errlen) != 0)
            return -EINVAL;
        *AT(p, f, uint64_t) = u;
        return 0;
    case WL_PF_I64:
        if (!json_is_integer(v)) {
            snprintf(err, errlen, "%s: expected an integer, got %s", f->name, type_name(v));
            return -EINVAL;
        }
        *AT(p, f, int64_t) = json_integer_value(v);
        return 0;
    case WL_PF_ORG_KEY:
        return set_org_key(p, v, err, errlen);
    case WL_PF_FEATURES:
        return set_features(p, v, err, errlen);
    }
    return -EINVAL;
}

int wl_ping_from_json(const json_t *obj, wl_ping *p, const char **org_domain, char *err,
                      size_t errlen)
{
    const char *key;
    json_t *v;

    warmline__v1__ping__init(p);
    *org_domain = NULL;
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "expected a JSON object, got %s", type_name(obj));
        return -EINVAL;
    }
    json_object_foreach((json_t *)obj, key, v) {
        if (strcmp(key, "org_domain") == 0) {
            if (!json_is_string(v)) {
                snprintf(err, errlen, "org_domain: expected a string, got %s", type_name(v));
                return -EINVAL;
            }
            *org_domain = json_string_value(v);
            continue;
        }
        const struct wl_ping_field *f = NULL;
        for (size_t i = 0; i < wl_ping_n_fields && f == NULL; i++) {
            if (strcmp(key, wl_ping_fields[i].name) == 0)
                f = &wl_ping_fields[i];
        }
        if (f == NULL) {
            snprintf(err, errlen, "unknown field '%s'", key);
            return -EINVAL;
        }
        int rc = set_field(p, f, v, err, errlen);
        if (rc != 0)
            return rc;
    }
    if (*org_domain != NULL && json_object_get(obj, "org_key") != NULL) {
        snprintf(err, errlen, "org_key and org_domain both given; use one");
        return -EINVAL;
    }
    return 0;
}

void wl_ping_clear(wl_ping *p)
{
    for (size_t i = 0; i < wl_ping_n_fields; i++) {
        if (wl_ping_fields[i].kind == WL_PF_STRING) {
            char **s = AT(p, &wl_ping_fields[i], char *);
            if (*s != NULL && *s != protobuf_c_empty_string)
                free(*s);
        }
    }
    free(p->org_key.data);
    for (size_t i = 0; i < p->n_features; i++)
        free(p->features[i]);
    free(p->features);
    warmline__v1__ping__init(p);
}
