/* Unit tests for the export's output directory (tools/export_dir.h): names
 * format and parse back (and nothing else parses), cursor names, the cursor
 * and the orphans a directory holds, crash-safe publication, the
 * removal of temp files, and the modes of what an export creates (the data
 * directory's: folders 0750, files 0640, whatever a looser umask says). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/export_dir.c"
#include "tmpdir.h"

static void test_names_round_trip(void **state)
{
    (void)state;
    static const char *const good[] = {
        "pings-000000000001-000000500000.ndjson.gz",
        "pings-etl-000000000001-000000500000.ndjson.gz",
        "signals-b2_x-000000000007-000000000007.csv.gz",
        "daily-etl-000000000000-000000020100-0001.csv.gz",
        "accounts-a-000000000001-000000001000-0012.ndjson.gz",
        "manifest-pings-etl-000000000001-000001000000.json",
        "manifest-daily-000000020000-000000020100.json",
        "pings-1234567890123-1234567890124.ndjson.gz", /* past 12 digits: wider */
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct wl_export_name n;
        char again[WL_EXPORT_NAME_MAX];
        if (wl_export_name_parse(good[i], &n) != 0)
            fail_msg("%s does not parse", good[i]);
        wl_export_name_format(&n, again);
        assert_string_equal(again, good[i]);
    }
    struct wl_export_name n;
    assert_int_equal(wl_export_name_parse("daily-etl-000000000000-000000020100-0001.csv.gz", &n), 0);
    assert_string_equal(n.table, "daily");
    assert_string_equal(n.cursor, "etl");
    assert_int_equal(n.first, 0);
    assert_int_equal(n.last, 20100);
    assert_int_equal(n.part, 1);
    assert_string_equal(n.format, "csv");
    assert_int_equal(n.manifest, 0);
}

static void test_names_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "pings", "pings.ndjson.gz", "pings-1-2.ndjson.gz", /* not padded */
        "pings-000000000002-000000000001.ndjson.gz",            /* first > last */
        "pings-000000000001-000000000002.json.gz",
        "pings-000000000001-000000000002.ndjson",
        "pings-etl-000000000001-000000000002.ndjson.gz.tmp",
        "Pings-000000000001-000000000002.ndjson.gz",
        "pings-1etl-000000000001-000000000002.ndjson.gz",
        "pings-e-t-000000000001-000000000002.ndjson.gz",
        "manifest-pings-etl-000000000001-000000000002-0001.json", /* manifests have no part */
        "manifest-pings-etl-000000000001-000000000002.json.tmp",
        "daily-etl-000000000000-000000020100-0000.csv.gz",         /* parts count from 1 */
        "daily-etl-000000000000-000000020100-1.csv.gz",
        ".wl-export-1.tmp", "README.md",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct wl_export_name n;
        if (wl_export_name_parse(bad[i], &n) == 0)
            fail_msg("%s parses", bad[i]);
    }
}

