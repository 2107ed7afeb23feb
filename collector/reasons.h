/* Why input was rejected. Every rejection is counted under one of these, and
 * the name is what logs, quarantine records and metrics say. */
#ifndef WL_REASONS_H
#define WL_REASONS_H

#define WL_REASONS(X)                                                        \
    /* whole envelope / frame */                                             \
    X(ENVELOPE_DECODE, "envelope_decode")                                    \
    X(ENVELOPE_VERSION, "envelope_version")                                  \
    X(ENVELOPE_COMPRESSION, "envelope_compression")                          \
    X(INFLATE_FAILED, "inflate_failed")                                      \
    X(INFLATE_TOO_LARGE, "inflate_too_large")                                \
    X(BATCH_DECODE, "batch_decode")                                          \
    X(BATCH_TOO_MANY_PINGS, "batch_too_many_pings")                          \
    X(BATCH_OVER_BUDGET, "batch_over_budget")                                \
    X(FRAME_TOO_LARGE, "frame_too_large")                                    \
    X(FRAME_BAD_VARINT, "frame_bad_varint")                                  \
    X(DATAGRAM_TOO_LARGE, "datagram_too_large")                              \
    /* one ping */                                                           \
    X(INSTALL_ID_EMPTY, "install_id_empty")                                  \
    X(INSTALL_ID_TOO_LONG, "install_id_too_long")                            \
    X(INSTALL_ID_NOT_PRINTABLE, "install_id_not_printable")                  \
    X(ORG_KEY_LENGTH, "org_key_length")                                      \
    X(SEQ_ZERO, "seq_zero")                                                  \
    X(STRING_TOO_LONG, "string_too_long")                                    \
    X(STRING_NOT_UTF8, "string_not_utf8")                                    \
    X(STRING_HAS_NUL, "string_has_nul")                                      \
    X(TOO_MANY_FEATURES, "too_many_features")                                \
    X(PING_TOO_MANY_FIELDS, "ping_too_many_fields")                          \
    X(COUNT_TOO_LARGE, "count_too_large")

#define WL_REASON_ENUM(sym, name) WL_REJECT_##sym,
enum wl_reason { WL_REJECT_NONE = -1, WL_REASONS(WL_REASON_ENUM) WL_N_REASONS };
#undef WL_REASON_ENUM

/* "envelope_decode", ... */
const char *wl_reason_name(enum wl_reason r);

#endif
