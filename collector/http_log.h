/* libmicrohttpd's own messages (a malformed request, a connection over a
 * limit, a failed accept) through our logger: one key=value line each,
 *   level=warn event=http_server_message listener=api msg="..." [suppressed=N]
 * with the message bounded (WL_HTTP_LOG_MSG_MAX bytes, "..." when cut), line
 * breaks and control characters replaced and quotes escaped, so that a client
 * cannot forge log lines; and at most WL_HTTP_LOG_BURST lines at once and
 * WL_HTTP_LOG_RATE a second per listener (a token bucket), so that a client
 * cannot fill the log. Lines left out are counted and the count goes out as
 * suppressed=N on the next line that is written.
 *
 * Runs on libmicrohttpd's threads (any number at once): the limiter takes
 * its own lock. Every libmicrohttpd daemon passes its listener's limiter:
 *   static struct wl_http_log api_log = WL_HTTP_LOG_INIT("api");
 *   MHD_start_daemon(... | MHD_USE_ERROR_LOG, ...,
 *                    MHD_OPTION_EXTERNAL_LOGGER, wl_mhd_logger, &api_log, ...); */
#ifndef WL_HTTP_LOG_H
#define WL_HTTP_LOG_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define WL_HTTP_LOG_RATE 10      /* lines a second, steady */
#define WL_HTTP_LOG_BURST 10     /* lines at once */
#define WL_HTTP_LOG_MSG_MAX 512  /* bytes of a message kept (before escaping) */

/* One listener's limiter. Use WL_HTTP_LOG_INIT; never copied. */
struct wl_http_log {
    const char *listener;        /* [a-z_]+, a string that outlives the daemon */
    pthread_mutex_t lock;
    int64_t last_ns;             /* when tokens was last brought up to date */
    int64_t tokens_ns;           /* the bucket, in ns of refill (1 line = 1e9 / RATE) */
    uint64_t suppressed;         /* lines left out since the last one written */
};

#define WL_HTTP_LOG_INIT(name)                                                        \
    {                                                                                 \
        .listener = (name), .lock = PTHREAD_MUTEX_INITIALIZER, .last_ns = INT64_MIN,  \
        .tokens_ns = 0, .suppressed = 0                                               \
    }

/* libmicrohttpd's MHD_OPTION_EXTERNAL_LOGGER callback; cls is the listener's
 * struct wl_http_log. Writes one line at warn level, or counts it out. */
void wl_mhd_logger(void *cls, const char *fmt, va_list ap);

/* Logs the lines still left out (event=http_server_messages_suppressed
 * listener=... suppressed=N), if any, and starts the count again: call it once
 * the daemon has stopped, so that no count is lost. */
void wl_http_log_flush(struct wl_http_log *l);

/* The parts, for tests. */

/* The message fmt/ap as the msg="..." value: at most WL_HTTP_LOG_MSG_MAX
 * bytes of it ("..." after a cut), trailing line breaks dropped, other line
 * breaks and tabs as ' ', other control characters (C0, DEL) as '?', '"'
 * and '\' escaped with '\'. out holds 2 * WL_HTTP_LOG_MSG_MAX + 8 bytes;
 * returns the length written. */
#define WL_HTTP_LOG_OUT_MAX (2 * WL_HTTP_LOG_MSG_MAX + 8)
size_t wl_http_log_format(char out[WL_HTTP_LOG_OUT_MAX], const char *fmt, va_list ap);

/* Whether a line may go out at now_ns (CLOCK_MONOTONIC): 1 with *suppressed
 * the lines left out since the last one that went (then reset), or 0 (the
 * line is counted out). Thread-safe. */
int wl_http_log_admit(struct wl_http_log *l, int64_t now_ns, uint64_t *suppressed);

#endif
