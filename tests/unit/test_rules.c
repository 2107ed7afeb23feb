/* Unit tests for collector/rules.h: conditions that must parse and must not
 * (with the column and reason), evaluation over a fake account view, relaxed
 * thresholds, growth, explanations, the edge trigger (hysteresis, cooldown),
 * rule set values and errors, and decayed scores. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

#define SEC ((int64_t)1000)
#define HOUR (3600 * SEC)
#define DAY (86400 * SEC)
#define T0 (WL_SCORE_EPOCH_MS + 1000 * DAY)

/* |a - b| <= eps, printing both operands (this cmocka has no double asserts). */
#define assert_double_equal(a, b, eps) assert_near((a), (b), (eps), #a, __FILE__, __LINE__)

static void assert_near(double a, double b, double eps, const char *expr, const char *file,
                        int line)
{
    if (!(fabs(a - b) <= eps) && !(a == b))
        fail_msg("%s:%d: %s = %.17g, want %.17g (within %g)", file, line, expr, a, b, eps);
}

/* In a table test: report one failing case and go on with the others. */
#define CASE_FAIL(...) (print_error(__VA_ARGS__), bad++)

/* ---- a fake organization ---- */

struct past {
    enum wl_count metric;
    int days;
    int known;
    uint64_t value;
};

struct fake {
    uint64_t totals[WL_N_COUNTS];
    uint64_t installs;
    const char *features[4];
    const char *editions[4];
    struct past past[8];
};

static int in_set(const char *const *set, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (set[i] != NULL && strcmp(set[i], name) == 0)
            return 1;
    }
    return 0;
}

static int fake_has_feature(void *ctx, const char *name)
{
    struct fake *f = ctx;
    return in_set(f->features, 4, name);
}

static int fake_has_edition(void *ctx, const char *edition)
{
    struct fake *f = ctx;
    return in_set(f->editions, 4, edition);
}

static int fake_past_value(void *ctx, enum wl_count metric, int days_ago, uint64_t *out)
{
    struct fake *f = ctx;
    for (size_t i = 0; i < 8; i++) {
        const struct past *p = &f->past[i];
        if (p->known && p->metric == metric && p->days == days_ago) {
            *out = p->value;
            return 0;
        }
    }
    return -1;
}

static struct wl_account_view view_of(struct fake *f)
{
    return (struct wl_account_view){
        .totals = f->totals,
        .installs = f->installs,
        .has_feature = fake_has_feature,
        .has_edition = fake_has_edition,
        .past_value = fake_past_value,
        .ctx = f,
    };
}

/* The organization of the eval tables. */
static void fake_standard(struct fake *f)
{
    memset(f, 0, sizeof *f);
    f->totals[WL_COUNT_registered_users] = 4600;
    f->totals[WL_COUNT_active_users_monthly] = 120;
    f->totals[WL_COUNT_teams] = 5;
    f->totals[WL_COUNT_public_channels] = 30;
    f->totals[WL_COUNT_private_channels] = 20;
    f->totals[WL_COUNT_posts] = 1999999;
    f->installs = 2;
    f->features[0] = "saml_configured";
    f->editions[0] = "team";
    /* +50% in 30 days; -50% in 7 days; posts' past is 0; public_channels'
     * 7-day past is unknown (no entry). */
    f->past[0] = (struct past){WL_COUNT_active_users_monthly, 30, 1, 80};
    f->past[1] = (struct past){WL_COUNT_teams, 7, 1, 10};
    f->past[2] = (struct past){WL_COUNT_posts, 30, 1, 0};
}

static struct wl_expr *parse_ok(const char *text)
{
    struct wl_expr *e = NULL;
    char err[512];
    int rc = wl_expr_parse(text, &e, err, sizeof err);
    if (rc != 0)
        fail_msg("'%s' does not parse: %s", text, err);
    assert_non_null(e);
    return e;
}

/* ---- parsing ---- */

static const char *const default_rules[] = {
    "active_users_monthly > 25",
    "installs >= 2",
    "growth_30d(active_users_monthly) >= 50 and active_users_monthly >= 10",
    "has_feature(saml_configured) or has_feature(ldap_configured)",
    "edition == \"enterprise\"",
    "active_users_monthly >= 100",
    "active_users_monthly >= 200",
    "active_users_monthly >= 300",
    "active_users_monthly >= 500",
    "teams >= 5",
    "public_channels + private_channels >= 50",
    "posts >= 2000000",
    "registered_users >= 4500",
};
#define N_DEFAULT_RULES (sizeof default_rules / sizeof default_rules[0])

static void test_must_parse(void **state)
{
    (void)state;
    static const char *const more[] = {
        "teams>=5",
        "  teams\t>=\n5  ",
        "(teams >= 5)",
        "((teams >= 5) and (installs > 1)) or edition == \"team\"",
        "teams >= 5 and teams < 10 or posts > 1",
        "growth_7d(posts) > 0.5",
        "growth_7d( teams ) < -20",
        "growth_30d(direct_message_channels) == 0",
        "has_feature(plugin.com-mattermost_calls2)",
        "has_feature( 0day )",
        "installs == 3",
        "installs + teams + posts >= 1",
        "teams <= 1.25 or teams < 0",
        "edition==\"Enterprise Advanced\"",
        "has_feature(a) and has_feature(b) and has_feature(c) or has_feature(d)",
        "system_admins + bot_accounts + guest_accounts + incoming_webhooks + "
        "outgoing_webhooks + slash_commands > 0",
        "posts_previous_day + active_users_daily + registered_users >= 1",
    };
    int bad = 0;
    char err[512];

    for (size_t i = 0; i < N_DEFAULT_RULES + sizeof more / sizeof more[0]; i++) {
        const char *text = i < N_DEFAULT_RULES ? default_rules[i] : more[i - N_DEFAULT_RULES];
        struct wl_expr *e = NULL;
        if (wl_expr_parse(text, &e, err, sizeof err) != 0 || e == NULL)
            CASE_FAIL("must parse: '%s': %s\n", text, err);
        wl_expr_free(e);
    }

    /* 32 nested parentheses are allowed. */
    char deep[256] = "";
    for (int i = 0; i < 32; i++)
        strcat(deep, "(");
    strcat(deep, "teams > 1");
    for (int i = 0; i < 32; i++)
        strcat(deep, ")");
    struct wl_expr *e = NULL;
    if (wl_expr_parse(deep, &e, err, sizeof err) != 0)
        CASE_FAIL("must parse: 32 nested: %s\n", err);
    wl_expr_free(e);
    assert_int_equal(bad, 0);
}

