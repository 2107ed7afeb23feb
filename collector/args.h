/* The collector's command line: --config FILE plus flags that override it,
 * --check-config, --print-config, --help, --version. */
#ifndef WL_ARGS_H
#define WL_ARGS_H

#include "config.h"

enum wl_args_result { WL_ARGS_RUN = 0, WL_ARGS_EXIT_OK = 1, WL_ARGS_EXIT_USAGE = 2 };

/* Fills cfg from defaults, the config file and the flags; prints what the
 * user asked for (help, the effective config, a check) or the error. */
enum wl_args_result wl_collector_args(int argc, char **argv, struct wl_config *cfg);

#endif
