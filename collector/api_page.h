/* The sales-ops page (web/): GET / (index.html) and GET /assets/<name>,
 * served from the bytes web/embed.cmake built into the binary; nothing is
 * read from disk. Runs on the API's threads; the first request prepares,
 * once, each file's gzip copy and ETags, read-only afterwards. Every answer
 * carries the page's headers: a strict Content-Security-Policy (scripts,
 * styles and requests from this origin only, no inline script, no eval,
 * no framing), nosniff and no-referrer. The files hold no data, so these
 * routes need no token; the data comes from the API routes, which do. */
#ifndef WL_API_PAGE_H
#define WL_API_PAGE_H

#include <stddef.h>

#include "api_http.h"

/* One embedded file (the table is generated: gen/web_files.c). */
struct wl_page_file {
    const char *name;           /* its name in web/, e.g. "app.js" */
    const char *type;           /* Content-Type */
    const unsigned char *data;
    size_t len;
};

extern const struct wl_page_file wl_page_files[];
extern const size_t wl_page_n_files;

/* The Content-Security-Policy of every page answer. */
#define WL_PAGE_CSP                                                                        \
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "       \
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

/* GET /: index.html. */
enum MHD_Result wl_api_page(struct wl_req *rq);

/* GET /assets/<name>: the file of that name (rq->rest), else 404. */
enum MHD_Result wl_api_asset(struct wl_req *rq);

#endif