static void test_must_not_parse(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int column;
        const char *reason; /* a substring of the message */
    } cases[] = {
        {"", 1, "empty condition"},
        {"   ", 4, "empty condition"},
        {"users > 5", 1, "unknown metric 'users' (known: registered_users, active_users_daily"},
        {"teams > 5 and Teams > 1", 15, "unknown metric 'Teams'"},
        {"foo(teams) > 1", 1, "unknown function 'foo'"},
        {"growth_14d(teams) > 1", 1, "unknown function 'growth_14d'"},
        {"(teams > 5", 11, "expected ')', found end of condition"},
        {"((teams > 5) and posts > 1", 27, "expected ')'"},
        {"teams 5", 7, "expected an operator"},
        {"teams = 5", 7, "expected an operator (>=, >, <=, <, ==), found '='"},
        {"teams => 5", 7, "expected an operator"},
        {"teams > 5 6", 11, "expected 'and', 'or' or end of condition, found number '6'"},
        {"teams > 5 posts > 6", 11, "expected 'and', 'or'"},
        {"teams > 5 AND posts > 1", 11, "found 'AND'"},
        {"teams > 5)", 10, "unbalanced ')'"},
        {"teams >= 5 & posts > 1", 12, "found '&'"},
        {"has_feature(saml) > 1", 19, "expected 'and', 'or'"},
        {"edition >= 5", 9, "expected '==' after edition"},
        {"edition == enterprise", 12, "double-quoted"},
        {"edition == \"enterprise", 12, "unterminated string"},
        {"edition == \"\"", 12, "empty edition"},
        {"edition", 8, "found end of condition"},
        {"teams + edition == \"e\"", 9, "cannot be part of a sum"},
        {"has_feature() or teams > 1", 13, "expected a feature name"},
        {"has_feature", 12, "expected '(' after has_feature"},
        {"has_feature(saml", 17, "expected ')'"},
        {"has_feature(sa ml)", 16, "expected ')', found 'ml'"},
        {"not teams > 5", 5, "expected has_feature after not"},
        {"not not has_feature(x)", 5, "expected has_feature after not"},
        {"growth_7d(installs) > 1", 11, "expected a metric in growth_7d(), found 'installs'"},
        {"growth_30d(growth_7d(teams)) > 1", 12, "expected a metric in growth_30d()"},
        {"growth_7d(5) > 1", 11, "found number '5'"},
        {"growth_7d(users) > 1", 11, "unknown metric 'users'"},
        {"growth_7d(teams > 1", 17, "expected ')'"},
        {"5 < teams", 1, "number goes on the right"},
        {"-5 < growth_7d(teams)", 1, "number goes on the right"},
        {"teams > posts", 9, "expected a number, found 'posts'"},
        {"teams >", 8, "expected a number, found end of condition"},
        {"teams > \"5\"", 9, "expected a number, found string \"5\""},
        {"teams > 1e5", 9, "malformed number '1e5'"},
        {"teams > 1.", 9, "malformed number"},
        {"teams > 1.2.3", 9, "malformed number"},
        {"teams > 5 and", 14, "expected a metric, found end of condition"},
        {"teams > 5 or or posts > 1", 14, "expected a metric, found 'or'"},
        {"or teams > 5", 1, "expected a metric, found 'or'"},
        {"()", 2, "expected a metric, found ')'"},
        {"teams + > 5", 9, "expected a metric"},
        {"teams > 5 and ()", 16, "expected a metric"},
    };
    int bad = 0;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct wl_expr *e = (struct wl_expr *)&bad; /* must be reset to NULL */
        char err[512] = "";
        char prefix[32];
        int rc = wl_expr_parse(cases[i].text, &e, err, sizeof err);
        snprintf(prefix, sizeof prefix, "column %d: ", cases[i].column);
        if (rc != -1 || e != NULL) {
            CASE_FAIL("must not parse: '%s' parsed\n", cases[i].text);
            if (rc == 0)
                wl_expr_free(e);
            continue;
        }
        if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, cases[i].reason) == NULL)
            CASE_FAIL("must not parse: '%s': got \"%s\", want \"%s...%s...\"\n", cases[i].text,
                      err, prefix, cases[i].reason);
    }

    /* Nesting deeper than 32: the 33rd '(' is the error. */
    char deep[256] = "";
    for (int i = 0; i < 33; i++)
        strcat(deep, "(");
    strcat(deep, "teams > 1");
    for (int i = 0; i < 33; i++)
        strcat(deep, ")");
    struct wl_expr *e = NULL;
    char err[512] = "";
    if (wl_expr_parse(deep, &e, err, sizeof err) != -1 ||
        strncmp(err, "column 33: ", 11) != 0 || strstr(err, "deeper than 32") == NULL)
        CASE_FAIL("must not parse: 33 nested: got \"%s\"\n", err);
    wl_expr_free(e);

    /* A sum of 17 values: the 17th is the error (8 characters per "teams + "). */
    char sum[256] = "";
    for (int i = 0; i < 17; i++)
        strcat(sum, "teams + ");
    strcat(sum, "teams > 1");
    e = NULL;
    if (wl_expr_parse(sum, &e, err, sizeof err) != -1 ||
        strncmp(err, "column 129: ", 12) != 0 || strstr(err, "at most 16 values") == NULL)
        CASE_FAIL("must not parse: long sum: got \"%s\"\n", err);
    wl_expr_free(e);

    /* A small error buffer is never overrun and stays terminated. */
    char small[12];
    memset(small, 'x', sizeof small);
    assert_int_equal(wl_expr_parse("users > 5", &e, small, sizeof small), -1);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_int_equal(bad, 0);
}

/* ---- evaluation ---- */

