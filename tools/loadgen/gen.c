/* Realistic pings, encoded into frames with the project's own encoder.
 *
 * Installs are "inst-NNNNNN"; install i belongs to connection i % N, so
 * each install's pings travel on one connection in seq order (as a real
 * server's would) and none is a duplicate. Everything an install says
 * about itself (size, version, organization, features) is derived from a
 * hash of its index and the seed; its seq counts up from opt->seq_base. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/envelope.h"
#include "collector/framing.h"
#include "collector/orgkey.h"
#include "loadgen.h"

#define INLINE_FRAMES 64  /* frames encoded at a time when not pre-encoded */
#define MAX_FEATURES 10
#define MAX_POSTS 9999999 /* stays under the collector's default max_count */

static const char *const versions[] = {"10.5.1", "10.4.3", "10.3.2", "9.11.6", "10.6.0"};
static const char *const editions[] = {"team", "team", "team", "free"};
static const char *const databases[] = {"postgres", "postgres", "postgres", "postgres", "mysql"};
static const char *const systems[] = {"linux", "linux", "linux", "linux", "windows", "darwin"};
static const char *const install_types[] = {"docker", "deb", "tar", "kubernetes", "omnibus"};
static const char *const feature_names[MAX_FEATURES] = {
    "saml_configured", "ldap_configured", "oauth_gitlab", "mfa_enforced", "plugins_enabled",
    "guest_accounts", "custom_emoji", "bleve_indexing", "elasticsearch", "cluster",
};

#define PICK(arr, h) ((arr)[(h) % (sizeof(arr) / sizeof((arr)[0]))])

/* splitmix64's finalizer: a good 64-bit mix of x. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

int lg_gen_init(struct lg_gen *g, const struct lg_options *opt, char *err, size_t errlen)
{
    static const uint8_t salt[] = "warmline-loadgen";
    char domain[64];

    memset(g, 0, sizeof *g);
    g->opt = opt;
    g->sent_at = lg_unix_ms();
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialize");
        return -EIO;
    }
    g->org_keys = malloc((opt->orgs ? opt->orgs : 1) * sizeof *g->org_keys);
    if (g->org_keys == NULL) {
        snprintf(err, errlen, "out of memory for %u org keys", opt->orgs);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < opt->orgs; i++) {
        snprintf(domain, sizeof domain, "org-%06u.example", i);
        wl_org_key(salt, sizeof salt - 1, domain, g->org_keys[i]);
    }
    if (opt->zipf > 0 && opt->orgs > 0) {
        /* Organization of rank k (index k - 1) weighs 1 / k^s. */
        g->zipf_cdf = malloc(opt->orgs * sizeof *g->zipf_cdf);
        if (g->zipf_cdf == NULL) {
            snprintf(err, errlen, "out of memory for %u org weights", opt->orgs);
            lg_gen_free(g);
            return -ENOMEM;
        }
        double sum = 0;
        for (unsigned i = 0; i < opt->orgs; i++)
            g->zipf_cdf[i] = sum += pow((double)i + 1, -opt->zipf);
        for (unsigned i = 0; i < opt->orgs; i++)
            g->zipf_cdf[i] /= sum;
    }
    return 0;
}

void lg_gen_free(struct lg_gen *g)
{
    free(g->org_keys);
    free(g->zipf_cdf);
    g->org_keys = NULL;
    g->zipf_cdf = NULL;
}

/* Install inst's organization index, or -1 for none. Uniform: one install
 * in ten has none, the others a hash's pick. Zipf: install i < orgs
 * belongs to organization i (so every organization has one), the rest
 * (one in ten without) to rank k with probability proportional to 1/k^s. */
