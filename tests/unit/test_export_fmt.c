/* Unit tests for the export's rows and files (tools/export_fmt.h,
 * export_gz.h, export_table.h's columns): NDJSON strings are exactly what
 * jansson prints (the verbatim fast path included), CSV fields read back
 * through the project's RFC 4180 reader, rows have exactly their columns,
 * gzip output is deterministic and inflates back, and the pings columns of
 * export schema 2 cover every ping field and every StoredPing field. The tools/ sources are not in
 * wl_core, so they are compiled into this test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <unistd.h>
#include <zlib.h>

#include "tools/export_fmt.c"
#include "tools/export_gz.c"
#include "tools/export_table.c"

#include "api_csv.h"

/* ---- NDJSON strings ---- */

static const struct {
    const char *s;
    size_t len;
} strings[] = {
    {"", 0},
    {"plain ascii 0123", 16},
    {"slash / stays", 13},
    {"quote \" inside", 14},
    {"back\\slash", 10},
    {"tab\there", 8},
    {"new\nline\r\n", 10},
    {"\x01\x1f ctl", 6},
    {"del \x7f", 5},
    {"\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14},
    {"bad \xff utf8 \xc3", 12},
    {"nul \0 inside", 12},
};

static void test_json_strings_match_jansson(void **state)
{
    (void)state;
    int fails = 0;
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        struct wl_sbuf sb = {0};
        wl_sbuf_json_str(&sb, strings[i].s, strings[i].len);
        json_t *j = wl_json_string_lossy(strings[i].s, strings[i].len);
        char *want = json_dumps(j, JSON_ENCODE_ANY);
        if (sb.oom || sb.len != strlen(want) || memcmp(sb.p, want, sb.len) != 0) {
            print_error("string %zu: got %.*s, want %s\n", i, (int)sb.len, sb.p, want);
            fails++;
        }
        free(want);
        json_decref(j);
        free(sb.p);
    }
    assert_int_equal(fails, 0);
}

/* ---- rows ---- */

static const char *const cols[] = {"u", "i", "s", "h", "n", "r", "a", "j"};
#define NCOLS (sizeof cols / sizeof cols[0])

static void one_row(struct wl_rows *r, const char *s, size_t slen, uint64_t u)
{
    static const uint8_t bytes[] = {0x00, 0xab, 0xff};
    char *arr[] = {"x", "y,\"z\"", NULL};
    json_t *j = json_pack("{s:i,s:[s,n]}", "k", 1, "l", "v");
    wl_rows_begin(r);
    wl_rows_u64(r, u);
    wl_rows_i64(r, INT64_MIN);
    wl_rows_str(r, s, slen);
    wl_rows_hex(r, bytes, sizeof bytes);
    wl_rows_null(r);
    wl_rows_real(r, 0.1, 17);
    wl_rows_str_array(r, arr, 3);
    wl_rows_json(r, j, JSON_COMPACT);
    json_decref(j);
}

static void test_ndjson_row_parses(void **state)
{
    (void)state;
    struct wl_rows r;
    json_error_t jerr;
    assert_int_equal(wl_rows_init(&r, WL_EXPORT_NDJSON, cols, NCOLS), 0);
    wl_rows_header(&r);
    assert_int_equal(r.buf.len, 0);
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        wl_rows_take(&r);
        one_row(&r, strings[i].s, strings[i].len, INT64_MAX);
        assert_int_equal(wl_rows_end(&r), 0);
        assert_true(r.buf.len > 0 && r.buf.p[r.buf.len - 1] == '\n');
        assert_null(memchr(r.buf.p, '\n', r.buf.len - 1));
        json_t *o = json_loadb(r.buf.p, r.buf.len, JSON_ALLOW_NUL, &jerr);
        if (o == NULL)
            fail_msg("row %zu: %s: %.*s", i, jerr.text, (int)r.buf.len, r.buf.p);
        /* Keys in column order. */
        const char *key;
        json_t *v;
        size_t k = 0;
        json_object_foreach(o, key, v) assert_string_equal(key, cols[k++]);
        assert_int_equal(k, NCOLS);
        json_t *want = wl_json_string_lossy(strings[i].s, strings[i].len);
        assert_true(json_equal(json_object_get(o, "s"), want));
        json_decref(want);
        assert_string_equal(json_string_value(json_object_get(o, "h")), "00abff");
        assert_true(json_is_null(json_object_get(o, "n")));
        assert_true(json_real_value(json_object_get(o, "r")) == 0.1);
        assert_string_equal(json_string_value(json_array_get(json_object_get(o, "a"), 1)),
                            "y,\"z\"");
        assert_string_equal(json_string_value(json_array_get(json_object_get(o, "a"), 2)), "");
        json_decref(o);
    }
    /* jansson's integers are signed: the top of uint64 is checked as text. */
    wl_rows_take(&r);
    one_row(&r, "", 0, UINT64_MAX);
    assert_int_equal(wl_rows_end(&r), 0);
    assert_non_null(strstr(r.buf.p, "{\"u\":18446744073709551615,"));
    assert_non_null(strstr(r.buf.p, "\"i\":-9223372036854775808,"));
    wl_rows_free(&r);
}