static void test_eval_table(void **state)
{
    (void)state;
    static const struct {
        const char *when;
        int want;
    } cases[] = {
        /* The default rules. */
        {"active_users_monthly > 25", 1},
        {"installs >= 2", 1},
        {"growth_30d(active_users_monthly) >= 50 and active_users_monthly >= 10", 1},
        {"has_feature(saml_configured) or has_feature(ldap_configured)", 1},
        {"edition == \"enterprise\"", 0},
        {"active_users_monthly >= 100", 1},
        {"active_users_monthly >= 200", 0},
        {"teams >= 5", 1},
        {"public_channels + private_channels >= 50", 1},
        {"public_channels + private_channels > 50", 0},
        {"posts >= 2000000", 0},
        {"registered_users >= 4500", 1},
        /* Operators at the boundary. */
        {"teams > 5", 0},
        {"teams == 5", 1},
        {"teams <= 5", 1},
        {"teams < 5", 0},
        {"teams >= 5.5", 0},
        {"teams < 5.5", 1},
        {"installs == 2", 1},
        {"installs > 2", 0},
        {"edition == \"team\"", 1},
        {"has_feature(ldap_configured)", 0},
        {"has_feature(SAML_configured)", 0},
        {"not has_feature(ldap_configured)", 1},
        {"not has_feature(saml_configured)", 0},
        {"teams <= 5 and not has_feature(licensed)", 1},
        /* Growth: +50%, -50%, past 0, past unknown. */
        {"growth_30d(active_users_monthly) == 50", 1},
        {"growth_30d(active_users_monthly) > 50", 0},
        {"growth_7d(active_users_monthly) >= 0", 0},
        {"growth_7d(teams) < 0", 1},
        {"growth_7d(teams) == -50", 1},
        {"growth_7d(teams) <= -50", 1},
        {"growth_7d(teams) < -50", 0},
        {"growth_7d(teams) > -60", 1},
        {"growth_7d(teams) >= 0", 0},
        {"growth_30d(posts) >= 0", 0},
        {"growth_30d(posts) < 0", 0},
        {"growth_7d(public_channels) >= 0", 0},
        {"growth_7d(public_channels) < 0", 0},
        {"growth_7d(public_channels) == 0", 0},
        /* Sums: a growth plus a total; an undefined summand. */
        {"growth_30d(active_users_monthly) + teams == 55", 1},
        {"growth_7d(teams) + installs == -48", 1},
        {"growth_7d(public_channels) + teams >= 0", 0},
        {"teams + growth_30d(posts) < 1000", 0},
        {"installs + teams + public_channels >= 37", 1},
        {"installs + teams + public_channels >= 38", 0},
        /* An undefined comparison is only false: the rest still decides. */
        {"growth_30d(posts) > 0 or teams == 5", 1},
        {"growth_30d(posts) > 0 and teams == 5", 0},
        /* and binds tighter than or. */
        {"teams > 100 and teams > 1 or installs == 2", 1},
        {"teams > 100 and (teams > 1 or installs == 2)", 0},
        {"installs == 2 or teams > 100 and posts > 1", 1},
        {"installs == 3 or teams > 100 and posts > 1", 0},
        {"(installs == 3 or teams > 1) and posts > 1", 1},
        {"teams > 1 and installs > 1 and posts > 1 and registered_users > 1", 1},
        {"teams > 1 and installs > 1 and posts > 1 and registered_users > 5000", 0},
        {"teams > 10 or installs > 10 or posts > 10000000 or has_feature(saml_configured)", 1},
        {"teams > 10 or installs > 10 or posts > 10000000 or has_feature(x)", 0},
    };
    struct fake f;
    fake_standard(&f);
    struct wl_account_view v = view_of(&f);
    int bad = 0;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct wl_expr *e = parse_ok(cases[i].when);
        int got = wl_expr_eval(e, &v, 0);
        if (got != cases[i].want)
            CASE_FAIL("eval '%s': got %d, want %d\n", cases[i].when, got, cases[i].want);
        wl_expr_free(e);
    }
    assert_int_equal(bad, 0);
}

/* No callbacks: no feature, no edition, every growth undefined. */
static void test_eval_without_callbacks(void **state)
{
    (void)state;
    uint64_t totals[WL_N_COUNTS] = {0};
    totals[WL_COUNT_teams] = 3;
    struct wl_account_view v = {.totals = totals, .installs = 1};
    static const struct {
        const char *when;
        int want;
    } cases[] = {
        {"teams == 3", 1},
        {"installs == 1", 1},
        {"has_feature(saml_configured)", 0},
        {"edition == \"team\"", 0},
        {"growth_7d(teams) >= 0", 0},
        {"growth_7d(teams) < 0", 0},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct wl_expr *e = parse_ok(cases[i].when);
        if (wl_expr_eval(e, &v, 0) != cases[i].want)
            CASE_FAIL("eval '%s' without callbacks: want %d\n", cases[i].when, cases[i].want);
        wl_expr_free(e);
    }
    assert_int_equal(bad, 0);
}

static void test_eval_relax(void **state)
{
    (void)state;
    static const struct {
        const char *when;
        uint64_t teams;
        double relax;
        int want;
    } cases[] = {
        /* >= and >: threshold * (1 - relax). */
        {"teams >= 100", 95, 0, 0},
        {"teams >= 100", 95, 0.10, 1},
        {"teams >= 100", 90, 0.10, 1},
        {"teams >= 100", 89, 0.10, 0},
        {"teams > 100", 90, 0.10, 0},
        {"teams > 100", 91, 0.10, 1},
        {"teams >= 100", 50, 0.5, 1},
        {"teams >= 100", 49, 0.5, 0},
        /* <= and <: threshold * (1 + relax). */
        {"teams <= 100", 105, 0, 0},
        {"teams <= 100", 110, 0.10, 1},
        {"teams <= 100", 111, 0.10, 0},
        {"teams < 100", 110, 0.10, 0},
        {"teams < 100", 109, 0.10, 1},
        /* == is not relaxed. */
        {"teams == 100", 99, 0.5, 0},
        {"teams == 100", 100, 0.5, 1},
        /* A threshold of 0 does not move. */
        {"teams > 0", 0, 0.5, 0},
        /* Sums are relaxed as one value. */
        {"teams + installs >= 100", 88, 0.10, 1}, /* 88 + 2 = 90 */
        {"teams + installs >= 100", 87, 0.10, 0},
        /* Compound: every threshold moves. */
        {"teams >= 100 and installs >= 2", 90, 0.10, 1},
        {"teams >= 100 and installs >= 3", 90, 0.10, 0}, /* 2 < 2.7 */
        {"teams >= 200 or installs >= 2", 180, 0.10, 1},
        /* has_feature and edition are not relaxed. */
        {"has_feature(x) or teams >= 100", 95, 0.10, 1},
        {"has_feature(x) and teams >= 100", 95, 0.10, 0},
        {"edition == \"team\" and teams >= 100", 95, 0.10, 1},
        {"edition == \"other\" and teams >= 100", 95, 0.10, 0},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fake f;
        fake_standard(&f);
        f.totals[WL_COUNT_teams] = cases[i].teams;
        struct wl_account_view v = view_of(&f);
        struct wl_expr *e = parse_ok(cases[i].when);
        int got = wl_expr_eval(e, &v, cases[i].relax);
        if (got != cases[i].want)
            CASE_FAIL("eval '%s' teams=%" PRIu64 " relax=%g: got %d, want %d\n", cases[i].when,
                      cases[i].teams, cases[i].relax, got, cases[i].want);
        wl_expr_free(e);
    }
    assert_int_equal(bad, 0);
}

