/* Per-source-address limits for ingest: a token bucket of envelopes
 * (datagrams and frames) per address, and a count of open TCP connections
 * per address, in ONE fixed-size table (no allocation after creation).
 *
 * Addresses are keyed as 16 bytes: IPv4 (and IPv4-mapped IPv6) as
 * ::ffff:a.b.c.d, IPv6 cut to its /64 (one host usually holds a whole /64).
 * Slots are found by a keyed hash (SipHash, random key per table) and
 * linear probing within a short window; an address that finds no slot
 * takes the place of the window's entry that matters least: one whose
 * bucket has refilled (forgetting it loses nothing), else the one seen
 * longest ago. Entries with open connections are never evicted.
 *
 * Loop thread only: no locks. */
#ifndef WL_ADDRLIMIT_H
#define WL_ADDRLIMIT_H

#include <stddef.h>
#include <stdint.h>

struct sockaddr;

struct wl_addr {
    uint8_t b[16];
};

/* Fills key from a socket address. Returns 1 when it is a loopback address
 * (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104), 0 for another, -1 for a family
 * that is neither IPv4 nor IPv6 (key zeroed). */
int wl_addr_key(const struct sockaddr *sa, struct wl_addr *key);

struct wl_addrlimit;

/* A table of at least min_entries slots (rounded up to a power of two).
 * rate: envelopes per second per address (0: no rate limit); burst: the
 * bucket's size (tokens a fresh address starts with). Returns 0 or -ENOMEM. */
int wl_addrlimit_new(size_t min_entries, uint64_t rate, uint64_t burst,
                     struct wl_addrlimit **out);
void wl_addrlimit_free(struct wl_addrlimit *t);

/* Slots in the table, and their bytes (for the documentation of bounds). */
size_t wl_addrlimit_capacity(const struct wl_addrlimit *t);
size_t wl_addrlimit_bytes(const struct wl_addrlimit *t);

/* Takes one token from the address's bucket at time now_ms (any monotonic
 * millisecond clock). Returns 0 when it had one, else the milliseconds until
 * it will (at least 1). Always 0 without a rate. */
uint64_t wl_addrlimit_take(struct wl_addrlimit *t, const struct wl_addr *a, uint64_t now_ms);

/* Counts a new connection of the address. Returns 0 when counted (call
 * wl_addrlimit_conn_close when it closes), -EMFILE when the address already
 * has max open (nothing counted), or 1 when it is let in uncounted: max is
 * 0 (no limit), or every slot of its window holds an address with
 * connections open (the table is sized so that this is very unlikely). */
int wl_addrlimit_conn_open(struct wl_addrlimit *t, const struct wl_addr *a, uint64_t max,
                           uint64_t now_ms);
/* Uncounts a connection counted by wl_addrlimit_conn_open. */
void wl_addrlimit_conn_close(struct wl_addrlimit *t, const struct wl_addr *a);

/* The same count, n at a time, for what else an address holds (the HTTP
 * listener: units of body bytes): 0 when counted, -EMFILE when it would
 * pass max (nothing counted), 1 when let in uncounted (max 0, or no slot). */
int wl_addrlimit_hold(struct wl_addrlimit *t, const struct wl_addr *a, uint32_t n, uint64_t max,
                      uint64_t now_ms);
void wl_addrlimit_release(struct wl_addrlimit *t, const struct wl_addr *a, uint32_t n);

/* wl_addrlimit_take for n tokens at once: all or none. */
uint64_t wl_addrlimit_take_n(struct wl_addrlimit *t, const struct wl_addr *a, uint32_t n,
                             uint64_t now_ms);

/* Open connections counted for the address (0 when unknown). */
uint64_t wl_addrlimit_conns(const struct wl_addrlimit *t, const struct wl_addr *a);

#endif
