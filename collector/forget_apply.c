/* Forget, the writer's side: each step of a request (forget_req.h), applied
 * on the writer thread between groups. No step iterates the raw pings or
 * the signal log: the memory step reads only the history and signal index
 * of the organizations that go whole (what it deletes), the slices delete
 * what the requester found and read only the signals they edit. */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forget_req.h"
#include "msgids.h"
#include "records.pb-c.h"

typedef Warmline__Store__V1__Signal signal_rec;

#define COUNT_OFFSET(name) offsetof(struct wl_forget_counts, name),
static const size_t count_offsets[] = {WL_FORGET_COUNTS(COUNT_OFFSET)};
#undef COUNT_OFFSET

uint64_t *wl_forget_count_at(struct wl_forget_counts *c, enum wl_forget_count i)
{
    return (uint64_t *)((char *)c + count_offsets[i]);
}

static uint64_t total(const struct wl_forget_counts *c)
{
    uint64_t n = 0;
#define ADD_COUNT(name) n += c->name;
    WL_FORGET_COUNTS(ADD_COUNT)
#undef ADD_COUNT
    return n;
}

const char *wl_forget_kind_name(const struct wl_forget_req *req)
{
    return req->target.kind == WL_FORGET_ORG ? "org" : "install";
}

size_t wl_forget_meta_key(char *key, const char *prefix, uint64_t seq)
{
    int n = snprintf(key, WL_FORGET_KEY_MAX, "%s%0*llu", prefix, WL_FORGET_SEQ_DIGITS,
                     (unsigned long long)seq);
    return n > 0 ? (size_t)n : 0;
}

static int same_org(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return a != NULL && b != NULL && alen == blen && memcmp(a, b, alen) == 0;
}

int wl_forget_gone_whole(const struct wl_forget_req *req, const uint8_t *org, size_t len)
{
    for (size_t i = 0; i < req->n_orgs; i++) {
        if (same_org(req->orgs[i], req->org_lens[i], org, len))
            return 1;
    }
    return req->target.kind == WL_FORGET_ORG && len > 1 && org[0] == WL_ORG_TAG_INSTALL &&
           wl_idset_has(&req->installs, (const char *)org + 1, len - 1);
}

int wl_forget_edit_of(const struct wl_forget_req *req, const char *v, size_t vlen,
                      uint8_t **out, size_t *out_len)
{
    signal_rec *s = warmline__store__v1__signal__unpack(NULL, vlen, (const uint8_t *)v);
    int rc = 0;
    if (s == NULL)
        return 0;
    size_t n = s->n_install_ids, keep = 0;
    char **kept = malloc((n ? n : 1) * sizeof *kept);
    if (kept == NULL) {
        warmline__store__v1__signal__free_unpacked(s, NULL);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (!wl_idset_has(&req->installs, s->install_ids[i], strlen(s->install_ids[i])))
            kept[keep++] = s->install_ids[i];
    }
    if (keep < n && s->org.len <= WL_ORG_ID_MAX &&
        !wl_forget_gone_whole(req, s->org.data, s->org.len)) {
        rc = 1;
        if (out != NULL) {
            char **all = s->install_ids;
            s->install_ids = kept;
            s->n_install_ids = keep;
            *out_len = warmline__store__v1__signal__get_packed_size(s);
            *out = malloc(*out_len ? *out_len : 1);
            if (*out != NULL)
                warmline__store__v1__signal__pack(s, *out);
            else
                rc = -ENOMEM;
            s->install_ids = all; /* free_unpacked frees what unpack made */
            s->n_install_ids = n;
        }
    }
    free(kept);
    warmline__store__v1__signal__free_unpacked(s, NULL);
    return rc;
}

char *wl_forget_marker_json(const struct wl_forget_req *req)
{
    const struct wl_forget_target *t = &req->target;
    char hex[2 * WL_ORG_ID_MAX + 1];
    json_t *orgs = json_array();
    int bad = orgs == NULL;

    for (size_t i = 0; !bad && i < req->n_orgs; i++) {
        sodium_bin2hex(hex, sizeof hex, req->orgs[i], req->org_lens[i]);
        bad = json_array_append_new(orgs, json_string(hex)) != 0;
    }
    if (t->kind == WL_FORGET_ORG)
        sodium_bin2hex(hex, sizeof hex, t->org, t->org_len);
    json_t *o = bad ? NULL
                    : json_pack("{s:I,s:s,s:s,s:s,s:I,s:I,s:O,s:o}", "seq",
                                (json_int_t)req->marker, "kind", wl_forget_kind_name(req),
                                t->kind == WL_FORGET_ORG ? "org" : "install",
                                t->kind == WL_FORGET_ORG ? hex : t->install, "via", req->via,
                                "pings_upto", (json_int_t)req->pings_upto, "signals_upto",
                                (json_int_t)req->signals_upto, "orgs", orgs, "deleted",
                                wl_forget_counts_json(&req->result.deleted));
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    json_decref(orgs);
    return text;
}

