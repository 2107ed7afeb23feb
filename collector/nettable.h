/* The network table's lookup structure: CIDR prefixes (IPv4 and IPv6), each
 * with a 32-byte organization key, resolved longest prefix first. Pure: no
 * I/O, no locks, no logging; collector/networks.h owns the process's table,
 * its storage and its locking.
 *
 * Built once, then read only (any number of threads). The build flattens
 * the prefixes of each family into sorted disjoint address ranges, each
 * already resolved to its longest covering prefix (or to none), with a
 * 65,536-entry index on 16 bits of the address (the 16 after the leading
 * bits every prefix of the family shares: IPv6 tables sit in 2000::/3): a
 * lookup is one index read and a binary search over the few ranges in that
 * slot, a handful of cache lines whatever the table's size.
 *
 * Memory: at most 2n + 1 ranges for n prefixes of a family (each prefix
 * opens one range and closes one), 8 bytes per IPv4 range and 20 per IPv6
 * range, plus 32 bytes per distinct organization key and 512 KiB of index
 * (2 x 65,537 x 4 bytes): at most 48 bytes per IPv4 prefix and 72 per IPv6
 * prefix beyond the fixed 512 KiB (wl_nettable_bytes says what one holds). */
#ifndef WL_NETTABLE_H
#define WL_NETTABLE_H

#include <stddef.h>
#include <stdint.h>

#define WL_NET_KEY_MAX 18     /* family byte + 16 address bytes + prefix length byte */
#define WL_NET_CIDR_MAX 50    /* "ffff:...:ffff/128" and its NUL, with room */

/* One prefix: family 4 or 6, the address in network byte order (IPv4 in
 * addr[0..4)), host bits clear, len 0..32 or 0..128. */
struct wl_net_prefix {
    uint8_t addr[16];
    uint8_t family;
    uint8_t len;
    uint8_t org[32];
};

struct wl_nettable;

/* Parses "a.b.c.d/N" or "x:y::z/N" (a bare address is /32 or /128).
 * Surrounding white space is not allowed (trim first). An address with
 * host bits set past N is refused (the message names the network it would
 * be); so is an IPv4-mapped IPv6 prefix (::ffff:a.b.c.d/N with N >= 96:
 * write it as IPv4, which is how mapped addresses are looked up). Returns 0
 * (p->org untouched) or -EINVAL with the reason in why, which never quotes
 * s (a column swapped by mistake would put a domain there). */
int wl_net_parse(const char *s, struct wl_net_prefix *p, char *why, size_t whylen);

/* Writes the prefix as CIDR text ("10.0.0.0/8", "2001:db8::/32"). */
void wl_net_format(const struct wl_net_prefix *p, char out[WL_NET_CIDR_MAX]);

/* The storage key: family byte (4|6), the 4 or 16 address bytes, the
 * prefix length byte. Returns its length (6 or 18). */
size_t wl_net_key(const struct wl_net_prefix *p, uint8_t key[WL_NET_KEY_MAX]);

/* The prefix of a storage key (org untouched): 0, or -EINVAL when the key
 * is not one (wrong length or family, length out of range, host bits). */
int wl_net_from_key(const void *key, size_t klen, struct wl_net_prefix *p);

/* Builds the structure from n prefixes (not kept; may be in any order; a
 * prefix given twice is the caller's error: one of the two wins). Returns
 * 0, -EINVAL for a prefix that wl_net_from_key would refuse, -ENOMEM. */
int wl_nettable_build(const struct wl_net_prefix *v, size_t n, struct wl_nettable **out);

/* 1 and org filled when a prefix covers the address (the longest one), 0
 * when none does. family 4: addr holds 4 bytes; 6: 16 bytes. */
int wl_nettable_find(const struct wl_nettable *t, int family, const uint8_t *addr,
                     uint8_t org[32]);

/* How many prefixes it was built from; the bytes it holds. */
size_t wl_nettable_count(const struct wl_nettable *t);
size_t wl_nettable_bytes(const struct wl_nettable *t);

/* NULL is a no-op. */
void wl_nettable_free(struct wl_nettable *t);

#endif
