/* Accounts over HTTP: the hot list (the rank index read from its top, or
 * from below a cursor) and one account. Each request reads one snapshot, so
 * what it answers is one consistent moment.
 *
 * The hot list's cursor (`next`, sent back as `after`) is a position in the
 * rank index, not an offset: base64url of a version byte, the rank of the
 * last row (big-endian 32 bits, so ranks go on across pages) and that row's
 * rank key (the sortable bits of its score_log2, then the org id). Decay
 * moves every score alike, so the order of the index only changes when an
 * organization's signals change it: a page starts strictly below the
 * cursor's (score, org), whatever was added above since.
 *
 * While the writer runs, organizations and installs are read from its
 * memory (state_read.h), so an acked ping shows in the next answer though
 * the records on disk wait for a checkpoint; the rank index, the signals
 * and the finished days are on disk with the pings that made them. Before
 * the writer starts (or once it stopped) the records are read. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aggregate.h"
#include "api_http.h"
#include "api_records.h"
#include "orgkey.h"
#include "ping_json.h"
#include "records.pb-c.h"
#include "rules.h"
#include "signal_json.h"
#include "state_read.h"
#include "storage/keys.h"
#include "writer.h"

#define HOT_MAX_VISITS 100000   /* rank entries one hot query reads at most */
#define HOT_REASONS_MAX 100     /* an account's newest signals the hot list explains it by */
#define CURSOR_VERSION 1
#define CURSOR_HEAD 5           /* version, rank */
#define CURSOR_MAX (CURSOR_HEAD + 8 + WL_ORG_ID_MAX)
#define ERR_MAX 256

/* ---- scores ---- */

