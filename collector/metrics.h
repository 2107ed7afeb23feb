/* Process-wide metrics: counters, gauges and two histograms, kept in relaxed
 * atomics. Any thread may count, any thread may read; nothing here locks.
 *
 * Read out two ways: wl_metrics_log() (the periodic event=stats line) and
 * wl_metrics_prometheus() (the text exposition format, for GET /metrics). */
#ifndef WL_METRICS_H
#define WL_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "reasons.h"

struct wl_ruleset;
struct wl_store;

/* Unlabelled counters: name in the stats line, and warmline_<name>_total. */
#define WL_COUNTERS(X)                                                                    \
    X(udp_datagrams, "Datagrams received.")                                               \
    X(udp_dropped_overload, "Datagrams dropped: the writer queue was over its limit.")    \
    X(tcp_connections, "TCP connections accepted.")                                       \
    X(tcp_refused, "TCP connections closed at once: max_connections, or stopping.")      \
    X(tcp_refused_per_address,                                                            \
      "TCP connections closed at once: their address had max_connections_per_address open.") \
    X(tcp_closed_slow_frame, "TCP connections closed: a frame unfinished for frame_timeout_ms.") \
    X(tcp_closed_bad_frame, "TCP connections closed for a bad frame.")                    \
    X(tcp_closed_idle, "TCP connections closed by the idle timeout.")                     \
    X(tcp_frames, "TCP frames received.")                                                 \
    X(tcp_retry_later, "TCP frames answered RETRY_LATER: the writer was overloaded.")     \
    X(tcp_budget_waits,                                                                   \
      "Times a TCP connection stopped reading until input held less than max_held_bytes.") \
    X(batches_rejected, "Envelopes rejected whole.")                                      \
    X(pings_accepted, "Pings stored.")                                                    \
    X(pings_duplicate, "Pings at or below their install's last seq.")                     \
    X(pings_rejected, "Pings that failed validation.")                                    \
    X(groups_committed, "Group commits: atomic writes, one WAL sync each under sync.")    \
    X(state_flushes, "Writes that carried the state records (installs, orgs, days).")  \
    X(write_errors, "Failed writes; their batches got RETRY_LATER.")                      \
    X(quarantined, "Rejected samples kept in quarantine.")                                \
    X(retention_pings_deleted, "Raw pings past retention_days deleted.")                  \
    X(msgids_expired, "Rudder messageIds forgotten: older than msgid_ttl_ms.")            \
    X(msgids_evicted,                                                                     \
      "Rudder messageIds forgotten early, oldest first: the store was over msgid_max_bytes.") \
    X(forgets, "Forget requests applied (data-subject deletions).")                        \
    X(features_untallied,                                                                 \
      "Features and editions left out of an organization's tallies: past max_org_features.") \
    X(http_requests, "HTTP ingest requests that reached a route (after their headers).")  \
    X(http_security_queued, "Security checks handed to the writer as pings.")             \
    X(http_security_test_run, "Security checks with ut=1: answered, not ingested.")       \
    X(http_security_bad_request, "Security checks refused 400 (a bad or missing parameter).") \
    X(http_security_overloaded,                                                           \
      "Security checks answered but their ping dropped: http_max_inflight or "            \
      "writer_queue_pings reached.")                                                      \
    X(http_bulletins_served, "Bulletin bodies served (GET /bulletins/<id>).")             \
    X(http_not_found, "HTTP ingest requests answered 404 (unknown path or bulletin).")    \
    X(http_method_not_allowed, "HTTP ingest requests answered 405.")                      \
    X(http_rate_limited,                                                                  \
      "HTTP ingest requests answered 429: over http_rate_per_address or http_rate_total.") \
    X(http_query_too_long, "HTTP ingest requests answered 414: over http_max_query_bytes.") \
    X(http_closed_deadline,                                                               \
      "HTTP ingest connections closed: a request unfinished after http_request_deadline_ms.") \
    X(http_batch_stored, "Rudder batches (POST /v1/batch) answered 200: their events durable.") \
    X(http_batch_unauthorized, "Rudder batches answered 401: a write key not configured.") \
    X(http_batch_bad_request,                                                             \
      "Rudder batches answered 400 or 415: a body that does not parse or breaks a limit.") \
    X(http_batch_too_large,                                                               \
      "Rudder batches answered 413: over http_max_body_bytes or http_max_inflated_bytes.") \
    X(http_batch_unavailable,                                                             \
      "Rudder batches answered 503 (send again): the writer busy or stopping, the disk "  \
      "refusing, or too many bodies held.")                                               \
    X(http_batch_events_queued, "Rudder events handed to the writer as pings.")           \
    X(http_batch_events_dropped,                                                          \
      "Rudder messages dropped: a bad userId, messageId or mapped field (the rest land).") \
    X(http_batch_events_ignored, "Rudder messages of other types or events: not mapped.")

