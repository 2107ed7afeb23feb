/* Temporary directories for the unit tests: one helper instead of a copy
 * of the same nftw callback in every test file. */
#ifndef WL_TEST_TMPDIR_H
#define WL_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static int wl_test_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* rm -rf path; returns 0, or -1 when something could not be removed. */
static inline int wl_test_rmtree(const char *path)
{
    return nftw(path, wl_test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
