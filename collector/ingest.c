#include "ingest.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <sys/time.h>

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
    wl_format_addr(peer, job->peer, sizeof job->peer);
    job->rejected = wl_envelope_decode(&ing->decoder, buf, len, &job->batch, &job->batch_id,
                                       &job->ping_rejects);
    enum wl_transport t = wl_transport_of(transport);
    if (job->batch != NULL)
        wl_count_t(t, WL_T_pings_received, job->batch->n_pings);
    if (job->rejected != WL_REJECT_NONE) {
        wl_count_envelope_reject(t, job->rejected);
        wl_job_set_sample(job, buf, len, ing->cfg->quarantine_sample_bytes);
    }
    return job;
}
