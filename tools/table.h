/* Tables for people, and the same rows as CSV for scripts. A table holds
 * its cells (copied) until printed; widths are counted in code points, a
 * good enough stand-in for terminal columns. A failed allocation while
 * filling it is remembered and returned by the print functions, so callers
 * may fill a table without checking every cell. */
#ifndef WL_TABLE_H
#define WL_TABLE_H

#include <stddef.h>
#include <stdio.h>

enum wl_align { WL_ALIGN_LEFT, WL_ALIGN_RIGHT };

struct wl_table_col {
    const char *header;
    enum wl_align align;
    unsigned min;   /* the column is at least this wide (0: its widest cell) */
    unsigned max;   /* on a terminal, longer cells end in "…" (0: no cap) */
    int flex;       /* on a terminal, this column shrinks (to 8, header and all) to fit
                     * the window */
    int numeric;    /* the tool prints numbers here: in CSV, a cell that is a plain
                     * number (-12, -0.5) is not taken for a formula */
};

struct wl_table;

/* A table with these columns (cols must outlive it). NULL on ENOMEM. */
struct wl_table *wl_table_new(const struct wl_table_col *cols, size_t ncols);

void wl_table_free(struct wl_table *t);

/* Starts a new row; the cells that follow fill it from the left, and
 * cells never given print empty. Returns 0 or -ENOMEM. */
int wl_table_row(struct wl_table *t);

/* Appends a cell to the current row (NULL prints empty). Cells past the
 * last column are dropped. Returns 0 or -ENOMEM. */
int wl_table_cell(struct wl_table *t, const char *text);
int wl_table_cellf(struct wl_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Rows so far. */
size_t wl_table_rows(const struct wl_table *t);

enum {
    WL_TABLE_TERMINAL = 1,  /* apply max and fit flex columns to the window */
    WL_TABLE_NO_HEADER = 2, /* rows only (a stream that printed it already) */
};

/* Prints the header and the rows, columns two spaces apart, with no
 * trailing blanks. Control characters in cells print as '?'. Returns 0 or
 * -errno of the failed write. */
int wl_table_print(const struct wl_table *t, FILE *out, unsigned flags);

/* Prints the rows as RFC 4180 CSV (CRLF line ends, fields quoted when they
 * hold a comma, a quote, CR or LF), with the header row unless
 * WL_TABLE_NO_HEADER. Cells print whole, but safe to open in a spreadsheet:
 * a cell that starts with '=', '+', '-', '@', TAB or CR gets a leading "'"
 * (OWASP's advice on CSV injection), except a plain number (-?digits, an
 * optional .digits) in a numeric column. Returns 0 or -errno. */
int wl_table_print_csv(const struct wl_table *t, FILE *out, unsigned flags);

/* Code points in s when it is UTF-8 (bytes that do not continue a
 * sequence are counted). */
size_t wl_utf8_width(const char *s);

#endif
