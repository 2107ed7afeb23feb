#include "framing.h"

enum wl_frame_status wl_frame_parse(const uint8_t *buf, size_t avail, uint64_t max, size_t *hdr,
                                    size_t *len)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < avail && i < WL_VARINT_MAX; i++) {
        uint8_t b = buf[i];
        if (i == WL_VARINT_MAX - 1 && b > 1)
            return WL_FRAME_BAD_VARINT; /* over 64 bits */
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            if (v > max)
                return WL_FRAME_TOO_LARGE;
            *hdr = i + 1;
            *len = (size_t)v;
            return avail - (i + 1) < v ? WL_FRAME_NEED_MORE : WL_FRAME_READY;
        }
    }
    if (i == WL_VARINT_MAX)
        return WL_FRAME_BAD_VARINT;
    /* An unfinished varint proves nothing about the length yet: padded
     * encodings (0x85 0x00 is 5) are valid, so wait for its last byte. */
    return WL_FRAME_NEED_MORE;
}

size_t wl_varint_encode(uint64_t v, uint8_t *out)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}
