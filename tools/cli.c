#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void verror(const char *cmd, const char *fmt, va_list ap)
{
    fprintf(stderr, "warmline %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void wl_cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(cmd, fmt, ap);
    va_end(ap);
}

int wl_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(cmd, fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try 'warmline %s --help'.\n", cmd);
    return WL_EXIT_USAGE;
}

int wl_cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
                  const struct option *longopts)
{
    opterr = 0;
    int c = getopt_long(argc, argv, shortopts, longopts, NULL);
    /* After an error getopt has moved past the offending word. */
    const char *word = optind > 0 && optind <= argc ? argv[optind - 1] : "?";

    if (c == ':') {
        if (optopt != 0 && optopt < 256 && word[0] == '-' && word[1] != '-')
            wl_cli_usage_error(cmd, "option '-%c' needs a value", optopt);
        else
            wl_cli_usage_error(cmd, "option '%s' needs a value", word);
        return '?';
    }
    if (c == '?') {
        if (optopt != 0)
            wl_cli_usage_error(cmd, "unknown option '-%c'", optopt);
        else
            wl_cli_usage_error(cmd, "unknown or ambiguous option '%s'", word);
        return '?';
    }
    return c;
}

int wl_cli_config(const char *cmd, const char *path, struct wl_config *cfg)
{
    char err[1024];

    wl_config_defaults(cfg);
    if (path == NULL)
        return 0;
    if (wl_config_load(cfg, path, err, sizeof err) != 0) {
        wl_cli_error(cmd, "%s", err);
        wl_config_free(cfg);
        return WL_EXIT_USAGE;
    }
    return 0;
}

int wl_cli_parse_u64(const char *s, uint64_t *out)
{
    char *end;

    if (s[0] < '0' || s[0] > '9')
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -EINVAL;
    *out = v;
    return 0;
}
