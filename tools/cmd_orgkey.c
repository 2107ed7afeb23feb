/* warmline orgkey: the org_key a domain hashes to under this collector's salt. */
#include <sodium.h>
#include <stdlib.h>

#include "cli.h"
#include "collector/orgkey.h"

static const char *const CMD = "orgkey";

void wl_usage_orgkey(FILE *out)
{
    fprintf(out,
            "Usage: warmline orgkey DOMAIN [--org-salt-file FILE] [--config FILE]\n"
            "\n"
            "Prints the org_key of DOMAIN (HMAC-SHA256 keyed with the org salt over the\n"
            "lower-cased domain, surrounding whitespace stripped) as 64 hex digits.\n"
            "DOMAIN is a domain such as example.com, not an email address.\n"
            "\n"
            "  --org-salt-file FILE  the salt (its bytes less one trailing newline);\n"
            "                        default: org_salt_file from the configuration\n"
            "  --config FILE         the collector's INI file (default: built-in defaults)\n"
            "  -h, --help            this help\n"
            "\n"
            "Exit status: 0 printed; 2 usage error, bad configuration, or a salt file that\n"
            "is missing, unreadable or empty.\n");
}

int wl_cmd_orgkey(int argc, char **argv)
{
    enum { OPT_SALT = 256, OPT_CONFIG };
    static const struct option opts[] = {
        {"org-salt-file", required_argument, NULL, OPT_SALT},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *salt_path = NULL, *config_path = NULL;
    struct wl_config cfg;
    uint8_t *salt = NULL;
    size_t saltlen = 0;
    uint8_t key[32];
    char hex[2 * sizeof key + 1];
    char err[1200];
    int c, rc;

    while ((c = wl_cli_getopt(CMD, argc, argv, ":h", opts)) != -1) {
        switch (c) {
        case OPT_SALT: salt_path = optarg; break;
        case OPT_CONFIG: config_path = optarg; break;
        case 'h': wl_usage_orgkey(stdout); return WL_EXIT_OK;
        default: return WL_EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return wl_cli_usage_error(CMD, "missing DOMAIN");
    if (argc - optind > 1)
        return wl_cli_usage_error(CMD, "one DOMAIN at a time (got '%s' too)", argv[optind + 1]);
    const char *domain = argv[optind];
    if (wl_org_domain_check(domain, err, sizeof err) != 0)
        return wl_cli_usage_error(CMD, "%s", err);
    if ((rc = wl_cli_config(CMD, config_path, &cfg)) != 0)
        return rc;
    wl_config_free(&cfg); /* the rules are not needed here; the options stay */
    if (salt_path == NULL)
        salt_path = cfg.org_salt_file;
    if (wl_org_salt_load(salt_path, &salt, &saltlen, err, sizeof err) != 0) {
        wl_cli_error(CMD, "%s", err);
        return WL_EXIT_USAGE;
    }
    wl_org_key(salt, saltlen, domain, key);
    sodium_memzero(salt, saltlen);
    free(salt);
    sodium_bin2hex(hex, sizeof hex, key, sizeof key);
    printf("%s\n", hex);
    return WL_EXIT_OK;
}