/* Growth is a percent that can be negative; relaxing a negative threshold
 * still moves it toward "still true" (a decision: rules.h's t*(1-h) is for
 * t >= 0). Undefined growth is false whatever the relax. */
static void test_eval_growth_relax(void **state)
{
    (void)state;
    struct fake f;
    fake_standard(&f);
    f.past[1] = (struct past){WL_COUNT_teams, 7, 1, 100};
    f.totals[WL_COUNT_teams] = 54; /* -46% */
    struct wl_account_view v = view_of(&f);

    struct wl_expr *e = parse_ok("growth_7d(teams) <= -50");
    assert_int_equal(wl_expr_eval(e, &v, 0), 0);
    assert_int_equal(wl_expr_eval(e, &v, 0.10), 1); /* -46 <= -45 */
    f.totals[WL_COUNT_teams] = 56;                   /* -44% */
    assert_int_equal(wl_expr_eval(e, &v, 0.10), 0);
    wl_expr_free(e);

    e = parse_ok("growth_7d(teams) >= -50");
    f.totals[WL_COUNT_teams] = 46; /* -54% */
    assert_int_equal(wl_expr_eval(e, &v, 0), 0);
    assert_int_equal(wl_expr_eval(e, &v, 0.10), 1); /* -54 >= -55 */
    wl_expr_free(e);

    e = parse_ok("growth_30d(posts) >= 10 or growth_7d(public_channels) <= 10");
    assert_int_equal(wl_expr_eval(e, &v, 0.99), 0);
    wl_expr_free(e);

    /* Growth from 1 to 3 is +200%. */
    f.past[3] = (struct past){WL_COUNT_guest_accounts, 30, 1, 1};
    f.totals[WL_COUNT_guest_accounts] = 3;
    e = parse_ok("growth_30d(guest_accounts) == 200");
    assert_int_equal(wl_expr_eval(e, &v, 0), 1);
    wl_expr_free(e);
}

/* ---- explanations ---- */

static void assert_term(const struct wl_rule_term *t, const char *metric, double value,
                        const char *op, double threshold, const char *text)
{
    assert_string_equal(t->metric, metric);
    if (isnan(value))
        assert_true(isnan(t->value));
    else
        assert_double_equal(t->value, value, 1e-9);
    assert_string_equal(t->op, op);
    assert_double_equal(t->threshold, threshold, 1e-9);
    assert_string_equal(t->text, text);
}

static void test_terms(void **state)
{
    (void)state;
    struct fake f;
    fake_standard(&f);
    struct wl_account_view v = view_of(&f);
    struct wl_expr *e = parse_ok(
        "growth_30d(active_users_monthly) >= 50 and active_users_monthly >= 10 or "
        "(has_feature(saml_configured) or has_feature(ldap_configured)) or "
        "edition == \"enterprise\" or public_channels + private_channels >= 50 or "
        "growth_7d(public_channels) > 1 or installs < 3 or teams == 5.5");
    struct wl_rule_term t[16];

    size_t n = wl_expr_terms(e, &v, t, 16);
    assert_int_equal(n, 9);
    assert_term(&t[0], "growth_30d(active_users_monthly)", 50, ">=", 50, "");
    assert_term(&t[1], "active_users_monthly", 120, ">=", 10, "");
    assert_term(&t[2], "has_feature", 1, "==", 1, "saml_configured");
    assert_term(&t[3], "has_feature", 0, "==", 1, "ldap_configured");
    assert_term(&t[4], "edition", 0, "==", 1, "enterprise");
    assert_term(&t[5], "public_channels+private_channels", 50, ">=", 50, "");
    assert_term(&t[6], "growth_7d(public_channels)", NAN, ">", 1, "");
    assert_term(&t[7], "installs", 2, "<", 3, "");
    assert_term(&t[8], "teams", 5, "==", 5.5, "");

    /* Fewer slots: the first ones, no write past max. */
    memset(t, 0x5a, sizeof t);
    assert_int_equal(wl_expr_terms(e, &v, t, 2), 2);
    assert_term(&t[1], "active_users_monthly", 120, ">=", 10, "");
    assert_int_equal(((unsigned char *)&t[2])[0], 0x5a);
    assert_int_equal(wl_expr_terms(e, &v, NULL, 0), 0);
    wl_expr_free(e);

    e = parse_ok("edition == \"team\"");
    assert_int_equal(wl_expr_terms(e, &v, t, 16), 1);
    assert_term(&t[0], "edition", 1, "==", 1, "team");
    wl_expr_free(e);

    e = parse_ok("growth_7d(teams) + installs + growth_30d(posts) >= -100");
    assert_int_equal(wl_expr_terms(e, &v, t, 16), 1);
    assert_term(&t[0], "growth_7d(teams)+installs+growth_30d(posts)", NAN, ">=", -100, "");
    wl_expr_free(e);
}

/* ---- the edge trigger ---- */

/* Adds one rule to a fresh set (weight default); fails the test on error. */
static void add_rule(struct wl_ruleset *rs, const char *when, const char *cooldown,
                     const char *hysteresis)
{
    char err[512];
    memset(rs, 0, sizeof *rs);
    if (wl_ruleset_add(rs, "r", when, NULL, cooldown, hysteresis, NULL, err, sizeof err) != 0)
        fail_msg("add '%s': %s", when, err);
}

/* One step with active_users_monthly = users. */
static int step_users(const struct wl_rule *r, struct wl_rule_state *st, struct fake *f,
                      uint64_t users, int64_t now)
{
    f->totals[WL_COUNT_active_users_monthly] = users;
    struct wl_account_view v = view_of(f);
    return wl_rule_step(r, st, &v, now);
}

static void test_step_edge_not_level(void **state)
{
    (void)state;
    struct wl_ruleset rs;
    struct fake f;
    struct wl_rule_state st = {0};
    add_rule(&rs, "active_users_monthly >= 100", "0", NULL);
    fake_standard(&f);

    assert_int_equal(step_users(&rs.rules[0], &st, &f, 50, T0), 0);
    assert_int_equal(st.disarmed, 0);
    assert_int_equal(step_users(&rs.rules[0], &st, &f, 100, T0 + 1), 1);
    assert_int_equal(st.disarmed, 1);
    assert_int_equal(st.last_fired, T0 + 1);
    /* The level stays true: no more firing, however long. */
    for (int i = 2; i < 50; i++)
        assert_int_equal(step_users(&rs.rules[0], &st, &f, 100 + (uint64_t)i, T0 + i * DAY), 0);
    assert_int_equal(st.last_fired, T0 + 1);

    /* A zeroed state with the condition already true fires at once. */
    struct wl_rule_state fresh = {0};
    assert_int_equal(step_users(&rs.rules[0], &fresh, &f, 500, T0), 1);
    wl_ruleset_clear(&rs);
}

