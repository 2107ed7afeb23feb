/* A CSV file replacing a whole table through the API (PUT), as `warmline
 * named-accounts import` and `warmline networks import` do: the file read
 * whole (bounded), sent, and the API's {"imported","removed"} printed as
 * the command's --json, --csv or text. Main thread of the CLI. */
#ifndef WL_CSV_UPLOAD_H
#define WL_CSV_UPLOAD_H

#include <stddef.h>

#include "api_client.h"

struct wl_csv_upload {
    const char *cmd;            /* for messages: "networks" */
    const char *route;          /* "/v1/networks" */
    size_t max_bytes;           /* a larger file is refused before it is sent */
    const char *empty_hint;     /* what an empty file should hold instead */
    const char *noun;           /* "prefix(es)", in "imported N prefix(es) from FILE" */
};

/* Reads file ("-": stdin) and PUTs it to u->route. Returns WL_EXIT_OK, or
 * WL_EXIT_USAGE / WL_EXIT_FAIL after saying why. */
int wl_csv_upload(const struct wl_csv_upload *u, struct wl_api_client *api, const char *file,
                  enum wl_out_format fmt);

#endif
