/* Unit tests for collector/envelope.h: encode/decode round trips, every
 * envelope-level rejection, size caps (including a zlib bomb) and reuse of
 * one decoder across many envelopes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "envelope.h"
#include "warmline.pb-c.h"

#define MiB ((size_t)1 << 20)
#define MAX_INFLATED (8 * MiB) /* the documented defaults */
#define MAX_PINGS 10000

static const char *rname(enum wl_reason r) { return wl_reason_name(r); }

/* Decodes with the per-ping pre-rejections dropped (tested on their own). */
static enum wl_reason decode_env(struct wl_decoder *d, const uint8_t *buf, size_t len,
                                 wl_ping_batch **out, uint64_t *id)
{
    enum wl_reason *rejects = NULL;
    enum wl_reason r = wl_envelope_decode(d, buf, len, out, id, &rejects);
    assert_null(rejects);
    return r;
}

#define assert_reason(got, want)                                                          \
    do {                                                                                  \
        enum wl_reason got_ = (got), want_ = (want);                                      \
        if (got_ != want_)                                                                \
            fail_msg("%s: got %s, want %s", #got, rname(got_), rname(want_));             \
    } while (0)

/* ---- building batches ---- */

#define NP 3

struct batch_fixture {
    wl_ping_batch batch;
    wl_ping pings[NP];
    wl_ping *ptrs[NP];
    uint8_t keys[NP][32];
    char ids[NP][32];
    char *features[2];
};

static void make_batch(struct batch_fixture *b, size_t n)
{
    wl_ping_batch binit = WARMLINE__V1__PING_BATCH__INIT;
    memset(b, 0, sizeof *b);
    b->batch = binit;
    b->features[0] = "saml_configured";
    b->features[1] = "ldap_configured";
    for (size_t i = 0; i < n; i++) {
        wl_ping pinit = WARMLINE__V1__PING__INIT;
        wl_ping *p = &b->pings[i];
        *p = pinit;
        snprintf(b->ids[i], sizeof b->ids[i], "install-%zu", i);
        p->install_id = b->ids[i];
        if (i != 1) { /* the second ping has no org_key */
            memset(b->keys[i], (int)(0x10 + i), 32);
            p->org_key.data = b->keys[i];
            p->org_key.len = 32;
        }
        p->seq = 1000 + i;
        p->sent_at = 1700000000123 + (int64_t)i;
        p->version = "9.11.2";
        p->edition = i % 2 ? "enterprise" : "team";
        p->database_type = "postgres";
        p->operating_system = "linux";
        p->installation_type = "docker \xe2\x82\xac"; /* UTF-8 survives */
        p->registered_users = 40 + (uint32_t)i;
        p->active_users_daily = 12;
        p->active_users_monthly = 30;
        p->bot_accounts = 2;
        p->guest_accounts = 1;
        p->teams = 3;
        p->public_channels = 10;
        p->private_channels = 4;
        p->direct_message_channels = 99;
        p->posts_previous_day = 250;
        p->incoming_webhooks = 5;
        p->outgoing_webhooks = 6;
        p->slash_commands = 7;
        p->system_admins = 2;
        p->posts = ((uint64_t)1 << 40) + i;
        p->n_features = i == 2 ? 0 : 2;
        p->features = i == 2 ? NULL : b->features;
        b->ptrs[i] = p;
    }
    b->batch.n_pings = n;
    b->batch.pings = n ? b->ptrs : NULL;
}

static void assert_ping_equal(const wl_ping *a, const wl_ping *b)
{
    assert_string_equal(a->install_id, b->install_id);
    assert_int_equal(a->org_key.len, b->org_key.len);
    if (a->org_key.len)
        assert_memory_equal(a->org_key.data, b->org_key.data, a->org_key.len);
    assert_int_equal(a->seq, b->seq);
    assert_int_equal(a->sent_at, b->sent_at);
    assert_string_equal(a->version, b->version);
    assert_string_equal(a->edition, b->edition);
    assert_string_equal(a->database_type, b->database_type);
    assert_string_equal(a->operating_system, b->operating_system);
    assert_string_equal(a->installation_type, b->installation_type);
#define EQ(name) assert_int_equal(a->name, b->name);
    WL_COUNT_FIELDS(EQ)
#undef EQ
    assert_int_equal(a->n_features, b->n_features);
    for (size_t i = 0; i < a->n_features; i++)
        assert_string_equal(a->features[i], b->features[i]);
}

static void assert_batch_equal(const wl_ping_batch *a, const wl_ping_batch *b)
{
    assert_int_equal(a->n_pings, b->n_pings);
    for (size_t i = 0; i < a->n_pings; i++)
        assert_ping_equal(a->pings[i], b->pings[i]);
}

/* Packs an Envelope with any field values (including invalid ones). */
static uint8_t *pack_envelope(uint32_t version, int compression, const void *payload,
                              size_t plen, uint64_t batch_id, size_t *outlen)
{
    Warmline__V1__Envelope env = WARMLINE__V1__ENVELOPE__INIT;
    env.version = version;
    env.compression = (Warmline__V1__Envelope__Compression)compression;
    env.payload.data = (uint8_t *)payload;
    env.payload.len = plen;
    env.batch_id = batch_id;
    *outlen = warmline__v1__envelope__get_packed_size(&env);
    uint8_t *out = malloc(*outlen ? *outlen : 1);
    assert_non_null(out);
    warmline__v1__envelope__pack(&env, out);
    return out;
}

static uint8_t *pack_batch(const wl_ping_batch *b, size_t *len)
{
    *len = warmline__v1__ping_batch__get_packed_size(b);
    uint8_t *out = malloc(*len ? *len : 1);
    assert_non_null(out);
    warmline__v1__ping_batch__pack(b, out);
    return out;
}

static uint8_t *zlib_compress(const void *src, size_t len, size_t *outlen)
{
    uLongf zlen = compressBound(len);
    uint8_t *out = malloc(zlen);
    assert_non_null(out);
    assert_int_equal(compress2(out, &zlen, src, len, Z_BEST_COMPRESSION), Z_OK);
    *outlen = zlen;
    return out;
}

/* Decodes and expects a rejection: no batch comes out. */
static void expect_reject(struct wl_decoder *d, const uint8_t *buf, size_t len,
                          enum wl_reason want, const char *what)
{
    wl_ping_batch *out = (wl_ping_batch *)(uintptr_t)1;
    uint64_t id = 0xabad1dea;
    enum wl_reason r = decode_env(d, buf, len, &out, &id);
    if (r != want)
        fail_msg("%s: got %s, want %s", what, rname(r), rname(want));
    assert_null(out);
}

/* Each ping's bytes as they came (d->bytes) decode to the ping decoded; a
 * ping the walk rejected has none. */
static void assert_bytes_match(const struct wl_ping_bytes *bytes, const wl_ping_batch *out,
                               const enum wl_reason *rejects)
{
    assert_non_null(bytes);
    for (size_t i = 0; i < out->n_pings; i++) {
        enum wl_reason r = rejects ? rejects[i] : WL_REJECT_NONE;
        if (r == WL_REJECT_TOO_MANY_FEATURES || r == WL_REJECT_PING_TOO_MANY_FIELDS) {
            assert_int_equal(bytes[i].len, 0);
            continue;
        }
        wl_ping *again = warmline__v1__ping__unpack(NULL, bytes[i].len, bytes[i].p);
        assert_non_null(again);
        size_t n1 = warmline__v1__ping__get_packed_size(again);
        size_t n2 = warmline__v1__ping__get_packed_size(out->pings[i]);
        assert_int_equal(n1, n2);
        uint8_t *b1 = malloc(n1 + 1), *b2 = malloc(n2 + 1);
        warmline__v1__ping__pack(again, b1);
        warmline__v1__ping__pack(out->pings[i], b2);
        if (memcmp(b1, b2, n1) != 0)
            fail_msg("ping %zu: its bytes as they came decode to another ping", i);
        free(b1);
        free(b2);
        warmline__v1__ping__free_unpacked(again, NULL);
    }
}

/* ---- round trips ---- */

static void roundtrip(int compress)
{
    struct batch_fixture b;
    struct wl_decoder d;
    uint8_t *buf = NULL;
    size_t len = 0;
    wl_ping_batch *out = NULL;
    uint64_t id = 0;

    make_batch(&b, NP);
    assert_int_equal(wl_envelope_encode(&b.batch, compress, 0xdeadbeef12345678ULL, &buf, &len),
                     0);
    assert_non_null(buf);

    /* What went on the wire. */
    Warmline__V1__Envelope *env = warmline__v1__envelope__unpack(NULL, len, buf);
    assert_non_null(env);
    assert_int_equal(env->version, 1);
    assert_int_equal(env->batch_id, 0xdeadbeef12345678ULL);
    assert_int_equal(env->compression, compress ? WARMLINE__V1__ENVELOPE__COMPRESSION__ZLIB
                                                : WARMLINE__V1__ENVELOPE__COMPRESSION__NONE);
    size_t plain_len = warmline__v1__ping_batch__get_packed_size(&b.batch);
    if (compress)
        assert_true(env->payload.len < plain_len);
    else
        assert_int_equal(env->payload.len, plain_len);
    warmline__v1__envelope__free_unpacked(env, NULL);

    wl_decoder_init(&d, MAX_INFLATED, MAX_PINGS);
    assert_reason(decode_env(&d, buf, len, &out, &id), WL_REJECT_NONE);
    assert_non_null(out);
    assert_int_equal(id, 0xdeadbeef12345678ULL);
    assert_batch_equal(out, &b.batch);
    assert_bytes_match(d.bytes, out, NULL);
    wl_ping_batch_free(out);
    wl_decoder_free(&d);
    free(buf);
}

static void test_roundtrip_plain(void **state) { (void)state; roundtrip(0); }
static void test_roundtrip_zlib(void **state) { (void)state; roundtrip(1); }

static void test_empty_batch(void **state)
{
    (void)state;
    struct batch_fixture b;
    struct wl_decoder d;
    wl_decoder_init(&d, MAX_INFLATED, MAX_PINGS);
    make_batch(&b, 0);
    for (int compress = 0; compress <= 1; compress++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        wl_ping_batch *out = NULL;
        uint64_t id = 0;
        assert_int_equal(wl_envelope_encode(&b.batch, compress, 7, &buf, &len), 0);
        assert_reason(decode_env(&d, buf, len, &out, &id), WL_REJECT_NONE);
        assert_non_null(out);
        assert_int_equal(out->n_pings, 0);
        assert_int_equal(id, 7);
        wl_ping_batch_free(out);
        free(buf);
    }
    /* An envelope with no payload field at all is an empty plain batch. */
    size_t len;
    uint8_t *buf = pack_envelope(1, 0, NULL, 0, 9, &len);
    wl_ping_batch *out = NULL;
    uint64_t id = 0;
    assert_reason(decode_env(&d, buf, len, &out, &id), WL_REJECT_NONE);
    assert_non_null(out);
    assert_int_equal(out->n_pings, 0);
    assert_int_equal(id, 9);
    wl_ping_batch_free(out);
    free(buf);
    wl_decoder_free(&d);
}

static void test_batch_free_null(void **state)
{
    (void)state;
    wl_ping_batch_free(NULL);
}

/* ---- envelope-level rejections ---- */

static void test_garbage(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
    } cases[] = {
        {"\xff\xff\xff\xff", 4},
        {"\xff", 1},
        {"\x1a\x05" "ab", 4},          /* payload: 5 bytes announced, 2 present */
        {"\x08", 1},                    /* version tag, no value */
        {"\x08\x80", 2},                /* version: unfinished varint */
        {"\x0f\x00", 2},                /* field 1 with wire type 7 */
        {"\x1a\xff\xff\xff\xff\x0f", 6}, /* a 4 GiB payload length */
    };
    struct wl_decoder d;
    wl_decoder_init(&d, MAX_INFLATED, MAX_PINGS);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[32];
        snprintf(what, sizeof what, "garbage case %zu", i);
        uint64_t id = 0xabad1dea;
        wl_ping_batch *out = NULL;
        enum wl_reason r = decode_env(&d, (const uint8_t *)cases[i].bytes, cases[i].len,
                                              &out, &id);
        if (r != WL_REJECT_ENVELOPE_DECODE)
            fail_msg("%s: got %s", what, rname(r));
        assert_null(out);
        assert_int_equal(id, 0xabad1dea); /* no envelope, no id */
    }
    wl_decoder_free(&d);
}

