#include "ping.h"

#include <string.h>

#include "storage/keys.h"

#define WL_COUNT_NAME(name) #name,
const char *const wl_count_names[WL_N_COUNTS] = {WL_COUNT_FIELDS(WL_COUNT_NAME)};
const char *const wl_edge_feature_names[WL_N_EDGE_FEATURES] = {WL_EDGE_FEATURES(WL_COUNT_NAME)};

const char *wl_source_name(uint32_t source)
{
    static const char *const names[] = {"wire", "security", "rudder"};
    return source < sizeof names / sizeof names[0] ? names[source] : "unknown";
}

int wl_edge_feature_bit(const char *name)
{
    for (int f = 0; f < WL_N_EDGE_FEATURES; f++)
        if (strcmp(name, wl_edge_feature_names[f]) == 0)
            return WL_FEATURE_BIT(f);
    if (strncmp(name, WL_LICENSE_PREFIX, strlen(WL_LICENSE_PREFIX)) == 0)
        return WL_FEATURE_BIT(WL_EF_licensed);
    return -1;
}
#undef WL_COUNT_NAME

#define WL_REASON_NAME(sym, name) name,
static const char *const reason_names[WL_N_REASONS] = {WL_REASONS(WL_REASON_NAME)};
#undef WL_REASON_NAME

const char *wl_reason_name(enum wl_reason r)
{
    return (r >= 0 && r < WL_N_REASONS) ? reason_names[r] : "none";
}

void wl_ping_counts(const wl_ping *p, uint64_t out[WL_N_COUNTS])
{
#define WL_COUNT_COPY(name) out[WL_COUNT_##name] = p->name;
    WL_COUNT_FIELDS(WL_COUNT_COPY)
#undef WL_COUNT_COPY
}

int wl_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1; min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2; min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3; min = 0x10000;
        } else {
            return 0;
        }
        if (len - i <= n)
            return 0;
        unsigned cp = c & (0x3f >> n);
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

static enum wl_reason check_string(const char *s)
{
    size_t len = strlen(s);
    if (len > WL_STRING_MAX)
        return WL_REJECT_STRING_TOO_LONG;
    if (!wl_utf8_valid(s, len))
        return WL_REJECT_STRING_NOT_UTF8;
    return WL_REJECT_NONE;
}

enum wl_reason wl_ping_validate(const wl_ping *p, uint64_t max_count)
{
    enum wl_reason r;
    size_t idlen = strlen(p->install_id);
    uint64_t counts[WL_N_COUNTS];

    if (idlen == 0)
        return WL_REJECT_INSTALL_ID_EMPTY;
    if (idlen > WL_INSTALL_ID_MAX)
        return WL_REJECT_INSTALL_ID_TOO_LONG;
    for (size_t i = 0; i < idlen; i++) {
        if (p->install_id[i] < 0x20 || p->install_id[i] > 0x7e)
            return WL_REJECT_INSTALL_ID_NOT_PRINTABLE;
    }
    if (p->org_key.len != 0 && p->org_key.len != WL_ORG_KEY_BYTES)
        return WL_REJECT_ORG_KEY_LENGTH;
    if (p->seq == 0)
        return WL_REJECT_SEQ_ZERO;
#define WL_CHECK_STRING(name) \
    if ((r = check_string(p->name)) != WL_REJECT_NONE) \
        return r;
    WL_STRING_FIELDS(WL_CHECK_STRING)
#undef WL_CHECK_STRING
    if (p->n_features > WL_FEATURES_MAX)
        return WL_REJECT_TOO_MANY_FEATURES;
    for (size_t i = 0; i < p->n_features; i++) {
        if ((r = check_string(p->features[i])) != WL_REJECT_NONE)
            return r;
    }
    wl_ping_counts(p, counts);
    for (int i = 0; i < WL_N_COUNTS; i++) {
        if (counts[i] > max_count)
            return WL_REJECT_COUNT_TOO_LARGE;
    }
    return WL_REJECT_NONE;
}
