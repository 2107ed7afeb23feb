/* An HTTP request body before it is read: gzip under a cap, a JSON text's
 * depth and values counted before it is parsed (http_body.h). */
#include "http_body.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define GUNZIP_FIRST_STEP (64 * 1024)

/* Gives zlib at most UINT_MAX bytes of input at a time. */
static void feed(z_stream *zs, const uint8_t **in, size_t *left)
{
    if (zs->avail_in == 0 && *left > 0) {
        uInt n = *left > UINT_MAX ? UINT_MAX : (uInt)*left;
        zs->next_in = (Bytef *)*in;
        zs->avail_in = n;
        *in += n;
        *left -= n;
    }
}

int wl_http_gunzip(const uint8_t *in, size_t len, size_t cap, uint8_t **out, size_t *outlen)
{
    z_stream zs;
    uint8_t *buf = NULL;
    size_t size = 0, produced = 0, left = len;
    int rc;

    *out = NULL;
    *outlen = 0;
    if (len == 0 || cap >= SIZE_MAX)
        return -EINVAL;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return -ENOMEM;
    for (;;) {
        uint8_t spare;
        int full = produced == cap;
        if (!full && produced == size) {
            size_t nsize = size ? size * 2 : GUNZIP_FIRST_STEP;
            if (nsize > cap || nsize < size)
                nsize = cap;
            uint8_t *nbuf = realloc(buf, nsize + 1);
            if (nbuf == NULL) {
                rc = -ENOMEM;
                goto fail;
            }
            buf = nbuf;
            size = nsize;
        }
        feed(&zs, &in, &left);
        /* At the cap, one spare byte tells a stream that ends here (its
         * trailer still to read) from one that would go on. */
        size_t room = full ? 1 : size - produced;
        if (room > UINT_MAX)
            room = UINT_MAX;
        zs.next_out = full ? &spare : buf + produced;
        zs.avail_out = (uInt)room;
        int zrc = inflate(&zs, Z_NO_FLUSH);
        size_t got = room - zs.avail_out;
        if (full && got > 0) {
            rc = -E2BIG;
            goto fail;
        }
        produced += full ? 0 : got;
        if (zrc == Z_STREAM_END) {
            if (zs.avail_in != 0 || left != 0) {
                rc = -EINVAL; /* trailing bytes, or a second member */
                goto fail;
            }
            break;
        }
        if (zrc == Z_BUF_ERROR && zs.avail_in == 0 && left == 0) {
            rc = -EINVAL; /* the input ended mid-stream */
            goto fail;
        }
        if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
            rc = zrc == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
            goto fail;
        }
    }
    inflateEnd(&zs);
    if (buf == NULL) {
        buf = malloc(1); /* cap 0 and an empty member */
        if (buf == NULL)
            return -ENOMEM;
    }
    buf[produced] = '\0';
    *out = buf;
    *outlen = produced;
    return 0;

fail:
    inflateEnd(&zs);
    free(buf);
    return rc;
}

static int refuse(char *why, size_t whylen, const char *reason)
{
    snprintf(why, whylen, "%s", reason);
    return -E2BIG;
}

int wl_json_bound(const char *s, size_t len, unsigned max_depth, uint64_t max_values,
                  char *why, size_t whylen)
{
    /* One bit per open container: 1 object, 0 array. */
    uint8_t is_object[WL_JSON_DEPTH_LIMIT / 8] = {0};
    unsigned depth = 0;
    uint64_t values = 0;
    int in_string = 0, escaped = 0, in_bare = 0, key_next = 0;

    if (max_depth > WL_JSON_DEPTH_LIMIT)
        max_depth = WL_JSON_DEPTH_LIMIT;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (in_string) {
            if (escaped)
                escaped = 0;
            else if (c == '\\')
                escaped = 1;
            else if (c == '"')
                in_string = 0;
            continue;
        }
        int top_object = depth > 0 && (is_object[(depth - 1) / 8] >> ((depth - 1) % 8)) & 1;
        switch (c) {
        case '"':
            in_bare = 0;
            in_string = 1;
            if (key_next && top_object) {
                key_next = 0;   /* a key: jansson keeps it in its value's pair */
                break;
            }
            key_next = 0;
            if (++values > max_values)
                return refuse(why, whylen, "more JSON values than http_max_json_values");
            break;
        case '[':
        case '{':
            in_bare = 0;
            if (++values > max_values)
                return refuse(why, whylen, "more JSON values than http_max_json_values");
            if (depth >= max_depth)
                return refuse(why, whylen, "JSON nested deeper than http_max_json_depth");
            if (c == '{')
                is_object[depth / 8] |= (uint8_t)(1u << (depth % 8));
            else
                is_object[depth / 8] &= (uint8_t)~(1u << (depth % 8));
            depth++;
            key_next = c == '{';
            break;
        case ']':
        case '}':
            in_bare = 0;
            key_next = 0;
            if (depth > 0)
                depth--;
            break;
        case ',':
            in_bare = 0;
            key_next = top_object;
            break;
        case ':':
            in_bare = 0;
            key_next = 0;
            break;
        case ' ':
        case '\t':
        case '\n':
        case '\r':
            in_bare = 0;
            break;
        default:
            /* a number, true, false, null (or junk jansson refuses) */
            key_next = 0;
            if (!in_bare) {
                in_bare = 1;
                if (++values > max_values)
                    return refuse(why, whylen, "more JSON values than http_max_json_values");
            }
            break;
        }
    }
    return 0;
}