static void test_truncated_envelope(void **state)
{
    (void)state;
    struct batch_fixture b;
    struct wl_decoder d;
    uint8_t *buf = NULL;
    size_t len = 0;

    make_batch(&b, NP);
    /* A batch id needing a 10-byte varint, the last field on the wire. */
    assert_int_equal(wl_envelope_encode(&b.batch, 0, UINT64_MAX - 5, &buf, &len), 0);
    wl_decoder_init(&d, MAX_INFLATED, MAX_PINGS);
    expect_reject(&d, buf, len - 1, WL_REJECT_ENVELOPE_DECODE, "cut in the batch id");
    expect_reject(&d, buf, len - 10, WL_REJECT_ENVELOPE_DECODE, "cut after the batch id tag");
    expect_reject(&d, buf, len / 2, WL_REJECT_ENVELOPE_DECODE, "cut in the payload");
    expect_reject(&d, buf, 6, WL_REJECT_ENVELOPE_DECODE, "cut early in the payload");
    free(buf);
    wl_decoder_free(&d);
}

static void test_version(void **state)
{
    (void)state;
    struct batch_fixture b;
    struct wl_decoder d;
    size_t plen, len;

    make_batch(&b, 1);
    uint8_t *payload = pack_batch(&b.batch, &plen);
    wl_decoder_init(&d, MAX_INFLATED, MAX_PINGS);
    static const uint32_t versions[] = {0, 2, 99, UINT32_MAX};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        uint8_t *buf = pack_envelope(versions[i], 0, payload, plen, 4242 + i, &len);
        wl_ping_batch *out = NULL;
        uint64_t id = 0;
        enum wl_reason r = decode_env(&d, buf, len, &out, &id);
        if (r != WL_REJECT_ENVELOPE_VERSION)
            fail_msg("version %u: got %s", versions[i], rname(r));
        assert_null(out);
        assert_int_equal(id, 4242 + i); /* the id is reported for the ack */
        free(buf);
    }
    /* version 1 with the same payload is fine */
    uint8_t *buf = pack_envelope(1, 0, payload, plen, 1, &len);
    wl_ping_batch *out = NULL;
    uint64_t id = 0;
    assert_reason(decode_env(&d, buf, len, &out, &id), WL_REJECT_NONE);
    assert_batch_equal(out, &b.batch);
    wl_ping_batch_free(out);
    free(buf);
    free(payload);
    wl_decoder_free(&d);
}

