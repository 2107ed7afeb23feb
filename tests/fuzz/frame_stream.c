/* Fuzz target: the TCP frame stream (collector/framing.c).
 *
 * Input: byte 0 picks the frame limit, byte 1 the size of the reads the
 * stream arrives in, the rest is the stream. The stream is cut into frames
 * twice, as the ingest loop does (parse what has arrived, consume whole
 * frames, wait for more): once in reads of that size, once in one read.
 * Both must yield the same frames and end the same way, and every frame
 * must lie inside the bytes that had arrived and respect the limit. */
#include <stdint.h>
#include <string.h>

#include "framing.h"
#include "fuzz.h"

#define MAX_FRAMES 4096

struct cut {
    size_t off[MAX_FRAMES]; /* body offset of each frame in the stream */
    size_t len[MAX_FRAMES];
    size_t n;
    enum wl_frame_status last;
};

static void cut_stream(const uint8_t *s, size_t size, size_t step, uint64_t max, struct cut *c)
{
    size_t start = 0, arrived = 0;

    c->n = 0;
    c->last = WL_FRAME_NEED_MORE;
    while (arrived < size) {
        arrived = size - arrived < step ? size : arrived + step;
        for (;;) {
            size_t hdr = 0, len = 0;
            enum wl_frame_status st = wl_frame_parse(s + start, arrived - start, max, &hdr, &len);
            c->last = st;
            if (st != WL_FRAME_READY)
                break;
            FUZZ_CHECK(hdr >= 1 && hdr <= WL_VARINT_MAX);
            FUZZ_CHECK(len <= max);
            FUZZ_CHECK(hdr + len <= arrived - start);
            /* the shortest encoding of len is never longer than its header */
            uint8_t enc[WL_VARINT_MAX];
            FUZZ_CHECK(wl_varint_encode(len, enc) <= hdr);
            if (c->n < MAX_FRAMES) {
                c->off[c->n] = start + hdr;
                c->len[c->n] = len;
            }
            c->n++;
            start += hdr + len;
        }
        if (c->last != WL_FRAME_NEED_MORE)
            return; /* the connection is closed */
        /* waiting for more: a length prefix of WL_VARINT_MAX bytes or more
         * is complete or bad, never "need more" */
        if (arrived - start >= WL_VARINT_MAX) {
            int complete = 0;
            for (size_t i = 0; i < WL_VARINT_MAX; i++)
                complete |= (s[start + i] & 0x80) == 0;
            FUZZ_CHECK(complete);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct cut chunked, whole;
    static const uint64_t limits[] = {0, 1, 127, 128, 300, 16384, 1 << 20, UINT64_MAX};

    if (size < 2)
        return 0;
    uint64_t max = limits[data[0] % (sizeof limits / sizeof limits[0])];
    size_t step = (size_t)data[1] % 16 + 1;
    data += 2;
    size -= 2;

    cut_stream(data, size, step, max, &chunked);
    cut_stream(data, size, size ? size : 1, max, &whole);
    FUZZ_CHECK(chunked.n == whole.n);
    FUZZ_CHECK(chunked.last == whole.last);
    size_t n = chunked.n < MAX_FRAMES ? chunked.n : MAX_FRAMES;
    FUZZ_CHECK(memcmp(chunked.off, whole.off, n * sizeof chunked.off[0]) == 0);
    FUZZ_CHECK(memcmp(chunked.len, whole.len, n * sizeof chunked.len[0]) == 0);

    /* varint round trip on the first 8 bytes as a number */
    uint64_t v = 0;
    memcpy(&v, data, size < sizeof v ? size : sizeof v);
    uint8_t enc[WL_VARINT_MAX + 1];
    size_t hdr = 0, len = 0;
    size_t elen = wl_varint_encode(v, enc);
    FUZZ_CHECK(elen >= 1 && elen <= WL_VARINT_MAX);
    enum wl_frame_status st = wl_frame_parse(enc, elen, UINT64_MAX, &hdr, &len);
    FUZZ_CHECK(v != 0 ? st == WL_FRAME_NEED_MORE : st == WL_FRAME_READY);
    /* a length at the limit waits for its body; one over it is refused */
    st = wl_frame_parse(enc, elen, v, &hdr, &len);
    FUZZ_CHECK(st == (v == 0 ? WL_FRAME_READY : WL_FRAME_NEED_MORE));
    if (v > 0)
        FUZZ_CHECK(wl_frame_parse(enc, elen, v - 1, &hdr, &len) == WL_FRAME_TOO_LARGE);
    return 0;
}
