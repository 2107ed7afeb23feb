#include "export_fmt.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "collector/ping.h"
#include "collector/signal_json.h"

/* ---- the byte buffer ------------------------------------------------------ */

static int sb_grow(struct wl_sbuf *sb, size_t more)
{
    if (sb->oom)
        return -ENOMEM;
    size_t cap = sb->cap ? sb->cap : 4096;
    while (cap - sb->len < more)
        cap *= 2;
    char *p = realloc(sb->p, cap);
    if (p == NULL) {
        sb->oom = 1;
        return -ENOMEM;
    }
    sb->p = p;
    sb->cap = cap;
    return 0;
}

/* Room for more bytes: 0, or -ENOMEM (oom is set and sticks). */
static inline int sb_reserve(struct wl_sbuf *sb, size_t more)
{
    if (__builtin_expect(sb->cap - sb->len >= more && !sb->oom, 1))
        return 0;
    return sb_grow(sb, more);
}

static inline void sb_put(struct wl_sbuf *sb, const void *s, size_t n)
{
    if (sb_reserve(sb, n) == 0) {
        memcpy(sb->p + sb->len, s, n);
        sb->len += n;
    }
}

static inline void sb_putc(struct wl_sbuf *sb, char c)
{
    if (sb_reserve(sb, 1) == 0)
        sb->p[sb->len++] = c;
}

static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static inline unsigned u64_digits(uint64_t v)
{
    unsigned n = 1;
    for (;;) {
        if (v < 10)
            return n;
        if (v < 100)
            return n + 1;
        if (v < 1000)
            return n + 2;
        if (v < 10000)
            return n + 3;
        v /= 10000;
        n += 4;
    }
}

/* Decimal digits, written in place from the last pair to the first. */
static inline void sb_u64(struct wl_sbuf *sb, uint64_t v)
{
    if (sb_reserve(sb, 20) != 0)
        return;
    unsigned n = u64_digits(v);
    char *e = sb->p + sb->len + n;
    sb->len += n;
    while (v >= 100000000) {
        /* Eight digits at a time, as four pairs that do not wait on each
         * other (timestamps and sequences have 13 to 16 digits). */
        uint32_t lo = (uint32_t)(v % 100000000), a = lo / 10000, b = lo % 10000;
        v /= 100000000;
        memcpy(e - 8, digit_pairs + 2 * (a / 100), 2);
        memcpy(e - 6, digit_pairs + 2 * (a % 100), 2);
        memcpy(e - 4, digit_pairs + 2 * (b / 100), 2);
        memcpy(e - 2, digit_pairs + 2 * (b % 100), 2);
        e -= 8;
    }
    while (v >= 100) {
        e -= 2;
        memcpy(e, digit_pairs + 2 * (v % 100), 2);
        v /= 100;
    }
    if (v >= 10) {
        e[-1] = (char)('0' + v % 10);
        e[-2] = (char)('0' + v / 10);
    } else {
        e[-1] = (char)('0' + v);
    }
}

static inline void sb_i64(struct wl_sbuf *sb, int64_t v)
{
    if (v < 0) {
        sb_putc(sb, '-');
        sb_u64(sb, (uint64_t)0 - (uint64_t)v);
    } else {
        sb_u64(sb, (uint64_t)v);
    }
}

/* Appends jansson's dump of v (JSON_ENCODE_ANY added). */
static void sb_dump(struct wl_sbuf *sb, const json_t *v, size_t flags)
{
    if (v == NULL) {
        sb->oom = 1;
        return;
    }
    size_t avail = sb->oom ? 0 : sb->cap - sb->len;
    size_t need = json_dumpb(v, sb->oom ? NULL : sb->p + sb->len, avail,
                             flags | JSON_ENCODE_ANY);
    if (need == 0) { /* jansson failed (out of memory) */
        sb->oom = 1;
        return;
    }
    if (need > avail) {
        if (sb_reserve(sb, need) != 0)
            return;
        json_dumpb(v, sb->p + sb->len, need, flags | JSON_ENCODE_ANY);
    }
    sb->len += need;
}

