#include "http_log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define LINE_NS (1000000000LL / WL_HTTP_LOG_RATE)     /* what one line costs */
#define BUCKET_NS ((int64_t)WL_HTTP_LOG_BURST * LINE_NS)

int wl_http_log_admit(struct wl_http_log *l, int64_t now_ns, uint64_t *suppressed)
{
    int ok = 0;

    pthread_mutex_lock(&l->lock);
    if (l->last_ns == INT64_MIN) { /* first use: a full bucket */
        l->tokens_ns = BUCKET_NS;
        l->last_ns = now_ns;
    } else if (now_ns > l->last_ns) {
        int64_t add = now_ns - l->last_ns;
        l->tokens_ns = add >= BUCKET_NS - l->tokens_ns ? BUCKET_NS : l->tokens_ns + add;
        l->last_ns = now_ns;
    }
    if (l->tokens_ns >= LINE_NS) {
        l->tokens_ns -= LINE_NS;
        *suppressed = l->suppressed;
        l->suppressed = 0;
        ok = 1;
    } else {
        l->suppressed++;
    }
    pthread_mutex_unlock(&l->lock);
    return ok;
}

size_t wl_http_log_format(char out[WL_HTTP_LOG_OUT_MAX], const char *fmt, va_list ap)
{
    char raw[WL_HTTP_LOG_MSG_MAX + 1];
    int n = vsnprintf(raw, sizeof raw, fmt, ap);
    if (n < 0) /* an encoding error: the format itself is all there is */
        n = snprintf(raw, sizeof raw, "%s", fmt);
    int cut = n >= (int)sizeof raw;
    size_t len = cut ? sizeof raw - 1 : (size_t)n, o = 0;

    while (!cut && len > 0 && (raw[len - 1] == '\n' || raw[len - 1] == '\r'))
        len--;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            out[o++] = ' ';
        } else if (c < 0x20 || c == 0x7F) {
            out[o++] = '?';
        } else {
            out[o++] = (char)c;
        }
    }
    if (cut) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return o;
}

void wl_mhd_logger(void *cls, const char *fmt, va_list ap)
{
    struct wl_http_log *l = cls;
    struct timespec ts;
    uint64_t suppressed;
    char msg[WL_HTTP_LOG_OUT_MAX];

    if (WL_LOG_WARN < wl_log_min_level)
        return;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (!wl_http_log_admit(l, (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec, &suppressed))
        return;
    wl_http_log_format(msg, fmt, ap);
    if (suppressed > 0)
        wl_warn("http_server_message", "listener=%s msg=\"%s\" suppressed=%llu", l->listener,
                msg, (unsigned long long)suppressed);
    else
        wl_warn("http_server_message", "listener=%s msg=\"%s\"", l->listener, msg);
}

void wl_http_log_flush(struct wl_http_log *l)
{
    pthread_mutex_lock(&l->lock);
    uint64_t n = l->suppressed;
    l->suppressed = 0;
    pthread_mutex_unlock(&l->lock);
    if (n > 0)
        wl_warn("http_server_messages_suppressed", "listener=%s suppressed=%llu", l->listener,
                (unsigned long long)n);
}
