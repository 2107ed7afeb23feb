/* Pings as JSON objects, in both directions, with the proto's field names.
 * The field table is generated from ping.h's lists, so `dump` prints and
 * `send` reads exactly the same fields. */
#ifndef WL_PING_JSON_H
#define WL_PING_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "collector/ping.h"

/* Adds every field of p to obj in proto order: install_id, org_key (hex,
 * "" when empty), seq, sent_at, the strings, the counts, features (an
 * array). Returns 0 or -ENOMEM. */
int wl_ping_json_add(json_t *obj, const wl_ping *p);

/* Fills *p from a JSON object with the same field names; absent fields
 * keep their zero values. org_key takes 64 hex digits (or "" for none);
 * "org_domain" is accepted too and returned in *org_domain (borrowed from
 * obj) for the caller to hash, and excludes org_key. Unknown fields and
 * wrong types fail with the field named in err. Free with wl_ping_clear,
 * also after a failure. Returns 0 or -EINVAL/-ENOMEM. */
int wl_ping_from_json(const json_t *obj, wl_ping *p, const char **org_domain, char *err,
                      size_t errlen);

/* Frees what wl_ping_from_json (or the caller, with malloc) put in *p and
 * resets it to an empty ping. Does not free p itself. */
void wl_ping_clear(wl_ping *p);

/* An unsigned 64-bit number: a JSON integer up to INT64_MAX, above that a
 * decimal string (jansson's integers are signed). NULL on ENOMEM. */
json_t *wl_json_u64(uint64_t v);

/* wl_json_string_lossy: collector/signal_json.h. */

/* Lower-case hex of the bytes as a JSON string. NULL on ENOMEM. */
json_t *wl_json_hex(const uint8_t *b, size_t len);

#endif
