/* collector/http_body.c: gzip under a cap (a bomb stops at the cap, corrupt,
 * truncated and trailing input refused, exactly the cap accepted) and the
 * JSON bound (depth and values counted as jansson builds them, brackets and
 * escapes inside strings, the bounds exact), and the jansson tree size per
 * value that http_body.h documents, measured with a counting allocator. */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>
#include <zlib.h>

#include "http_body.h"

/* ---- gzip ---- */

/* gzip of `copies` x chunk (chunk_len bytes each), malloc'd. */
static uint8_t *gzip_repeat(const uint8_t *chunk, size_t chunk_len, size_t copies, size_t *outlen)
{
    z_stream zs;
    size_t cap = 1024 + (chunk_len * copies) / 2 + 64, len = 0;
    uint8_t *out = malloc(cap);

    assert_non_null(out);
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
                     Z_OK);
    for (size_t k = 0; k <= copies; k++) {
        int last = k == copies;
        zs.next_in = (Bytef *)chunk;
        zs.avail_in = last ? 0 : (uInt)chunk_len;
        do {
            if (cap - len < 65536) {
                cap *= 2;
                out = realloc(out, cap);
                assert_non_null(out);
            }
            zs.next_out = out + len;
            zs.avail_out = (uInt)(cap - len);
            int rc = deflate(&zs, last ? Z_FINISH : Z_NO_FLUSH);
            assert_true(rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR);
            len = cap - zs.avail_out;
        } while (zs.avail_in > 0 || (last && zs.avail_out == 0));
    }
    deflateEnd(&zs);
    *outlen = len;
    return out;
}

static uint8_t *gzip_bytes(const void *data, size_t n, size_t *outlen)
{
    return gzip_repeat(data, n, n ? 1 : 0, outlen);
}

static void gunzip_round_trip(void **state)
{
    (void)state;
    const char *text = "{\"batch\":[{\"type\":\"track\",\"event\":\"server\"}]}";
    size_t zlen, outlen;
    uint8_t *z = gzip_bytes(text, strlen(text), &zlen), *out;

    assert_int_equal(wl_http_gunzip(z, zlen, 1 << 20, &out, &outlen), 0);
    assert_int_equal(outlen, strlen(text));
    assert_memory_equal(out, text, outlen);
    assert_int_equal(out[outlen], '\0');
    free(out);
    free(z);
}

static void gunzip_exact_cap(void **state)
{
    (void)state;
    uint8_t data[300000];
    size_t zlen, outlen;
    uint8_t *out = NULL;

    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + (i >> 9));
    uint8_t *z = gzip_bytes(data, sizeof data, &zlen);
    /* exactly the cap: accepted (past the first 64 KiB step and a doubling) */
    assert_int_equal(wl_http_gunzip(z, zlen, sizeof data, &out, &outlen), 0);
    assert_int_equal(outlen, sizeof data);
    assert_memory_equal(out, data, sizeof data);
    assert_int_equal(out[outlen], '\0');
    assert_true(malloc_usable_size(out) < sizeof data + 4096);
    free(out);
    /* one byte less: refused, nothing returned */
    out = (uint8_t *)"x";
    assert_int_equal(wl_http_gunzip(z, zlen, sizeof data - 1, &out, &outlen), -E2BIG);
    assert_null(out);
    /* an empty member with cap 0, and a byte with cap 0 */
    free(z);
    z = gzip_bytes("", 0, &zlen);
    assert_int_equal(wl_http_gunzip(z, zlen, 0, &out, &outlen), 0);
    assert_int_equal(outlen, 0);
    assert_int_equal(out[0], '\0');
    free(out);
    free(z);
    z = gzip_bytes("a", 1, &zlen);
    assert_int_equal(wl_http_gunzip(z, zlen, 0, &out, &outlen), -E2BIG);
    assert_int_equal(wl_http_gunzip(z, zlen, 1, &out, &outlen), 0);
    free(out);
    free(z);
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 64 MiB of zeros in about 64 KiB of gzip, against a 1 MiB cap: refused,
 * holding no more than the cap, for a small part of what inflating it all
 * costs (and about what an ordinary 1 MiB body costs, printed). */
