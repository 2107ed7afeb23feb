/* The security-update check's query, read and mapped to one ping. Pure:
 * no I/O, no globals; the listener (http_ingest.c) and the fuzz target
 * (tests/fuzz/security_query.c) call it the same way. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "http_ingest_parts.h"

enum { P_ID, P_B, P_BE, P_DB, P_OS, P_UC, P_AUC, P_TC, P_UT, N_P };
static const char *const names[N_P] = {"id", "b", "be", "db", "os", "uc", "auc", "tc", "ut"};

static int fail(char *why, size_t whylen, const char *fmt, const char *name)
{
    snprintf(why, whylen, fmt, name);
    return -EINVAL;
}

static int printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

/* A string value: at most max bytes of printable ASCII, copied into out. */
static int take_string(const struct wl_sq_param *p, size_t min, size_t max, char *out,
                       char *why, size_t whylen, const char *name)
{
    size_t n = p->value ? p->vlen : 0;
    if (n < min || n > max)
        return fail(why, whylen, "%s: wrong length", name);
    if (!printable(p->value ? p->value : "", n))
        return fail(why, whylen, "%s: not printable ASCII", name);
    memcpy(out, p->value ? p->value : "", n);
    out[n] = '\0';
    return 0;
}

static int take_count(const struct wl_sq_param *p, uint64_t max_count, uint32_t *out, char *why,
                      size_t whylen, const char *name)
{
    uint64_t v = 0;
    if (p->value == NULL || p->vlen == 0 || p->vlen > 10)
        return fail(why, whylen, "%s: not a count", name);
    for (size_t i = 0; i < p->vlen; i++) {
        if (p->value[i] < '0' || p->value[i] > '9')
            return fail(why, whylen, "%s: not a count", name);
        v = v * 10 + (uint64_t)(p->value[i] - '0');
    }
    if (v > max_count || v > UINT32_MAX)
        return fail(why, whylen, "%s: over max_count", name);
    *out = (uint32_t)v;
    return 0;
}

static int is(const struct wl_sq_param *p, const char *s)
{
    return p->value != NULL && p->vlen == strlen(s) && memcmp(p->value, s, p->vlen) == 0;
}

int wl_security_parse(const struct wl_sq_param *params, size_t n, uint64_t max_count,
                      struct wl_security_check *out, char *why, size_t whylen)
{
    const struct wl_sq_param *at[N_P] = {0};
    char b[WL_STRING_MAX + 1];

    memset(out, 0, sizeof *out);
    out->edition = "";
    if (n > WL_SECURITY_PARAMS_MAX)
        return fail(why, whylen, "%s", "too many parameters");
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < N_P; k++) {
            if (params[i].klen == strlen(names[k]) &&
                memcmp(params[i].key, names[k], params[i].klen) == 0) {
                if (at[k] != NULL)
                    return fail(why, whylen, "%s: given more than once", names[k]);
                at[k] = &params[i];
            }
        }
    }
    if (at[P_ID] == NULL)
        return fail(why, whylen, "%s: missing", "id");
    if (take_string(at[P_ID], 1, WL_INSTALL_ID_MAX, out->id, why, whylen, "id") != 0)
        return -EINVAL;
    if (at[P_B] == NULL)
        return fail(why, whylen, "%s: missing", "b");
    if (take_string(at[P_B], 1, WL_STRING_MAX, b, why, whylen, "b") != 0)
        return -EINVAL;
    /* b is CurrentVersion "." BuildNumber: the version is its first three parts */
    size_t cut = 0, dots = 0;
    while (b[cut] != '\0' && !(b[cut] == '.' && ++dots == 3))
        cut++;
    memcpy(out->version, b, cut);
    out->version[cut] = '\0';
    if (at[P_BE] != NULL) {
        if (is(at[P_BE], "true"))
            out->edition = "enterprise";
        else if (is(at[P_BE], "false"))
            out->edition = "team";
        else
            return fail(why, whylen, "%s: not true or false", "be");
    }
    out->has_db = at[P_DB] != NULL;
    out->has_os = at[P_OS] != NULL;
    if (at[P_DB] != NULL &&
        take_string(at[P_DB], 0, WL_STRING_MAX, out->db, why, whylen, "db") != 0)
        return -EINVAL;
    if (at[P_OS] != NULL &&
        take_string(at[P_OS], 0, WL_STRING_MAX, out->os, why, whylen, "os") != 0)
        return -EINVAL;
    if ((out->has_uc = at[P_UC] != NULL) &&
        take_count(at[P_UC], max_count, &out->uc, why, whylen, "uc") != 0)
        return -EINVAL;
    if ((out->has_auc = at[P_AUC] != NULL) &&
        take_count(at[P_AUC], max_count, &out->auc, why, whylen, "auc") != 0)
        return -EINVAL;
    if ((out->has_tc = at[P_TC] != NULL) &&
        take_count(at[P_TC], max_count, &out->tc, why, whylen, "tc") != 0)
        return -EINVAL;
    if (at[P_UT] != NULL) {
        if (is(at[P_UT], "1"))
            out->test_run = 1;
        else if (!is(at[P_UT], "0"))
            return fail(why, whylen, "%s: not 0 or 1", "ut");
    }
    return 0;
}

