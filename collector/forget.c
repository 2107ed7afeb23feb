/* Forget, the requester's side (an API thread, the CLI, the resume thread):
 * targets, the scan, the steps handed to the writer one at a time, the
 * resume of interrupted forgets, and reading the deletion records. The
 * writer's side is forget_apply.c. */
#include "forget.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forget_req.h"
#include "log.h"
#include "metrics.h"
#include "records.pb-c.h"
#include "writer.h"

typedef Warmline__Store__V1__Quarantined quarantine_rec;

#define SCAN_READAHEAD (2u << 20) /* bytes read at a time by the raw ping scan */
#define CANCEL_EVERY 4096         /* records scanned between looks at the cancel flag */

/* ---- targets ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int install_id_check(const char *id, char *err, size_t errlen)
{
    size_t n = strlen(id);
    if (n == 0 || n > WL_INSTALL_ID_MAX) {
        snprintf(err, errlen, "an install id has 1 to %d characters, got %zu", WL_INSTALL_ID_MAX,
                 n);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (id[i] < 0x20 || id[i] > 0x7e) {
            snprintf(err, errlen, "an install id is printable ASCII");
            return -EINVAL;
        }
    }
    return 0;
}

int wl_forget_target_install(struct wl_forget_target *t, const char *id, char *err,
                             size_t errlen)
{
    memset(t, 0, sizeof *t);
    if (install_id_check(id, err, errlen) != 0)
        return -EINVAL;
    t->kind = WL_FORGET_INSTALL;
    snprintf(t->install, sizeof t->install, "%s", id);
    return 0;
}

void wl_forget_target_key(struct wl_forget_target *t, const uint8_t key[WL_ORG_KEY_BYTES])
{
    memset(t, 0, sizeof *t);
    t->kind = WL_FORGET_ORG;
    t->org_len = wl_org_id(t->org, key, WL_ORG_KEY_BYTES, NULL, 0);
}

int wl_forget_target_org(struct wl_forget_target *t, const char *text, char *err, size_t errlen)
{
    static const char install[] = "install:";
    size_t n = strlen(text);

    memset(t, 0, sizeof *t);
    if (strncmp(text, install, sizeof install - 1) == 0) {
        const char *id = text + sizeof install - 1;
        if (install_id_check(id, err, errlen) != 0)
            return -EINVAL;
        t->kind = WL_FORGET_ORG;
        t->org_len = wl_org_id(t->org, NULL, 0, id, strlen(id));
        return 0;
    }
    if (n == 2 * WL_ORG_KEY_BYTES) {
        uint8_t key[WL_ORG_KEY_BYTES];
        size_t i;
        for (i = 0; i < WL_ORG_KEY_BYTES; i++) {
            int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);
            if (hi < 0 || lo < 0)
                break;
            key[i] = (uint8_t)(hi << 4 | lo);
        }
        if (i == WL_ORG_KEY_BYTES) {
            wl_forget_target_key(t, key);
            return 0;
        }
    }
    snprintf(err, errlen, "an organization is its org key (64 hex digits) or install:<id>");
    return -EINVAL;
}

/* ---- the request ---- */

static void req_init(struct wl_forget_req *req, const struct wl_forget_target *t,
                     const char *via, size_t slice)
{
    memset(req, 0, sizeof *req);
    req->target = *t;
    snprintf(req->via, sizeof req->via, "%s", via ? via : "");
    req->slice = slice == 0 ? WL_FORGET_SLICE : slice < 4 ? 4 : slice;
    pthread_mutex_init(&req->mu, NULL);
    pthread_cond_init(&req->cv, NULL);
}

static void req_free(struct wl_forget_req *req)
{
    wl_idset_free(&req->installs);
    free(req->edits);
    free(req->keys);
    free(req->pings);
    free(req->blob);
    pthread_mutex_destroy(&req->mu);
    pthread_cond_destroy(&req->cv);
}

