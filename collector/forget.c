#include "forget.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "records.pb-c.h"
#include "writer.h"

typedef Warmline__Store__V1__Signal signal_rec;
typedef Warmline__Store__V1__OrgState org_rec;
typedef Warmline__Store__V1__Quarantined quarantine_rec;

#define PING_CHUNK 100000          /* deletes per write when pings go first */
#define SEQ_DIGITS 20

static const char RECORD_PREFIX[] = "deletion:";
static const char RECORD_END[] = "deletion;"; /* ':' + 1: past every record */

/* ---- a set of install ids, sorted by length then bytes ---- */

struct idset {
    char **v;
    size_t n, cap;
};

static int id_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return alen < blen ? -1 : 1;
    return memcmp(a, b, alen);
}

/* The index of id, or where it would go (*found = 0). */
static size_t idset_find(const struct idset *s, const char *id, size_t len, int *found)
{
    size_t lo = 0, hi = s->n;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = id_cmp(s->v[mid], strlen(s->v[mid]), id, len);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int idset_has(const struct idset *s, const char *id, size_t len)
{
    int found;
    if (s == NULL || s->n == 0)
        return 0;
    idset_find(s, id, len, &found);
    return found;
}

static int idset_add(struct idset *s, const char *id, size_t len)
{
    int found;
    size_t at = idset_find(s, id, len, &found);
    if (found)
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        char **v = realloc(s->v, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    char *copy = strndup(id, len);
    if (copy == NULL)
        return -ENOMEM;
    memmove(s->v + at + 1, s->v + at, (s->n - at) * sizeof *s->v);
    s->v[at] = copy;
    s->n++;
    return 0;
}

static void idset_free(struct idset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

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

/* A signal of another organization, kept without the forgotten installs. */
struct edit {
    uint64_t id;
    uint8_t *val;                 /* the packed Signal (malloc'd) */
    size_t len;
    uint8_t org[WL_ORG_ID_MAX];
    size_t org_len;
};

struct wl_forget_req {
    struct wl_forget_target target;
    const char *via;

    /* what the requester's scan found, as of its snapshot */
    struct idset installs;        /* the installs it matched pings on */
    uint64_t *pings;              /* keys to delete, ascending */
    size_t n_pings, cap_pings;
    uint64_t pings_deleted_early; /* deleted by the requester (many pings) */
    uint64_t pings_upto;          /* the last ping key in the snapshot */
    uint64_t *edits;              /* signals that list a forgotten install */
    size_t n_edits, cap_edits;
    uint64_t signals_upto;        /* the last signal key in the snapshot */

    struct wl_forget_result result;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, rc;
};

const char *wl_forget_kind_name(const struct wl_forget_req *req)
{
    return req->target.kind == WL_FORGET_ORG ? "org" : "install";
}

const struct wl_forget_result *wl_forget_req_result(const struct wl_forget_req *req)
{
    return &req->result;
}

static void req_free(struct wl_forget_req *req)
{
    idset_free(&req->installs);
    free(req->pings);
    free(req->edits);
}

/* ---- scanning ---- */

/* The last key of cf (8 bytes, big-endian) as of snap, 0 when empty. */
static int last_seq(struct wl_store *store, const struct wl_snapshot *snap, enum wl_cf cf,
                    uint64_t *out, char *err, size_t errlen)
{
    struct wl_iter *it = wl_iter_new_at(store, snap, cf);
    size_t klen;
    if (it == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    *out = 0;
    wl_iter_seek_last(it);
    if (wl_iter_valid(it)) {
        const char *k = wl_iter_key(it, &klen);
        if (klen == 8)
            *out = wl_be64_get(k);
    }
    int rc = wl_iter_status(it, err, errlen);
    wl_iter_free(it);
    return rc;
}

struct ping_match {
    const uint8_t *org;           /* pings of this organization (NULL: none) */
    size_t org_len;
    const struct idset *installs; /* and pings of these installs */
};

static int ping_matches(const struct ping_match *m, const char *val, size_t vlen)
{
    struct wl_ping_peek pk;
    if (wl_ping_peek(val, vlen, &pk) != 0)
        return 0;
    if (m->org != NULL && pk.org_len == m->org_len && memcmp(pk.org, m->org, m->org_len) == 0)
        return 1;
    return pk.install_id != NULL && idset_has(m->installs, pk.install_id, pk.install_len);
}

/* Calls hit for each matching ping key in (after, upto] (upto 0: to the
 * end), in key order. */
static int scan_pings(struct wl_store *store, const struct wl_snapshot *snap, uint64_t after,
                      uint64_t upto, const struct ping_match *m,
                      int (*hit)(void *arg, uint64_t seq), void *arg, char *err, size_t errlen)
{
    struct wl_iter *it = wl_iter_new_at(store, snap, WL_CF_PINGS);
    uint8_t k[8];
    int rc = 0;

    if (it == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    wl_be64_put(k, after + 1);
    for (wl_iter_seek(it, k, sizeof k); wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen, vlen;
        const char *key = wl_iter_key(it, &klen);
        if (klen != 8)
            continue;
        uint64_t seq = wl_be64_get(key);
        if (upto != 0 && seq > upto)
            break;
        const char *v = wl_iter_value(it, &vlen);
        if (ping_matches(m, v, vlen) && (rc = hit(arg, seq)) != 0) {
            snprintf(err, errlen, "out of memory");
            break;
        }
    }
    if (rc == 0)
        rc = wl_iter_status(it, err, errlen);
    wl_iter_free(it);
    return rc;
}

static int same_org(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return a != NULL && b != NULL && alen == blen && memcmp(a, b, alen) == 0;
}

/* A signal that lists one of installs and is not skip_org's, packed again
 * without them into e (e->val malloc'd); with e NULL, only whether it
 * would be. Returns 1 (edited), 0 (nothing to edit) or -ENOMEM. */
static int edit_of(uint64_t id, const char *v, size_t vlen, const struct idset *installs,
                   const uint8_t *skip_org, size_t skip_len, struct edit *e)
{
    signal_rec *s = warmline__store__v1__signal__unpack(NULL, vlen, (const uint8_t *)v);
    int rc = 0;
    if (s == NULL)
        return 0;
    size_t n = s->n_install_ids, keep = 0;
    char *kept[n ? n : 1];
    for (size_t i = 0; i < n; i++) {
        if (!idset_has(installs, s->install_ids[i], strlen(s->install_ids[i])))
            kept[keep++] = s->install_ids[i];
    }
    if (keep < n && !same_org(s->org.data, s->org.len, skip_org, skip_len) &&
        s->org.len <= WL_ORG_ID_MAX) {
        rc = 1;
        if (e != NULL) {
            char **all = s->install_ids;
            s->install_ids = kept;
            s->n_install_ids = keep;
            e->id = id;
            e->len = warmline__store__v1__signal__get_packed_size(s);
            e->val = malloc(e->len ? e->len : 1);
            if (e->val != NULL) {
                warmline__store__v1__signal__pack(s, e->val);
                memcpy(e->org, s->org.data, s->org.len);
                e->org_len = s->org.len;
            } else {
                rc = -ENOMEM;
            }
            s->install_ids = all; /* free_unpacked frees what unpack made */
            s->n_install_ids = n;
        }
    }
    warmline__store__v1__signal__free_unpacked(s, NULL);
    return rc;
}

/* Calls hit for each signal in (after, upto] (upto 0: to the end) that
 * edit_of edits; with want_edit 0 hit gets e->id alone. hit takes e->val. */
static int scan_signals(struct wl_store *store, const struct wl_snapshot *snap, uint64_t after,
                        uint64_t upto, const struct idset *installs, const uint8_t *skip_org,
                        size_t skip_len, int want_edit, int (*hit)(void *arg, struct edit *e),
                        void *arg, char *err, size_t errlen)
{
    struct wl_iter *it;
    uint8_t k[8];
    int rc = 0;

    if (installs->n == 0)
        return 0;
    if ((it = wl_iter_new_at(store, snap, WL_CF_SIGNALS)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    wl_be64_put(k, after + 1);
    for (wl_iter_seek(it, k, sizeof k); wl_iter_valid(it) && rc == 0; wl_iter_next(it)) {
        size_t klen, vlen;
        const char *key = wl_iter_key(it, &klen);
        if (klen != 8)
            continue;
        uint64_t id = wl_be64_get(key);
        if (upto != 0 && id > upto)
            break;
        const char *v = wl_iter_value(it, &vlen);
        struct edit e = {.id = id};
        int r = edit_of(id, v, vlen, installs, skip_org, skip_len, want_edit ? &e : NULL);
        if (r > 0)
            rc = hit(arg, &e);
        else if (r < 0)
            rc = r;
        if (rc != 0)
            snprintf(err, errlen, "out of memory");
    }
    if (rc == 0)
        rc = wl_iter_status(it, err, errlen);
    wl_iter_free(it);
    return rc;
}

/* ---- phase 1: the requester's scan ---- */

static int collect_ping(void *arg, uint64_t seq)
{
    struct wl_forget_req *req = arg;
    if (req->n_pings == req->cap_pings) {
        size_t cap = req->cap_pings ? 2 * req->cap_pings : 1024;
        uint64_t *v = realloc(req->pings, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        req->pings = v;
        req->cap_pings = cap;
    }
    req->pings[req->n_pings++] = seq;
    return 0;
}

/* The id of a signal to edit: the writer edits what it holds then. */
static int collect_edit(void *arg, struct edit *e)
{
    struct wl_forget_req *req = arg;
    if (req->n_edits == req->cap_edits) {
        size_t cap = req->cap_edits ? 2 * req->cap_edits : 64;
        uint64_t *v = realloc(req->edits, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        req->edits = v;
        req->cap_edits = cap;
    }
    req->edits[req->n_edits++] = e->id;
    return 0;
}

/* The installs an organization has as of snap, from its record. */
static int org_installs(struct wl_store *store, const struct wl_snapshot *snap,
                        const uint8_t *org, size_t org_len, struct idset *out, char *err,
                        size_t errlen)
{
    char *val = NULL;
    size_t vlen = 0;
    int rc = wl_store_get_at(store, snap, WL_CF_ORGS, org, org_len, &val, &vlen, err, errlen);
    if (rc == -ENOENT)
        return 0;
    if (rc != 0)
        return rc;
    org_rec *r = warmline__store__v1__org_state__unpack(NULL, vlen, (const uint8_t *)val);
    free(val);
    if (r == NULL)
        return 0; /* the writer's memory decides at phase 2 */
    for (size_t i = 0; i < r->n_install_ids && rc == 0; i++)
        rc = idset_add(out, r->install_ids[i], strlen(r->install_ids[i]));
    warmline__store__v1__org_state__free_unpacked(r, NULL);
    if (rc != 0)
        snprintf(err, errlen, "out of memory");
    return rc;
}

static int plan(struct wl_forget_req *req, struct wl_store *store,
                const struct wl_snapshot *snap, char *err, size_t errlen)
{
    const struct wl_forget_target *t = &req->target;
    struct ping_match m = {.installs = &req->installs};
    const uint8_t *skip = NULL;
    size_t skip_len = 0;
    int rc;

    if (t->kind == WL_FORGET_ORG) {
        if ((rc = org_installs(store, snap, t->org, t->org_len, &req->installs, err, errlen)))
            return rc;
        if (t->org[0] == WL_ORG_TAG_INSTALL &&
            idset_add(&req->installs, (const char *)t->org + 1, t->org_len - 1) != 0)
            goto oom;
        m.org = skip = t->org;
        m.org_len = skip_len = t->org_len;
    } else if (idset_add(&req->installs, t->install, strlen(t->install)) != 0) {
        goto oom;
    }
    if ((rc = last_seq(store, snap, WL_CF_PINGS, &req->pings_upto, err, errlen)) != 0 ||
        (rc = last_seq(store, snap, WL_CF_SIGNALS, &req->signals_upto, err, errlen)) != 0)
        return rc;
    if (req->pings_upto > 0 &&
        (rc = scan_pings(store, snap, 0, req->pings_upto, &m, collect_ping, req, err, errlen)))
        return rc;
    if (req->signals_upto > 0)
        return scan_signals(store, snap, 0, req->signals_upto, &req->installs, skip, skip_len,
                            0, collect_edit, req, err, errlen);
    return 0;

oom:
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

/* Many pings: delete them now, in writes of their own. */
static int delete_pings_early(struct wl_forget_req *req, struct wl_store *store, char *err,
                              size_t errlen)
{
    struct wl_batch *b = wl_batch_new(store);
    int rc = 0;
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < req->n_pings && rc == 0; i += PING_CHUNK) {
        size_t end = i + PING_CHUNK < req->n_pings ? i + PING_CHUNK : req->n_pings;
        wl_batch_clear(b);
        for (size_t j = i; j < end; j++) {
            uint8_t k[8];
            wl_be64_put(k, req->pings[j]);
            wl_batch_delete(b, WL_CF_PINGS, k, sizeof k);
        }
        if ((rc = wl_store_write(store, b, 0, err, errlen)) == 0)
            req->pings_deleted_early += end - i;
    }
    wl_batch_free(b);
    if (rc == 0) {
        free(req->pings);
        req->pings = NULL;
        req->n_pings = req->cap_pings = 0;
    }
    return rc;
}

int wl_forget_ex(struct wl_writer *w, struct wl_store *store, const struct wl_forget_target *t,
                 const char *via, const struct wl_forget_opts *opts,
                 struct wl_forget_result *out, char *err, size_t errlen)
{
    size_t atomic_pings = opts ? opts->atomic_pings : WL_FORGET_ATOMIC_PINGS;
    struct wl_forget_req req;
    struct wl_snapshot *snap;
    struct wl_job *job;
    int rc;

    memset(&req, 0, sizeof req);
    memset(out, 0, sizeof *out);
    req.target = *t;
    req.via = via;
    if ((snap = wl_snapshot_new(store)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    rc = plan(&req, store, snap, err, errlen);
    wl_snapshot_free(snap);
    if (rc == 0 && req.n_pings > atomic_pings)
        rc = delete_pings_early(&req, store, err, errlen);
    if (rc != 0)
        goto done;
    if (opts != NULL && opts->after_scan != NULL)
        opts->after_scan(opts->arg);
    if ((job = wl_job_new()) == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto done;
    }
    pthread_mutex_init(&req.mu, NULL);
    pthread_cond_init(&req.cv, NULL);
    job->forget = &req;
    job->transport = "forget";
    wl_writer_submit(w, job);
    pthread_mutex_lock(&req.mu);
    while (!req.done)
        pthread_cond_wait(&req.cv, &req.mu);
    pthread_mutex_unlock(&req.mu);
    pthread_mutex_destroy(&req.mu);
    pthread_cond_destroy(&req.cv);
    rc = req.rc;
    if (rc == 0)
        *out = req.result;
    else if (rc == -ENOENT)
        snprintf(err, errlen, "nothing matched");
    else
        snprintf(err, errlen, "the writer could not apply the forget: %s", strerror(-rc));
done:
    req_free(&req);
    return rc;
}

int wl_forget(struct wl_writer *w, struct wl_store *store, const struct wl_forget_target *t,
              const char *via, struct wl_forget_result *out, char *err, size_t errlen)
{
    return wl_forget_ex(w, store, t, via, NULL, out, err, errlen);
}

void wl_forget_done(struct wl_forget_req *req, int rc)
{
    pthread_mutex_lock(&req->mu);
    req->rc = rc;
    req->done = 1;
    pthread_cond_signal(&req->cv);
    pthread_mutex_unlock(&req->mu);
}

/* ---- phase 2: the writer ---- */

struct apply {
    struct wl_forget_req *req;
    struct wl_store *store;
    struct wl_batch *batch;
    const struct wl_forgotten *fg;
    const struct idset *own;      /* the installs memory forgot */
    struct wl_forget_counts *c;
    char err[256];
};

/* The organizations that go whole: those memory gave up, and with an
 * organization its installs' own ones (install:<id>, from the time they
 * pinged without an org key). */
static int gone_whole(const struct apply *a, const uint8_t *org, size_t len)
{
    for (size_t i = 0; i < a->fg->n_orgs; i++) {
        if (same_org(a->fg->orgs[i], a->fg->org_lens[i], org, len))
            return 1;
    }
    return a->req->target.kind == WL_FORGET_ORG && len > 1 && org[0] == WL_ORG_TAG_INSTALL &&
           idset_has(a->own, (const char *)org + 1, len - 1);
}

/* An edit is put unless its organization goes whole. Takes e->val. */
static int put_edit(void *arg, struct edit *e)
{
    struct apply *a = arg;
    if (!gone_whole(a, e->org, e->org_len)) {
        uint8_t k[8];
        wl_be64_put(k, e->id);
        wl_batch_put(a->batch, WL_CF_SIGNALS, k, sizeof k, e->val, e->len);
        a->c->signals_edited++;
    }
    free(e->val);
    e->val = NULL;
    return 0;
}

/* A signal the requester found, edited as it is now. */
static int edit_current(struct apply *a, uint64_t id, const struct idset *installs,
                        const uint8_t *skip_org, size_t skip_len)
{
    uint8_t k[8];
    char *val = NULL;
    size_t vlen = 0;
    struct edit e = {.id = id};
    wl_be64_put(k, id);
    int rc = wl_store_get(a->store, WL_CF_SIGNALS, k, sizeof k, &val, &vlen, a->err,
                          sizeof a->err);
    if (rc == -ENOENT)
        return 0;
    if (rc != 0)
        return rc;
    rc = edit_of(id, val, vlen, installs, skip_org, skip_len, &e);
    free(val);
    if (rc > 0)
        put_edit(a, &e);
    return rc < 0 ? rc : 0;
}

static int delete_ping(void *arg, uint64_t seq)
{
    struct apply *a = arg;
    uint8_t k[8];
    wl_be64_put(k, seq);
    wl_batch_delete(a->batch, WL_CF_PINGS, k, sizeof k);
    a->c->pings++;
    return 0;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

/* A ping the requester did not find already. */
static int delete_ping_if_new(void *arg, uint64_t seq)
{
    struct apply *a = arg;
    if (a->req->n_pings > 0 &&
        bsearch(&seq, a->req->pings, a->req->n_pings, sizeof seq, cmp_u64) != NULL)
        return 0;
    return delete_ping(a, seq);
}

/* Deletes every key of cf that is the organization's prefix (length byte,
 * id) and suffix_len more bytes; on_key sees each. */
static int delete_prefixed(struct apply *a, enum wl_cf cf, const uint8_t *org, size_t org_len,
                           size_t suffix_len, void (*on_key)(struct apply *a, const char *k,
                                                             size_t klen))
{
    uint8_t prefix[1 + WL_ORG_ID_MAX];
    struct wl_iter *it = wl_iter_new(a->store, cf);
    if (it == NULL)
        return -ENOMEM;
    prefix[0] = (uint8_t)org_len;
    memcpy(prefix + 1, org, org_len);
    for (wl_iter_seek(it, prefix, 1 + org_len); wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen;
        const char *k = wl_iter_key(it, &klen);
        if (klen < 1 + org_len || memcmp(k, prefix, 1 + org_len) != 0)
            break;
        if (klen != 1 + org_len + suffix_len)
            continue;
        wl_batch_delete(a->batch, cf, k, klen);
        on_key(a, k, klen);
    }
    int rc = wl_iter_status(it, a->err, sizeof a->err);
    wl_iter_free(it);
    return rc;
}

static void count_daily(struct apply *a, const char *k, size_t klen)
{
    (void)k, (void)klen;
    a->c->daily++;
}

/* An org_signals entry: its signal goes too. */
static void delete_indexed_signal(struct apply *a, const char *k, size_t klen)
{
    wl_batch_delete(a->batch, WL_CF_SIGNALS, k + klen - 8, 8);
    a->c->signals++;
}

/* Deletes the record at key when there is one; 1 when there was. */
static int delete_if_present(struct apply *a, enum wl_cf cf, const void *key, size_t klen)
{
    char *val = NULL;
    size_t vlen;
    int rc = wl_store_get(a->store, cf, key, klen, &val, &vlen, a->err, sizeof a->err);
    free(val);
    if (rc == -ENOENT)
        return 0;
    if (rc != 0)
        return rc;
    wl_batch_delete(a->batch, cf, key, klen);
    return 1;
}

/* An organization's history, signals and their index; its record too when
 * memory did not hold it (loaded: it was deleted with the state). */
static int forget_whole(struct apply *a, const uint8_t *org, size_t len, int loaded)
{
    int rc;
    if ((rc = delete_prefixed(a, WL_CF_DAILY, org, len, 4, count_daily)) != 0 ||
        (rc = delete_prefixed(a, WL_CF_ORG_SIGNALS, org, len, 8, delete_indexed_signal)) != 0)
        return rc;
    if (loaded)
        return 0;
    if ((rc = delete_if_present(a, WL_CF_ORGS, org, len)) < 0)
        return rc;
    a->c->orgs += (uint64_t)rc;
    return 0;
}

/* Quarantined samples that hold an install id or the org key as the wire
 * encodes them (uncompressed input; a zlib payload cannot be searched). */
static int forget_quarantine(struct apply *a, const struct idset *ids)
{
    const struct wl_forget_target *t = &a->req->target;
    uint8_t keypat[2 + WL_ORG_KEY_BYTES];
    int with_key = t->kind == WL_FORGET_ORG && t->org[0] == WL_ORG_TAG_KEY;
    struct wl_iter *it = wl_iter_new(a->store, WL_CF_QUARANTINE);

    if (it == NULL)
        return -ENOMEM;
    keypat[0] = 0x12; /* Ping.org_key, length-delimited */
    keypat[1] = WL_ORG_KEY_BYTES;
    if (with_key)
        memcpy(keypat + 2, t->org + 1, WL_ORG_KEY_BYTES);
    for (wl_iter_seek_first(it); wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen, vlen;
        const char *k = wl_iter_key(it, &klen);
        const char *v = wl_iter_value(it, &vlen);
        quarantine_rec *q = warmline__store__v1__quarantined__unpack(NULL, vlen,
                                                                     (const uint8_t *)v);
        if (q == NULL)
            continue;
        const uint8_t *s = q->sample.data;
        size_t n = q->sample.len;
        int hit = with_key && memmem(s, n, keypat, sizeof keypat) != NULL;
        for (size_t i = 0; !hit && i < ids->n; i++) {
            uint8_t pat[2 + WL_INSTALL_ID_MAX];
            size_t len = strlen(ids->v[i]);
            pat[0] = 0x0a; /* Ping.install_id */
            pat[1] = (uint8_t)len;
            memcpy(pat + 2, ids->v[i], len);
            hit = memmem(s, n, pat, 2 + len) != NULL;
        }
        warmline__store__v1__quarantined__free_unpacked(q, NULL);
        if (hit) {
            wl_batch_delete(a->batch, WL_CF_QUARANTINE, k, klen);
            a->c->quarantine++;
        }
    }
    int rc = wl_iter_status(it, a->err, sizeof a->err);
    wl_iter_free(it);
    return rc;
}

/* The next deletion record's sequence. */
static int next_record_seq(struct wl_store *store, uint64_t *out, char *err, size_t errlen)
{
    struct wl_iter *it = wl_iter_new(store, WL_CF_META);
    size_t klen;
    if (it == NULL)
        return -ENOMEM;
    *out = 1;
    wl_iter_seek_for_prev(it, RECORD_END, sizeof RECORD_END - 1);
    if (wl_iter_valid(it)) {
        const char *k = wl_iter_key(it, &klen);
        size_t p = sizeof RECORD_PREFIX - 1;
        if (klen == p + SEQ_DIGITS && memcmp(k, RECORD_PREFIX, p) == 0) {
            char digits[SEQ_DIGITS + 1];
            memcpy(digits, k + p, SEQ_DIGITS);
            digits[SEQ_DIGITS] = '\0';
            *out = strtoull(digits, NULL, 10) + 1;
        }
    }
    int rc = wl_iter_status(it, err, errlen);
    wl_iter_free(it);
    return rc;
}

json_t *wl_forget_counts_json(const struct wl_forget_counts *c)
{
    json_t *o = json_object();
    int bad = o == NULL;
#define PUT_COUNT(name)                                                            \
    if (!bad && json_object_set_new(o, #name, json_integer((json_int_t)c->name))) \
        bad = 1;
    WL_FORGET_COUNTS(PUT_COUNT)
#undef PUT_COUNT
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int put_record(struct apply *a, int64_t now)
{
    struct wl_forget_result *r = &a->req->result;
    char key[sizeof RECORD_PREFIX + SEQ_DIGITS];
    int rc = next_record_seq(a->store, &r->deletion, a->err, sizeof a->err);
    if (rc != 0)
        return rc;
    r->at = now;
    json_t *o = json_pack("{s:I,s:I,s:s,s:s,s:o}", "seq", (json_int_t)r->deletion, "at",
                          (json_int_t)now, "kind", wl_forget_kind_name(a->req), "via",
                          a->req->via ? a->req->via : "", "deleted",
                          wl_forget_counts_json(&r->deleted));
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (text == NULL)
        return -ENOMEM;
    snprintf(key, sizeof key, "%s%0*llu", RECORD_PREFIX, SEQ_DIGITS,
             (unsigned long long)r->deletion);
    wl_batch_put(a->batch, WL_CF_META, key, strlen(key), text, strlen(text));
    free(text);
    return 0;
}

static uint64_t total(const struct wl_forget_counts *c)
{
    uint64_t n = 0;
#define ADD_COUNT(name) n += c->name;
    WL_FORGET_COUNTS(ADD_COUNT)
#undef ADD_COUNT
    return n;
}

int wl_forget_apply(struct wl_forget_req *req, struct wl_state *st, struct wl_store *store,
                    struct wl_batch *batch, int64_t now)
{
    const struct wl_forget_target *t = &req->target;
    struct wl_forgotten fg;
    struct idset all = {0}, extras = {0}, own = {0};
    struct apply a = {.req = req, .store = store, .batch = batch, .fg = &fg, .own = &own,
                      .c = &req->result.deleted};
    const uint8_t *skip = t->kind == WL_FORGET_ORG ? t->org : NULL;
    size_t skip_len = t->kind == WL_FORGET_ORG ? t->org_len : 0;
    int rc;

    memset(&req->result, 0, sizeof req->result);
    rc = t->kind == WL_FORGET_ORG ? wl_state_forget_org(st, t->org, t->org_len, batch, &fg)
                                  : wl_state_forget_install(st, t->install, batch, &fg);
    if (rc != 0)
        return rc;
    a.c->installs = fg.install_records;
    a.c->orgs = fg.org_records;

    /* all: the installs the requester matched, and those memory had; the
     * ones it did not know of (joined since its snapshot) need a scan of
     * what came before it too. */
    for (size_t i = 0; i < req->installs.n && rc == 0; i++)
        rc = idset_add(&all, req->installs.v[i], strlen(req->installs.v[i]));
    for (size_t i = 0; i < fg.n_installs && rc == 0; i++) {
        size_t len = strlen(fg.installs[i]);
        if (!idset_has(&req->installs, fg.installs[i], len))
            rc = idset_add(&extras, fg.installs[i], len);
        if (rc == 0)
            rc = idset_add(&all, fg.installs[i], len);
        if (rc == 0)
            rc = idset_add(&own, fg.installs[i], len);
    }
    if (rc != 0)
        goto done;

    /* Other organizations' signals, without the forgotten installs: those
     * the requester found, as they are now (another forget may have edited
     * them since); with extras, all of them again; then the newer ones. */
    if (extras.n == 0) {
        for (size_t i = 0; i < req->n_edits && rc == 0; i++)
            rc = edit_current(&a, req->edits[i], &all, skip, skip_len);
    } else if (req->signals_upto > 0) {
        rc = scan_signals(store, NULL, 0, req->signals_upto, &all, skip, skip_len, 1, put_edit,
                          &a, a.err, sizeof a.err);
    }
    if (rc != 0 ||
        (rc = scan_signals(store, NULL, req->signals_upto, 0, &all, skip, skip_len, 1, put_edit,
                           &a, a.err, sizeof a.err)) != 0)
        goto done;

    /* The organizations gone whole: history, signals and their index. */
    for (size_t i = 0; i < fg.n_orgs; i++) {
        if ((rc = forget_whole(&a, fg.orgs[i], fg.org_lens[i], fg.org_loaded[i])) != 0)
            goto done;
    }
    for (size_t i = 0; t->kind == WL_FORGET_ORG && i < own.n; i++) {
        uint8_t id[WL_ORG_ID_MAX];
        size_t len = wl_org_id(id, NULL, 0, own.v[i], strlen(own.v[i]));
        if (!same_org(id, len, t->org, t->org_len) &&
            (rc = forget_whole(&a, id, len, 0)) != 0)
            goto done;
    }

    /* Raw pings: what the requester found (or deleted), then what came
     * since its snapshot, then the extras' earlier ones. */
    for (size_t i = 0; i < req->n_pings; i++)
        delete_ping(&a, req->pings[i]);
    a.c->pings += req->pings_deleted_early;
    struct ping_match m = {.org = skip, .org_len = skip_len, .installs = &all};
    if ((rc = scan_pings(store, NULL, req->pings_upto, 0, &m, delete_ping, &a, a.err,
                         sizeof a.err)) != 0)
        goto done;
    if (extras.n > 0 && req->pings_upto > 0) {
        struct ping_match mx = {.installs = &extras};
        if ((rc = scan_pings(store, NULL, 0, req->pings_upto, &mx, delete_ping_if_new, &a,
                             a.err, sizeof a.err)) != 0)
            goto done;
    }

    if (t->kind == WL_FORGET_INSTALL && fg.install_records == 0) {
        if ((rc = delete_if_present(&a, WL_CF_INSTALLS, t->install, strlen(t->install))) < 0)
            goto done;
        a.c->installs += (uint64_t)rc;
    }
    if (t->kind == WL_FORGET_ORG && t->org[0] == WL_ORG_TAG_KEY) {
        if ((rc = delete_if_present(&a, WL_CF_NAMED, t->org + 1, WL_ORG_KEY_BYTES)) < 0)
            goto done;
        a.c->named += (uint64_t)rc;
    }
    if (t->kind == WL_FORGET_INSTALL && (rc = idset_add(&all, t->install,
                                                        strlen(t->install))) != 0)
        goto done;
    if ((rc = forget_quarantine(&a, &all)) != 0)
        goto done;

    if (total(a.c) == 0) {
        wl_batch_clear(batch);
        rc = -ENOENT;
        goto done;
    }
    if (wl_state_dirty(st))
        wl_state_flush(st, batch); /* an organization that keeps other installs */
    rc = put_record(&a, now);

done:
    idset_free(&all);
    idset_free(&extras);
    idset_free(&own);
    wl_forgotten_free(&fg);
    return rc;
}

/* ---- reading the records ---- */

int wl_forget_records(struct wl_store *store, const struct wl_snapshot *snap,
                      int (*fn)(void *arg, const char *json, size_t len), void *arg, char *err,
                      size_t errlen)
{
    struct wl_iter *it = wl_iter_new_at(store, snap, WL_CF_META);
    size_t p = sizeof RECORD_PREFIX - 1;
    if (it == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (wl_iter_seek(it, RECORD_PREFIX, p); wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen, vlen;
        const char *k = wl_iter_key(it, &klen);
        if (klen < p || memcmp(k, RECORD_PREFIX, p) != 0)
            break;
        const char *v = wl_iter_value(it, &vlen);
        if (fn(arg, v, vlen) != 0)
            break;
    }
    int rc = wl_iter_status(it, err, errlen);
    wl_iter_free(it);
    return rc;
}
