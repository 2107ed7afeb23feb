/* Fuzz target: ping validation (collector/ping.c).
 *
 * Input: a serialized PingBatch (an Envelope's payload). Every ping that
 * decodes goes through wl_ping_validate; a ping it accepts must meet the
 * wire contract, checked here field by field without ping.c. The input as
 * a whole also goes through wl_utf8_valid, against a reference decoder. */
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "ping.h"
#include "storage/keys.h"

#define MAX_COUNT 10000000u

/* The reference: decode code points by their bit patterns. */
static int utf8_reference(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n;
        if (s[i] < 0x80) {
            i++;
            continue;
        } else if ((s[i] & 0xe0) == 0xc0) {
            cp = s[i] & 0x1f, n = 1;
        } else if ((s[i] & 0xf0) == 0xe0) {
            cp = s[i] & 0x0f, n = 2;
        } else if ((s[i] & 0xf8) == 0xf0) {
            cp = s[i] & 0x07, n = 3;
        } else {
            return 0;
        }
        if (len - i < n + 1)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        static const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

static int string_ok(const char *s)
{
    size_t len = strlen(s);
    return len <= WL_STRING_MAX && utf8_reference((const uint8_t *)s, len);
}

static void check_accepted(const wl_ping *p)
{
    size_t idlen = strlen(p->install_id);
    FUZZ_CHECK(idlen >= 1 && idlen <= WL_INSTALL_ID_MAX);
    for (size_t i = 0; i < idlen; i++)
        FUZZ_CHECK(p->install_id[i] >= 0x20 && p->install_id[i] <= 0x7e);
    FUZZ_CHECK(p->org_key.len == 0 || p->org_key.len == WL_ORG_KEY_BYTES);
    FUZZ_CHECK(p->seq != 0);
#define CHECK_STRING(name) FUZZ_CHECK(string_ok(p->name));
    WL_STRING_FIELDS(CHECK_STRING)
#undef CHECK_STRING
    FUZZ_CHECK(p->n_features <= WL_FEATURES_MAX);
    for (size_t i = 0; i < p->n_features; i++)
        FUZZ_CHECK(string_ok(p->features[i]));
    uint64_t counts[WL_N_COUNTS];
    wl_ping_counts(p, counts);
    for (int i = 0; i < WL_N_COUNTS; i++)
        FUZZ_CHECK(counts[i] <= MAX_COUNT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_CHECK(wl_utf8_valid((const char *)data, size) == utf8_reference(data, size));

    wl_ping_batch *b = warmline__v1__ping_batch__unpack(NULL, size, data);
    if (b == NULL)
        return 0;
    for (size_t i = 0; i < b->n_pings; i++) {
        enum wl_reason r = wl_ping_validate(b->pings[i], MAX_COUNT);
        FUZZ_CHECK(r >= WL_REJECT_NONE && r < WL_N_REASONS);
        FUZZ_CHECK(strcmp(wl_reason_name(r), "") != 0);
        if (r == WL_REJECT_NONE)
            check_accepted(b->pings[i]);
        /* a lower ceiling can only add count rejections */
        enum wl_reason r0 = wl_ping_validate(b->pings[i], 0);
        FUZZ_CHECK(r0 == r || (r == WL_REJECT_NONE && r0 == WL_REJECT_COUNT_TOO_LARGE));
    }
    warmline__v1__ping_batch__free_unpacked(b, NULL);
    return 0;
}