static void test_compression_unknown(void **state)
{
    (void)state;
    struct batch_fixture b;
    struct wl_decoder d;
    size_t plen, len;

    make_batch(&b, 1);
    uint8_t *payload = pack_batch(&b.batch, &plen);
    wl_decoder_init(&d, MAX_INFLATED, MAX_PINGS);
    static const int kinds[] = {7, 2, 1000};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        uint8_t *buf = pack_envelope(1, kinds[i], payload, plen, 77, &len);
        wl_ping_batch *out = NULL;
        uint64_t id = 0;
        enum wl_reason r = decode_env(&d, buf, len, &out, &id);
        if (r != WL_REJECT_ENVELOPE_COMPRESSION)
            fail_msg("compression %d: got %s", kinds[i], rname(r));
        assert_null(out);
        assert_int_equal(id, 77);
        free(buf);
    }
    free(payload);
    wl_decoder_free(&d);
}

static void test_inflate_failed(void **state)
{
    (void)state;
    struct batch_fixture b;
    struct wl_decoder d;
    size_t plen, zlen, len;

    make_batch(&b, NP);
    uint8_t *payload = pack_batch(&b.batch, &plen);
    uint8_t *z = zlib_compress(payload, plen, &zlen);
    uint8_t *zz = malloc(zlen + 8);
    assert_non_null(zz);
    wl_decoder_init(&d, MAX_INFLATED, MAX_PINGS);

    struct {
        const char *what;
        const uint8_t *data;
        size_t len;
    } cases[] = {
        {"not zlib at all", (const uint8_t *)"hello, this is not a zlib stream", 32},
        {"the plain batch marked zlib", payload, plen},
        {"empty zlib payload", NULL, 0},
        {"zlib header only", z, 2},
        {"truncated zlib, half", z, zlen / 2},
        {"truncated zlib, no checksum", z, zlen - 4},
        {"truncated zlib, one byte short", z, zlen - 1},
        {"bad checksum", zz, zlen},
        {"trailing garbage", zz, zlen + 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(zz, z, zlen);
        if (strcmp(cases[i].what, "bad checksum") == 0)
            zz[zlen - 1] ^= 0x55;
        if (strcmp(cases[i].what, "trailing garbage") == 0)
            memcpy(zz + zlen, "xyz", 3);
        uint8_t *buf = pack_envelope(1, 1, cases[i].data, cases[i].len, 500 + i, &len);
        wl_ping_batch *out = NULL;
        uint64_t id = 0;
        enum wl_reason r = decode_env(&d, buf, len, &out, &id);
        if (r != WL_REJECT_INFLATE_FAILED)
            fail_msg("%s: got %s, want inflate_failed", cases[i].what, rname(r));
        assert_null(out);
        assert_int_equal(id, 500 + i);
        free(buf);
    }
    /* The intact stream still decodes with the same decoder. */
    uint8_t *buf = pack_envelope(1, 1, z, zlen, 1, &len);
    wl_ping_batch *out = NULL;
    uint64_t id = 0;
    assert_reason(decode_env(&d, buf, len, &out, &id), WL_REJECT_NONE);
    assert_batch_equal(out, &b.batch);
    wl_ping_batch_free(out);
    free(buf);
    free(zz);
    free(z);
    free(payload);
    wl_decoder_free(&d);
}

/* 100 MB of zeros, deflated in a stream from a 1 MiB buffer: ~100 KB. */
static uint8_t *make_zlib_bomb(size_t total, size_t *outlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit(&zs, Z_BEST_COMPRESSION), Z_OK);
    uint8_t *zeros = calloc(1, MiB);
    size_t cap = 256 * 1024, n = 0;
    uint8_t *out = malloc(cap);
    assert_non_null(zeros);
    assert_non_null(out);
    size_t left = total;
    int flush;
    do {
        size_t chunk = left < MiB ? left : MiB;
        left -= chunk;
        flush = left == 0 ? Z_FINISH : Z_NO_FLUSH;
        zs.next_in = zeros;
        zs.avail_in = (uInt)chunk;
        do {
            if (cap - n < 64 * 1024) {
                cap *= 2;
                out = realloc(out, cap);
                assert_non_null(out);
            }
            zs.next_out = out + n;
            zs.avail_out = (uInt)(cap - n);
            int rc = deflate(&zs, flush);
            assert_true(rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR);
            n = cap - zs.avail_out;
        } while (zs.avail_in != 0 || (flush == Z_FINISH && zs.avail_out == 0));
    } while (flush != Z_FINISH);
    assert_int_equal(deflateEnd(&zs), Z_OK);
    free(zeros);
    *outlen = n;
    return out;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_zlib_bomb(void **state)
{
    (void)state;
    struct wl_decoder d;
    size_t zlen, len;
    uint8_t *bomb = make_zlib_bomb((size_t)100 * 1000 * 1000, &zlen);
    assert_true(zlen < 1000 * 1000); /* it is a bomb: > 100:1 */
    uint8_t *buf = pack_envelope(1, 1, bomb, zlen, 31337, &len);
    free(bomb);

    wl_decoder_init(&d, MAX_INFLATED, MAX_PINGS);
    wl_ping_batch *out = NULL;
    uint64_t id = 0;
    double t0 = now_s();
    enum wl_reason r = decode_env(&d, buf, len, &out, &id);
    double elapsed = now_s() - t0;
    assert_reason(r, WL_REJECT_INFLATE_TOO_LARGE);
    assert_null(out);
    assert_int_equal(id, 31337);
    /* Inflation stopped at the cap: the buffer never grew past it. */
    if (d.cap > MAX_INFLATED)
        fail_msg("inflate buffer grew to %zu bytes, cap %zu", d.cap, MAX_INFLATED);
    /* Stopping at 8 MiB instead of inflating 100 MB: well under a few seconds
     * even under valgrind. */
    if (elapsed > 20.0)
        fail_msg("rejecting the bomb took %.1f s", elapsed);

    /* The decoder still works afterwards. */
    struct batch_fixture b;
    uint8_t *ok = NULL;
    size_t oklen = 0;
    make_batch(&b, NP);
    assert_int_equal(wl_envelope_encode(&b.batch, 1, 5, &ok, &oklen), 0);
    assert_reason(decode_env(&d, ok, oklen, &out, &id), WL_REJECT_NONE);
    assert_batch_equal(out, &b.batch);
    wl_ping_batch_free(out);
    free(ok);
    free(buf);
    wl_decoder_free(&d);
}

/* The cap is the same for plain and zlib payloads: exactly max_inflated bytes
 * pass, one more is too large. */
static void test_inflated_cap_boundary(void **state)
{
    (void)state;
    struct batch_fixture b;
    size_t plen;
    make_batch(&b, NP);
    uint8_t *payload = pack_batch(&b.batch, &plen);

    for (int compress = 0; compress <= 1; compress++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        assert_int_equal(wl_envelope_encode(&b.batch, compress, 3, &buf, &len), 0);
        for (int delta = 0; delta <= 1; delta++) {
            struct wl_decoder d;
            wl_ping_batch *out = NULL;
            uint64_t id = 0;
            wl_decoder_init(&d, plen - (size_t)delta, MAX_PINGS);
            enum wl_reason r = decode_env(&d, buf, len, &out, &id);
            enum wl_reason want = delta == 0 ? WL_REJECT_NONE : WL_REJECT_INFLATE_TOO_LARGE;
            if (r != want)
                fail_msg("%s payload of %zu bytes, max_inflated %zu: got %s, want %s",
                         compress ? "zlib" : "plain", plen, plen - (size_t)delta, rname(r),
                         rname(want));
            if (r == WL_REJECT_NONE)
                assert_batch_equal(out, &b.batch);
            else
                assert_null(out);
            assert_true(d.cap <= plen);
            wl_ping_batch_free(out);
            wl_decoder_free(&d);
        }
        free(buf);
    }
    free(payload);
}

static void test_plain_payload_too_large(void **state)
{
    (void)state;
    struct wl_decoder d;
    size_t len;
    size_t big = MAX_INFLATED + 1;
    uint8_t *payload = calloc(1, big);
    assert_non_null(payload);
    uint8_t *buf = pack_envelope(1, 0, payload, big, 8, &len);
    free(payload);
    wl_decoder_init(&d, MAX_INFLATED, MAX_PINGS);
    wl_ping_batch *out = NULL;
    uint64_t id = 0;
    assert_reason(decode_env(&d, buf, len, &out, &id), WL_REJECT_INFLATE_TOO_LARGE);
    assert_null(out);
    assert_int_equal(id, 8);
    free(buf);
    wl_decoder_free(&d);
}

static void test_payload_not_a_batch(void **state)
{
    (void)state;
    struct wl_decoder d;
    size_t len, zlen;
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x0a, 0x33};
    wl_decoder_init(&d, MAX_INFLATED, MAX_PINGS);

    uint8_t *buf = pack_envelope(1, 0, junk, sizeof junk, 61, &len);
    wl_ping_batch *out = NULL;
    uint64_t id = 0;
    assert_reason(decode_env(&d, buf, len, &out, &id), WL_REJECT_BATCH_DECODE);
    assert_null(out);
    assert_int_equal(id, 61);
    free(buf);

    uint8_t *z = zlib_compress(junk, sizeof junk, &zlen);
    buf = pack_envelope(1, 1, z, zlen, 62, &len);
    assert_reason(decode_env(&d, buf, len, &out, &id), WL_REJECT_BATCH_DECODE);
    assert_null(out);
    assert_int_equal(id, 62);
    free(buf);
    free(z);

    /* A PingBatch whose first ping announces 16 bytes and carries 5. */
    static const uint8_t cut_ping[] = {0x0a, 0x10, 0x0a, 0x03, 'a', 'b', 'c'};
    buf = pack_envelope(1, 0, cut_ping, sizeof cut_ping, 63, &len);
    assert_reason(decode_env(&d, buf, len, &out, &id), WL_REJECT_BATCH_DECODE);
    assert_null(out);
    free(buf);
    wl_decoder_free(&d);
}