static void test_step_hysteresis(void **state)
{
    (void)state;
    struct wl_ruleset rs;
    struct fake f;
    struct wl_rule_state st = {0};
    add_rule(&rs, "active_users_monthly >= 100", "1d", "10%");
    const struct wl_rule *r = &rs.rules[0];
    fake_standard(&f);

    assert_int_equal(step_users(r, &st, &f, 100, T0), 1);
    /* 95% and 90% of the threshold: still within the hysteresis. */
    assert_int_equal(step_users(r, &st, &f, 95, T0 + 2 * DAY), 0);
    assert_int_equal(st.disarmed, 1);
    assert_int_equal(step_users(r, &st, &f, 90, T0 + 3 * DAY), 0);
    assert_int_equal(st.disarmed, 1);
    /* Back above: not an edge, it never re-armed. */
    assert_int_equal(step_users(r, &st, &f, 100, T0 + 4 * DAY), 0);
    /* 89%: re-arms (the re-arming step itself never fires). */
    assert_int_equal(step_users(r, &st, &f, 89, T0 + 5 * DAY), 0);
    assert_int_equal(st.disarmed, 0);
    assert_int_equal(step_users(r, &st, &f, 99, T0 + 6 * DAY), 0);
    /* Rises again, cooldown passed: fires. */
    assert_int_equal(step_users(r, &st, &f, 100, T0 + 7 * DAY), 1);
    assert_int_equal(st.last_fired, T0 + 7 * DAY);
    wl_ruleset_clear(&rs);
}

static void test_step_zero_hysteresis(void **state)
{
    (void)state;
    struct wl_ruleset rs;
    struct fake f;
    struct wl_rule_state st = {0};
    add_rule(&rs, "teams >= 5", "0s", "0");
    const struct wl_rule *r = &rs.rules[0];
    fake_standard(&f);
    struct wl_account_view v = view_of(&f);

    f.totals[WL_COUNT_teams] = 5;
    assert_int_equal(wl_rule_step(r, &st, &v, T0), 1);
    assert_int_equal(wl_rule_step(r, &st, &v, T0 + 1), 0);
    f.totals[WL_COUNT_teams] = 4;
    assert_int_equal(wl_rule_step(r, &st, &v, T0 + 2), 0);
    assert_int_equal(st.disarmed, 0);
    f.totals[WL_COUNT_teams] = 5;
    assert_int_equal(wl_rule_step(r, &st, &v, T0 + 3), 1); /* cooldown 0: every edge fires */
    f.totals[WL_COUNT_teams] = 4;
    assert_int_equal(wl_rule_step(r, &st, &v, T0 + 4), 0);
    f.totals[WL_COUNT_teams] = 6;
    assert_int_equal(wl_rule_step(r, &st, &v, T0 + 5), 1);
    wl_ruleset_clear(&rs);
}

/* Inside the cooldown an edge is suppressed and disarms: the level staying
 * true after the cooldown does not fire; a new edge after it does. */
static void test_step_cooldown(void **state)
{
    (void)state;
    struct wl_ruleset rs;
    struct fake f;
    struct wl_rule_state st = {0};
    add_rule(&rs, "active_users_monthly >= 100", "7d", "10%");
    const struct wl_rule *r = &rs.rules[0];
    fake_standard(&f);

    assert_int_equal(step_users(r, &st, &f, 120, T0), 1);
    assert_int_equal(step_users(r, &st, &f, 50, T0 + 1 * DAY), 0); /* re-arms */
    assert_int_equal(st.disarmed, 0);
    /* A new edge inside the cooldown: suppressed, disarmed, last_fired kept. */
    assert_int_equal(step_users(r, &st, &f, 120, T0 + 2 * DAY), 0);
    assert_int_equal(st.disarmed, 1);
    assert_int_equal(st.last_fired, T0);
    /* The level is still true after the cooldown: no firing. */
    assert_int_equal(step_users(r, &st, &f, 130, T0 + 8 * DAY), 0);
    assert_int_equal(step_users(r, &st, &f, 130, T0 + 30 * DAY), 0);
    /* Falls, then a new edge after the cooldown: fires. */
    assert_int_equal(step_users(r, &st, &f, 10, T0 + 31 * DAY), 0);
    assert_int_equal(step_users(r, &st, &f, 100, T0 + 32 * DAY), 1);
    assert_int_equal(st.last_fired, T0 + 32 * DAY);

    /* Exactly the cooldown after the last firing: fires; one ms less: not. */
    struct wl_rule_state a = {0}, b = {0};
    assert_int_equal(step_users(r, &a, &f, 100, T0), 1);
    assert_int_equal(step_users(r, &a, &f, 0, T0 + 1), 0);
    assert_int_equal(step_users(r, &a, &f, 100, T0 + 7 * DAY), 1);
    assert_int_equal(step_users(r, &b, &f, 100, T0), 1);
    assert_int_equal(step_users(r, &b, &f, 0, T0 + 1), 0);
    assert_int_equal(step_users(r, &b, &f, 100, T0 + 7 * DAY - 1), 0);

    /* An event time before the last firing counts as inside the cooldown. */
    struct wl_rule_state c = {.disarmed = 0, .last_fired = T0};
    assert_int_equal(step_users(r, &c, &f, 100, T0 - 30 * DAY), 0);
    assert_int_equal(c.last_fired, T0);
    wl_ruleset_clear(&rs);
}

