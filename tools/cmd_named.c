/* warmline named-accounts: the organizations sales already knows by name
 * (/v1/named-accounts): replace the list from a CSV file, list it, delete
 * one. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_client.h"
#include "cli.h"
#include "csv_upload.h"
#include "table.h"

static const char *const CMD = "named-accounts";

#define CSV_MAX (64u << 20) /* the collector's own cap (api_max_body_bytes) is lower */

void wl_usage_named(FILE *out)
{
    fprintf(out,
            "Usage: warmline named-accounts import FILE.csv | list | delete DOMAIN\n"
            "                               [--url URL | --config FILE]\n"
            "                               [--token-file FILE] [--json | --csv]\n"
            "\n"
            "Named accounts map email domains to the names and owners sales uses; hot\n"
            "and account then show the name instead of the organization id. Importing\n"
            "and deleting need the admin token when the collector has tokens.\n"
            "\n"
            "  import FILE.csv    replaces the list with FILE (\"-\": standard input):\n"
            "                     CSV with the header row domain,name,owner and one\n"
            "                     account per row (PUT /v1/named-accounts); prints how\n"
            "                     many were imported and how many earlier ones removed\n"
            "  list               the list: domain, name, owner, org (the id the domain\n"
            "                     hashes to), updated (GET /v1/named-accounts)\n"
            "  delete DOMAIN      removes one (DELETE /v1/named-accounts/DOMAIN); a domain\n"
            "                     that is not on the list is an error\n"
            "\n"
            "--json: import prints the API's reply {\"imported\": N, \"removed\": M}, list\n"
            "one object per account, delete {\"deleted\": DOMAIN}. --csv: import prints\n"
            "imported,removed; list domain, name, owner, org, updated_at (ISO 8601 UTC);\n"
            "delete the column deleted.\n"
            "\n");
    wl_api_usage_common(out);
}

static const struct wl_csv_upload upload = {
    .cmd = "named-accounts",
    .route = "/v1/named-accounts",
    .max_bytes = CSV_MAX,
    .empty_hint = "want the header row domain,name,owner",
    .noun = "named account(s)",
};

static const struct wl_table_col list_cols[] = {
    {"domain", WL_ALIGN_LEFT, 0, 40, 0},
    {"name", WL_ALIGN_LEFT, 0, 40, 1},
    {"owner", WL_ALIGN_LEFT, 0, 32, 0},
    {"org", WL_ALIGN_LEFT, 0, 0, 0},
    {"updated", WL_ALIGN_LEFT, 0, 0, 0},
};

static const struct wl_table_col list_csv_cols[] = {
    {"domain"}, {"name"}, {"owner"}, {"org"}, {"updated_at"},
};

static int do_list(struct wl_api_client *api, enum wl_out_format fmt)
{
    json_t *reply = NULL;
    int rc = wl_api_call(api, "GET", "/v1/named-accounts", NULL, NULL, 0, &reply);
    if (rc != 0)
        return rc;
    const json_t *list = json_object_get(reply, "named_accounts"), *n;
    size_t i;
    if (!json_is_array(list)) {
        wl_cli_error(CMD, "the reply from %s has no \"named_accounts\" array", wl_api_url(api));
        json_decref(reply);
        return WL_EXIT_FAIL;
    }
    if (fmt == WL_OUT_JSON) {
        json_array_foreach(list, i, n) {
            if (wl_reply_print_json(n, stdout) != 0)
                break;
        }
        json_decref(reply);
        return wl_api_finish_output(CMD);
    }
    int terminal = fmt == WL_OUT_TABLE && isatty(STDOUT_FILENO);
    struct wl_table *t = fmt == WL_OUT_CSV ? wl_table_new(list_csv_cols, 5)
                                           : wl_table_new(list_cols, 5);
    json_array_foreach(list, i, n) {
        char org[200], updated[40];
        if (t == NULL)
            break;
        wl_reply_org_label(wl_reply_str(n, "org"), NULL, terminal, org, sizeof org);
        wl_reply_time(wl_reply_int(n, "updated_at", 0),
                      fmt == WL_OUT_CSV ? WL_TIME_ISO : WL_TIME_MINUTE, updated, sizeof updated);
        wl_table_row(t);
        wl_table_cell(t, wl_reply_str(n, "domain"));
        wl_table_cell(t, wl_reply_str(n, "name"));
        wl_table_cell(t, wl_reply_str(n, "owner"));
        wl_table_cell(t, org);
        wl_table_cell(t, updated);
    }
    rc = wl_api_emit_table(CMD, t, fmt, terminal ? WL_TABLE_TERMINAL : 0);
    wl_table_free(t);
    json_decref(reply);
    return rc;
}

