#include "orgkey.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

int wl_org_salt_load(const char *path, uint8_t **salt, size_t *len, char *err, size_t errlen)
{
    FILE *f = NULL;
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc;

    *salt = NULL;
    *len = 0;
    if (path == NULL || path[0] == '\0') {
        snprintf(err, errlen, "org salt file: no path given");
        return -EINVAL;
    }
    f = fopen(path, "rb");
    if (f == NULL) {
        rc = -errno;
        snprintf(err, errlen, "org salt file %s: %s", path, strerror(errno));
        return rc;
    }
    /* One byte more than the cap tells an oversized file from a full one. */
    buf = malloc(WL_ORG_SALT_MAX + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "org salt file %s: out of memory", path);
        rc = -ENOMEM;
        goto done;
    }
    errno = 0;
    n = fread(buf, 1, WL_ORG_SALT_MAX + 1, f);
    if (ferror(f)) {
        rc = errno != 0 ? -errno : -EIO;
        snprintf(err, errlen, "org salt file %s: %s", path, strerror(-rc));
        goto done;
    }
    if (n > WL_ORG_SALT_MAX) {
        rc = -EFBIG;
        snprintf(err, errlen, "org salt file %s: larger than %d bytes", path, WL_ORG_SALT_MAX);
        goto done;
    }
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n == 0) {
        rc = -EINVAL;
        snprintf(err, errlen, "org salt file %s: empty", path);
        goto done;
    }
    *salt = malloc(n);
    if (*salt == NULL) {
        rc = -ENOMEM;
        snprintf(err, errlen, "org salt file %s: out of memory", path);
        goto done;
    }
    memcpy(*salt, buf, n);
    *len = n;
    rc = 0;

done:
    /* The read buffer held the key: wipe it whether or not we succeeded. */
    if (buf != NULL) {
        sodium_memzero(buf, WL_ORG_SALT_MAX + 1);
        free(buf);
    }
    fclose(f);
    return rc;
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Sets *start and *len to domain without surrounding whitespace. */
static void trim(const char *domain, const char **start, size_t *len)
{
    const char *s = domain;
    size_t n;

    while (is_space((unsigned char)*s))
        s++;
    n = strlen(s);
    while (n > 0 && is_space((unsigned char)s[n - 1]))
        n--;
    *start = s;
    *len = n;
}

int wl_org_domain_check(const char *domain, char *err, size_t errlen)
{
    const char *s;
    size_t n;

    trim(domain, &s, &n);
    if (n == 0) {
        snprintf(err, errlen, "empty domain");
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '@') {
            snprintf(err, errlen, "'%.*s' looks like an email address; pass only its domain",
                     (int)n, s);
            return -EINVAL;
        }
        if (c < 0x20 || c == 0x7f || is_space(c)) {
            snprintf(err, errlen, "domain contains whitespace or a control character");
            return -EINVAL;
        }
    }
    return 0;
}

void wl_org_key(const uint8_t *salt, size_t saltlen, const char *domain, uint8_t out[32])
{
    crypto_auth_hmacsha256_state st;
    const char *s;
    size_t n;

    trim(domain, &s, &n);
    crypto_auth_hmacsha256_init(&st, salt, saltlen);
    /* Lower-case in small chunks rather than copying the whole domain. */
    while (n > 0) {
        unsigned char chunk[64];
        size_t k = n < sizeof chunk ? n : sizeof chunk;
        for (size_t i = 0; i < k; i++) {
            unsigned char c = (unsigned char)s[i];
            chunk[i] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
        }
        crypto_auth_hmacsha256_update(&st, chunk, k);
        s += k;
        n -= k;
    }
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
}