/* ---- what every step shares ---- */

struct apply {
    struct wl_forget_req *req;
    struct wl_state *st;
    struct wl_store *store;
    struct wl_batch *batch;
    struct wl_forget_counts *c;
    char err[256];
};

/* The sequence after the last one of the meta keys prefix..end (1 when
 * there is none). */
static int next_meta_seq(struct wl_store *store, const char *prefix, const char *end,
                         uint64_t *out)
{
    struct wl_iter *it = wl_iter_new(store, WL_CF_META);
    size_t klen, p = strlen(prefix);
    char err[256];
    if (it == NULL)
        return -ENOMEM;
    *out = 1;
    wl_iter_seek_for_prev(it, end, strlen(end));
    if (wl_iter_valid(it)) {
        const char *k = wl_iter_key(it, &klen);
        if (klen == p + WL_FORGET_SEQ_DIGITS && memcmp(k, prefix, p) == 0) {
            char digits[WL_FORGET_SEQ_DIGITS + 1];
            memcpy(digits, k + p, WL_FORGET_SEQ_DIGITS);
            digits[WL_FORGET_SEQ_DIGITS] = '\0';
            *out = strtoull(digits, NULL, 10) + 1;
        }
    }
    int rc = wl_iter_status(it, err, sizeof err);
    wl_iter_free(it);
    return rc;
}

/* The marker with the counts so far; with the forgotten installs too the
 * first time (the sequence is chosen then). */
static int put_marker(struct apply *a)
{
    struct wl_forget_req *req = a->req;
    char key[WL_FORGET_KEY_MAX];
    int rc;

    if (req->marker == 0) {
        if ((rc = next_meta_seq(a->store, WL_FORGET_PENDING, WL_FORGET_PENDING_END,
                                &req->marker)) != 0)
            return rc;
        size_t klen = wl_forget_meta_key(key, WL_FORGET_INSTALLS, req->marker);
        wl_batch_put(a->batch, WL_CF_META, key, klen, req->blob ? req->blob : "",
                     req->blob_len);
    }
    char *text = wl_forget_marker_json(req);
    if (text == NULL)
        return -ENOMEM;
    size_t klen = wl_forget_meta_key(key, WL_FORGET_PENDING, req->marker);
    wl_batch_put(a->batch, WL_CF_META, key, klen, text, strlen(text));
    free(text);
    return 0;
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

/* ---- step 1: memory ---- */

/* Deletes every key of cf that is the organization's prefix (length byte,
 * id) and suffix_len more bytes; an org_signals key's signal goes too. */
static int delete_prefixed(struct apply *a, enum wl_cf cf, const uint8_t *org, size_t org_len,
                           size_t suffix_len, uint64_t *count)
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
        a->req->result.writer_iterated++;
        if (klen < 1 + org_len || memcmp(k, prefix, 1 + org_len) != 0)
            break;
        if (klen != 1 + org_len + suffix_len)
            continue;
        wl_batch_delete(a->batch, cf, k, klen);
        if (cf == WL_CF_ORG_SIGNALS)
            wl_batch_delete(a->batch, WL_CF_SIGNALS, k + klen - 8, 8);
        (*count)++;
    }
    int rc = wl_iter_status(it, a->err, sizeof a->err);
    wl_iter_free(it);
    return rc;
}

/* An organization's history, signals and their index; its record too when
 * memory did not hold it (loaded: it went with the state). */
static int forget_whole(struct apply *a, const uint8_t *org, size_t len, int loaded)
{
    int rc;
    if ((rc = delete_prefixed(a, WL_CF_DAILY, org, len, 4, &a->c->daily)) != 0 ||
        (rc = delete_prefixed(a, WL_CF_ORG_SIGNALS, org, len, 8, &a->c->signals)) != 0)
        return rc;
    if (loaded)
        return 0;
    if ((rc = delete_if_present(a, WL_CF_ORGS, org, len)) < 0)
        return rc;
    a->c->orgs += (uint64_t)rc;
    return 0;
}

