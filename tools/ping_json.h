/* Pings read from JSON objects (`warmline send`, `import`): the other
 * direction of collector/ping_json.h, over the same field table, so `dump`
 * prints and `send` reads exactly the same fields. */
#ifndef WL_TOOLS_PING_JSON_H
#define WL_TOOLS_PING_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "collector/ping_json.h"

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

#endif
