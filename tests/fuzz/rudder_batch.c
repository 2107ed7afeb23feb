/* Fuzz target: a RudderStack batch body (collector/http_body.c,
 * collector/rudder.c) as POST /v1/batch receives it.
 *
 * Input: byte 0 holds flags (bit 0: an org salt is set; bit 1: small
 * limits, 4 messages, depth 8, 200 values, max_count 1000; bit 2: the rest
 * is gzip, inflated under a 1 MiB cap first), the rest is the body. A body
 * wl_json_bound refuses is refused by wl_rudder_map with the same reason;
 * one that maps gives pings the writer's validation accepts, each carrying
 * exactly what its presence names (absent counts 0, absent strings empty,
 * an org key exactly when its bit is set, features only under their bits),
 * and every message accounted for once. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "fuzz.h"
#include "http_body.h"
#include "rudder.h"

#define AT 1796600000000LL

static int printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

static void check_ping(const wl_ping *p, const struct wl_edge *e, const struct wl_rudder_opts *o)
{
    uint64_t counts[WL_N_COUNTS];
    const char *strings[] = {p->version, p->edition, p->database_type, p->operating_system,
                             p->installation_type};
    uint64_t allowed = WL_PRESENT(WL_FIELD_ORG_KEY);

    FUZZ_CHECK(wl_ping_validate(p, o->max_count) == WL_REJECT_NONE);
    FUZZ_CHECK(p->seq == 1 && p->sent_at == AT);
    FUZZ_CHECK(printable(p->install_id, strlen(p->install_id)));
    FUZZ_CHECK(e->source == WL_SOURCE_RUDDER);
    FUZZ_CHECK(e->msgid_len <= WL_MSGID_MAX && printable(e->msgid, e->msgid_len));
    wl_ping_counts(p, counts);
    for (int c = 0; c < WL_N_COUNTS; c++) {
        allowed |= WL_PRESENT(WL_FIELD_COUNT(c));
        if (!(e->presence & WL_PRESENT(WL_FIELD_COUNT(c))))
            FUZZ_CHECK(counts[c] == 0);
    }
    for (int i = 0; i < 5; i++) {
        allowed |= WL_PRESENT(WL_FIELD_STRING(i));
        if (!(e->presence & WL_PRESENT(WL_FIELD_STRING(i))))
            FUZZ_CHECK(strings[i][0] == '\0');
        FUZZ_CHECK(printable(strings[i], strlen(strings[i])));
    }
    if (e->presence & WL_PRESENT(WL_FIELD_STRING(1)))
        FUZZ_CHECK(strcmp(p->edition, "team") == 0 || strcmp(p->edition, "enterprise") == 0);
    for (int f = 0; f < WL_N_EDGE_FEATURES; f++)
        allowed |= WL_PRESENT(WL_FEATURE_BIT(f));
    FUZZ_CHECK((e->presence & ~allowed) == 0);
    FUZZ_CHECK((p->org_key.len == 32) == ((e->presence & WL_PRESENT(WL_FIELD_ORG_KEY)) != 0));
    FUZZ_CHECK(p->org_key.len == 0 || o->org_salt != NULL);
    for (size_t i = 0; i < p->n_features; i++) {
        int bit = wl_edge_feature_bit(p->features[i]);
        FUZZ_CHECK(bit >= 0 && (e->presence & (UINT64_C(1) << bit)));
    }
}

static void map_body(const char *body, size_t len, uint8_t flags)
{
    static const uint8_t salt[] = "fuzz salt";
    struct wl_rudder_opts o = {.max_count = 10000000, .max_messages = 2000, .max_depth = 32,
                               .max_values = 100000};
    struct wl_rudder_result r;
    char why[128], bwhy[128];

    if (flags & 1) {
        o.org_salt = salt;
        o.org_salt_len = sizeof salt - 1;
    }
    if (flags & 2) {
        o.max_count = 1000;
        o.max_messages = 4;
        o.max_depth = 8;
        o.max_values = 200;
    }
    int brc = wl_json_bound(body, len, (unsigned)o.max_depth, o.max_values, bwhy, sizeof bwhy);
    FUZZ_CHECK(brc == 0 || brc == -E2BIG);
    why[0] = '\0';
    int rc = wl_rudder_map(body, len, &o, AT, &r, why, sizeof why);
    if (brc != 0) {
        FUZZ_CHECK(rc == -EINVAL && strcmp(why, bwhy) == 0);
        return;
    }
    if (rc != 0) {
        FUZZ_CHECK(rc == -EINVAL && why[0] != '\0');
        FUZZ_CHECK(r.batch == NULL && r.edge == NULL);
        return;
    }
    uint64_t dropped = 0;
    for (int k = 0; k < WL_RUDDER_N_DROPS; k++)
        dropped += r.dropped[k];
    FUZZ_CHECK(r.batch != NULL && r.messages <= o.max_messages);
    FUZZ_CHECK(r.batch->n_pings + dropped + r.ignored == r.messages);
    FUZZ_CHECK((r.edge != NULL) == (r.batch->n_pings > 0));
    for (size_t i = 0; i < r.batch->n_pings; i++)
        check_ping(r.batch->pings[i], &r.edge[i], &o);
    /* packed and unpacked, as the writer stores them, the same pings */
    size_t plen = warmline__v1__ping_batch__get_packed_size(r.batch);
    uint8_t *wire = malloc(plen ? plen : 1);
    FUZZ_CHECK(wire != NULL);
    warmline__v1__ping_batch__pack(r.batch, wire);
    wl_ping_batch *back = warmline__v1__ping_batch__unpack(NULL, plen, wire);
    FUZZ_CHECK(back != NULL && back->n_pings == r.batch->n_pings);
    for (size_t i = 0; i < back->n_pings; i++)
        FUZZ_CHECK(strcmp(back->pings[i]->install_id, r.batch->pings[i]->install_id) == 0);
    warmline__v1__ping_batch__free_unpacked(back, NULL);
    free(wire);
    wl_rudder_result_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1024 * 1024)
        return 0;
    uint8_t flags = data[0];
    data++;
    size--;
    if (flags & 4) {
        uint8_t *out;
        size_t outlen;
        int rc = wl_http_gunzip(data, size, 1024 * 1024, &out, &outlen);
        FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -E2BIG);
        if (rc != 0) {
            FUZZ_CHECK(out == NULL);
            return 0;
        }
        FUZZ_CHECK(outlen <= 1024 * 1024 && out[outlen] == '\0');
        map_body((const char *)out, outlen, flags);
        free(out);
        return 0;
    }
    map_body((const char *)data, size, flags);
    return 0;
}