static void test_csv_row_reads_back(void **state)
{
    (void)state;
    struct wl_rows r;
    struct wl_csv csv;
    char *f[NCOLS + 1], err[200];
    unsigned line;
    assert_int_equal(wl_rows_init(&r, WL_EXPORT_CSV, cols, NCOLS), 0);
    wl_rows_header(&r);
    assert_int_equal(r.buf.len, strlen("u,i,s,h,n,r,a,j\r\n"));
    assert_memory_equal(r.buf.p, "u,i,s,h,n,r,a,j\r\n", r.buf.len);
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        if (memchr(strings[i].s, '\0', strings[i].len) != NULL)
            continue; /* the reader refuses NUL bytes; NDJSON covers them */
        wl_rows_take(&r);
        wl_rows_header(&r);
        one_row(&r, strings[i].s, strings[i].len, UINT64_MAX);
        assert_int_equal(wl_rows_end(&r), 0);
        assert_memory_equal(r.buf.p + r.buf.len - 2, "\r\n", 2);
        char *copy = malloc(r.buf.len + 1);
        memcpy(copy, r.buf.p, r.buf.len);
        wl_csv_init(&csv, copy, r.buf.len);
        assert_int_equal(wl_csv_next(&csv, f, NCOLS + 1, &line, err, sizeof err), (int)NCOLS);
        int n = wl_csv_next(&csv, f, NCOLS + 1, &line, err, sizeof err);
        if (n != (int)NCOLS)
            fail_msg("row %zu: %d fields (%s): %.*s", i, n, n < 0 ? err : "",
                     (int)r.buf.len, r.buf.p);
        assert_string_equal(f[0], "18446744073709551615");
        assert_string_equal(f[1], "-9223372036854775808");
        json_t *want = wl_json_string_lossy(strings[i].s, strings[i].len);
        assert_string_equal(f[2], json_string_value(want));
        json_decref(want);
        assert_string_equal(f[3], "00abff");
        assert_string_equal(f[4], "");
        assert_string_equal(f[5], "0.10000000000000001");
        assert_string_equal(f[6], "[\"x\",\"y,\\\"z\\\"\",\"\"]");
        assert_string_equal(f[7], "{\"k\":1,\"l\":[\"v\",null]}");
        assert_int_equal(wl_csv_next(&csv, f, NCOLS + 1, &line, err, sizeof err), 0);
        free(copy);
    }
    wl_rows_free(&r);
}

static void test_integers(void **state)
{
    (void)state;
    static const char *const one[] = {"n"};
    struct wl_rows r;
    char want[64];
    assert_int_equal(wl_rows_init(&r, WL_EXPORT_CSV, one, 1), 0);
    uint64_t x = 88172645463325252ULL; /* xorshift for a spread of magnitudes */
    for (int i = 0; i < 20000; i++) {
        uint64_t v;
        if (i < 1200) {
            v = (uint64_t)i;
        } else if (i < 1300) { /* 10^k - 1, 10^k, 10^k + 1 */
            uint64_t p = 1;
            for (int k = 0; k < (i - 1200) / 5 && p <= UINT64_MAX / 10; k++)
                p *= 10;
            v = p + (uint64_t)((i % 3) - 1);
        } else {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            v = x >> (x % 64);
        }
        wl_rows_take(&r);
        wl_rows_begin(&r);
        if (i % 2 == 0) {
            wl_rows_u64(&r, v);
            snprintf(want, sizeof want, "%llu\r\n", (unsigned long long)v);
        } else {
            wl_rows_i64(&r, -(int64_t)(v >> 1));
            snprintf(want, sizeof want, "%lld\r\n", -(long long)(v >> 1));
        }
        assert_int_equal(wl_rows_end(&r), 0);
        if (r.buf.len != strlen(want) || memcmp(r.buf.p, want, r.buf.len) != 0)
            fail_msg("got %.*s want %s", (int)r.buf.len, r.buf.p, want);
    }
    wl_rows_free(&r);
}