static void gunzip_bomb_stops_at_cap(void **state)
{
    (void)state;
    enum { CAP = 1 << 20, ROUNDS = 10 };
    static uint8_t zeros[1 << 20], ordinary[CAP];
    size_t blen, olen, outlen;
    uint8_t *out;

    uint8_t *bomb = gzip_repeat(zeros, sizeof zeros, 64, &blen);
    assert_true(blen < 128 * 1024);
    for (size_t i = 0; i < sizeof ordinary; i++)
        ordinary[i] = (uint8_t)"{\"type\":\"track\",\"event\":\"activity\"},"[i % 37];
    uint8_t *ok = gzip_bytes(ordinary, sizeof ordinary, &olen);

    double t0 = cpu_now();
    for (int r = 0; r < ROUNDS; r++) {
        assert_int_equal(wl_http_gunzip(bomb, blen, CAP, &out, &outlen), -E2BIG);
        assert_null(out);
    }
    double t1 = cpu_now();
    for (int r = 0; r < ROUNDS; r++) {
        assert_int_equal(wl_http_gunzip(ok, olen, CAP, &out, &outlen), 0);
        assert_int_equal(outlen, CAP);
        free(out);
    }
    double t2 = cpu_now();
    for (int r = 0; r < ROUNDS; r++) {
        assert_int_equal(wl_http_gunzip(bomb, blen, 64 * CAP, &out, &outlen), 0);
        assert_int_equal(outlen, 64 * CAP);
        free(out);
    }
    double t3 = cpu_now();
    printf("gunzip: a 64 MiB bomb refused at a 1 MiB cap %.3f ms, inflated whole %.3f ms "
           "(ratio %.3f); an ordinary 1 MiB body %.3f ms\n", (t1 - t0) * 1e3 / ROUNDS,
           (t3 - t2) * 1e3 / ROUNDS, (t1 - t0) / (t3 - t2), (t2 - t1) * 1e3 / ROUNDS);
    /* the cap is 1/64 of the bomb: refusing it costs a small part of inflating it */
    assert_true(t1 - t0 < (t3 - t2) / 8);
    free(bomb);
    free(ok);
}

static void gunzip_refuses_bad_streams(void **state)
{
    (void)state;
    const char *text = "{\"batch\":[{\"type\":\"track\",\"event\":\"activity\",\"properties\":"
                       "{\"posts\":123456}}]}";
    size_t zlen, outlen, n = strlen(text);
    uint8_t *z = gzip_bytes(text, n, &zlen), *out, buf[4096];

    assert_true(zlen + 16 < sizeof buf);
    /* truncated anywhere: inside the header, the data, the trailer */
    for (size_t cut = 0; cut < zlen; cut++) {
        out = NULL;
        assert_int_equal(wl_http_gunzip(z, cut, 1 << 20, &out, &outlen), -EINVAL);
        assert_null(out);
    }
    /* corrupt: a byte flipped in the data or the CRC */
    for (size_t at = 10; at < zlen; at++) {
        memcpy(buf, z, zlen);
        buf[at] ^= 0x55;
        int rc = wl_http_gunzip(buf, zlen, 1 << 20, &out, &outlen);
        assert_true(rc == -EINVAL || rc == -E2BIG);
    }
    /* trailing garbage, and a second member */
    memcpy(buf, z, zlen);
    buf[zlen] = 'x';
    assert_int_equal(wl_http_gunzip(buf, zlen + 1, 1 << 20, &out, &outlen), -EINVAL);
    memcpy(buf + zlen, z, zlen);
    assert_int_equal(wl_http_gunzip(buf, 2 * zlen, 1 << 20, &out, &outlen), -EINVAL);
    /* not gzip: plain JSON, a zlib stream */
    assert_int_equal(wl_http_gunzip((const uint8_t *)text, n, 1 << 20, &out, &outlen), -EINVAL);
    uLongf clen = sizeof buf;
    assert_int_equal(compress(buf, &clen, (const Bytef *)text, n), Z_OK);
    assert_int_equal(wl_http_gunzip(buf, clen, 1 << 20, &out, &outlen), -EINVAL);
    free(z);
}

/* ---- the JSON bound ---- */

/* The fewest values wl_json_bound lets through (the count it makes). */
static uint64_t bound_values(const char *s)
{
    char why[96];
    for (uint64_t v = 0; v < 100000; v++)
        if (wl_json_bound(s, strlen(s), 1000, v, why, sizeof why) == 0)
            return v;
    fail_msg("no bound passes");
    return 0;
}

static unsigned bound_depth(const char *s)
{
    char why[96];
    for (unsigned d = 0; d < 2048; d++)
        if (wl_json_bound(s, strlen(s), d, UINT64_MAX, why, sizeof why) == 0)
            return d;
    fail_msg("no depth passes");
    return 0;
}

/* Values and depth of jansson's tree. */
static void tree_count(const json_t *j, unsigned level, uint64_t *values, unsigned *depth)
{
    const char *k;
    size_t i;
    json_t *v;

    (*values)++;
    if (json_is_array(j) || json_is_object(j)) {
        if (level + 1 > *depth)
            *depth = level + 1;
    }
    if (json_is_array(j))
        json_array_foreach((json_t *)j, i, v) tree_count(v, level + 1, values, depth);
    if (json_is_object(j))
        json_object_foreach((json_t *)j, k, v) tree_count(v, level + 1, values, depth);
}

