/* Export rows as NDJSON or CSV through one cell interface, so that a table
 * producer is written once for both formats: wl_rows_begin, one call per
 * column in the table's column order, wl_rows_end. Rows accumulate in
 * rows->buf until the caller takes them (wl_rows_take).
 *
 * NDJSON: one object per line, keys in column order, no spaces:
 *   {"ingest_seq":1,"org":"install:a","features":["x"]}\n
 * Strings are escaped by jansson (a string of printable ASCII without '"'
 * or '\\' needs no escaping and is copied as is); integers are exact
 * decimal numbers; reals print through jansson; absent values are null.
 *
 * CSV (RFC 4180): a header row of the column names, CRLF line ends, a field
 * quoted ("" for a quote) when it holds a comma, a quote, CR or LF. Arrays
 * and objects are their compact JSON text; null is an empty field.
 *
 * Strings that are not valid UTF-8 (a damaged record) have their non-ASCII
 * bytes replaced by '?' in both formats, as everywhere else in warmline. */
#ifndef WL_EXPORT_FMT_H
#define WL_EXPORT_FMT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum wl_export_format { WL_EXPORT_NDJSON, WL_EXPORT_CSV };

/* A string that need not end with a NUL. */
struct wl_str {
    const char *p;
    size_t len;
};

/* A growable byte buffer; oom is set (and sticks) when it cannot grow. */
struct wl_sbuf {
    char *p;
    size_t len, cap;
    int oom;
};

struct wl_rows {
    enum wl_export_format fmt;
    const char *const *cols;
    size_t ncols;
    size_t col;           /* cells given in the current row */
    int err;              /* 0, -ENOMEM, or -EPROTO (a row with the wrong cell count) */
    char *keys;           /* NDJSON: "\"name\":" of every column, back to back */
    size_t *key_off;      /* ncols + 1 offsets into keys */
    struct wl_sbuf buf;   /* finished rows */
    struct wl_sbuf tmp;   /* CSV: a JSON text before it is quoted */
};

/* Column names must be [a-z0-9_]+ (they are written without escaping).
 * Returns 0, -EINVAL (a bad name) or -ENOMEM. */
int wl_rows_init(struct wl_rows *r, enum wl_export_format fmt, const char *const *cols,
                 size_t ncols);
void wl_rows_free(struct wl_rows *r);

/* CSV: appends the header row; NDJSON: nothing. */
void wl_rows_header(struct wl_rows *r);

void wl_rows_begin(struct wl_rows *r);
void wl_rows_u64(struct wl_rows *r, uint64_t v);
void wl_rows_i64(struct wl_rows *r, int64_t v);
/* s may be NULL (an empty string). */
void wl_rows_str(struct wl_rows *r, const char *s, size_t len);
void wl_rows_cstr(struct wl_rows *r, const char *s);
/* The string of at most len bytes that ends at its first NUL, if any. */
void wl_rows_strz(struct wl_rows *r, const char *s, size_t len);
/* Lower-case hex of the bytes, as a string ("" when len is 0). */
void wl_rows_hex(struct wl_rows *r, const uint8_t *b, size_t len);
void wl_rows_null(struct wl_rows *r);
/* A finite real printed by jansson with this many significant digits (17:
 * exact round trip); NaN and infinities are null. */
void wl_rows_real(struct wl_rows *r, double v, int precision);
/* An array of strings (NDJSON: a JSON array; CSV: its JSON text). */
void wl_rows_str_array(struct wl_rows *r, char *const *v, size_t n);
/* The same from (pointer, length) strings, each ending at its first NUL. */
void wl_rows_strs(struct wl_rows *r, const struct wl_str *v, size_t n);
/* Any JSON value, dumped by jansson with flags (JSON_ENCODE_ANY is added).
 * CSV: a string is its text, null empty, a number its JSON text, an array
 * or object its JSON text. */
void wl_rows_json(struct wl_rows *r, const json_t *v, size_t flags);
/* Ends the row: returns r->err (0 when the row had exactly ncols cells and
 * nothing failed). After an error the caller drops the buffer. */
int wl_rows_end(struct wl_rows *r);

/* Empties the buffer of finished rows (after the caller wrote them). */
static inline void wl_rows_take(struct wl_rows *r)
{
    r->buf.len = 0;
}

/* The JSON text of a string as jansson escapes it, appended to sb (used for
 * NDJSON strings; exposed for the unit test). */
void wl_sbuf_json_str(struct wl_sbuf *sb, const char *s, size_t len);

#endif
