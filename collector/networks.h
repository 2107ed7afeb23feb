/* The network table: the operator's CIDR -> organization map, which names
 * the organization of an HTTP ingest request that carries no domain of its
 * own (issue 13, "Organization identity"). It holds organization keys
 * (wl_org_key of the domain under the org salt), never domains: not in
 * memory, not in WL_CF_NETWORKS, not in logs or errors.
 *
 * Threads: the server opens it at start (loaded from WL_CF_NETWORKS) and
 * frees it after every user has stopped; an API thread replaces it whole
 * (PUT /v1/networks: one atomic write, then the in-memory table swapped);
 * any thread looks addresses up, concurrently with a replace (a read lock
 * held for the lookup alone; a replace takes the write lock only to swap
 * the pointer, and readers never starve it). */
#ifndef WL_NETWORKS_H
#define WL_NETWORKS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "nettable.h"
#include "storage/store.h"

/* A table needs at most this many input bytes per prefix: an import may
 * hold one prefix per WL_NETWORKS_BYTES_PER_PREFIX bytes of its body cap,
 * so what it parses stays under 2x the cap (56 bytes a row). */
#define WL_NETWORKS_BYTES_PER_PREFIX 32

struct wl_networks;

/* Loads the table from store's WL_CF_NETWORKS (store NULL: an empty table
 * kept in memory only, for tests and benches). A damaged record (a key that
 * is not a prefix, a value that is not 32 bytes) is left out, logged and
 * counted in *skipped when given. Returns 0, or -ENOMEM / -EIO with err. */
int wl_networks_open(struct wl_store *store, struct wl_networks **out, size_t *skipped,
                     char *err, size_t errlen);

/* NULL is a no-op. No lookup may be running. */
void wl_networks_free(struct wl_networks *n);

/* The organization key of the longest prefix covering the address: 1 with
 * org_key filled, 0 when none covers it (or n is NULL, or sa is neither
 * AF_INET nor AF_INET6). An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is
 * looked up as IPv4. Any thread. */
int wl_networks_lookup(struct wl_networks *n, const struct sockaddr *sa, uint8_t org_key[32]);

/* How many prefixes the table holds; the bytes of its lookup structure. */
size_t wl_networks_count(struct wl_networks *n);
size_t wl_networks_bytes(struct wl_networks *n);

/* Parses a CSV body of "cidr,domain" rows (an optional header row
 * cidr,domain first; a UTF-8 BOM and blank lines allowed) into prefixes
 * whose org is wl_org_key(salt, domain), sorted by storage key. body holds
 * len bytes and one more of room; it is parsed in place. At most
 * max_prefixes rows. A CIDR with host bits set is refused, not normalized;
 * the same CIDR twice is refused with both lines named when the domains
 * differ, and kept once when they are the same. On -EINVAL err says
 * "line N: ..." and never quotes a domain; -ENOMEM. *out is malloc'd. */
int wl_networks_parse_csv(char *body, size_t len, const uint8_t *salt, size_t saltlen,
                          size_t max_prefixes, struct wl_net_prefix **out, size_t *count,
                          char *err, size_t errlen);

/* One import at a time, parse included (each holds its body and rows):
 * 0 and the import is the caller's until wl_networks_import_end, or
 * -EBUSY while another runs. */
int wl_networks_import_begin(struct wl_networks *n);
void wl_networks_import_end(struct wl_networks *n);

/* Replaces the table with v (n prefixes sorted as wl_networks_parse_csv
 * leaves them, no prefix twice): one atomic, synced write of
 * WL_CF_NETWORKS (every old record deleted, every new one put), then the
 * in-memory table swapped. On failure nothing changed. *removed: the old
 * prefixes not in v. One replace at a time (they queue). */
int wl_networks_replace(struct wl_networks *n, const struct wl_net_prefix *v, size_t count,
                        size_t *removed, char *err, size_t errlen);

#endif