static void test_cursor_names(void **state)
{
    (void)state;
    static const char *const good[] = {"a", "etl", "Warehouse_2", "x123456789"};
    static const char *const bad[] = {"", "1abc", "_a", "a-b", "a.b", "a b", "é",
        "a123456789012345678901234567890123456789012345678901234567890123x"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(wl_export_cursor_valid(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (wl_export_cursor_valid(bad[i]))
            fail_msg("'%s' is a valid cursor name", bad[i]);
    }
}

static void touch(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    close(fd);
}

static void test_scan_publish(void **state)
{
    (void)state;
    char root[] = "/tmp/wl-test-export-dir-XXXXXX", out[4200], err[300], tmp[64];
    assert_non_null(mkdtemp(root));
    snprintf(out, sizeof out, "%s/a/b", root);
    struct wl_outdir d, d2;
    struct wl_export_scan s;

    /* Read-only: a missing directory is an empty one, and stays missing. */
    assert_int_equal(wl_outdir_open(&d, out, 1, err, sizeof err), 0);
    assert_int_equal(d.fd, -1);
    assert_int_equal(wl_outdir_scan(&d, "pings", "etl", &s, err, sizeof err), 0);
    assert_false(s.have_cursor);
    wl_outdir_close(&d, 1);
    assert_int_not_equal(access(out, F_OK), 0);

    /* Created, locked, and left empty on a failed run. */
    assert_int_equal(wl_outdir_open(&d, out, 0, err, sizeof err), 0);
    assert_true(d.created);
    assert_int_equal(wl_outdir_open(&d2, out, 0, err, sizeof err), -EBUSY);
    wl_outdir_close(&d2, 0);
    wl_outdir_close(&d, 1);
    assert_int_not_equal(access(out, F_OK), 0);

    assert_int_equal(wl_outdir_open(&d, out, 0, err, sizeof err), 0);
    touch(out, "manifest-pings-etl-000000000001-000000000010.json");
    touch(out, "manifest-pings-etl-000000000011-000000000020.json");
    touch(out, "manifest-pings-other-000000000001-000000000500.json");
    touch(out, "manifest-pings-000000000001-000000000900.json"); /* ad hoc */
    touch(out, "pings-etl-000000000011-000000000020.ndjson.gz"); /* listed */
    touch(out, "pings-etl-000000000021-000000000030.ndjson.gz"); /* orphans */
    touch(out, "pings-etl-000000000031-000000000035.csv.gz");
    touch(out, "signals-etl-000000000040-000000000050.csv.gz");
    touch(out, ".wl-export-77.tmp");
    touch(out, "notes.txt");
    assert_int_equal(wl_outdir_scan(&d, "pings", "etl", &s, err, sizeof err), 0);
    assert_true(s.have_cursor);
    assert_int_equal(s.cursor, 20);
    assert_int_equal(s.manifests, 2);
    assert_int_equal(s.n_orphans, 2);
    assert_int_equal(s.orphan_last, 35);
    wl_export_scan_free(&s);
    assert_int_equal(wl_outdir_scan(&d, "pings", "new", &s, err, sizeof err), 0);
    assert_false(s.have_cursor);
    assert_int_equal(s.n_orphans, 0);
    wl_export_scan_free(&s);

    assert_int_equal(wl_outdir_remove_temps(&d), 1);
    assert_false(wl_outdir_exists(&d, ".wl-export-77.tmp"));
    assert_true(wl_outdir_exists(&d, "notes.txt"));

    int fd = wl_outdir_tmp(&d, tmp);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    assert_int_equal(wl_outdir_publish(&d, fd, tmp, "pings-etl-000000000021-000000000030.ndjson.gz"), 0);
    assert_false(wl_outdir_exists(&d, tmp));
    struct stat st;
    char path[4300];
    snprintf(path, sizeof path, "%s/pings-etl-000000000021-000000000030.ndjson.gz", out);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 1);
    wl_outdir_close(&d, 1); /* not created by this open: stays */
    assert_int_equal(access(out, F_OK), 0);

    /* Not a directory. */
    assert_int_equal(wl_outdir_open(&d, path, 0, err, sizeof err), -ENOTDIR);
    wl_outdir_close(&d, 1);
    wl_test_rmtree(root);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

/* An export into a fresh folder under umask 022 (the common default) leaves
 * nothing readable by others: folders (parents too) 0750, temp and published
 * files 0640; a stricter umask (077) still applies. */
static void test_modes(void **state)
{
    (void)state;
    char root[] = "/tmp/wl-test-export-modes-XXXXXX", out[4200], path[4300], err[300],
         tmp[64];
    struct wl_outdir d;
    assert_non_null(mkdtemp(root));
    mode_t old = umask(022);

    snprintf(out, sizeof out, "%s/parent/out", root);
    assert_int_equal(wl_outdir_open(&d, out, 0, err, sizeof err), 0);
    int fd = wl_outdir_tmp(&d, tmp);
    assert_true(fd >= 0);
    snprintf(path, sizeof path, "%s/%s", out, tmp);
    assert_int_equal(mode_of(path), 0640);
    assert_int_equal(write(fd, "x", 1), 1);
    const char *manifest = "manifest-pings-000000000001-000000000001.json";
    assert_int_equal(wl_outdir_publish(&d, fd, tmp, manifest), 0);
    wl_outdir_close(&d, 0);
    snprintf(path, sizeof path, "%s/%s", out, manifest);
    assert_int_equal(mode_of(path), 0640);
    assert_int_equal(mode_of(out), 0750);
    snprintf(path, sizeof path, "%s/parent", root);
    assert_int_equal(mode_of(path), 0750);

    umask(077);
    snprintf(out, sizeof out, "%s/strict", root);
    assert_int_equal(wl_outdir_open(&d, out, 0, err, sizeof err), 0);
    fd = wl_outdir_tmp(&d, tmp);
    assert_true(fd >= 0);
    assert_int_equal(wl_outdir_publish(&d, fd, tmp, "pings-000000000001-000000000001.csv.gz"), 0);
    wl_outdir_close(&d, 0);
    snprintf(path, sizeof path, "%s/pings-000000000001-000000000001.csv.gz", out);
    assert_int_equal(mode_of(path), 0600);
    assert_int_equal(mode_of(out), 0700);

    umask(old);
    wl_test_rmtree(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_round_trip),
        cmocka_unit_test(test_names_refused),
        cmocka_unit_test(test_cursor_names),
        cmocka_unit_test(test_scan_publish),
        cmocka_unit_test(test_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