/* 1 for the bytes JSON shows as they are: printable ASCII but '"' and '\\'. */
static const uint8_t json_plain[256] = {
    [0x20] = 1, [0x21] = 1, [0x23 ... 0x5b] = 1, [0x5d ... 0x7e] = 1,
};

/* 1 when JSON shows the string as it is. Anything else goes through
 * jansson's escaping. */
static inline int json_verbatim(const char *s, size_t len)
{
    unsigned ok = 1;
    for (size_t i = 0; i < len; i++)
        ok &= json_plain[(unsigned char)s[i]];
    return (int)ok;
}

/* Appends "s" when JSON shows s as it is, copying and checking in one pass;
 * returns 0, or -1 (nothing appended) when s needs escaping. */
static inline int json_str_plain(struct wl_sbuf *sb, const char *s, size_t len)
{
    if (sb_reserve(sb, len + 2) != 0)
        return 0;
    char *o = sb->p + sb->len;
    unsigned ok = 1;
    o[0] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        ok &= json_plain[c];
        o[1 + i] = (char)c;
    }
    if (!ok)
        return -1;
    o[1 + len] = '"';
    sb->len += len + 2;
    return 0;
}

void wl_sbuf_json_str(struct wl_sbuf *sb, const char *s, size_t len)
{
    if (s == NULL)
        len = 0;
    if (json_str_plain(sb, s, len) == 0)
        return;
    json_t *j = wl_json_string_lossy(s, len);
    sb_dump(sb, j, 0);
    json_decref(j);
}

/* ---- CSV fields ------------------------------------------------------------ */

static void csv_field(struct wl_sbuf *sb, const char *s, size_t len)
{
    int quote = 0;
    size_t quotes = 0;
    int ascii = 1;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ',' || c == '\r' || c == '\n')
            quote = 1;
        else if (c == '"')
            quote = 1, quotes++;
        else if (c >= 0x80)
            ascii = 0;
    }
    int lossy = !ascii && !wl_utf8_valid(s, len);
    if (!quote && !lossy) {
        sb_put(sb, s, len);
        return;
    }
    if (sb_reserve(sb, len + quotes + 2) != 0)
        return;
    char *o = sb->p + sb->len;
    if (quote)
        *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            *o++ = '"';
        *o++ = lossy && c >= 0x80 ? '?' : (char)c;
    }
    if (quote)
        *o++ = '"';
    sb->len = (size_t)(o - sb->p);
}

/* ---- rows ------------------------------------------------------------------- */

/* The two lower-case hex digits of every byte. */
#define HEX2(b) {"0123456789abcdef"[(b) >> 4], "0123456789abcdef"[(b) & 15]}
#define HEX2x4(b) HEX2(b), HEX2((b) + 1), HEX2((b) + 2), HEX2((b) + 3)
#define HEX2x16(b) HEX2x4(b), HEX2x4((b) + 4), HEX2x4((b) + 8), HEX2x4((b) + 12)
#define HEX2x64(b) HEX2x16(b), HEX2x16((b) + 16), HEX2x16((b) + 32), HEX2x16((b) + 48)
static const char hex_pairs[256][2] = {HEX2x64(0), HEX2x64(64), HEX2x64(128), HEX2x64(192)};

/* NDJSON keys are copied KEY_COPY bytes at a time when they fit. */
#define KEY_COPY 32