static int do_delete(struct wl_api_client *api, const char *domain, enum wl_out_format fmt)
{
    static const struct wl_table_col cols[] = {{"deleted"}};
    char *esc = wl_api_escape(domain), *path = NULL;
    json_t *reply = NULL;
    int rc;

    if (esc == NULL || asprintf(&path, "/v1/named-accounts/%s", esc) < 0) {
        free(esc);
        wl_cli_error(CMD, "out of memory");
        return WL_EXIT_FAIL;
    }
    free(esc);
    rc = wl_api_call(api, "DELETE", path, NULL, NULL, 0, &reply);
    free(path);
    json_decref(reply);
    if (rc != 0)
        return rc;
    if (fmt == WL_OUT_JSON) {
        json_t *o = json_pack("{s:s}", "deleted", domain);
        if (o != NULL)
            wl_reply_print_json(o, stdout);
        json_decref(o);
        return wl_api_finish_output(CMD);
    }
    if (fmt == WL_OUT_CSV) {
        struct wl_table *t = wl_table_new(cols, 1);
        if (t != NULL)
            wl_table_cell(t, domain);
        rc = wl_api_emit_table(CMD, t, fmt, 0);
        wl_table_free(t);
        return rc;
    }
    printf("deleted %s\n", domain);
    return wl_api_finish_output(CMD);
}

int wl_cmd_named(int argc, char **argv)
{
    static const struct option opts[] = {
        WL_API_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    struct wl_api_opts o = {0};
    struct wl_api_client *api = NULL;
    int c, rc;

    while ((c = wl_cli_getopt(CMD, argc, argv, ":h", opts)) != -1) {
        int shared = wl_api_opt(CMD, &o, c, optarg);
        if (shared < 0)
            return WL_EXIT_USAGE;
        if (shared > 0)
            continue;
        if (c == 'h') {
            wl_usage_named(stdout);
            return WL_EXIT_OK;
        }
        return WL_EXIT_USAGE;
    }
    if (optind >= argc)
        return wl_cli_usage_error(CMD, "missing what to do: import FILE.csv, list or delete DOMAIN");
    const char *sub = argv[optind];
    int operands = argc - optind - 1;
    int want = strcmp(sub, "import") == 0 || strcmp(sub, "delete") == 0 ? 1
               : strcmp(sub, "list") == 0                                ? 0
                                                                         : -1;
    if (want < 0)
        return wl_cli_usage_error(CMD, "unknown action '%s' (expected import, list or delete)",
                                  sub);
    if (operands < want)
        return wl_cli_usage_error(CMD, "%s needs %s", sub,
                                  sub[0] == 'i' ? "a FILE.csv" : "a DOMAIN");
    if (operands > want)
        return wl_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1 + want]);
    if (want == 1 && argv[optind + 1][0] == '\0')
        return wl_cli_usage_error(CMD, "%s: empty argument", sub);
    if ((rc = wl_api_open(CMD, &o, &api)) != 0)
        return rc;
    if (sub[0] == 'i')
        rc = wl_csv_upload(&upload, api, argv[optind + 1], o.format);
    else if (sub[0] == 'l')
        rc = do_list(api, o.format);
    else
        rc = do_delete(api, argv[optind + 1], o.format);
    wl_api_close(api);
    return rc;
}
