/* A bearer token as everyone reads it: the collector's read_token_file and
 * admin_token_file, the warmline CLI's --token-file and WARMLINE_TOKEN, the
 * load generator's --token-file. Pure functions, any thread.
 *
 * The rules, the same for every reader: one trailing newline (LF or CRLF) is
 * dropped; what is left is the token, and it must be WL_TOKEN_MIN to
 * WL_TOKEN_MAX bytes of visible ASCII (0x21-0x7E): a NUL, any other control
 * character (a second newline included), a space anywhere or a byte past
 * ASCII is refused, never trimmed or cut, so the token in use is always the
 * whole of what the file holds. Buffers that held the token are wiped. */
#ifndef WL_TOKEN_H
#define WL_TOKEN_H

#include <stddef.h>

#define WL_TOKEN_MIN 16
#define WL_TOKEN_MAX 4096

/* The token in the file at path: 0 with *tok malloc'd (wipe it with
 * sodium_memzero, then free it), -ENOENT/-EACCES/... when the file cannot be
 * read, -EINVAL when it breaks a rule, -ENOMEM. what names the setting in
 * err ("read_token_file", "--token-file"): "WHAT PATH: what is wrong". */
int wl_token_from_file(const char *what, const char *path, char **tok, char *err,
                       size_t errlen);

/* The token in text (n bytes, NULs included: they are refused), src naming
 * it in err ("WARMLINE_TOKEN: ..."). Returns as above. */
int wl_token_from_text(const char *src, const char *text, size_t n, char **tok, char *err,
                       size_t errlen);

#endif