void wl_forget_done(struct wl_forget_req *req, int rc)
{
    pthread_mutex_lock(&req->mu);
    req->rc = rc;
    req->done = 1;
    pthread_cond_signal(&req->cv);
    pthread_mutex_unlock(&req->mu);
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Hands the writer one step and waits for its answer; how long that took
 * goes into the result (queued groups ahead of it included). */
static int run_step(struct wl_writer *w, struct wl_forget_req *req, enum wl_forget_step step)
{
    struct wl_job *job = wl_job_new();
    uint64_t t0 = mono_us();
    if (job == NULL)
        return -ENOMEM;
    req->step = step;
    req->done = 0;
    job->forget = req;
    job->transport = "forget";
    wl_writer_submit(w, job);
    pthread_mutex_lock(&req->mu);
    while (!req->done)
        pthread_cond_wait(&req->cv, &req->mu);
    pthread_mutex_unlock(&req->mu);
    uint64_t us = mono_us() - t0;
    if (step == WL_FORGET_STEP_MEMORY)
        req->result.memory_us = us;
    else if (step == WL_FORGET_STEP_SLICE && us > req->result.slice_us_max)
        req->result.slice_us_max = us;
    return req->rc;
}

static int cancelled(const int *cancel)
{
    return cancel != NULL && __atomic_load_n(cancel, __ATOMIC_RELAXED) != 0;
}

/* The set: what the memory step forgot (its lines), and the ids the target
 * names itself. */
static int build_installs(struct wl_forget_req *req, const char *blob, size_t len)
{
    const struct wl_forget_target *t = &req->target;
    int rc = 0;
    for (size_t at = 0; at < len && rc == 0;) {
        const char *nl = memchr(blob + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (blob + at)) : len - at;
        if (n > 0 && n <= WL_INSTALL_ID_MAX)
            rc = wl_idset_add(&req->installs, blob + at, n);
        at += n + 1;
    }
    if (rc == 0 && t->kind == WL_FORGET_INSTALL)
        rc = wl_idset_add(&req->installs, t->install, strlen(t->install));
    if (rc == 0 && t->kind == WL_FORGET_ORG && t->org[0] == WL_ORG_TAG_INSTALL)
        rc = wl_idset_add(&req->installs, (const char *)t->org + 1, t->org_len - 1);
    return rc;
}

/* ---- step 2: the scan ---- */

static int grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? 2 * *cap : 1024;
    void *p = realloc(*v, c * size);
    if (p == NULL)
        return -ENOMEM;
    *v = p;
    *cap = c;
    return 0;
}

static int add_ping(struct wl_forget_req *req, uint64_t seq)
{
    if (grow((void **)&req->pings, &req->cap_pings, req->n_pings, sizeof *req->pings))
        return -ENOMEM;
    req->pings[req->n_pings++] = seq;
    return 0;
}

static int add_edit(struct wl_forget_req *req, uint64_t id)
{
    if (grow((void **)&req->edits, &req->cap_edits, req->n_edits, sizeof *req->edits))
        return -ENOMEM;
    req->edits[req->n_edits++] = id;
    return 0;
}

static int add_key(struct wl_forget_req *req, enum wl_cf cf, const void *key, size_t len,
                   enum wl_forget_count count, int indexed)
{
    if (len > sizeof req->keys[0].key)
        return 0; /* no key of ours is that long */
    if (grow((void **)&req->keys, &req->cap_keys, req->n_keys, sizeof *req->keys))
        return -ENOMEM;
    struct wl_forget_key *k = &req->keys[req->n_keys++];
    k->cf = (uint8_t)cf;
    k->count = (uint8_t)count;
    k->indexed = (uint8_t)indexed;
    k->len = (uint8_t)len;
    memcpy(k->key, key, len);
    return 0;
}

struct scan {
    struct wl_forget_req *req;
    struct wl_store *store;
    const int *cancel;
    uint64_t seen;
    char *err;
    size_t errlen;
};

static int scan_fail(struct scan *s, int rc)
{
    if (rc == -ENOMEM)
        snprintf(s->err, s->errlen, "out of memory");
    else if (rc == -ECANCELED)
        snprintf(s->err, s->errlen, "stopped: the forget resumes at the next start");
    return rc;
}

