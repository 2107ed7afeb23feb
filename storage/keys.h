/* Key encoding: big-endian integers sort in numeric order, so ranges of
 * sequences are range scans. Organization ids are tagged so that an org_key
 * and an install id can never collide. */
#ifndef WL_KEYS_H
#define WL_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define WL_ORG_KEY_BYTES 32
#define WL_ORG_TAG_KEY 'k'     /* 'k' + 32-byte org_key */
#define WL_ORG_TAG_INSTALL 'i' /* 'i' + install_id, when the ping had no org_key */
#define WL_ORG_ID_MAX (1 + 64)

/* Meta keys of the state's checkpoints (collector/state_records.c writes
 * them, the tools read them): big-endian 64-bit values. */
#define WL_META_INGEST_SEQ "ingest_seq" /* the last ping stored */
#define WL_META_STATE_SEQ "state_seq"   /* the last checkpoint: the records are exact up to it */
#define WL_META_STATE_AT "state_at"     /* unix ms that checkpoint was written */
/* The state's clock (unix ms) when the last checkpoint began: a replay
 * starts from it, whatever newer records a load reads. */
#define WL_META_STATE_CLOCK "state_clock"
/* Present while a checkpoint is written (its ingest sequence, 8 bytes):
 * the organizations it names are written in place, each with its own
 * sequence (records.proto OrgState.state_seq). */
#define WL_META_CKPT_SEQ "checkpoint_under_way"
/* Stores from before in-place checkpoints: present while one was being
 * staged (its ingest sequence; the stage column family then holds part of
 * it, which a load drops), and once staged whole until all in place (its
 * sequence and time, 16 bytes; a load moves the rest into place). */
#define WL_META_STAGE_SEQ "stage_seq"
#define WL_META_STAGED "staged"
/* Every signal up to this id is in the org_signals index: a signal's
 * entry is written with its organization's record at a checkpoint, so a
 * load gives the ids after it back to their organizations. */
#define WL_META_SIGNAL_INDEX_SEQ "signal_index_seq"

static inline void wl_be64_put(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

static inline uint64_t wl_be64_get(const void *p)
{
    const uint8_t *b = p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | b[i];
    return v;
}

/* Writes the organization id of a ping into out (WL_ORG_ID_MAX bytes) and
 * returns its length. */
static inline size_t wl_org_id(uint8_t *out, const uint8_t *org_key, size_t org_key_len,
                               const char *install_id, size_t install_len)
{
    if (org_key_len == WL_ORG_KEY_BYTES) {
        out[0] = WL_ORG_TAG_KEY;
        memcpy(out + 1, org_key, WL_ORG_KEY_BYTES);
        return 1 + WL_ORG_KEY_BYTES;
    }
    out[0] = WL_ORG_TAG_INSTALL;
    memcpy(out + 1, install_id, install_len);
    return 1 + install_len;
}

static inline void wl_be32_put(uint8_t out[4], uint32_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

static inline uint32_t wl_be32_get(const void *p)
{
    const uint8_t *b = p;
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

/* UTC day number (days since 1970-01-01) of a unix ms time. */
static inline uint32_t wl_day_of(int64_t ms)
{
    return ms <= 0 ? 0 : (uint32_t)(ms / 86400000LL);
}

/* daily column family key: one length byte, the org id, the big-endian
 * day; out needs 1 + WL_ORG_ID_MAX + 4 bytes. Returns its length. */
static inline size_t wl_daily_key(const uint8_t *org, size_t org_len, uint32_t day, uint8_t *out)
{
    out[0] = (uint8_t)org_len;
    memcpy(out + 1, org, org_len);
    wl_be32_put(out + 1 + org_len, day);
    return 1 + org_len + 4;
}

/* org_signals column family key: one length byte, the org id, the
 * big-endian signal id; out needs 1 + WL_ORG_ID_MAX + 8 bytes. */
static inline size_t wl_org_signal_key(const uint8_t *org, size_t org_len, uint64_t id,
                                       uint8_t *out)
{
    out[0] = (uint8_t)org_len;
    memcpy(out + 1, org, org_len);
    wl_be64_put(out + 1 + org_len, id);
    return 1 + org_len + 8;
}

/* Formats an org id for people: 64 hex digits, or "install:<id>".
 * out needs at least 2 * WL_ORG_KEY_BYTES + 1 or 8 + 64 + 1 bytes. */
static inline void wl_org_id_format(const uint8_t *id, size_t len, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    if (len == 1 + WL_ORG_KEY_BYTES && id[0] == WL_ORG_TAG_KEY && outlen > 2 * WL_ORG_KEY_BYTES) {
        for (size_t i = 0; i < WL_ORG_KEY_BYTES; i++) {
            out[2 * i] = hex[id[1 + i] >> 4];
            out[2 * i + 1] = hex[id[1 + i] & 15];
        }
        out[2 * WL_ORG_KEY_BYTES] = '\0';
    } else if (len >= 1 && id[0] == WL_ORG_TAG_INSTALL) {
        snprintf(out, outlen, "install:%.*s", (int)(len - 1), (const char *)id + 1);
    } else {
        snprintf(out, outlen, "unknown");
    }
}

#endif
