/* Envelopes: bytes in, a decoded PingBatch out (and the reverse for
 * senders). Knows versions, compression and size caps; knows nothing of
 * sockets or storage. */
#ifndef WL_ENVELOPE_H
#define WL_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "ping.h"

#define WL_ENVELOPE_VERSION 1

/* Reusable decoding state: one zlib stream and one inflate buffer. */
struct wl_decoder {
    z_stream zs;
    int zs_ready;
    uint8_t *buf;
    size_t cap;
    size_t max_inflated;
    size_t max_pings;
};

void wl_decoder_init(struct wl_decoder *d, size_t max_inflated, size_t max_pings);
void wl_decoder_free(struct wl_decoder *d);

/* Decodes one serialized Envelope. On WL_REJECT_NONE *out holds the batch
 * (free it with wl_ping_batch_free). *batch_id is set whenever the envelope
 * itself decoded, so even a rejection can be acked with the sender's id.
 * A zlib payload is inflated into the decoder's buffer and never past
 * max_inflated bytes.
 *
 * protobuf-c hands strings over as C strings, so a NUL byte inside one
 * would silently cut it. The wire is scanned for that: when a ping has a
 * NUL in a string field, *ping_rejects (else NULL) is a malloc'd array, one
 * reason per ping (WL_REJECT_NONE for the clean ones). */
enum wl_reason wl_envelope_decode(struct wl_decoder *d, const uint8_t *buf, size_t len,
                                  wl_ping_batch **out, uint64_t *batch_id,
                                  enum wl_reason **ping_rejects);

void wl_ping_batch_free(wl_ping_batch *batch);

/* Serializes batch into a malloc'd Envelope (zlib-compressed when compress).
 * Returns 0 or -ENOMEM/-EIO. */
int wl_envelope_encode(const wl_ping_batch *batch, int compress, uint64_t batch_id,
                       uint8_t **out, size_t *outlen);

#endif
