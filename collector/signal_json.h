/* Signals as JSON: one shape for the signal file, the webhook, `warmline
 * dump signals` and the HTTP API, so every reader sees the same fields:
 *
 *   {"id": 12, "org": "<64 hex>" | "install:<id>", "rule": "...",
 *    "description": "...", "weight": 1, "fired_at": 1714566896789,
 *    "fired_at_iso": "2024-05-01T12:34:56.789Z",
 *    "terms": [{"metric": "teams", "value": 12, "op": ">=", "threshold": 10},
 *              {"metric": "has_feature", "value": 1, "op": "==",
 *               "threshold": 1, "text": "sso"}],
 *    "install_ids": ["..."], "ingest_seq": 345}
 *
 * Numbers: a whole value (|x| < 2^53) is a JSON integer, another finite
 * value a JSON real, an undefined one (NaN, e.g. a growth with no history)
 * null. "text" is present only when the term has a string operand. Strings
 * that are not valid UTF-8 have their non-ASCII bytes replaced by '?'. */
#ifndef WL_SIGNAL_JSON_H
#define WL_SIGNAL_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "records.pb-c.h"

typedef Warmline__Store__V1__Signal wl_signal;

/* Flags for json_dumps of a signal: one line, reals with 15 significant
 * digits (0.1 prints as 0.1, not 0.10000000000000001). */
#define WL_SIGNAL_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* A JSON string from bytes that should be UTF-8; bytes that are not are
 * replaced by '?', so a damaged record still prints. NULL on ENOMEM. */
json_t *wl_json_string_lossy(const char *s, size_t len);

/* A new object with the fields above, in that order. NULL on ENOMEM. */
json_t *wl_signal_json(const wl_signal *sig);

/* The signal as one line of JSON (WL_SIGNAL_JSON_FLAGS), without a newline:
 * malloc'd, caller frees. NULL on ENOMEM. */
char *wl_signal_json_text(const wl_signal *sig);

/* A one-line summary for people (chat messages, logs):
 *   signal 12 for org <org>: <description> [rule] - teams 12 (>= 10), has_feature(sso)
 * One line of valid UTF-8 (control characters become spaces), truncated
 * with "..." to fit buf; always NUL-terminated when len > 0.
 * Returns the length written. */
size_t wl_signal_summary(const wl_signal *sig, char *buf, size_t len);

#endif
