/* warmline dump: one column family of the store as JSON lines. Opens the
 * store as a secondary, so it works beside a running collector. The state
 * tables (installs, orgs, daily) are written only at checkpoints: their
 * dump says on stderr which checkpoint they are from (tools/checkpoint.h),
 * and `dump state` prints where the checkpoint stands. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "cli.h"
#include "collector/aggregate.h"
#include "collector/api_records.h"
#include "collector/ping_json.h"
#include "collector/signal_json.h"
#include "records.pb-c.h"
#include "storage/keys.h"
#include "storage/store.h"

static const char *const CMD = "dump";

typedef Warmline__Store__V1__StoredPing stored_ping;
typedef Warmline__Store__V1__InstallState install_state;
typedef Warmline__Store__V1__OrgState org_state;
typedef Warmline__Store__V1__Quarantined quarantined;

/* Decodes one record into a JSON object: 0, -EINVAL (does not decode) or
 * -ENOMEM. The store: for what a record names elsewhere (an install's
 * latest ping). */
typedef int (*record_fn)(struct wl_store *store, const uint8_t *val, size_t vlen, json_t *out);

/* json_object_set_new that remembers a failure in *rc (the value is taken
 * either way). */
static void put(json_t *o, const char *key, json_t *v, int *rc)
{
    if (json_object_set_new(o, key, v) != 0)
        *rc = -ENOMEM;
}

static json_t *org_json(ProtobufCBinaryData org)
{
    char buf[2 * WL_ORG_KEY_BYTES + WL_ORG_ID_MAX + 16];
    if (org.len == 0)
        return json_string("");
    wl_org_id_format(org.data, org.len, buf, sizeof buf);
    return wl_json_string_lossy(buf, strlen(buf));
}

static json_t *str_json(const char *s)
{
    return wl_json_string_lossy(s, s ? strlen(s) : 0);
}

static json_t *str_json(const char *s);

