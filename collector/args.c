#include "args.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "http_ingest.h"
#include "log.h"

#ifndef WL_VERSION
#define WL_VERSION "0.1.0"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "usage: warmline-collector --config FILE [options]\n"
            "\n"
            "Receives install pings over UDP and TCP, stores them in RocksDB and acks\n"
            "TCP frames once they are durable. Logs key=value lines on stderr; logs\n"
            "event=ready with the bound udp=, tcp=, api= and http= addresses.\n"
            "\n"
            "options:\n"
            "  --config FILE       INI configuration (see the options below)\n"
            "  --data-dir DIR      override [collector] data_dir\n"
            "  --udp HOST:PORT     override udp_listen (port 0: ephemeral; \"\": off)\n"
            "  --tcp HOST:PORT     override tcp_listen (port 0: ephemeral; \"\": off)\n"
            "  --api HOST:PORT     override api_listen (port 0: ephemeral; \"\": off)\n"
            "  --http HOST:PORT    override http_listen, the public HTTP ingest listener\n"
            "                      (GET /security, POST /v1/batch; port 0: ephemeral;\n"
            "                      \"\": off, the default)\n"
            "  --read-token-file F   override read_token_file\n"
            "  --admin-token-file F  override admin_token_file\n"
            "  --set NAME=VALUE    override any option, e.g. --set limits.max_count=5000\n"
            "  --check-config      validate the configuration and exit (0 when valid)\n"
            "  --print-config      print the effective configuration and exit\n"
            "  --version           print the version and exit\n"
            "  --help              this text\n"
            "\n"
            "configuration options (defaults):\n");
    wl_config_print_help(out);
}

enum wl_args_result wl_collector_args(int argc, char **argv, struct wl_config *cfg)
{
    enum { OPT_DATA_DIR = 256, OPT_UDP, OPT_TCP, OPT_API, OPT_HTTP, OPT_READ_TOKEN,
           OPT_ADMIN_TOKEN, OPT_SET,
           OPT_CHECK, OPT_PRINT, OPT_VERSION };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"data-dir", required_argument, NULL, OPT_DATA_DIR},
        {"udp", required_argument, NULL, OPT_UDP},
        {"tcp", required_argument, NULL, OPT_TCP},
        {"api", required_argument, NULL, OPT_API},
        {"http", required_argument, NULL, OPT_HTTP},
        {"read-token-file", required_argument, NULL, OPT_READ_TOKEN},
        {"admin-token-file", required_argument, NULL, OPT_ADMIN_TOKEN},
        {"set", required_argument, NULL, OPT_SET},
        {"check-config", no_argument, NULL, OPT_CHECK},
        {"print-config", no_argument, NULL, OPT_PRINT},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    const char *overrides[64][2];
    int n_overrides = 0, check = 0, print = 0, c;
    char err[1400];

    wl_config_defaults(cfg);
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        const char *name = NULL;
        switch (c) {
        case 'c': config_path = optarg; continue;
        case OPT_DATA_DIR: name = "data_dir"; break;
        case OPT_UDP: name = "udp_listen"; break;
        case OPT_TCP: name = "tcp_listen"; break;
        case OPT_API: name = "api_listen"; break;
        case OPT_HTTP: name = "http_listen"; break;
        case OPT_READ_TOKEN: name = "read_token_file"; break;
        case OPT_ADMIN_TOKEN: name = "admin_token_file"; break;
        case OPT_SET: {
            static char names[64][128];
            const char *eq = strchr(optarg, '=');
            if (eq == NULL || eq == optarg || (size_t)(eq - optarg) >= sizeof names[0] ||
                n_overrides >= 64) {
                fprintf(stderr, "warmline-collector: --set takes NAME=VALUE, got '%s'\n", optarg);
                return WL_ARGS_EXIT_USAGE;
            }
            memcpy(names[n_overrides], optarg, (size_t)(eq - optarg));
            names[n_overrides][eq - optarg] = '\0';
            overrides[n_overrides][0] = names[n_overrides];
            overrides[n_overrides][1] = eq + 1;
            n_overrides++;
            continue;
        }
        case OPT_CHECK: check = 1; continue;
        case OPT_PRINT: print = 1; continue;
        case OPT_VERSION: printf("warmline-collector %s\n", WL_VERSION); return WL_ARGS_EXIT_OK;
        case 'h': usage(stdout); return WL_ARGS_EXIT_OK;
        default:
            fprintf(stderr, "warmline-collector: unknown or incomplete option '%s' (see --help)\n",
                    argv[optind - 1]);
            return WL_ARGS_EXIT_USAGE;
        }
        if (n_overrides >= 64) {
            fprintf(stderr, "warmline-collector: too many overrides\n");
            return WL_ARGS_EXIT_USAGE;
        }
        overrides[n_overrides][0] = name;
        overrides[n_overrides][1] = optarg;
        n_overrides++;
    }
    if (optind < argc) {
        fprintf(stderr, "warmline-collector: unexpected argument '%s' (see --help)\n",
                argv[optind]);
        return WL_ARGS_EXIT_USAGE;
    }
    if (config_path == NULL) {
        fprintf(stderr, "warmline-collector: --config FILE is required (the bundled default is "
                        "collector/warmline.ini; see --help)\n");
        return WL_ARGS_EXIT_USAGE;
    }
    if (wl_config_load(cfg, config_path, err, sizeof err) != 0) {
        fprintf(stderr, "warmline-collector: invalid config: %s\n", err);
        return WL_ARGS_EXIT_USAGE;
    }
    for (int i = 0; i < n_overrides; i++) {
        if (wl_config_set(cfg, overrides[i][0], overrides[i][1], err, sizeof err) != 0) {
            fprintf(stderr, "warmline-collector: invalid override: %s\n", err);
            return WL_ARGS_EXIT_USAGE;
        }
    }
    if (wl_config_validate(cfg, err, sizeof err) != 0) {
        fprintf(stderr, "warmline-collector: invalid config: %s: %s\n", config_path, err);
        return WL_ARGS_EXIT_USAGE;
    }
    wl_log_min_level = (enum wl_log_level)cfg->log_level;
    if (print) {
        wl_config_print(cfg, stdout);
        return WL_ARGS_EXIT_OK;
    }
    if (check) {
        if (wl_http_ingest_check(cfg, err, sizeof err) != 0) {
            fprintf(stderr, "warmline-collector: invalid config: %s\n", err);
            return WL_ARGS_EXIT_USAGE;
        }
        printf("%s: ok\n", config_path);
        return WL_ARGS_EXIT_OK;
    }
    return WL_ARGS_RUN;
}
