#include "server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "forget.h"
#include "http_ingest.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "networks.h"
#include "retention.h"
#include "sched_slice.h"
#include "sinks.h"
#include "storage/store.h"

#define DRAIN_DEADLINE_MS 10000
#define LINGER_MS 2000      /* at most, after the last ack, for its delivery */
#define LINGER_CHECK_MS 10

struct wl_server {
    struct wl_ingest ing;
    uv_loop_t loop;
    uv_async_t done_async;  /* the writer says jobs are finished */
    uv_signal_t sigint, sigterm;
    uv_timer_t tick;        /* idle sweep and stats */
    uv_timer_t drain_deadline;
    uint64_t linger_until;  /* loop ms */
    struct wl_sinks *sinks;
    struct wl_api *api;
    struct wl_http_ingest *http; /* the public HTTP ingest listener, NULL when off */
    struct wl_networks *networks; /* the network table: the API replaces it, the HTTP
                                     listener looks addresses up (wl_networks_lookup) */
    struct wl_retention *retention;
    struct wl_forget_resumer *resumer; /* forgets a stop or crash interrupted */
    uint64_t last_stats;
    int stopping;
    int finished;
};

static void notify_from_writer(void *arg)
{
    struct wl_server *srv = arg;
    uv_async_send(&srv->done_async);
}

static void signals_from_writer(void *arg, uint64_t last_id)
{
    struct wl_server *srv = arg;
    if (srv->sinks != NULL)
        wl_sinks_notify(srv->sinks, last_id);
}

