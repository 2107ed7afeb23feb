#include "envelope.h"

#include <errno.h>
#include <malloc.h>
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
    free(d->walk_at);
    wl_arena_free(d->scratch);
    wl_arena_spares_free(&d->spares);
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

/* ---- arenas ---- */

/* A decoded batch lives in an arena whose first chunk begins with it (a
 * copy of the top-level struct protobuf-c made), the arena right after:
 * freeing the batch is freeing the arena. */
#define BATCH_PREFIX sizeof(wl_ping_batch)

/* The scratch arena's first chunk, kept between decodes: an Envelope in a
 * datagram, with its payload's copy, fits. */
#define SCRATCH_FIRST ((size_t)72 * 1024)

/* The arena of a batch wl_envelope_decode made, or NULL for a batch built
 * with malloc: those are the size of the struct (malloc_usable_size says
 * so), an arena's first chunk is larger and says what it is. */
static struct wl_arena *arena_of_batch(wl_ping_batch *batch)
{
    if (malloc_usable_size(batch) < BATCH_PREFIX + sizeof(struct wl_arena))
        return NULL;
    struct wl_arena *a = wl_arena_of_prefix(batch, BATCH_PREFIX);
    return a->magic == WL_ARENA_MAGIC && a->first == (void *)batch ? a : NULL;
}

/* ---- the wire walk ---- */

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

/* Field numbers run from 1 to 2^29 - 1; anything else does not decode.
 * (protobuf-c accepts a field number 0 written as a multi-byte tag, 0x80
 * 0x00, and keeps it as an unknown field that it then packs as 0x00, a tag
 * its own decoder refuses: a stored ping carrying one would never decode
 * again, in dumps, exports or the installs loaded at start.) */
#define FIELD_NUMBER_MAX 536870911u

/* Skips one field's value after its tag: 0, or -1 when the wire ends
 * inside it or the wire type is not one protobuf-c decodes. For a length-
 * delimited value, *value and *vlen say where it is. */
static int skip_value(const uint8_t **p, const uint8_t *end, uint64_t tag,
                      const uint8_t **value, uint64_t *vlen)
{
    uint64_t v;
    *value = NULL;
    *vlen = 0;
    switch (tag & 7) {
    case 0: return wire_varint(p, end, &v);
    case 1: if (end - *p < 8) return -1; *p += 8; return 0;
    case 5: if (end - *p < 4) return -1; *p += 4; return 0;
    case 2:
        if (wire_varint(p, end, &v) != 0 || v > (uint64_t)(end - *p))
            return -1;
        *value = *p;
        *vlen = v;
        *p += v;
        return 0;
    default: return -1;
    }
}

/* What one Ping's wire holds. */
struct ping_walk {
    size_t fields;        /* every field, features and unknown ones included */
    size_t features;
    enum wl_reason nul;   /* a string field with a NUL byte, or WL_REJECT_NONE */
};

#define FEATURES_FIELD 25

static int walk_ping(const uint8_t *p, const uint8_t *end, struct ping_walk *pw)
{
    const ProtobufCMessageDescriptor *desc = &warmline__v1__ping__descriptor;
    uint64_t tag, vlen;
    const uint8_t *value;

    pw->fields = pw->features = 0;
    pw->nul = WL_REJECT_NONE;
    while (p < end) {
        if (wire_varint(&p, end, &tag) != 0 || (tag >> 3) < 1 || (tag >> 3) > FIELD_NUMBER_MAX)
            return -1;
        if (skip_value(&p, end, tag, &value, &vlen) != 0)
            return -1;
        unsigned num = (unsigned)(tag >> 3);
        pw->fields++;
        if (num == FEATURES_FIELD)
            pw->features++;
        if (value != NULL && pw->nul == WL_REJECT_NONE && memchr(value, 0, vlen) != NULL) {
            const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(desc, num);
            if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING)
                pw->nul = num == 1 ? WL_REJECT_INSTALL_ID_NOT_PRINTABLE : WL_REJECT_STRING_HAS_NUL;
        }
    }
    return 0;
}

