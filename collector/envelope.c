#include "envelope.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef Warmline__V1__Envelope wl_envelope_msg;

void wl_decoder_init(struct wl_decoder *d, size_t max_inflated, size_t max_pings)
{
    memset(d, 0, sizeof *d);
    d->max_inflated = max_inflated;
    d->max_pings = max_pings;
}

void wl_decoder_free(struct wl_decoder *d)
{
    if (d->zs_ready)
        inflateEnd(&d->zs);
    free(d->buf);
    memset(d, 0, sizeof *d);
}

/* Inflates src into d->buf; stops with INFLATE_TOO_LARGE at the cap. */
static enum wl_reason inflate_capped(struct wl_decoder *d, const uint8_t *src, size_t len,
                                     size_t *outlen)
{
    if (!d->zs_ready) {
        if (inflateInit(&d->zs) != Z_OK)
            return WL_REJECT_INFLATE_FAILED;
        d->zs_ready = 1;
    } else if (inflateReset(&d->zs) != Z_OK) {
        return WL_REJECT_INFLATE_FAILED;
    }
    d->zs.next_in = (Bytef *)src;
    d->zs.avail_in = (uInt)len;
    size_t produced = 0;
    for (;;) {
        if (produced == d->cap) {
            if (d->cap >= d->max_inflated)
                return WL_REJECT_INFLATE_TOO_LARGE;
            size_t ncap = d->cap ? d->cap * 2 : 64 * 1024;
            if (ncap > d->max_inflated)
                ncap = d->max_inflated;
            uint8_t *nbuf = realloc(d->buf, ncap);
            if (nbuf == NULL)
                return WL_REJECT_INFLATE_TOO_LARGE;
            d->buf = nbuf;
            d->cap = ncap;
        }
        d->zs.next_out = d->buf + produced;
        d->zs.avail_out = (uInt)(d->cap - produced);
        int zrc = inflate(&d->zs, Z_NO_FLUSH);
        produced = d->cap - d->zs.avail_out;
        if (zrc == Z_STREAM_END) {
            if (d->zs.avail_in != 0)
                return WL_REJECT_INFLATE_FAILED; /* trailing garbage */
            *outlen = produced;
            return WL_REJECT_NONE;
        }
        if (zrc == Z_BUF_ERROR && d->zs.avail_out != 0)
            return WL_REJECT_INFLATE_FAILED; /* input ended mid-stream */
        if (zrc != Z_OK && zrc != Z_BUF_ERROR)
            return WL_REJECT_INFLATE_FAILED;
    }
}

enum wl_reason wl_envelope_decode(struct wl_decoder *d, const uint8_t *buf, size_t len,
                                  wl_ping_batch **out, uint64_t *batch_id)
{
    wl_envelope_msg *env = warmline__v1__envelope__unpack(NULL, len, buf);
    enum wl_reason r = WL_REJECT_NONE;
    const uint8_t *payload;
    size_t plen;

    *out = NULL;
    if (env == NULL)
        return WL_REJECT_ENVELOPE_DECODE;
    *batch_id = env->batch_id;
    if (env->version != WL_ENVELOPE_VERSION) {
        r = WL_REJECT_ENVELOPE_VERSION;
        goto done;
    }
    switch ((int)env->compression) {
    case WARMLINE__V1__ENVELOPE__COMPRESSION__NONE:
        payload = env->payload.data;
        plen = env->payload.len;
        if (plen > d->max_inflated) {
            r = WL_REJECT_INFLATE_TOO_LARGE;
            goto done;
        }
        break;
    case WARMLINE__V1__ENVELOPE__COMPRESSION__ZLIB:
        r = inflate_capped(d, env->payload.data, env->payload.len, &plen);
        if (r != WL_REJECT_NONE)
            goto done;
        payload = d->buf;
        break;
    default:
        r = WL_REJECT_ENVELOPE_COMPRESSION;
        goto done;
    }
    *out = warmline__v1__ping_batch__unpack(NULL, plen, payload ? payload : (const uint8_t *)"");
    if (*out == NULL) {
        r = WL_REJECT_BATCH_DECODE;
    } else if ((*out)->n_pings > d->max_pings) {
        wl_ping_batch_free(*out);
        *out = NULL;
        r = WL_REJECT_BATCH_TOO_MANY_PINGS;
    }
done:
    warmline__v1__envelope__free_unpacked(env, NULL);
    return r;
}

void wl_ping_batch_free(wl_ping_batch *batch)
{
    if (batch != NULL)
        warmline__v1__ping_batch__free_unpacked(batch, NULL);
}

int wl_envelope_encode(const wl_ping_batch *batch, int compress, uint64_t batch_id,
                       uint8_t **out, size_t *outlen)
{
    wl_envelope_msg env = WARMLINE__V1__ENVELOPE__INIT;
    size_t plen = warmline__v1__ping_batch__get_packed_size(batch);
    uint8_t *payload = malloc(plen ? plen : 1);
    uint8_t *zbuf = NULL;
    int rc = -ENOMEM;

    if (payload == NULL)
        return -ENOMEM;
    warmline__v1__ping_batch__pack(batch, payload);
    env.version = WL_ENVELOPE_VERSION;
    env.batch_id = batch_id;
    env.payload.data = payload;
    env.payload.len = plen;
    if (compress) {
        uLongf zlen = compressBound(plen);
        zbuf = malloc(zlen);
        if (zbuf == NULL)
            goto fail;
        if (compress2(zbuf, &zlen, payload, plen, Z_DEFAULT_COMPRESSION) != Z_OK) {
            rc = -EIO;
            goto fail;
        }
        env.compression = WARMLINE__V1__ENVELOPE__COMPRESSION__ZLIB;
        env.payload.data = zbuf;
        env.payload.len = zlen;
    }
    *outlen = warmline__v1__envelope__get_packed_size(&env);
    *out = malloc(*outlen ? *outlen : 1);
    if (*out == NULL)
        goto fail;
    warmline__v1__envelope__pack(&env, *out);
    rc = 0;
fail:
    free(payload);
    free(zbuf);
    return rc;
}