int wl_rows_init(struct wl_rows *r, enum wl_export_format fmt, const char *const *cols,
                 size_t ncols)
{
    size_t total = 0;

    memset(r, 0, sizeof *r);
    r->fmt = fmt;
    r->cols = cols;
    r->ncols = ncols;
    for (size_t i = 0; i < ncols; i++) {
        const char *c = cols[i];
        if (c[0] == '\0')
            return -EINVAL;
        for (const char *p = c; *p; p++) {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
                return -EINVAL;
        }
        total += strlen(c) + 4;
    }
    r->keys = malloc(total + KEY_COPY + 1);
    r->key_off = malloc((ncols + 1) * sizeof *r->key_off);
    if (r->keys == NULL || r->key_off == NULL) {
        wl_rows_free(r);
        return -ENOMEM;
    }
    size_t off = 0;
    for (size_t i = 0; i < ncols; i++) {
        r->key_off[i] = off;
        off += (size_t)sprintf(r->keys + off, "%s\"%s\":", i > 0 ? "," : "", cols[i]);
    }
    r->key_off[ncols] = off;
    memset(r->keys + off, 0, KEY_COPY + 1);
    return 0;
}

void wl_rows_free(struct wl_rows *r)
{
    free(r->keys);
    free(r->key_off);
    free(r->buf.p);
    free(r->tmp.p);
    memset(r, 0, sizeof *r);
}

void wl_rows_header(struct wl_rows *r)
{
    if (r->fmt != WL_EXPORT_CSV)
        return;
    for (size_t i = 0; i < r->ncols; i++) {
        if (i > 0)
            sb_putc(&r->buf, ',');
        sb_put(&r->buf, r->cols[i], strlen(r->cols[i]));
    }
    sb_put(&r->buf, "\r\n", 2);
}

void wl_rows_begin(struct wl_rows *r)
{
    r->col = 0;
    if (r->fmt == WL_EXPORT_NDJSON)
        sb_putc(&r->buf, '{');
}

/* Opens the next cell: its separator and, in NDJSON, its key. Returns 0, or
 * -1 when the row already has every column (the cell is dropped). */
static inline int cell(struct wl_rows *r)
{
    if (r->col >= r->ncols) {
        r->err = -EPROTO;
        return -1;
    }
    size_t i = r->col++;
    if (r->fmt == WL_EXPORT_NDJSON) {
        /* ',' (but first) and "name": a fixed-size copy when it fits (keys
         * is padded for it), cheaper than a copy of the exact length. */
        size_t off = r->key_off[i], n = r->key_off[i + 1] - off;
        if (sb_reserve(&r->buf, n + KEY_COPY) == 0) {
            if (n <= KEY_COPY)
                memcpy(r->buf.p + r->buf.len, r->keys + off, KEY_COPY);
            else
                memcpy(r->buf.p + r->buf.len, r->keys + off, n);
            r->buf.len += n;
        }
    } else if (i > 0) {
        sb_putc(&r->buf, ',');
    }
    return 0;
}

void wl_rows_u64(struct wl_rows *r, uint64_t v)
{
    if (cell(r) == 0)
        sb_u64(&r->buf, v);
}

void wl_rows_i64(struct wl_rows *r, int64_t v)
{
    if (cell(r) == 0)
        sb_i64(&r->buf, v);
}

void wl_rows_str(struct wl_rows *r, const char *s, size_t len)
{
    if (cell(r) != 0)
        return;
    if (s == NULL)
        len = 0;
    if (r->fmt == WL_EXPORT_NDJSON)
        wl_sbuf_json_str(&r->buf, s, len);
    else
        csv_field(&r->buf, s, len);
}

void wl_rows_cstr(struct wl_rows *r, const char *s)
{
    wl_rows_str(r, s, s ? strlen(s) : 0);
}

void wl_rows_strz(struct wl_rows *r, const char *s, size_t len)
{
    if (s == NULL)
        len = 0;
    /* A NUL is not plain JSON: the string is cut there on the slow path. */
    if (r->fmt == WL_EXPORT_NDJSON && r->col < r->ncols) {
        size_t mark = r->buf.len;
        cell(r);
        if (json_str_plain(&r->buf, s, len) == 0)
            return;
        r->buf.len = mark;
        r->col--;
    }
    wl_rows_str(r, s, len > 0 ? strnlen(s, len) : 0);
}