static void close_handle(uv_handle_t *h)
{
    if (h->loop != NULL && !uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_drain_deadline(uv_timer_t *t);

/* Everything in flight is acked: close what is left so the loop can end. */
static void finish_if_drained(struct wl_server *srv, int force)
{
    if (srv->finished || (!force && srv->ing.inflight > 0))
        return;
    srv->finished = 1;
    wl_tcp_close_all(&srv->ing, force);
    close_handle((uv_handle_t *)&srv->tick);
    /* Connections linger until the kernel has delivered their acks, at most
     * LINGER_MS; the unreferenced timer does not hold the loop once the
     * last connection has closed. */
    srv->linger_until = uv_now(&srv->loop) + LINGER_MS;
    uv_timer_start(&srv->drain_deadline, on_drain_deadline, LINGER_CHECK_MS, LINGER_CHECK_MS);
    uv_unref((uv_handle_t *)&srv->drain_deadline);
    close_handle((uv_handle_t *)&srv->sigint);
    close_handle((uv_handle_t *)&srv->sigterm);
    /* done_async stays open, unreferenced, until the writer has stopped. */
    uv_unref((uv_handle_t *)&srv->done_async);
}

static void on_jobs_done(uv_async_t *h)
{
    struct wl_server *srv = h->data;
    struct wl_job *job = wl_writer_take_done(srv->ing.writer), *next;

    for (; job != NULL; job = next) {
        next = job->next;
        if (job->origin != NULL)
            wl_tcp_job_done(&srv->ing, job);
        else if (wl_http_job(job))
            wl_http_job_done(job);
        else
            wl_udp_job_done(&srv->ing, job);
    }
    wl_tcp_acks_flush(&srv->ing);
    if (srv->stopping)
        finish_if_drained(srv, 0);
}

static void on_drain_deadline(uv_timer_t *t)
{
    struct wl_server *srv = t->data;
    if (srv->finished) { /* connections lingering after their last ack */
        int late = uv_now(&srv->loop) >= srv->linger_until;
        wl_tcp_linger(&srv->ing, late);
        if (late)
            wl_tcp_close_all(&srv->ing, 1);
        return;
    }
    wl_warn("drain_deadline", "inflight=%llu action=closing_connections",
            (unsigned long long)srv->ing.inflight);
    finish_if_drained(srv, 1);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct wl_server *srv = h->data;
    if (srv->stopping) {
        wl_warn("signal", "signal=%s action=forced_stop", signum == SIGINT ? "SIGINT" : "SIGTERM");
        finish_if_drained(srv, 1);
        return;
    }
    srv->stopping = 1;
    srv->ing.draining = 1;
    if (srv->api != NULL)
        wl_api_set_ready(srv->api, 0);
    wl_info("stopping", "signal=%s inflight=%llu", signum == SIGINT ? "SIGINT" : "SIGTERM",
            (unsigned long long)srv->ing.inflight);
    wl_udp_stop(&srv->ing);
    wl_tcp_stop_accepting(&srv->ing);
    uv_timer_start(&srv->drain_deadline, on_drain_deadline, DRAIN_DEADLINE_MS, 0);
    finish_if_drained(srv, 0);
}

static void on_tick(uv_timer_t *t)
{
    struct wl_server *srv = t->data;
    uint64_t now = uv_now(&srv->loop);
    uint64_t every = srv->ing.cfg->stats_interval_ms;

    wl_tcp_sweep_idle(&srv->ing, now);
    if (every > 0 && now - srv->last_stats >= every) {
        srv->last_stats = now;
        wl_metrics_log("stats");
    }
}

static void log_ready(struct wl_server *srv)
{
    char udp[80] = "off", tcp[80] = "off";
    struct sockaddr_storage ss;
    int len;

    if (srv->ing.udp_on) {
        len = sizeof ss;
        if (uv_udp_getsockname(&srv->ing.udp, (struct sockaddr *)&ss, &len) == 0)
            wl_format_addr((struct sockaddr *)&ss, udp, sizeof udp);
    }
    if (srv->ing.tcp_on) {
        len = sizeof ss;
        if (uv_tcp_getsockname(&srv->ing.tcp, (struct sockaddr *)&ss, &len) == 0)
            wl_format_addr((struct sockaddr *)&ss, tcp, sizeof tcp);
    }
    char api[300] = "off";
    if (srv->api != NULL)
        wl_api_address(srv->api, api, sizeof api);
    char http[300] = "off";
    if (srv->http != NULL)
        wl_http_ingest_address(srv->http, http, sizeof http);
    wl_info("ready", "udp=%s tcp=%s api=%s http=%s data_dir=%s", udp, tcp, api, http,
            srv->ing.cfg->data_dir);
}

static int start_listeners(struct wl_server *srv, char *err, size_t errlen)
{
    const struct wl_config *cfg = srv->ing.cfg;
    int rc;

    if (cfg->udp_listen[0] != '\0' && (rc = wl_udp_start(&srv->ing, err, errlen)) != 0)
        return rc;
    if (cfg->tcp_listen[0] != '\0' && (rc = wl_tcp_start(&srv->ing, err, errlen)) != 0)
        return rc;
    return 0;
}

int wl_server_run(const struct wl_config *cfg)
{
    static struct wl_server srv_storage; /* large; one per process */
    struct wl_server *srv = &srv_storage;
    struct wl_store *store = NULL;
    char err[1024];
    int rc, exit_code = 1;

    memset(srv, 0, sizeof *srv);
    signal(SIGPIPE, SIG_IGN);
    if ((rc = wl_store_open(cfg->data_dir, WL_STORE_PRIMARY, &store, err, sizeof err)) != 0) {
        wl_error("start_failed", "stage=storage error=\"%s\"", err);
        return 1;
    }
    if ((rc = wl_networks_open(store, &srv->networks, NULL, err, sizeof err)) != 0) {
        wl_error("start_failed", "stage=networks error=\"%s\"", err);
        wl_store_close(store);
        return 1;
    }
    uv_loop_init(&srv->loop);
    srv->ing.loop = &srv->loop;
    srv->ing.cfg = cfg;
    wl_decoder_init(&srv->ing.decoder, cfg->max_inflated_bytes, cfg->max_pings_per_batch);
    uv_async_init(&srv->loop, &srv->done_async, on_jobs_done);
    srv->done_async.data = srv;
    uv_timer_init(&srv->loop, &srv->tick);
    srv->tick.data = srv;
    uv_timer_init(&srv->loop, &srv->drain_deadline);
    srv->drain_deadline.data = srv;
    uv_signal_init(&srv->loop, &srv->sigint);
    srv->sigint.data = srv;
    uv_signal_init(&srv->loop, &srv->sigterm);
    srv->sigterm.data = srv;

    if ((rc = wl_sinks_start(cfg, store, &srv->sinks, err, sizeof err)) != 0) {
        wl_error("start_failed", "stage=sinks error=\"%s\"", err);
        goto close_loop;
    }
    if ((rc = wl_writer_start(cfg, store, 1, notify_from_writer, srv, signals_from_writer, srv,
                              &srv->ing.writer, err, sizeof err)) != 0) {
        wl_error("start_failed", "stage=writer error=\"%s\"", err);
        goto close_loop;
    }
    /* Forgets a stop or crash left half done finish beside ingest. */
    if ((rc = wl_forget_resume_start(srv->ing.writer, store, &srv->resumer, err,
                                     sizeof err)) != 0) {
        wl_error("start_failed", "stage=forget_resume error=\"%s\"", err);
        goto close_loop;
    }
    if ((rc = wl_ingest_limits_init(&srv->ing, err, sizeof err)) != 0) {
        wl_error("start_failed", "stage=limits error=\"%s\"", err);
        goto close_loop;
    }
    if ((rc = start_listeners(srv, err, sizeof err)) != 0) {
        wl_error("start_failed", "stage=listen error=\"%s\"", err);
        goto close_loop;
    }
    if ((rc = wl_api_start(cfg, store, &srv->api, err, sizeof err)) != 0) {
        wl_error("start_failed", "stage=api error=\"%s\"", err);
        goto close_loop;
    }
    wl_api_set_writer(srv->api, srv->ing.writer);
    wl_api_set_networks(srv->api, srv->networks);
    if ((rc = wl_http_ingest_start(cfg, srv->ing.writer, srv->networks, &srv->http, err,
                                   sizeof err)) != 0) {
        wl_error("start_failed", "stage=http error=\"%s\"", err);
        goto close_loop;
    }
    if ((rc = wl_retention_start(cfg, store, &srv->retention, err, sizeof err)) != 0) {
        wl_error("start_failed", "stage=retention error=\"%s\"", err);
        goto close_loop;
    }
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_timer_start(&srv->tick, on_tick, 250, 250);
    srv->last_stats = uv_now(&srv->loop);
    log_ready(srv);

    /* the loop writes the acks: woken, it runs at once (sched_slice.h) */
    int sliced = wl_thread_short_slice();
    wl_debug("ack_slice", "thread=loop us=%d granted=%d", WL_ACK_SLICE_US, sliced);
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    exit_code = 0;

close_loop:
    /* The writer goes first: it commits what is queued and sends no more
     * notifications; then every handle still open is closed. Forgets in
     * progress through the API finish before it stops. */
    wl_retention_stop(srv->retention);
    srv->retention = NULL;
    wl_http_ingest_quiesce(srv->http); /* submits nothing more; its jobs come back below */
    wl_api_set_writer(srv->api, NULL);
    wl_forget_resume_stop(srv->resumer); /* what is left resumes at the next start */
    srv->resumer = NULL;
    /* Jobs the writer finished after the loop ended go back to their
     * connections, which free themselves once nothing is in flight. */
    if (srv->ing.writer != NULL) {
        wl_writer_join(srv->ing.writer);
        on_jobs_done(&srv->done_async);
    }
    wl_http_ingest_stop(srv->http); /* after its batches came back: none is suspended */
    srv->http = NULL;
    wl_writer_stop(srv->ing.writer);
    srv->ing.writer = NULL;
    wl_sinks_stop(srv->sinks);
    srv->sinks = NULL;
    wl_api_stop(srv->api);
    srv->api = NULL;
    wl_networks_free(srv->networks); /* after its users: the API and the HTTP listener */
    srv->networks = NULL;
    wl_udp_stop(&srv->ing);
    wl_tcp_stop_accepting(&srv->ing);
    wl_tcp_close_all(&srv->ing, 1);
    uv_handle_t *handles[] = {
        (uv_handle_t *)&srv->done_async, (uv_handle_t *)&srv->tick,
        (uv_handle_t *)&srv->drain_deadline, (uv_handle_t *)&srv->sigint,
        (uv_handle_t *)&srv->sigterm,
    };
    for (size_t i = 0; i < sizeof handles / sizeof handles[0]; i++)
        close_handle(handles[i]);
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&srv->loop) != 0) {
        wl_warn("loop_close", "result=handles_still_open");
        exit_code = exit_code ? exit_code : 1;
    }
    wl_decoder_free(&srv->ing.decoder);
    free(srv->ing.udp_buf);
    wl_ingest_limits_free(&srv->ing);
    wl_store_close(store);
    wl_metrics_log("stats_final");
    wl_info("stopped", "exit_code=%d", exit_code);
    return exit_code;
}
