#include "table.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define ELLIPSIS "\xe2\x80\xa6" /* U+2026 */
#define FLEX_MIN 8

struct wl_table {
    const struct wl_table_col *cols;
    size_t ncols;
    char **cells; /* rows * ncols, row-major; NULL prints empty */
    size_t rows, cap_rows;
    size_t next;  /* column of the next cell in the last row */
    int err;      /* -ENOMEM once an allocation failed */
};

struct wl_table *wl_table_new(const struct wl_table_col *cols, size_t ncols)
{
    struct wl_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->cols = cols;
    t->ncols = ncols;
    return t;
}

void wl_table_free(struct wl_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->rows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

int wl_table_row(struct wl_table *t)
{
    if (t->rows == t->cap_rows) {
        size_t cap = t->cap_rows ? 2 * t->cap_rows : 16;
        char **cells = realloc(t->cells, cap * t->ncols * sizeof *cells);
        if (cells == NULL)
            return t->err = -ENOMEM;
        t->cells = cells;
        t->cap_rows = cap;
    }
    memset(&t->cells[t->rows * t->ncols], 0, t->ncols * sizeof *t->cells);
    t->rows++;
    t->next = 0;
    return 0;
}

int wl_table_cell(struct wl_table *t, const char *text)
{
    if (t->rows == 0 && wl_table_row(t) != 0)
        return -ENOMEM;
    if (t->next >= t->ncols)
        return 0;
    char *copy = NULL;
    if (text != NULL && (copy = strdup(text)) == NULL)
        return t->err = -ENOMEM;
    t->cells[(t->rows - 1) * t->ncols + t->next++] = copy;
    return 0;
}

int wl_table_cellf(struct wl_table *t, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return t->err = -ENOMEM;
    int rc = wl_table_cell(t, s);
    free(s);
    return rc;
}

size_t wl_table_rows(const struct wl_table *t)
{
    return t->rows;
}

size_t wl_utf8_width(const char *s)
{
    size_t n = 0;
    for (; s != NULL && *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* ---- a growing line ---- */

struct line {
    char *p;
    size_t len, cap;
};

static int put(struct line *l, const char *s, size_t n)
{
    if (l->len + n + 1 > l->cap) {
        size_t cap = l->cap ? l->cap : 256;
        while (cap < l->len + n + 1)
            cap *= 2;
        char *p = realloc(l->p, cap);
        if (p == NULL)
            return -ENOMEM;
        l->p = p;
        l->cap = cap;
    }
    memcpy(l->p + l->len, s, n);
    l->len += n;
    l->p[l->len] = '\0';
    return 0;
}

static int spaces(struct line *l, size_t n)
{
    int rc = 0;
    while (n-- > 0 && rc == 0)
        rc = put(l, " ", 1);
    return rc;
}

/* Appends at most width code points of s, the last one "…" when s is
 * longer; control characters (C0, DEL, C1) become '?'. */
static int put_clipped(struct line *l, const char *s, size_t width)
{
    size_t w = wl_utf8_width(s), shown = 0;
    size_t keep = w > width ? (width > 0 ? width - 1 : 0) : w;
    int rc = 0;

    while (*s && shown < keep && rc == 0) {
        unsigned char c = (unsigned char)*s;
        size_t n = 1;
        while ((s[n] & 0xC0) == 0x80)
            n++;
        if (c < 0x20 || c == 0x7F || (c == 0xC2 && n == 2 && (unsigned char)s[1] < 0xA0))
            rc = put(l, "?", 1);
        else
            rc = put(l, s, n);
        s += n;
        shown++;
    }
    if (rc == 0 && w > width && width > 0)
        rc = put(l, ELLIPSIS, strlen(ELLIPSIS));
    return rc;
}

static const char *cell(const struct wl_table *t, size_t r, size_t c)
{
    const char *s = t->cells[r * t->ncols + c];
    return s ? s : "";
}

static unsigned terminal_columns(FILE *out)
{
    struct winsize ws;
    if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 0;
}

/* Column widths: the widest of header, min and cells (capped by max on a
 * terminal), then flex columns shrunk to fit the window. */
static void widths(const struct wl_table *t, unsigned flags, FILE *out, size_t *w)
{
    int term = (flags & WL_TABLE_TERMINAL) != 0;
    size_t total = 0;

    for (size_t c = 0; c < t->ncols; c++) {
        const struct wl_table_col *col = &t->cols[c];
        size_t hw = wl_utf8_width(col->header);
        size_t cap = term && col->max > 0 ? (col->max > hw ? col->max : hw) : (size_t)-1;
        w[c] = hw > col->min ? hw : col->min;
        for (size_t r = 0; r < t->rows; r++) {
            size_t cw = wl_utf8_width(cell(t, r, c));
            if (cw > cap)
                cw = cap;
            if (cw > w[c])
                w[c] = cw;
        }
        total += w[c] + (c > 0 ? 2 : 0);
    }
    /* Too wide for the window: take a column from the widest flex column
     * until it fits or every one is down to FLEX_MIN. */
    unsigned win = term ? terminal_columns(out) : 0;
    while (win > 0 && total > win) {
        size_t widest = t->ncols;
        for (size_t c = 0; c < t->ncols; c++) {
            if (t->cols[c].flex && w[c] > FLEX_MIN && (widest == t->ncols || w[c] > w[widest]))
                widest = c;
        }
        if (widest == t->ncols)
            break;
        w[widest]--;
        total--;
    }
}

static int emit(FILE *out, struct line *l)
{
    while (l->len > 0 && l->p[l->len - 1] == ' ')
        l->len--;
    if (put(l, "\n", 1) != 0)
        return -ENOMEM;
    errno = 0;
    if (fwrite(l->p, 1, l->len, out) != l->len)
        return errno ? -errno : -EIO;
    l->len = 0;
    return 0;
}

static int print_row(const struct wl_table *t, FILE *out, struct line *l, const size_t *w,
                     const char *const *texts)
{
    int rc = 0;
    for (size_t c = 0; c < t->ncols && rc == 0; c++) {
        const char *s = texts[c];
        size_t sw = wl_utf8_width(s);
        size_t pad = sw < w[c] ? w[c] - sw : 0;
        if (c > 0)
            rc = put(l, "  ", 2);
        if (rc == 0 && t->cols[c].align == WL_ALIGN_RIGHT)
            rc = spaces(l, pad);
        if (rc == 0)
            rc = put_clipped(l, s, w[c]);
        if (rc == 0 && t->cols[c].align == WL_ALIGN_LEFT)
            rc = spaces(l, pad);
    }
    return rc != 0 ? rc : emit(out, l);
}

int wl_table_print(const struct wl_table *t, FILE *out, unsigned flags)
{
    size_t *w = calloc(t->ncols ? t->ncols : 1, sizeof *w);
    const char **texts = calloc(t->ncols ? t->ncols : 1, sizeof *texts);
    struct line l = {0};
    int rc = t->err;

    if (w == NULL || texts == NULL)
        rc = -ENOMEM;
    if (rc != 0)
        goto done;
    widths(t, flags, out, w);
    if (!(flags & WL_TABLE_NO_HEADER)) {
        for (size_t c = 0; c < t->ncols; c++)
            texts[c] = t->cols[c].header;
        rc = print_row(t, out, &l, w, texts);
    }
    for (size_t r = 0; r < t->rows && rc == 0; r++) {
        for (size_t c = 0; c < t->ncols; c++)
            texts[c] = cell(t, r, c);
        rc = print_row(t, out, &l, w, texts);
    }
done:
    free(l.p);
    free(texts);
    free(w);
    return rc;
}

/* -?[0-9]+(\.[0-9]+)?: what the tools print for a number. */
static int plain_number(const char *s)
{
    s += *s == '-';
    if (*s < '0' || *s > '9')
        return 0;
    while (*s >= '0' && *s <= '9')
        s++;
    if (*s == '.') {
        if (*++s < '0' || *s > '9')
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

/* A spreadsheet opening the file would run a field that starts with one of
 * these as a formula (or a DDE call): OWASP, "CSV Injection". */
static int formula_like(const char *s, int numeric)
{
    if (strchr("=+-@\t\r", *s) == NULL || *s == '\0')
        return 0;
    return !(numeric && plain_number(s));
}

/* A field, quoted when it must be, with a quote before what a spreadsheet
 * would run: at its start, and after a ';', ',' or TAB inside it (in many
 * locales a spreadsheet splits on ';', or on TAB, and a cell starts there). */
static int csv_field(FILE *out, const char *s, int numeric)
{
    int quote = strpbrk(s, ",\"\r\n") != NULL;
    if ((quote && fputc('"', out) == EOF) ||
        (formula_like(s, numeric) && fputc('\'', out) == EOF))
        return -1;
    for (const char *p = s; *p; p++) {
        if ((quote && *p == '"' && fputc('"', out) == EOF) || fputc(*p, out) == EOF)
            return -1;
        if (strchr(";,\t", *p) != NULL && p[1] != '\0' && strchr("=+-@\t\r", p[1]) != NULL &&
            fputc('\'', out) == EOF)
            return -1;
    }
    return quote && fputc('"', out) == EOF ? -1 : 0;
}

int wl_table_print_csv(const struct wl_table *t, FILE *out, unsigned flags)
{
    int bad = 0;
    if (t->err != 0)
        return t->err;
    errno = 0;
    for (size_t r = 0; r <= t->rows && !bad; r++) {
        if (r == 0 && (flags & WL_TABLE_NO_HEADER))
            continue;
        for (size_t c = 0; c < t->ncols && !bad; c++) {
            const char *s = r == 0 ? t->cols[c].header : cell(t, r - 1, c);
            bad = (c > 0 && fputc(',', out) == EOF) || csv_field(out, s, t->cols[c].numeric) != 0;
        }
        bad = bad || fputs("\r\n", out) == EOF;
    }
    return bad ? (errno ? -errno : -EIO) : 0;
}
