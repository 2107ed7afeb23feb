#include "export_gz.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writes all of buf, hashing and counting it. */
static int put(struct wl_gz *gz, const unsigned char *buf, size_t len)
{
    if (EVP_DigestUpdate(gz->sha, buf, len) != 1)
        return -ENOMEM;
    gz->bytes_out += len;
    while (len > 0) {
        ssize_t n = write(gz->fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static size_t level_buf_size(int level)
{
    switch (level) {
    case 0: return 0;
    case 1: return ISAL_DEF_LVL1_DEFAULT;
    case 2: return ISAL_DEF_LVL2_DEFAULT;
    case 3: return ISAL_DEF_LVL3_DEFAULT;
    }
    return SIZE_MAX;
}

int wl_gz_open(struct wl_gz *gz, int fd, int level)
{
    /* The header: magic, deflate, no flags, mtime 0, no extra flags, OS
     * "unknown" (255): nothing of this machine or this moment in the bytes. */
    static const unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255};
    size_t lb = level_buf_size(level);

    gz->open = 0;
    gz->level_buf = NULL;
    gz->in = NULL;
    gz->sha = NULL;
    if (lb == SIZE_MAX)
        return -EINVAL;
    isal_deflate_init(&gz->zs);
    gz->zs.level = (uint32_t)level;
    gz->zs.gzip_flag = IGZIP_GZIP_NO_HDR; /* the trailer (CRC-32, size) but our header */
    gz->zs.flush = NO_FLUSH;
    gz->in = malloc(WL_GZ_CHUNK);
    if (lb > 0)
        gz->level_buf = malloc(lb);
    gz->sha = EVP_MD_CTX_new();
    gz->open = 1;
    if (gz->in == NULL || (lb > 0 && gz->level_buf == NULL) || gz->sha == NULL ||
        EVP_DigestInit_ex(gz->sha, EVP_sha256(), NULL) != 1) {
        wl_gz_abort(gz);
        return -ENOMEM;
    }
    gz->zs.level_buf = gz->level_buf;
    gz->zs.level_buf_size = (uint32_t)lb;
    gz->in_len = 0;
    gz->fd = fd;
    gz->bytes_in = 0;
    gz->bytes_out = 0;
    return put(gz, header, sizeof header);
}

/* Compresses len bytes of in (one whole piece, or the last bytes and the
 * stream's end when last), writing every output. */
static int pump(struct wl_gz *gz, const unsigned char *in, size_t len, int last)
{
    gz->zs.next_in = (uint8_t *)in;
    gz->zs.avail_in = (uint32_t)len;
    gz->zs.end_of_stream = (uint16_t)last;
    for (;;) {
        gz->zs.next_out = gz->out;
        gz->zs.avail_out = sizeof gz->out;
        if (isal_deflate(&gz->zs) != COMP_OK)
            return -EINVAL;
        size_t have = sizeof gz->out - gz->zs.avail_out;
        if (have > 0) {
            int rc = put(gz, gz->out, have);
            if (rc != 0)
                return rc;
        }
        if (gz->zs.avail_in == 0 &&
            (last ? gz->zs.internal_state.state == ZSTATE_END : gz->zs.avail_out != 0))
            return 0;
    }
}

int wl_gz_write(struct wl_gz *gz, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    int rc;
    gz->bytes_in += len;
    while (len > 0) {
        /* A whole piece straight from the caller's buffer when none is
         * pending: the same pieces as through gz->in, one copy fewer. */
        if (gz->in_len == 0 && len >= WL_GZ_CHUNK) {
            if ((rc = pump(gz, p, WL_GZ_CHUNK, 0)) != 0)
                return rc;
            p += WL_GZ_CHUNK;
            len -= WL_GZ_CHUNK;
            continue;
        }
        size_t n = WL_GZ_CHUNK - gz->in_len;
        if (n > len)
            n = len;
        memcpy(gz->in + gz->in_len, p, n);
        gz->in_len += n;
        p += n;
        len -= n;
        if (gz->in_len == WL_GZ_CHUNK) {
            gz->in_len = 0;
            if ((rc = pump(gz, gz->in, WL_GZ_CHUNK, 0)) != 0)
                return rc;
        }
    }
    return 0;
}

int wl_gz_finish(struct wl_gz *gz, uint64_t *bytes, char sha256_hex[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int rc = pump(gz, gz->in, gz->in_len, 1);
    if (rc == 0 && (EVP_DigestFinal_ex(gz->sha, digest, &n) != 1 || n != 32))
        rc = -ENOMEM;
    wl_gz_abort(gz);
    if (rc != 0)
        return rc;
    for (unsigned i = 0; i < 32; i++) {
        sha256_hex[2 * i] = hex[digest[i] >> 4];
        sha256_hex[2 * i + 1] = hex[digest[i] & 15];
    }
    sha256_hex[64] = '\0';
    *bytes = gz->bytes_out;
    return 0;
}

void wl_gz_abort(struct wl_gz *gz)
{
    if (gz->open) {
        free(gz->in);
        free(gz->level_buf);
        EVP_MD_CTX_free(gz->sha);
        gz->in = NULL;
        gz->level_buf = NULL;
        gz->sha = NULL;
        gz->open = 0;
    }
}
