/* Regressions found by the fuzz targets (tests/fuzz): each crash input,
 * byte for byte, with the behaviour it must have now. The same inputs are
 * kept in tests/fuzz/corpus/<target>/regress_* and replayed by the
 * fuzz.replay_* tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "envelope.h"

/* tests/fuzz/corpus/envelope/regress_field_number_0 */
static const uint8_t field0_in_ping[] = {
    0x08, 0x01, 0x1a, 0x7a, 0x0a, 0x78, 0x0a, 0x03, 0x69, 0x2d, 0x31, 0x12,
    0x20, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
    0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16,
    0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x18, 0x01, 0x20,
    0x80, 0xa8, 0xf0, 0x94, 0xac, 0x33, 0x2a, 0x06, 0x39, 0x2e, 0x31, 0x31,
    0x2e, 0x30, 0x32, 0x04, 0x74, 0x65, 0x61, 0x6d, 0x3a, 0x08, 0x70, 0x6f,
    0x73, 0x74, 0x67, 0x72, 0x65, 0x73, 0x42, 0x05, 0x6c, 0x69, 0x6e, 0x75,
    0x78, 0x4a, 0x06, 0x64, 0x6f, 0x63, 0x6b, 0x65, 0x72, 0xad, 0x28, 0x0c,
    0x03, 0x60, 0x1e, 0x58, 0x78, 0x80, 0x00, 0x00, 0xc0, 0x01, 0x88, 0x27,
    0xca, 0x01, 0x0f, 0x73, 0x61, 0x6d, 0x6c, 0x5f, 0x63, 0x6f, 0x6e, 0x66,
    0x69, 0x67, 0x75, 0x72, 0x65, 0x64, 0x20, 0x07,
};

/* tests/fuzz/corpus/envelope/regress_field_number_0_batch */
static const uint8_t field0_in_batch[] = {
    0x08, 0x01, 0x1a, 0x7a, 0x0a, 0x38, 0x0a, 0x03, 0x69, 0x2d, 0x31, 0x12,
    0x20, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
    0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16,
    0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x18, 0x01, 0x20,
    0x80, 0xa8, 0xf0, 0x94, 0xac, 0x33, 0x2a, 0x06, 0x39, 0x00, 0x00, 0x31,
    0x2e, 0x30, 0x32, 0x04, 0x74, 0x65, 0x61, 0x6d, 0x3a, 0x08, 0x70, 0x6f,
    0x73, 0x74, 0x67, 0x72, 0x65, 0x73, 0x42, 0x05, 0x6c, 0x69, 0x6e, 0x75,
    0x78, 0x4a, 0x06, 0x64, 0x6f, 0x63, 0x6b, 0x65, 0x72, 0xad, 0x28, 0x0c,
    0x03, 0x60, 0x1e, 0x58, 0x78, 0x80, 0x00, 0xc0, 0x01, 0x88, 0x07, 0x27,
    0xca, 0x05, 0x0f, 0x73, 0x61, 0x6d, 0x6c, 0x5f, 0x63, 0x6f, 0x6e, 0x66,
    0x69, 0x67, 0x75, 0x72, 0x65, 0x64, 0x20, 0x07,
};

static enum wl_reason decode(const uint8_t *buf, size_t len, wl_ping_batch **out,
                             uint64_t *batch_id)
{
    struct wl_decoder d;
    enum wl_reason *rejects = NULL;
    wl_decoder_init(&d, 8 << 20, 10000);
    enum wl_reason r = wl_envelope_decode(&d, buf, len, out, batch_id, &rejects);
    free(rejects);
    wl_decoder_free(&d);
    return r;
}

/* Every ping of an accepted batch packs to bytes that decode again: that
 * is what the writer stores and what dump, export and restart read. */
static void assert_pings_repack(const wl_ping_batch *b)
{
    for (size_t i = 0; i < b->n_pings; i++) {
        size_t len = warmline__v1__ping__get_packed_size(b->pings[i]);
        uint8_t *buf = malloc(len ? len : 1);
        assert_non_null(buf);
        warmline__v1__ping__pack(b->pings[i], buf);
        wl_ping *p = warmline__v1__ping__unpack(NULL, len, buf);
        assert_non_null(p);
        warmline__v1__ping__free_unpacked(p, NULL);
        free(buf);
    }
}

