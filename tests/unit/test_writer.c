/* Unit tests for collector/writer.h with a real store in a temporary
 * directory: jobs in, statuses and counts out, in submission order; the
 * quarantine records; group commits; stop with work still queued; restart.
 * Completion is awaited on a condition signalled by the notify callback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "records.pb-c.h"
#include "state_read.h"
#include "storage/keys.h"
#include "writer.h"
#include "tmpdir.h"

/* ---- fixture ---- */

struct fx {
    char root[64];
    char db[128];
    struct wl_config cfg;
    struct wl_store *store;
    struct wl_writer *w;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int notified;
    int notify_calls;
};

static void on_done(void *arg)
{
    struct fx *f = arg;
    pthread_mutex_lock(&f->mu);
    f->notified = 1;
    f->notify_calls++;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[512];
    if (f == NULL)
        return -1;
    wl_log_min_level = WL_LOG_WARN;
    snprintf(f->root, sizeof f->root, "/tmp/wl-test-writer-XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    snprintf(f->db, sizeof f->db, "%s/db", f->root);
    wl_config_defaults(&f->cfg);
    snprintf(f->cfg.data_dir, sizeof f->cfg.data_dir, "%s", f->db);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    if (wl_store_open(f->db, WL_STORE_PRIMARY, &f->store, err, sizeof err) != 0) {
        print_error("store: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    wl_writer_stop(f->w);
    wl_store_close(f->store);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    int rc = wl_test_rmtree(f->root);
    free(f);
    return rc;
}

static void start(struct fx *f)
{
    char err[512] = "";
    int rc = wl_writer_start(&f->cfg, f->store, 0, on_done, f, NULL, NULL, &f->w, err, sizeof err);
    if (rc != 0)
        fail_msg("writer start: %d %s", rc, err);
    assert_non_null(f->w);
}

static void stop(struct fx *f)
{
    wl_writer_stop(f->w);
    f->w = NULL;
}

/* Takes finished jobs until n have come back; returns them in an array in
 * the order they came. Waits on the notify condition, never sleeps; gives up
 * after 60 s. */
static struct wl_job **collect(struct fx *f, size_t n)
{
    struct wl_job **out = calloc(n ? n : 1, sizeof *out);
    size_t got = 0;
    assert_non_null(out);
    while (got < n) {
        pthread_mutex_lock(&f->mu);
        while (!f->notified) {
            struct timespec deadline;
            clock_gettime(CLOCK_REALTIME, &deadline);
            deadline.tv_sec += 60;
            if (pthread_cond_timedwait(&f->cv, &f->mu, &deadline) == ETIMEDOUT) {
                pthread_mutex_unlock(&f->mu);
                fail_msg("timed out with %zu of %zu jobs back", got, n);
            }
        }
        f->notified = 0;
        pthread_mutex_unlock(&f->mu);
        for (struct wl_job *j = wl_writer_take_done(f->w), *next; j != NULL; j = next) {
            next = j->next;
            if (got == n)
                fail_msg("more jobs came back than were submitted");
            out[got++] = j;
        }
    }
    return out;
}

static void free_jobs(struct wl_job **jobs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        wl_job_free(jobs[i]);
    free(jobs);
}

/* ---- building jobs ---- */

struct pspec {
    const char *id;
    int key_byte; /* -1: no org_key */
    uint64_t seq;
    uint32_t users;
};

/* A job whose batch is heap-allocated the way the decoder makes it (so that
 * wl_job_free can free it). */
static struct wl_job *job_of(const struct pspec *specs, size_t n, const char *transport)
{
    wl_ping_batch batch = WARMLINE__V1__PING_BATCH__INIT;
    wl_ping *pings = calloc(n ? n : 1, sizeof *pings);
    wl_ping **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    uint8_t keys[16][32];
    assert_non_null(pings);
    assert_non_null(ptrs);
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        wl_ping init = WARMLINE__V1__PING__INIT;
        pings[i] = init;
        pings[i].install_id = (char *)specs[i].id;
        if (specs[i].key_byte >= 0) {
            memset(keys[i], specs[i].key_byte, 32);
            pings[i].org_key.data = keys[i];
            pings[i].org_key.len = 32;
        }
        pings[i].seq = specs[i].seq;
        pings[i].registered_users = specs[i].users;
        pings[i].version = "9.11";
        ptrs[i] = &pings[i];
    }
    batch.n_pings = n;
    batch.pings = ptrs;
    size_t len = warmline__v1__ping_batch__get_packed_size(&batch);
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    warmline__v1__ping_batch__pack(&batch, buf);
    free(ptrs);
    free(pings);

    struct wl_job *job = wl_job_new();
    assert_non_null(job);
    job->batch = warmline__v1__ping_batch__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(job->batch);
    job->received_at = 1700000000000;
    job->transport = transport;
    snprintf(job->peer, sizeof job->peer, "127.0.0.1:40000");
    return job;
}

/* ---- reading the store, and memory ---- */

/* The writer's memory holds the install (state_read.h). */
static int install_in_memory(struct fx *f, const char *id)
{
    Warmline__Store__V1__InstallState *rec = NULL;
    int rc = wl_state_read_install(wl_writer_state_reader(f->w), id, &rec);
    if (rec != NULL) {
        assert_string_equal(rec->install_id, id);
        assert_int_equal(rec->n_counts, WL_N_COUNTS);
        warmline__store__v1__install_state__free_unpacked(rec, NULL);
    }
    assert_true(rc == 0 || rc == -ENOENT);
    return rc == 0;
}

typedef Warmline__Store__V1__Quarantined qrec;

/* Every quarantine record, in key order; *n set. */
static qrec **read_quarantine(struct wl_store *s, size_t *n)
{
    qrec **out = NULL;
    size_t cap = 0;
    *n = 0;
    struct wl_iter *it = wl_iter_new(s, WL_CF_QUARANTINE);
    for (wl_iter_seek_first(it); wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen, vlen;
        const char *k = wl_iter_key(it, &klen);
        const char *v = wl_iter_value(it, &vlen);
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            out = realloc(out, cap * sizeof *out);
            assert_non_null(out);
        }
        qrec *q = warmline__store__v1__quarantined__unpack(NULL, vlen, (const uint8_t *)v);
        assert_non_null(q);
        assert_int_equal(klen, 8);
        assert_int_equal(wl_be64_get(k), q->seq);
        out[(*n)++] = q;
    }
    wl_iter_free(it);
    return out;
}

static void free_quarantine(qrec **q, size_t n)
{
    for (size_t i = 0; i < n; i++)
        warmline__store__v1__quarantined__free_unpacked(q[i], NULL);
    free(q);
}

static int install_exists(struct wl_store *s, const char *id)
{
    char *val = NULL, err[256];
    size_t vlen;
    int rc = wl_store_get(s, WL_CF_INSTALLS, id, strlen(id), &val, &vlen, err, sizeof err);
    free(val);
    return rc == 0;
}

static uint64_t count_cf(struct wl_store *s, enum wl_cf cf)
{
    struct wl_iter *it = wl_iter_new(s, cf);
    uint64_t n = 0;
    for (wl_iter_seek_first(it); wl_iter_valid(it); wl_iter_next(it))
        n++;
    wl_iter_free(it);
    return n;
}

/* ---- tests ---- */

static void test_job_new_defaults(void **state)
{
    (void)state;
    struct wl_job *job = wl_job_new();
    assert_non_null(job);
    assert_null(job->next);
    assert_null(job->batch);
    assert_null(job->sample);
    assert_int_equal(job->rejected, WL_REJECT_NONE);
    assert_int_equal(job->first_reject, WL_REJECT_NONE);
    assert_int_equal(job->retry_later, 0);
    assert_int_equal(job->accepted, 0);
    assert_int_equal(job->duplicates, 0);
    assert_int_equal(job->n_rejected, 0);
    wl_job_free(job);
    wl_job_free(NULL);
}

static void test_job_sample(void **state)
{
    (void)state;
    struct wl_job *job = wl_job_new();
    const uint8_t input[10] = "0123456789";
    wl_job_set_sample(job, input, sizeof input, 4);
    assert_int_equal(job->sample_len, 4);
    assert_int_equal(job->input_len, 10);
    assert_memory_equal(job->sample, "0123", 4);
    /* setting again replaces it */
    wl_job_set_sample(job, input, 3, 4096);
    assert_int_equal(job->sample_len, 3);
    assert_int_equal(job->input_len, 3);
    assert_memory_equal(job->sample, "012", 3);
    wl_job_free(job);
}

static void test_job_message(void **state)
{
    (void)state;
    struct wl_job job;
    char buf[128];
    memset(&job, 0, sizeof job);
    job.rejected = WL_REJECT_NONE;
    job.status = WL_ACK_OK;
    strcpy(buf, "junk");
    wl_job_message(&job, buf, sizeof buf);
    assert_string_equal(buf, "");
    job.status = WL_ACK_PARTIAL;
    job.n_rejected = 2;
    job.first_reject = WL_REJECT_SEQ_ZERO;
    wl_job_message(&job, buf, sizeof buf);
    assert_string_equal(buf, "2 rejected, first: seq_zero");
    job.status = WL_ACK_REJECTED;
    wl_job_message(&job, buf, sizeof buf);
    assert_string_equal(buf, "every ping rejected, first: seq_zero");
    job.rejected = WL_REJECT_INFLATE_TOO_LARGE;
    wl_job_message(&job, buf, sizeof buf);
    assert_string_equal(buf, "envelope rejected: inflate_too_large");
    job.status = WL_ACK_RETRY_LATER;
    wl_job_message(&job, buf, sizeof buf);
    assert_non_null(strstr(buf, "send again"));
}

/* The main scenario: one job of every kind, statuses, counts, order, store. */
static void test_jobs_of_every_kind(void **state)
{
    struct fx *f = *state;
    uint64_t accepted0 = wl_counter_get(WL_M_pings_accepted);
    uint64_t dup0 = wl_counter_get(WL_M_pings_duplicate);
    uint64_t rej0 = wl_counter_get(WL_M_pings_rejected);
    uint64_t brej0 = wl_counter_get(WL_M_batches_rejected);
    start(f);

    static const struct pspec ok2[] = {{"inst-a", 1, 1, 10}, {"inst-b", 1, 1, 20}};
    static const struct pspec partial[] = {{"inst-c", 2, 1, 30}, {"inst-bad", 2, 0, 1}};
    static const struct pspec dup[] = {{"inst-a", 1, 1, 99}};
    static const struct pspec all_bad[] = {{"", -1, 5, 1}, {"inst-d", -1, 0, 1}};
    static const struct pspec mixed[] = {
        {"inst-a", 1, 2, 11}, {"inst-b", 1, 1, 99}, {"inst-e", -1, 1, 5}};
    static const uint8_t garbage[] = "\xff\xfe this is not an envelope";

    struct wl_job *jobs[8];
    jobs[0] = job_of(ok2, 2, "tcp");
    jobs[1] = job_of(partial, 2, "tcp");
    jobs[2] = job_of(dup, 1, "udp");
    jobs[3] = wl_job_new(); /* rejected whole, before the writer */
    jobs[3]->rejected = WL_REJECT_ENVELOPE_DECODE;
    jobs[3]->transport = "udp";
    snprintf(jobs[3]->peer, sizeof jobs[3]->peer, "10.1.2.3:5555");
    wl_job_set_sample(jobs[3], garbage, sizeof garbage - 1, f->cfg.quarantine_sample_bytes);
    jobs[4] = job_of(all_bad, 2, "tcp");
    jobs[5] = wl_job_new(); /* refused for overload */
    jobs[5]->retry_later = 1;
    jobs[6] = job_of(mixed, 3, "tcp");
    jobs[7] = job_of(NULL, 0, "tcp"); /* empty batch */
    for (int i = 0; i < 8; i++) {
        jobs[i]->batch_id = 100 + (uint64_t)i;
        wl_writer_submit(f->w, jobs[i]);
    }

    struct wl_job **back = collect(f, 8);
    for (int i = 0; i < 8; i++) {
        if (back[i] != jobs[i])
            fail_msg("job %d came back in position of another (batch_id %llu)", i,
                     (unsigned long long)back[i]->batch_id);
        assert_int_equal(back[i]->batch_id, 100 + (uint64_t)i);
    }

    /* 0: both accepted */
    assert_int_equal(jobs[0]->status, WL_ACK_OK);
    assert_int_equal(jobs[0]->accepted, 2);
    assert_int_equal(jobs[0]->duplicates, 0);
    assert_int_equal(jobs[0]->n_rejected, 0);
    assert_int_equal(jobs[0]->first_reject, WL_REJECT_NONE);
    /* 1: one accepted, one rejected for seq 0 */
    assert_int_equal(jobs[1]->status, WL_ACK_PARTIAL);
    assert_int_equal(jobs[1]->accepted, 1);
    assert_int_equal(jobs[1]->duplicates, 0);
    assert_int_equal(jobs[1]->n_rejected, 1);
    assert_int_equal(jobs[1]->first_reject, WL_REJECT_SEQ_ZERO);
    /* 2: a duplicate is OK, not accepted */
    assert_int_equal(jobs[2]->status, WL_ACK_OK);
    assert_int_equal(jobs[2]->accepted, 0);
    assert_int_equal(jobs[2]->duplicates, 1);
    assert_int_equal(jobs[2]->n_rejected, 0);
    /* 3: the envelope was rejected */
    assert_int_equal(jobs[3]->status, WL_ACK_REJECTED);
    assert_int_equal(jobs[3]->accepted + jobs[3]->duplicates + jobs[3]->n_rejected, 0);
    /* 4: every ping rejected: the first reason is the first ping's */
    assert_int_equal(jobs[4]->status, WL_ACK_REJECTED);
    assert_int_equal(jobs[4]->accepted, 0);
    assert_int_equal(jobs[4]->n_rejected, 2);
    assert_int_equal(jobs[4]->first_reject, WL_REJECT_INSTALL_ID_EMPTY);
    /* 5: retry later, nothing counted */
    assert_int_equal(jobs[5]->status, WL_ACK_RETRY_LATER);
    assert_int_equal(jobs[5]->accepted + jobs[5]->duplicates + jobs[5]->n_rejected, 0);
    /* 6: a newer ping, a duplicate, a new install */
    assert_int_equal(jobs[6]->status, WL_ACK_OK);
    assert_int_equal(jobs[6]->accepted, 2);
    assert_int_equal(jobs[6]->duplicates, 1);
    /* 7: empty */
    assert_int_equal(jobs[7]->status, WL_ACK_OK);
    assert_int_equal(jobs[7]->accepted + jobs[7]->duplicates + jobs[7]->n_rejected, 0);

    char msg[128];
    wl_job_message(jobs[1], msg, sizeof msg);
    assert_string_equal(msg, "1 rejected, first: seq_zero");
    wl_job_message(jobs[3], msg, sizeof msg);
    assert_string_equal(msg, "envelope rejected: envelope_decode");

    /* The counters moved by as much. */
    assert_int_equal(wl_counter_get(WL_M_pings_accepted) - accepted0, 5);
    assert_int_equal(wl_counter_get(WL_M_pings_duplicate) - dup0, 2);
    assert_int_equal(wl_counter_get(WL_M_pings_rejected) - rej0, 3);
    assert_int_equal(wl_counter_get(WL_M_batches_rejected) - brej0, 1);
    assert_int_equal(wl_writer_queued_pings(f->w), 0);

    /* The store: accepted pings; memory: their installs, and nothing of
     * the rejects; the records wait for a checkpoint (the stop's). */
    assert_int_equal(count_cf(f->store, WL_CF_PINGS), 5);
    const char *in[] = {"inst-a", "inst-b", "inst-c", "inst-e"};
    for (size_t i = 0; i < 4; i++)
        assert_true(install_in_memory(f, in[i]));
    assert_false(install_in_memory(f, "inst-bad"));
    assert_false(install_in_memory(f, "inst-d"));
    wl_writer_join(f->w);
    for (size_t i = 0; i < 4; i++)
        assert_true(install_exists(f->store, in[i]));
    assert_false(install_exists(f->store, "inst-bad"));
    assert_false(install_exists(f->store, "inst-d"));
    assert_int_equal(count_cf(f->store, WL_CF_INSTALLS), 4);

    /* The quarantine: one record per rejection, in order, with its reason. */
    size_t nq;
    qrec **q = read_quarantine(f->store, &nq);
    static const char *const reasons[] = {"seq_zero", "envelope_decode", "install_id_empty",
                                          "seq_zero"};
    assert_int_equal(nq, 4);
    for (size_t i = 0; i < nq; i++) {
        if (strcmp(q[i]->reason, reasons[i]) != 0)
            fail_msg("quarantine %zu: reason %s, want %s", i, q[i]->reason, reasons[i]);
        assert_int_equal(q[i]->seq, i + 1);
        assert_true(q[i]->received_at > 1600000000000);
    }
    /* the envelope sample is the input itself, with its peer */
    assert_int_equal(q[1]->sample.len, sizeof garbage - 1);
    assert_memory_equal(q[1]->sample.data, garbage, sizeof garbage - 1);
    assert_int_equal(q[1]->sample_truncated_from, 0);
    assert_string_equal(q[1]->peer, "10.1.2.3:5555");
    assert_string_equal(q[1]->transport, "udp");
    /* a ping sample is the packed ping */
    Warmline__V1__Ping *p = warmline__v1__ping__unpack(NULL, q[0]->sample.len,
                                                       q[0]->sample.data);
    assert_non_null(p);
    assert_string_equal(p->install_id, "inst-bad");
    assert_int_equal(p->seq, 0);
    warmline__v1__ping__free_unpacked(p, NULL);
    assert_string_equal(q[0]->transport, "tcp");
    assert_string_equal(q[0]->peer, "127.0.0.1:40000");
    free_quarantine(q, nq);

    free_jobs(back, 8);
}

/* A truncated sample records the original length. */
static void test_quarantine_truncated_sample(void **state)
{
    struct fx *f = *state;
    f->cfg.quarantine_sample_bytes = 16;
    start(f);
    uint8_t input[100];
    memset(input, 'x', sizeof input);
    struct wl_job *job = wl_job_new();
    job->rejected = WL_REJECT_INFLATE_TOO_LARGE;
    job->transport = "tcp";
    wl_job_set_sample(job, input, sizeof input, f->cfg.quarantine_sample_bytes);
    wl_writer_submit(f->w, job);
    struct wl_job **back = collect(f, 1);
    assert_int_equal(back[0]->status, WL_ACK_REJECTED);
    free_jobs(back, 1);

    size_t nq;
    qrec **q = read_quarantine(f->store, &nq);
    assert_int_equal(nq, 1);
    assert_string_equal(q[0]->reason, "inflate_too_large");
    assert_int_equal(q[0]->sample.len, 16);
    assert_int_equal(q[0]->sample_truncated_from, 100);
    free_quarantine(q, nq);
}

/* At most quarantine_max_records are kept: the oldest go first. */
static void test_quarantine_bounded(void **state)
{
    struct fx *f = *state;
    f->cfg.quarantine_max_records = 3;
    start(f);
    struct wl_job *jobs[5];
    for (int i = 0; i < 5; i++) {
        uint8_t b = (uint8_t)('0' + i);
        jobs[i] = wl_job_new();
        jobs[i]->rejected = WL_REJECT_ENVELOPE_DECODE;
        wl_job_set_sample(jobs[i], &b, 1, 16);
        wl_writer_submit(f->w, jobs[i]);
    }
    struct wl_job **back = collect(f, 5);
    free_jobs(back, 5);
    size_t nq;
    qrec **q = read_quarantine(f->store, &nq);
    assert_int_equal(nq, 3);
    for (size_t i = 0; i < nq; i++) {
        assert_int_equal(q[i]->seq, 3 + i);
        assert_int_equal(q[i]->sample.data[0], '2' + i);
    }
    free_quarantine(q, nq);
}

/* Many small jobs with a small group size: all come back, in order. */
static void test_many_jobs_small_groups(void **state)
{
    struct fx *f = *state;
    enum { N = 200 };
    f->cfg.max_group_pings = 3;
    start(f);
    struct wl_job *jobs[N];
    char ids[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "m-%d", i % 50);
        struct pspec s[2] = {{ids[i], 9, (uint64_t)(i / 50) + 1, 1},
                             {ids[i], 9, (uint64_t)(i / 50) + 1, 1}}; /* 2nd: duplicate */
        jobs[i] = job_of(s, 2, "tcp");
        jobs[i]->batch_id = (uint64_t)i;
        wl_writer_submit(f->w, jobs[i]);
    }
    struct wl_job **back = collect(f, N);
    for (int i = 0; i < N; i++) {
        assert_ptr_equal(back[i], jobs[i]);
        assert_int_equal(back[i]->status, WL_ACK_OK);
        assert_int_equal(back[i]->accepted, 1);
        assert_int_equal(back[i]->duplicates, 1);
    }
    free_jobs(back, N);
    assert_int_equal(count_cf(f->store, WL_CF_PINGS), N);
    assert_int_equal(wl_writer_queued_pings(f->w), 0);
    wl_writer_join(f->w); /* the stop's checkpoint */
    assert_int_equal(count_cf(f->store, WL_CF_INSTALLS), 50);
    assert_int_equal(count_cf(f->store, WL_CF_ORGS), 1);
}

