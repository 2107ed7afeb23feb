#include "aggregate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "records.pb-c.h"

typedef Warmline__Store__V1__InstallState wl_install_rec;
typedef Warmline__Store__V1__OrgState wl_org_rec;
typedef Warmline__Store__V1__StoredPing wl_ping_rec;

static const char META_INGEST_SEQ[] = "ingest_seq";

struct wl_org;

struct wl_install {
    char id[WL_INSTALL_ID_MAX + 1];
    struct wl_org *org;
    uint64_t last_seq;
    uint64_t last_ingest_seq;
    int64_t first_seen, last_seen;
    uint64_t counts[WL_N_COUNTS];
    const wl_ping *staged;        /* the group's latest ping, until the flush */
    struct wl_install *next_dirty;
    int dirty;
    UT_hash_handle hh;
};

struct wl_org {
    uint8_t id[WL_ORG_ID_MAX];
    size_t id_len;
    int64_t first_seen, last_seen;
    uint64_t totals[WL_N_COUNTS];
    struct wl_install **installs;
    size_t n_installs, cap_installs;
    struct wl_org *next_dirty;
    int dirty;
    UT_hash_handle hh;
};

struct wl_state {
    struct wl_install *installs; /* uthash heads */
    struct wl_org *orgs;
    struct wl_install *dirty_installs;
    struct wl_org *dirty_orgs;
    uint64_t ingest_seq;
    uint64_t n_installs, n_orgs;
    uint8_t *scratch;            /* serialization buffer, reused */
    size_t scratch_cap;
};

static uint8_t *scratch(struct wl_state *st, size_t need)
{
    if (need > st->scratch_cap) {
        size_t cap = st->scratch_cap ? st->scratch_cap : 4096;
        while (cap < need)
            cap *= 2;
        uint8_t *p = realloc(st->scratch, cap);
        if (p == NULL)
            abort(); /* out of memory in the writer: nothing sane to do */
        st->scratch = p;
        st->scratch_cap = cap;
    }
    return st->scratch;
}

static struct wl_org *org_get(struct wl_state *st, const uint8_t *id, size_t len)
{
    struct wl_org *org;
    HASH_FIND(hh, st->orgs, id, len, org);
    if (org != NULL)
        return org;
    org = calloc(1, sizeof *org);
    if (org == NULL)
        abort();
    memcpy(org->id, id, len);
    org->id_len = len;
    HASH_ADD(hh, st->orgs, id, len, org);
    st->n_orgs++;
    return org;
}

static void org_mark(struct wl_state *st, struct wl_org *org)
{
    if (!org->dirty) {
        org->dirty = 1;
        org->next_dirty = st->dirty_orgs;
        st->dirty_orgs = org;
    }
}

static void org_attach(struct wl_org *org, struct wl_install *in)
{
    if (org->n_installs == org->cap_installs) {
        size_t cap = org->cap_installs ? org->cap_installs * 2 : 2;
        struct wl_install **p = realloc(org->installs, cap * sizeof *p);
        if (p == NULL)
            abort();
        org->installs = p;
        org->cap_installs = cap;
    }
    org->installs[org->n_installs++] = in;
    for (int i = 0; i < WL_N_COUNTS; i++)
        org->totals[i] += in->counts[i];
    if (org->first_seen == 0 || in->first_seen < org->first_seen)
        org->first_seen = in->first_seen;
    if (in->last_seen > org->last_seen)
        org->last_seen = in->last_seen;
    in->org = org;
}

static void org_detach(struct wl_org *org, struct wl_install *in)
{
    for (size_t i = 0; i < org->n_installs; i++) {
        if (org->installs[i] == in) {
            org->installs[i] = org->installs[--org->n_installs];
            break;
        }
    }
    for (int i = 0; i < WL_N_COUNTS; i++)
        org->totals[i] -= in->counts[i];
    /* first/last seen are those of the installs it still has, as a reload
     * from disk would compute them. */
    org->first_seen = org->last_seen = 0;
    for (size_t i = 0; i < org->n_installs; i++) {
        const struct wl_install *o = org->installs[i];
        if (org->first_seen == 0 || o->first_seen < org->first_seen)
            org->first_seen = o->first_seen;
        if (o->last_seen > org->last_seen)
            org->last_seen = o->last_seen;
    }
    in->org = NULL;
}

static struct wl_install *install_new(struct wl_state *st, const char *id, size_t len)
{
    struct wl_install *in = calloc(1, sizeof *in);
    if (in == NULL)
        abort();
    memcpy(in->id, id, len);
    HASH_ADD(hh, st->installs, id, len, in);
    st->n_installs++;
    return in;
}

