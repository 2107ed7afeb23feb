/* CSV as RFC 4180 writes it, read in place: fields separated by commas,
 * records by CRLF or LF (a lone CR too); a field in double quotes may hold
 * commas, line breaks and "" for one quote. Blank lines are skipped. The
 * parser unescapes into the buffer it reads, so fields point into it. */
#ifndef WL_API_CSV_H
#define WL_API_CSV_H

#include <stddef.h>

struct wl_csv {
    char *p;                    /* next byte to read */
    char *end;                  /* one past the input; *end is written (a NUL) */
    unsigned line;              /* line of p, from 1 */
};

/* buf holds len bytes of input and one more byte of room. */
void wl_csv_init(struct wl_csv *c, char *buf, size_t len);

/* Reads the next record: stores up to max NUL-terminated fields (the rest
 * are read and dropped) and its first line in *line. Returns how many
 * fields the record had (>= 1), 0 at the end of the input, or -EINVAL
 * with *line the line of the fault and the reason in err (a quote inside
 * an unquoted field, text after a closing quote, an unterminated quoted
 * field, a NUL byte). */
int wl_csv_next(struct wl_csv *c, char **fields, size_t max, unsigned *line, char *err,
                size_t errlen);

#endif
