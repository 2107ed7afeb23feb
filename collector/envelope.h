/* Envelopes: bytes in, a decoded PingBatch out (and the reverse for
 * senders). Knows versions, compression and size caps; knows nothing of
 * sockets or storage. */
#ifndef WL_ENVELOPE_H
#define WL_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "arena.h"
#include "ping.h"

#define WL_ENVELOPE_VERSION 1

/* What decoding may cost. The PingBatch's wire is walked once before any
 * allocation: pings are counted (over max_pings the envelope is rejected
 * whole, nothing decoded), and so are each ping's fields and features. A
 * ping with more than WL_FEATURES_MAX features, or more fields (features
 * included) than WL_PING_FIELDS_MAX, is rejected alone and never decoded:
 * no valid ping has that many, since a field appears once (twice allows an
 * encoder that repeats one) and features are capped.
 *
 * The rest is decoded by protobuf-c into arenas (arena.h) that count the
 * bytes they hand out and refuse past a budget computed from the walk:
 * WL_DECODE_FIXED + twice the inflated size (protobuf-c's copies, and the
 * pings' bytes kept as they came: d->bytes) + WL_DECODE_PER_PING and
 * WL_DECODE_BYTES_PER_PING per ping + WL_DECODE_PER_FIELD per field. The
 * constants cover protobuf-c's worst case per shape (an empty ping, an
 * empty string, an unknown field; see tests/unit/test_envelope.c), so that
 * the budget refuses only what the
 * walk failed to foresee (batch_over_budget). The Envelope itself is
 * decoded into the decoder's scratch arena, reset per decode, under
 * WL_DECODE_FIXED + 2 x its size.
 *
 * So a batch inflating to S bytes is counted at most 64 KiB + 2 S + 336 B
 * x its pings + 64 B x its fields, every field being 2 bytes or more on the
 * wire and pings at most max_pings of 114 fields (with 64 of the batch's
 * own): 93 MB at the defaults (8 MiB, 10,000 pings) for the costliest
 * shape, about 11 x max_inflated_bytes. What an arena changes: a count is
 * no longer malloc's chunk sizes, freed as protobuf-c frees, but what
 * protobuf-c asked for rounded up to 8 bytes, never given back during the
 * decode (protobuf-c's own scratch and a repeated field's earlier values
 * stay counted; an empty string counts 8 bytes where malloc took 32); and
 * what a batch holds is its count plus chunk headers and tails, under 8/7
 * of it plus one chunk (batch_bytes says exactly). An envelope rejected
 * whole holds nothing decoded (its own copy, in the scratch arena, and the
 * decoder's inflate buffer, at most max_inflated_bytes, kept for the next
 * one). */
#define WL_PING_FIELDS_MAX (2 * 25 + WL_FEATURES_MAX) /* Ping has 25 fields */
#define WL_BATCH_FIELDS_MAX 64 /* PingBatch fields other than pings (a later schema's):
                                  more and the envelope is rejected, batch_decode */
#define WL_DECODE_FIXED ((size_t)64 * 1024)
#define WL_DECODE_PER_PING ((size_t)320)
#define WL_DECODE_PER_FIELD ((size_t)64)
#define WL_DECODE_BYTES_PER_PING sizeof(struct wl_ping_bytes) /* each ping's slice of the copy */

/* Reusable decoding state: one zlib stream, one inflate buffer, the scratch
 * arena the Envelope decodes into, and the figures of the last decode. */
struct wl_decoder {
    z_stream zs;
    int zs_ready;
    uint8_t *buf;
    size_t cap;
    size_t max_inflated;
    size_t max_pings;
    struct wl_arena *scratch; /* the Envelope's; its first chunk kept between decodes */
    struct wl_arena_spares spares; /* the parser's scratch chunks, reused by the next */

    uint32_t *walk_at;  /* the walk's (offset, length) of each ping in the payload */
    size_t walk_cap;    /* pairs walk_at holds */

    size_t peak_bytes;  /* out: what the arenas counted during the last decode */
    size_t batch_bytes; /* out: what the last decoded batch holds (0: none) */
    int over_budget;    /* an arena refused during the last decode */
    /* out: each ping of the last decoded batch as it came on the wire (a
     * copy in the batch's arena, as long-lived as the batch; length 0 for
     * a ping the walk rejected), or NULL: the writer stores these bytes
     * rather than packing the decoded ping again (aggregate.c) */
    const struct wl_ping_bytes *bytes;
};

void wl_decoder_init(struct wl_decoder *d, size_t max_inflated, size_t max_pings);
void wl_decoder_free(struct wl_decoder *d);

/* Decodes one serialized Envelope. On WL_REJECT_NONE *out holds the batch
 * (free it with wl_ping_batch_free, on any thread) and d->batch_bytes what
 * it holds. *batch_id is set whenever the envelope itself decoded, so even
 * a rejection can be acked with the sender's id. A zlib payload is inflated
 * into the decoder's buffer and never past max_inflated bytes.
 *
 * Pings rejected by the walk (too many features or fields) come out as
 * empty pings, and protobuf-c hands strings over as C strings, so a NUL
 * byte inside one would silently cut it: the walk flags those too. When a
 * ping is flagged, *ping_rejects (else NULL) is a malloc'd array, one
 * reason per ping (WL_REJECT_NONE for the clean ones), of *out->n_pings. */
enum wl_reason wl_envelope_decode(struct wl_decoder *d, const uint8_t *buf, size_t len,
                                  wl_ping_batch **out, uint64_t *batch_id,
                                  enum wl_reason **ping_rejects);

/* Frees a batch: one decoded by wl_envelope_decode (its arena, whose first
 * chunk begins with the batch, all at once) or one built with malloc and
 * protobuf-c's own layout (rudder.c, http_ingest_security.c), field by
 * field. On any thread; NULL is fine. */
void wl_ping_batch_free(wl_ping_batch *batch);

/* Serializes batch into a malloc'd Envelope (zlib-compressed when compress).
 * Returns 0 or -ENOMEM/-EIO. */
int wl_envelope_encode(const wl_ping_batch *batch, int compress, uint64_t batch_id,
                       uint8_t **out, size_t *outlen);

#endif