/* What the walk of a PingBatch found. */
struct batch_walk {
    size_t pings;
    size_t fields;           /* of the pings kept */
    size_t own_fields;       /* the batch's own, other than pings */
    size_t len;              /* the payload's length once rejected pings are emptied */
    enum wl_reason *rejects; /* per ping (malloc'd, rejects_cap long), or NULL */
    size_t rejects_cap;
    uint32_t *at;            /* per ping: its offset and length in the walked payload */
};

static int mark_reject(struct batch_walk *bw, size_t i, enum wl_reason r)
{
    if (i >= bw->rejects_cap) {
        size_t ncap = bw->rejects_cap ? bw->rejects_cap : 16;
        while (ncap <= i)
            ncap *= 2;
        enum wl_reason *n = realloc(bw->rejects, ncap * sizeof *n);
        if (n == NULL)
            return -1;
        for (size_t k = bw->rejects_cap; k < ncap; k++)
            n[k] = WL_REJECT_NONE;
        bw->rejects = n;
        bw->rejects_cap = ncap;
    }
    bw->rejects[i] = r;
    return 0;
}

/* The pings of a PingBatch's wire, counted in a loop that does nothing
 * else, stopping at max + 1: an envelope of too many pings is refused for
 * little more than what inflating it cost. Stops early (returning what it
 * counted) at anything but a well-formed field: the walk judges that. */
static size_t count_pings(const uint8_t *buf, size_t len, size_t max)
{
    const uint8_t *p = buf, *end = buf + len, *value;
    uint64_t tag, vlen;
    size_t n = 0;
    while (p < end && n <= max) {
        if (p[0] == 0x0a && end - p >= 2 && p[1] < 0x80) { /* the usual ping: short */
            if ((size_t)(end - p) - 2 < p[1])
                break;
            p += 2 + p[1];
            n++;
            continue;
        }
        if (wire_varint(&p, end, &tag) != 0 || skip_value(&p, end, tag, &value, &vlen) != 0 ||
            ((tag >> 3) == 1 && value == NULL))
            break;
        n += (tag >> 3) == 1;
    }
    return n;
}

/* An empty Ping (field 1, length 0): what a rejected ping becomes. */
static const uint8_t empty_ping[2] = {0x0a, 0x00};

/* Walks a PingBatch's wire (field 1: the pings, in order) before anything
 * is decoded. A ping rejected for its features or fields is replaced in
 * place by an empty ping (shorter: the bytes after it move down), so that
 * protobuf-c never decodes it and the pings keep their indexes. */
static enum wl_reason walk_batch(struct wl_decoder *d, uint8_t *buf, size_t len,
                                 struct batch_walk *bw)
{
    const uint8_t *p = buf, *end = buf + len;
    uint8_t *w = buf;
    uint64_t tag, vlen;
    const uint8_t *value;

