/* warmline-collector: parse arguments, load the config, run. */
#include <stdio.h>

#include "args.h"
#include "server.h"

int main(int argc, char **argv)
{
    struct wl_config cfg;
    int action = wl_collector_args(argc, argv, &cfg);
    if (action != WL_ARGS_RUN)
        return action == WL_ARGS_EXIT_OK ? 0 : 2;
    return wl_server_run(&cfg);
}