/* The forgotten ids, one per line, as the marker keeps them. */
static int make_blob(struct wl_forget_req *req, const struct wl_forgotten *fg)
{
    size_t len = 0;
    for (size_t i = 0; i < fg->n_installs; i++)
        len += strlen(fg->installs[i]) + 1;
    char *b = malloc(len ? len : 1);
    if (b == NULL)
        return -ENOMEM;
    size_t at = 0;
    for (size_t i = 0; i < fg->n_installs; i++) {
        size_t n = strlen(fg->installs[i]);
        memcpy(b + at, fg->installs[i], n);
        b[at + n] = '\n';
        at += n + 1;
    }
    free(req->blob);
    req->blob = b;
    req->blob_len = len;
    return 0;
}

static int apply_memory(struct apply *a, struct wl_state *st)
{
    struct wl_forget_req *req = a->req;
    const struct wl_forget_target *t = &req->target;
    struct wl_forgotten fg;
    /* An organization's install records go in the slices (the requester
     * lists them): this write does not grow with the organization. */
    int rc = t->kind == WL_FORGET_ORG
                 ? wl_state_forget_org_memory(st, t->org, t->org_len, a->batch, &fg)
                 : wl_state_forget_install(st, t->install, a->batch, &fg);
    if (rc != 0)
        return rc;
    a->c->installs += fg.install_records;
    a->c->orgs += fg.org_records;
    req->n_orgs = fg.n_orgs;
    for (size_t i = 0; i < fg.n_orgs; i++) {
        memcpy(req->orgs[i], fg.orgs[i], fg.org_lens[i]);
        req->org_lens[i] = fg.org_lens[i];
        if ((rc = forget_whole(a, fg.orgs[i], fg.org_lens[i], fg.org_loaded[i])) != 0)
            goto done;
    }
    if (t->kind == WL_FORGET_INSTALL) /* its Rudder messageIds: one range delete */
        wl_msgids_forget_install(a->batch, t->install, strlen(t->install));
    if (t->kind == WL_FORGET_INSTALL && fg.install_records == 0) {
        if ((rc = delete_if_present(a, WL_CF_INSTALLS, t->install, strlen(t->install))) < 0)
            goto done;
        a->c->installs += (uint64_t)rc;
    }
    if (t->kind == WL_FORGET_ORG && t->org[0] == WL_ORG_TAG_KEY) {
        if ((rc = delete_if_present(a, WL_CF_NAMED, t->org + 1, WL_ORG_KEY_BYTES)) < 0)
            goto done;
        a->c->named += (uint64_t)rc;
    }
    if ((rc = make_blob(req, &fg)) != 0)
        goto done;
    req->pings_upto = wl_state_ingest_seq(st);
    req->signals_upto = wl_state_signal_seq(st);
    rc = 0;
    if (total(a->c) == 0) { /* nothing in memory, nothing of its history */
        wl_batch_clear(a->batch);
        goto done;
    }
    if (wl_state_dirty(st))
        wl_state_flush(st, a->batch); /* an organization that keeps other installs */
    rc = put_marker(a);
    req->result.memory_records = (uint64_t)wl_batch_count(a->batch);
done:
    wl_forgotten_free(&fg);
    return rc;
}

/* ---- step 3: slices ---- */

/* A signal the requester found, edited as it is now (another forget may
 * have edited it since). */
static int edit_current(struct apply *a, uint64_t id)
{
    uint8_t k[8], *packed = NULL;
    char *val = NULL;
    size_t vlen = 0, plen = 0;
    wl_be64_put(k, id);
    int rc = wl_store_get(a->store, WL_CF_SIGNALS, k, sizeof k, &val, &vlen, a->err,
                          sizeof a->err);
    if (rc == -ENOENT)
        return 0;
    if (rc != 0)
        return rc;
    rc = wl_forget_edit_of(a->req, val, vlen, &packed, &plen);
    free(val);
    if (rc > 0) {
        wl_batch_put(a->batch, WL_CF_SIGNALS, k, sizeof k, packed, plen);
        a->c->signals_edited++;
    }
    free(packed);
    return rc < 0 ? rc : 0;
}