static void bound_counts_what_jansson_builds(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "0", "\"x\"", "[]", "{}", "[[]]", "[1,2,3]", "{\"a\":1,\"b\":[true,false,null]}",
        "{\"a\":{\"b\":{\"c\":{}}}}",
        "[\"]]]]\", \"[[[[\", \"{{\", \"}}:,\"]",           /* structure inside strings */
        "[\"\\\"]]]]\\\\\", 1]",                             /* escaped quote, then backslash */
        "{\"k\\\"{[\":\"v\\\\\",\"\\u005b\":[{}]}",
        " { \"batch\" : [ { \"type\" : \"track\" , \"n\" : -1.5e3 } ] } ",
        "{\"messageId\":\"m\",\"sentAt\":\"2025-06-01T10:00:05Z\",\"batch\":[{\"type\":"
        "\"track\",\"properties\":{\"allowed_email_domain\":[\"a.com\",\"b.com\"]}}],"
        "\"context\":{\"library\":{\"name\":\"analytics-go\",\"version\":\"3.3.0\"}}}",
        "[[[[[[[[[[0]]]]]]]]]]",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        json_error_t e;
        json_t *j = json_loads(docs[i], JSON_DECODE_ANY, &e);
        assert_non_null(j);
        uint64_t values = 0;
        unsigned depth = 0;
        tree_count(j, 0, &values, &depth);
        json_decref(j);
        if (bound_values(docs[i]) != values || bound_depth(docs[i]) != depth)
            fail_msg("%s: bound says %" PRIu64 " values, depth %u; jansson %" PRIu64 ", %u",
                     docs[i], bound_values(docs[i]), bound_depth(docs[i]), values, depth);
    }
}

static void bound_exact_limits(void **state)
{
    (void)state;
    char why[96], s[4096];
    size_t n = 0;

    /* 32 nested arrays holding 67 more values: depth 32, 100 values */
    for (int i = 0; i < 32; i++)
        s[n++] = '[';
    for (int i = 0; i < 68; i++)
        n += (size_t)snprintf(s + n, sizeof s - n, "%s%d", i ? "," : "", i);
    for (int i = 0; i < 32; i++)
        s[n++] = ']';
    s[n] = '\0';
    assert_int_equal(wl_json_bound(s, n, 32, 100, why, sizeof why), 0);
    why[0] = '\0';
    assert_int_equal(wl_json_bound(s, n, 31, 100, why, sizeof why), -E2BIG);
    assert_string_equal(why, "JSON nested deeper than http_max_json_depth");
    assert_int_equal(wl_json_bound(s, n, 32, 99, why, sizeof why), -E2BIG);
    assert_string_equal(why, "more JSON values than http_max_json_values");
    /* the reasons never quote the text */
    assert_null(strstr(why, "["));
    /* stop at the first excess: a deep prefix is refused whatever follows */
    memset(s, '[', 3000);
    assert_int_equal(wl_json_bound(s, 3000, 1000, UINT64_MAX, why, sizeof why), -E2BIG);
    /* a larger max_depth is taken as WL_JSON_DEPTH_LIMIT */
    assert_int_equal(wl_json_bound(s, WL_JSON_DEPTH_LIMIT, 100000, UINT64_MAX, why, sizeof why),
                     0);
    assert_int_equal(wl_json_bound(s, WL_JSON_DEPTH_LIMIT + 1, 100000, UINT64_MAX, why,
                                   sizeof why), -E2BIG);
    /* brackets inside a string, unterminated: nothing counts after the quote */
    assert_int_equal(wl_json_bound("[\"[[[[[[[[[[", 12, 1, 2, why, sizeof why), 0);
    /* keys not counted, values are */
    assert_int_equal(wl_json_bound("{\"a\":1,\"b\":2}", 13, 1, 3, why, sizeof why), 0);
    assert_int_equal(wl_json_bound("{\"a\":1,\"b\":2}", 13, 1, 2, why, sizeof why), -E2BIG);
    /* strings in arrays after commas are values, not keys */
    assert_int_equal(wl_json_bound("{\"a\":[\"x\",\"y\"]}", 15, 2, 3, why, sizeof why), -E2BIG);
    /* a length-counted text: bytes past len are not read */
    assert_int_equal(wl_json_bound("[1][[[[", 3, 1, 2, why, sizeof why), 0);
}

/* ---- jansson's tree, measured ---- */