static int scan_tick(struct scan *s)
{
    return ++s->seen % CANCEL_EVERY == 0 && cancelled(s->cancel) ? -ECANCELED : 0;
}

/* Raw pings up to pings_upto: the organization's, and every forgotten
 * install's wherever it was (an install that moved, or had no org key). */
static int scan_pings(struct scan *s)
{
    struct wl_forget_req *req = s->req;
    const struct wl_forget_target *t = &req->target;
    struct wl_iter *it;
    uint8_t k[8];
    int rc = 0;

    if (req->pings_upto == 0)
        return 0;
    if ((it = wl_iter_new_scan(s->store, WL_CF_PINGS, SCAN_READAHEAD)) == NULL)
        return scan_fail(s, -ENOMEM);
    wl_be64_put(k, 1);
    for (wl_iter_seek(it, k, sizeof k); wl_iter_valid(it) && rc == 0; wl_iter_next(it)) {
        size_t klen, vlen;
        const char *key = wl_iter_key(it, &klen);
        struct wl_ping_peek pk;
        if (klen != 8)
            continue;
        uint64_t seq = wl_be64_get(key);
        if (seq > req->pings_upto)
            break;
        const char *v = wl_iter_value(it, &vlen);
        if ((rc = scan_tick(s)) != 0 || wl_ping_peek(v, vlen, &pk) != 0)
            continue;
        if ((t->kind == WL_FORGET_ORG && pk.org_len == t->org_len &&
             memcmp(pk.org, t->org, t->org_len) == 0) ||
            (pk.install_id != NULL &&
             wl_idset_has(&req->installs, pk.install_id, pk.install_len)))
            rc = add_ping(req, seq);
    }
    if (rc == 0)
        rc = wl_iter_status(it, s->err, s->errlen);
    wl_iter_free(it);
    return rc != 0 ? scan_fail(s, rc) : 0;
}

/* Signals up to signals_upto of other organizations that list a forgotten
 * install: the writer keeps them without it. */
static int scan_signals(struct scan *s)
{
    struct wl_forget_req *req = s->req;
    struct wl_iter *it;
    int rc = 0;

    if (req->signals_upto == 0 || req->installs.n == 0)
        return 0;
    if ((it = wl_iter_new(s->store, WL_CF_SIGNALS)) == NULL)
        return scan_fail(s, -ENOMEM);
    for (wl_iter_seek_first(it); wl_iter_valid(it) && rc == 0; wl_iter_next(it)) {
        size_t klen, vlen;
        const char *key = wl_iter_key(it, &klen);
        if (klen != 8)
            continue;
        uint64_t id = wl_be64_get(key);
        if (id > req->signals_upto)
            break;
        const char *v = wl_iter_value(it, &vlen);
        if ((rc = scan_tick(s)) != 0)
            break;
        int r = wl_forget_edit_of(req, v, vlen, NULL, NULL);
        rc = r < 0 ? r : r > 0 ? add_edit(req, id) : 0;
    }
    if (rc == 0)
        rc = wl_iter_status(it, s->err, s->errlen);
    wl_iter_free(it);
    return rc != 0 ? scan_fail(s, rc) : 0;
}

/* Every key of it's column family under the organization's prefix with
 * suffix_len more bytes (org_signals: of a signal up to signals_upto). */
static int scan_prefixed(struct scan *s, struct wl_iter *it, enum wl_cf cf, const uint8_t *org,
                         size_t org_len, size_t suffix_len, enum wl_forget_count count)
{
    uint8_t prefix[1 + WL_ORG_ID_MAX];
    int rc = 0;
    prefix[0] = (uint8_t)org_len;
    memcpy(prefix + 1, org, org_len);
    for (wl_iter_seek(it, prefix, 1 + org_len); wl_iter_valid(it) && rc == 0;
         wl_iter_next(it)) {
        size_t klen;
        const char *k = wl_iter_key(it, &klen);
        if (klen < 1 + org_len || memcmp(k, prefix, 1 + org_len) != 0)
            break;
        if (klen != 1 + org_len + suffix_len)
            continue;
        if (cf == WL_CF_ORG_SIGNALS && wl_be64_get(k + klen - 8) > s->req->signals_upto)
            continue; /* a signal of a new organization of that id */
        rc = add_key(s->req, cf, k, klen, count, cf == WL_CF_ORG_SIGNALS);
    }
    return rc;
}

