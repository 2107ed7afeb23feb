/* Unit tests for collector/framing.h: varint-delimited frames, judged as
 * bytes arrive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framing.h"

#define MiB ((uint64_t)1 << 20)

#define CASE_FAIL(...) (print_error(__VA_ARGS__), bad++)

static const char *status_name(enum wl_frame_status s)
{
    switch (s) {
    case WL_FRAME_NEED_MORE: return "NEED_MORE";
    case WL_FRAME_READY: return "READY";
    case WL_FRAME_TOO_LARGE: return "TOO_LARGE";
    case WL_FRAME_BAD_VARINT: return "BAD_VARINT";
    }
    return "?";
}

#define assert_status(got, want)                                                           \
    do {                                                                                   \
        enum wl_frame_status got_ = (got), want_ = (want);                                 \
        if (got_ != want_)                                                                 \
            fail_msg("%s: got %s, want %s", #got, status_name(got_), status_name(want_));  \
    } while (0)

/* Builds varint(len) + len bytes of body (byte i = i & 0xff). */
static uint8_t *make_frame(uint64_t len, size_t *total, size_t *hdr)
{
    uint8_t *buf = malloc(WL_VARINT_MAX + len + 1);
    assert_non_null(buf);
    *hdr = wl_varint_encode(len, buf);
    for (uint64_t i = 0; i < len; i++)
        buf[*hdr + i] = (uint8_t)i;
    *total = *hdr + len;
    return buf;
}

/* ---- need more ---- */

static void test_need_more(void **state)
{
    (void)state;
    size_t hdr = 99, len = 99;
    const uint8_t partial_varint[] = {0xac};          /* 300 = ac 02, one byte of two */
    const uint8_t partial_body[] = {0x05, 'a', 'b'};  /* 5 bytes announced, 2 here */
    const uint8_t header_only[] = {0x03};

    assert_status(wl_frame_parse(partial_varint, 0, 1000, &hdr, &len), WL_FRAME_NEED_MORE);
    assert_status(wl_frame_parse(partial_varint, 1, 1000, &hdr, &len), WL_FRAME_NEED_MORE);
    /* hdr and len are untouched until the length's varint is whole */
    assert_int_equal(hdr, 99);
    assert_int_equal(len, 99);
    /* then they say what the frame will be, before its body is in */
    assert_status(wl_frame_parse(partial_body, 3, 1000, &hdr, &len), WL_FRAME_NEED_MORE);
    assert_int_equal(hdr, 1);
    assert_int_equal(len, 5);
    assert_status(wl_frame_parse(header_only, 1, 1000, &hdr, &len), WL_FRAME_NEED_MORE);
    assert_int_equal(hdr, 1);
    assert_int_equal(len, 3);
}

/* ---- ready ---- */

