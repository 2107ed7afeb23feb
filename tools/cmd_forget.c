/* warmline forget: deletes every record of an organization or an install,
 * for data-subject requests, and leaves a record that a deletion happened
 * (not of what). Through the collector's API (POST /v1/forget, admin
 * token) while a collector runs; straight into the data directory, with
 * the collector's writer run in-process, when none does. */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api_client.h"
#include "cli.h"
#include "collector/forget.h"
#include "collector/orgkey.h"
#include "collector/writer.h"
#include "storage/store.h"
#include "table.h"

static const char *const CMD = "forget";

void wl_usage_forget(FILE *out)
{
    fprintf(out,
            "Usage: warmline forget --org KEY | --domain DOMAIN | --install ID\n"
            "                       [--url URL] [--token-file FILE] [--config FILE]\n"
            "                       [--data-dir DIR] [--org-salt-file FILE] [--json | --csv]\n"
            "\n"
            "Deletes every record of one organization or one install, for data-subject\n"
            "requests: raw pings, install and organization state, daily history,\n"
            "signals, the rank entry, the named account (organizations only) and\n"
            "quarantined samples that name it; signals of other organizations keep\n"
            "their place without the forgotten install in their list. It leaves a\n"
            "deletion record (a sequence, the time, the kind and how many records of\n"
            "each table) that never says whom; GET /v1/deletions lists them. Later\n"
            "dumps and exports carry no trace of it.\n"
            "\n"
            "  --org KEY            an organization: its org key (64 hex digits), or\n"
            "                       install:<id> for an install without an org key;\n"
            "                       all its installs go with it\n"
            "  --domain DOMAIN      an organization by email domain (hashed with the org\n"
            "                       salt: the collector's, or --org-salt-file / the\n"
            "                       config's org_salt_file without a collector)\n"
            "  --install ID         one install; its organization stays, with totals\n"
            "                       recomputed, unless it was its last install\n"
            "\n"
            "While a collector runs, the request goes to its API (--url, or api_listen\n"
            "of --config) with the admin token (POST /v1/forget). When none answers\n"
            "(connection refused), the data directory is opened directly (--data-dir,\n"
            "default data_dir of --config), which works only while no collector holds\n"
            "it. --data-dir without --url or --config goes straight to that directory;\n"
            "--url without --data-dir makes an unreachable collector an error.\n"
            "\n"
            "A large forget is written in slices, each between the collector's other\n"
            "writes; the answer comes once every slice is in. A forget that a stop or\n"
            "crash interrupted is finished at the next start (of the collector, or of\n"
            "forget on its data directory).\n"
            "\n"
            "An install that pings again after it was forgotten starts afresh: its\n"
            "seq history is gone, so its next ping is accepted whatever its seq.\n"
            "\n"
            "  --data-dir DIR       the data directory, when no collector runs\n"
            "  --org-salt-file F    the org salt for --domain without a collector\n"
            "\n");
    wl_api_usage_common(out);
    fprintf(out,
            "forget also returns 1 when no collector answers and the data directory is\n"
            "in use or holds no database, and 3 when nothing matched (HTTP 404).\n");
}

struct target_arg {
    const char *flag;             /* "org", "domain", "install" */
    const char *value;
};

/* The counts, as the API answers them: {"deleted": {...}, "deletion": {...}}. */
static int print_result(const json_t *reply, const struct target_arg *ta, const char *where,
                        enum wl_out_format fmt)
{
    const json_t *d = json_object_get(reply, "deleted");
    const json_t *rec = json_object_get(reply, "deletion");
    static const char *const names[] = {
#define NAME(n) #n,
        WL_FORGET_COUNTS(NAME)
#undef NAME
    };
    size_t n = sizeof names / sizeof names[0];

