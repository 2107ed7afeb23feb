/* TCP framing: protobuf's delimited format, a base-128 varint length then
 * that many bytes. Pure functions over buffers; no I/O. */
#ifndef WL_FRAMING_H
#define WL_FRAMING_H

#include <stddef.h>
#include <stdint.h>

#define WL_VARINT_MAX 10

enum wl_frame_status {
    WL_FRAME_NEED_MORE = 0,  /* not a whole frame yet */
    WL_FRAME_READY = 1,      /* a whole frame: header hdr bytes, body len bytes */
    WL_FRAME_TOO_LARGE = -1, /* declared length over the limit */
    WL_FRAME_BAD_VARINT = -2 /* the length prefix is not a valid varint */
};

/* Looks at buf[0..avail) for one frame no longer than max bytes. The length
 * is judged as soon as its varint is complete, before the body arrives:
 * from then on *hdr and *len are set, with WL_FRAME_NEED_MORE too (so a
 * reader can make room for the whole frame); before, they are untouched. */
enum wl_frame_status wl_frame_parse(const uint8_t *buf, size_t avail, uint64_t max, size_t *hdr,
                                    size_t *len);

/* Writes v as a varint into out (WL_VARINT_MAX bytes); returns its length. */
size_t wl_varint_encode(uint64_t v, uint8_t *out);

#endif
