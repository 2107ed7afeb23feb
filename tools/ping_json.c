#include "ping_json.h"

#include "collector/signal_json.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "storage/keys.h"

enum kind { K_STRING, K_U32, K_U64, K_I64, K_ORG_KEY, K_FEATURES };

struct field {
    const char *name;
    enum kind kind;
    size_t off;
};

#define FIELD_SIZE(name) sizeof(((wl_ping *)0)->name)
#define F_STRING(name) {#name, K_STRING, offsetof(wl_ping, name)},
#define F_COUNT(name) \
    {#name, FIELD_SIZE(name) == sizeof(uint64_t) ? K_U64 : K_U32, offsetof(wl_ping, name)},

/* Proto order; the lists in ping.h supply the strings and the counts. */
static const struct field fields[] = {
    {"install_id", K_STRING, offsetof(wl_ping, install_id)},
    {"org_key", K_ORG_KEY, offsetof(wl_ping, org_key)},
    {"seq", K_U64, offsetof(wl_ping, seq)},
    {"sent_at", K_I64, offsetof(wl_ping, sent_at)},
    WL_STRING_FIELDS(F_STRING)
    WL_COUNT_FIELDS(F_COUNT)
    {"features", K_FEATURES, offsetof(wl_ping, features)},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

/* The table reads counts as uint32_t or uint64_t: fail the build if a
 * count of another width is ever added. */
#define CHECK_COUNT_WIDTH(name)                                              \
    _Static_assert(FIELD_SIZE(name) == sizeof(uint32_t) ||                   \
                       FIELD_SIZE(name) == sizeof(uint64_t),                 \
                   #name " must be uint32 or uint64");
WL_COUNT_FIELDS(CHECK_COUNT_WIDTH)
#undef CHECK_COUNT_WIDTH

#define AT(p, f, type) ((type *)((char *)(p) + (f)->off))
#define AT_CONST(p, f, type) ((const type *)((const char *)(p) + (f)->off))

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

static json_t *field_to_json(const wl_ping *p, const struct field *f)
{
    switch (f->kind) {
    case K_STRING: {
        const char *s = *AT_CONST(p, f, char *);
        return wl_json_string_lossy(s, s ? strlen(s) : 0);
    }
    case K_U32:
        return json_integer(*AT_CONST(p, f, uint32_t));
    case K_U64:
        return wl_json_u64(*AT_CONST(p, f, uint64_t));
    case K_I64:
        return json_integer(*AT_CONST(p, f, int64_t));
    case K_ORG_KEY:
        return wl_json_hex(p->org_key.data, p->org_key.len);
    case K_FEATURES: {
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
    for (size_t i = 0; i < N_FIELDS; i++) {
        /* set_new takes the value even when it fails, and rejects NULL. */
        if (json_object_set_new(obj, fields[i].name, field_to_json(p, &fields[i])) != 0)
            return -ENOMEM;
    }
    return 0;
}

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

static int set_field(wl_ping *p, const struct field *f, const json_t *v, char *err,
                     size_t errlen)
{
    uint64_t u;

    switch (f->kind) {
    case K_STRING: {
        char *s = dup_string(v, f->name, err, errlen);
        if (s == NULL)
            return -EINVAL;
        *AT(p, f, char *) = s;
        return 0;
    }
    case K_U32:
        if (get_unsigned(v, UINT32_MAX, f->name, &u, err, errlen) != 0)
            return -EINVAL;
        *AT(p, f, uint32_t) = (uint32_t)u;
        return 0;
    case K_U64:
        if (get_unsigned(v, UINT64_MAX, f->name, &u, err, errlen) != 0)
            return -EINVAL;
        *AT(p, f, uint64_t) = u;
        return 0;
    case K_I64:
        if (!json_is_integer(v)) {
            snprintf(err, errlen, "%s: expected an integer, got %s", f->name, type_name(v));
            return -EINVAL;
        }
        *AT(p, f, int64_t) = json_integer_value(v);
        return 0;
    case K_ORG_KEY:
        return set_org_key(p, v, err, errlen);
    case K_FEATURES:
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
        const struct field *f = NULL;
        for (size_t i = 0; i < N_FIELDS && f == NULL; i++) {
            if (strcmp(key, fields[i].name) == 0)
                f = &fields[i];
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
    for (size_t i = 0; i < N_FIELDS; i++) {
        if (fields[i].kind == K_STRING) {
            char **s = AT(p, &fields[i], char *);
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