/* The state records wait for a checkpoint: checkpoint_pings pings (or the
 * interval) after the last one, not every group. Memory answers before. */
static void test_checkpoint_after_pings(void **state)
{
    struct fx *f = *state;
    enum { N = 30 };
    f->cfg.max_group_pings = 1;
    f->cfg.checkpoint_pings = 20;
    f->cfg.checkpoint_interval_ms = 3600 * 1000;
    start(f);
    struct wl_state_reader *r = wl_writer_state_reader(f->w);
    struct wl_state_position pos;
    uint64_t flushes0 = wl_counter_get(WL_M_state_flushes);
    char ids[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "c-%d", i);
        struct pspec s[1] = {{ids[i], 7, 1, 1}};
        struct wl_job *job = job_of(s, 1, "tcp");
        wl_writer_submit(f->w, job);
        free_jobs(collect(f, 1), 1); /* one group each */
        assert_true(install_in_memory(f, ids[i]));
        assert_int_equal(wl_state_read_position(r, &pos), 0);
        assert_int_equal(pos.ingest_seq, (uint64_t)i + 1);
        if (i + 1 < 20) { /* no checkpoint yet: the pings alone are on disk */
            assert_int_equal(count_cf(f->store, WL_CF_INSTALLS), 0);
            assert_int_equal(pos.checkpoint_seq, 0);
        } else if (i + 1 == 20) { /* the 20th ping's group carried one */
            assert_int_equal(count_cf(f->store, WL_CF_INSTALLS), 20);
            assert_int_equal(pos.checkpoint_seq, 20);
            assert_true(pos.checkpoint_at > 0);
        }
    }
    assert_int_equal(wl_counter_get(WL_M_state_flushes) - flushes0, 1);
    assert_int_equal(count_cf(f->store, WL_CF_PINGS), N);
    assert_int_equal(count_cf(f->store, WL_CF_INSTALLS), 20);
    /* The organization's record from memory has every install. */
    Warmline__Store__V1__OrgState *org = NULL;
    uint8_t key[33];
    key[0] = WL_ORG_TAG_KEY;
    memset(key + 1, 7, 32);
    assert_int_equal(wl_state_read_org(r, key, sizeof key, &org), 0);
    assert_int_equal(org->installs_total, N);
    warmline__store__v1__org_state__free_unpacked(org, NULL);
    wl_writer_join(f->w); /* the stop writes the rest */
    assert_int_equal(count_cf(f->store, WL_CF_INSTALLS), N);
    assert_int_equal(wl_counter_get(WL_M_state_flushes) - flushes0, 2);
}