    if (!json_is_object(d)) {
        wl_cli_error(CMD, "the reply has no \"deleted\" object");
        return WL_EXIT_FAIL;
    }
    if (fmt == WL_OUT_JSON) {
        wl_reply_print_json(reply, stdout);
        return wl_api_finish_output(CMD);
    }
    if (fmt == WL_OUT_CSV) {
        struct wl_table_col cols[sizeof names / sizeof names[0] + 1];
        memset(cols, 0, sizeof cols);
        for (size_t i = 0; i < n; i++)
            cols[i].header = names[i];
        cols[n].header = "deletion";
        struct wl_table *t = wl_table_new(cols, n + 1);
        if (t != NULL)
            wl_table_row(t);
        for (size_t i = 0; t != NULL && i < n; i++) {
            char v[32];
            wl_reply_number_text(json_object_get(d, names[i]), v, sizeof v);
            wl_table_cell(t, v);
        }
        if (t != NULL) {
            char v[32];
            wl_reply_number_text(json_object_get(rec, "seq"), v, sizeof v);
            wl_table_cell(t, v);
        }
        int rc = wl_api_emit_table(CMD, t, fmt, 0);
        wl_table_free(t);
        return rc;
    }
    printf("forgot %s %s (%s): deleted", strcmp(ta->flag, "install") ? "organization" : "install",
           ta->value, where);
    for (size_t i = 0; i < n; i++) {
        char v[32];
        if (strcmp(names[i], "signals_edited") == 0)
            continue;
        wl_reply_number_text(json_object_get(d, names[i]), v, sizeof v);
        printf("%s %s %s", i ? "," : "", v, names[i]);
    }
    printf("\n");
    long long edited = wl_reply_int(d, "signals_edited", 0);
    if (edited > 0)
        printf("kept %lld signal(s) of other organizations without the forgotten install(s)\n",
               edited);
    printf("deletion record %lld\n", wl_reply_int(rec, "seq", 0));
    return wl_api_finish_output(CMD);
}

/* ---- through the API ---- */

enum { VIA_DONE = 0, VIA_UNREACHABLE = -1 };

/* Returns an exit code, or VIA_UNREACHABLE when no collector answered. */
static int via_api(const struct wl_api_opts *o, const struct target_arg *ta)
{
    struct wl_api_client *api = NULL;
    struct wl_api_error e;
    json_t *reply = NULL;
    int rc = wl_api_open(CMD, o, &api);
    if (rc != 0)
        return rc;
    json_t *body = json_pack("{s:s}", ta->flag, ta->value);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        wl_api_close(api);
        wl_cli_error(CMD, "out of memory");
        return WL_EXIT_FAIL;
    }
    if (wl_api_request(api, "POST", "/v1/forget", "application/json", text, strlen(text),
                       &reply, &e) == 0) {
        char where[1200];
        snprintf(where, sizeof where, "through the collector at %s", wl_api_url(api));
        rc = print_result(reply, ta, where, o->format);
    } else if (e.status == 0 && e.transient && !e.canceled) {
        rc = VIA_UNREACHABLE;
    } else if (e.status == 404 && strstr(e.message, "no such endpoint") == NULL) {
        wl_cli_error(CMD, "nothing matched: no record of %s %s", ta->flag, ta->value);
        rc = WL_EXIT_NOT_OK;
    } else {
        wl_cli_error(CMD, "%s", e.message);
        rc = e.exit_code;
    }
    json_decref(reply);
    free(text);
    wl_api_close(api);
    return rc;
}

/* ---- straight into the data directory ---- */

