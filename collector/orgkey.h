/* Organization keys: an organization is identified on the wire by
 * HMAC-SHA256(org salt, lower-cased email domain), so the collector and its
 * tools can match organizations without ever receiving a domain. */
#ifndef WL_ORGKEY_H
#define WL_ORGKEY_H

#include <stddef.h>
#include <stdint.h>

#define WL_ORG_SALT_MAX (64 * 1024) /* a salt file larger than this is a mistake */

/* Reads the HMAC key from path: the file's bytes less one trailing newline,
 * if there is one. On 0, *salt is malloc'd (caller frees; wipe it with
 * sodium_memzero first if you care). A missing, unreadable, empty or
 * oversized file returns a negative errno-style code with a message that
 * names the path in err. */
int wl_org_salt_load(const char *path, uint8_t **salt, size_t *len, char *err, size_t errlen);

/* Checks that domain (surrounding whitespace allowed) is a plausible domain:
 * not empty, no '@' (pass "example.com", not "user@example.com"), no
 * whitespace or control characters inside. Returns 0 or -EINVAL with the
 * reason in err. wl_org_key does not call it. */
int wl_org_domain_check(const char *domain, char *err, size_t errlen);

/* out = HMAC-SHA256 keyed with salt over domain, after stripping surrounding
 * whitespace and lower-casing ASCII letters (other bytes are hashed as
 * they are). domain is a domain ("example.com"), not an address. */
void wl_org_key(const uint8_t *salt, size_t saltlen, const char *domain, uint8_t out[32]);

#endif