static void test_too_many_pings(void **state)
{
    (void)state;
    struct batch_fixture b;
    make_batch(&b, NP);
    for (int compress = 0; compress <= 1; compress++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        assert_int_equal(wl_envelope_encode(&b.batch, compress, 12, &buf, &len), 0);

        struct wl_decoder d;
        wl_ping_batch *out = NULL;
        uint64_t id = 0;
        wl_decoder_init(&d, MAX_INFLATED, NP - 1);
        assert_reason(decode_env(&d, buf, len, &out, &id),
                      WL_REJECT_BATCH_TOO_MANY_PINGS);
        assert_null(out);
        assert_int_equal(id, 12);
        wl_decoder_free(&d);

        wl_decoder_init(&d, MAX_INFLATED, NP); /* exactly max_pings is fine */
        assert_reason(decode_env(&d, buf, len, &out, &id), WL_REJECT_NONE);
        assert_int_equal(out->n_pings, NP);
        wl_ping_batch_free(out);
        wl_decoder_free(&d);
        free(buf);
    }
}

/* One decoder, many envelopes of every kind, in a mixed order: each is
 * judged on its own, and the zlib stream is reused. */
static void test_decoder_reuse(void **state)
{
    (void)state;
    struct batch_fixture b;
    struct wl_decoder d;
    size_t plen, zlen, len;

    make_batch(&b, NP);
    uint8_t *payload = pack_batch(&b.batch, &plen);
    uint8_t *z = zlib_compress(payload, plen, &zlen);
    uint8_t *plain_env = pack_envelope(1, 0, payload, plen, 1, &len);
    size_t plain_len = len;
    uint8_t *zlib_env = pack_envelope(1, 1, z, zlen, 2, &len);
    size_t zlib_len = len;
    uint8_t *cut_env = pack_envelope(1, 1, z, zlen / 2, 3, &len);
    size_t cut_len = len;
    static const uint8_t garbage[] = {0xff, 0xfe, 0xfd};

    wl_decoder_init(&d, 64 * 1024, MAX_PINGS);
    for (int round = 0; round < 300; round++) {
        wl_ping_batch *out = NULL;
        uint64_t id = 0;
        switch (round % 5) {
        case 0:
            assert_reason(decode_env(&d, plain_env, plain_len, &out, &id),
                          WL_REJECT_NONE);
            assert_int_equal(id, 1);
            assert_batch_equal(out, &b.batch);
            break;
        case 1:
        case 3:
            assert_reason(decode_env(&d, zlib_env, zlib_len, &out, &id),
                          WL_REJECT_NONE);
            assert_int_equal(id, 2);
            assert_batch_equal(out, &b.batch);
            break;
        case 2:
            assert_reason(decode_env(&d, cut_env, cut_len, &out, &id),
                          WL_REJECT_INFLATE_FAILED);
            assert_int_equal(id, 3);
            break;
        case 4:
            assert_reason(decode_env(&d, garbage, sizeof garbage, &out, &id),
                          WL_REJECT_ENVELOPE_DECODE);
            break;
        }
        wl_ping_batch_free(out);
    }
    assert_true(d.cap <= 64 * 1024);
    wl_decoder_free(&d);
    /* free resets it; freeing again is harmless */
    assert_null(d.buf);
    assert_int_equal(d.zs_ready, 0);
    wl_decoder_free(&d);

    free(plain_env);
    free(zlib_env);
    free(cut_env);
    free(z);
    free(payload);
}

/* A large batch at the default limit: 10000 pings pass, zlib or not. */
static void test_max_pings_default(void **state)
{
    (void)state;
    wl_ping_batch batch = WARMLINE__V1__PING_BATCH__INIT;
    wl_ping *pings = calloc(MAX_PINGS + 1, sizeof *pings);
    wl_ping **ptrs = calloc(MAX_PINGS + 1, sizeof *ptrs);
    char (*ids)[16] = calloc(MAX_PINGS + 1, 16);
    assert_non_null(pings);
    assert_non_null(ptrs);
    assert_non_null(ids);
    for (size_t i = 0; i <= MAX_PINGS; i++) {
        wl_ping init = WARMLINE__V1__PING__INIT;
        pings[i] = init;
        snprintf(ids[i], 16, "i%zu", i);
        pings[i].install_id = ids[i];
        pings[i].seq = i + 1;
        ptrs[i] = &pings[i];
    }
    batch.pings = ptrs;
    struct wl_decoder d;
    wl_decoder_init(&d, MAX_INFLATED, MAX_PINGS);
    for (size_t n = MAX_PINGS; n <= MAX_PINGS + 1; n++) {
        batch.n_pings = n;
        for (int compress = 0; compress <= 1; compress++) {
            uint8_t *buf = NULL;
            size_t len = 0;
            wl_ping_batch *out = NULL;
            uint64_t id = 0;
            assert_int_equal(wl_envelope_encode(&batch, compress, n, &buf, &len), 0);
            enum wl_reason r = decode_env(&d, buf, len, &out, &id);
            if (n == MAX_PINGS) {
                assert_reason(r, WL_REJECT_NONE);
                assert_int_equal(out->n_pings, MAX_PINGS);
                assert_string_equal(out->pings[MAX_PINGS - 1]->install_id, "i9999");
            } else {
                assert_reason(r, WL_REJECT_BATCH_TOO_MANY_PINGS);
                assert_null(out);
            }
            wl_ping_batch_free(out);
            free(buf);
        }
    }
    wl_decoder_free(&d);
    free(ids);
    free(ptrs);
    free(pings);
}


