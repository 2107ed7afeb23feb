#include "api_records.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ping.h"
#include "ping_json.h"
#include "storage/keys.h"

#define ORG_TEXT_MAX (8 + 2 * WL_ORG_ID_MAX + 1)

/* ---- records ---- */

void wl_org_signals_free(struct wl_org_signals *s)
{
    for (size_t i = 0; i < s->n; i++)
        warmline__store__v1__signal__free_unpacked(s->v[i], NULL);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int get_signal(struct wl_store *store, const struct wl_snapshot *snap, uint64_t id,
                      wl_signal **out, char *err, size_t errlen)
{
    uint8_t key[8];
    char *val = NULL;
    size_t vlen = 0;

    wl_be64_put(key, id);
    int rc = wl_store_get_at(store, snap, WL_CF_SIGNALS, key, sizeof key, &val, &vlen, err,
                             errlen);
    if (rc != 0)
        return rc;
    *out = warmline__store__v1__signal__unpack(NULL, vlen, (const uint8_t *)val);
    free(val);
    if (*out == NULL) {
        snprintf(err, errlen, "signal %llu does not decode", (unsigned long long)id);
        return -EINVAL;
    }
    return 0;
}

void wl_org_index_free(struct wl_org_index *ix)
{
    wl_iter_free(ix->it);
    ix->it = NULL;
}

static int id_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The ids the index names for the organization (with max, the newest max:
 * read from the prefix's end), then mem's, sorted, once each: a malloc'd
 * array into *ids. */
static int signal_ids(struct wl_iter *it, const uint8_t *org, size_t org_len,
                      const uint64_t *mem, size_t n_mem, size_t max, uint64_t **ids, size_t *n,
                      char *err, size_t errlen)
{
    uint8_t prefix[1 + WL_ORG_ID_MAX + 8];
    size_t k = 0, cap = n_mem + 8;
    uint64_t *v = malloc(cap * sizeof *v);

    prefix[0] = (uint8_t)org_len;
    memcpy(prefix + 1, org, org_len);
    if (max > 0) { /* from the last entry of the prefix back */
        memset(prefix + 1 + org_len, 0xff, 8);
        wl_iter_seek_for_prev(it, prefix, 1 + org_len + 8);
    } else {
        wl_iter_seek(it, prefix, 1 + org_len);
    }
    for (; v != NULL && wl_iter_valid(it) && (max == 0 || k < max);
         max > 0 ? wl_iter_prev(it) : wl_iter_next(it)) {
        size_t klen;
        const char *key = wl_iter_key(it, &klen);
        if (klen != 1 + org_len + 8 || memcmp(key, prefix, 1 + org_len) != 0) {
            if (max > 0 && klen > 1 + org_len + 8 && memcmp(key, prefix, 1 + org_len) == 0)
                continue; /* not an entry the writer writes: passed over */
            break;
        }
        if (k + n_mem == cap) {
            uint64_t *nv = realloc(v, 2 * cap * sizeof *v);
            if (nv == NULL) {
                free(v);
                v = NULL;
                break;
            }
            v = nv;
            cap *= 2;
        }
        v[k++] = wl_be64_get(key + 1 + org_len);
    }
    if (v == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = wl_iter_status(it, err, errlen);
    if (rc != 0) {
        free(v);
        return rc;
    }
    if (n_mem > 0)
        memcpy(v + k, mem, n_mem * sizeof *v);
    k += n_mem;
    qsort(v, k, sizeof *v, id_cmp);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || v[u - 1] != v[i])
            v[u++] = v[i];
    k = u;
    if (max > 0 && k > max) { /* the newest max */
        memmove(v, v + (k - max), max * sizeof *v);
        k = max;
    }
    *ids = v;
    *n = k;
    return 0;
}

/* The signal from mem when its group is not yet written (-ENOENT: not there). */
static int pending_signal(const struct wl_signals_mem *mem, uint64_t id, wl_signal **out,
                          char *err, size_t errlen)
{
    for (size_t i = 0; mem != NULL && i < mem->n_pend; i++) {
        if (mem->pend_ids[i] != id)
            continue;
        size_t end = i + 1 < mem->n_pend ? mem->pend_off[i + 1] : mem->pend_len;
        *out = warmline__store__v1__signal__unpack(NULL, end - mem->pend_off[i],
                                                   mem->pend + mem->pend_off[i]);
        if (*out == NULL) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        return 0;
    }
    return -ENOENT;
}

int wl_org_signals_load(struct wl_store *store, struct wl_org_index *ix, const uint8_t *org,
                        size_t org_len, const struct wl_signals_mem *mem, size_t max,
                        struct wl_org_signals *out, char *err, size_t errlen)
{
    uint64_t *ids = NULL;
    size_t n_ids = 0;
    int rc = 0;

    memset(out, 0, sizeof *out);
    if (ix->it == NULL || (mem != NULL && mem->gen != ix->gen)) {
        wl_iter_free(ix->it);
        ix->it = wl_iter_new(store, WL_CF_ORG_SIGNALS);
        ix->gen = mem != NULL ? mem->gen : 0;
        if (ix->it == NULL) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
    }
    rc = signal_ids(ix->it, org, org_len, mem ? mem->ids : NULL, mem ? mem->n : 0, max, &ids,
                    &n_ids, err, errlen);
    for (size_t i = 0; rc == 0 && i < n_ids; i++) {
        wl_signal *sig = NULL;
        rc = pending_signal(mem, ids[i], &sig, err, errlen);
        if (rc == -ENOENT)
            rc = get_signal(store, NULL, ids[i], &sig, err, errlen);
        if (rc == -ENOENT) { /* an index entry without its record: skip it */
            rc = 0;
            continue;
        }
        if (rc != 0)
            break;
        if (out->n == out->cap) {
            size_t cap = out->cap ? 2 * out->cap : 8;
            wl_signal **v = realloc(out->v, cap * sizeof *v);
            if (v == NULL) {
                warmline__store__v1__signal__free_unpacked(sig, NULL);
                snprintf(err, errlen, "out of memory");
                rc = -ENOMEM;
                break;
            }
            out->v = v;
            out->cap = cap;
        }
        out->v[out->n++] = sig;
    }
    free(ids);
    if (rc != 0)
        wl_org_signals_free(out);
    return rc;
}

int wl_org_state_get(struct wl_store *store, const struct wl_snapshot *snap, const uint8_t *org,
                     size_t org_len, wl_org_state **out, char *err, size_t errlen)
{
    char *val = NULL;
    size_t vlen = 0;

    int rc = wl_store_get_at(store, snap, WL_CF_ORGS, org, org_len, &val, &vlen, err, errlen);
    if (rc != 0)
        return rc;
    *out = warmline__store__v1__org_state__unpack(NULL, vlen, (const uint8_t *)val);
    free(val);
    if (*out == NULL) {
        snprintf(err, errlen, "organization record does not decode");
        return -EINVAL;
    }
    return 0;
}

int wl_install_state_get(struct wl_store *store, const struct wl_snapshot *snap, const char *id,
                         wl_install_state **out, char *err, size_t errlen)
{
    char *val = NULL;
    size_t vlen = 0, n = strlen(id);
    int rc = wl_store_get_at(store, snap, WL_CF_INSTALLS, id, n, &val, &vlen, err, errlen);
    if (rc != 0) {
        free(val);
        return rc;
    }
    *out = warmline__store__v1__install_state__unpack(NULL, vlen, (const uint8_t *)val);
    free(val);
    if (*out == NULL) {
        snprintf(err, errlen, "install record '%s' does not decode", id);
        return -EINVAL;
    }
    return 0;
}

/* ---- JSON ---- */

void wl_json_put(json_t *o, const char *key, json_t *v, int *bad)
{
    if (json_object_set_new(o, key, v) != 0)
        *bad = 1;
}

json_t *wl_json_str(const char *s)
{
    return wl_json_string_lossy(s, s ? strlen(s) : 0);
}

json_t *wl_json_str_array(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++) {
        if (json_array_append_new(a, wl_json_str(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

json_t *wl_json_org(const uint8_t *org, size_t org_len)
{
    char buf[ORG_TEXT_MAX];
    wl_org_id_format(org, org_len, buf, sizeof buf);
    return wl_json_str(buf);
}

/* {count name: value} in WL_COUNT_FIELDS order. */
json_t *wl_json_totals(const uint64_t *totals, size_t n)
{
    json_t *o = json_object();
    int bad = o == NULL;
    for (size_t i = 0; !bad && i < n && i < WL_N_COUNTS; i++)
        wl_json_put(o, wl_count_names[i], wl_json_u64(totals[i]), &bad);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* first_seen, last_seen, [versions,] editions, features, totals. */
void wl_json_put_activity(json_t *o, const wl_org_state *st, int versions, int *bad)
{
    wl_json_put(o, "first_seen", json_integer(st->first_seen), bad);
    wl_json_put(o, "last_seen", json_integer(st->last_seen), bad);
    if (versions)
        wl_json_put(o, "versions", wl_json_str_array(st->versions, st->n_versions), bad);
    wl_json_put(o, "editions", wl_json_str_array(st->editions, st->n_editions), bad);
    wl_json_put(o, "features", wl_json_str_array(st->features, st->n_features), bad);
    wl_json_put(o, "totals", wl_json_totals(st->totals, st->n_totals), bad);
}
