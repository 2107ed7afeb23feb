/* An HTTP request body before it is read: gzip inflated under a cap, and a
 * JSON text's size bounded before jansson builds a tree of it.
 *
 * Pure functions, any thread, no globals. The HTTP ingest listener calls
 * them on libmicrohttpd's threads: first wl_http_gunzip when (and only when)
 * Content-Encoding says gzip, then wl_json_bound, then json_loadb.
 *
 * What they bound (issue 12: no input costs more than its size):
 * - wl_http_gunzip holds at most cap + 1 bytes of output plus zlib's state
 *   (about 7 KiB, 32 KiB of window), and stops the moment the output would
 *   pass cap: a gzip bomb costs cap bytes and the CPU of inflating cap bytes.
 * - wl_json_bound reads the text once, in constant memory, and refuses it
 *   (before any tree exists) when it nests deeper than max_depth or holds
 *   more than max_values values. A text it passes becomes a jansson tree of
 *   at most WL_JSON_TREE_PER_VALUE x values + WL_JSON_TREE_PER_BYTE x its
 *   length bytes, peak during json_loadb included, as malloc holds them
 *   (glibc's chunk header counted): measured by tests/unit/test_http_body.c
 *   with a counting allocator (json_set_alloc_funcs) over the shapes that
 *   cost most per value ("[{},{},...]", "[[],[],...]", objects of short
 *   keys, strings, numbers, each of 32,769 items: just past a doubling of
 *   jansson's tables). Worst measured: 320 B a value beyond 3 B a byte of
 *   text, for {"1":{},"2":{},...}; the constant leaves 20 % over it. With
 *   the defaults (http_max_json_values 100,000, http_max_inflated_bytes
 *   2 MiB) a body's tree stays under 43 MiB. jansson's objects hash keys
 *   under a random seed (json_object_seed on first use), so colliding keys
 *   cannot be computed. */
#ifndef WL_HTTP_BODY_H
#define WL_HTTP_BODY_H

#include <stddef.h>
#include <stdint.h>

/* Measured worst cases (see above); the unit test fails if jansson grows. */
#define WL_JSON_TREE_PER_VALUE 384
#define WL_JSON_TREE_PER_BYTE 3

/* Nesting wl_json_bound can follow: a larger max_depth is taken as this
 * (jansson itself refuses deeper than 2048). */
#define WL_JSON_DEPTH_LIMIT 2048

/* Inflates one gzip member (RFC 1952, zlib's inflateInit2 with 16 +
 * MAX_WBITS; no zlib or raw deflate) into a malloc'd buffer of at most
 * cap + 1 bytes, NUL-terminated: out[outlen] == '\0', outlen <= cap. The
 * buffer grows in steps (64 KiB, doubling), never past cap + 1.
 * Returns 0 (*out owned by the caller), -E2BIG the moment the output would
 * pass cap, -EINVAL for a corrupt or truncated stream, an empty input, or
 * bytes after the member's trailer (a second, concatenated member included:
 * neither Rudder client sends one), -ENOMEM. On error *out is NULL. */
int wl_http_gunzip(const uint8_t *in, size_t len, size_t cap, uint8_t **out, size_t *outlen);

/* One linear pass over the JSON text s[0..len) that counts nesting depth
 * (open arrays and objects) and values (each array, object, string, number,
 * true, false and null; object keys are not values), following strings and
 * their escapes so that brackets, braces and quotes inside a string do not
 * count. Not a parser: text it passes may still be malformed (jansson
 * refuses it then), but everything jansson builds from it, even the part of
 * a malformed text it reads before failing, is within the counts.
 * Returns 0, or -E2BIG with a fixed reason in why ("JSON nested deeper than
 * http_max_json_depth" or "more JSON values than http_max_json_values"):
 * a depth of exactly max_depth and exactly max_values values pass. */
int wl_json_bound(const char *s, size_t len, unsigned max_depth, uint64_t max_values,
                  char *why, size_t whylen);

#endif
