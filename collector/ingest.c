#include "ingest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "log.h"
#include "metrics.h"

void wl_format_addr(const struct sockaddr *sa, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (sa == NULL) {
        snprintf(out, len, "-");
        return;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        uv_ip4_name(in, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(out, len, "%s:%d", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(in6, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(out, len, "[%s]:%d", host, port);
    } else {
        snprintf(out, len, "-");
    }
}

int wl_ingest_limits_init(struct wl_ingest *ing, char *err, size_t errlen)
{
    const struct wl_config *cfg = ing->cfg;
    size_t entries = cfg->address_table_size;

    if (cfg->rate_per_address == 0 && cfg->max_connections_per_address == 0)
        return 0;
    /* Every open connection holds its address's slot: keep the table at
     * most a quarter full of them, so that an address always finds one. */
    if (entries < 4 * cfg->max_connections)
        entries = 4 * cfg->max_connections;
    if (wl_addrlimit_new(entries, cfg->rate_per_address, cfg->burst_per_address, &ing->addrs) !=
        0) {
        snprintf(err, errlen, "cannot allocate the address table (%zu entries)", entries);
        return -ENOMEM;
    }
    wl_info("address_limits", "rate_per_address=%llu burst_per_address=%llu "
            "max_connections_per_address=%llu addresses=%zu table_bytes=%zu limit_loopback=%s",
            (unsigned long long)cfg->rate_per_address, (unsigned long long)cfg->burst_per_address,
            (unsigned long long)cfg->max_connections_per_address,
            wl_addrlimit_capacity(ing->addrs), wl_addrlimit_bytes(ing->addrs),
            cfg->limit_loopback ? "on" : "off");
    return 0;
}

void wl_ingest_limits_free(struct wl_ingest *ing)
{
    wl_addrlimit_free(ing->addrs);
    ing->addrs = NULL;
}

int wl_ingest_limited(const struct wl_ingest *ing, const struct sockaddr *peer,
                      struct wl_addr *key)
{
    if (ing->addrs == NULL)
        return 0;
    int loopback = wl_addr_key(peer, key);
    return loopback == 0 || (loopback == 1 && ing->cfg->limit_loopback);
}

static uint64_t job_units(const struct wl_job *job)
{
    return job->batch != NULL && job->batch->n_pings > 0 ? job->batch->n_pings : 1;
}

/* What a job holds besides its batch: the job, its per-ping reasons, its
 * sample. */
static size_t job_own_bytes(const struct wl_job *job)
{
    size_t n = sizeof *job + job->sample_len;
    if (job->ping_rejects != NULL && job->batch != NULL)
        n += job->batch->n_pings * sizeof *job->ping_rejects;
    return n;
}

int wl_ingest_over(const struct wl_ingest *ing)
{
    return ing->held >= ing->cfg->writer_queue_pings ||
           ing->held_bytes >= ing->cfg->max_held_bytes;
}

void wl_ingest_hold_bytes(struct wl_ingest *ing, size_t n)
{
    ing->held_bytes += n;
    wl_gauge_set(WL_G_held_bytes, ing->held_bytes);
}

void wl_ingest_release_bytes(struct wl_ingest *ing, size_t n)
{
    ing->held_bytes = ing->held_bytes > n ? ing->held_bytes - n : 0;
    wl_gauge_set(WL_G_held_bytes, ing->held_bytes);
    if (ing->budget_waiters > 0 && ing->held_bytes < ing->cfg->max_held_bytes)
        wl_tcp_budget_wake(ing);
}

void wl_ingest_drop_batch(struct wl_job *job)
{
    wl_ping_batch_free(job->batch);
    job->batch = NULL;
    job->ping_bytes = NULL; /* in the batch's arena */
    free(job->ping_rejects);
    job->ping_rejects = NULL;
    job->held_bytes = job_own_bytes(job);
}

void wl_ingest_hold(struct wl_ingest *ing, const struct wl_job *job)
{
    ing->held += job_units(job);
    wl_ingest_hold_bytes(ing, job->held_bytes);
}

void wl_ingest_submit(struct wl_ingest *ing, struct wl_job *job)
{
    wl_ingest_hold(ing, job);
    wl_writer_submit(ing->writer, job);
}

void wl_ingest_release(struct wl_ingest *ing, const struct wl_job *job)
{
    uint64_t n = job_units(job);
    ing->held = ing->held > n ? ing->held - n : 0;
    wl_ingest_release_bytes(ing, job->held_bytes);
}

struct wl_job *wl_ingest_make_job(struct wl_ingest *ing, const uint8_t *buf, size_t len,
                                  const char *transport, const struct sockaddr *peer)
{
    struct wl_job *job = wl_job_new();
    struct timeval tv;

    if (job == NULL)
        return NULL;
    gettimeofday(&tv, NULL);
    job->received_at = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    job->transport = transport;
    if (peer != NULL && (peer->sa_family == AF_INET || peer->sa_family == AF_INET6))
        memcpy(&job->peer_addr, peer,
               peer->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                          : sizeof(struct sockaddr_in6));
    job->rejected = wl_envelope_decode(&ing->decoder, buf, len, &job->batch, &job->batch_id,
                                       &job->ping_rejects);
    job->ping_bytes = job->batch != NULL ? ing->decoder.bytes : NULL;
    enum wl_transport t = wl_transport_of(transport);
    if (job->batch != NULL)
        wl_count_t(t, WL_T_pings_received, job->batch->n_pings);
    if (job->rejected != WL_REJECT_NONE) {
        wl_count_envelope_reject(t, job->rejected);
        wl_job_set_sample(job, buf, len, ing->cfg->quarantine_sample_bytes);
    }
    job->held_bytes = job_own_bytes(job) + (job->batch != NULL ? ing->decoder.batch_bytes : 0);
    return job;
}
