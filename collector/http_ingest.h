/* The public HTTP ingest listener (libmicrohttpd, its own thread pool, its
 * own port: [http] http_listen, off when empty). It turns the requests that
 * deployed servers already send into pings for the writer, through the same
 * queue as every other source (transport "http").
 *
 * GET /security (the daily security-update check: one edge ping each,
 * submitted without waiting for durability, answered with the operator's
 * bulletins for the caller's version), GET /bulletins/<id> (a bulletin's
 * body) and POST /v1/batch (RudderStack telemetry: write key, body caps,
 * one edge ping per mapped event; the connection is suspended until the
 * writer made them durable, then answered 200, or 503 to send again).
 * Anything else is 404, another method 405. Edge pings (ping.h) carry the
 * fields they have; the writer merges them. Their organization: a Rudder
 * allowed_email_domain (hashed with the org salt here), else the network
 * table's for the client address, else the one the install has.
 *
 * Public-facing limits: a token bucket per source address (fixed table,
 * keyed hash; over it 429), libmicrohttpd's total and per-address connection
 * caps, a header size cap, an inactivity timeout and a whole-request
 * deadline, a query size cap, and a cap on checks with the writer (over it,
 * or over writer_queue_pings, the ping is dropped and counted, the bulletins
 * still answered). The source address (behind a trusted proxy, the client
 * its X-Forwarded-For names) is used for the limits and the network
 * table only: never stored, never logged. Optional HTTPS (http_tls_cert_file, http_tls_key_file).
 *
 * The parts: http_ingest_security.c (query to ping), http_ingest_bulletins.c,
 * http_ingest_guard.c (limits on libmicrohttpd's threads), http_ingest_batch.c
 * (write keys, bodies, the network's organization), rudder.c (the body to
 * pings), http_body.c (gzip and the JSON bound); their declarations are in
 * http_ingest_parts.h, rudder.h, http_body.h. */
#ifndef WL_HTTP_INGEST_H
#define WL_HTTP_INGEST_H

#include <stddef.h>

#include "config.h"
#include "writer.h"

struct wl_http_ingest;

/* Loads the bulletins, binds cfg->http_listen and starts serving, handing
 * pings to writer (*out = NULL when http_listen is empty). Returns 0 or a
 * negative code with the reason in err (a bad bulletins file names the file
 * and what is wrong). */
struct wl_networks;

int wl_http_ingest_start(const struct wl_config *cfg, struct wl_writer *writer,
                         struct wl_networks *networks, struct wl_http_ingest **out, char *err,
                         size_t errlen);

/* Submits nothing more to the writer (a batch is answered 503, a check is
 * answered and not ingested): before the writer stops. Batches already
 * with it are answered when their jobs come back (wl_http_job_done). */
void wl_http_ingest_quiesce(struct wl_http_ingest *h);

/* What start would check besides the configuration's bounds, for
 * --check-config: the bulletins file loads, http_trusted_proxies parses, the
 * TLS files load and go together. Returns 0 or a negative code with the
 * option or file and what is wrong in err. */
int wl_http_ingest_check(const struct wl_config *cfg, char *err, size_t errlen);

/* The bound address as HOST:PORT (for the ready line). */
void wl_http_ingest_address(const struct wl_http_ingest *h, char *out, size_t len);

/* Stops serving (no more jobs are submitted once it returns) and frees.
 * Jobs already with the writer come back later: wl_http_job_done. NULL is a
 * no-op. */
void wl_http_ingest_stop(struct wl_http_ingest *h);

/* 1 when a finished job is this listener's (its transport is "http"). */
int wl_http_job(const struct wl_job *job);
/* A finished HTTP job: uncounts it from the jobs in flight and frees it
 * (any thread; the listener may have stopped). */
void wl_http_job_done(struct wl_job *job);

#endif
