/* The collector's HTTP API as the CLI sees it: the options every API
 * command shares, where the API is (--url, or api_listen of --config), the
 * bearer token (--token-file, or WARMLINE_TOKEN; never printed), one
 * request at a time over libcurl with its JSON reply, failures worded for
 * the operator, and helpers to read replies. */
#ifndef WL_API_CLIENT_H
#define WL_API_CLIENT_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>

/* ---- shared options ---- */

enum wl_out_format { WL_OUT_TABLE, WL_OUT_JSON, WL_OUT_CSV };

/* getopt values of the shared options (a command's own start at 256). */
enum {
    WL_API_OPT_CONFIG = 1024,
    WL_API_OPT_URL,
    WL_API_OPT_TOKEN_FILE,
    WL_API_OPT_JSON,
    WL_API_OPT_CSV,
};

/* The shared rows of a command's struct option table (then its own, then
 * the {NULL} row). */
#define WL_API_LONGOPTS                                                  \
    {"config", required_argument, NULL, WL_API_OPT_CONFIG},              \
    {"url", required_argument, NULL, WL_API_OPT_URL},                    \
    {"token-file", required_argument, NULL, WL_API_OPT_TOKEN_FILE},      \
    {"json", no_argument, NULL, WL_API_OPT_JSON},                        \
    {"csv", no_argument, NULL, WL_API_OPT_CSV},                          \
    {"help", no_argument, NULL, 'h'}

struct wl_api_opts {
    const char *config_path; /* NULL: built-in defaults */
    const char *url;         /* NULL: from the configuration */
    const char *token_file;  /* NULL: WARMLINE_TOKEN, else no token */
    enum wl_out_format format;
};

/* Stores shared option c: 1 when it was one, 0 when it was not, or -1
 * after printing why it is wrong (--json with --csv). */
int wl_api_opt(const char *cmd, struct wl_api_opts *o, int c, const char *arg);

/* Prints the help of the shared options, then the exit statuses. */
void wl_api_usage_common(FILE *out);

/* ---- requests ---- */

struct wl_api_client;

/* Works out the URL and the token and sets libcurl up. Returns 0, or
 * prints why ("warmline CMD: ...") and returns WL_EXIT_USAGE. */
int wl_api_open(const char *cmd, const struct wl_api_opts *o, struct wl_api_client **out);

/* Frees, wiping the token. NULL is a no-op. */
void wl_api_close(struct wl_api_client *c);

/* The API's base URL, e.g. http://127.0.0.1:7811 (no trailing slash). */
const char *wl_api_url(const struct wl_api_client *c);

/* While *flag is non-zero a request in flight is abandoned (SIGINT). */
void wl_api_cancel_on(struct wl_api_client *c, volatile sig_atomic_t *flag);

struct wl_api_error {
    int exit_code;     /* WL_EXIT_USAGE for 400/413 (bad input), else WL_EXIT_FAIL */
    int transient;     /* unreachable, timed out, 503: worth trying again */
    int canceled;      /* the cancel flag stopped it */
    long status;       /* the HTTP status; 0 when none came back */
    char message[2048];
};

/* Sends METHOD <base URL><path>; path starts with '/' and holds the query,
 * its parts escaped with wl_api_escape. body (len bytes of type ctype) may
 * be NULL. On a 2xx returns 0 with *reply the parsed JSON (NULL when the
 * body is empty, as for 204); else returns -1 with err filled. */
int wl_api_request(struct wl_api_client *c, const char *method, const char *path,
                   const char *ctype, const char *body, size_t len, json_t **reply,
                   struct wl_api_error *err);

/* wl_api_request for commands that stop at the first error: returns 0, or
 * prints the error as "warmline CMD: ..." and returns its exit code. */
int wl_api_call(struct wl_api_client *c, const char *method, const char *path,
                const char *ctype, const char *body, size_t len, json_t **reply);

/* s percent-encoded for a path segment or a query value; malloc'd (free
 * it), NULL on ENOMEM. */
char *wl_api_escape(const char *s);

/* Appends name=value to the query of *path (after '?' or '&'), value
 * escaped; *path is realloc'd. Returns 0 or -ENOMEM. */
int wl_api_query(char **path, const char *name, const char *value);

/* ---- reading replies ---- */

/* obj[key] as a string; "" when absent or not a string. */
const char *wl_reply_str(const json_t *obj, const char *key);

/* obj[key] as a whole number (a decimal string counts: the API writes
 * numbers above 2^63-1 so); def when absent or not one. */
long long wl_reply_int(const json_t *obj, const char *key, long long def);

/* obj[key] as a number; NAN when absent or not one. */
double wl_reply_num(const json_t *obj, const char *key);

/* A number as people read it: integers whole, reals with up to 15
 * significant digits, a decimal string as is; "" for null or absent. */
void wl_reply_number_text(const json_t *v, char *buf, size_t len);

enum wl_time_style {
    WL_TIME_DATE,   /* 2025-01-31 */
    WL_TIME_MINUTE, /* 2025-01-31 10:40 */
    WL_TIME_ISO,    /* 2025-01-31T10:40:00.000Z */
};

/* Unix milliseconds as UTC text; "" for ms <= 0. */
void wl_reply_time(long long ms, enum wl_time_style style, char *buf, size_t len);

/* How an organization prints: the named account's name (its domain when it
 * has no name) when named is an object; else the org id, shortened to its
 * first 12 hex digits and "…" when shorten is set and it is 64 hex. */
void wl_reply_org_label(const char *org, const json_t *named, int shorten, char *buf,
                        size_t len);

/* Writes obj as one line of JSON (key order kept, reals with 15 significant
 * digits). Returns 0 or -errno. */
int wl_reply_print_json(const json_t *obj, FILE *out);

struct wl_table;

/* Prints t on stdout as CSV (fmt WL_OUT_CSV, header row unless
 * WL_TABLE_NO_HEADER in flags) or as a table (flags as wl_table_print),
 * then flushes: WL_EXIT_OK or WL_EXIT_FAIL as wl_api_finish_output. A
 * NULL t, or one whose filling ran out of memory, says so. */
int wl_api_emit_table(const char *cmd, struct wl_table *t, enum wl_out_format fmt,
                      unsigned flags);

/* Flushes stdout: WL_EXIT_OK, or WL_EXIT_FAIL after saying why (quietly
 * when the reader closed the pipe). */
int wl_api_finish_output(const char *cmd);

#endif
