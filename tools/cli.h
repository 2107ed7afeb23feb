/* The warmline CLI: subcommand entry points and the helpers they share
 * (quiet getopt_long with our own messages, config loading, numbers).
 * Every subcommand takes argv starting at its own name and returns the
 * process exit code. */
#ifndef WL_CLI_H
#define WL_CLI_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "collector/config.h"

enum wl_exit {
    WL_EXIT_OK = 0,
    WL_EXIT_FAIL = 1,   /* the work failed: network, storage, undecodable records */
    WL_EXIT_USAGE = 2,  /* bad command line, configuration or input */
    WL_EXIT_NOT_OK = 3, /* send, import: some batch was not wholly OK */
};

struct wl_cmd {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
    void (*usage)(FILE *out);
};

int wl_cmd_orgkey(int argc, char **argv);
void wl_usage_orgkey(FILE *out);
int wl_cmd_send(int argc, char **argv);
void wl_usage_send(FILE *out);
int wl_cmd_dump(int argc, char **argv);
void wl_usage_dump(FILE *out);
int wl_cmd_import(int argc, char **argv);
void wl_usage_import(FILE *out);
int wl_cmd_hot(int argc, char **argv);
void wl_usage_hot(FILE *out);
int wl_cmd_account(int argc, char **argv);
void wl_usage_account(FILE *out);
int wl_cmd_signals(int argc, char **argv);
void wl_usage_signals(FILE *out);
int wl_cmd_named(int argc, char **argv);
void wl_usage_named(FILE *out);
int wl_cmd_networks(int argc, char **argv);
void wl_usage_networks(FILE *out);
int wl_cmd_forget(int argc, char **argv);
void wl_usage_forget(FILE *out);
int wl_cmd_export(int argc, char **argv);
void wl_usage_export(FILE *out);

/* Prints "warmline CMD: message" on stderr. */
void wl_cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints the message and a hint to run CMD --help; returns WL_EXIT_USAGE. */
int wl_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* getopt_long without getopt's own messages: returns the next option, -1
 * at the end, or '?' after printing what was wrong (unknown option, missing
 * argument). shortopts must start with ':'. Options and operands may mix. */
int wl_cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
                  const struct option *longopts);

/* Fills cfg with the defaults, then loads path over them unless path is
 * NULL. Returns 0, or prints the loader's error and returns WL_EXIT_USAGE.
 * The caller frees the rules with wl_config_free (at once, if unused). */
int wl_cli_config(const char *cmd, const char *path, struct wl_config *cfg);

/* Strict decimal: digits only, no sign, no overflow. Returns 0 or -EINVAL. */
int wl_cli_parse_u64(const char *s, uint64_t *out);

#endif