/* A NUL inside a string would be cut by protobuf-c's C strings: the wire
 * scan flags that ping (install_id: not printable; others: string_has_nul)
 * and leaves the others alone. */
static void test_nul_in_strings_flagged_per_ping(void **state)
{
    (void)state;
    struct wl_decoder d;
    wl_ping_batch *out = NULL;
    uint64_t id = 0;
    enum wl_reason *rejects = NULL;
    /* Ping 0 clean; ping 1 install_id "a\0b"; ping 2 version "1\0"; ping 3
     * clean but with a zero byte in a varint-free bytes field (org_key). */
    static const uint8_t batch[] = {
        0x0a, 0x05, 0x0a, 0x01, 'x', 0x18, 0x01,
        0x0a, 0x07, 0x0a, 0x03, 'a', 0x00, 'b', 0x18, 0x01,
        0x0a, 0x09, 0x0a, 0x01, 'y', 0x18, 0x01, 0x2a, 0x02, '1', 0x00,
        0x0a, 0x09, 0x0a, 0x01, 'z', 0x12, 0x02, 0x00, 0x00, 0x18, 0x01,
    };
    size_t len = 0;
    uint8_t *env = pack_envelope(1, 0, batch, sizeof batch, 9, &len);

    wl_decoder_init(&d, 1 << 20, 100);
    assert_int_equal(wl_envelope_decode(&d, env, len, &out, &id, &rejects), WL_REJECT_NONE);
    assert_non_null(out);
    assert_int_equal(out->n_pings, 4);
    assert_non_null(rejects);
    assert_int_equal(rejects[0], WL_REJECT_NONE);
    assert_int_equal(rejects[1], WL_REJECT_INSTALL_ID_NOT_PRINTABLE);
    assert_int_equal(rejects[2], WL_REJECT_STRING_HAS_NUL);
    assert_int_equal(rejects[3], WL_REJECT_NONE);
    free(rejects);
    wl_ping_batch_free(out);
    free(env);
    wl_decoder_free(&d);
}

/* ---- decode cost: the walk before the unpack, the counting allocator ---- */

/* A growable byte string for hand-made wire. */
struct wire {
    uint8_t *b;
    size_t n, cap;
};