static void test_csv_quoting(void **state)
{
    (void)state;
    static const char *const one[] = {"c"};
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"plain", "plain\r\n"},
        {"", "\r\n"},
        {"a,b", "\"a,b\"\r\n"},
        {"say \"hi\"", "\"say \"\"hi\"\"\"\r\n"},
        {"two\nlines", "\"two\nlines\"\r\n"},
        {"cr\r", "\"cr\r\"\r\n"},
        {" spaces ", " spaces \r\n"},
        {"\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9\r\n"},
        {"bad\xff,x", "\"bad?,x\"\r\n"},
        /* warehouse exports stay byte-exact (joins): no formula escaping,
         * unlike the CLI's --csv (test_table.c) */
        {"=1+2", "=1+2\r\n"},
        {"+1", "+1\r\n"},
        {"-12", "-12\r\n"},
        {"@SUM(A1)", "@SUM(A1)\r\n"},
        {"\tx", "\tx\r\n"},
        {"=a,b", "\"=a,b\"\r\n"},
    };
    struct wl_rows r;
    assert_int_equal(wl_rows_init(&r, WL_EXPORT_CSV, one, 1), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wl_rows_take(&r);
        wl_rows_begin(&r);
        wl_rows_cstr(&r, cases[i].in);
        assert_int_equal(wl_rows_end(&r), 0);
        assert_int_equal(r.buf.len, strlen(cases[i].want));
        assert_memory_equal(r.buf.p, cases[i].want, r.buf.len);
    }
    wl_rows_free(&r);
}

static void test_cell_count_checked(void **state)
{
    (void)state;
    static const char *const two[] = {"a", "b"};
    struct wl_rows r;
    assert_int_equal(wl_rows_init(&r, WL_EXPORT_NDJSON, two, 2), 0);
    wl_rows_begin(&r);
    wl_rows_u64(&r, 1);
    assert_int_equal(wl_rows_end(&r), -EPROTO);
    wl_rows_free(&r);
    assert_int_equal(wl_rows_init(&r, WL_EXPORT_CSV, two, 2), 0);
    wl_rows_begin(&r);
    wl_rows_u64(&r, 1);
    wl_rows_u64(&r, 2);
    wl_rows_u64(&r, 3);
    assert_int_equal(wl_rows_end(&r), -EPROTO);
    wl_rows_free(&r);

    static const char *const bad1[] = {"Upper"}, *const bad2[] = {"a\"b"}, *const bad3[] = {""};
    assert_int_equal(wl_rows_init(&r, WL_EXPORT_NDJSON, bad1, 1), -EINVAL);
    assert_int_equal(wl_rows_init(&r, WL_EXPORT_NDJSON, bad2, 1), -EINVAL);
    assert_int_equal(wl_rows_init(&r, WL_EXPORT_NDJSON, bad3, 1), -EINVAL);
}

/* ---- gzip ---- */

/* Compresses in into a file, written in pieces of growing sizes (step 1) or
 * all at once (step 0), and returns the file's bytes. */
static unsigned char *gz_file(const void *in, size_t len, size_t step, size_t *outlen,
                              char sha[65], uint64_t *bytes)
{
    char path[] = "/tmp/wl-test-export-gz-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    struct wl_gz *gz = malloc(sizeof *gz);
    assert_int_equal(wl_gz_open(gz, fd, WL_EXPORT_GZ_LEVEL), 0);
    size_t off = 0;
    while (off < len) {
        size_t n = step == 0 || len - off < step ? len - off : step;
        assert_int_equal(wl_gz_write(gz, (const char *)in + off, n), 0);
        off += n;
        step = step * 7 + 3;
    }
    assert_int_equal(wl_gz_finish(gz, bytes, sha), 0);
    free(gz);
    off_t size = lseek(fd, 0, SEEK_END);
    unsigned char *out = malloc((size_t)size);
    assert_int_equal(pread(fd, out, (size_t)size, 0), size);
    close(fd);
    *outlen = (size_t)size;
    return out;
}