/* An organization's forget takes its installs' own organizations too
 * (install:<id>, from pings without an org key): their history, signals
 * and records. One seek per install and table. */
static int scan_own_orgs(struct scan *s)
{
    struct wl_forget_req *req = s->req;
    const struct wl_forget_target *t = &req->target;
    struct wl_iter *daily = NULL, *index = NULL;
    int rc = 0;

    if (t->kind != WL_FORGET_ORG || req->installs.n == 0)
        return 0;
    daily = wl_iter_new(s->store, WL_CF_DAILY);
    index = wl_iter_new(s->store, WL_CF_ORG_SIGNALS);
    if (daily == NULL || index == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < req->installs.n && rc == 0; i++) {
        uint8_t id[WL_ORG_ID_MAX];
        char *val = NULL;
        size_t vlen, len = wl_org_id(id, NULL, 0, req->installs.v[i], req->installs.lens[i]);
        int taken = 0; /* the target itself, or another the memory step took */
        for (size_t j = 0; j < req->n_orgs; j++)
            taken |= req->org_lens[j] == len && memcmp(req->orgs[j], id, len) == 0;
        if (taken)
            continue;
        if ((rc = scan_tick(s)) != 0 ||
            (rc = scan_prefixed(s, daily, WL_CF_DAILY, id, len, 4, WL_FC_daily)) != 0 ||
            (rc = scan_prefixed(s, index, WL_CF_ORG_SIGNALS, id, len, 8, WL_FC_signals)) != 0)
            break;
        rc = wl_store_get(s->store, WL_CF_ORGS, id, len, &val, &vlen, s->err, s->errlen);
        free(val);
        if (rc == 0)
            rc = add_key(req, WL_CF_ORGS, id, len, WL_FC_orgs, 0);
        else if (rc == -ENOENT)
            rc = 0;
    }
    if (rc == 0 && (rc = wl_iter_status(daily, s->err, s->errlen)) == 0)
        rc = wl_iter_status(index, s->err, s->errlen);
done:
    wl_iter_free(daily);
    wl_iter_free(index);
    return rc != 0 ? scan_fail(s, rc) : 0;
}

/* Whether a quarantined sample names the target: the org key or a
 * forgotten install id as the wire encodes them (uncompressed input; a
 * zlib payload cannot be searched). One set lookup per candidate field. */
static int sample_names(const struct wl_forget_req *req, const uint8_t *p, size_t n)
{
    const struct wl_forget_target *t = &req->target;
    if (t->kind == WL_FORGET_ORG && t->org[0] == WL_ORG_TAG_KEY) {
        uint8_t pat[2 + WL_ORG_KEY_BYTES];
        pat[0] = 0x12; /* Ping.org_key, length-delimited */
        pat[1] = WL_ORG_KEY_BYTES;
        memcpy(pat + 2, t->org + 1, WL_ORG_KEY_BYTES);
        if (memmem(p, n, pat, sizeof pat) != NULL)
            return 1;
    }
    for (size_t i = 0; i + 2 < n; i++) {
        size_t len = p[i + 1];
        if (p[i] == 0x0a /* Ping.install_id */ && len > 0 && len <= WL_INSTALL_ID_MAX &&
            i + 2 + len <= n && wl_idset_has(&req->installs, (const char *)p + i + 2, len))
            return 1;
    }
    return 0;
}

