#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The token in buf (n bytes, room for a NUL after them): checked, copied. */
static int check(const char *src, char *buf, size_t n, char **tok, char *err, size_t errlen)
{
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
        if (n > 0 && buf[n - 1] == '\r')
            n--;
    }
    if (n > WL_TOKEN_MAX) {
        snprintf(err, errlen, "%s: the token is longer than %d bytes", src, WL_TOKEN_MAX);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        const char *what = NULL;
        if (c == '\0')
            what = "a NUL byte";
        else if (c == '\n' || c == '\r')
            what = "a line break";
        else if (c < 0x20 || c == 0x7F)
            what = "a control character";
        else if (c == ' ')
            what = "a space";
        else if (c > 0x7F)
            what = "a byte outside ASCII";
        if (what != NULL) {
            snprintf(err, errlen, "%s: the token holds %s (0x%02x) at byte %zu: a token is "
                     "visible ASCII only, with at most one trailing newline", src, what, c, i + 1);
            return -EINVAL;
        }
    }
    if (n < WL_TOKEN_MIN) {
        snprintf(err, errlen, "%s: the token is %s; it needs at least %d characters", src,
                 n == 0 ? "empty" : "too short", WL_TOKEN_MIN);
        return -EINVAL;
    }
    buf[n] = '\0';
    if ((*tok = strdup(buf)) == NULL) {
        snprintf(err, errlen, "%s: out of memory", src);
        return -ENOMEM;
    }
    return 0;
}

int wl_token_from_file(const char *what, const char *path, char **tok, char *err,
                       size_t errlen)
{
    char buf[WL_TOKEN_MAX + 3]; /* the longest token, CRLF, one byte to see more */
    char src[1100];
    size_t n = 0;
    int rc = 0;

    *tok = NULL;
    snprintf(src, sizeof src, "%s %s", what, path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", src, strerror(errno));
        return rc;
    }
    while (n < sizeof buf - 1) {
        ssize_t got = read(fd, buf + n, sizeof buf - 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = -errno;
            snprintf(err, errlen, "%s: cannot read it: %s", src, strerror(errno));
            goto done;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    if (n == sizeof buf - 1) {
        snprintf(err, errlen, "%s: the token is longer than %d bytes", src, WL_TOKEN_MAX);
        rc = -EINVAL;
        goto done;
    }
    rc = check(src, buf, n, tok, err, errlen);
done:
    close(fd);
    sodium_memzero(buf, sizeof buf);
    return rc;
}

int wl_token_from_text(const char *src, const char *text, size_t n, char **tok, char *err,
                       size_t errlen)
{
    char buf[WL_TOKEN_MAX + 3];

    *tok = NULL;
    if (n > WL_TOKEN_MAX + 2) {
        snprintf(err, errlen, "%s: the token is longer than %d bytes", src, WL_TOKEN_MAX);
        return -EINVAL;
    }
    memcpy(buf, text, n);
    int rc = check(src, buf, n, tok, err, errlen);
    sodium_memzero(buf, sizeof buf);
    return rc;
}