static size_t live, peak;

static void *count_malloc(size_t n)
{
    void *p = malloc(n);
    if (p != NULL) {
        live += malloc_usable_size(p) + sizeof(size_t);
        if (live > peak)
            peak = live;
    }
    return p;
}

static void count_free(void *p)
{
    if (p != NULL)
        live -= malloc_usable_size(p) + sizeof(size_t);
    free(p);
}

struct shape {
    const char *name;
    const char *open, *item, *sep, *close;  /* item may hold one %d */
};

/* The text of shape with n items. */
static char *make_shape(const struct shape *sh, int n)
{
    size_t cap = 64 + (size_t)n * (strlen(sh->item) + 16), len = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    len += (size_t)snprintf(s, cap, "%s", sh->open);
    for (int i = 0; i < n; i++) {
        if (i)
            len += (size_t)snprintf(s + len, cap - len, "%s", sh->sep);
        len += (size_t)snprintf(s + len, cap - len, sh->item, i);
    }
    snprintf(s + len, cap - len, "%s", sh->close);
    return s;
}

static uint64_t count_for(const char *s, size_t len)
{
    char why[96];
    uint64_t lo = 0, hi = UINT64_C(1) << 40;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (wl_json_bound(s, len, 2048, mid, why, sizeof why) == 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Every shape's peak during json_loadb (tree and parser; 32,769 items: just past
 * a doubling of jansson's tables, their worst) is within
 * WL_JSON_TREE_PER_VALUE x values + WL_JSON_TREE_PER_BYTE x length. */
static void tree_size_per_value(void **state)
{
    (void)state;
    static const struct shape shapes[] = {
        {"integers", "[", "%d", ",", "]"},
        {"zeros", "[", "0", ",", "]"},
        {"reals", "[", "0.5", ",", "]"},
        {"literals", "[", "true", ",", "]"},
        {"empty strings", "[", "\"\"", ",", "]"},
        {"short strings", "[", "\"%d\"", ",", "]"},
        {"empty arrays", "[", "[]", ",", "]"},
        {"empty objects", "[", "{}", ",", "]"},
        {"one-key objects", "[", "{\"a\":0}", ",", "]"},
        {"nested objects", "[", "{\"a\":{\"b\":{}}}", ",", "]"},
        {"nested arrays", "[", "[[[[[[[[]]]]]]]]", ",", "]"},
        {"keys", "{", "\"%d\":0", ",", "}"},
        {"keys to objects", "{", "\"%d\":{}", ",", "}"},
        {"keys to strings", "{", "\"%d\":\"x\"", ",", "}"},
        {"a long string", "[\"", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "", "\"]"},
        {"escaped string", "[\"", "\\u00e9\\n", "", "\"]"},
        {"malformed tail", "[", "{}", ",", ",:"},
    };
    double worst_value = 0;

    json_set_alloc_funcs(count_malloc, count_free);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        static const int sizes[] = {1, 200, 32769};
        for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
            int n = sizes[z];
            char *s = make_shape(&shapes[k], n);
            size_t len = strlen(s);
            uint64_t values = count_for(s, len);
            json_error_t e;
            live = peak = 0;
            json_t *j = json_loadb(s, len, 0, &e);
            json_decref(j);
            assert_int_equal(live, 0);
            uint64_t bound = WL_JSON_TREE_PER_VALUE * values + WL_JSON_TREE_PER_BYTE * len;
            double per = (double)((double)peak - (double)len * WL_JSON_TREE_PER_BYTE) /
                         (double)values;
            if (n > 1 && per > worst_value)
                worst_value = per;
            if (n > 1)
                printf("jansson tree: %-16s %6" PRIu64 " values %7zu B of text: peak %9zu B "
                       "(%.1f B a value, %.2f B a byte)\n", shapes[k].name, values, len, peak,
                       (double)peak / (double)values, (double)peak / (double)len);
            if (peak > bound)
                fail_msg("%s x %d: peak %zu B over the bound %" PRIu64 " B", shapes[k].name, n,
                         peak, bound);
            free(s);
        }
    }
    json_set_alloc_funcs(malloc, free);
    printf("jansson tree: worst %.1f B a value beyond %d B a byte of text\n", worst_value,
           WL_JSON_TREE_PER_BYTE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gunzip_round_trip),
        cmocka_unit_test(gunzip_exact_cap),
        cmocka_unit_test(gunzip_bomb_stops_at_cap),
        cmocka_unit_test(gunzip_refuses_bad_streams),
        cmocka_unit_test(bound_counts_what_jansson_builds),
        cmocka_unit_test(bound_exact_limits),
        cmocka_unit_test(tree_size_per_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