static void test_step_compound(void **state)
{
    (void)state;
    struct wl_ruleset rs;
    struct fake f;
    struct wl_rule_state st = {0};
    add_rule(&rs, "growth_30d(active_users_monthly) >= 50 and active_users_monthly >= 10",
             "0", NULL);
    const struct wl_rule *r = &rs.rules[0];
    fake_standard(&f);
    f.past[0] = (struct past){WL_COUNT_active_users_monthly, 30, 1, 6};

    /* 9 users: +50% but below 10. */
    assert_int_equal(step_users(r, &st, &f, 9, T0), 0);
    /* 10 users: +66%, fires. */
    assert_int_equal(step_users(r, &st, &f, 10, T0 + 1), 1);
    /* 9 users: +50% and 9 >= 10*0.9: relaxed still true, stays disarmed. */
    assert_int_equal(step_users(r, &st, &f, 9, T0 + 2), 0);
    assert_int_equal(st.disarmed, 1);
    /* 8 users: relaxed false (8 < 9), re-arms. */
    assert_int_equal(step_users(r, &st, &f, 8, T0 + 3), 0);
    assert_int_equal(st.disarmed, 0);
    assert_int_equal(step_users(r, &st, &f, 12, T0 + 4), 1);
    /* The past becomes unknown: growth undefined, relaxed false, re-arms. */
    f.past[0].known = 0;
    assert_int_equal(step_users(r, &st, &f, 12, T0 + 5), 0);
    assert_int_equal(st.disarmed, 0);
    /* Still undefined: no firing. */
    assert_int_equal(step_users(r, &st, &f, 12, T0 + 6), 0);
    /* The past comes back as 0: still undefined. */
    f.past[0] = (struct past){WL_COUNT_active_users_monthly, 30, 1, 0};
    assert_int_equal(step_users(r, &st, &f, 12, T0 + 7), 0);
    f.past[0].value = 8; /* +50% */
    assert_int_equal(step_users(r, &st, &f, 12, T0 + 8), 1);
    wl_ruleset_clear(&rs);

    /* An or: fires on either; re-arms only when both relaxed sides are false. */
    add_rule(&rs, "has_feature(saml_configured) or active_users_monthly >= 100", "0", NULL);
    r = &rs.rules[0];
    fake_standard(&f);
    f.features[0] = NULL;
    struct wl_rule_state s2 = {0};
    assert_int_equal(step_users(r, &s2, &f, 10, T0), 0);
    f.features[0] = "saml_configured";
    assert_int_equal(step_users(r, &s2, &f, 10, T0 + 1), 1);
    assert_int_equal(step_users(r, &s2, &f, 100, T0 + 2), 0); /* other side: same level */
    f.features[0] = NULL;
    assert_int_equal(step_users(r, &s2, &f, 95, T0 + 3), 0);
    assert_int_equal(s2.disarmed, 1);
    assert_int_equal(step_users(r, &s2, &f, 50, T0 + 4), 0);
    assert_int_equal(s2.disarmed, 0);
    assert_int_equal(step_users(r, &s2, &f, 100, T0 + 5), 1);
    wl_ruleset_clear(&rs);
}

/* ---- the rule set ---- */

static void test_ruleset_defaults(void **state)
{
    (void)state;
    struct wl_ruleset rs;
    char err[512];
    memset(&rs, 0, sizeof rs);

    assert_int_equal(wl_ruleset_add(&rs, "teams-5", "teams >= 5", NULL, NULL, NULL, NULL, err,
                                    sizeof err), 0);
    const struct wl_rule *r = &rs.rules[0];
    assert_int_equal(rs.n, 1);
    assert_string_equal(r->name, "teams-5");
    assert_string_equal(r->when_text, "teams >= 5");
    assert_string_equal(r->description, "teams >= 5");
    assert_non_null(r->when);
    assert_double_equal(r->weight, 1.0, 0);
    assert_int_equal(r->cooldown_ms, 7 * DAY);
    assert_double_equal(r->hysteresis, 0.10, 1e-12);
    assert_int_equal(rs.growth_metrics, 0);
    assert_int_equal(rs.max_growth_days, 0);

    /* An empty description is the default too. */
    assert_int_equal(wl_ruleset_add(&rs, "x", "installs >= 2", NULL, NULL, NULL, "", err,
                                    sizeof err), 0);
    assert_string_equal(rs.rules[1].description, "installs >= 2");
    wl_ruleset_clear(&rs);
    assert_int_equal(rs.n, 0);
    wl_ruleset_clear(&rs); /* twice is fine */
}

static void test_ruleset_values(void **state)
{
    (void)state;
    static const struct {
        const char *weight, *cooldown, *hysteresis;
        double want_weight;
        uint64_t want_cooldown;
        double want_hysteresis;
    } cases[] = {
        {"2.5", "12h", "5%", 2.5, 12 * HOUR, 0.05},
        {"1000", "30m", "0.25", 1000, 30 * 60 * SEC, 0.25},
        {"0.001", "45s", "0", 0.001, 45 * SEC, 0},
        {"4", "500ms", "0%", 4, 500, 0},
        {"7", "90", "99%", 7, 90 * SEC, 0.99},
        {"1", "0", "0.999", 1, 0, 0.999},
        {"1", "7 d", "12.5%", 1, 7 * DAY, 0.125},
        {"1", "3650d", "10%", 1, 3650 * DAY, 0.10},
    };
    int bad = 0;
    char err[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct wl_ruleset rs;
        memset(&rs, 0, sizeof rs);
        if (wl_ruleset_add(&rs, "r", "teams > 1", cases[i].weight, cases[i].cooldown,
                           cases[i].hysteresis, "Teams grew", err, sizeof err) != 0) {
            CASE_FAIL("values %s/%s/%s: %s\n", cases[i].weight, cases[i].cooldown,
                      cases[i].hysteresis, err);
            continue;
        }
        const struct wl_rule *r = &rs.rules[0];
        if (fabs(r->weight - cases[i].want_weight) > 1e-12 ||
            r->cooldown_ms != cases[i].want_cooldown ||
            fabs(r->hysteresis - cases[i].want_hysteresis) > 1e-12 ||
            strcmp(r->description, "Teams grew") != 0)
            CASE_FAIL("values %s/%s/%s: got %g/%" PRIu64 "/%g\n", cases[i].weight,
                      cases[i].cooldown, cases[i].hysteresis, r->weight, r->cooldown_ms,
                      r->hysteresis);
        wl_ruleset_clear(&rs);
    }
    assert_int_equal(bad, 0);
}