enum wl_apply wl_state_apply(struct wl_state *st, const wl_ping *ping, int64_t received_at,
                             struct wl_batch *batch)
{
    size_t idlen = strlen(ping->install_id);
    struct wl_install *in;
    uint8_t org_id[WL_ORG_ID_MAX];
    size_t org_len = wl_org_id(org_id, ping->org_key.data, ping->org_key.len, ping->install_id,
                               idlen);

    HASH_FIND(hh, st->installs, ping->install_id, idlen, in);
    if (in != NULL && ping->seq <= in->last_seq)
        return WL_APPLY_DUPLICATE;

    /* The raw ping, on the next sequential key. */
    wl_ping_rec rec = WARMLINE__STORE__V1__STORED_PING__INIT;
    uint8_t key[8];
    rec.ingest_seq = ++st->ingest_seq;
    rec.received_at = received_at;
    rec.org.data = org_id;
    rec.org.len = org_len;
    rec.ping = (wl_ping *)ping;
    size_t n = warmline__store__v1__stored_ping__get_packed_size(&rec);
    uint8_t *buf = scratch(st, n);
    warmline__store__v1__stored_ping__pack(&rec, buf);
    wl_be64_put(key, rec.ingest_seq);
    wl_batch_put(batch, WL_CF_PINGS, key, sizeof key, buf, n);

    if (in == NULL) {
        in = install_new(st, ping->install_id, idlen);
        in->first_seen = received_at;
    }
    struct wl_org *org = org_get(st, org_id, org_len);
    uint64_t counts[WL_N_COUNTS];
    wl_ping_counts(ping, counts);
    if (in->org == org) {
        for (int i = 0; i < WL_N_COUNTS; i++)
            org->totals[i] += counts[i] - in->counts[i];
        memcpy(in->counts, counts, sizeof counts);
        org->last_seen = received_at > org->last_seen ? received_at : org->last_seen;
    } else {
        if (in->org != NULL) { /* the install moved: the old org loses it */
            org_mark(st, in->org);
            org_detach(in->org, in);
        }
        memcpy(in->counts, counts, sizeof counts);
        in->last_seen = received_at;
        org_attach(org, in);
    }
    in->last_seq = ping->seq;
    in->last_ingest_seq = rec.ingest_seq;
    in->last_seen = received_at;
    in->staged = ping;
    org_mark(st, org);
    if (!in->dirty) {
        in->dirty = 1;
        in->next_dirty = st->dirty_installs;
        st->dirty_installs = in;
    }
    return WL_APPLY_ACCEPTED;
}

static void put_install(struct wl_state *st, struct wl_install *in, struct wl_batch *batch)
{
    wl_install_rec rec = WARMLINE__STORE__V1__INSTALL_STATE__INIT;
    rec.install_id = in->id;
    rec.org.data = in->org->id;
    rec.org.len = in->org->id_len;
    rec.last_seq = in->last_seq;
    rec.first_seen = in->first_seen;
    rec.last_seen = in->last_seen;
    rec.last_ingest_seq = in->last_ingest_seq;
    rec.last_ping = (wl_ping *)in->staged;
    size_t n = warmline__store__v1__install_state__get_packed_size(&rec);
    uint8_t *buf = scratch(st, n);
    warmline__store__v1__install_state__pack(&rec, buf);
    wl_batch_put(batch, WL_CF_INSTALLS, in->id, strlen(in->id), buf, n);
}

static void put_org(struct wl_state *st, struct wl_org *org, struct wl_batch *batch)
{
    wl_org_rec rec = WARMLINE__STORE__V1__ORG_STATE__INIT;
    char *ids[org->n_installs ? org->n_installs : 1];

    if (org->n_installs == 0) { /* every install moved away */
        wl_batch_delete(batch, WL_CF_ORGS, org->id, org->id_len);
        return;
    }
    for (size_t i = 0; i < org->n_installs; i++)
        ids[i] = org->installs[i]->id;
    rec.org.data = org->id;
    rec.org.len = org->id_len;
    rec.n_install_ids = org->n_installs;
    rec.install_ids = ids;
    rec.first_seen = org->first_seen;
    rec.last_seen = org->last_seen;
    rec.n_totals = WL_N_COUNTS;
    rec.totals = org->totals;
    size_t n = warmline__store__v1__org_state__get_packed_size(&rec);
    uint8_t *buf = scratch(st, n);
    warmline__store__v1__org_state__pack(&rec, buf);
    wl_batch_put(batch, WL_CF_ORGS, org->id, org->id_len, buf, n);
}

