/* Unit tests for the CLI's tables (tools/table.h), their CSV side: RFC 4180
 * quoting, and fields a spreadsheet would run as formulas escaped with a
 * leading quote (a table of must-escape / must-not-change fields), plain
 * numbers kept only in a column marked numeric. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/table.c"

/* The CSV of one row of two cells: text in a text column, then in a
 * numeric column (no header). malloc'd. */
static char *csv_row(const char *text)
{
    static const struct wl_table_col cols[] = {
        {"org", WL_ALIGN_LEFT, 0, 0, 0},
        {"score", WL_ALIGN_RIGHT, 0, 0, 0, 1},
    };
    struct wl_table *t = wl_table_new(cols, 2);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(t);
    assert_non_null(f);
    assert_int_equal(wl_table_row(t), 0);
    assert_int_equal(wl_table_cell(t, text), 0);
    assert_int_equal(wl_table_cell(t, text), 0);
    assert_int_equal(wl_table_print_csv(t, f, WL_TABLE_NO_HEADER), 0);
    fclose(f);
    wl_table_free(t);
    return buf;
}

struct csv_case {
    const char *in;
    const char *text_col;    /* the field in a text column */
    const char *numeric_col; /* the same cell in a numeric column */
};

static const struct csv_case must_escape[] = {
    {"=1+2", "'=1+2", "'=1+2"},
    {"=HYPERLINK(\"http://x\",\"y\")", "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"",
     "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""},
    {"+1", "'+1", "'+1"},
    {"+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"},
    {"-2+3", "'-2+3", "'-2+3"},
    {"-", "'-", "'-"},
    {"-1.", "'-1.", "'-1."},
    {"-.5", "'-.5", "'-.5"},
    {"-1e3", "'-1e3", "'-1e3"},
    {"-12", "'-12", "-12"},           /* a number only where the table says so */
    {"-0.25", "'-0.25", "-0.25"},
    {"@SUM(A1:A9)", "'@SUM(A1:A9)", "'@SUM(A1:A9)"},
    {"\t=1", "'\t'=1", "'\t'=1"},
    /* a cell also starts after ';' or TAB where a spreadsheet splits on them */
    {"x;=2+5", "x;'=2+5", "x;'=2+5"},
    {"x;@SUM(A1)", "x;'@SUM(A1)", "x;'@SUM(A1)"},
    {"a\t+1", "a\t'+1", "a\t'+1"},
    {"a,-1", "\"a,'-1\"", "\"a,'-1\""},
    {"\r=1", "\"'\r=1\"", "\"'\r=1\""},
    {"=a,b", "\"'=a,b\"", "\"'=a,b\""},
};

static const struct csv_case must_not_change[] = {
    {"", "", ""},
    {"acme.example", "acme.example", "acme.example"},
    {"12", "12", "12"},
    {"0.5", "0.5", "0.5"},
    {"a=b", "a=b", "a=b"},
    {" =1", " =1", " =1"},
    {"x-1", "x-1", "x-1"},
    {"'=1", "'=1", "'=1"},
    {"a,b", "\"a,b\"", "\"a,b\""},
    {"a;b", "a;b", "a;b"},
    {"a; =1", "a; =1", "a; =1"},
    {"say \"hi\"", "\"say \"\"hi\"\"\"", "\"say \"\"hi\"\"\""},
    {"two\nlines", "\"two\nlines\"", "\"two\nlines\""},
};

static void check(const struct csv_case *c, size_t n, const char *table)
{
    for (size_t i = 0; i < n; i++) {
        char want[512];
        snprintf(want, sizeof want, "%s,%s\r\n", c[i].text_col, c[i].numeric_col);
        char *got = csv_row(c[i].in);
        if (strcmp(got, want) != 0)
            fail_msg("%s[%zu] \"%s\": got <%s>, want <%s>", table, i, c[i].in, got, want);
        free(got);
    }
}

static void test_csv_formulas(void **state)
{
    (void)state;
    check(must_escape, sizeof must_escape / sizeof must_escape[0], "must_escape");
    check(must_not_change, sizeof must_not_change / sizeof must_not_change[0],
          "must_not_change");
}

/* The header row, an empty cell and a NULL cell; the terminal table is not
 * escaped (it is read, not opened). */
static void test_csv_header_and_terminal(void **state)
{
    (void)state;
    static const struct wl_table_col cols[] = {
        {"a", WL_ALIGN_LEFT, 0, 0, 0}, {"b", WL_ALIGN_LEFT, 0, 0, 0}, {"c", WL_ALIGN_LEFT, 0, 0, 0},
    };
    struct wl_table *t = wl_table_new(cols, 3);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    wl_table_row(t);
    wl_table_cell(t, "=x");
    wl_table_cell(t, NULL);
    assert_int_equal(wl_table_print_csv(t, f, 0), 0);
    fflush(f);
    assert_string_equal(buf, "a,b,c\r\n'=x,,\r\n");
    fclose(f);
    free(buf);
    buf = NULL;
    f = open_memstream(&buf, &len);
    assert_int_equal(wl_table_print(t, f, 0), 0);
    fclose(f);
    assert_string_equal(buf, "a   b  c\n=x\n");
    free(buf);
    wl_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_formulas),
        cmocka_unit_test(test_csv_header_and_terminal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
