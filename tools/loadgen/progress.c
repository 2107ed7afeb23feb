/* A progress line for long runs, on a terminal only: redrawn in place at
 * most once a second, ended by a newline before the report. */
#include <stdio.h>

#include "loadgen.h"

void lg_progress(const struct lg_options *opt, struct lg_result *res, uint64_t t0_ns)
{
    if (!opt->progress) /* not on a terminal: no clock read per send */
        return;
    uint64_t now = lg_now_ns();
    if (now - res->progress_at_ns < 1000000000u)
        return;
    if (res->progress_at_ns == 0) { /* the first call: start the clock */
        res->progress_at_ns = now;
        return;
    }
    res->progress_at_ns = now;
    double s = (double)(now - t0_ns) / 1e9;
    if (opt->tcp)
        fprintf(stderr, "\rwarmline-loadgen: %.0f s, %llu pings sent (%.0f/s), %llu acked   ", s,
                (unsigned long long)res->pings_sent, s > 0 ? (double)res->pings_sent / s : 0.0,
                (unsigned long long)(res->accepted + res->duplicates + res->rejected));
    else
        fprintf(stderr, "\rwarmline-loadgen: %.0f s, %llu pings sent (%.0f/s)   ", s,
                (unsigned long long)res->pings_sent, s > 0 ? (double)res->pings_sent / s : 0.0);
    fflush(stderr);
    res->progress_shown = 1;
}

void lg_progress_end(struct lg_result *res)
{
    if (res->progress_shown)
        fputc('\n', stderr);
    res->progress_shown = 0;
}
