/* Fuzz target: the configuration file and its rules (collector/config.c,
 * collector/rules.c).
 *
 * Input: an INI file, loaded by wl_config_load from a memfd (the loader
 * takes a path: /proc/self/fd/N). A file that loads is validated and
 * printed, and each of its rules is evaluated and stepped over accounts
 * derived from the input. The input as a whole is also parsed as one
 * condition. A condition that holds must still hold with its thresholds
 * relaxed (the grammar has no negation), and terms must stay in bounds. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"
#include "rules.h"

struct view_ctx {
    uint32_t seed;
};

static int has_feature(void *ctx, const char *name)
{
    struct view_ctx *c = ctx;
    return (strlen(name) + c->seed) % 3 == 0;
}

static int has_edition(void *ctx, const char *edition)
{
    struct view_ctx *c = ctx;
    return (strlen(edition) + c->seed) % 2 == 0;
}

static int past_value(void *ctx, enum wl_count metric, int days_ago, uint64_t *out)
{
    struct view_ctx *c = ctx;
    FUZZ_CHECK(metric >= 0 && metric < WL_N_COUNTS);
    FUZZ_CHECK(days_ago > 0);
    if ((c->seed + (unsigned)metric) % 4 == 0)
        return -1;
    *out = (c->seed * 7u + (unsigned)metric * 13u + (unsigned)days_ago) % 50;
    return 0;
}

static void check_expr(const struct wl_expr *e, uint32_t seed, double hysteresis)
{
    uint64_t totals[WL_N_COUNTS];
    struct view_ctx c = {.seed = seed};
    struct wl_account_view v = {.totals = totals, .installs = seed % 5,
                                .has_feature = has_feature, .has_edition = has_edition,
                                .past_value = past_value, .ctx = &c};
    struct wl_rule_term terms[8];

    for (int i = 0; i < WL_N_COUNTS; i++)
        totals[i] = (seed >> (i % 24)) % 400;
    int strict = wl_expr_eval(e, &v, 0);
    int relaxed = wl_expr_eval(e, &v, hysteresis);
    FUZZ_CHECK(strict == 0 || strict == 1);
    FUZZ_CHECK(relaxed == 0 || relaxed == 1);
    FUZZ_CHECK(!strict || relaxed);
    size_t n = wl_expr_terms(e, &v, terms, 8);
    FUZZ_CHECK(n <= 8);
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(terms[i].metric != NULL && terms[i].op != NULL && terms[i].text != NULL);
        FUZZ_CHECK(strlen(terms[i].metric) <= WL_TERM_METRIC_MAX);
        FUZZ_CHECK(strlen(terms[i].op) <= 2);
    }
    v.totals = NULL; /* an organization with no totals yet */
    (void)wl_expr_eval(e, &v, 0);
}

static void check_rule(const struct wl_rule *r, uint32_t seed)
{
    struct wl_rule_state st = {0};
    FUZZ_CHECK(r->when != NULL);
    FUZZ_CHECK(memchr(r->name, 0, sizeof r->name) != NULL);
    FUZZ_CHECK(r->hysteresis >= 0 && r->hysteresis < 1);
    check_expr(r->when, seed, r->hysteresis);
    check_expr(r->when, seed ^ 0x5a5a5a5au, r->hysteresis);

    uint64_t totals[WL_N_COUNTS] = {0};
    struct view_ctx c = {.seed = seed};
    struct wl_account_view v = {.totals = totals, .has_feature = has_feature,
                                .has_edition = has_edition, .past_value = past_value,
                                .ctx = &c};
    int64_t now = WL_SCORE_EPOCH_MS;
    for (int i = 0; i < 4; i++) {
        int fired = wl_rule_step(r, &st, &v, now);
        FUZZ_CHECK(fired == 0 || fired == 1);
        FUZZ_CHECK(!fired || st.disarmed);
        now += (int64_t)(r->cooldown_ms / 2) + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    static FILE *devnull;
    struct wl_config cfg;
    char err[512];
    uint32_t seed = 0;

    for (size_t i = 0; i < size; i++)
        seed = seed * 31 + data[i];

    /* the whole input as one condition */
    char *text = malloc(size + 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    struct wl_expr *e = NULL;
    if (wl_expr_parse(text, &e, err, sizeof err) == 0) {
        FUZZ_CHECK(e != NULL);
        check_expr(e, seed, 0.1);
        wl_expr_free(e);
    } else {
        FUZZ_CHECK(e == NULL);
        FUZZ_CHECK(err[0] != '\0');
    }
    free(text);

    /* the input as a configuration file */
    if (fd < 0) {
        fd = memfd_create("fuzz.ini", 0);
        FUZZ_CHECK(fd >= 0);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        devnull = fopen("/dev/null", "w");
        FUZZ_CHECK(devnull != NULL);
    }
    FUZZ_CHECK(ftruncate(fd, 0) == 0);
    FUZZ_CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);

    wl_config_defaults(&cfg);
    if (wl_config_load(&cfg, path, err, sizeof err) == 0) {
        (void)wl_config_validate(&cfg, err, sizeof err);
        wl_config_print(&cfg, devnull);
        FUZZ_CHECK(cfg.rules.n <= WL_RULES_MAX);
        for (size_t i = 0; i < cfg.rules.n; i++)
            check_rule(&cfg.rules.rules[i], seed + (uint32_t)i);
    } else {
        /* the error names the file and a line */
        FUZZ_CHECK(strncmp(err, path, strlen(path)) == 0);
    }
    wl_config_free(&cfg);
    return 0;
}
