/* The run's report: one human line, or one JSON object line. */
#include <jansson.h>
#include <stdio.h>

#include "loadgen.h"

/* A JSON integer, or a string of digits past what JSON readers keep exact. */
static json_t *json_u64(uint64_t v)
{
    char buf[24];
    if (v <= (uint64_t)INT64_MAX)
        return json_integer((json_int_t)v);
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return json_string(buf);
}

static double per_s(uint64_t n, double s)
{
    return s > 0 ? (double)n / s : 0;
}

static double whole(double x)
{
    return (double)(uint64_t)(x + 0.5);
}

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

void lg_report_json(FILE *out, const struct lg_options *o, const struct lg_result *r,
                    const struct lg_run_info *info)
{
    uint64_t acked = r->accepted + r->duplicates + r->rejected;
    uint64_t counted = o->tcp ? acked : r->pings_sent;
    json_t *j = json_object();

    json_object_set_new(j, "transport", json_string(o->tcp ? "tcp" : "udp"));
    json_object_set_new(j, "target", json_string(o->target));
    json_object_set_new(j, "connections", json_integer(o->connections));
    json_object_set_new(j, "batch", json_integer(o->batch));
    json_object_set_new(j, "zlib", json_boolean(o->zlib));
    json_object_set_new(j, "inflight", o->tcp ? json_integer(o->inflight) : json_null());
    json_object_set_new(j, "rate", json_integer((json_int_t)o->rate));
    json_object_set_new(j, "duration_s", o->duration > 0 ? json_real(o->duration) : json_null());
    json_object_set_new(j, "installs", json_integer(o->installs));
    json_object_set_new(j, "orgs", json_integer(o->orgs));
    json_object_set_new(j, "zipf", json_real(o->zipf));
    json_object_set_new(j, "statsd", json_boolean(o->statsd));
    json_object_set_new(j, "seed", json_u64(o->seed));
    json_object_set_new(j, "seq_base", json_u64(o->seq_base));
    json_object_set_new(j, "preencoded", json_boolean(info->preencoded));
    json_object_set_new(j, "encode_s", json_real(info->encode_s));
    json_object_set_new(j, "max_frame_bytes", info->max_frame ? json_integer((json_int_t)info->max_frame)
                                                              : json_null());
    json_object_set_new(j, "pings_target",
                        o->pings == LG_UNBOUNDED ? json_null() : json_integer((json_int_t)o->pings));
    json_object_set_new(j, "pings_sent", json_integer((json_int_t)r->pings_sent));
    json_object_set_new(j, "frames_sent", json_integer((json_int_t)r->frames_sent));
    json_object_set_new(j, "bytes_sent", json_integer((json_int_t)r->bytes_sent));
    json_object_set_new(j, "elapsed_s", json_real(r->elapsed));
    json_object_set_new(j, "pings_per_s", json_real(whole(per_s(counted, r->elapsed))));
    json_object_set_new(j, "frames_per_s", json_real(whole(per_s(r->frames_sent, r->elapsed))));
    json_object_set_new(j, "mbytes_per_s", json_real(per_s(r->bytes_sent, r->elapsed) / 1e6));
    json_object_set_new(j, "started_at_ms", json_integer(r->started_at_ms));
    json_object_set_new(j, "finished_at_ms", json_integer(r->finished_at_ms));
    if (o->tcp) {
        json_t *acks = json_object();
        json_object_set_new(acks, "received", json_integer((json_int_t)r->acks));
        json_object_set_new(acks, "ok", json_integer((json_int_t)r->ack_status[0]));
        json_object_set_new(acks, "partial", json_integer((json_int_t)r->ack_status[1]));
        json_object_set_new(acks, "rejected", json_integer((json_int_t)r->ack_status[2]));
        json_object_set_new(acks, "retry_later", json_integer((json_int_t)r->ack_status[3]));
        json_object_set_new(acks, "unknown_status", json_integer((json_int_t)r->ack_other));
        json_object_set_new(acks, "missing", json_integer((json_int_t)r->acks_missing));
        json_object_set_new(acks, "out_of_order", json_integer((json_int_t)r->out_of_order));
        json_object_set_new(acks, "count_mismatch",
                            json_integer((json_int_t)r->ack_count_mismatch));
        json_object_set_new(j, "acks", acks);
        json_object_set_new(j, "pings_acked", json_integer((json_int_t)acked));
        json_object_set_new(j, "accepted", json_integer((json_int_t)r->accepted));
        json_object_set_new(j, "duplicates", json_integer((json_int_t)r->duplicates));
        json_object_set_new(j, "rejected", json_integer((json_int_t)r->rejected));
        json_object_set_new(j, "pings_retry_later",
                            json_integer((json_int_t)r->pings_retry_later));
        json_t *lat = json_object();
        json_object_set_new(lat, "p50", json_real(ms(lg_hist_quantile(&r->latency, 0.50))));
        json_object_set_new(lat, "p90", json_real(ms(lg_hist_quantile(&r->latency, 0.90))));
        json_object_set_new(lat, "p99", json_real(ms(lg_hist_quantile(&r->latency, 0.99))));
        json_object_set_new(lat, "p999", json_real(ms(lg_hist_quantile(&r->latency, 0.999))));
        json_object_set_new(lat, "max", json_real(ms(r->latency.max)));
        json_object_set_new(j, "ack_latency_ms", lat);
        json_object_set_new(j, "first_not_ok",
                            r->first_not_ok[0] ? json_string(r->first_not_ok) : json_null());
    } else {
        json_object_set_new(j, "send_errors", json_integer((json_int_t)r->send_errors));
    }
    json_object_set_new(j, "error", r->error[0] ? json_string(r->error) : json_null());
    if (r->counted) { /* UDP, --metrics: what the collector counted */
        json_t *c = json_object();
        json_object_set_new(c, "received", json_u64(r->c_received));
        json_object_set_new(c, "accepted", json_u64(r->c_accepted));
        json_object_set_new(c, "duplicates", json_u64(r->c_duplicate));
        json_object_set_new(c, "lost", json_u64(r->pings_sent > r->c_received
                                                    ? r->pings_sent - r->c_received : 0));
        json_object_set_new(j, "collector", c);
    } else {
        json_object_set_new(j, "collector", json_null());
    }
    json_object_set_new(j, "exit_code", json_integer(info->exit_code));
    json_dumpf(j, out, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    fputc('\n', out);
    json_decref(j);
}

void lg_report_human(FILE *out, const struct lg_options *o, const struct lg_result *r)
{
    uint64_t acked = r->accepted + r->duplicates + r->rejected;
    double mb = per_s(r->bytes_sent, r->elapsed) / 1e6;

    if (o->tcp) {
        fprintf(out,
                "tcp %s: %llu pings in %llu frames over %u connections, %.3f s: "
                "%.0f pings/s, %.0f frames/s, %.1f MB/s; acks %llu (ok %llu, partial %llu, "
                "rejected %llu, retry_later %llu, missing %llu); pings accepted %llu, "
                "duplicates %llu, rejected %llu; ack latency p50 %.2f ms, p99 %.2f ms, "
                "p999 %.2f ms, max %.2f ms\n",
                o->target, (unsigned long long)r->pings_sent, (unsigned long long)r->frames_sent,
                o->connections, r->elapsed, per_s(acked, r->elapsed),
                per_s(r->frames_sent, r->elapsed), mb, (unsigned long long)r->acks,
                (unsigned long long)r->ack_status[0], (unsigned long long)r->ack_status[1],
                (unsigned long long)r->ack_status[2], (unsigned long long)r->ack_status[3],
                (unsigned long long)r->acks_missing, (unsigned long long)r->accepted,
                (unsigned long long)r->duplicates, (unsigned long long)r->rejected,
                ms(lg_hist_quantile(&r->latency, 0.50)), ms(lg_hist_quantile(&r->latency, 0.99)),
                ms(lg_hist_quantile(&r->latency, 0.999)), ms(r->latency.max));
    } else {
        fprintf(out,
                "udp %s: %llu pings in %llu datagrams over %u sockets, %.3f s: %.0f pings/s, "
                "%.0f datagrams/s, %.1f MB/s sent",
                o->target, (unsigned long long)r->pings_sent, (unsigned long long)r->frames_sent,
                o->connections, r->elapsed, per_s(r->pings_sent, r->elapsed),
                per_s(r->frames_sent, r->elapsed), mb);
        uint64_t lost = r->pings_sent > r->c_received ? r->pings_sent - r->c_received : 0;
        if (r->counted)
            fprintf(out, "; the collector received %llu (lost %llu, %.2f%%), stored %llu, "
                    "duplicates %llu\n", (unsigned long long)r->c_received,
                    (unsigned long long)lost,
                    r->pings_sent ? 100.0 * (double)lost / (double)r->pings_sent : 0.0,
                    (unsigned long long)r->c_accepted, (unsigned long long)r->c_duplicate);
        else
            fprintf(out, " (no acks over UDP: --metrics, or the collector's pings_accepted, "
                    "says what arrived)\n");
    }
}