void wl_state_flush(struct wl_state *st, struct wl_batch *batch)
{
    uint8_t seq[8];
    for (struct wl_install *in = st->dirty_installs; in != NULL; in = in->next_dirty)
        put_install(st, in, batch);
    for (struct wl_org *org = st->dirty_orgs; org != NULL; org = org->next_dirty)
        put_org(st, org, batch);
    wl_be64_put(seq, st->ingest_seq);
    wl_batch_put(batch, WL_CF_META, META_INGEST_SEQ, sizeof META_INGEST_SEQ - 1, seq, sizeof seq);
}

void wl_state_commit(struct wl_state *st)
{
    struct wl_install *in, *next_in;
    struct wl_org *org, *next_org;

    for (in = st->dirty_installs; in != NULL; in = next_in) {
        next_in = in->next_dirty;
        in->dirty = 0;
        in->staged = NULL;
        in->next_dirty = NULL;
    }
    for (org = st->dirty_orgs; org != NULL; org = next_org) {
        next_org = org->next_dirty;
        org->dirty = 0;
        org->next_dirty = NULL;
        if (org->n_installs == 0) {
            HASH_DEL(st->orgs, org);
            st->n_orgs--;
            free(org->installs);
            free(org);
        }
    }
    st->dirty_installs = NULL;
    st->dirty_orgs = NULL;
}

uint64_t wl_state_ingest_seq(const struct wl_state *st) { return st->ingest_seq; }
uint64_t wl_state_n_installs(const struct wl_state *st) { return st->n_installs; }
uint64_t wl_state_n_orgs(const struct wl_state *st) { return st->n_orgs; }

static int load_install(struct wl_state *st, const char *val, size_t vlen)
{
    wl_install_rec *rec = warmline__store__v1__install_state__unpack(NULL, vlen,
                                                                    (const uint8_t *)val);
    size_t idlen;
    if (rec == NULL)
        return -EPROTO;
    idlen = strlen(rec->install_id);
    if (idlen == 0 || idlen > WL_INSTALL_ID_MAX || rec->org.len == 0 ||
        rec->org.len > WL_ORG_ID_MAX) {
        warmline__store__v1__install_state__free_unpacked(rec, NULL);
        return -EPROTO;
    }
    struct wl_install *in = install_new(st, rec->install_id, idlen);
    in->last_seq = rec->last_seq;
    in->last_ingest_seq = rec->last_ingest_seq;
    in->first_seen = rec->first_seen;
    in->last_seen = rec->last_seen;
    if (rec->last_ping != NULL)
        wl_ping_counts(rec->last_ping, in->counts);
    org_attach(org_get(st, rec->org.data, rec->org.len), in);
    warmline__store__v1__install_state__free_unpacked(rec, NULL);
    return 0;
}

int wl_state_load(struct wl_store *store, struct wl_state **out, char *err, size_t errlen)
{
    struct wl_state *st = calloc(1, sizeof *st);
    struct wl_iter *it = NULL;
    char *val = NULL;
    size_t vlen;
    int rc;

    if (st == NULL)
        return -ENOMEM;
    rc = wl_store_get(store, WL_CF_META, META_INGEST_SEQ, sizeof META_INGEST_SEQ - 1, &val, &vlen,
                      err, errlen);
    if (rc == 0 && vlen == 8)
        st->ingest_seq = wl_be64_get(val);
    free(val);
    if (rc != 0 && rc != -ENOENT)
        goto fail;

    it = wl_iter_new(store, WL_CF_INSTALLS);
    for (wl_iter_seek_first(it); wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen;
        const char *k = wl_iter_key(it, &klen);
        const char *v = wl_iter_value(it, &vlen);
        if (load_install(st, v, vlen) != 0) {
            snprintf(err, errlen, "installs: record for '%.*s' does not decode", (int)klen, k);
            rc = -EPROTO;
            goto fail;
        }
    }
    if ((rc = wl_iter_status(it, err, errlen)) != 0)
        goto fail;
    wl_iter_free(it);
    *out = st;
    return 0;

fail:
    wl_iter_free(it);
    wl_state_free(st);
    return rc;
}

void wl_state_free(struct wl_state *st)
{
    struct wl_install *in, *tmp_in;
    struct wl_org *org, *tmp_org;

    if (st == NULL)
        return;
    HASH_ITER(hh, st->installs, in, tmp_in) {
        HASH_DEL(st->installs, in);
        free(in);
    }
    HASH_ITER(hh, st->orgs, org, tmp_org) {
        HASH_DEL(st->orgs, org);
        free(org->installs);
        free(org);
    }
    free(st->scratch);
    free(st);
}
