/* A bearer token as the API's clients read it (the warmline CLI's
 * --token-file and WARMLINE_TOKEN, the load generator's --token-file):
 * surrounding white space dropped; empty, longer than WL_TOKEN_MAX bytes or
 * holding control characters refused; the buffers that held it wiped. */
#ifndef WL_TOKEN_H
#define WL_TOKEN_H

#include <stddef.h>

#define WL_TOKEN_MAX 4096

/* The token in file path: 0 with *tok malloc'd (wipe and free it), or
 * -EINVAL (err says why, "--token-file PATH: ...") or -ENOMEM. */
int wl_token_from_file(const char *path, char **tok, char *err, size_t errlen);

/* The token in text (n bytes), src naming it in messages: as above. */
int wl_token_from_text(const char *src, const char *text, size_t n, char **tok, char *err,
                       size_t errlen);

#endif