static void w_bytes(struct wire *w, const void *p, size_t n)
{
    if (w->n + n > w->cap) {
        size_t ncap = w->cap ? w->cap : 256;
        while (ncap < w->n + n)
            ncap *= 2;
        w->b = realloc(w->b, ncap);
        assert_non_null(w->b);
        w->cap = ncap;
    }
    if (n)
        memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void w_varint(struct wire *w, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    w_bytes(w, tmp, n);
}

static void w_tag(struct wire *w, uint32_t field, int type)
{
    w_varint(w, (uint64_t)field << 3 | (unsigned)type);
}

static void w_string(struct wire *w, uint32_t field, const char *str)
{
    w_tag(w, field, 2);
    w_varint(w, strlen(str));
    w_bytes(w, str, strlen(str));
}

/* Appends one ping (field 1 of the batch) holding the wire in ping. */
static void w_ping(struct wire *batch, const struct wire *ping)
{
    w_tag(batch, 1, 2);
    w_varint(batch, ping->n);
    w_bytes(batch, ping->b, ping->n);
}

/* A valid ping's fields: install_id, seq. */
static void w_valid_ping(struct wire *w, const char *id, uint64_t seq)
{
    w_string(w, 1, id);
    w_tag(w, 3, 0);
    w_varint(w, seq);
}

/* The budget wl_envelope_decode gives a batch, computed by hand: the
 * payload twice (protobuf-c's strings, and the pings' bytes as they came). */
static size_t budget_of(size_t plen, size_t pings, size_t fields)
{
    return WL_DECODE_FIXED + 2 * plen + pings * (WL_DECODE_PER_PING + WL_DECODE_BYTES_PER_PING) +
           fields * WL_DECODE_PER_FIELD;
}

static void test_walk_bound_matches_schema(void **state)
{
    (void)state;
    assert_int_equal(WL_PING_FIELDS_MAX,
                     2 * warmline__v1__ping__descriptor.n_fields + WL_FEATURES_MAX);
    assert_int_equal(warmline__v1__ping__descriptor.fields[
                         warmline__v1__ping__descriptor.n_fields - 1].id, 25); /* features */
}

/* max_pings + 1 empty pings (2 bytes each on the wire, ~200 once decoded):
 * rejected on the walk, before protobuf-c allocates a single ping. What the
 * allocator held is the Envelope with its payload: the input's size. */
static void test_too_many_empty_pings_never_decoded(void **state)
{
    (void)state;
    enum { MP = 1000 };
    struct wire b = {0};
    for (size_t i = 0; i < MP + 1; i++)
        w_bytes(&b, "\x0a\x00", 2);
    for (int compress = 0; compress <= 1; compress++) {
        size_t len, zlen = 0;
        uint8_t *z = compress ? zlib_compress(b.b, b.n, &zlen) : NULL;
        uint8_t *buf = compress ? pack_envelope(1, 1, z, zlen, 5, &len)
                                : pack_envelope(1, 0, b.b, b.n, 5, &len);
        struct wl_decoder d;
        wl_decoder_init(&d, MAX_INFLATED, MP);
        expect_reject(&d, buf, len, WL_REJECT_BATCH_TOO_MANY_PINGS, "max_pings + 1 empty pings");
        if (d.peak_bytes > len + 4096)
            fail_msg("%s: the allocator held %zu bytes for a %zu-byte envelope",
                     compress ? "zlib" : "plain", d.peak_bytes, len);
        assert_int_equal(d.batch_bytes, 0);

        /* exactly max_pings: decoded, within the budget, and counted */
        wl_decoder_free(&d);
        wl_decoder_init(&d, MAX_INFLATED, MP + 1);
        wl_ping_batch *out = NULL;
        uint64_t id = 0;
        enum wl_reason *rejects = NULL;
        assert_reason(wl_envelope_decode(&d, buf, len, &out, &id, &rejects), WL_REJECT_NONE);
        assert_null(rejects);
        assert_int_equal(out->n_pings, MP + 1);
        assert_true(d.batch_bytes >= (MP + 1) * sizeof(wl_ping));
        assert_true(d.batch_bytes <= budget_of(b.n, MP + 1, 0));
        wl_ping_batch_free(out);
        wl_decoder_free(&d);
        free(buf);
        free(z);
    }
    free(b.b);
}

/* The case: an ~8 KB zlib envelope inflating to 8 MiB of empty
 * pings (4 million of them) used to make protobuf-c allocate ~1 GB before
 * the count was checked. Now the walk stops at max_pings + 1. */
static void test_zlib_bomb_of_empty_pings(void **state)
{
    (void)state;
    size_t n = MAX_INFLATED, zlen, len;
    uint8_t *plain = malloc(n);
    assert_non_null(plain);
    for (size_t i = 0; i < n; i += 2)
        memcpy(plain + i, "\x0a\x00", 2);
    uint8_t *z = zlib_compress(plain, n, &zlen);
    assert_true(zlen < 16 * 1024);
    uint8_t *buf = pack_envelope(1, 1, z, zlen, 99, &len);
    struct wl_decoder d;
    wl_decoder_init(&d, MAX_INFLATED, MAX_PINGS);
    expect_reject(&d, buf, len, WL_REJECT_BATCH_TOO_MANY_PINGS, "zlib bomb of empty pings");
    if (d.peak_bytes > len + 4096)
        fail_msg("the allocator held %zu bytes for a %zu-byte envelope", d.peak_bytes, len);
    wl_decoder_free(&d);
    free(buf);
    free(z);
    free(plain);
}

/* A ping with 65 features, one with 10,000 unknown fields, one with 115
 * copies of a known field: each is rejected alone, never decoded (it comes
 * out empty), and its neighbours decode. At the bounds (64 features,
 * WL_PING_FIELDS_MAX fields) a ping passes. */
static void test_ping_rejected_alone(void **state)
{
    (void)state;
    struct wire b = {0}, p = {0};
    enum wl_reason want[8];
    size_t np = 0;

#define NEXT_PING(reason)                                                                 \
    do {                                                                                  \
        w_ping(&b, &p);                                                                   \
        want[np++] = (reason);                                                            \
        p.n = 0;                                                                          \
    } while (0)

    w_valid_ping(&p, "before", 1);
    NEXT_PING(WL_REJECT_NONE);

    w_valid_ping(&p, "features-65", 1);
    for (int i = 0; i < WL_FEATURES_MAX + 1; i++)
        w_string(&p, 25, "f");
    NEXT_PING(WL_REJECT_TOO_MANY_FEATURES);

    w_valid_ping(&p, "features-64", 1);
    for (int i = 0; i < WL_FEATURES_MAX; i++)
        w_string(&p, 25, "f");
    NEXT_PING(WL_REJECT_NONE);

    w_valid_ping(&p, "unknown-10000", 1);
    for (int i = 0; i < 10000; i++) {
        w_tag(&p, 1000 + (uint32_t)i, 0);
        w_varint(&p, 1);
    }
    NEXT_PING(WL_REJECT_PING_TOO_MANY_FIELDS);

    w_valid_ping(&p, "fields-at-max", 1); /* 2 fields + the rest unknown */
    for (int i = 0; i < WL_PING_FIELDS_MAX - 2; i++) {
        w_tag(&p, 100, 0);
        w_varint(&p, 1);
    }
    NEXT_PING(WL_REJECT_NONE);

    w_valid_ping(&p, "version-115", 1);
    for (int i = 0; i < WL_PING_FIELDS_MAX - 1; i++)
        w_string(&p, 5, "1.0");
    NEXT_PING(WL_REJECT_PING_TOO_MANY_FIELDS);

    w_valid_ping(&p, "after", 2);
    NEXT_PING(WL_REJECT_NONE);
#undef NEXT_PING

    for (int compress = 0; compress <= 1; compress++) {
        size_t len, zlen = 0;
        uint8_t *z = compress ? zlib_compress(b.b, b.n, &zlen) : NULL;
        uint8_t *buf = compress ? pack_envelope(1, 1, z, zlen, 5, &len)
                                : pack_envelope(1, 0, b.b, b.n, 5, &len);
        struct wl_decoder d;
        wl_ping_batch *out = NULL;
        uint64_t id = 0;
        enum wl_reason *rejects = NULL;
        wl_decoder_init(&d, MAX_INFLATED, MAX_PINGS);
        assert_reason(wl_envelope_decode(&d, buf, len, &out, &id, &rejects), WL_REJECT_NONE);
        assert_non_null(out);
        assert_non_null(rejects);
        assert_int_equal(out->n_pings, np);
        for (size_t i = 0; i < np; i++) {
            if (rejects[i] != want[i])
                fail_msg("ping %zu: got %s, want %s", i, rname(rejects[i]), rname(want[i]));
            if (want[i] == WL_REJECT_NONE) {
                assert_true(strlen(out->pings[i]->install_id) > 0);
                assert_true(out->pings[i]->seq > 0);
            } else { /* never decoded: an empty ping stands in */
                assert_string_equal(out->pings[i]->install_id, "");
                assert_int_equal(out->pings[i]->n_features, 0);
                assert_int_equal(out->pings[i]->base.n_unknown_fields, 0);
            }
        }
        assert_string_equal(out->pings[0]->install_id, "before");
        assert_int_equal(out->pings[2]->n_features, WL_FEATURES_MAX);
        assert_int_equal(out->pings[4]->base.n_unknown_fields, WL_PING_FIELDS_MAX - 2);
        assert_string_equal(out->pings[np - 1]->install_id, "after");
        /* the kept pings' bytes moved down over the rejected ones: each
         * still decodes to its ping */
        assert_bytes_match(d.bytes, out, rejects);
        /* the 10,000 unknown fields never reached the allocator */
        if (d.peak_bytes > 2 * len + 64 * 1024)
            fail_msg("peak %zu bytes for a %zu-byte envelope", d.peak_bytes, len);
        free(rejects);
        wl_ping_batch_free(out);
        wl_decoder_free(&d);
        free(buf);
        free(z);
    }
    free(b.b);
    free(p.b);
}

/* Must parse: the shapes that cost protobuf-c the most per wire byte, each
 * at its bound, decode within the budget the walk computes (so the budget
 * refuses nothing valid), and what they hold is reported. */
static void test_costly_shapes_fit_the_budget(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        int features;     /* one-byte features per ping */
        int unknown;      /* unknown varint fields per ping */
        int repeats;      /* extra copies of the version string */
        int empty;        /* the ping is empty (no id, no seq) */
    } shapes[] = {
        {"empty pings", 0, 0, 0, 1},
        {"minimal valid pings", 0, 0, 0, 0},
        {"64 one-byte features", WL_FEATURES_MAX, 0, 0, 0},
        {"112 unknown fields", 0, WL_PING_FIELDS_MAX - 2, 0, 0},
        {"version 48 times and 64 features", WL_FEATURES_MAX, 0, 48, 0},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        struct wire b = {0}, p = {0};
        size_t fields = 0;
        for (size_t i = 0; i < MAX_PINGS; i++) {
            char id[16];
            p.n = 0;
            if (!shapes[s].empty) {
                snprintf(id, sizeof id, "i%zu", i);
                w_valid_ping(&p, id, 1);
            }
            for (int k = 0; k < shapes[s].features; k++)
                w_string(&p, 25, "f");
            for (int k = 0; k < shapes[s].unknown; k++) {
                w_tag(&p, 30 + (uint32_t)k, 0);
                w_varint(&p, 1);
            }
            for (int k = 0; k < shapes[s].repeats; k++)
                w_string(&p, 5, "");
            fields += (shapes[s].empty ? 0 : 2) + (size_t)shapes[s].features +
                      (size_t)shapes[s].unknown + (size_t)shapes[s].repeats;
            w_ping(&b, &p);
        }
        size_t len;
        uint8_t *buf = pack_envelope(1, 0, b.b, b.n, 1, &len);
        struct wl_decoder d;
        wl_ping_batch *out = NULL;
        uint64_t id = 0;
        enum wl_reason *rejects = NULL;
        wl_decoder_init(&d, MAX_INFLATED, MAX_PINGS);
        enum wl_reason r = wl_envelope_decode(&d, buf, len, &out, &id, &rejects);
        if (r != WL_REJECT_NONE)
            fail_msg("%s: got %s", shapes[s].what, rname(r));
        assert_null(rejects);
        assert_int_equal(out->n_pings, MAX_PINGS);
        size_t budget = budget_of(b.n, MAX_PINGS, fields);
        print_message("%-34s wire %8zu B  decoded %9zu B (%5.1fx)  peak %9zu B  budget %9zu B\n",
                      shapes[s].what, b.n, d.batch_bytes, (double)d.batch_bytes / (double)b.n,
                      d.peak_bytes, budget);
        assert_true(d.batch_bytes > 0);
        assert_true(d.peak_bytes <= WL_DECODE_FIXED + 2 * len + budget);
        wl_ping_batch_free(out);
        wl_decoder_free(&d);
        free(buf);
        free(b.b);
        free(p.b);
    }
}