#define WL_COUNTER_ENUM(name, help) WL_M_##name,
enum wl_counter { WL_COUNTERS(WL_COUNTER_ENUM) WL_N_COUNTERS };
#undef WL_COUNTER_ENUM

/* Where input came from: the job's transport string. */
enum wl_transport {
    WL_TRANSPORT_UDP,
    WL_TRANSPORT_TCP,
    WL_TRANSPORT_IMPORT,
    WL_TRANSPORT_HTTP,
    WL_TRANSPORT_OTHER, /* any other name (exported only when non-zero) */
    WL_N_TRANSPORTS
};

/* Counters by transport: warmline_<name>_total{transport="..."}. */
#define WL_TRANSPORT_COUNTERS(X)                                                          \
    X(pings_received, "Pings in envelopes that decoded.")                                 \
    X(pings_accepted, "Pings stored.")                                                    \
    X(pings_duplicate, "Pings at or below their install's last seq.")                     \
    X(envelopes_received, "Envelopes received (datagrams, or frames), rejected ones too.") \
    X(received_bytes, "Bytes received on the ingest sockets.")                           \
    X(rate_limited, "Envelopes over their source address's rate_per_address: datagrams "  \
                    "dropped (udp); frames read only once a token came (tcp).")

#define WL_TCOUNTER_ENUM(name, help) WL_T_##name,
enum wl_tcounter { WL_TRANSPORT_COUNTERS(WL_TCOUNTER_ENUM) WL_N_TCOUNTERS };
#undef WL_TCOUNTER_ENUM

/* Gauges: warmline_<name>, set to the current value by whoever owns it. */
#define WL_GAUGES(X)                                                                      \
    X(tcp_connections_open, "TCP connections open.")                                      \
    X(writer_queue_pings, "Pings queued for the writer and not yet committed.")           \
    X(held_bytes, "Bytes held between the sockets and the writer (max_held_bytes).")      \
    X(installs, "Installs in the writer's state.")                                        \
    X(organizations, "Organizations in the writer's state.")                              \
    X(interned_bytes, "Bytes held by interned strings and feature lists (writer state).")   \
    X(interned_strings, "Interned strings and feature lists held (writer state).")        \
    X(checkpoint_seq, "The ingest sequence the last checkpoint made the state records "     \
                      "exact for: a crash replays the pings after it.")                    \
    X(pings_since_checkpoint, "Pings applied since the last checkpoint (in memory only).") \
    X(checkpoint_records, "Records the last checkpoint wrote (installs, organizations, days).") \
    X(checkpoint_ms, "How long the last checkpoint's pack and write took, in ms.")          \
    X(msgids_bytes, "Bytes of the Rudder messageId store after its last sweep.")            \
    X(network_prefixes, "Prefixes in the network table (CIDR -> organization).")          \
    X(network_table_bytes, "Bytes of the network table's lookup structure.")

#define WL_GAUGE_ENUM(name, help) WL_G_##name,
enum wl_gauge { WL_GAUGES(WL_GAUGE_ENUM) WL_N_GAUGES };
#undef WL_GAUGE_ENUM