static int scan_quarantine(struct scan *s)
{
    struct wl_iter *it = wl_iter_new(s->store, WL_CF_QUARANTINE);
    int rc = 0;
    if (it == NULL)
        return scan_fail(s, -ENOMEM);
    for (wl_iter_seek_first(it); wl_iter_valid(it) && rc == 0; wl_iter_next(it)) {
        size_t klen, vlen;
        const char *k = wl_iter_key(it, &klen);
        const char *v = wl_iter_value(it, &vlen);
        if ((rc = scan_tick(s)) != 0)
            break;
        quarantine_rec *q = warmline__store__v1__quarantined__unpack(NULL, vlen,
                                                                     (const uint8_t *)v);
        if (q == NULL)
            continue;
        if (sample_names(s->req, q->sample.data, q->sample.len))
            rc = add_key(s->req, WL_CF_QUARANTINE, k, klen, WL_FC_quarantine, 0);
        warmline__store__v1__quarantined__free_unpacked(q, NULL);
    }
    if (rc == 0)
        rc = wl_iter_status(it, s->err, s->errlen);
    wl_iter_free(it);
    return rc != 0 ? scan_fail(s, rc) : 0;
}

static int scan(struct wl_forget_req *req, struct wl_store *store, const int *cancel,
                char *err, size_t errlen)
{
    struct scan s = {.req = req, .store = store, .cancel = cancel, .err = err,
                     .errlen = errlen};
    int rc;
    /* An organization's install records: the first step left them to the
     * slices (an install that pings again meanwhile keeps its record). With
     * no marker the first step found nothing to forget. */
    for (size_t i = 0; req->target.kind == WL_FORGET_ORG && req->marker != 0 &&
                       i < req->installs.n; i++) {
        if (add_key(req, WL_CF_INSTALLS, req->installs.v[i], req->installs.lens[i],
                    WL_FC_installs, 0) != 0)
            return scan_fail(&s, -ENOMEM);
    }
    if ((rc = scan_pings(&s)) != 0 || (rc = scan_signals(&s)) != 0 ||
        (rc = scan_own_orgs(&s)) != 0 || (rc = scan_quarantine(&s)) != 0)
        return rc;
    return 0;
}

/* ---- the steps in order ---- */

static void log_done(const struct wl_forget_req *req)
{
    const struct wl_forget_result *r = &req->result;
    const struct wl_forget_counts *c = &r->deleted;
    wl_count(WL_M_forgets, 1);
    /* What kind and how many, never whom. */
    wl_info("forget", "kind=%s deletion=%llu pings=%llu installs=%llu orgs=%llu daily=%llu "
            "signals=%llu named=%llu quarantine=%llu signals_edited=%llu slices=%llu "
            "slice_max=%llu slice_ms_max=%.1f memory_records=%llu memory_ms=%.1f resumed=%d",
            wl_forget_kind_name(req), (unsigned long long)r->deletion,
            (unsigned long long)c->pings, (unsigned long long)c->installs,
            (unsigned long long)c->orgs, (unsigned long long)c->daily,
            (unsigned long long)c->signals, (unsigned long long)c->named,
            (unsigned long long)c->quarantine, (unsigned long long)c->signals_edited,
            (unsigned long long)r->slices, (unsigned long long)r->slice_max,
            (double)r->slice_us_max / 1000.0, (unsigned long long)r->memory_records,
            (double)r->memory_us / 1000.0, req->resumed);
}

static int step_failed(const struct wl_forget_req *req, int rc, char *err, size_t errlen)
{
    if (rc == -ENOENT)
        snprintf(err, errlen, "nothing matched");
    else if (rc == -ECANCELED)
        snprintf(err, errlen, "stopped: the forget resumes at the next start");
    else if (req->marker != 0)
        snprintf(err, errlen, "the writer could not apply the forget: %s (it is finished at "
                 "the collector's next start)", strerror(-rc));
    else
        snprintf(err, errlen, "the writer could not apply the forget: %s", strerror(-rc));
    return rc;
}

