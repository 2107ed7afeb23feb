/* Collector configuration: one table of options loads the INI file,
 * validates bounds, applies command-line overrides and prints --help and
 * --print-config. Loading never exits; it reports file, line and reason. */
#ifndef WL_CONFIG_H
#define WL_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rules.h"

#define WL_DEFAULT_PORT 7810

enum wl_durability { WL_DURABILITY_SYNC = 0, WL_DURABILITY_ASYNC = 1 };
enum wl_webhook_format { WL_WEBHOOK_JSON = 0, WL_WEBHOOK_SLACK = 1 };

struct wl_config {
    /* [collector] */
    char data_dir[1024];
    char udp_listen[256];   /* HOST:PORT, empty = off */
    char tcp_listen[256];
    char org_salt_file[1024];
    int durability;         /* enum wl_durability */
    int log_level;          /* enum wl_log_level */
    uint64_t stats_interval_ms;

    /* [limits] */
    uint64_t max_frame_bytes;
    uint64_t max_inflated_bytes;
    uint64_t max_pings_per_batch;
    uint64_t max_connections;
    uint64_t idle_timeout_ms;
    uint64_t max_count;
    uint64_t max_inflight_frames;   /* per TCP connection, before reads pause */
    uint64_t udp_recv_buffer;
    uint64_t writer_queue_pings;    /* decoded pings not yet answered: above it UDP
                                       is dropped and TCP frames get RETRY_LATER */
    uint64_t max_held_bytes;        /* bytes held between the sockets and the writer (decoded
                                       batches, jobs, samples, unsent acks): above it the same */
    uint64_t max_group_pings;       /* pings per group commit */
    uint64_t checkpoint_interval_ms; /* state records written at least this often */
    uint64_t checkpoint_pings;      /* or after this many pings */
    uint64_t frame_timeout_ms;      /* a TCP frame begun and unfinished this long closes it */
    uint64_t rate_per_address;      /* envelopes (datagrams + frames) per second; 0 = off */
    uint64_t burst_per_address;     /* the token bucket's size */
    uint64_t max_connections_per_address; /* open TCP connections; 0 = off */
    uint64_t address_table_size;    /* addresses tracked (at least 4 x max_connections) */
    int limit_loopback;             /* 1: the per-address limits apply to loopback too */

    /* [accounts] */
    uint64_t install_ttl_ms;        /* silent longer: stops counting */
    uint64_t score_half_life_ms;
    uint64_t max_org_features;      /* distinct features tallied per organization */

    /* [retention] */
    uint64_t retention_days;        /* raw pings older than this are deleted; 0 = keep */
    uint64_t retention_check_ms;    /* how often the collector looks for old pings */

    /* [sinks] */
    char signal_file[1024];         /* NDJSON file, empty = off */
    char webhook_url[1024];         /* empty = off */
    int webhook_format;             /* enum wl_webhook_format */
    uint64_t webhook_timeout_ms;
    uint64_t webhook_max_backoff_ms;

    /* [api] */
    char api_listen[256];           /* HOST:PORT, empty = off */
    char read_token_file[1024];     /* bearer token for the query endpoints */
    char admin_token_file[1024];    /* bearer token for named accounts (and all else) */
    uint64_t api_max_connections;
    uint64_t api_max_connections_per_address; /* 0 = off */
    uint64_t api_max_body_bytes;
    uint64_t api_timeout_ms;
    uint64_t api_max_networks_bytes; /* body of PUT /v1/networks (a CSV of CIDRs) */

    /* [http]: the public HTTP ingest listener (http_ingest.h) */
    char http_listen[256];          /* HOST:PORT, empty = off */
    char bulletins_file[1024];      /* JSON list of security bulletins, empty = none */
    uint64_t http_max_connections;
    uint64_t http_max_connections_per_address; /* 0 = off */
    uint64_t http_rate_per_address; /* requests per second per address; 0 = off */
    uint64_t http_burst_per_address;
    uint64_t http_rate_total;       /* requests per second from all addresses; 0 = off */
    uint64_t http_burst_total;
    uint64_t http_address_table_size;
    uint64_t http_max_header_bytes; /* request line and headers (MHD's memory limit) */
    uint64_t http_max_query_bytes;
    uint64_t http_timeout_ms;       /* inactivity */
    uint64_t http_request_deadline_ms; /* a whole request, first byte to answer */
    uint64_t http_max_inflight;     /* security checks and batches with the writer */
    uint64_t http_max_body_bytes;   /* a request body as sent (compressed or not) */
    uint64_t http_max_inflated_bytes; /* a gzip body once inflated */
    uint64_t http_max_json_depth;   /* nesting of a JSON body */
    uint64_t http_max_json_values;  /* values (scalars, arrays, objects) in a JSON body */
    uint64_t rudder_max_messages;   /* messages in one POST /v1/batch */
    char rudder_write_keys[1024];   /* comma-separated; empty = any key */
    uint64_t msgid_ttl_ms;          /* Rudder messageIds remembered at least this long */
    uint64_t msgid_max_bytes;       /* the messageId store's byte budget */
    char http_tls_cert_file[1024];  /* PEM; both set = HTTPS on http_listen */
    char http_tls_key_file[1024];
    char http_trusted_proxies[1024]; /* comma-separated CIDRs whose X-Forwarded-For is believed */

    /* [quarantine] */
    uint64_t quarantine_max_records;
    uint64_t quarantine_sample_bytes;
    uint64_t quarantine_per_second;

    /* [rule "name"] sections, in file order */
    struct wl_ruleset rules;
};

/* Fills every option with its documented default (and no rules). */
void wl_config_defaults(struct wl_config *cfg);

/* Frees what the configuration owns (the rules). */
void wl_config_free(struct wl_config *cfg);

/* Loads an INI file over the current values. [rule "name"] sections add
 * rules (keys when, weight, cooldown, hysteresis, description; a long when
 * may continue on indented lines). Returns 0, or -1 with "FILE:LINE:
 * reason" in err. */
int wl_config_load(struct wl_config *cfg, const char *path, char *err, size_t errlen);

/* Sets one option by "section.name" or bare "name" (command-line overrides).
 * Returns 0, or -1 with the reason in err. */
int wl_config_set(struct wl_config *cfg, const char *name, const char *value, char *err,
                  size_t errlen);

/* Checks cross-option constraints after loading. Returns 0 or -1 and err. */
int wl_config_validate(const struct wl_config *cfg, char *err, size_t errlen);

/* Writes the effective configuration as an INI file. */
void wl_config_print(const struct wl_config *cfg, FILE *out);

/* Writes every option with its default and meaning (for --help). */
void wl_config_print_help(FILE *out);

/* Parses "HOST:PORT" / "[V6]:PORT" into host and port. Returns 0 or -EINVAL. */
int wl_parse_hostport(const char *s, char *host, size_t hostlen, int *port);

struct sockaddr_storage;

/* Parses a listen address with a numeric host (IPv4 or IPv6) into a socket
 * address; host (hostlen bytes) gets the host part. Returns 0, or -EINVAL
 * with "NAME: 'VALUE' is not a numeric HOST:PORT" in err. */
int wl_parse_listen(const char *name, const char *value, struct sockaddr_storage *ss, char *host,
                    size_t hostlen, char *err, size_t errlen);

#endif
