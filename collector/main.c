/* warmline-collector: parse arguments, load the config, run. */
#include <stdio.h>

#include "args.h"
#include "server.h"

int main(int argc, char **argv)
{
    struct wl_config cfg;
    int action = wl_collector_args(argc, argv, &cfg);
    int rc = action == WL_ARGS_EXIT_OK ? 0 : 2;
    if (action == WL_ARGS_RUN)
        rc = wl_server_run(&cfg);
    wl_config_free(&cfg);
    return rc;
}