/* The fuzzer's input: a ping with field number 0 written as the two-byte
 * tag 0x80 0x00. protobuf-c kept it as an unknown field and packed it as
 * 0x00, so the stored ping and install never decoded again and the
 * collector refused to start ("installs: record for 'i-1' does not
 * decode"). Now the batch does not decode, as protobuf says. */
static void test_field_number_0_in_ping(void **state)
{
    (void)state;
    wl_ping_batch *b = NULL;
    uint64_t id = 0;
    assert_int_equal(decode(field0_in_ping, sizeof field0_in_ping, &b, &id),
                     WL_REJECT_BATCH_DECODE);
    assert_null(b);
    assert_int_equal(id, 7); /* the ack still names the sender's batch */
}

/* The same at the PingBatch level (repacking the batch failed). */
static void test_field_number_0_in_batch(void **state)
{
    (void)state;
    wl_ping_batch *b = NULL;
    uint64_t id = 0;
    assert_int_equal(decode(field0_in_batch, sizeof field0_in_batch, &b, &id),
                     WL_REJECT_BATCH_DECODE);
    assert_null(b);
}

/* An Envelope (no compression) around one ping: install "a", seq 1, then
 * the extra bytes. */
static size_t envelope_with(const uint8_t *extra, size_t extra_len, uint8_t *out)
{
    uint8_t ping[64], batch[80];
    size_t n = 0, m = 0, k = 0;
    ping[n++] = 0x0a, ping[n++] = 1, ping[n++] = 'a'; /* install_id */
    ping[n++] = 0x18, ping[n++] = 1;                  /* seq */
    memcpy(ping + n, extra, extra_len);
    n += extra_len;
    batch[m++] = 0x0a, batch[m++] = (uint8_t)n;
    memcpy(batch + m, ping, n);
    m += n;
    out[k++] = 0x08, out[k++] = 1;                    /* version */
    out[k++] = 0x1a, out[k++] = (uint8_t)m;           /* payload */
    memcpy(out + k, batch, m);
    return k + m;
}

/* Field numbers a sender may not use are refused; unknown but valid ones
 * (a newer sender's fields) are still accepted and survive a repack. */
static void test_unknown_field_numbers(void **state)
{
    static const struct {
        const char *what;
        uint8_t extra[8];
        size_t len;
        int accepted;
    } cases[] = {
        {"field 0, two-byte tag", {0x80, 0x00, 0x05}, 3, 0},
        {"field 0, three-byte tag", {0x80, 0x80, 0x00, 0x05}, 4, 0},
        {"field 0, length-delimited", {0x82, 0x00, 0x01, 'x'}, 4, 0},
        {"field 99, varint", {0x98, 0x06, 0x05}, 3, 1},
        {"field 2^29-1, varint", {0xf8, 0xff, 0xff, 0xff, 0x0f, 0x01}, 6, 1},
        {"field 2^29, varint", {0x80, 0x80, 0x80, 0x80, 0x10, 0x01}, 6, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t env[128];
        size_t len = envelope_with(cases[i].extra, cases[i].len, env);
        wl_ping_batch *b = NULL;
        uint64_t id;
        enum wl_reason r = decode(env, len, &b, &id);
        if (cases[i].accepted) {
            if (r != WL_REJECT_NONE)
                fail_msg("%s: got %s, want accepted", cases[i].what, wl_reason_name(r));
            assert_int_equal(b->n_pings, 1);
            assert_pings_repack(b);
        } else if (r == WL_REJECT_NONE) {
            fail_msg("%s: accepted, want rejected", cases[i].what);
        }
        wl_ping_batch_free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_field_number_0_in_ping),
        cmocka_unit_test(test_field_number_0_in_batch),
        cmocka_unit_test(test_unknown_field_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