enum wl_sink_kind { WL_SINK_FILE, WL_SINK_WEBHOOK, WL_N_SINKS };

/* Counters the hot paths touch (inline). The loop thread's and the
 * writer's live on separate cache lines. */
struct wl_metrics {
    _Alignas(64) _Atomic uint64_t counter[WL_N_COUNTERS];
    _Alignas(64) _Atomic uint64_t by_transport[WL_N_TRANSPORTS][WL_N_TCOUNTERS];
    _Alignas(64) _Atomic uint64_t envelope_rejected[WL_N_TRANSPORTS][WL_N_REASONS];
    _Alignas(64) _Atomic uint64_t ping_rejected[WL_N_TRANSPORTS][WL_N_REASONS];
    _Alignas(64) _Atomic uint64_t gauge[WL_N_GAUGES];
};

extern struct wl_metrics wl_metrics;

static inline void wl_count(enum wl_counter c, uint64_t n)
{
    atomic_fetch_add_explicit(&wl_metrics.counter[c], n, memory_order_relaxed);
}

static inline uint64_t wl_counter_get(enum wl_counter c)
{
    return atomic_load_explicit(&wl_metrics.counter[c], memory_order_relaxed);
}

static inline void wl_count_t(enum wl_transport t, enum wl_tcounter c, uint64_t n)
{
    atomic_fetch_add_explicit(&wl_metrics.by_transport[t][c], n, memory_order_relaxed);
}

/* An envelope (datagram, frame) rejected whole, or a broken frame. */
static inline void wl_count_envelope_reject(enum wl_transport t, enum wl_reason r)
{
    atomic_fetch_add_explicit(&wl_metrics.envelope_rejected[t][r], 1, memory_order_relaxed);
}

/* One ping rejected. */
static inline void wl_count_ping_reject(enum wl_transport t, enum wl_reason r)
{
    atomic_fetch_add_explicit(&wl_metrics.ping_rejected[t][r], 1, memory_order_relaxed);
}

static inline void wl_gauge_set(enum wl_gauge g, uint64_t v)
{
    atomic_store_explicit(&wl_metrics.gauge[g], v, memory_order_relaxed);
}

/* "udp", "tcp", "import", "http" (anything else, or NULL: WL_TRANSPORT_OTHER). */
enum wl_transport wl_transport_of(const char *name);

/* Pings of one committed group (warmline_group_commit_pings). */
void wl_observe_group_pings(uint64_t pings);
/* From one group's write to its durability, WAL sync included (any thread:
 * the syncer's with durability = sync; warmline_group_commit_seconds). */
void wl_observe_commit_ns(uint64_t ns);

/* Names the rules whose signals are counted, by index in the set (copied).
 * Called at writer start, before anything renders; a rule whose name
 * changed starts again from zero. */
void wl_metrics_set_rules(const struct wl_ruleset *rules);
/* n committed signals of the rule at index rule. */
void wl_count_signals(size_t rule, uint64_t n);

/* Signals a sink delivered, or one failed attempt. */
void wl_count_sink_delivered(enum wl_sink_kind sink, uint64_t n);
void wl_count_sink_failure(enum wl_sink_kind sink);

/* The UDP socket whose kernel drop count (SO_MEMINFO) is reported as
 * udp_receive_queue_drops; -1 when it closes (the last count is kept). */
void wl_metrics_set_udp_fd(int fd);

/* Logs one key=value line with every counter, every non-zero
 * rejected_<reason> count (all transports, envelopes and pings together),
 * udp_rate_limited, tcp_rate_limited and udp_receive_queue_drops. */
void wl_metrics_log(const char *event);

/* Renders every metric in the Prometheus text exposition format 0.0.4
 * (HELP and TYPE once per family; names warmline_*, counters *_total).
 * With a store, warmline_database_bytes is included (store may be NULL).
 * Returns a malloc'd NUL-terminated text the caller frees, its length in
 * *len (len may be NULL), or NULL when out of memory. Any thread. */
char *wl_metrics_prometheus(struct wl_store *store, size_t *len);

#endif