/* The memory step (unless resumed), the scan, the slices, the final step. */
static int run(struct wl_writer *w, struct wl_store *store, struct wl_forget_req *req,
               const struct wl_forget_opts *opts, char *err, size_t errlen)
{
    const int *cancel = opts ? opts->cancel : NULL;
    unsigned stop_after = opts ? opts->stop_after : 0, wrote = 0;
    int rc;

    if (!req->resumed) {
        if (opts != NULL && opts->before_writer != NULL)
            opts->before_writer(opts->arg);
        if ((rc = run_step(w, req, WL_FORGET_STEP_MEMORY)) != 0)
            return step_failed(req, rc, err, errlen);
        if (req->marker != 0) /* a long forget shows in the log from here */
            wl_info("forget_started", "kind=%s marker=%llu installs=%llu memory_records=%llu "
                    "memory_ms=%.1f", wl_forget_kind_name(req), (unsigned long long)req->marker,
                    (unsigned long long)req->result.deleted.installs,
                    (unsigned long long)req->result.memory_records,
                    (double)req->result.memory_us / 1000.0);
        if (opts != NULL && opts->after_memory != NULL)
            opts->after_memory(opts->arg);
        if (req->marker != 0 && stop_after != 0 && ++wrote >= stop_after)
            return step_failed(req, -ECANCELED, err, errlen);
        if ((rc = build_installs(req, req->blob, req->blob_len)) != 0) {
            snprintf(err, errlen, "out of memory");
            return rc;
        }
    } else if ((rc = run_step(w, req, WL_FORGET_STEP_STALE)) != 0) {
        return step_failed(req, rc, err, errlen);
    }
    if ((rc = scan(req, store, cancel, err, errlen)) != 0)
        return rc;
    while (req->at_edits < req->n_edits || req->at_keys < req->n_keys ||
           req->at_pings < req->n_pings) {
        if (cancelled(cancel))
            return step_failed(req, -ECANCELED, err, errlen);
        if ((rc = run_step(w, req, WL_FORGET_STEP_SLICE)) != 0)
            return step_failed(req, rc, err, errlen);
        if (stop_after != 0 && ++wrote >= stop_after)
            return step_failed(req, -ECANCELED, err, errlen);
    }
    if ((rc = run_step(w, req, WL_FORGET_STEP_FINAL)) != 0)
        return step_failed(req, rc, err, errlen);
    log_done(req);
    return 0;
}

int wl_forget_ex(struct wl_writer *w, struct wl_store *store, const struct wl_forget_target *t,
                 const char *via, const struct wl_forget_opts *opts,
                 struct wl_forget_result *out, char *err, size_t errlen)
{
    struct wl_forget_req req;
    req_init(&req, t, via, opts ? opts->slice : 0);
    int rc = run(w, store, &req, opts, err, errlen);
    *out = req.result;
    req_free(&req);
    return rc;
}

int wl_forget(struct wl_writer *w, struct wl_store *store, const struct wl_forget_target *t,
              const char *via, struct wl_forget_result *out, char *err, size_t errlen)
{
    return wl_forget_ex(w, store, t, via, NULL, out, err, errlen);
}

/* ---- interrupted forgets ---- */

/* The sequences of the markers in store, ascending (malloc'd). */
static int list_markers(struct wl_store *store, uint64_t **out, size_t *n, char *err,
                        size_t errlen)
{
    struct wl_iter *it = wl_iter_new(store, WL_CF_META);
    size_t p = strlen(WL_FORGET_PENDING), cap = 0;
    int rc = 0;
    *out = NULL;
    *n = 0;
    if (it == NULL)
        return -ENOMEM;
    for (wl_iter_seek(it, WL_FORGET_PENDING, p); wl_iter_valid(it) && rc == 0;
         wl_iter_next(it)) {
        size_t klen;
        const char *k = wl_iter_key(it, &klen);
        if (klen < p || memcmp(k, WL_FORGET_PENDING, p) != 0)
            break;
        if (klen != p + WL_FORGET_SEQ_DIGITS)
            continue;
        char digits[WL_FORGET_SEQ_DIGITS + 1];
        memcpy(digits, k + p, WL_FORGET_SEQ_DIGITS);
        digits[WL_FORGET_SEQ_DIGITS] = '\0';
        if ((rc = grow((void **)out, &cap, *n, sizeof **out)) == 0)
            (*out)[(*n)++] = strtoull(digits, NULL, 10);
    }
    if (rc == 0)
        rc = wl_iter_status(it, err, errlen);
    else
        snprintf(err, errlen, "out of memory");
    wl_iter_free(it);
    return rc;
}