static char *dup_or_null(const char *s, int *failed)
{
    char *d = strdup(s);
    if (d == NULL)
        *failed = 1;
    return d;
}

wl_ping_batch *wl_security_batch(const struct wl_security_check *c, int64_t received_at_ms)
{
    wl_ping_batch *batch = malloc(sizeof *batch);
    wl_ping *p = malloc(sizeof *p);
    wl_ping **list = malloc(sizeof *list);
    int failed = 0;

    if (batch == NULL || p == NULL || list == NULL) {
        free(batch);
        free(p);
        free(list);
        return NULL;
    }
    warmline__v1__ping_batch__init(batch);
    warmline__v1__ping__init(p);
    list[0] = p;
    batch->pings = list;
    batch->n_pings = 1;
    /* The writer assigns the seq (per install, apart from its wire pings'),
     * and counts a second check of the same install within the hour as a
     * duplicate (every node of a cluster sends its own). */
    p->seq = 1;
    p->sent_at = received_at_ms;
    p->install_id = dup_or_null(c->id, &failed);
    p->version = dup_or_null(c->version, &failed);
    p->edition = dup_or_null(c->edition, &failed);
    p->database_type = dup_or_null(c->db, &failed);
    p->operating_system = dup_or_null(c->os, &failed);
    p->registered_users = c->uc;
    p->active_users_daily = c->auc;
    p->teams = c->tc;
    if (failed) {
        /* a string left NULL is skipped by the free; the rest are ours */
        wl_ping_batch_free(batch);
        return NULL;
    }
    return batch;
}

struct wl_edge *wl_security_edge(const struct wl_security_check *c)
{
    struct wl_edge *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->source = WL_SOURCE_SECURITY;
    e->presence = WL_PRESENT(WL_FIELD_STRING(WL_STRING_version));
    if (c->edition[0] != '\0')
        e->presence |= WL_PRESENT(WL_FIELD_STRING(WL_STRING_edition));
    if (c->has_db)
        e->presence |= WL_PRESENT(WL_FIELD_STRING(WL_STRING_database_type));
    if (c->has_os)
        e->presence |= WL_PRESENT(WL_FIELD_STRING(WL_STRING_operating_system));
    if (c->has_uc)
        e->presence |= WL_PRESENT(WL_FIELD_COUNT(WL_COUNT_registered_users));
    if (c->has_auc)
        e->presence |= WL_PRESENT(WL_FIELD_COUNT(WL_COUNT_active_users_daily));
    if (c->has_tc)
        e->presence |= WL_PRESENT(WL_FIELD_COUNT(WL_COUNT_teams));
    return e;
}
