/* Pings as JSON objects with the proto's field names. One field table,
 * generated from ping.h's lists, serves both directions: wl_ping_json_add
 * here (the HTTP API, `warmline dump`) and the reader in tools/ping_json.h
 * (`warmline send` and `import`), so what is printed is what is read. */
#ifndef WL_PING_JSON_H
#define WL_PING_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ping.h"

enum wl_ping_field_kind {
    WL_PF_STRING,   /* char * */
    WL_PF_U32,
    WL_PF_U64,
    WL_PF_I64,
    WL_PF_ORG_KEY,  /* ProtobufCBinaryData: hex in JSON, "" when empty */
    WL_PF_FEATURES, /* n_features + char ** */
};

struct wl_ping_field {
    const char *name;
    enum wl_ping_field_kind kind;
    size_t off;                 /* offset in wl_ping */
};

/* Every field of a ping, in proto order. */
extern const struct wl_ping_field wl_ping_fields[];
extern const size_t wl_ping_n_fields;

/* The field's storage inside a ping, as a pointer to type. */
#define WL_PING_FIELD_AT(p, f, type) ((type *)((char *)(p) + (f)->off))
#define WL_PING_FIELD_AT_CONST(p, f, type) ((const type *)((const char *)(p) + (f)->off))

/* An edge ping's presence (ping.h) as a JSON array of names: the Ping
 * fields it carries ("registered_users", "version", "org_key"...),
 * "org_by_network" when its org_key came from the network table, and
 * "feature:<name>" for each mapped feature it sets or clears. NULL when out
 * of memory. */
json_t *wl_presence_json(uint64_t presence);

/* Adds every field of p to obj in proto order: install_id, org_key (hex,
 * "" when empty), seq, sent_at, the strings, the counts, features (an
 * array). Returns 0 or -ENOMEM. */
int wl_ping_json_add(json_t *obj, const wl_ping *p);

/* An unsigned 64-bit number: a JSON integer up to INT64_MAX, above that a
 * decimal string (jansson's integers are signed). NULL on ENOMEM. */
json_t *wl_json_u64(uint64_t v);

/* Lower-case hex of the bytes as a JSON string. NULL on ENOMEM. */
json_t *wl_json_hex(const uint8_t *b, size_t len);

/* wl_json_string_lossy: signal_json.h. */

#endif