static long pick_org(const struct lg_gen *g, uint32_t inst, uint64_t h)
{
    const struct lg_options *opt = g->opt;

    if (opt->orgs == 0)
        return -1;
    if (g->zipf_cdf == NULL)
        return h % 10 != 0 ? (long)((h >> 16) % opt->orgs) : -1;
    if (inst < opt->orgs)
        return (long)inst;
    if (h % 10 == 0)
        return -1;
    double u = (double)(mix(h) >> 11) / 9007199254740992.0; /* [0, 1) */
    size_t lo = 0, hi = opt->orgs - 1;
    while (lo < hi) { /* the first rank whose cumulative weight exceeds u */
        size_t mid = lo + (hi - lo) / 2;
        if (g->zipf_cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return (long)lo;
}

/* Fills p as the k-th ping of this run from install inst. id and features
 * are p's own scratch. */
static void fill_ping(const struct lg_gen *g, uint32_t inst, uint64_t k, wl_ping *p, char *id,
                      char **features)
{
    const struct lg_options *opt = g->opt;
    uint64_t h = mix(mix(opt->seed) ^ inst), h2 = mix(h);
    uint32_t size = (uint32_t)(h % 100), r = (uint32_t)(h >> 8);
    uint32_t reg = size < 70 ? 5 + r % 45 : size < 95 ? 50 + r % 450 : 500 + r % 9500;
    uint32_t mau = reg * (50 + (uint32_t)(h >> 24) % 50) / 100;
    uint32_t dau = mau * (20 + (uint32_t)(h >> 32) % 60) / 100;
    uint32_t per_day = dau * (3 + (uint32_t)((k + (h >> 40)) % 8));
    uint64_t posts = (uint64_t)reg * 150 + k * per_day;

    warmline__v1__ping__init(p);
    snprintf(id, 24, "inst-%06u", inst);
    p->install_id = id;
    long org = pick_org(g, inst, h);
    if (org >= 0) {
        p->org_key.data = g->org_keys[org];
        p->org_key.len = 32;
    }
    p->seq = opt->seq_base + k;
    p->sent_at = g->sent_at;
    p->version = (char *)PICK(versions, h2);
    p->edition = (char *)PICK(editions, h2 >> 8);
    p->database_type = (char *)PICK(databases, h2 >> 16);
    p->operating_system = (char *)PICK(systems, h2 >> 24);
    p->installation_type = (char *)PICK(install_types, h2 >> 32);

    p->registered_users = reg;
    p->active_users_daily = dau;
    p->active_users_monthly = mau;
    p->bot_accounts = (uint32_t)(h2 >> 40) % 5;
    p->guest_accounts = (uint32_t)(h2 >> 44) % 20;
    p->teams = 1 + reg / 50;
    p->public_channels = 3 + reg / 4;
    p->private_channels = reg / 10;
    p->direct_message_channels = reg * 2;
    p->posts_previous_day = per_day;
    p->incoming_webhooks = (uint32_t)(h2 >> 48) % 10;
    p->outgoing_webhooks = (uint32_t)(h2 >> 52) % 4;
    p->slash_commands = (uint32_t)(h2 >> 56) % 6;
    p->system_admins = 1 + (uint32_t)(h2 >> 60) % 3;
    p->posts = posts < MAX_POSTS ? posts : MAX_POSTS;

    uint64_t f = mix(h2);
    p->features = features;
    for (size_t j = 0; j < MAX_FEATURES; j++) {
        if (((f >> (3 * j)) & 7) < 2) /* each feature on one install in four */
            features[p->n_features++] = (char *)feature_names[j];
    }
}

/* Fills s->pings[0..n) with the next n pings of s, round robin over its
 * installs. */
static void fill_batch(struct lg_source *s, uint64_t n)
{
    for (size_t j = 0; j < n; j++) {
        fill_ping(s->gen, s->installs[s->cursor], s->sent[s->cursor]++, &s->pings[j], s->ids[j],
                  s->features + j * MAX_FEATURES);
        s->cursor = s->cursor + 1 == s->n_installs ? 0 : s->cursor + 1;
    }
    s->left -= n;
}

/* --statsd: one counter line per ping, the organization's posts of the
 * previous day (what its totals would add), keyed by the first 8 bytes of
 * its org_key in hex. */
static int encode_statsd(const wl_ping *pings, uint64_t n, uint8_t **out, size_t *outlen)
{
    size_t cap = (size_t)n * 64, len = 0;
    char *buf = malloc(cap);

    if (buf == NULL)
        return -ENOMEM;
    for (size_t j = 0; j < n; j++) {
        const wl_ping *p = &pings[j];
        char org[17] = "none";
        if (p->org_key.len >= 8) {
            for (int b = 0; b < 8; b++)
                snprintf(org + 2 * b, 3, "%02x", p->org_key.data[b]);
        }
        len += (size_t)snprintf(buf + len, cap - len, "%swarmline.org.%s.posts:%" PRIu64 "|c",
                                j ? "\n" : "", org, (uint64_t)p->posts_previous_day);
    }
    *out = (uint8_t *)buf;
    *outlen = len;
    return 0;
}

/* Encodes the next frame of s into *out. */
static int encode_frame(struct lg_source *s, struct lg_frame *out)
{
    const struct lg_options *opt = s->gen->opt;
    wl_ping_batch batch = WARMLINE__V1__PING_BATCH__INIT;
    uint64_t n = s->left < opt->batch ? s->left : opt->batch;
    uint8_t *env, hdr[WL_VARINT_MAX];
    size_t envlen, hlen = 0;
    int rc;

    fill_batch(s, n);
    batch.pings = s->ptrs;
    batch.n_pings = n;
    out->npings = (uint32_t)n;
    out->batch_id = s->next_frame * opt->connections + s->conn + 1; /* unique in the run */
    s->next_frame++;
    if (opt->statsd) {
        if ((rc = encode_statsd(s->pings, n, &out->buf, &out->len)) != 0)
            return rc;
        return 0;
    }
    if ((rc = wl_envelope_encode(&batch, opt->zlib, out->batch_id, &env, &envlen)) != 0)
        return rc;
    if (!opt->tcp) {
        out->buf = env;
        out->len = envlen;
        return 0;
    }
    hlen = wl_varint_encode(envlen, hdr);
    out->buf = malloc(hlen + envlen);
    if (out->buf == NULL) {
        free(env);
        return -ENOMEM;
    }
    memcpy(out->buf, hdr, hlen);
    memcpy(out->buf + hlen, env, envlen);
    out->len = hlen + envlen;
    free(env);
    return 0;
}

/* Encodes frames into q until it is full or the pings run out. */
static int fill_queue(struct lg_source *s)
{
    int rc;

    while (s->n < s->cap && s->left > 0 && !s->stopped) {
        if ((rc = encode_frame(s, &s->q[s->n])) != 0)
            return rc;
        s->n++;
    }
    return 0;
}

int lg_source_init(struct lg_source *s, const struct lg_gen *g, unsigned conn, uint64_t npings,
                   int preencode, char *err, size_t errlen)
{
    const struct lg_options *opt = g->opt;
    unsigned nconn = opt->connections;
    uint64_t rng = mix(opt->seed ^ mix(conn + 1));
    int rc = -ENOMEM;

    memset(s, 0, sizeof *s);
    s->gen = g;
    s->conn = conn;
    s->left = npings;
    s->preencoded = preencode;
    s->n_installs = opt->installs / nconn + (conn < opt->installs % nconn);
    s->cap = preencode ? (size_t)((npings + opt->batch - 1) / opt->batch) : INLINE_FRAMES;
    s->installs = malloc(s->n_installs * sizeof *s->installs);
    s->sent = calloc(s->n_installs, sizeof *s->sent);
    s->q = calloc(s->cap ? s->cap : 1, sizeof *s->q);
    s->pings = calloc(opt->batch, sizeof *s->pings);
    s->ptrs = malloc(opt->batch * sizeof *s->ptrs);
    s->ids = malloc(opt->batch * sizeof *s->ids);
    s->features = malloc((size_t)opt->batch * MAX_FEATURES * sizeof *s->features);
    if (s->installs == NULL || s->sent == NULL || s->q == NULL || s->pings == NULL ||
        s->ptrs == NULL || s->ids == NULL || s->features == NULL)
        goto fail;
    for (size_t j = 0; j < s->n_installs; j++)
        s->installs[j] = (uint32_t)(conn + j * nconn);
    for (size_t j = s->n_installs; j > 1; j--) { /* Fisher-Yates, seeded */
        rng = mix(rng);
        size_t k = (size_t)(rng % j);
        uint32_t t = s->installs[j - 1];
        s->installs[j - 1] = s->installs[k];
        s->installs[k] = t;
    }
    for (size_t j = 0; j < opt->batch; j++)
        s->ptrs[j] = &s->pings[j];
    if (preencode && (rc = fill_queue(s)) != 0)
        goto fail;
    return 0;

fail:
    snprintf(err, errlen, "connection %u: cannot encode frames: %s", conn,
             rc == -ENOMEM ? "out of memory" : "zlib failed");
    lg_source_free(s);
    return rc;
}

void lg_source_free(struct lg_source *s)
{
    if (s->q != NULL) {
        for (size_t i = 0; i < s->n; i++)
            free(s->q[i].buf);
    }
    free(s->q);
    free(s->installs);
    free(s->sent);
    free(s->pings);
    free(s->ptrs);
    free(s->ids);
    free(s->features);
    memset(s, 0, sizeof *s);
}

size_t lg_source_peek(struct lg_source *s, struct lg_frame **out, size_t max)
{
    if (s->stopped)
        return 0;
    if (s->pos == s->n && !s->preencoded) {
        s->n = s->pos = 0;
        if (fill_queue(s) != 0) {
            /* Out of memory mid-run: end this source; the report says how
             * many pings went out. */
            fprintf(stderr, "warmline-loadgen: connection %u: cannot encode more frames\n",
                    s->conn);
            s->stopped = 1;
            return 0;
        }
    }
    size_t n = s->n - s->pos;
    *out = &s->q[s->pos];
    return n < max ? n : max;
}

void lg_source_advance(struct lg_source *s, size_t n)
{
    for (size_t i = 0; i < n && !s->preencoded; i++) {
        free(s->q[s->pos + i].buf);
        s->q[s->pos + i].buf = NULL;
    }
    s->pos += n;
}

void lg_source_stop(struct lg_source *s)
{
    s->stopped = 1;
}

size_t lg_source_max_frame(const struct lg_source *s)
{
    size_t max = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->q[i].len > max)
            max = s->q[i].len;
    }
    return max;
}

const char lg_csv_header[] = "install_id,org_key,seq,sent_at,registered_users,active_users_daily,"
                             "active_users_monthly,posts,posts_previous_day";

int lg_source_write_csv(struct lg_source *s, FILE *out)
{
    const struct lg_options *opt = s->gen->opt;

    while (s->left > 0) {
        uint64_t n = s->left < opt->batch ? s->left : opt->batch;
        fill_batch(s, n);
        for (size_t j = 0; j < n; j++) {
            const wl_ping *p = &s->pings[j];
            char org[65] = "";
            for (size_t b = 0; b < p->org_key.len && b < 32; b++)
                snprintf(org + 2 * b, 3, "%02x", p->org_key.data[b]);
            if (fprintf(out, "%s,%s,%" PRIu64 ",%" PRId64 ",%u,%u,%u,%" PRIu64 ",%u\n",
                        p->install_id, org, (uint64_t)p->seq, (int64_t)p->sent_at,
                        (unsigned)p->registered_users, (unsigned)p->active_users_daily,
                        (unsigned)p->active_users_monthly, (uint64_t)p->posts,
                        (unsigned)p->posts_previous_day) < 0)
                return -EIO;
        }
    }
    return 0;
}