static void test_ruleset_errors(void **state)
{
    (void)state;
    static const char long_name[] =
        "a234567890123456789012345678901234567890123456789012345678901234"; /* 64 */
    static const struct {
        const char *name, *when, *weight, *cooldown, *hysteresis;
        const char *want; /* a prefix of the message */
    } cases[] = {
        {NULL, "teams > 1", NULL, NULL, NULL, "name: empty"},
        {"", "teams > 1", NULL, NULL, NULL, "name: empty"},
        {"bad name", "teams > 1", NULL, NULL, NULL, "name: 'bad name' has a character outside"},
        {"bad/name", "teams > 1", NULL, NULL, NULL, "name: 'bad/name' has a character"},
        {long_name, "teams > 1", NULL, NULL, NULL, "name: 'a2345"},
        {"dup", "teams > 1", NULL, NULL, NULL, "name: rule 'dup' is defined twice"},
        {"r", NULL, NULL, NULL, NULL, "when: missing"},
        {"r", "", NULL, NULL, NULL, "when: column 1: empty condition"},
        {"r", "users > 5", NULL, NULL, NULL, "when: column 1: unknown metric 'users'"},
        {"r", "teams > 5 6", NULL, NULL, NULL, "when: column 11: expected 'and', 'or'"},
        {"r", "teams > 1", "abc", NULL, NULL, "weight: 'abc' is not a number > 0"},
        {"r", "teams > 1", "0", NULL, NULL, "weight: '0' is not a number > 0"},
        {"r", "teams > 1", "0.0", NULL, NULL, "weight: '0.0' is not a number > 0"},
        {"r", "teams > 1", "-1", NULL, NULL, "weight: '-1' is not a number > 0"},
        {"r", "teams > 1", "", NULL, NULL, "weight: '' is not a number > 0"},
        {"r", "teams > 1", "nan", NULL, NULL, "weight: 'nan' is not a number > 0"},
        {"r", "teams > 1", "inf", NULL, NULL, "weight: 'inf' is not a number > 0"},
        {"r", "teams > 1", "2x", NULL, NULL, "weight: '2x' is not a number > 0"},
        {"r", "teams > 1", "1000.5", NULL, NULL, "weight: '1000.5' is above 1000"},
        {"r", "teams > 1", NULL, "7x", NULL, "cooldown: '7x' is not a duration"},
        {"r", "teams > 1", NULL, "-1d", NULL, "cooldown: '-1d' is not a duration"},
        {"r", "teams > 1", NULL, "", NULL, "cooldown: '' is not a duration"},
        {"r", "teams > 1", NULL, "d", NULL, "cooldown: 'd' is not a duration"},
        {"r", "teams > 1", NULL, "1.5d", NULL, "cooldown: '1.5d' is not a duration"},
        {"r", "teams > 1", NULL, "3651d", NULL, "cooldown: '3651d' is longer than 3650d"},
        {"r", "teams > 1", NULL, "99999999999999999999999", NULL, "cooldown: '9999"},
        {"r", "teams > 1", NULL, NULL, "100%", "hysteresis: '100%' is not a fraction in [0, 1)"},
        {"r", "teams > 1", NULL, NULL, "1", "hysteresis: '1' is not a fraction"},
        {"r", "teams > 1", NULL, NULL, "10", "hysteresis: '10' is not a fraction"},
        {"r", "teams > 1", NULL, NULL, "-0.1", "hysteresis: '-0.1' is not a fraction"},
        {"r", "teams > 1", NULL, NULL, "%", "hysteresis: '%' is not a fraction"},
        {"r", "teams > 1", NULL, NULL, "ten", "hysteresis: 'ten' is not a fraction"},
        {"r", "teams > 1", NULL, NULL, "", "hysteresis: '' is not a fraction"},
    };
    struct wl_ruleset rs;
    char err[512];
    int bad = 0;
    memset(&rs, 0, sizeof rs);
    assert_int_equal(wl_ruleset_add(&rs, "dup", "teams > 1", NULL, NULL, NULL, NULL, err,
                                    sizeof err), 0);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        int rc = wl_ruleset_add(&rs, cases[i].name, cases[i].when, cases[i].weight,
                                cases[i].cooldown, cases[i].hysteresis, NULL, err, sizeof err);
        if (rc != -1 || strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
            CASE_FAIL("add case %zu: rc %d, got \"%s\", want \"%s...\"\n", i, rc, err,
                      cases[i].want);
        if (rs.n != 1) {
            CASE_FAIL("add case %zu: the set changed\n", i);
            break;
        }
    }

    /* 63 characters is the longest name. */
    assert_int_equal(wl_ruleset_add(&rs, long_name + 1, "teams > 1", NULL, NULL, NULL, NULL,
                                    err, sizeof err), 0);
    wl_ruleset_clear(&rs);

    /* At most WL_RULES_MAX rules. */
    for (int i = 0; i < WL_RULES_MAX; i++) {
        char name[16];
        snprintf(name, sizeof name, "r%d", i);
        assert_int_equal(wl_ruleset_add(&rs, name, "teams > 1", NULL, NULL, NULL, NULL, err,
                                        sizeof err), 0);
    }
    assert_int_equal(wl_ruleset_add(&rs, "one-more", "teams > 1", NULL, NULL, NULL, NULL, err,
                                    sizeof err), -1);
    assert_non_null(strstr(err, "at most 64"));
    assert_int_equal(rs.n, WL_RULES_MAX);
    wl_ruleset_clear(&rs);
    assert_int_equal(bad, 0);
}