/* score_log2 from the sortable bits of a rank key (wl_rank_key reversed). */
static double rank_score_log2(const char *key)
{
    uint64_t bits = wl_be64_get(key);
    double d;
    bits = (bits >> 63) ? bits & ~(1ULL << 63) : ~bits;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* weight * 2^((fired_at - now) / half_life): the signal's part of the score. */
static double points(const wl_signal *s, int64_t now, uint64_t half_life_ms)
{
    if (!(s->weight > 0) || !isfinite(s->weight) || half_life_ms == 0)
        return 0;
    return s->weight * exp2((double)(s->fired_at - now) / (double)half_life_ms);
}

/* A reason: the fields of the signal's JSON that explain it, and points. */
static json_t *reason_json(const wl_signal *s, int64_t now, uint64_t half_life_ms)
{
    static const char *const copied[][2] = {
        {"signal_id", "id"},      {"rule", "rule"},     {"description", "description"},
        {"weight", "weight"},     {"fired_at", "fired_at"}, {"fired_at_iso", "fired_at_iso"},
    };
    json_t *full = wl_signal_json(s), *r = json_object();
    int bad = full == NULL || r == NULL;

    for (size_t i = 0; !bad && i < sizeof copied / sizeof copied[0]; i++)
        wl_json_put(r, copied[i][0], json_incref(json_object_get(full, copied[i][1])), &bad);
    wl_json_put(r, "points", json_real(points(s, now, half_life_ms)), &bad);
    wl_json_put(r, "terms", json_incref(json_object_get(full, "terms")), &bad);
    json_decref(full);
    if (bad) {
        json_decref(r);
        return NULL;
    }
    return r;
}

/* The signals newest first, each with its points at now. */
static json_t *reasons_json(const struct wl_org_signals *sigs, int64_t now,
                            uint64_t half_life_ms)
{
    json_t *a = json_array();
    for (size_t i = sigs->n; a != NULL && i-- > 0;) {
        if (json_array_append_new(a, reason_json(sigs->v[i], now, half_life_ms)) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static double org_score(const wl_org_state *st, int64_t now, uint64_t half_life_ms)
{
    return st->has_score ? wl_score_at(st->score_log2, now, half_life_ms) : 0;
}

/* ---- records: from the writer's memory, else from the store ---- */

static int org_get(struct wl_api *api, const struct wl_snapshot *snap, const uint8_t *org,
                   size_t org_len, wl_org_state **out, char *err, size_t errlen)
{
    int rc = -EAGAIN;
    pthread_rwlock_rdlock(&api->writer_lock);
    if (api->writer != NULL)
        rc = wl_state_read_org(wl_writer_state_reader(api->writer), org, org_len, out);
    pthread_rwlock_unlock(&api->writer_lock);
    if (rc == -EAGAIN)
        return wl_org_state_get(api->store, snap, org, org_len, out, err, errlen);
    if (rc == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    return rc;
}

/* An organization's signals: those its index entries name and those whose
 * entries wait in the writer's memory for the next checkpoint. */
static int org_signals(struct wl_api *api, struct wl_org_index *ix, const uint8_t *org,
                       size_t org_len, size_t max, struct wl_org_signals *out, char *err,
                       size_t errlen)
{
    struct wl_signals_mem mem;
    int rc = -EAGAIN;
    pthread_rwlock_rdlock(&api->writer_lock);
    if (api->writer != NULL)
        rc = wl_state_read_signals(wl_writer_state_reader(api->writer), org, org_len, &mem);
    pthread_rwlock_unlock(&api->writer_lock);
    if (rc != 0 && rc != -EAGAIN) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    int have = rc == 0;
    rc = wl_org_signals_load(api->store, ix, org, org_len, have ? &mem : NULL, max, out, err,
                             errlen);
    if (have)
        wl_signals_mem_free(&mem);
    return rc;
}

static int install_get(struct wl_api *api, const struct wl_snapshot *snap, const char *id,
                       wl_install_state **out, char *err, size_t errlen)
{
    int rc = -EAGAIN;
    pthread_rwlock_rdlock(&api->writer_lock);
    if (api->writer != NULL)
        rc = wl_state_read_install(wl_writer_state_reader(api->writer), id, out);
    pthread_rwlock_unlock(&api->writer_lock);
    if (rc == -EAGAIN)
        return wl_install_state_get(api->store, snap, id, out, err, errlen);
    if (rc == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    return rc;
}

/* ---- GET /v1/accounts/hot ---- */

struct hot_query {
    uint64_t limit;
    double min_score;
    const char *rule;           /* NULL: any */
    int64_t since;
    int has_since;
    uint8_t after[8 + WL_ORG_ID_MAX]; /* the cursor's rank key; after_len 0: from the top */
    size_t after_len;
    uint32_t after_rank;        /* rows before this page */
};

/* Where a page ended: the rank key of its last row (or of the last entry
 * read, when the visits ran out) and the rows before it. */
struct hot_end {
    uint8_t key[8 + WL_ORG_ID_MAX];
    size_t len;                 /* 0: nothing read */
    uint32_t rank;
};

/* A rank key (8 score bytes + org id) whose org id is one the index holds. */
static int rank_key_ok(const uint8_t *k, size_t klen)
{
    if (klen <= 8 || klen > 8 + WL_ORG_ID_MAX)
        return 0;
    if (k[8] == WL_ORG_TAG_KEY)
        return klen == 8 + 1 + WL_ORG_KEY_BYTES;
    return k[8] == WL_ORG_TAG_INSTALL && klen >= 8 + 2;
}

/* The `after` parameter into q: 0, or -1 with the 400 queued. */
static int parse_cursor(const struct wl_req *rq, const struct wl_api_param *p,
                        struct hot_query *q, enum MHD_Result *ret)
{
    static const char expected[] = "a cursor from the next of a previous page";
    uint8_t c[CURSOR_MAX];
    size_t n;

    if (wl_api_param_b64(rq, p, c, CURSOR_HEAD + 9, sizeof c, &n, expected, ret) != 0)
        return -1;
    if (n == 0)
        return 0;
    if (c[0] != CURSOR_VERSION || !rank_key_ok(c + CURSOR_HEAD, n - CURSOR_HEAD)) {
        *ret = wl_api_send_error(rq->conn, MHD_HTTP_BAD_REQUEST, "bad_parameter",
                                 "after: expected %s, got a cursor this collector did not "
                                 "write", expected);
        return -1;
    }
    q->after_rank = wl_be32_get(c + 1);
    q->after_len = n - CURSOR_HEAD;
    memcpy(q->after, c + CURSOR_HEAD, q->after_len);
    return 0;
}

/* The cursor of end, or JSON null when there is none. */
static json_t *cursor_json(const struct hot_end *end)
{
    uint8_t c[CURSOR_MAX];

    if (end->len == 0)
        return json_null();
    c[0] = CURSOR_VERSION;
    wl_be32_put(c + 1, end->rank);
    memcpy(c + CURSOR_HEAD, end->key, end->len);
    return wl_api_b64_json(c, CURSOR_HEAD + end->len);
}

static void end_at(struct hot_end *end, const char *key, size_t klen, size_t rank)
{
    memcpy(end->key, key, klen);
    end->len = klen;
    end->rank = rank > UINT32_MAX ? UINT32_MAX : (uint32_t)rank;
}

/* Whether the organization has a signal of q's rule (any rule without
 * one) fired at or after q's since: from the rule states in the writer's
 * memory, whose last firing is that signal's time, so a visit costs the
 * same whatever the organization's history. One that left memory since
 * the rank was read does not match. */
static int signals_match(struct wl_api *api, const uint8_t *org, size_t org_len,
                         const struct hot_query *q)
{
    int64_t at = 0;
    int rc = -EAGAIN;
    if (q->rule == NULL && !q->has_since)
        return 1;
    pthread_rwlock_rdlock(&api->writer_lock);
    if (api->writer != NULL)
        rc = wl_state_read_last_fired(wl_writer_state_reader(api->writer), org, org_len, q->rule,
                                      &at);
    pthread_rwlock_unlock(&api->writer_lock);
    return rc == 0 && at != 0 && (!q->has_since || at >= q->since);
}

static json_t *hot_account_json(struct wl_api *api, const struct wl_snapshot *snap,
                                const uint8_t *org, size_t org_len, size_t rank, double score,
                                const wl_org_state *st, const struct wl_org_signals *sigs,
                                int64_t now, char *err, size_t errlen)
{
    json_t *o = json_object();
    int bad = o == NULL;
    json_t *named = wl_api_named_label(api, snap, org, org_len, err, errlen);

    if (named == NULL || bad) {
        json_decref(named);
        json_decref(o);
        return NULL;
    }
    wl_json_put(o, "rank", json_integer((json_int_t)rank), &bad);
    wl_json_put(o, "org", wl_json_org(org, org_len), &bad);
    wl_json_put(o, "score", json_real(score), &bad);
    wl_json_put(o, "named", named, &bad);
    wl_json_put(o, "installs", json_integer((json_int_t)WL_ORG_INSTALLS_TOTAL(st)), &bad);
    wl_json_put(o, "installs_counting", json_integer(st->installs_counting), &bad);
    wl_json_put_activity(o, st, 1, &bad);
    wl_json_put(o, "reasons", reasons_json(sigs, now, api->cfg->score_half_life_ms), &bad);
    if (st->signals > sigs->n) { /* the newest HOT_REASONS_MAX: the rest, summed up */
        double listed = 0;
        for (size_t i = 0; i < sigs->n; i++)
            listed += points(sigs->v[i], now, api->cfg->score_half_life_ms);
        wl_json_put(o, "reasons_omitted",
                    json_pack("{s:I,s:f}", "signals", (json_int_t)(st->signals - sigs->n),
                              "points", score > listed ? score - listed : 0.0),
                    &bad);
    }
    if (bad) {
        snprintf(err, errlen, "out of memory");
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The rank is read from the writer's memory this many entries at a time
 * (each piece under its lock: microseconds), from the last one read on. */
#define RANK_PIECE 64

/* Walks the rank from its highest score (or the cursor) down. *end is
 * where a next page starts (len 0: there is none). */
static int hot_scan(struct wl_req *rq, const struct wl_snapshot *snap, const struct hot_query *q,
                    json_t *accounts, int *truncated, struct hot_end *end, char *err,
                    size_t errlen)
{
    struct wl_api *api = rq->api;
    uint64_t half_life = api->cfg->score_half_life_ms;
    struct hot_end visited_end = {.len = 0};
    size_t visited = 0;
    int rc = 0;

    *truncated = 0;
    end->len = 0;
    struct wl_org_index ix = {NULL, 0};
    uint8_t keys[RANK_PIECE][WL_RANK_KEY_MAX], lens[RANK_PIECE], from[WL_RANK_KEY_MAX];
    size_t from_len = q->after_len;
    int n_piece = 0, i_piece = 0;
    memcpy(from, q->after, q->after_len);
    for (;;) {
        if (i_piece == n_piece) { /* the next piece, after the last entry read */
            pthread_rwlock_rdlock(&api->writer_lock);
            n_piece = api->writer == NULL
                          ? -EAGAIN
                          : wl_state_read_rank(wl_writer_state_reader(api->writer), from,
                                               from_len, keys, lens, RANK_PIECE);
            pthread_rwlock_unlock(&api->writer_lock);
            if (n_piece < 0) {
                snprintf(err, errlen, "the collector is starting: its state is not loaded");
                rc = -EAGAIN;
                break;
            }
            if (n_piece == 0)
                break;
            i_piece = 0;
            from_len = lens[n_piece - 1];
            memcpy(from, keys[n_piece - 1], from_len);
        }
        const char *key = (const char *)keys[i_piece];
        size_t klen = lens[i_piece++];
        if (visited++ == HOT_MAX_VISITS) {
            *truncated = 1;     /* go on from the last entry read */
            *end = visited_end;
            break;
        }
        if (!rank_key_ok((const uint8_t *)key, klen))
            continue;
        double score = wl_score_at(rank_score_log2(key), rq->now, half_life);
        if (score < q->min_score)
            break; /* the index is in score order: the rest is lower */
        if (json_array_size(accounts) >= q->limit) {
            *end = visited_end; /* the page is full and more is to read: its last row */
            break;
        }
        size_t rows = q->after_rank + json_array_size(accounts);
        const uint8_t *org = (const uint8_t *)key + 8;
        size_t org_len = klen - 8;
        struct wl_org_signals sigs = {0};
        wl_org_state *st = NULL;
        if (!signals_match(api, org, org_len, q)) {
            end_at(&visited_end, key, klen, rows);
            continue;
        }
        rc = org_get(api, snap, org, org_len, &st, err, errlen);
        if (rc == -ENOENT) { /* ranked but no record: nothing to show */
            end_at(&visited_end, key, klen, rows);
            rc = 0;
            continue;
        }
        if (rc == 0)
            rc = org_signals(api, &ix, org, org_len, HOT_REASONS_MAX, &sigs, err, errlen);
        json_t *a = NULL;
        if (rc == 0)
            a = hot_account_json(api, snap, org, org_len, rows + 1, score, st, &sigs, rq->now,
                                 err, errlen);
        end_at(&visited_end, key, klen, rows + 1);
        wl_org_signals_free(&sigs);
        if (st != NULL)
            warmline__store__v1__org_state__free_unpacked(st, NULL);
        if (rc == 0 && (a == NULL || json_array_append_new(accounts, a) != 0))
            rc = -ENOMEM;
        if (rc != 0)
            break;
    }
    wl_org_index_free(&ix);
    return rc;
}

enum MHD_Result wl_api_hot(struct wl_req *rq)
{
    struct wl_api_param p[] = {{"limit"}, {"min_score"}, {"rule"}, {"since"}, {"after"}};
    struct hot_query q = {0};
    struct hot_end end = {.len = 0};
    enum MHD_Result ret = MHD_NO;
    char err[ERR_MAX] = "out of memory";
    int truncated = 0;

    if (wl_api_params(rq, p, 5, &ret) != 0 ||
        wl_api_param_uint(rq, &p[0], 1, WL_API_LIMIT_MAX, 50, &q.limit, &ret) != 0 ||
        wl_api_param_score(rq, &p[1], 0, &q.min_score, &ret) != 0 ||
        wl_api_param_name(rq, &p[2], &q.rule, &ret) != 0 ||
        wl_api_param_time(rq, &p[3], &q.since, &q.has_since, &ret) != 0 ||
        parse_cursor(rq, &p[4], &q, &ret) != 0)
        return ret;
    struct wl_snapshot *snap = wl_snapshot_new(rq->api->store);
    json_t *accounts = json_array();
    int rc = snap && accounts ? hot_scan(rq, snap, &q, accounts, &truncated, &end, err,
                                         sizeof err)
                              : -ENOMEM;
    wl_snapshot_free(snap);
    if (rc != 0) {
        json_decref(accounts);
        return wl_api_storage_error(rq->conn, "hot accounts", err);
    }
    json_t *next = cursor_json(&end);
    if (next == NULL) {
        json_decref(accounts);
        return MHD_NO;
    }
    return wl_api_send_json(
        rq->conn, MHD_HTTP_OK,
        json_pack("{s:I,s:I,s:o,s:b,s:o}", "generated_at", (json_int_t)rq->now,
                  "half_life_ms", (json_int_t)rq->api->cfg->score_half_life_ms, "accounts",
                  accounts, "truncated", truncated, "next", next));
}

/* ---- GET /v1/accounts/{org} ---- */

static int is_hex64(const char *s)
{
    return strlen(s) == 2 * WL_ORG_KEY_BYTES &&
           strspn(s, "0123456789abcdefABCDEF") == 2 * WL_ORG_KEY_BYTES;
}

static int hexval(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* The organization id the path names: 64 hex, domain:<d>, install:<id>,
 * or an install id (its organization). 0, -ENOENT, or another error with
 * the answer queued in *ret. */
static int resolve_org(struct wl_req *rq, const struct wl_snapshot *snap, uint8_t *org,
                       size_t *org_len, enum MHD_Result *ret, char *err, size_t errlen)
{
    const char *s = rq->rest;
    struct wl_api *api = rq->api;

    if (strncmp(s, "domain:", 7) == 0) {
        char why[200];
        if (!wl_api_need_salt(rq, ret))
            return -EAGAIN;
        if (wl_org_domain_check(s + 7, why, sizeof why) != 0) {
            *ret = wl_api_send_error(rq->conn, MHD_HTTP_BAD_REQUEST, "bad_org",
                                     "domain: %s", why);
            return -EINVAL;
        }
        org[0] = WL_ORG_TAG_KEY;
        wl_org_key(api->org_salt, api->org_salt_len, s + 7, org + 1);
        *org_len = 1 + WL_ORG_KEY_BYTES;
        return 0;
    }
    if (strncmp(s, "install:", 8) == 0) {
        size_t n = strlen(s + 8);
        if (n == 0 || n > WL_INSTALL_ID_MAX)
            return -ENOENT;
        org[0] = WL_ORG_TAG_INSTALL;
        memcpy(org + 1, s + 8, n);
        *org_len = 1 + n;
        return 0;
    }
    if (is_hex64(s)) {
        wl_org_state *rec = NULL;
        org[0] = WL_ORG_TAG_KEY;
        for (int i = 0; i < WL_ORG_KEY_BYTES; i++)
            org[1 + i] = (uint8_t)(hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]));
        *org_len = 1 + WL_ORG_KEY_BYTES;
        int rc = org_get(api, snap, org, *org_len, &rec, err, errlen);
        if (rec != NULL)
            warmline__store__v1__org_state__free_unpacked(rec, NULL);
        if (rc != -ENOENT)
            return rc;
        /* not an organization: perhaps an install named in hex */
    }
    if (strlen(s) > WL_INSTALL_ID_MAX)
        return -ENOENT;
    wl_install_state *inst = NULL;
    int rc = install_get(api, snap, s, &inst, err, errlen);
    if (rc != 0)
        return rc;
    if (inst->org.len == 0 || inst->org.len > WL_ORG_ID_MAX) {
        warmline__store__v1__install_state__free_unpacked(inst, NULL);
        return -ENOENT;
    }
    memcpy(org, inst->org.data, inst->org.len);
    *org_len = inst->org.len;
    warmline__store__v1__install_state__free_unpacked(inst, NULL);
    return 0;
}

static json_t *install_json(struct wl_api *api, const struct wl_snapshot *snap, const char *id,
                            int64_t now, char *err, size_t errlen)
{
    wl_install_state *st = NULL;
    json_t *o = json_object(), *last = NULL;
    int bad = o == NULL;

    int rc = install_get(api, snap, id, &st, err, errlen);
    if (rc == -ENOENT) { /* listed by the org but not stored: say so, do not fail */
        wl_json_put(o, "install_id", wl_json_str(id), &bad);
        wl_json_put(o, "counting", json_false(), &bad);
        return bad ? (json_decref(o), NULL) : o;
    }
    if (rc != 0 || bad) {
        json_decref(o);
        return NULL;
    }
    int64_t ttl = (int64_t)api->cfg->install_ttl_ms;
    wl_json_put(o, "install_id", wl_json_str(st->install_id), &bad);
    wl_json_put(o, "counting", json_boolean(st->last_seen >= now - ttl), &bad);
    wl_json_put(o, "first_seen", json_integer(st->first_seen), &bad);
    wl_json_put(o, "last_seen", json_integer(st->last_seen), &bad);
    wl_json_put(o, "last_seq", wl_json_u64(st->last_seq), &bad);
    /* from the log (memory keeps no ping): the latest, not the request's
     * snapshot, which may be older than memory; a stored ping never
     * changes. A record from an older version may hold it instead. */
    wl_ping *lp = wl_latest_ping_read(api->store, NULL, st->last_ingest_seq, st->install_id);
    const wl_ping *shown = lp != NULL ? lp : st->last_ping;
    if (shown != NULL) {
        last = json_object();
        if (last == NULL || wl_ping_json_add(last, shown) != 0)
            bad = 1;
    } else {
        last = json_null(); /* retention removed it, or it is not yet written */
    }
    if (lp != NULL)
        warmline__v1__ping__free_unpacked(lp, NULL);
    wl_json_put(o, "last_ping", last, &bad);
    warmline__store__v1__install_state__free_unpacked(st, NULL);
    if (bad) {
        snprintf(err, errlen, "out of memory");
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *daily_row_json(uint32_t day, const wl_daily_state *d)
{
    char date[16];
    time_t t = (time_t)day * 86400;
    struct tm tm;
    json_t *o = json_object();
    int bad = o == NULL;

    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%Y-%m-%d", &tm);
    wl_json_put(o, "day", json_integer(day), &bad);
    wl_json_put(o, "date", json_string(date), &bad);
    wl_json_put(o, "totals", wl_json_totals(d->totals, d->n_totals), &bad);
    wl_json_put(o, "installs", json_integer(d->installs), &bad);
    wl_json_put(o, "installs_total", json_integer(d->installs_total), &bad);
    return bad ? (json_decref(o), NULL) : o;
}

/* The daily rows of the last `days` UTC days up to today, oldest first
 * (days without a row are absent). */
/* The organization's current day as its record has it: the row on disk
 * waits for a checkpoint (a finished day is written when the next starts). */
static int daily_current(json_t *a, const wl_org_state *st, uint32_t from, uint32_t today)
{
    size_t n = json_array_size(a);
    if (st->day == 0 || st->day < from || st->day > today)
        return 0;
    wl_daily_state d = WARMLINE__STORE__V1__DAILY_STATE__INIT;
    d.day = st->day;
    d.n_totals = st->n_totals;
    d.totals = st->totals;
    d.installs = st->installs_counting;
    d.installs_total = (uint32_t)WL_ORG_INSTALLS_TOTAL(st);
    json_t *row = daily_row_json(st->day, &d);
    if (row == NULL)
        return -ENOMEM;
    json_t *last = n > 0 ? json_array_get(a, n - 1) : NULL;
    json_int_t last_day = last != NULL ? json_integer_value(json_object_get(last, "day")) : -1;
    if (last_day == (json_int_t)st->day)
        return json_array_set_new(a, n - 1, row) == 0 ? 0 : -ENOMEM;
    if (last_day > (json_int_t)st->day) { /* a day the record has not seen: keep the rows */
        json_decref(row);
        return 0;
    }
    return json_array_append_new(a, row) == 0 ? 0 : -ENOMEM;
}

static json_t *daily_json(struct wl_api *api, const struct wl_snapshot *snap,
                          const uint8_t *org, size_t org_len, const wl_org_state *st,
                          uint64_t days, int64_t now, char *err, size_t errlen)
{
    uint8_t key[1 + WL_ORG_ID_MAX + 4];
    uint32_t today = wl_day_of(now);
    uint32_t from = today + 1 > days ? (uint32_t)(today + 1 - days) : 0;
    json_t *a = json_array();
    int rc = 0;

    struct wl_iter *it = wl_iter_new_at(api->store, snap, WL_CF_DAILY);
    if (it == NULL || a == NULL) {
        wl_iter_free(it);
        json_decref(a);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    size_t klen0 = wl_daily_key(org, org_len, from, key);
    for (wl_iter_seek(it, key, klen0); wl_iter_valid(it); wl_iter_next(it)) {
        size_t klen, vlen;
        const char *k = wl_iter_key(it, &klen);
        if (klen != klen0 || memcmp(k, key, 1 + org_len) != 0)
            break;
        uint32_t day = wl_be32_get(k + 1 + org_len);
        if (day > today)
            break;
        const char *v = wl_iter_value(it, &vlen);
        wl_daily_state *d =
            warmline__store__v1__daily_state__unpack(NULL, vlen, (const uint8_t *)v);
        if (d == NULL)
            continue; /* a damaged row is left out */
        json_t *row = daily_row_json(day, d);
        warmline__store__v1__daily_state__free_unpacked(d, NULL);
        if (row == NULL || json_array_append_new(a, row) != 0) {
            snprintf(err, errlen, "out of memory");
            rc = -ENOMEM;
            break;
        }
    }
    if (rc == 0)
        rc = wl_iter_status(it, err, errlen);
    wl_iter_free(it);
    if (rc == 0 && (rc = daily_current(a, st, from, today)) != 0)
        snprintf(err, errlen, "out of memory");
    if (rc != 0) {
        json_decref(a);
        return NULL;
    }
    return a;
}

static json_t *account_json(struct wl_req *rq, const struct wl_snapshot *snap,
                            const uint8_t *org, size_t org_len, const wl_org_state *st,
                            uint64_t days, char *err, size_t errlen)
{
    struct wl_api *api = rq->api;
    struct wl_org_signals sigs;
    json_t *o = json_object(), *installs = json_array(), *signals = json_array();
    int bad = o == NULL || installs == NULL || signals == NULL;

    struct wl_org_index ix = {NULL, 0};
    int rc = org_signals(api, &ix, org, org_len, 0, &sigs, err, errlen);
    wl_org_index_free(&ix);
    if (rc != 0) {
        json_decref(o);
        json_decref(installs);
        json_decref(signals);
        return NULL;
    }
    for (size_t i = 0; !bad && i < st->n_install_ids; i++) {
        json_t *x = install_json(api, snap, st->install_ids[i], rq->now, err, errlen);
        bad = x == NULL || json_array_append_new(installs, x) != 0;
    }
    for (size_t i = 0; !bad && i < sigs.n; i++)
        bad = json_array_append_new(signals, wl_signal_json(sigs.v[i])) != 0;
    wl_org_signals_free(&sigs);
    json_t *named = bad ? NULL : wl_api_named_label(api, snap, org, org_len, err, errlen);
    json_t *daily = named == NULL ? NULL
                                  : daily_json(api, snap, org, org_len, st, days, rq->now,
                                               err, errlen);
    if (daily == NULL) {
        json_decref(named);
        json_decref(o);
        json_decref(installs);
        json_decref(signals);
        return NULL;
    }
    wl_json_put(o, "org", wl_json_org(org, org_len), &bad);
    wl_json_put(o, "named", named, &bad);
    wl_json_put(o, "score", json_real(org_score(st, rq->now, api->cfg->score_half_life_ms)), &bad);
    wl_json_put(o, "installs_counting", json_integer(st->installs_counting), &bad);
    /* installs lists at most WL_ORG_INSTALL_IDS_MAX: the page says when there are more */
    wl_json_put(o, "installs_total", json_integer((json_int_t)WL_ORG_INSTALLS_TOTAL(st)), &bad);
    wl_json_put_activity(o, st, 1, &bad);
    wl_json_put(o, "installs", installs, &bad);
    wl_json_put(o, "daily", daily, &bad);
    wl_json_put(o, "signals", signals, &bad);
    if (bad) {
        snprintf(err, errlen, "out of memory");
        json_decref(o);
        return NULL;
    }
    return o;
}

enum MHD_Result wl_api_account(struct wl_req *rq)
{
    struct wl_api_param p[] = {{"days"}};
    enum MHD_Result ret = MHD_NO;
    uint8_t org[WL_ORG_ID_MAX];
    size_t org_len = 0;
    uint64_t days;
    wl_org_state *st = NULL;
    json_t *body = NULL;
    char err[ERR_MAX] = "out of memory";

    if (wl_api_params(rq, p, 1, &ret) != 0 ||
        wl_api_param_uint(rq, &p[0], 1, 3650, 90, &days, &ret) != 0)
        return ret;
    struct wl_snapshot *snap = wl_snapshot_new(rq->api->store);
    if (snap == NULL)
        return MHD_NO;
    int rc = resolve_org(rq, snap, org, &org_len, &ret, err, sizeof err);
    if (rc == -EAGAIN || rc == -EINVAL)
        goto done; /* answered */
    if (rc == 0)
        rc = org_get(rq->api, snap, org, org_len, &st, err, sizeof err);
    if (rc == -ENOENT) {
        ret = wl_api_send_error(rq->conn, MHD_HTTP_NOT_FOUND, "not_found",
                                "no organization or install '%.100s'", rq->rest);
        goto done;
    }
    if (rc == 0)
        body = account_json(rq, snap, org, org_len, st, days, err, sizeof err);
    if (body == NULL)
        ret = wl_api_storage_error(rq->conn, "account", err);
    else
        ret = wl_api_send_json(rq->conn, MHD_HTTP_OK, body);
done:
    if (st != NULL)
        warmline__store__v1__org_state__free_unpacked(st, NULL);
    wl_snapshot_free(snap);
    return ret;
}