static int target_of(const struct target_arg *ta, const char *salt_path,
                     struct wl_forget_target *t)
{
    char why[300];
    if (strcmp(ta->flag, "org") == 0) {
        if (wl_forget_target_org(t, ta->value, why, sizeof why) != 0)
            return wl_cli_usage_error(CMD, "--org: %s", why);
        return 0;
    }
    if (strcmp(ta->flag, "install") == 0) {
        if (wl_forget_target_install(t, ta->value, why, sizeof why) != 0)
            return wl_cli_usage_error(CMD, "--install: %s", why);
        return 0;
    }
    uint8_t *salt = NULL, key[WL_ORG_KEY_BYTES];
    size_t len = 0;
    if (wl_org_salt_load(salt_path, &salt, &len, why, sizeof why) != 0) {
        wl_cli_error(CMD, "--domain needs the org salt: %s (see --org-salt-file)", why);
        return WL_EXIT_USAGE;
    }
    wl_org_key(salt, len, ta->value, key);
    sodium_memzero(salt, len);
    free(salt);
    wl_forget_target_key(t, key);
    return 0;
}

static int via_data_dir(struct wl_config *cfg, const char *data_dir, const char *salt_path,
                        const struct target_arg *ta, const char *unreachable,
                        enum wl_out_format fmt)
{
    struct wl_forget_target t;
    struct wl_forget_result res;
    struct wl_store *store = NULL;
    struct wl_writer *w = NULL;
    char err[1400], path[1100];
    struct stat st;
    int rc;

    if ((rc = target_of(ta, salt_path, &t)) != 0)
        return rc;
    snprintf(path, sizeof path, "%s/CURRENT", data_dir);
    if (stat(path, &st) != 0) {
        wl_cli_error(CMD, "%s%s holds no database (see --data-dir)", unreachable, data_dir);
        return WL_EXIT_FAIL;
    }
    if (wl_store_open(data_dir, WL_STORE_PRIMARY, &store, err, sizeof err) != 0) {
        if (strstr(err, "lock") != NULL || strstr(err, "LOCK") != NULL)
            wl_cli_error(CMD, "%s%s is in use by a running collector: give its API with --url "
                         "(or --config) and the admin token", unreachable, data_dir);
        else
            wl_cli_error(CMD, "%s", err);
        return WL_EXIT_FAIL;
    }
    if (wl_writer_start(cfg, store, 0, NULL, NULL, NULL, NULL, &w, err, sizeof err) != 0) {
        wl_cli_error(CMD, "%s", err);
        wl_store_close(store);
        return WL_EXIT_FAIL;
    }
    /* A forget a stop or crash interrupted is finished first. */
    size_t resumed = 0;
    if (wl_forget_resume(w, store, NULL, &resumed, err, sizeof err) != 0) {
        wl_cli_error(CMD, "finishing an interrupted forget: %s", err);
        wl_writer_stop(w);
        wl_store_close(store);
        return WL_EXIT_FAIL;
    }
    if (resumed > 0)
        fprintf(stderr, "warmline forget: finished %zu forget(s) a stop or crash had "
                        "interrupted\n", resumed);
    rc = wl_forget(w, store, &t, "cli", &res, err, sizeof err);
    wl_writer_stop(w);
    wl_store_close(store);
    if (rc == -ENOENT) {
        wl_cli_error(CMD, "nothing matched: no record of %s %s", ta->flag, ta->value);
        return WL_EXIT_NOT_OK;
    }
    if (rc != 0) {
        wl_cli_error(CMD, "%s", err);
        return WL_EXIT_FAIL;
    }
    json_t *reply = json_pack("{s:o,s:{s:I,s:I}}", "deleted", wl_forget_counts_json(&res.deleted),
                              "deletion", "seq", (json_int_t)res.deletion, "at",
                              (json_int_t)res.at);
    if (reply == NULL) {
        wl_cli_error(CMD, "out of memory");
        return WL_EXIT_FAIL;
    }
    char where[1200];
    snprintf(where, sizeof where, "in %s", data_dir);
    rc = print_result(reply, ta, where, fmt);
    json_decref(reply);
    return rc;
}

/* 1 when the configuration names an API address a client can use. */
static int config_has_api(const struct wl_config *cfg)
{
    char host[256];
    int port;
    return cfg->api_listen[0] != '\0' &&
           wl_parse_hostport(cfg->api_listen, host, sizeof host, &port) == 0 && port != 0;
}

