/* A deterministic gzip stream into a file descriptor: one gzip member
 * (RFC 1952, what gzip, zlib and every warehouse read) whose header holds no
 * name, no comment and a zero mtime. The compressor is ISA-L's igzip at
 * level 1: on export rows it compresses about 4 times as fast as zlib's
 * fastest level and 7% smaller than zlib level 2 (bench/export), and zlib at
 * any level or strategy stays under the export's 300,000 rows/s target by
 * itself. Input is compressed in fixed WL_GZ_CHUNK pieces whatever the
 * caller's writes were, so the same bytes in always make the same bytes out.
 * It counts and hashes (SHA-256, OpenSSL's: it uses the CPU's SHA
 * instructions, 6 times libsodium's portable code here) what it writes, for
 * manifests. */
#ifndef WL_EXPORT_GZ_H
#define WL_EXPORT_GZ_H

#include <isa-l/igzip_lib.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

/* igzip's level (0 to 3); named in the bench report. */
#define WL_EXPORT_GZ_LEVEL 1

/* Input is compressed in pieces of this size. */
#define WL_GZ_CHUNK (256 * 1024)

struct wl_gz {
    struct isal_zstream zs;
    uint8_t *level_buf;
    unsigned char *in;       /* WL_GZ_CHUNK bytes waiting for the compressor */
    size_t in_len;
    int fd;
    int open;
    uint64_t bytes_in, bytes_out;
    EVP_MD_CTX *sha;
    unsigned char out[1 << 17];
};

/* Starts a stream into fd (not owned) at level. Returns 0 or
 * -ENOMEM/-EINVAL (a level igzip does not have). */
int wl_gz_open(struct wl_gz *gz, int fd, int level);

/* Takes len bytes; writes what the compressor produced. Returns 0 or
 * -errno of the failed write. */
int wl_gz_write(struct wl_gz *gz, const void *buf, size_t len);

/* Ends the stream (trailer written), releases the compressor's state and
 * returns the compressed size and its SHA-256 as 64 lower-case hex digits.
 * 0 or -errno. */
int wl_gz_finish(struct wl_gz *gz, uint64_t *bytes, char sha256_hex[65]);

/* Releases the compressor's state without finishing (after an error).
 * Idempotent. */
void wl_gz_abort(struct wl_gz *gz);

#endif
