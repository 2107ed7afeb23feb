/* Fuzz target: the named-accounts CSV (collector/api_csv.c).
 *
 * Input: the body of PUT /v1/named-accounts. It is read record by record,
 * as the API does (three fields kept), until the end or the first error.
 * Every call must make progress, every field must lie inside the buffer,
 * and line numbers never go back. The same input read with one field kept
 * must give the same record count and outcome. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api_csv.h"
#include "fuzz.h"

static int read_all(const uint8_t *data, size_t size, size_t max, size_t *records)
{
    char *buf = malloc(size + 1);
    struct wl_csv c;
    char *fields[3];
    char err[256];
    unsigned line = 0, last_line = 0;
    int k;

    FUZZ_CHECK(buf != NULL);
    memcpy(buf, data, size);
    wl_csv_init(&c, buf, size);
    *records = 0;
    for (;;) {
        char *before = c.p;
        err[0] = '\0';
        k = wl_csv_next(&c, fields, max, &line, err, sizeof err);
        if (k <= 0)
            break;
        FUZZ_CHECK(c.p > before && c.p <= buf + size);
        FUZZ_CHECK(line >= 1 && line >= last_line && line <= c.line);
        last_line = line;
        for (size_t i = 0; i < (size_t)k && i < max; i++) {
            FUZZ_CHECK(fields[i] >= buf && fields[i] <= buf + size);
            size_t room = (size_t)(buf + size + 1 - fields[i]);
            FUZZ_CHECK(memchr(fields[i], 0, room) != NULL);
        }
        (*records)++;
    }
    if (k < 0)
        FUZZ_CHECK(err[0] != '\0' && line >= 1);
    else
        FUZZ_CHECK(c.p == buf + size);
    free(buf);
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n3, n1;
    int k3 = read_all(data, size, 3, &n3);
    int k1 = read_all(data, size, 1, &n1);
    FUZZ_CHECK(k3 == k1 && n3 == n1);
    return 0;
}
