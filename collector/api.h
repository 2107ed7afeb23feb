/* The HTTP API (libmicrohttpd, its own threads): hot accounts, one
 * account, the signal log, named accounts, /metrics, /healthz, /readyz.
 * It reads through RocksDB snapshots and iterators and never writes
 * aggregates; its own writes (named accounts) go to their own column
 * family, and a forget (POST /v1/forget) is handed to the writer
 * (forget.h). JSON is written with jansson. */
#ifndef WL_API_H
#define WL_API_H

#include <stddef.h>

#include "config.h"
#include "storage/store.h"

struct wl_api;

/* Binds cfg->api_listen and starts serving (*out = NULL when api_listen is
 * empty). Reads the token files; refuses a non-loopback address without
 * them. Returns 0 or a negative code with the reason in err. */
int wl_api_start(const struct wl_config *cfg, struct wl_store *store, struct wl_api **out,
                 char *err, size_t errlen);

/* The bound address as HOST:PORT (for the ready line). */
void wl_api_address(const struct wl_api *api, char *out, size_t len);

/* Marks the collector not ready (/readyz answers 503): stopping. */
void wl_api_set_ready(struct wl_api *api, int ready);

/* The writer that POST /v1/forget hands its work to (NULL: none, forgets
 * answer 503). Setting it waits for the forgets in progress: set NULL
 * before the writer stops. api may be NULL. */
struct wl_writer;
void wl_api_set_writer(struct wl_api *api, struct wl_writer *writer);

/* The network table PUT and GET /v1/networks use (NULL: they answer 503);
 * it must outlive the API (or be set NULL first). api may be NULL. */
struct wl_networks;
void wl_api_set_networks(struct wl_api *api, struct wl_networks *networks);

/* Stops serving and frees. NULL is a no-op. */
void wl_api_stop(struct wl_api *api);

#endif
