/* Fuzz target: the writer's state tables (collector/aggregate.c and
 * state_*.c, on collector/ptable.c): installs found by keyed hash, installs moving
 * between organizations, capped feature tallies, reference-counted
 * interned strings, forgets, and reloads that replay unflushed pings.
 *
 * Input: 4-byte operations on 16 installs, 6 organizations (one of them
 * "no org key"), a pool of 12 features (one a rule tests), 4 versions and 3
 * editions:
 *   byte 0: bits 0-1 the operation (0, 1: a ping; 2: a flush; 3: forget the
 *           install), bits 2-5 the install, bit 6: reload the state after
 *   byte 1: the organization (mod 6)
 *   byte 2: which of the first 8 features the ping has; byte 3, bits 0-3,
 *           adds feature 8 + (bits % 4); bits 4-5 the version, 6-7 the edition
 * Each operation is a group (one write). At the end every install is
 * forgotten, and then the state must hold no install, no organization, and
 * no interned string but the rule's own; and all along, an organization's
 * members must agree with where each install last pinged. */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aggregate.h"
#include "fuzz.h"
#include "rules.h"

#define N_INSTALLS 16
#define N_ORGS 6

static char root[64];
static struct wl_store *store;
static struct wl_ruleset rules;
static const struct wl_state_opts opts = {
    .install_ttl_ms = 1000ULL * 86400 * 3650,
    .score_half_life_ms = 14ULL * 86400 * 1000,
    .max_org_features = 4,
    .rules = &rules,
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    wl_store_close(store);
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void init_once(void)
{
    char db[128], err[256];
    if (store != NULL)
        return;
    snprintf(root, sizeof root, "/tmp/wl-fuzz-state-XXXXXX");
    FUZZ_CHECK(mkdtemp(root) != NULL);
    snprintf(db, sizeof db, "%s/db", root);
    FUZZ_CHECK(wl_store_open(db, WL_STORE_PRIMARY, &store, err, sizeof err) == 0);
    FUZZ_CHECK(wl_ruleset_add(&rules, "f0", "has_feature(f0)", NULL, NULL, NULL, NULL, err,
                              sizeof err) == 0);
    atexit(cleanup);
}

static struct wl_state *load(void)
{
    struct wl_state *st;
    char err[256];
    FUZZ_CHECK(wl_state_load(store, &opts, &st, err, sizeof err) == 0);
    return st;
}

static void write_batch(struct wl_state *st, struct wl_batch *b)
{
    char err[256];
    FUZZ_CHECK(wl_store_write(store, b, 0, err, sizeof err) == 0);
    wl_state_commit(st);
    wl_batch_clear(b);
}

static void forget(struct wl_state *st, struct wl_batch *b, const char *id)
{
    struct wl_forgotten fg;
    if (wl_state_dirty(st)) { /* a forget starts from written state */
        wl_state_flush(st, b);
        write_batch(st, b);
    }
    FUZZ_CHECK(wl_state_forget_install(st, id, b, &fg) == 0);
    if (wl_state_dirty(st))
        wl_state_flush(st, b);
    write_batch(st, b);
    wl_forgotten_free(&fg);
}

static int cf_empty(enum wl_cf cf)
{
    struct wl_iter *it = wl_iter_new(store, cf);
    wl_iter_seek_first(it);
    int empty = !wl_iter_valid(it);
    wl_iter_free(it);
    return empty;
}

static size_t org_of(int o, uint8_t *id, const char *install)
{
    uint8_t key[32];
    memset(key, 0x40 + o, sizeof key);
    return o == N_ORGS - 1 ? wl_org_id(id, NULL, 0, install, strlen(install))
                           : wl_org_id(id, key, sizeof key, install, strlen(install));
}

/* Every install the state puts in organization o pinged there last. */
static void check_members(struct wl_state *st, const int *where, int o)
{
    uint8_t id[WL_ORG_ID_MAX];
    size_t len = org_of(o, id, "");
    if (o == N_ORGS - 1)
        return; /* each no-key install is an organization of its own */
    char **ids = NULL;
    size_t n = wl_state_org_install_ids(st, id, len, &ids), want = 0;
    for (int i = 0; i < N_INSTALLS; i++)
        want += where[i] == o;
    FUZZ_CHECK(n == want);
    for (size_t k = 0; k < n; k++) {
        int i = atoi(ids[k] + 2);
        FUZZ_CHECK(i >= 0 && i < N_INSTALLS && where[i] == o);
        free(ids[k]);
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const features[12] = {"f0", "f1", "f2",  "f3",  "f4",  "f5",
                                             "f6", "f7", "f8", "f9", "f10", "f11"};
    static const char *const versions[4] = {"", "1.0", "2.0", "3.0"};
    static const char *const editions[3] = {"", "team", "enterprise"};
    uint64_t seqs[N_INSTALLS];
    int where[N_INSTALLS]; /* the organization an install last pinged, -1: none */
    int bynet[N_INSTALLS]; /* it is there by the network table */
    char ids[N_INSTALLS][8];

    init_once();
    struct wl_state *st = load();
    struct wl_batch *b = wl_batch_new(store);
    int64_t t = wl_state_clock(st) + 1;
    for (int i = 0; i < N_INSTALLS; i++) {
        snprintf(ids[i], sizeof ids[i], "i-%02d", i);
        seqs[i] = 0;
        where[i] = -1;
        bynet[i] = 0;
    }
    for (size_t at = 0; at + 4 <= size && at < 4 * 256; at += 4) {
        const uint8_t *op = data + at;
        int in = (op[0] >> 2) & 15, o = op[1] % N_ORGS;
        switch (op[0] & 3) {
        case 0:
        case 1: {
            wl_ping p = WARMLINE__V1__PING__INIT;
            char *fl[9];
            uint8_t key[32];
            size_t nf = 0;
            for (int k = 0; k < 8; k++) {
                if (op[2] & (1u << k))
                    fl[nf++] = (char *)features[k];
            }
            if (op[3] & 8)
                fl[nf++] = (char *)features[8 + (op[3] & 3)];
            memset(key, 0x40 + o, sizeof key);
            p.install_id = ids[in];
            if (o != N_ORGS - 1) {
                p.org_key.data = key;
                p.org_key.len = sizeof key;
            }
            p.seq = ++seqs[in] + 1000000; /* above whatever an earlier input left */
            p.version = (char *)versions[(op[3] >> 4) & 3];
            p.edition = (char *)editions[(op[3] >> 6) % 3];
            p.active_users_daily = op[2];
            p.features = fl;
            p.n_features = nf;
            if (op[0] & 0x80) {
                /* an edge ping (ping.h): some fields, the org by a domain
                 * (op[3] & 1), by the network table (& 2), or none */
                struct wl_edge e = {.source = WL_SOURCE_RUDDER};
                int has_key = o != N_ORGS - 1 && (op[3] & 3) != 0;
                int by_net = has_key && !(op[3] & 1);
                e.presence = WL_PRESENT(WL_FIELD_COUNT(WL_COUNT_active_users_daily));
                if (op[3] & 4)
                    e.presence |= WL_PRESENT(WL_FIELD_FEATURES) |
                                  WL_PRESENT(WL_FIELD_STRING(WL_STRING_version));
                if (has_key)
                    e.presence |= WL_PRESENT(WL_FIELD_ORG_KEY);
                if (by_net)
                    e.presence |= WL_PRESENT(WL_ORG_BY_NETWORK);
                if (!has_key) {
                    p.org_key.data = NULL;
                    p.org_key.len = 0;
                }
                p.seq = 1;
                FUZZ_CHECK(wl_state_apply_edge(st, &p, &e, t, t, b) == WL_APPLY_ACCEPTED);
                /* ping.h's precedence: a domain moves it; a network only out of
                 * its own organization or another network's; none never */
                if (has_key && (!by_net || where[in] < 0 || where[in] == N_ORGS - 1 ||
                                bynet[in])) {
                    where[in] = o;
                    bynet[in] = by_net;
                } else if (where[in] < 0) {
                    where[in] = N_ORGS - 1;
                    bynet[in] = 0;
                }
            } else {
                FUZZ_CHECK(wl_state_apply(st, &p, t, t, b) == WL_APPLY_ACCEPTED);
                where[in] = o;
                bynet[in] = 0;
            }
            t += 1000;
            wl_state_stage(st, b);
            write_batch(st, b);
            break;
        }
        case 2: /* a whole checkpoint, or a slice of one (state_checkpoint.c) */
            if (op[1] & 2) { /* time passes, as a tick: what it expired, whole */
                t += (int64_t)op[2] * 30 * 86400000LL;
                if (wl_state_advance(st, t, b) > 0)
                    wl_state_flush(st, b);
                else
                    wl_state_stage(st, b);
            } else if (op[1] & 1) {
                wl_state_flush(st, b);
            } else {
                uint64_t records;
                if (!wl_state_checkpoint_busy(st) && wl_state_dirty(st))
                    wl_state_checkpoint_begin(st, t, b);
                if (wl_state_checkpoint_busy(st))
                    wl_state_checkpoint_step(st, (size_t)(op[2] % 4) + 1, b, &records);
                wl_state_stage(st, b);
            }
            write_batch(st, b);
            break;
        case 3:
            forget(st, b, ids[in]);
            where[in] = -1;
            bynet[in] = 0;
            break;
        }
        if (op[0] & 0x40) { /* a restart: unflushed pings are replayed */
            wl_state_free(st);
            st = load();
        }
        check_members(st, where, o);
    }
    for (int i = 0; i < N_INSTALLS; i++)
        forget(st, b, ids[i]);
    FUZZ_CHECK(wl_state_n_installs(st) == 0);
    FUZZ_CHECK(wl_state_n_orgs(st) == 0);
    FUZZ_CHECK(wl_state_interned(st) == 1); /* "f0", the rule's */
    FUZZ_CHECK(cf_empty(WL_CF_INSTALLS)); /* nothing a later load would bring back */
    FUZZ_CHECK(cf_empty(WL_CF_ORGS));
    wl_batch_free(b);
    wl_state_free(st);
    return 0;
}
