/* warmline: the operator's CLI. main() only picks the subcommand. */
#include <sodium.h>
#include <string.h>

#include "cli.h"

static const struct wl_cmd cmds[] = {
    {"send", "send NDJSON pings to a collector over TCP or UDP", wl_cmd_send, wl_usage_send},
    {"dump", "print a column family of a collector's store as JSON lines", wl_cmd_dump,
     wl_usage_dump},
    {"import", "feed historical pings into a data directory (event time = sent_at)",
     wl_cmd_import, wl_usage_import},
    {"export", "write a table as gzipped NDJSON or CSV files with a manifest (incremental)",
     wl_cmd_export, wl_usage_export},
    {"orgkey", "print the org_key of a domain", wl_cmd_orgkey, wl_usage_orgkey},
    {"hot", "list the accounts scoring highest (collector API)", wl_cmd_hot, wl_usage_hot},
    {"account", "show one organization: installs, signals, history (collector API)",
     wl_cmd_account, wl_usage_account},
    {"signals", "print the signal log, or follow it (collector API)", wl_cmd_signals,
     wl_usage_signals},
    {"named-accounts", "import, list or delete named accounts (collector API)", wl_cmd_named,
     wl_usage_named},
    {"networks", "import or list the network table: CIDR -> organization (collector API)",
     wl_cmd_networks, wl_usage_networks},
    {"forget", "delete every record of an organization or install (data-subject requests)",
     wl_cmd_forget, wl_usage_forget},
};
#define N_CMDS (sizeof cmds / sizeof cmds[0])

static void usage(FILE *out)
{
    fprintf(out, "Usage: warmline COMMAND [OPTIONS]\n\nCommands:\n");
    for (size_t i = 0; i < N_CMDS; i++)
        fprintf(out, "  %-14s %s\n", cmds[i].name, cmds[i].summary);
    fprintf(out,
            "  help           print this help, or a command's (warmline help COMMAND)\n"
            "\n"
            "Every command takes --config FILE (the collector's INI file) and --help.\n"
            "Exit status: 0 success, 1 failure, 2 usage or configuration error;\n"
            "send and import also return 3 when a batch was not wholly OK, forget when\n"
            "nothing matched. The collector API commands take --url URL and --token-file\n"
            "FILE (or WARMLINE_TOKEN), and return 1 when the collector cannot be reached\n"
            "or refuses the token.\n");
}

static const struct wl_cmd *find_cmd(const char *name)
{
    for (size_t i = 0; i < N_CMDS; i++) {
        if (strcmp(cmds[i].name, name) == 0)
            return &cmds[i];
    }
    return NULL;
}

static int unknown(const char *name)
{
    fprintf(stderr, "warmline: unknown command '%s'\nTry 'warmline --help'.\n", name);
    return WL_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return WL_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        if (argc > 2 && name[0] != '-') {
            const struct wl_cmd *cmd = find_cmd(argv[2]);
            if (cmd == NULL)
                return unknown(argv[2]);
            cmd->usage(stdout);
        } else {
            usage(stdout);
        }
        return WL_EXIT_OK;
    }
    const struct wl_cmd *cmd = find_cmd(name);
    if (cmd == NULL) {
        if (name[0] == '-') {
            fprintf(stderr, "warmline: unknown option '%s' (options follow the command)\n"
                            "Try 'warmline --help'.\n", name);
            return WL_EXIT_USAGE;
        }
        return unknown(name);
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "warmline: libsodium failed to initialize\n");
        return WL_EXIT_FAIL;
    }
    return cmd->run(argc - 1, argv + 1);
}
