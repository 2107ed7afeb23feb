#include "api_csv.h"

#include <errno.h>
#include <stdio.h>

void wl_csv_init(struct wl_csv *c, char *buf, size_t len)
{
    c->p = buf;
    c->end = buf + len;
    c->line = 1;
}

/* Consumes a line break at r (CRLF, LF or CR): 1 if there was one. */
static int eol(struct wl_csv *c, char **r)
{
    if (*r < c->end && **r == '\r') {
        (*r)++;
        if (*r < c->end && **r == '\n')
            (*r)++;
    } else if (*r < c->end && **r == '\n') {
        (*r)++;
    } else {
        return 0;
    }
    c->line++;
    return 1;
}

static int fail(unsigned *line, unsigned at, char *err, size_t errlen, const char *why)
{
    *line = at;
    snprintf(err, errlen, "%s", why);
    return -EINVAL;
}

int wl_csv_next(struct wl_csv *c, char **fields, size_t max, unsigned *line, char *err,
                size_t errlen)
{
    char *r = c->p, *w = c->p;
    size_t n = 0;

    while (eol(c, &r)) /* blank lines */
        ;
    if (r >= c->end) {
        c->p = r;
        return 0;
    }
    *line = c->line;
    w = r;
    for (;;) { /* one field per turn; w never passes r */
        char *start = w;
        if (r < c->end && *r == '"') {
            unsigned opened = c->line;
            r++;
            for (;;) {
                if (r >= c->end) {
                    return fail(line, opened, err, errlen,
                                "a quoted field is never closed (a \" is missing)");
                }
                if (*r == '"') {
                    if (r + 1 < c->end && r[1] == '"') {
                        *w++ = '"';
                        r += 2;
                        continue;
                    }
                    r++;
                    break;
                }
                if (*r == '\0')
                    return fail(line, c->line, err, errlen, "a NUL byte");
                if (*r == '\n' || (*r == '\r' && (r + 1 >= c->end || r[1] != '\n')))
                    c->line++;
                *w++ = *r++;
            }
            if (r < c->end && *r != ',' && *r != '\r' && *r != '\n')
                return fail(line, c->line, err, errlen,
                            "text after a closing quote (a quote inside a quoted field is "
                            "written \"\")");
        } else {
            while (r < c->end && *r != ',' && *r != '\r' && *r != '\n') {
                if (*r == '"')
                    return fail(line, c->line, err, errlen,
                                "a quote inside an unquoted field (quote the whole field "
                                "and write the quote as \"\")");
                if (*r == '\0')
                    return fail(line, c->line, err, errlen, "a NUL byte");
                *w++ = *r++;
            }
        }
        /* r is at ',', a line break or the end: read it, then end the field */
        int comma = r < c->end && *r == ',';
        if (comma)
            r++;
        else
            eol(c, &r);
        *w++ = '\0';
        if (n < max)
            fields[n] = start;
        n++;
        if (!comma)
            break;
    }
    c->p = r;
    return (int)n;
}
