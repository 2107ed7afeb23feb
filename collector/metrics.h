/* Process-wide counters: rejections by reason and the traffic that passed.
 * Relaxed atomics; any thread may count, any thread may read. */
#ifndef WL_METRICS_H
#define WL_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "reasons.h"

#define WL_COUNTERS(X)                                                             \
    X(udp_datagrams)         /* datagrams received */                              \
    X(udp_dropped_overload)  /* datagrams dropped: writer queue over its limit */   \
    X(tcp_connections)       /* connections accepted */                            \
    X(tcp_refused)           /* connections closed at once: max_connections */     \
    X(tcp_closed_bad_frame)  /* connections closed for a bad frame */              \
    X(tcp_closed_idle)       /* connections closed by the idle timeout */          \
    X(tcp_frames)            /* frames received */                                 \
    X(tcp_retry_later)       /* frames answered RETRY_LATER: writer overloaded */  \
    X(batches_rejected)      /* envelopes rejected whole */                        \
    X(pings_accepted)        /* pings stored */                                    \
    X(pings_duplicate)       /* pings at or below their install's last seq */      \
    X(pings_rejected)        /* pings that failed validation */                    \
    X(groups_committed)      /* atomic writes (one WAL sync each under sync) */    \
    X(write_errors)          /* failed writes; their batches got RETRY_LATER */    \
    X(quarantined)           /* rejected samples kept */

#define WL_COUNTER_ENUM(name) WL_M_##name,
enum wl_counter { WL_COUNTERS(WL_COUNTER_ENUM) WL_N_COUNTERS };
#undef WL_COUNTER_ENUM

struct wl_metrics {
    _Atomic uint64_t counter[WL_N_COUNTERS];
    _Atomic uint64_t rejected[WL_N_REASONS];
};

extern struct wl_metrics wl_metrics;

static inline void wl_count(enum wl_counter c, uint64_t n)
{
    atomic_fetch_add_explicit(&wl_metrics.counter[c], n, memory_order_relaxed);
}

static inline void wl_count_reject(enum wl_reason r)
{
    atomic_fetch_add_explicit(&wl_metrics.rejected[r], 1, memory_order_relaxed);
}

static inline uint64_t wl_counter_get(enum wl_counter c)
{
    return atomic_load_explicit(&wl_metrics.counter[c], memory_order_relaxed);
}

/* Logs one key=value line with every counter and every non-zero
 * rejected_<reason> count. */
void wl_metrics_log(const char *event);

#endif
