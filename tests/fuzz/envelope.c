/* Fuzz target: envelope decode and inflate (collector/envelope.c).
 *
 * Input: one Envelope as it arrives in a datagram or a TCP frame. It is
 * decoded twice with the same decoder (the ingest loop reuses its zlib
 * stream and buffer), which must agree. A batch that decodes is packed
 * again, as the writer stores its pings, compressed and not: that must
 * decode to as many pings, and packing it once more must give the same
 * bytes (a stored ping that no longer decodes is lost data). The caps are
 * smaller than the defaults so that inflating to the cap stays fast. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "fuzz.h"

#define MAX_INFLATED (256 * 1024)
#define MAX_PINGS 1000

static void check_rejects(const wl_ping_batch *b, const enum wl_reason *rejects)
{
    if (rejects == NULL)
        return;
    for (size_t i = 0; i < b->n_pings; i++) {
        FUZZ_CHECK(rejects[i] == WL_REJECT_NONE || rejects[i] == WL_REJECT_STRING_HAS_NUL ||
                   rejects[i] == WL_REJECT_INSTALL_ID_NOT_PRINTABLE ||
                   rejects[i] == WL_REJECT_TOO_MANY_FEATURES ||
                   rejects[i] == WL_REJECT_PING_TOO_MANY_FIELDS);
        if (rejects[i] == WL_REJECT_TOO_MANY_FEATURES ||
            rejects[i] == WL_REJECT_PING_TOO_MANY_FIELDS)
            FUZZ_CHECK(b->pings[i]->install_id[0] == '\0' && b->pings[i]->n_features == 0 &&
                       b->pings[i]->base.n_unknown_fields == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wl_decoder d;
    wl_ping_batch *b1 = NULL, *b2 = NULL, *b3 = NULL;
    enum wl_reason *rej1 = NULL, *rej2 = NULL, *rej3 = NULL;
    uint64_t id1 = 0, id2 = 0, id3 = 0;

    wl_decoder_init(&d, MAX_INFLATED, MAX_PINGS);
    enum wl_reason r1 = wl_envelope_decode(&d, data, size, &b1, &id1, &rej1);
    enum wl_reason r2 = wl_envelope_decode(&d, data, size, &b2, &id2, &rej2);
    FUZZ_CHECK(r1 == r2);
    FUZZ_CHECK(r1 != WL_REJECT_BATCH_OVER_BUDGET);
    FUZZ_CHECK(d.peak_bytes <= 2 * WL_DECODE_FIXED + 2 * size + MAX_INFLATED +
                                   MAX_PINGS * WL_DECODE_PER_PING +
                                   MAX_INFLATED / 2 * WL_DECODE_PER_FIELD);
    FUZZ_CHECK(r1 == WL_REJECT_ENVELOPE_DECODE || id1 == id2);
    FUZZ_CHECK((r1 == WL_REJECT_NONE) == (b1 != NULL));
    FUZZ_CHECK((b1 == NULL) == (b2 == NULL));
    FUZZ_CHECK((rej1 == NULL) == (rej2 == NULL));
    if (b1 != NULL) {
        FUZZ_CHECK(b1->n_pings <= MAX_PINGS);
        FUZZ_CHECK(d.batch_bytes > 0);
        FUZZ_CHECK(b1->n_pings == b2->n_pings);
        check_rejects(b1, rej1);
        /* what the writer stores is this batch packed again: it must
         * decode, and packing that gives the same bytes */
        for (int compress = 0; compress <= 1; compress++) {
            uint8_t *enc = NULL, *enc2 = NULL;
            size_t enclen = 0, enc2len = 0;
            if (wl_envelope_encode(b1, compress, id1, &enc, &enclen) != 0)
                continue;
            r1 = wl_envelope_decode(&d, enc, enclen, &b3, &id3, &rej3);
            FUZZ_CHECK(r1 == WL_REJECT_NONE);
            FUZZ_CHECK(id3 == id1);
            FUZZ_CHECK(b3->n_pings == b1->n_pings);
            if (wl_envelope_encode(b3, compress, id3, &enc2, &enc2len) == 0 && !compress)
                FUZZ_CHECK(enc2len == enclen && memcmp(enc, enc2, enclen) == 0);
            wl_ping_batch_free(b3);
            b3 = NULL;
            free(rej3);
            rej3 = NULL;
            free(enc);
            free(enc2);
        }
    }
    wl_ping_batch_free(b1);
    wl_ping_batch_free(b2);
    free(rej1);
    free(rej2);
    wl_decoder_free(&d);
    return 0;
}