int wl_cmd_forget(int argc, char **argv)
{
    enum { OPT_ORG = 256, OPT_DOMAIN, OPT_INSTALL, OPT_DATA_DIR, OPT_SALT };
    static const struct option opts[] = {
        WL_API_LONGOPTS,
        {"org", required_argument, NULL, OPT_ORG},
        {"domain", required_argument, NULL, OPT_DOMAIN},
        {"install", required_argument, NULL, OPT_INSTALL},
        {"data-dir", required_argument, NULL, OPT_DATA_DIR},
        {"org-salt-file", required_argument, NULL, OPT_SALT},
        {NULL, 0, NULL, 0},
    };
    struct wl_api_opts o = {0};
    struct target_arg ta = {0};
    const char *data_dir = NULL, *salt_path = NULL;
    struct wl_config cfg;
    char why[300];
    int c, rc;

    while ((c = wl_cli_getopt(CMD, argc, argv, ":h", opts)) != -1) {
        int shared = wl_api_opt(CMD, &o, c, optarg);
        if (shared < 0)
            return WL_EXIT_USAGE;
        if (shared > 0)
            continue;
        const char *flag = c == OPT_ORG ? "org" : c == OPT_DOMAIN ? "domain"
                                             : c == OPT_INSTALL  ? "install" : NULL;
        if (flag != NULL) {
            if (ta.flag != NULL)
                return wl_cli_usage_error(CMD, "one of --org, --domain or --install, once");
            ta.flag = flag;
            ta.value = optarg;
            continue;
        }
        switch (c) {
        case OPT_DATA_DIR: data_dir = optarg; break;
        case OPT_SALT: salt_path = optarg; break;
        case 'h': wl_usage_forget(stdout); return WL_EXIT_OK;
        default: return WL_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return wl_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (ta.flag == NULL)
        return wl_cli_usage_error(CMD, "say what to forget: --org KEY, --domain DOMAIN or "
                                       "--install ID");
    /* Check the target here, whichever way it goes. */
    struct wl_forget_target probe;
    if (strcmp(ta.flag, "org") == 0 && wl_forget_target_org(&probe, ta.value, why, sizeof why))
        return wl_cli_usage_error(CMD, "--org: %s", why);
    if (strcmp(ta.flag, "install") == 0 &&
        wl_forget_target_install(&probe, ta.value, why, sizeof why))
        return wl_cli_usage_error(CMD, "--install: %s", why);
    if (strcmp(ta.flag, "domain") == 0 && wl_org_domain_check(ta.value, why, sizeof why))
        return wl_cli_usage_error(CMD, "--domain: %s", why);
    if ((rc = wl_cli_config(CMD, o.config_path, &cfg)) != 0)
        return rc;

    /* --data-dir alone names a directory, not a collector: go straight to
     * it (a collector on the default port may run on another one). */
    int try_api = o.url != NULL || ((o.config_path != NULL || data_dir == NULL) &&
                                    config_has_api(&cfg));
    char unreachable[1200] = "";
    if (try_api) {
        rc = via_api(&o, &ta);
        if (rc != VIA_UNREACHABLE)
            goto done;
        if (o.url != NULL && data_dir == NULL) {
            wl_cli_error(CMD, "no collector answers at %s (give --data-dir to forget straight "
                              "in a data directory no collector runs on)", o.url);
            rc = WL_EXIT_FAIL;
            goto done;
        }
        snprintf(unreachable, sizeof unreachable, "no collector answers at %s, and ",
                 o.url ? o.url : cfg.api_listen);
    }
    rc = via_data_dir(&cfg, data_dir ? data_dir : cfg.data_dir,
                      salt_path ? salt_path : cfg.org_salt_file, &ta, unreachable, o.format);
done:
    wl_config_free(&cfg);
    return rc;
}