void wl_rows_hex(struct wl_rows *r, const uint8_t *b, size_t len)
{
    if (cell(r) != 0)
        return;
    int q = r->fmt == WL_EXPORT_NDJSON;
    if (sb_reserve(&r->buf, 2 * len + 2) != 0)
        return;
    char *o = r->buf.p + r->buf.len;
    if (q)
        *o++ = '"';
    for (size_t i = 0; i < len; i++, o += 2)
        memcpy(o, hex_pairs[b[i]], 2);
    if (q)
        *o++ = '"';
    r->buf.len = (size_t)(o - r->buf.p);
}

void wl_rows_null(struct wl_rows *r)
{
    if (cell(r) == 0 && r->fmt == WL_EXPORT_NDJSON)
        sb_put(&r->buf, "null", 4);
}

void wl_rows_real(struct wl_rows *r, double v, int precision)
{
    if (!isfinite(v)) {
        wl_rows_null(r);
        return;
    }
    if (cell(r) != 0)
        return;
    json_t *j = json_real(v);
    sb_dump(&r->buf, j, JSON_REAL_PRECISION(precision));
    json_decref(j);
}

/* A JSON array of n strings: C strings (v) or (pointer, length) ones (w). */
static void json_str_array(struct wl_sbuf *sb, char *const *v, const struct wl_str *w, size_t n)
{
    sb_putc(sb, '[');
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            sb_putc(sb, ',');
        if (w != NULL) {
            if (json_str_plain(sb, w[i].p, w[i].len) != 0) /* a NUL ends it */
                wl_sbuf_json_str(sb, w[i].p, strnlen(w[i].p, w[i].len));
        } else
            wl_sbuf_json_str(sb, v[i], v[i] ? strlen(v[i]) : 0);
    }
    sb_putc(sb, ']');
}

/* CSV: the JSON text built in r->tmp becomes one field. */
static void csv_from_tmp(struct wl_rows *r)
{
    if (r->tmp.oom) {
        r->buf.oom = 1;
        return;
    }
    csv_field(&r->buf, r->tmp.p, r->tmp.len);
}

static void str_array_cell(struct wl_rows *r, char *const *v, const struct wl_str *w, size_t n)
{
    if (cell(r) != 0)
        return;
    if (r->fmt == WL_EXPORT_NDJSON) {
        json_str_array(&r->buf, v, w, n);
        return;
    }
    r->tmp.len = 0;
    json_str_array(&r->tmp, v, w, n);
    csv_from_tmp(r);
}

void wl_rows_str_array(struct wl_rows *r, char *const *v, size_t n)
{
    str_array_cell(r, v, NULL, n);
}

void wl_rows_strs(struct wl_rows *r, const struct wl_str *v, size_t n)
{
    str_array_cell(r, NULL, v, n);
}

void wl_rows_json(struct wl_rows *r, const json_t *v, size_t flags)
{
    if (cell(r) != 0)
        return;
    if (r->fmt == WL_EXPORT_NDJSON) {
        sb_dump(&r->buf, v, flags);
        return;
    }
    if (v != NULL && json_is_null(v))
        return;
    if (v != NULL && json_is_string(v)) {
        csv_field(&r->buf, json_string_value(v), json_string_length(v));
        return;
    }
    r->tmp.len = 0;
    sb_dump(&r->tmp, v, flags);
    csv_from_tmp(r);
}

int wl_rows_end(struct wl_rows *r)
{
    if (r->col != r->ncols)
        r->err = -EPROTO;
    if (r->fmt == WL_EXPORT_NDJSON)
        sb_put(&r->buf, "}\n", 2);
    else
        sb_put(&r->buf, "\r\n", 2);
    if (r->buf.oom && r->err == 0)
        r->err = -ENOMEM;
    return r->err;
}