static void test_ruleset_default_rules_and_growth(void **state)
{
    (void)state;
    struct wl_ruleset rs;
    char err[512];
    memset(&rs, 0, sizeof rs);

    for (size_t i = 0; i < N_DEFAULT_RULES; i++) {
        char name[16];
        snprintf(name, sizeof name, "default.%zu", i);
        if (wl_ruleset_add(&rs, name, default_rules[i], NULL, NULL, NULL, NULL, err,
                           sizeof err) != 0)
            fail_msg("default rule '%s': %s", default_rules[i], err);
    }
    assert_int_equal(rs.n, N_DEFAULT_RULES);
    assert_int_equal(rs.growth_metrics, 1u << WL_COUNT_active_users_monthly);
    assert_int_equal(rs.max_growth_days, 30);
    wl_ruleset_clear(&rs);
    assert_int_equal(rs.growth_metrics, 0);
    assert_int_equal(rs.max_growth_days, 0);

    /* growth_7d only: 7 days; the bits of every metric used. */
    assert_int_equal(wl_ruleset_add(&rs, "a", "growth_7d(teams) > 10", NULL, NULL, NULL, NULL,
                                    err, sizeof err), 0);
    assert_int_equal(rs.max_growth_days, 7);
    assert_int_equal(rs.growth_metrics, 1u << WL_COUNT_teams);
    assert_int_equal(wl_ruleset_add(&rs, "b", "installs > 1 or growth_7d(posts) + "
                                    "growth_7d(teams) > 10", NULL, NULL, NULL, NULL, err,
                                    sizeof err), 0);
    assert_int_equal(rs.max_growth_days, 7);
    assert_int_equal(rs.growth_metrics, (1u << WL_COUNT_teams) | (1u << WL_COUNT_posts));
    /* A failed add changes nothing. */
    assert_int_equal(wl_ruleset_add(&rs, "c", "growth_30d(guest_accounts) > 1 and", NULL, NULL,
                                    NULL, NULL, err, sizeof err), -1);
    assert_int_equal(rs.max_growth_days, 7);
    assert_int_equal(rs.growth_metrics, (1u << WL_COUNT_teams) | (1u << WL_COUNT_posts));
    assert_int_equal(wl_ruleset_add(&rs, "c", "(teams > 1 or growth_30d(guest_accounts) > 1)",
                                    NULL, NULL, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(rs.max_growth_days, 30);
    assert_int_equal(rs.growth_metrics, (1u << WL_COUNT_teams) | (1u << WL_COUNT_posts) |
                                            (1u << WL_COUNT_guest_accounts));
    wl_ruleset_clear(&rs);
}

/* ---- scores ---- */

static void test_score_halves(void **state)
{
    (void)state;
    const uint64_t hl = 7 * DAY;
    assert_double_equal(wl_score_at(WL_SCORE_NONE, T0, hl), 0, 0);

    double L = wl_score_add(WL_SCORE_NONE, 4, T0, hl);
    assert_double_equal(wl_score_at(L, T0, hl), 4, 1e-9);
    assert_double_equal(wl_score_at(L, T0 + (int64_t)hl, hl), 2, 1e-9);
    assert_double_equal(wl_score_at(L, T0 + 2 * (int64_t)hl, hl), 1, 1e-9);
    assert_double_equal(wl_score_at(L, T0 + (int64_t)hl / 2, hl), 4 / sqrt(2), 1e-9);

    /* Two signals add, each decayed from its own time. */
    double L2 = wl_score_add(L, 3, T0 + (int64_t)hl, hl);
    assert_double_equal(wl_score_at(L2, T0 + (int64_t)hl, hl), 2 + 3, 1e-9);
    assert_double_equal(wl_score_at(L2, T0 + 3 * (int64_t)hl, hl), 0.5 + 0.75, 1e-9);
    /* Order of adding does not matter. */
    double L3 = wl_score_add(wl_score_add(WL_SCORE_NONE, 3, T0 + (int64_t)hl, hl), 4, T0, hl);
    assert_double_equal(L3, L2, 1e-12);
    /* Equal signals: one more half-life's worth (log2 2 = 1). */
    double L4 = wl_score_add(L, 4, T0, hl);
    assert_double_equal(L4, L + 1, 1e-12);

    /* A weight that is not > 0 changes nothing. */
    assert_double_equal(wl_score_add(L, 0, T0, hl), L, 0);
    assert_double_equal(wl_score_add(L, -1, T0, hl), L, 0);
    assert_true(wl_score_add(WL_SCORE_NONE, 0, T0, hl) == WL_SCORE_NONE);
}

static void test_score_order(void **state)
{
    (void)state;
    const uint64_t hl = 7 * DAY;
    const int64_t h = (int64_t)hl;
    /* A: one big early signal. B: small later signals. */
    double A = wl_score_add(WL_SCORE_NONE, 8, T0, hl);
    double B = wl_score_add(WL_SCORE_NONE, 1, T0 + 2 * h, hl);
    B = wl_score_add(B, 1, T0 + 3 * h, hl);
    /* C: one more signal than B, so above B. */
    double C = wl_score_add(B, 0.5, T0 + 3 * h, hl);
    const double Ls[] = {A, B, C};
    const int64_t times[] = {T0 + 3 * h, T0 + 4 * h, T0 + 10 * h, T0 + 100 * h, T0 + 500 * h};

    for (size_t t = 0; t < sizeof times / sizeof times[0]; t++) {
        for (size_t i = 0; i < 3; i++) {
            for (size_t j = 0; j < 3; j++) {
                double si = wl_score_at(Ls[i], times[t], hl);
                double sj = wl_score_at(Ls[j], times[t], hl);
                assert_true(si > 0 && sj > 0);
                assert_int_equal(Ls[i] < Ls[j], si < sj);
                assert_int_equal(Ls[i] > Ls[j], si > sj);
            }
        }
    }
    /* At T0 + 3h: A = 8/8 = 1; B = 1/2 + 1 = 1.5; C = 2. */
    assert_double_equal(wl_score_at(A, T0 + 3 * h, hl), 1, 1e-9);
    assert_double_equal(wl_score_at(B, T0 + 3 * h, hl), 1.5, 1e-9);
    assert_double_equal(wl_score_at(C, T0 + 3 * h, hl), 2, 1e-9);
    assert_true(A < B && B < C);
}

static void test_score_far_future(void **state)
{
    (void)state;
    const int64_t years30 = (int64_t)30 * 365 * DAY;
    const int64_t t = WL_SCORE_EPOCH_MS + years30;

    /* A short half-life: about 263,000 half-lives since the epoch. */
    double L = wl_score_add(WL_SCORE_NONE, 2, t, HOUR);
    L = wl_score_add(L, 2, t, HOUR);
    assert_true(isfinite(L));
    assert_double_equal(wl_score_at(L, t, HOUR), 4, 1e-6);
    assert_double_equal(wl_score_at(L, t + HOUR, HOUR), 2, 1e-6);

    /* A signal of weight 1 every day for 30 years, half-life 7 days: the
     * score is the geometric series, and every step stays finite. */
    const uint64_t hl = 7 * DAY;
    double S = WL_SCORE_NONE;
    double want = 0;
    for (int64_t d = 0; d <= 30 * 365; d++) {
        S = wl_score_add(S, 1, WL_SCORE_EPOCH_MS + d * DAY, hl);
        assert_true(isfinite(S));
        want = want * pow(2, -1.0 / 7) + 1;
    }
    double got = wl_score_at(S, t, hl);
    assert_true(isfinite(got));
    assert_double_equal(got, want, 1e-6 * want);

    /* Long after the last signal the score decays toward 0, never NaN. */
    double later = wl_score_at(S, t + 100 * years30, hl);
    assert_true(isfinite(later) && later >= 0 && later < 1e-100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_must_parse),
        cmocka_unit_test(test_must_not_parse),
        cmocka_unit_test(test_eval_table),
        cmocka_unit_test(test_eval_without_callbacks),
        cmocka_unit_test(test_eval_relax),
        cmocka_unit_test(test_eval_growth_relax),
        cmocka_unit_test(test_terms),
        cmocka_unit_test(test_step_edge_not_level),
        cmocka_unit_test(test_step_hysteresis),
        cmocka_unit_test(test_step_zero_hysteresis),
        cmocka_unit_test(test_step_cooldown),
        cmocka_unit_test(test_step_compound),
        cmocka_unit_test(test_ruleset_defaults),
        cmocka_unit_test(test_ruleset_values),
        cmocka_unit_test(test_ruleset_errors),
        cmocka_unit_test(test_ruleset_default_rules_and_growth),
        cmocka_unit_test(test_score_halves),
        cmocka_unit_test(test_score_order),
        cmocka_unit_test(test_score_far_future),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