/* Must not parse: wire the walk refuses before anything is decoded (as
 * protobuf-c would, or as the stored pings could not be read back). */
static void test_walk_must_not_parse(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
        enum wl_reason want;
    } cases[] = {
        {"ping: field number 0 as a multi-byte tag", "\x0a\x05\x18\x01\x80\x00\x01", 7,
         WL_REJECT_BATCH_DECODE},
        {"batch: field number 0", "\x0a\x02\x18\x01\x00\x01", 6, WL_REJECT_BATCH_DECODE},
        {"ping: fixed64 cut short", "\x0a\x04\x18\x01\x21\x00", 6, WL_REJECT_BATCH_DECODE},
        {"ping: fixed32 cut short", "\x0a\x04\x18\x01\x25\x00", 6, WL_REJECT_BATCH_DECODE},
        {"ping: wire type 3 (group)", "\x0a\x03\x18\x01\x23", 5, WL_REJECT_BATCH_DECODE},
        {"ping: string longer than the ping", "\x0a\x04\x0a\x05" "ab", 6, WL_REJECT_BATCH_DECODE},
        {"ping: varint cut", "\x0a\x02\x18\x80", 4, WL_REJECT_BATCH_DECODE},
        {"batch: a ping as a varint", "\x08\x01", 2, WL_REJECT_BATCH_DECODE},
        {"batch: a ping longer than the batch", "\x0a\x09\x18\x01", 4, WL_REJECT_BATCH_DECODE},
        {"batch: field number 2^29", "\x80\x80\x80\x80\x10\x00", 6, WL_REJECT_BATCH_DECODE},
    };
    struct wl_decoder d;
    wl_decoder_init(&d, MAX_INFLATED, MAX_PINGS);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        uint8_t *buf = pack_envelope(1, 0, cases[i].bytes, cases[i].len, 3, &len);
        expect_reject(&d, buf, len, cases[i].want, cases[i].what);
        free(buf);
    }
    /* the batch's own fields: 64 pass, 65 do not (each would cost ~56 bytes) */
    for (int n = WL_BATCH_FIELDS_MAX; n <= WL_BATCH_FIELDS_MAX + 1; n++) {
        struct wire b = {0};
        for (int i = 0; i < n; i++) {
            w_tag(&b, 2, 0);
            w_varint(&b, 1);
        }
        size_t blen;
        uint8_t *benv = pack_envelope(1, 0, b.b, b.n, 4, &blen);
        wl_ping_batch *bout = NULL;
        uint64_t bid = 0;
        enum wl_reason r = decode_env(&d, benv, blen, &bout, &bid);
        assert_reason(r, n > WL_BATCH_FIELDS_MAX ? WL_REJECT_BATCH_DECODE : WL_REJECT_NONE);
        if (bout != NULL)
            assert_int_equal(bout->base.n_unknown_fields, (unsigned)n);
        wl_ping_batch_free(bout);
        free(benv);
        free(b.b);
    }
    /* must parse: a later schema's field in the batch (2) and in a ping (100) */
    static const uint8_t later[] = {0x10, 0x05, 0x0a, 0x08, 0x0a, 0x01, 'a',
                                    0x18, 0x01, 0xa0, 0x06, 0x01};
    size_t len;
    uint8_t *buf = pack_envelope(1, 0, later, sizeof later, 3, &len);
    wl_ping_batch *out = NULL;
    uint64_t id = 0;
    assert_reason(decode_env(&d, buf, len, &out, &id), WL_REJECT_NONE);
    assert_int_equal(out->n_pings, 1);
    assert_string_equal(out->pings[0]->install_id, "a");
    assert_int_equal(out->pings[0]->base.n_unknown_fields, 1);
    assert_int_equal(out->base.n_unknown_fields, 1);
    wl_ping_batch_free(out);
    free(buf);
    wl_decoder_free(&d);
}

/* An Envelope of unknown fields costs protobuf-c ~28 bytes per wire byte:
 * refused past 2 x its size + WL_DECODE_FIXED, as a bad envelope. */
static void test_envelope_of_unknown_fields(void **state)
{
    (void)state;
    struct wire e = {0};
    w_tag(&e, 1, 0);
    w_varint(&e, 1);
    for (int i = 0; i < 100000; i++) {
        w_tag(&e, 10, 0);
        w_varint(&e, 1);
    }
    struct wl_decoder d;
    wl_decoder_init(&d, MAX_INFLATED, MAX_PINGS);
    expect_reject(&d, e.b, e.n, WL_REJECT_ENVELOPE_DECODE, "100,000 unknown envelope fields");
    assert_true(d.peak_bytes <= WL_DECODE_FIXED + 2 * e.n);
    /* a few unknown fields (a later version's) are fine */
    e.n = 0;
    w_tag(&e, 1, 0);
    w_varint(&e, 1);
    for (int i = 0; i < 16; i++) {
        w_tag(&e, 10 + (uint32_t)i, 0);
        w_varint(&e, 300);
    }
    wl_ping_batch *out = NULL;
    uint64_t id = 0;
    assert_reason(decode_env(&d, e.b, e.n, &out, &id), WL_REJECT_NONE);
    assert_int_equal(out->n_pings, 0);
    wl_ping_batch_free(out);
    wl_decoder_free(&d);
    free(e.b);
}


/* ---- arenas (arena.h): what a decoded batch lives in ---- */

/* Counts what it hands out rounded up to 8, refuses past its limit (and
 * says so), gives a large request's chunk back when protobuf-c frees it,
 * and a reset keeps only the first chunk. */
static void test_arena_counts_and_refuses(void **state)
{
    (void)state;
    struct wl_arena *a = wl_arena_new(0, 64, 4000);
    assert_non_null(a);
    uint8_t *p1 = wl_arena_alloc(a, 1), *p2 = wl_arena_alloc(a, 0), *p3 = wl_arena_alloc(a, 9);
    assert_non_null(p1);
    assert_ptr_equal(p2, p1 + 8);
    assert_ptr_equal(p3, p2 + 8);
    assert_int_equal(a->counted, 32);
    assert_null(wl_arena_alloc(a, 3969)); /* 32 + 3976 > 4000 */
    assert_true(a->over_budget);
    assert_int_equal(a->counted, 32);
    void *big = wl_arena_alloc(a, 600); /* its own chunk */
    assert_non_null(big);
    memset(big, 0xab, 600);
    assert_int_equal(a->counted, 32 + 600);
    size_t held = a->held;
    ProtobufCAllocator pa = wl_arena_allocator(a);
    pa.free(pa.allocator_data, big);
    assert_int_equal(a->counted, 32);
    assert_true(a->held < held);
    pa.free(pa.allocator_data, p1); /* a small one: nothing */
    assert_int_equal(a->counted, 32);
    for (int i = 0; i < 100; i++) /* past the first chunk */
        assert_non_null(wl_arena_alloc(a, 8));
    assert_int_equal(a->peak, 32 + 100 * 8); /* past 32 + 600: the big one went back */
    assert_null(wl_arena_alloc(a, SIZE_MAX));
    /* with spares, a chunk given back serves the next request of its size */
    struct wl_arena_spares spares = {0};
    a->spares = &spares;
    void *slab = wl_arena_alloc(a, 1024);
    assert_non_null(slab);
    pa.free(pa.allocator_data, slab);
    assert_int_equal(spares.n, 1);
    assert_ptr_equal(wl_arena_alloc(a, 1024), slab);
    assert_int_equal(spares.n, 0);
    pa.free(pa.allocator_data, slab);
    a->spares = NULL;
    wl_arena_spares_free(&spares);
    assert_int_equal(spares.n, 0);
    wl_arena_reset(a, 16);
    assert_int_equal(a->counted, 0);
    assert_false(a->over_budget);
    assert_non_null(wl_arena_alloc(a, 16));
    assert_null(wl_arena_alloc(a, 1));
    wl_arena_free(a);
}