/* Stopping with jobs queued commits them (and frees them). */
static void test_stop_commits_queued(void **state)
{
    struct fx *f = *state;
    start(f);
    for (int i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof id, "s-%d", i);
        struct pspec s[1] = {{id, -1, 1, 1}};
        wl_writer_submit(f->w, job_of(s, 1, "udp"));
    }
    stop(f); /* jobs not taken are freed by stop; valgrind checks that */
    assert_int_equal(count_cf(f->store, WL_CF_PINGS), 20);
    assert_int_equal(count_cf(f->store, WL_CF_INSTALLS), 20);
    assert_int_equal(count_cf(f->store, WL_CF_ORGS), 20);
}

/* A restarted writer remembers: dedup and the quarantine sequence go on. */
static void test_restart_continues(void **state)
{
    struct fx *f = *state;
    static const struct pspec a1[] = {{"r-a", 3, 1, 1}};
    static const struct pspec a2[] = {{"r-a", 3, 2, 2}};
    static const struct pspec bad[] = {{"r-bad", 3, 0, 1}};

    start(f);
    wl_writer_submit(f->w, job_of(a1, 1, "tcp"));
    wl_writer_submit(f->w, job_of(bad, 1, "tcp"));
    free_jobs(collect(f, 2), 2);
    stop(f);

    start(f);
    struct wl_job *j[3] = {job_of(a1, 1, "tcp"), job_of(a2, 1, "tcp"), job_of(bad, 1, "tcp")};
    for (int i = 0; i < 3; i++)
        wl_writer_submit(f->w, j[i]);
    struct wl_job **back = collect(f, 3);
    assert_int_equal(back[0]->duplicates, 1);
    assert_int_equal(back[0]->accepted, 0);
    assert_int_equal(back[1]->accepted, 1);
    assert_int_equal(back[2]->status, WL_ACK_REJECTED);
    free_jobs(back, 3);

    size_t nq;
    qrec **q = read_quarantine(f->store, &nq);
    assert_int_equal(nq, 2);
    assert_int_equal(q[0]->seq, 1);
    assert_int_equal(q[1]->seq, 2);
    free_quarantine(q, nq);
    assert_int_equal(count_cf(f->store, WL_CF_PINGS), 2);
}

