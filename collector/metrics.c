#include "metrics.h"

#include <inttypes.h>
#include <stdio.h>

#include "log.h"

struct wl_metrics wl_metrics;

#define WL_COUNTER_NAME(name) #name,
static const char *const counter_names[WL_N_COUNTERS] = {WL_COUNTERS(WL_COUNTER_NAME)};
#undef WL_COUNTER_NAME

void wl_metrics_log(const char *event)
{
    char line[4096];
    size_t n = 0;

    for (int i = 0; i < WL_N_COUNTERS && n < sizeof line; i++) {
        n += (size_t)snprintf(line + n, sizeof line - n, "%s%s=%" PRIu64, i ? " " : "",
                              counter_names[i], wl_counter_get((enum wl_counter)i));
    }
    for (int r = 0; r < WL_N_REASONS && n < sizeof line; r++) {
        uint64_t v = atomic_load_explicit(&wl_metrics.rejected[r], memory_order_relaxed);
        if (v != 0)
            n += (size_t)snprintf(line + n, sizeof line - n, " rejected_%s=%" PRIu64,
                                  wl_reason_name((enum wl_reason)r), v);
    }
    wl_info(event, "%s", line);
}