    memset(bw, 0, sizeof *bw);
    size_t counted = count_pings(buf, len, d->max_pings);
    if (counted > d->max_pings)
        return WL_REJECT_BATCH_TOO_MANY_PINGS;
    if (counted > d->walk_cap) { /* at most max_pings: counted first */
        uint32_t *at = realloc(d->walk_at, counted * 2 * sizeof *at);
        if (at == NULL)
            return WL_REJECT_BATCH_OVER_BUDGET;
        d->walk_at = at;
        d->walk_cap = counted;
    }
    bw->at = d->walk_at;
    while (p < end) {
        const uint8_t *start = p;
        enum wl_reason r = WL_REJECT_NONE;
        if (wire_varint(&p, end, &tag) != 0 || (tag >> 3) < 1 || (tag >> 3) > FIELD_NUMBER_MAX)
            return WL_REJECT_BATCH_DECODE;
        if (skip_value(&p, end, tag, &value, &vlen) != 0)
            return WL_REJECT_BATCH_DECODE;
        if ((tag >> 3) != 1) {
            /* a field of a later PingBatch, kept as unknown: a few at most */
            if (++bw->own_fields > WL_BATCH_FIELDS_MAX)
                return WL_REJECT_BATCH_DECODE;
        } else {
            struct ping_walk pw;
            if (value == NULL) /* a Ping must be length-delimited */
                return WL_REJECT_BATCH_DECODE;
            /* count_pings stops at a malformed field, which the walk
             * rejects whole, so a well-formed batch has no more than it counted */
            if (++bw->pings > counted)
                return WL_REJECT_BATCH_DECODE;
            if (walk_ping(value, value + vlen, &pw) != 0)
                return WL_REJECT_BATCH_DECODE;
            if (pw.features > WL_FEATURES_MAX)
                r = WL_REJECT_TOO_MANY_FEATURES;
            else if (pw.fields > WL_PING_FIELDS_MAX)
                r = WL_REJECT_PING_TOO_MANY_FIELDS;
            else
                bw->fields += pw.fields;
            enum wl_reason flag = r != WL_REJECT_NONE ? r : pw.nul;
            if (flag != WL_REJECT_NONE && mark_reject(bw, bw->pings - 1, flag) != 0)
                return WL_REJECT_BATCH_OVER_BUDGET;
        }
        if (r != WL_REJECT_NONE) {
            memcpy(w, empty_ping, sizeof empty_ping); /* a ping of 2+ fields was longer */
            bw->at[2 * (bw->pings - 1)] = (uint32_t)(w - buf);
            bw->at[2 * (bw->pings - 1) + 1] = 0;
            w += sizeof empty_ping;
        } else {
            if ((tag >> 3) == 1) { /* where its bytes will be, once moved down */
                bw->at[2 * (bw->pings - 1)] = (uint32_t)((size_t)(w - buf) + (size_t)(value - start));
                bw->at[2 * (bw->pings - 1) + 1] = (uint32_t)vlen;
            }
            if (w != start)
                memmove(w, start, (size_t)(p - start));
            w += p - start;
        }
    }
    bw->len = (size_t)(w - buf);
    return WL_REJECT_NONE;
}

/* The batch's decode budget, from its walk. */
static size_t batch_budget(const struct batch_walk *bw)
{
    return WL_DECODE_FIXED + 2 * bw->len + bw->pings * (WL_DECODE_PER_PING + WL_DECODE_BYTES_PER_PING) +
           (bw->fields + bw->own_fields) * WL_DECODE_PER_FIELD;
}

/* The first chunk of a batch's arena: what protobuf-c will ask for, from
 * the walk (each ping's struct and its slot in the array; each field's
 * rounding and pointer; the strings' bytes), so that
 * one chunk usually holds the batch; never more than the budget. */
static size_t batch_first_chunk(const struct batch_walk *bw, size_t budget)
{
    size_t n = 2 * bw->len + bw->pings * (sizeof(wl_ping) + 16 + WL_DECODE_BYTES_PER_PING) +
               (bw->fields + bw->own_fields) * 8 + 256;
    return n < budget ? n : budget;
}

enum wl_reason wl_envelope_decode(struct wl_decoder *d, const uint8_t *buf, size_t len,
                                  wl_ping_batch **out, uint64_t *batch_id,
                                  enum wl_reason **ping_rejects)
{
    struct batch_walk bw = {0};
    struct wl_arena *ba = NULL; /* the batch's, until *out holds it */
    wl_ping_batch *batch;
    wl_envelope_msg *env;
    enum wl_reason r = WL_REJECT_NONE;
    uint8_t *payload;
    size_t plen;