static int hex_org(const char *hex, uint8_t *out, size_t *len)
{
    size_t n = 0;
    if (hex == NULL || sodium_hex2bin(out, WL_ORG_ID_MAX, hex, strlen(hex), NULL, &n, NULL) != 0 ||
        n == 0)
        return -EPROTO;
    *len = n;
    return 0;
}

/* The request the marker seq describes, as the memory step left it. */
static int load_marker(struct wl_store *store, uint64_t seq, struct wl_forget_req *req,
                       char *err, size_t errlen)
{
    char key[WL_FORGET_KEY_MAX], *text = NULL, *blob = NULL;
    size_t len = 0, blob_len = 0;
    json_t *o = NULL;
    int rc;

    size_t klen = wl_forget_meta_key(key, WL_FORGET_PENDING, seq);
    if ((rc = wl_store_get(store, WL_CF_META, key, klen, &text, &len, err, errlen)) != 0)
        return rc;
    klen = wl_forget_meta_key(key, WL_FORGET_INSTALLS, seq);
    if ((rc = wl_store_get(store, WL_CF_META, key, klen, &blob, &blob_len, err, errlen)) != 0 &&
        rc != -ENOENT)
        goto done;
    rc = -EPROTO;
    if ((o = json_loadb(text, len, 0, NULL)) == NULL)
        goto damaged;
    const char *kind = json_string_value(json_object_get(o, "kind"));
    const char *install = json_string_value(json_object_get(o, "install"));
    struct wl_forget_target t;
    memset(&t, 0, sizeof t);
    if (kind != NULL && strcmp(kind, "org") == 0) {
        t.kind = WL_FORGET_ORG;
        if (hex_org(json_string_value(json_object_get(o, "org")), t.org, &t.org_len) != 0)
            goto damaged;
    } else if (kind == NULL || strcmp(kind, "install") != 0 || install == NULL ||
               wl_forget_target_install(&t, install, err, errlen) != 0) {
        goto damaged;
    }
    req_init(req, &t, json_string_value(json_object_get(o, "via")), 0);
    req->resumed = 1;
    req->marker = seq;
    req->pings_upto = (uint64_t)json_integer_value(json_object_get(o, "pings_upto"));
    req->signals_upto = (uint64_t)json_integer_value(json_object_get(o, "signals_upto"));
    json_t *orgs = json_object_get(o, "orgs"), *d = json_object_get(o, "deleted");
    for (size_t i = 0; i < json_array_size(orgs) && req->n_orgs < WL_FORGET_ORGS_MAX; i++) {
        if (hex_org(json_string_value(json_array_get(orgs, i)), req->orgs[req->n_orgs],
                    &req->org_lens[req->n_orgs]) == 0)
            req->n_orgs++;
    }
#define GET_COUNT(name) \
    req->result.deleted.name = (uint64_t)json_integer_value(json_object_get(d, #name));
    WL_FORGET_COUNTS(GET_COUNT)
#undef GET_COUNT
    req->blob = blob;
    req->blob_len = blob_len;
    blob = NULL;
    if ((rc = build_installs(req, req->blob, req->blob_len)) != 0) {
        snprintf(err, errlen, "out of memory");
        req_free(req);
    }
    goto done;
damaged:
    snprintf(err, errlen, "forget marker %llu is damaged", (unsigned long long)seq);
done:
    json_decref(o);
    free(text);
    free(blob);
    return rc;
}

static int resume_list(struct wl_writer *w, struct wl_store *store, const uint64_t *seqs,
                       size_t n_seqs, const int *cancel, size_t *n, char *err, size_t errlen)
{
    const struct wl_forget_opts opts = {.cancel = cancel};
    int rc = 0;
    for (size_t i = 0; i < n_seqs && rc == 0; i++) {
        struct wl_forget_req req;
        if ((rc = load_marker(store, seqs[i], &req, err, errlen)) == -EPROTO) {
            wl_warn("forget_marker_damaged", "marker=%llu action=skipped",
                    (unsigned long long)seqs[i]); /* not ours: it cannot hold up the rest */
            rc = 0;
            continue;
        }
        if (rc != 0)
            break;
        wl_info("forget_resumed", "kind=%s marker=%llu pings_upto=%llu",
                wl_forget_kind_name(&req), (unsigned long long)seqs[i],
                (unsigned long long)req.pings_upto);
        rc = run(w, store, &req, &opts, err, errlen);
        req_free(&req);
        if (rc == 0 && n != NULL)
            (*n)++;
    }
    return rc;
}

int wl_forget_resume(struct wl_writer *w, struct wl_store *store, const int *cancel, size_t *n,
                     char *err, size_t errlen)
{
    uint64_t *seqs;
    size_t n_seqs;
    if (n != NULL)
        *n = 0;
    int rc = list_markers(store, &seqs, &n_seqs, err, errlen);
    if (rc == 0)
        rc = resume_list(w, store, seqs, n_seqs, cancel, n, err, errlen);
    free(seqs);
    return rc;
}

struct wl_forget_resumer {
    pthread_t thread;
    struct wl_writer *w;
    struct wl_store *store;
    uint64_t *seqs;
    size_t n_seqs;
    int cancel;
};

static void *resume_main(void *arg)
{
    struct wl_forget_resumer *r = arg;
    char err[512] = "";
    size_t n = 0;
    pthread_setname_np(pthread_self(), "wl-forget");
    int rc = resume_list(r->w, r->store, r->seqs, r->n_seqs, &r->cancel, &n, err, sizeof err);
    if (rc == -ECANCELED)
        wl_info("forget_resume_stopped", "done=%zu left=%zu", n, r->n_seqs - n);
    else if (rc != 0)
        wl_error("forget_resume_failed", "done=%zu left=%zu error=\"%s\"", n, r->n_seqs - n,
                 err);
    return NULL;
}

int wl_forget_resume_start(struct wl_writer *w, struct wl_store *store,
                           struct wl_forget_resumer **out, char *err, size_t errlen)
{
    struct wl_forget_resumer *r = calloc(1, sizeof *r);
    int rc;
    *out = NULL;
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    r->w = w;
    r->store = store;
    if ((rc = list_markers(store, &r->seqs, &r->n_seqs, err, errlen)) != 0 || r->n_seqs == 0)
        goto fail;
    if ((rc = pthread_create(&r->thread, NULL, resume_main, r)) != 0) {
        snprintf(err, errlen, "cannot start the forget resume thread: %s", strerror(rc));
        rc = -rc;
        goto fail;
    }
    *out = r;
    return 0;
fail:
    free(r->seqs);
    free(r);
    return rc;
}

void wl_forget_resume_stop(struct wl_forget_resumer *r)
{
    if (r == NULL)
        return;
    __atomic_store_n(&r->cancel, 1, __ATOMIC_RELAXED);
    pthread_join(r->thread, NULL);
    free(r->seqs);
    free(r);
}

/* ---- reading the records ---- */

int wl_forget_records(struct wl_store *store, const struct wl_snapshot *snap,
                      int (*fn)(void *arg, const char *json, size_t len), void *arg, char *err,
                      size_t errlen)
{
    struct wl_iter *it = wl_iter_new_at(store, snap, WL_CF_META);
    size_t p = sizeof WL_FORGET_RECORD - 1;
    if (it == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (wl_iter_seek(it, WL_FORGET_RECORD, p); wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen, vlen;
        const char *k = wl_iter_key(it, &klen);
        if (klen < p || memcmp(k, WL_FORGET_RECORD, p) != 0)
            break;
        const char *v = wl_iter_value(it, &vlen);
        if (fn(arg, v, vlen) != 0)
            break;
    }
    int rc = wl_iter_status(it, err, errlen);
    wl_iter_free(it);
    return rc;
}