/* Async durability works the same way, short of the fsync. */
static void test_async_durability(void **state)
{
    struct fx *f = *state;
    f->cfg.durability = WL_DURABILITY_ASYNC;
    start(f);
    static const struct pspec s[] = {{"as-1", -1, 1, 1}, {"as-2", -1, 1, 1}};
    wl_writer_submit(f->w, job_of(s, 2, "udp"));
    struct wl_job **back = collect(f, 1);
    assert_int_equal(back[0]->status, WL_ACK_OK);
    assert_int_equal(back[0]->accepted, 2);
    free_jobs(back, 1);
    assert_int_equal(count_cf(f->store, WL_CF_PINGS), 2);
}

/* Every job that comes back was announced through notify. */
static void test_notify_called(void **state)
{
    struct fx *f = *state;
    start(f);
    static const struct pspec s[] = {{"n-1", -1, 1, 1}};
    wl_writer_submit(f->w, job_of(s, 1, "udp"));
    free_jobs(collect(f, 1), 1);
    pthread_mutex_lock(&f->mu);
    int calls = f->notify_calls;
    pthread_mutex_unlock(&f->mu);
    assert_true(calls >= 1);
    /* nothing left to take */
    assert_null(wl_writer_take_done(f->w));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_new_defaults),
        cmocka_unit_test(test_job_sample),
        cmocka_unit_test(test_job_message),
        T(test_jobs_of_every_kind),
        T(test_quarantine_truncated_sample),
        T(test_quarantine_bounded),
        T(test_many_jobs_small_groups),
        T(test_checkpoint_after_pings),
        T(test_stop_commits_queued),
        T(test_restart_continues),
        T(test_async_durability),
        T(test_notify_called),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