    *out = NULL;
    *ping_rejects = NULL;
    d->bytes = NULL;
    d->peak_bytes = d->batch_bytes = 0;
    d->over_budget = 0;
    if (d->scratch == NULL && (d->scratch = wl_arena_new(0, SCRATCH_FIRST, 0)) == NULL)
        return WL_REJECT_ENVELOPE_DECODE;
    wl_arena_reset(d->scratch, WL_DECODE_FIXED + 2 * len);
    ProtobufCAllocator scratch = wl_arena_allocator(d->scratch);
    env = warmline__v1__envelope__unpack(&scratch, len, buf);
    if (env == NULL) {
        r = WL_REJECT_ENVELOPE_DECODE;
        goto done;
    }
    *batch_id = env->batch_id;
    if (env->version != WL_ENVELOPE_VERSION) {
        r = WL_REJECT_ENVELOPE_VERSION;
        goto done;
    }
    switch ((int)env->compression) {
    case WARMLINE__V1__ENVELOPE__COMPRESSION__NONE:
        payload = env->payload.data; /* our copy: the walk may rewrite it */
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
    if (plen == 0)
        payload = (uint8_t *)"";
    r = walk_batch(d, payload, plen, &bw);
    if (r != WL_REJECT_NONE)
        goto done;
    size_t budget = batch_budget(&bw);
    ba = wl_arena_new(BATCH_PREFIX, batch_first_chunk(&bw, budget), budget);
    if (ba == NULL) {
        r = WL_REJECT_BATCH_OVER_BUDGET;
        goto done;
    }
    ba->spares = &d->spares; /* only while the loop decodes: the batch may go elsewhere */
    ProtobufCAllocator alloc = wl_arena_allocator(ba);
    batch = warmline__v1__ping_batch__unpack(&alloc, bw.len, payload);
    ba->spares = NULL;
    if (batch == NULL) {
        r = ba->over_budget ? WL_REJECT_BATCH_OVER_BUDGET : WL_REJECT_BATCH_DECODE;
        goto done;
    }
    if (batch->n_pings != bw.pings) { /* the walk and protobuf-c disagree: trust neither */
        r = WL_REJECT_BATCH_DECODE;
        goto done;
    }
    /* the pings as they came, kept with the batch (within its budget) */
    struct wl_ping_bytes *bytes = bw.pings ? wl_arena_alloc(ba, bw.pings * sizeof *bytes) : NULL;
    uint8_t *copy = bw.len ? wl_arena_alloc(ba, bw.len) : NULL;
    if ((bw.pings && bytes == NULL) || (bw.len && copy == NULL)) {
        r = WL_REJECT_BATCH_OVER_BUDGET;
        goto done;
    }
    if (bw.len)
        memcpy(copy, payload, bw.len);
    for (size_t i = 0; i < bw.pings; i++)
        bytes[i] = (struct wl_ping_bytes){copy + bw.at[2 * i], bw.at[2 * i + 1]};
    if (bw.rejects != NULL) {
        if (bw.pings > bw.rejects_cap && mark_reject(&bw, bw.pings - 1, WL_REJECT_NONE) != 0) {
            r = WL_REJECT_BATCH_OVER_BUDGET;
            goto done;
        }
        *ping_rejects = bw.rejects; /* at least n_pings long */
        bw.rejects = NULL;
    }
    /* the batch moves to the head of its arena's first chunk: its handle */
    memcpy(wl_arena_prefix(ba), batch, sizeof *batch);
    *out = wl_arena_prefix(ba);
    d->bytes = bytes;
    d->batch_bytes = ba->held;
done:
    d->peak_bytes = d->scratch->peak;
    d->over_budget = d->scratch->over_budget;
    if (ba != NULL) {
        d->peak_bytes += ba->peak;
        d->over_budget |= ba->over_budget;
        if (*out == NULL)
            wl_arena_free(ba);
    }
    free(bw.rejects);
    wl_arena_reset(d->scratch, 0); /* a large Envelope's chunks go now */
    return r;
}

void wl_ping_batch_free(wl_ping_batch *batch)
{
    if (batch == NULL)
        return;
    struct wl_arena *a = arena_of_batch(batch);
    if (a != NULL)
        wl_arena_free(a);
    else
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