static void test_ready_lengths(void **state)
{
    (void)state;
    static const struct {
        uint64_t len;
        size_t hdr;
    } cases[] = {
        {0, 1}, {1, 1}, {127, 1}, {128, 2}, {300, 2}, {16383, 2}, {16384, 3}, {MiB, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t total, hdr, got_hdr = 0, got_len = 0;
        uint8_t *buf = make_frame(cases[i].len, &total, &hdr);
        assert_int_equal(hdr, cases[i].hdr);

        /* exactly one frame; max = its own length */
        assert_status(wl_frame_parse(buf, total, cases[i].len, &got_hdr, &got_len),
                      WL_FRAME_READY);
        assert_int_equal(got_hdr, cases[i].hdr);
        assert_int_equal(got_len, cases[i].len);

        /* the default limit */
        assert_status(wl_frame_parse(buf, total, MiB, &got_hdr, &got_len), WL_FRAME_READY);
        assert_int_equal(got_len, cases[i].len);

        /* extra bytes after it do not change it */
        buf[total] = 0x7f;
        assert_status(wl_frame_parse(buf, total + 1, MiB, &got_hdr, &got_len),
                      WL_FRAME_READY);
        assert_int_equal(got_hdr, cases[i].hdr);
        assert_int_equal(got_len, cases[i].len);

        /* one byte short is NEED_MORE */
        if (total > 0)
            assert_status(wl_frame_parse(buf, total - 1, MiB, &got_hdr, &got_len),
                          WL_FRAME_NEED_MORE);
        free(buf);
    }
}

/* ---- varint encoding ---- */

static void test_varint_encode_bytes(void **state)
{
    (void)state;
    static const struct {
        uint64_t v;
        size_t n;
        uint8_t bytes[WL_VARINT_MAX];
    } cases[] = {
        {0, 1, {0x00}},
        {1, 1, {0x01}},
        {127, 1, {0x7f}},
        {128, 2, {0x80, 0x01}},
        {300, 2, {0xac, 0x02}},
        {16384, 3, {0x80, 0x80, 0x01}},
        {MiB, 3, {0x80, 0x80, 0x40}},
        {UINT32_MAX, 5, {0xff, 0xff, 0xff, 0xff, 0x0f}},
        {(uint64_t)1 << 63, 10, {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}},
        {UINT64_MAX, 10, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t out[WL_VARINT_MAX + 4];
        memset(out, 0xee, sizeof out);
        size_t n = wl_varint_encode(cases[i].v, out);
        assert_int_equal(n, cases[i].n);
        assert_memory_equal(out, cases[i].bytes, n);
        assert_int_equal(out[n], 0xee); /* nothing written past it */
    }
}

static size_t expected_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Encode then parse: a complete varint v is judged TOO_LARGE against max
 * v - 1 and not against max v, which pins the decoded value to exactly v
 * without needing a body of v bytes. Small values also parse READY. */
static void test_varint_roundtrip(void **state)
{
    (void)state;
    uint64_t values[64 * 3 + 4];
    size_t nv = 0;
    for (int k = 0; k < 64; k++) {
        uint64_t p = (uint64_t)1 << k;
        values[nv++] = p - 1;
        values[nv++] = p;
        values[nv++] = p + 1;
    }
    values[nv++] = UINT64_MAX;
    values[nv++] = UINT64_MAX - 1;
    values[nv++] = 0x0123456789abcdefULL;
    values[nv++] = 300;

    int bad = 0;
    for (size_t i = 0; i < nv; i++) {
        uint64_t v = values[i];
        uint8_t buf[WL_VARINT_MAX];
        size_t hdr = 0, len = 0;
        size_t n = wl_varint_encode(v, buf);
        if (n != expected_varint_len(v) || n > WL_VARINT_MAX)
            CASE_FAIL("%llu: encoded in %zu bytes\n", (unsigned long long)v, n);
        enum wl_frame_status s = wl_frame_parse(buf, n, UINT64_MAX, &hdr, &len);
        enum wl_frame_status want = v == 0 ? WL_FRAME_READY : WL_FRAME_NEED_MORE;
        if (s != want)
            CASE_FAIL("%llu, max UINT64_MAX: %s\n", (unsigned long long)v, status_name(s));
        s = wl_frame_parse(buf, n, v, &hdr, &len);
        if (s != want)
            CASE_FAIL("%llu, max == v: %s\n", (unsigned long long)v, status_name(s));
        if (v > 0) {
            s = wl_frame_parse(buf, n, v - 1, &hdr, &len);
            if (s != WL_FRAME_TOO_LARGE)
                CASE_FAIL("%llu, max == v - 1: %s\n", (unsigned long long)v, status_name(s));
        }
        if (v <= 70000) { /* small enough to carry the body */
            size_t total, h;
            uint8_t *f = make_frame(v, &total, &h);
            s = wl_frame_parse(f, total, UINT64_MAX, &hdr, &len);
            if (s != WL_FRAME_READY || hdr != n || len != v)
                CASE_FAIL("%llu: %s hdr %zu len %zu\n", (unsigned long long)v, status_name(s),
                          hdr, len);
            free(f);
        }
    }
    if (bad)
        fail_msg("%d varint round trips wrong", bad);
}

/* ---- too large ---- */

static void test_too_large_before_body(void **state)
{
    (void)state;
    size_t hdr = 0, len = 0;
    uint8_t buf[WL_VARINT_MAX];

    /* complete varint just over the limit, no body at all */
    size_t n = wl_varint_encode(MiB + 1, buf);
    assert_status(wl_frame_parse(buf, n, MiB, &hdr, &len), WL_FRAME_TOO_LARGE);
    n = wl_varint_encode(MiB, buf);
    assert_status(wl_frame_parse(buf, n, MiB, &hdr, &len), WL_FRAME_NEED_MORE);
    n = wl_varint_encode(101, buf);
    assert_status(wl_frame_parse(buf, n, 100, &hdr, &len), WL_FRAME_TOO_LARGE);
    n = wl_varint_encode(UINT64_MAX, buf);
    assert_status(wl_frame_parse(buf, n, MiB, &hdr, &len), WL_FRAME_TOO_LARGE);

    /* An unfinished varint is judged only once complete: padded encodings
     * are valid, so its first bytes prove nothing about the length. */
    const uint8_t three[] = {0x80, 0x80, 0x80};
    assert_status(wl_frame_parse(three, 3, MiB, &hdr, &len), WL_FRAME_NEED_MORE);
    uint8_t big[WL_VARINT_MAX];
    n = wl_varint_encode((uint64_t)1 << 63, big);
    assert_status(wl_frame_parse(big, 9, MiB, &hdr, &len), WL_FRAME_NEED_MORE);
    assert_status(wl_frame_parse(big, n, MiB, &hdr, &len), WL_FRAME_TOO_LARGE);
    /* Nine continuation bytes and no limit: still waiting for the 10th. */
    assert_status(wl_frame_parse(big, 9, UINT64_MAX, &hdr, &len), WL_FRAME_NEED_MORE);
    assert_status(wl_frame_parse(big, 10, UINT64_MAX, &hdr, &len), WL_FRAME_NEED_MORE);
}

/* ---- bad varint ---- */

static void test_bad_varint(void **state)
{
    (void)state;
    size_t hdr = 0, len = 0;
    uint8_t buf[16];

    /* ten bytes, each with the continuation bit */
    memset(buf, 0x80, sizeof buf);
    assert_status(wl_frame_parse(buf, 10, UINT64_MAX, &hdr, &len), WL_FRAME_BAD_VARINT);
    assert_status(wl_frame_parse(buf, 16, UINT64_MAX, &hdr, &len), WL_FRAME_BAD_VARINT);
    memset(buf, 0xff, sizeof buf);
    assert_status(wl_frame_parse(buf, 10, UINT64_MAX, &hdr, &len), WL_FRAME_BAD_VARINT);
    assert_status(wl_frame_parse(buf, 11, UINT64_MAX, &hdr, &len), WL_FRAME_BAD_VARINT);

    /* a 10th byte that overflows 64 bits */
    memset(buf, 0xff, 9);
    buf[9] = 0x02;
    assert_status(wl_frame_parse(buf, 10, UINT64_MAX, &hdr, &len), WL_FRAME_BAD_VARINT);
    memset(buf, 0x80, 9);
    buf[9] = 0x7f;
    assert_status(wl_frame_parse(buf, 10, UINT64_MAX, &hdr, &len), WL_FRAME_BAD_VARINT);
    /* ... while 0x01 there is 2^63 and fine */
    buf[9] = 0x01;
    assert_status(wl_frame_parse(buf, 10, UINT64_MAX, &hdr, &len), WL_FRAME_NEED_MORE);
    /* nine continuation bytes are not yet bad */
    memset(buf, 0xff, 9);
    assert_status(wl_frame_parse(buf, 9, UINT64_MAX, &hdr, &len), WL_FRAME_NEED_MORE);
}

/* ---- several frames in one buffer ---- */

static void test_back_to_back(void **state)
{
    (void)state;
    uint8_t buf[2048];
    size_t n = 0, hdr, len;
    static const size_t sizes[] = {3, 0, 300, 1, 127, 128};
    size_t nsizes = sizeof sizes / sizeof sizes[0];

    for (size_t f = 0; f < nsizes; f++) {
        n += wl_varint_encode(sizes[f], buf + n);
        memset(buf + n, (int)('A' + f), sizes[f]);
        n += sizes[f];
    }
    /* plus the first byte of a seventh frame's two-byte header */
    size_t partial = wl_varint_encode(200, buf + n);
    assert_int_equal(partial, 2);
    n += 1;

    size_t off = 0;
    for (size_t f = 0; f < nsizes; f++) {
        assert_status(wl_frame_parse(buf + off, n - off, 1024, &hdr, &len), WL_FRAME_READY);
        assert_int_equal(len, sizes[f]);
        assert_int_equal(hdr, sizes[f] >= 128 ? 2 : 1);
        for (size_t k = 0; k < len; k++)
            assert_int_equal(buf[off + hdr + k], 'A' + f);
        off += hdr + len;
    }
    assert_status(wl_frame_parse(buf + off, n - off, 1024, &hdr, &len), WL_FRAME_NEED_MORE);
    assert_int_equal(n - off, 1);
}

/* A stream that arrives one byte at a time: NEED_MORE at every prefix until a
 * frame is whole. Whatever the chunking, the answer for a frame that is valid
 * whole must never be an error on one of its prefixes. */
static void check_prefixes(const uint8_t *frame, size_t total, uint64_t max, const char *what,
                           int *bad_out)
{
    int bad = 0;
    size_t hdr = 0, len = 0;
    enum wl_frame_status whole = wl_frame_parse(frame, total, max, &hdr, &len);
    if (whole != WL_FRAME_READY || hdr + len != total) {
        CASE_FAIL("%s: whole frame is %s\n", what, status_name(whole));
    } else {
        for (size_t k = 0; k < total; k++) {
            enum wl_frame_status s = wl_frame_parse(frame, k, max, &hdr, &len);
            if (s != WL_FRAME_NEED_MORE) {
                CASE_FAIL("%s: after %zu of %zu bytes: %s, but the whole frame is READY\n",
                          what, k, total, status_name(s));
                break;
            }
        }
    }
    *bad_out += bad;
}

static void test_byte_by_byte(void **state)
{
    (void)state;
    int bad = 0;
    static const uint64_t sizes[] = {0, 1, 127, 128, 300, 20000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t total, hdr;
        uint8_t *f = make_frame(sizes[i], &total, &hdr);
        char what[64];
        snprintf(what, sizeof what, "canonical %llu-byte frame", (unsigned long long)sizes[i]);
        check_prefixes(f, total, sizes[i], what, &bad);
        check_prefixes(f, total, MiB, what, &bad);
        free(f);
    }
    if (bad)
        fail_msg("%d streams judged differently in pieces", bad);
}

/* Protobuf readers accept a varint padded with continuation bytes (e.g. 5 as
 * 85 00, or 85 80 80 00). Such a frame must be judged the same whether it
 * arrives whole or a byte at a time. */
static void test_padded_varint_same_in_pieces(void **state)
{
    (void)state;
    int bad = 0;
    static const struct {
        uint8_t frame[16];
        size_t total;
        uint64_t max;
        const char *what;
    } cases[] = {
        {{0x85, 0x00, 1, 2, 3, 4, 5}, 7, 100, "5 as 85 00, max 100"},
        {{0x85, 0x80, 0x80, 0x00, 1, 2, 3, 4, 5}, 9, MiB, "5 as 85 80 80 00, max 1 MiB"},
        {{0x80, 0x80, 0x00}, 3, 64, "0 as 80 80 00, max 64"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_prefixes(cases[i].frame, cases[i].total, cases[i].max, cases[i].what, &bad);
    if (bad)
        fail_msg("%d padded-varint frames judged differently in pieces", bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_need_more),
        cmocka_unit_test(test_ready_lengths),
        cmocka_unit_test(test_varint_encode_bytes),
        cmocka_unit_test(test_varint_roundtrip),
        cmocka_unit_test(test_too_large_before_body),
        cmocka_unit_test(test_bad_varint),
        cmocka_unit_test(test_back_to_back),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_padded_varint_same_in_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