static json_t *str_array(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++) {
        if (json_array_append_new(a, str_json(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static int ping_record(struct wl_store *store, const uint8_t *val, size_t vlen, json_t *o)
{
    (void)store;
    stored_ping *r = warmline__store__v1__stored_ping__unpack(NULL, vlen, val);
    wl_ping empty = WARMLINE__V1__PING__INIT;
    int rc = 0;

    if (r == NULL)
        return -EINVAL;
    put(o, "ingest_seq", wl_json_u64(r->ingest_seq), &rc);
    put(o, "received_at", json_integer(r->received_at), &rc);
    put(o, "org", org_json(r->org), &rc);
    put(o, "source", json_string(wl_source_name(r->source)), &rc);
    if (r->source != WL_SOURCE_WIRE) /* an edge ping: the fields it carries */
        put(o, "presence", wl_presence_json(r->presence), &rc);
    if (rc == 0)
        rc = wl_ping_json_add(o, r->ping != NULL ? r->ping : &empty);
    warmline__store__v1__stored_ping__free_unpacked(r, NULL);
    return rc;
}

static int install_record(struct wl_store *store, const uint8_t *val, size_t vlen, json_t *o)
{
    install_state *r = warmline__store__v1__install_state__unpack(NULL, vlen, val);
    json_t *last = NULL;
    int rc = 0;

    if (r == NULL)
        return -EINVAL;
    put(o, "install_id", str_json(r->install_id), &rc);
    put(o, "org", org_json(r->org), &rc);
    put(o, "last_seq", wl_json_u64(r->last_seq), &rc);
    put(o, "first_seen", json_integer(r->first_seen), &rc);
    put(o, "last_seen", json_integer(r->last_seen), &rc);
    put(o, "last_ingest_seq", wl_json_u64(r->last_ingest_seq), &rc);
    put(o, "edge_seq", wl_json_u64(r->edge_seq), &rc);
    put(o, "check_hour", json_integer(r->check_hour), &rc);
    put(o, "org_by_network", json_boolean(r->org_by_network), &rc);
    if (r->n_counts > 0) { /* what the state holds of its latest ping */
        put(o, "totals", wl_json_totals(r->counts, r->n_counts), &rc);
        put(o, "edition", str_json(r->edition), &rc);
        put(o, "version", str_json(r->version), &rc);
        put(o, "features", str_array(r->features, r->n_features), &rc);
    }
    /* the ping itself: the log's at last_ingest_seq (a record from an older
     * version may hold it) */
    wl_ping *lp = wl_latest_ping_read(store, NULL, r->last_ingest_seq, r->install_id);
    const wl_ping *shown = lp != NULL ? lp : r->last_ping;
    if (shown != NULL) {
        last = json_object();
        if (last != NULL && wl_ping_json_add(last, shown) != 0)
            rc = -ENOMEM;
    } else {
        last = json_null();
    }
    put(o, "last_ping", last, &rc);
    if (lp != NULL)
        warmline__v1__ping__free_unpacked(lp, NULL);
    warmline__store__v1__install_state__free_unpacked(r, NULL);
    return rc;
}

static int org_record(struct wl_store *store, const uint8_t *val, size_t vlen, json_t *o)
{
    (void)store;
    org_state *r = warmline__store__v1__org_state__unpack(NULL, vlen, val);
    json_t *ids = json_array(), *totals = json_object();
    int rc = 0;

    if (r == NULL) {
        json_decref(ids);
        json_decref(totals);
        return -EINVAL;
    }
    put(o, "org", org_json(r->org), &rc);
    for (size_t i = 0; ids != NULL && i < r->n_install_ids; i++) {
        if (json_array_append_new(ids, str_json(r->install_ids[i])) != 0)
            rc = -ENOMEM;
    }
    put(o, "install_ids", ids, &rc);
    put(o, "installs_total", json_integer((json_int_t)WL_ORG_INSTALLS_TOTAL(r)), &rc);
    put(o, "first_seen", json_integer(r->first_seen), &rc);
    put(o, "last_seen", json_integer(r->last_seen), &rc);
    /* totals[] follows WL_COUNT_FIELDS; a newer collector may have more. */
    for (size_t i = 0; totals != NULL && i < r->n_totals; i++) {
        char extra[32];
        const char *name = wl_count_names[i < WL_N_COUNTS ? i : 0];
        if (i >= WL_N_COUNTS) {
            snprintf(extra, sizeof extra, "total_%zu", i);
            name = extra;
        }
        put(totals, name, wl_json_u64(r->totals[i]), &rc);
    }
    put(o, "totals", totals, &rc);
    put(o, "installs_counting", json_integer(r->installs_counting), &rc);
    put(o, "versions", str_array(r->versions, r->n_versions), &rc);
    put(o, "editions", str_array(r->editions, r->n_editions), &rc);
    put(o, "features", str_array(r->features, r->n_features), &rc);
    put(o, "signals", wl_json_u64(r->signals), &rc);
    put(o, "score_log2", r->has_score ? json_real(r->score_log2) : json_null(), &rc);
    put(o, "day", json_integer(r->day), &rc);
    put(o, "updated_at", json_integer(r->updated_at), &rc);
    warmline__store__v1__org_state__free_unpacked(r, NULL);
    return rc;
}

static int signal_record(struct wl_store *store, const uint8_t *val, size_t vlen, json_t *o)
{
    (void)store;
    wl_signal *r = warmline__store__v1__signal__unpack(NULL, vlen, val);
    int rc = 0;
    if (r == NULL)
        return -EINVAL;
    json_t *sig = wl_signal_json(r);
    if (sig == NULL || json_object_update(o, sig) != 0)
        rc = -ENOMEM;
    json_decref(sig);
    warmline__store__v1__signal__free_unpacked(r, NULL);
    return rc;
}

/* The daily key holds the organization and the day; the value the totals. */
static int daily_record(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                        json_t *o)
{
    Warmline__Store__V1__DailyState *r =
        warmline__store__v1__daily_state__unpack(NULL, vlen, val);
    json_t *totals = json_object();
    char date[16];
    int rc = 0;

    if (r == NULL || klen < 6 || (size_t)key[0] + 5 != klen) {
        if (r != NULL)
            warmline__store__v1__daily_state__free_unpacked(r, NULL);
        json_decref(totals);
        return -EINVAL;
    }
    ProtobufCBinaryData org = {.len = key[0], .data = (uint8_t *)key + 1};
    time_t t = (time_t)r->day * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%Y-%m-%d", &tm);
    put(o, "org", org_json(org), &rc);
    put(o, "day", json_integer(r->day), &rc);
    put(o, "date", json_string(date), &rc);
    for (size_t i = 0; totals != NULL && i < r->n_totals && i < WL_N_COUNTS; i++)
        put(totals, wl_count_names[i], wl_json_u64(r->totals[i]), &rc);
    put(o, "totals", totals, &rc);
    put(o, "installs", json_integer(r->installs), &rc);
    put(o, "installs_total", json_integer(r->installs_total), &rc);
    warmline__store__v1__daily_state__free_unpacked(r, NULL);
    return rc;
}

static int quarantine_record(struct wl_store *store, const uint8_t *val, size_t vlen, json_t *o)
{
    (void)store;
    quarantined *r = warmline__store__v1__quarantined__unpack(NULL, vlen, val);
    int rc = 0;

    if (r == NULL)
        return -EINVAL;
    put(o, "seq", wl_json_u64(r->seq), &rc);
    put(o, "received_at", json_integer(r->received_at), &rc);
    put(o, "reason", str_json(r->reason), &rc);
    put(o, "peer", str_json(r->peer), &rc);
    put(o, "transport", str_json(r->transport), &rc);
    put(o, "sample", wl_json_hex(r->sample.data, r->sample.len), &rc);
    put(o, "sample_truncated_from", json_integer(r->sample_truncated_from), &rc);
    warmline__store__v1__quarantined__free_unpacked(r, NULL);
    return rc;
}

static const struct {
    const char *name;
    enum wl_cf cf;
    record_fn fn;
    int state;      /* written at checkpoints: say which one */
} kinds[] = {
    {"installs", WL_CF_INSTALLS, install_record, 1},
    {"orgs", WL_CF_ORGS, org_record, 1},
    {"pings", WL_CF_PINGS, ping_record, 0},
    {"quarantine", WL_CF_QUARANTINE, quarantine_record, 0},
    {"signals", WL_CF_SIGNALS, signal_record, 0},
    {"daily", WL_CF_DAILY, NULL, 1},
    {"state", WL_CF_META, NULL, 0}, /* not a column family: the checkpoint */
};
#define N_KINDS (sizeof kinds / sizeof kinds[0])

void wl_usage_dump(FILE *out)
{
    fprintf(out,
            "Usage: warmline dump installs|orgs|pings|quarantine|signals|daily|state\n"
            "                     [--data-dir DIR] [--config FILE] [--limit N]\n"
            "\n"
            "Prints every record of one column family, in key order, as one JSON object\n"
            "per line. Reads a consistent snapshot and works while the collector runs.\n"
            "\n"
            "installs, orgs and daily are the state as of the last checkpoint (the\n"
            "collector writes them every checkpoint_interval_ms or checkpoint_pings, and\n"
            "at a clean stop): a line on stderr names it, e.g.\n"
            "  warmline dump: orgs as of checkpoint state_seq=N at <ISO time>; M pings\n"
            "  stored since are in the collector's memory only\n"
            "pings, signals and quarantine are written with each ping: always current.\n"
            "\n"
            "  pings       ingest_seq, received_at, org, source (wire|security|rudder),\n"
            "              presence (an edge ping's fields), then every ping field\n"
            "  installs    install_id, org, last_seq, first_seen, last_seen,\n"
            "              last_ingest_seq, edge_seq, check_hour, org_by_network,\n"
            "              totals, edition, version, features (of its latest ping),\n"
            "              last_ping {every ping field: the log's, at last_ingest_seq;\n"
            "              null once retention removed it}\n"
            "  orgs        org, install_ids (the first 1000), installs_total, first_seen,\n"
            "              last_seen, totals {count: sum\n"
            "              over counting installs}, installs_counting, versions,\n"
            "              editions, features, signals, score_log2, day, updated_at\n"
            "  signals     id, org, rule, description, weight, fired_at, fired_at_iso,\n"
            "              terms [{metric, value, op, threshold, text}], install_ids,\n"
            "              ingest_seq\n"
            "  daily       org, day, date, totals, installs (counting), installs_total:\n"
            "              each organization's state at the end of each UTC day\n"
            "  quarantine  seq, received_at, reason, peer, transport, sample (hex),\n"
            "              sample_truncated_from\n"
            "  state       one object: ingest_seq (the last ping stored), checkpoint_seq\n"
            "              (the ingest_seq the state records are exact for),\n"
            "              checkpoint_at, checkpoint_at_iso (when it was written; null\n"
            "              when not recorded), pings_after_checkpoint (stored pings the\n"
            "              records do not hold yet: a restart replays them)\n"
            "\n"
            "Times are unix milliseconds; org is 64 hex digits or \"install:<id>\";\n"
            "org_key is hex (\"\" when the ping had none). A uint64 above 2^63-1 prints\n"
            "as a decimal string.\n"
            "\n"
            "  --data-dir DIR  the collector's data directory (default: data_dir from\n"
            "                  the configuration)\n"
            "  --config FILE   the collector's INI file (default: built-in defaults)\n"
            "  --limit N       stop after N records (0, the default: no limit)\n"
            "  -h, --help      this help\n"
            "\n"
            "Exit status: 0 all printed; 1 a record did not decode (reported on stderr,\n"
            "the rest still printed), reading or writing failed (quietly when the reader\n"
            "closed the pipe), or a signal stopped it; 2 usage error, bad configuration,\n"
            "or the store could not be opened.\n");
}

/* Set by SIGINT/SIGTERM/SIGHUP so the loop stops and the store's
 * temporary secondary directory is removed on the way out. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    interrupted = sig;
}

static void catch_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    /* A closed pipe (| head) becomes EPIPE on write instead of death. */
    signal(SIGPIPE, SIG_IGN);
}

static void key_hex(const char *key, size_t klen, char *out, size_t outlen)
{
    size_t n = klen;
    if (2 * n + 1 > outlen)
        n = (outlen - 1) / 2;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[(uint8_t)key[i] >> 4];
        out[2 * i + 1] = hex[(uint8_t)key[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The checkpoint of the store's view, or an exit code after saying why. */
static int read_checkpoint(struct wl_store *store, struct wl_checkpoint *cp)
{
    char err[1400];
    if (wl_checkpoint_read(store, NULL, 1, cp, err, sizeof err) != 0) {
        wl_cli_error(CMD, "the checkpoint: %s", err);
        return WL_EXIT_FAIL;
    }
    return WL_EXIT_OK;
}

/* Before a state table: which checkpoint its records are from (stderr, so
 * that stdout stays JSON lines). */
static int say_checkpoint(struct wl_store *store, const char *table)
{
    struct wl_checkpoint cp;
    char iso[40];
    int rc = read_checkpoint(store, &cp);
    if (rc != WL_EXIT_OK)
        return rc;
    wl_checkpoint_iso(cp.at, iso, sizeof iso);
    fprintf(stderr, "warmline %s: %s as of checkpoint state_seq=%llu at %s; %llu pings stored "
                    "since are in the collector's memory only\n",
            CMD, table, (unsigned long long)cp.seq, cp.at > 0 ? iso : "(time not recorded)",
            (unsigned long long)cp.pings_after);
    return WL_EXIT_OK;
}

/* `dump state`: one JSON object. */
static int dump_state(struct wl_store *store)
{
    struct wl_checkpoint cp;
    char iso[40];
    int rc = read_checkpoint(store, &cp), bad = 0;
    if (rc != WL_EXIT_OK)
        return rc;
    json_t *o = json_object();
    if (o == NULL) {
        wl_cli_error(CMD, "out of memory");
        return WL_EXIT_FAIL;
    }
    bad |= json_object_set_new(o, "ingest_seq", wl_json_u64(cp.ingest_seq));
    bad |= json_object_set_new(o, "checkpoint_seq", wl_json_u64(cp.seq));
    bad |= json_object_set_new(o, "checkpoint_at",
                               cp.at > 0 ? json_integer(cp.at) : json_null());
    bad |= json_object_set_new(
        o, "checkpoint_at_iso",
        cp.at > 0 ? json_string(wl_checkpoint_iso(cp.at, iso, sizeof iso)) : json_null());
    bad |= json_object_set_new(o, "pings_after_checkpoint", wl_json_u64(cp.pings_after));
    errno = 0;
    if (bad) {
        wl_cli_error(CMD, "out of memory");
        rc = WL_EXIT_FAIL;
    } else if (json_dumpf(o, stdout, JSON_PRESERVE_ORDER | JSON_COMPACT) != 0 ||
               fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
        if (errno != EPIPE)
            wl_cli_error(CMD, "cannot write the output");
        rc = WL_EXIT_FAIL;
    }
    json_decref(o);
    return rc;
}

int wl_cmd_dump(int argc, char **argv)
{
    enum { OPT_DATA_DIR = 256, OPT_CONFIG, OPT_LIMIT };
    static const struct option opts[] = {
        {"data-dir", required_argument, NULL, OPT_DATA_DIR},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *data_dir = NULL, *config_path = NULL;
    uint64_t limit = 0, printed = 0, bad = 0;
    struct wl_config cfg;
    struct wl_store *store = NULL;
    struct wl_iter *it = NULL;
    char err[1400];
    int c, rc;

    while ((c = wl_cli_getopt(CMD, argc, argv, ":h", opts)) != -1) {
        switch (c) {
        case OPT_DATA_DIR: data_dir = optarg; break;
        case OPT_CONFIG: config_path = optarg; break;
        case OPT_LIMIT:
            if (wl_cli_parse_u64(optarg, &limit) != 0)
                return wl_cli_usage_error(CMD, "--limit: '%s' is not a whole number", optarg);
            break;
        case 'h': wl_usage_dump(stdout); return WL_EXIT_OK;
        default: return WL_EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return wl_cli_usage_error(CMD, "missing what to dump: installs, orgs, pings, "
                                       "quarantine, signals, daily or state");
    if (argc - optind > 1)
        return wl_cli_usage_error(CMD, "one column family at a time (got '%s' too)",
                                  argv[optind + 1]);
    size_t k = 0;
    while (k < N_KINDS && strcmp(kinds[k].name, argv[optind]) != 0)
        k++;
    if (k == N_KINDS)
        return wl_cli_usage_error(
            CMD, "unknown column family '%s' (expected installs, orgs, pings, quarantine, "
                 "signals, daily or state)",
            argv[optind]);
    if ((rc = wl_cli_config(CMD, config_path, &cfg)) != 0)
        return rc;
    wl_config_free(&cfg); /* the rules are not needed here; the options stay */
    if (data_dir == NULL)
        data_dir = cfg.data_dir;

    catch_signals();
    if (wl_store_open(data_dir, WL_STORE_SECONDARY, &store, err, sizeof err) != 0) {
        wl_cli_error(CMD, "%s", err);
        return WL_EXIT_USAGE;
    }
    if (strcmp(kinds[k].name, "state") == 0) {
        rc = dump_state(store);
        goto done;
    }
    if (kinds[k].state && (rc = say_checkpoint(store, kinds[k].name)) != WL_EXIT_OK)
        goto done;
    it = wl_iter_new(store, kinds[k].cf);
    if (it == NULL) {
        wl_cli_error(CMD, "out of memory");
        rc = WL_EXIT_FAIL;
        goto done;
    }
    rc = WL_EXIT_OK;
    for (wl_iter_seek_first(it); wl_iter_valid(it) && !interrupted; wl_iter_next(it)) {
        size_t klen, vlen;
        const char *key = wl_iter_key(it, &klen);
        const char *val = wl_iter_value(it, &vlen);
        json_t *obj = json_object();
        int r = obj == NULL ? -ENOMEM
                : kinds[k].fn ? kinds[k].fn(store, (const uint8_t *)val, vlen, obj)
                              : daily_record((const uint8_t *)key, klen, (const uint8_t *)val,
                                             vlen, obj);

        if (r == 0) {
            errno = 0;
            /* 15 significant digits: 0.1 prints as 0.1, as in signal files. */
            if (json_dumpf(obj, stdout, WL_SIGNAL_JSON_FLAGS | JSON_PRESERVE_ORDER) != 0 ||
                fputc('\n', stdout) == EOF)
                r = errno == EPIPE ? -EPIPE : -EIO;
        }
        json_decref(obj);
        if (r == -EINVAL) {
            char hex[2 * 64 + 1];
            key_hex(key, klen, hex, sizeof hex);
            wl_cli_error(CMD, "%s: the record at key %s%s (%zu bytes) does not decode; skipped",
                         kinds[k].name, hex, klen > 64 ? "..." : "", vlen);
            bad++;
            rc = WL_EXIT_FAIL;
        } else if (r == -EPIPE) {
            rc = WL_EXIT_FAIL; /* the reader went away (| head): stop quietly */
            goto done;
        } else if (r != 0) {
            wl_cli_error(CMD, "%s", r == -EIO ? "cannot write the output" : "out of memory");
            rc = WL_EXIT_FAIL;
            goto done;
        } else if (++printed == limit) {
            break;
        }
    }
    if (interrupted) {
        wl_cli_error(CMD, "interrupted by signal %d after %llu records", (int)interrupted,
                     (unsigned long long)printed);
        rc = WL_EXIT_FAIL;
    }
    if (wl_iter_status(it, err, sizeof err) != 0) {
        wl_cli_error(CMD, "%s: %s", kinds[k].name, err);
        rc = WL_EXIT_FAIL;
    }
    errno = 0;
    if (fflush(stdout) != 0) {
        if (errno != EPIPE)
            wl_cli_error(CMD, "cannot write the output: %s", strerror(errno));
        rc = WL_EXIT_FAIL;
    }
    if (bad > 0)
        wl_cli_error(CMD, "%s: %llu record(s) did not decode", kinds[k].name,
                     (unsigned long long)bad);

done:
    wl_iter_free(it);
    wl_store_close(store);
    return rc;
}