static int apply_slice(struct apply *a)
{
    struct wl_forget_req *req = a->req;
    size_t overhead = req->marker == 0 ? 2 : 1; /* the marker (and the installs) */
    size_t budget = req->slice > overhead ? req->slice - overhead : 1;
    int rc;

    while (budget > 0 && req->at_edits < req->n_edits) {
        if ((rc = edit_current(a, req->edits[req->at_edits])) != 0)
            return rc;
        req->at_edits++;
        budget--;
    }
    while (budget > 0 && req->at_keys < req->n_keys) {
        const struct wl_forget_key *k = &req->keys[req->at_keys];
        if ((k->indexed || k->cf == WL_CF_INSTALLS) && budget < 2)
            break;
        if (k->cf == WL_CF_INSTALLS) {
            /* An install's record, unless it pinged again since the first
             * step (it is in memory: new data), counted when it was there. */
            rc = wl_state_has_install(a->st, (const char *)k->key, k->len)
                     ? 0
                     : delete_if_present(a, WL_CF_INSTALLS, k->key, k->len);
            if (rc < 0)
                return rc;
            if (rc > 0) { /* and its Rudder messageIds: one range delete */
                wl_msgids_forget_install(a->batch, (const char *)k->key, k->len);
                budget--;
            }
            a->c->installs += (uint64_t)rc;
            req->at_keys++;
            budget--;
            continue;
        }
        wl_batch_delete(a->batch, (enum wl_cf)k->cf, k->key, k->len);
        if (k->indexed) {
            wl_batch_delete(a->batch, WL_CF_SIGNALS, k->key + k->len - 8, 8);
            budget--;
        }
        if (k->count != WL_FC_NONE)
            (*wl_forget_count_at(a->c, (enum wl_forget_count)k->count))++;
        req->at_keys++;
        budget--;
    }
    while (budget > 0 && req->at_pings < req->n_pings) {
        uint8_t k[8];
        wl_be64_put(k, req->pings[req->at_pings++]);
        wl_batch_delete(a->batch, WL_CF_PINGS, k, sizeof k);
        a->c->pings++;
        budget--;
    }
    if ((rc = put_marker(a)) != 0)
        return rc;
    uint64_t n = (uint64_t)wl_batch_count(a->batch);
    req->result.slices++;
    if (n > req->result.slice_max)
        req->result.slice_max = n;
    return 0;
}

/* ---- step 4: the deletion record ---- */

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

static int apply_final(struct apply *a, int64_t now)
{
    struct wl_forget_req *req = a->req;
    struct wl_forget_result *r = &req->result;
    char key[WL_FORGET_KEY_MAX];
    int rc;

    if (total(a->c) == 0 && req->marker == 0)
        return -ENOENT; /* nothing was written */
    if ((rc = next_meta_seq(a->store, WL_FORGET_RECORD, WL_FORGET_RECORD_END, &r->deletion)))
        return rc;
    r->at = now;
    json_t *o = json_pack("{s:I,s:I,s:s,s:s,s:o}", "seq", (json_int_t)r->deletion, "at",
                          (json_int_t)now, "kind", wl_forget_kind_name(req), "via", req->via,
                          "deleted", wl_forget_counts_json(&r->deleted));
    if (o != NULL && req->resumed)
        json_object_set_new(o, "resumed", json_true());
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (text == NULL)
        return -ENOMEM;
    size_t klen = wl_forget_meta_key(key, WL_FORGET_RECORD, r->deletion);
    wl_batch_put(a->batch, WL_CF_META, key, klen, text, strlen(text));
    free(text);
    if (req->marker != 0) {
        klen = wl_forget_meta_key(key, WL_FORGET_PENDING, req->marker);
        wl_batch_delete(a->batch, WL_CF_META, key, klen);
        klen = wl_forget_meta_key(key, WL_FORGET_INSTALLS, req->marker);
        wl_batch_delete(a->batch, WL_CF_META, key, klen);
    }
    return 0;
}

/* A resumed forget: the installs the first step forgot that a restart
 * loaded again (their records not yet deleted) leave memory again. */
static int apply_stale(struct apply *a, struct wl_state *st)
{
    struct wl_forgotten fg;
    const struct wl_idset *ids = &a->req->installs;
    int rc = wl_state_forget_stale(st, ids->v, ids->lens, ids->n, a->req->pings_upto, a->batch,
                                   &fg);
    if (rc == 0 && wl_state_dirty(st))
        wl_state_flush(st, a->batch); /* an organization that keeps other installs */
    wl_forgotten_free(&fg);
    return rc;
}

int wl_forget_wants_flushed_state(const struct wl_forget_req *req)
{
    return req->step == WL_FORGET_STEP_MEMORY || req->step == WL_FORGET_STEP_STALE;
}

int wl_forget_apply(struct wl_forget_req *req, struct wl_state *st, struct wl_store *store,
                    struct wl_batch *batch, int64_t now)
{
    struct apply a = {.req = req, .st = st, .store = store, .batch = batch,
                      .c = &req->result.deleted};
    switch (req->step) {
    case WL_FORGET_STEP_MEMORY: return apply_memory(&a, st);
    case WL_FORGET_STEP_SLICE: return apply_slice(&a);
    case WL_FORGET_STEP_FINAL: return apply_final(&a, now);
    case WL_FORGET_STEP_STALE: return apply_stale(&a, st);
    }
    return -EINVAL;
}
