/* Unit tests for the one bearer-token reader (collector/token.h) that the
 * collector, the CLI and the load generator share: tables of tokens that
 * must be accepted (and what they read as) and must be refused (and the
 * words the error uses), from text and from a file, NULs and control
 * characters included. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector/token.h"
#include "tmpdir.h"

#define T16 "abcdefghijklmnop" /* 16 characters: the shortest token */

struct accept {
    const char *in;
    size_t len;
    const char *token;
};

#define A(s, t) {s, sizeof(s) - 1, t}

static const struct accept must_accept[] = {
    A(T16, T16),
    A(T16 "\n", T16),
    A(T16 "\r\n", T16),
    A("read-0123456789abcdef0123456789abcdef", "read-0123456789abcdef0123456789abcdef"),
    A("A-Za-z0-9._~+/=!#$%&'*^`|{}()<>@,;:\"[]?\\", "A-Za-z0-9._~+/=!#$%&'*^`|{}()<>@,;:\"[]?\\"),
};

struct refuse {
    const char *in;
    size_t len;
    const char *why; /* in the message */
};

static const struct refuse must_refuse[] = {
    A("", "empty"),
    A("\n", "empty"),
    A("abcdefghijklmno", "too short"),         /* 15 */
    A("abcdefghijklmno\n", "too short"),
    A("abcdefgh\0ijklmnopqrstu", "a NUL byte"), /* would shorten the token to 8 */
    A(T16 "\0", "a NUL byte"),
    A(T16 "\n\0", "a line break"),  /* the first bad byte is named */
    A("abcdefgh\x1bijklmnopqrstu", "a control character"),
    A("abcdefgh\x7fijklmnopqrstu", "a control character"),
    A(T16 "\t", "a control character"),
    A("\t" T16, "a control character"),
    A(T16 "\n\n", "a line break"),
    A(T16 "\r", "a line break"),
    A(T16 "\n" T16, "a line break"),
    A(T16 "\r\r\n", "a line break"),
    A(" " T16, "a space"),
    A(T16 " ", "a space"),
    A(T16 " \n", "a space"),
    A("abcdefgh ijklmnopqrstu", "a space"),
    A(T16 "\xc3\xa9", "outside ASCII"),
    A(T16 "\xc2\x85", "outside ASCII"), /* C1 NEL in UTF-8 */
};

static void test_text_tables(void **state)
{
    (void)state;
    char err[256];
    char *tok;

    for (size_t i = 0; i < sizeof must_accept / sizeof must_accept[0]; i++) {
        const struct accept *a = &must_accept[i];
        err[0] = '\0';
        if (wl_token_from_text("T", a->in, a->len, &tok, err, sizeof err) != 0)
            fail_msg("must_accept[%zu] refused: %s", i, err);
        assert_string_equal(tok, a->token);
        free(tok);
    }
    for (size_t i = 0; i < sizeof must_refuse / sizeof must_refuse[0]; i++) {
        const struct refuse *r = &must_refuse[i];
        tok = (char *)"not touched";
        int rc = wl_token_from_text("WARMLINE_TOKEN", r->in, r->len, &tok, err, sizeof err);
        if (rc != -EINVAL)
            fail_msg("must_refuse[%zu] (%s): rc %d", i, r->why, rc);
        assert_null(tok);
        if (strstr(err, r->why) == NULL || strncmp(err, "WARMLINE_TOKEN: ", 16) != 0)
            fail_msg("must_refuse[%zu]: '%s' does not say '%s'", i, err, r->why);
    }
}

static void test_lengths(void **state)
{
    (void)state;
    char buf[WL_TOKEN_MAX + 4], err[256];
    char *tok;

    memset(buf, 'x', sizeof buf);
    assert_int_equal(wl_token_from_text("T", buf, WL_TOKEN_MAX, &tok, err, sizeof err), 0);
    assert_int_equal(strlen(tok), WL_TOKEN_MAX);
    free(tok);
    buf[WL_TOKEN_MAX] = '\r';
    buf[WL_TOKEN_MAX + 1] = '\n';
    assert_int_equal(wl_token_from_text("T", buf, WL_TOKEN_MAX + 2, &tok, err, sizeof err), 0);
    assert_int_equal(strlen(tok), WL_TOKEN_MAX);
    free(tok);
    memset(buf, 'x', sizeof buf);
    for (size_t n = WL_TOKEN_MAX + 1; n <= WL_TOKEN_MAX + 3; n++) {
        assert_int_equal(wl_token_from_text("T", buf, n, &tok, err, sizeof err), -EINVAL);
        assert_non_null(strstr(err, "longer than 4096 bytes"));
    }
}

static void put_file(const char *path, const char *bytes, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bytes, n), (ssize_t)n);
    close(fd);
}

/* The file reader applies the same table, and names the option and file. */
static void test_files(void **state)
{
    (void)state;
    char root[] = "/tmp/wl-test-token-XXXXXX", path[128], err[1300];
    char *tok;
    assert_non_null(mkdtemp(root));
    snprintf(path, sizeof path, "%s/t", root);

    for (size_t i = 0; i < sizeof must_accept / sizeof must_accept[0]; i++) {
        put_file(path, must_accept[i].in, must_accept[i].len);
        if (wl_token_from_file("read_token_file", path, &tok, err, sizeof err) != 0)
            fail_msg("must_accept[%zu] refused: %s", i, err);
        assert_string_equal(tok, must_accept[i].token);
        free(tok);
    }
    for (size_t i = 0; i < sizeof must_refuse / sizeof must_refuse[0]; i++) {
        char want[200];
        put_file(path, must_refuse[i].in, must_refuse[i].len);
        assert_int_equal(wl_token_from_file("read_token_file", path, &tok, err, sizeof err),
                         -EINVAL);
        assert_null(tok);
        snprintf(want, sizeof want, "read_token_file %s: ", path);
        if (strncmp(err, want, strlen(want)) != 0 || strstr(err, must_refuse[i].why) == NULL)
            fail_msg("must_refuse[%zu]: '%s'", i, err);
    }

    static char big[WL_TOKEN_MAX + 100];
    memset(big, 'y', sizeof big);
    put_file(path, big, sizeof big);
    assert_int_equal(wl_token_from_file("--token-file", path, &tok, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "longer than"));
    put_file(path, big, WL_TOKEN_MAX);
    assert_int_equal(wl_token_from_file("--token-file", path, &tok, err, sizeof err), 0);
    free(tok);

    snprintf(path, sizeof path, "%s/missing", root);
    assert_int_equal(wl_token_from_file("--token-file", path, &tok, err, sizeof err), -ENOENT);
    assert_null(tok);
    assert_non_null(strstr(err, "--token-file"));
    assert_non_null(strstr(err, "No such file"));
    wl_test_rmtree(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_tables),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
