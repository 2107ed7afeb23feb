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

static int wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0)
            return 0;
    }
    return -1;
}

/* Walks one Ping's wire bytes: the reason when a string field holds a NUL. */
static enum wl_reason scan_ping_strings(const uint8_t *p, const uint8_t *end)
{
    const ProtobufCMessageDescriptor *desc = &warmline__v1__ping__descriptor;
    uint64_t tag, v;

    while (p < end) {
        if (wire_varint(&p, end, &tag) != 0)
            return WL_REJECT_NONE; /* protobuf-c judged the wire; nothing more here */
        switch (tag & 7) {
        case 0: if (wire_varint(&p, end, &v) != 0) return WL_REJECT_NONE; break;
        case 1: p += 8; break;
        case 5: p += 4; break;
        case 2: {
            if (wire_varint(&p, end, &v) != 0 || v > (uint64_t)(end - p))
                return WL_REJECT_NONE;
            const ProtobufCFieldDescriptor *f =
                protobuf_c_message_descriptor_get_field(desc, (unsigned)(tag >> 3));
            if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING && memchr(p, 0, v) != NULL)
                return (tag >> 3) == 1 ? WL_REJECT_INSTALL_ID_NOT_PRINTABLE
                                       : WL_REJECT_STRING_HAS_NUL;
            p += v;
            break;
        }
        default: return WL_REJECT_NONE;
        }
    }
    return WL_REJECT_NONE;
}

/* protobuf-c accepts a field number 0 written as a multi-byte tag (0x80
 * 0x00) and keeps it as an unknown field, which it then packs as 0x00: a
 * tag its own decoder refuses. A stored ping carrying one would never
 * decode again (dump, export, and the installs the writer loads at start).
 * Field numbers run from 1 to 2^29 - 1; anything else does not decode. */
static int unknown_fields_valid(const ProtobufCMessage *m)
{
    for (unsigned i = 0; i < m->n_unknown_fields; i++) {
        uint32_t tag = m->unknown_fields[i].tag;
        if (tag < 1 || tag > 536870911u)
            return 0;
    }
    return 1;
}

static int batch_fields_valid(const wl_ping_batch *b)
{
    if (!unknown_fields_valid(&b->base))
        return 0;
    for (size_t i = 0; i < b->n_pings; i++) {
        if (!unknown_fields_valid(&b->pings[i]->base))
            return 0;
    }
    return 1;
}

/* Walks a PingBatch's wire bytes (field 1: the pings, in order). */
static enum wl_reason *scan_batch_strings(const uint8_t *p, size_t len, size_t n_pings)
{
    const uint8_t *end = p + len;
    enum wl_reason *reasons = NULL;
    size_t i = 0;
    uint64_t tag, v;

    while (p < end && i < n_pings) {
        if (wire_varint(&p, end, &tag) != 0)
            break;
        if ((tag & 7) == 2) {
            if (wire_varint(&p, end, &v) != 0 || v > (uint64_t)(end - p))
                break;
            if ((tag >> 3) == 1) {
                enum wl_reason r = scan_ping_strings(p, p + v);
                if (r != WL_REJECT_NONE) {
                    if (reasons == NULL) {
                        reasons = malloc(n_pings * sizeof *reasons);
                        if (reasons == NULL)
                            return NULL;
                        for (size_t k = 0; k < n_pings; k++)
                            reasons[k] = WL_REJECT_NONE;
                    }
                    reasons[i] = r;
                }
                i++;
            }
            p += v;
        } else if ((tag & 7) == 0) {
            if (wire_varint(&p, end, &v) != 0)
                break;
        } else if ((tag & 7) == 1) {
            p += 8;
        } else if ((tag & 7) == 5) {
            p += 4;
        } else {
            break;
        }
    }
    return reasons;
}

enum wl_reason wl_envelope_decode(struct wl_decoder *d, const uint8_t *buf, size_t len,
                                  wl_ping_batch **out, uint64_t *batch_id,
                                  enum wl_reason **ping_rejects)
{
    wl_envelope_msg *env = warmline__v1__envelope__unpack(NULL, len, buf);
    enum wl_reason r = WL_REJECT_NONE;
    const uint8_t *payload;
    size_t plen;

    *out = NULL;
    *ping_rejects = NULL;
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
    } else if (!batch_fields_valid(*out)) {
        wl_ping_batch_free(*out);
        *out = NULL;
        r = WL_REJECT_BATCH_DECODE;
    } else if (plen > 0 && memchr(payload, 0, plen) != NULL) {
        *ping_rejects = scan_batch_strings(payload, plen, (*out)->n_pings);
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