/* protobuf-c's scanning scratch (1, 2 and 4 KiB for a ping of 114 fields)
 * is given back however many large requests came after it: pings of 16
 * features of 600 bytes and 96 unknown fields, each within the walk's
 * bounds, decode within the budget (kept, the scratch would pass it by
 * about 3 KB a ping). */
static void test_arena_gives_back_the_parser_scratch(void **state)
{
    (void)state;
    enum { N = 200 };
    char big[601];
    memset(big, 'f', 600);
    big[600] = '\0';
    struct wire b = {0}, p = {0};
    for (size_t i = 0; i < N; i++) {
        char id[16];
        p.n = 0;
        snprintf(id, sizeof id, "i%zu", i);
        w_valid_ping(&p, id, 1);
        for (int k = 0; k < 16; k++)
            w_string(&p, 25, big);
        for (int k = 0; k < WL_PING_FIELDS_MAX - 18; k++) {
            w_tag(&p, 30 + (uint32_t)k, 0);
            w_varint(&p, 1);
        }
        w_ping(&b, &p);
    }
    size_t len;
    uint8_t *buf = pack_envelope(1, 0, b.b, b.n, 9, &len);
    struct wl_decoder d;
    wl_decoder_init(&d, MAX_INFLATED, MAX_PINGS);
    wl_ping_batch *out = NULL;
    uint64_t id = 0;
    assert_reason(decode_env(&d, buf, len, &out, &id), WL_REJECT_NONE);
    assert_int_equal(out->n_pings, N);
    assert_int_equal(out->pings[N - 1]->n_features, 16);
    assert_int_equal(out->pings[N - 1]->base.n_unknown_fields, WL_PING_FIELDS_MAX - 18);
    assert_true(d.peak_bytes <=
                WL_DECODE_FIXED + 2 * len + budget_of(b.n, N, N * WL_PING_FIELDS_MAX));
    wl_ping_batch_free(out);
    wl_decoder_free(&d);
    free(buf);
    free(b.b);
    free(p.b);
}

static void *free_batch_thread(void *arg)
{
    wl_ping_batch_free(arg);
    return NULL;
}

/* A batch of many pings decodes into one arena (a few chunks, not an
 * allocation per field), reads like any batch, and is freed whole on
 * another thread; one ping in a datagram is one chunk of under 1 KiB. */
static void test_arena_batch_of_many_pings(void **state)
{
    (void)state;
    enum { N = 5000 };
    struct wire b = {0}, p = {0};
    size_t fields = 0;
    for (size_t i = 0; i < N; i++) {
        char id[16];
        p.n = 0;
        snprintf(id, sizeof id, "inst-%06zu", i);
        w_valid_ping(&p, id, i + 1);
        w_string(&p, 25, "saml_configured");
        w_string(&p, 25, i % 2 ? "ldap" : "sso");
        fields += 4;
        w_ping(&b, &p);
    }
    size_t len;
    uint8_t *buf = pack_envelope(1, 0, b.b, b.n, 7, &len);
    struct wl_decoder d;
    wl_decoder_init(&d, MAX_INFLATED, MAX_PINGS);
    wl_ping_batch *out = NULL;
    uint64_t id = 0;
    assert_reason(decode_env(&d, buf, len, &out, &id), WL_REJECT_NONE);
    assert_int_equal(id, 7);
    assert_int_equal(out->n_pings, N);
    for (size_t i = 0; i < N; i += 997) {
        char want[16];
        snprintf(want, sizeof want, "inst-%06zu", i);
        assert_string_equal(out->pings[i]->install_id, want);
        assert_int_equal(out->pings[i]->seq, i + 1);
        assert_int_equal(out->pings[i]->n_features, 2);
        assert_string_equal(out->pings[i]->features[1], i % 2 ? "ldap" : "sso");
    }
    assert_true(d.batch_bytes >= N * sizeof(wl_ping));
    assert_true(d.batch_bytes <= budget_of(b.n, N, fields));
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, free_batch_thread, out), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    free(buf);

    /* one ping, as in a datagram */
    b.n = 0;
    p.n = 0;
    w_valid_ping(&p, "inst-000001", 1);
    w_string(&p, 25, "saml_configured");
    w_ping(&b, &p);
    buf = pack_envelope(1, 0, b.b, b.n, 8, &len);
    assert_reason(decode_env(&d, buf, len, &out, &id), WL_REJECT_NONE);
    print_message("one ping: %zu B on the wire, the batch holds %zu B\n", len, d.batch_bytes);
    assert_true(d.batch_bytes < 1024);
    assert_ptr_equal(wl_arena_prefix(wl_arena_of_prefix(out, sizeof *out)), out);
    wl_ping_batch_free(out);
    free(buf);
    wl_decoder_free(&d);
    free(b.b);
    free(p.b);
}

/* wl_ping_batch_free still frees a batch built with malloc in protobuf-c's
 * layout (rudder.c, http_ingest_security.c make those), field by field. */
static void test_free_of_a_malloc_built_batch(void **state)
{
    (void)state;
    wl_ping_batch *b = malloc(sizeof *b);
    assert_non_null(b);
    warmline__v1__ping_batch__init(b);
    b->pings = calloc(2, sizeof *b->pings);
    assert_non_null(b->pings);
    for (int i = 0; i < 2; i++) {
        wl_ping *p = malloc(sizeof *p);
        assert_non_null(p);
        warmline__v1__ping__init(p);
        p->install_id = strdup("built");
        p->seq = 1;
        b->pings[b->n_pings++] = p;
    }
    wl_ping_batch_free(b); /* ASan and LeakSanitizer say whether it was right */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_plain),
        cmocka_unit_test(test_roundtrip_zlib),
        cmocka_unit_test(test_empty_batch),
        cmocka_unit_test(test_batch_free_null),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_truncated_envelope),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_compression_unknown),
        cmocka_unit_test(test_inflate_failed),
        cmocka_unit_test(test_zlib_bomb),
        cmocka_unit_test(test_inflated_cap_boundary),
        cmocka_unit_test(test_plain_payload_too_large),
        cmocka_unit_test(test_payload_not_a_batch),
        cmocka_unit_test(test_too_many_pings),
        cmocka_unit_test(test_decoder_reuse),
        cmocka_unit_test(test_max_pings_default),
        cmocka_unit_test(test_nul_in_strings_flagged_per_ping),
        cmocka_unit_test(test_walk_bound_matches_schema),
        cmocka_unit_test(test_too_many_empty_pings_never_decoded),
        cmocka_unit_test(test_zlib_bomb_of_empty_pings),
        cmocka_unit_test(test_ping_rejected_alone),
        cmocka_unit_test(test_costly_shapes_fit_the_budget),
        cmocka_unit_test(test_walk_must_not_parse),
        cmocka_unit_test(test_envelope_of_unknown_fields),
        cmocka_unit_test(test_arena_counts_and_refuses),
        cmocka_unit_test(test_arena_batch_of_many_pings),
        cmocka_unit_test(test_arena_gives_back_the_parser_scratch),
        cmocka_unit_test(test_free_of_a_malloc_built_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
