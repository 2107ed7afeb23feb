/* warmline networks: the network table (/v1/networks), CIDR -> organization,
 * which names the organization of an HTTP ingest request that carries no
 * domain: replace it from a CSV file, list it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_client.h"
#include "cli.h"
#include "csv_upload.h"
#include "table.h"

static const char *const CMD = "networks";

#define CSV_MAX (1024u << 20) /* api_max_networks_bytes at most; the collector's cap rules */
#define PAGE "1000"           /* rows per request of list (the API's most) */

void wl_usage_networks(FILE *out)
{
    fprintf(out,
            "Usage: warmline networks import FILE.csv | list\n"
            "                         [--url URL | --config FILE]\n"
            "                         [--token-file FILE] [--json | --csv]\n"
            "\n"
            "The network table maps address ranges to organizations: a security check\n"
            "or Rudder batch that names no email domain of its own belongs to the\n"
            "organization of the longest prefix holding its source address. The\n"
            "collector keeps each domain's org key (hashed with the org salt), never\n"
            "the domain. Importing needs the admin token when the collector has tokens.\n"
            "\n"
            "  import FILE.csv    replaces the table with FILE (\"-\": standard input):\n"
            "                     CSV rows cidr,domain (IPv4 or IPv6, e.g.\n"
            "                     10.0.0.0/8,acme.com or 2001:db8::/32,acme.com; a bare\n"
            "                     address is /32 or /128), an optional header row\n"
            "                     cidr,domain (PUT /v1/networks). A CIDR with host bits\n"
            "                     set, or listed twice with two domains, is refused with\n"
            "                     its line; nothing changes unless the whole file is good.\n"
            "                     The body cap is api_max_networks_bytes (64 MiB: about\n"
            "                     1.5 million prefixes). Prints how many prefixes were\n"
            "                     imported and how many earlier ones removed\n"
            "  list               the table in address order (IPv4 first): cidr, org (the\n"
            "                     id the domain hashes to) and, when the org is a named\n"
            "                     account, its name (GET /v1/networks, a page at a time)\n"
            "\n"
            "--json: import prints the API's reply {\"imported\": N, \"removed\": M}, list\n"
            "one object per prefix {\"cidr\",\"org\",\"named\"}. --csv: import prints\n"
            "imported,removed; list cidr, org, name.\n"
            "\n");
    wl_api_usage_common(out);
}

static const struct wl_csv_upload upload = {
    .cmd = "networks",
    .route = "/v1/networks",
    .max_bytes = CSV_MAX,
    .empty_hint = "to empty the table, import the header row cidr,domain alone",
    .noun = "prefix(es)",
};

static const struct wl_table_col list_cols[] = {
    {"cidr", WL_ALIGN_LEFT, 0, 0, 0},
    {"org", WL_ALIGN_LEFT, 0, 0, 0},
    {"name", WL_ALIGN_LEFT, 0, 40, 1},
};

/* The named account's name, else its domain; "" when none. */
static const char *named_name(const json_t *row)
{
    const json_t *named = json_object_get(row, "named");
    if (!json_is_object(named))
        return "";
    const char *name = wl_reply_str(named, "name");
    return name[0] ? name : wl_reply_str(named, "domain");
}

/* One page: rows into t (or printed as JSON); *next the cursor for the
 * next page, "" at the end. */
static int list_page(struct wl_api_client *api, const char *after, struct wl_table *t,
                     enum wl_out_format fmt, int terminal, char *next, size_t nextlen)
{
    char *path = strdup("/v1/networks");
    json_t *reply = NULL;
    int rc;

    next[0] = '\0';
    if (path == NULL || wl_api_query(&path, "limit", PAGE) != 0 ||
        (after[0] && wl_api_query(&path, "after", after) != 0)) {
        free(path);
        wl_cli_error(CMD, "out of memory");
        return WL_EXIT_FAIL;
    }
    rc = wl_api_call(api, "GET", path, NULL, NULL, 0, &reply);
    free(path);
    if (rc != 0)
        return rc;
    const json_t *list = json_object_get(reply, "networks"), *row;
    size_t i;
    if (!json_is_array(list)) {
        wl_cli_error(CMD, "the reply from %s has no \"networks\" array", wl_api_url(api));
        json_decref(reply);
        return WL_EXIT_FAIL;
    }
    json_array_foreach(list, i, row) {
        if (fmt == WL_OUT_JSON) {
            if (wl_reply_print_json(row, stdout) != 0)
                break;
            continue;
        }
        char org[200];
        if (t == NULL)
            break;
        wl_reply_org_label(wl_reply_str(row, "org"), NULL, terminal, org, sizeof org);
        wl_table_row(t);
        wl_table_cell(t, wl_reply_str(row, "cidr"));
        wl_table_cell(t, org);
        wl_table_cell(t, named_name(row));
    }
    const char *n = wl_reply_str(reply, "next_after");
    if (json_array_size(list) > 0)
        snprintf(next, nextlen, "%s", n);
    json_decref(reply);
    return 0;
}

static int do_list(struct wl_api_client *api, enum wl_out_format fmt)
{
    int terminal = fmt == WL_OUT_TABLE && isatty(STDOUT_FILENO);
    struct wl_table *t = fmt == WL_OUT_JSON ? NULL : wl_table_new(list_cols, 3);
    char after[64] = "", next[64];
    int rc;

    for (;;) {
        if ((rc = list_page(api, after, t, fmt, terminal, next, sizeof next)) != 0)
            break;
        if (next[0] == '\0' || strcmp(next, after) == 0)
            break;
        memcpy(after, next, sizeof after);
    }
    if (rc == 0)
        rc = fmt == WL_OUT_JSON ? wl_api_finish_output(CMD)
                                : wl_api_emit_table(CMD, t, fmt,
                                                    terminal ? WL_TABLE_TERMINAL : 0);
    wl_table_free(t);
    return rc;
}

int wl_cmd_networks(int argc, char **argv)
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
            wl_usage_networks(stdout);
            return WL_EXIT_OK;
        }
        return WL_EXIT_USAGE;
    }
    if (optind >= argc)
        return wl_cli_usage_error(CMD, "missing what to do: import FILE.csv or list");
    const char *sub = argv[optind];
    int operands = argc - optind - 1;
    int want = strcmp(sub, "import") == 0 ? 1 : strcmp(sub, "list") == 0 ? 0 : -1;
    if (want < 0)
        return wl_cli_usage_error(CMD, "unknown action '%s' (expected import or list)", sub);
    if (operands < want)
        return wl_cli_usage_error(CMD, "import needs a FILE.csv");
    if (operands > want)
        return wl_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1 + want]);
    if (want == 1 && argv[optind + 1][0] == '\0')
        return wl_cli_usage_error(CMD, "%s: empty argument", sub);
    if ((rc = wl_api_open(CMD, &o, &api)) != 0)
        return rc;
    if (want == 1)
        rc = wl_csv_upload(&upload, api, argv[optind + 1], o.format);
    else
        rc = do_list(api, o.format);
    wl_api_close(api);
    return rc;
}