static void test_gzip_deterministic(void **state)
{
    (void)state;
    size_t len = 1 << 20, n1, n2;
    char *in = malloc(len), sha1[65], sha2[65];
    uint64_t b1, b2;
    for (size_t i = 0; i < len; i++)
        in[i] = "{\"ingest_seq\":12,\"org\":\"abc\"}\n"[i % 31] ^ (char)(i % 3 == 0 && i % 17 == 0);
    /* Fed in uneven pieces or at once: the same bytes (the input is
     * compressed in fixed pieces whatever the writes were). */
    unsigned char *a = gz_file(in, len, 1, &n1, sha1, &b1);
    unsigned char *b = gz_file(in, len, 0, &n2, sha2, &b2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    assert_string_equal(sha1, sha2);
    assert_int_equal(b1, n1);
    /* The header: magic, deflate, no flags, mtime 0, OS unknown. */
    static const unsigned char hdr[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0};
    assert_memory_equal(a, hdr, sizeof hdr);
    assert_int_equal(a[9], 255);
    /* The sha256 is of the bytes written. */
    unsigned char d[crypto_hash_sha256_BYTES];
    char hex[65];
    crypto_hash_sha256(d, a, n1);
    sodium_bin2hex(hex, sizeof hex, d, sizeof d);
    assert_string_equal(hex, sha1);
    /* It inflates back, through zlib. */
    z_stream zs = {0};
    char *back = malloc(len + 1);
    assert_int_equal(inflateInit2(&zs, 16 + 15), Z_OK);
    zs.next_in = a;
    zs.avail_in = (uInt)n1;
    zs.next_out = (unsigned char *)back;
    zs.avail_out = (uInt)len + 1;
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    assert_int_equal(zs.total_out, len);
    assert_memory_equal(back, in, len);
    inflateEnd(&zs);
    free(back);
    free(a);
    free(b);
    free(in);
}

/* ---- columns ---- */

static void test_ping_columns_cover_every_ping_field(void **state)
{
    (void)state;
    /* Export schema 2 has every ping field and every StoredPing field (the
     * ping itself as its fields) but an edge ping's merge (latest: the
     * install's state, not what was sent); a new field in either proto
     * (and the shared table) fails here: export it and move
     * WL_EXPORT_SCHEMA. */
    static const char *const stored[] = {"ingest_seq", "received_at", "event_at", "org",
                                         "source", "presence"};
    const struct wl_export_table *t = wl_export_table_find("pings");
    assert_non_null(t);
    assert_int_equal(t->ncols, PING_STORED + wl_ping_n_fields);
    assert_int_equal(PING_STORED, sizeof stored / sizeof stored[0]);
    for (size_t i = 0; i < PING_STORED; i++)
        assert_string_equal(t->cols[i], stored[i]);
    assert_int_equal(warmline__store__v1__stored_ping__descriptor.n_fields, PING_STORED + 2);
    for (size_t i = 0; i < wl_ping_n_fields; i++)
        assert_string_equal(t->cols[PING_STORED + i], wl_ping_fields[i].name);
    assert_int_equal(WL_EXPORT_SCHEMA, 2);
    for (size_t k = 0; k < wl_export_n_tables; k++) {
        struct wl_rows r;
        assert_int_equal(wl_rows_init(&r, WL_EXPORT_CSV, wl_export_tables[k].cols,
                                      wl_export_tables[k].ncols), 0);
        wl_rows_free(&r);
    }
    assert_null(wl_export_table_find("orgs"));
    assert_non_null(wl_export_table_find("accounts"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_strings_match_jansson),
        cmocka_unit_test(test_ndjson_row_parses),
        cmocka_unit_test(test_csv_row_reads_back),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_csv_quoting),
        cmocka_unit_test(test_cell_count_checked),
        cmocka_unit_test(test_gzip_deterministic),
        cmocka_unit_test(test_ping_columns_cover_every_ping_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
