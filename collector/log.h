/* Key=value log lines on stderr: "ts=... level=info event=ready udp=...". */
#ifndef WL_LOG_H
#define WL_LOG_H

enum wl_log_level { WL_LOG_DEBUG = 0, WL_LOG_INFO, WL_LOG_WARN, WL_LOG_ERROR };

extern enum wl_log_level wl_log_min_level;

/* Parse "debug|info|warn|error"; returns 0 or -EINVAL. */
int wl_log_parse_level(const char *name, enum wl_log_level *out);

/* Writes one line: ts, level, event, then the caller's key=value pairs. */
void wl_log_write(enum wl_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Checks the level before any formatting happens. fmt holds the pairs after
 * event=..., e.g. wl_log(WL_LOG_WARN, "frame_rejected", "reason=%s", r). */
#define wl_log(level, event, ...)                                        \
    do {                                                                 \
        if ((level) >= wl_log_min_level)                                 \
            wl_log_write((level), (event), __VA_ARGS__);                 \
    } while (0)

#define wl_debug(event, ...) wl_log(WL_LOG_DEBUG, event, __VA_ARGS__)
#define wl_info(event, ...) wl_log(WL_LOG_INFO, event, __VA_ARGS__)
#define wl_warn(event, ...) wl_log(WL_LOG_WARN, event, __VA_ARGS__)
#define wl_error(event, ...) wl_log(WL_LOG_ERROR, event, __VA_ARGS__)

#endif
