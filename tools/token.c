#include "token.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int clean(const char *src, char *buf, size_t n, char **tok, char *err, size_t errlen)
{
    char *s = buf, *e = buf + n;
    int rc = 0;

    *tok = NULL;
    buf[n] = '\0';
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        e--;
    *e = '\0';
    if (e - s > WL_TOKEN_MAX) {
        snprintf(err, errlen, "%s: the token is longer than %d bytes", src, WL_TOKEN_MAX);
        rc = -EINVAL;
    } else if (s == e) {
        snprintf(err, errlen, "%s: the token is empty", src);
        rc = -EINVAL;
    } else {
        for (const char *p = s; p < e && rc == 0; p++) {
            if ((unsigned char)*p < 0x20 || *p == 0x7F) {
                snprintf(err, errlen, "%s: the token holds control characters", src);
                rc = -EINVAL;
            }
        }
    }
    if (rc == 0 && (*tok = strdup(s)) == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
    }
    return rc;
}

int wl_token_from_file(const char *path, char **tok, char *err, size_t errlen)
{
    char buf[WL_TOKEN_MAX + 2];

    *tok = NULL;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "--token-file %s: %s", path, strerror(errno));
        return -EINVAL;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int bad = ferror(f);
    fclose(f);
    int rc;
    if (bad) {
        snprintf(err, errlen, "--token-file %s: cannot read it", path);
        rc = -EINVAL;
    } else {
        rc = clean(path, buf, n, tok, err, errlen);
    }
    sodium_memzero(buf, sizeof buf);
    return rc;
}

int wl_token_from_text(const char *src, const char *text, size_t n, char **tok, char *err,
                       size_t errlen)
{
    char buf[WL_TOKEN_MAX + 2];

    if (n > sizeof buf - 1)
        n = sizeof buf - 1;
    memcpy(buf, text, n);
    int rc = clean(src, buf, n, tok, err, errlen);
    sodium_memzero(buf, sizeof buf);
    return rc;
}
