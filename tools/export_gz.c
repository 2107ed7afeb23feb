#include "export_gz.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* Writes all of buf, hashing and counting it. */
static int put(struct wl_gz *gz, const unsigned char *buf, size_t len)
{
    crypto_hash_sha256_update(&gz->sha, buf, len);
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

int wl_gz_open(struct wl_gz *gz, int fd, int level)
{
    memset(&gz->zs, 0, sizeof gz->zs);
    memset(&gz->hdr, 0, sizeof gz->hdr);
    gz->fd = fd;
    gz->bytes_in = gz->bytes_out = 0;
    /* windowBits 16 + 15: a gzip wrapper around a 32 KiB window. */
    int rc = deflateInit2(&gz->zs, level, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY);
    if (rc != Z_OK)
        return rc == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
    /* No name, no comment, mtime 0, OS "unknown": nothing of this machine
     * or this moment in the bytes. */
    gz->hdr.time = 0;
    gz->hdr.os = 255;
    if (deflateSetHeader(&gz->zs, &gz->hdr) != Z_OK) {
        deflateEnd(&gz->zs);
        return -EINVAL;
    }
    crypto_hash_sha256_init(&gz->sha);
    gz->open = 1;
    return 0;
}

/* Runs deflate over the pending input with flush, writing every output. */
static int pump(struct wl_gz *gz, int flush)
{
    for (;;) {
        gz->zs.next_out = gz->out;
        gz->zs.avail_out = sizeof gz->out;
        int zrc = deflate(&gz->zs, flush);
        if (zrc == Z_STREAM_ERROR)
            return -EINVAL;
        size_t have = sizeof gz->out - gz->zs.avail_out;
        if (have > 0) {
            int rc = put(gz, gz->out, have);
            if (rc != 0)
                return rc;
        }
        if (flush == Z_FINISH ? zrc == Z_STREAM_END : gz->zs.avail_out != 0)
            return 0;
    }
}

int wl_gz_write(struct wl_gz *gz, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    gz->bytes_in += len;
    while (len > 0) {
        /* avail_in is a uInt: feed at most 1 GiB at a time. */
        size_t chunk = len < (1u << 30) ? len : (1u << 30);
        gz->zs.next_in = (unsigned char *)p;
        gz->zs.avail_in = (uInt)chunk;
        int rc = pump(gz, Z_NO_FLUSH);
        if (rc != 0)
            return rc;
        p += chunk;
        len -= chunk;
    }
    return 0;
}

int wl_gz_finish(struct wl_gz *gz, uint64_t *bytes, char sha256_hex[65])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    gz->zs.next_in = NULL;
    gz->zs.avail_in = 0;
    int rc = pump(gz, Z_FINISH);
    wl_gz_abort(gz);
    if (rc != 0)
        return rc;
    crypto_hash_sha256_final(&gz->sha, digest);
    sodium_bin2hex(sha256_hex, 65, digest, sizeof digest);
    *bytes = gz->bytes_out;
    return 0;
}

void wl_gz_abort(struct wl_gz *gz)
{
    if (gz->open) {
        deflateEnd(&gz->zs);
        gz->open = 0;
    }
}
