/* The collector process: opens storage, starts the writer, binds the
 * listeners, logs event=ready, runs the loop until SIGINT/SIGTERM, then
 * drains (in-flight batches are committed and acked) and closes cleanly. */
#ifndef WL_SERVER_H
#define WL_SERVER_H

#include "config.h"

/* Returns the process exit code: 0 after a clean stop, 1 when start failed. */
int wl_server_run(const struct wl_config *cfg);

#endif
