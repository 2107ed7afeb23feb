/* NDJSON pings in: one JSON object per line with the proto's field names,
 * the organization as hex org_key or as org_domain hashed with the org
 * salt. Shared by `warmline send` and `warmline import`. */
#ifndef WL_NDJSON_INPUT_H
#define WL_NDJSON_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "collector/ping.h"

struct wl_ping_input {
    wl_ping *pings;
    size_t n, cap;
};

/* The org salt, read from path the first time a line needs it. */
struct wl_org_salt {
    const char *path;
    uint8_t *key;
    size_t len;
};

/* Parses every line of in (named name in messages) into out. Returns 0, or
 * WL_EXIT_USAGE / WL_EXIT_FAIL after printing "warmline CMD: NAME:LINE:
 * reason". Blank lines are skipped. */
int wl_ping_input_read(const char *cmd, FILE *in, const char *name, struct wl_org_salt *salt,
                       struct wl_ping_input *out);
void wl_ping_input_free(struct wl_ping_input *in);

/* Wipes and frees the salt. */
void wl_org_salt_free(struct wl_org_salt *salt);

#endif
