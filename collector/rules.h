/* Rules: conditions over an organization's account metrics that turn usage
 * crossing a threshold into a warm-outbound signal. Parsed from the config
 * ([rule "name"] sections), evaluated by the writer for every organization
 * a group changed.
 *
 * Condition grammar (keywords and function names are lower case):
 *   expr       := and_expr { "or" and_expr }
 *   and_expr   := primary { "and" primary }
 *   primary    := "(" expr ")" | comparison | ["not"] "has_feature" "(" NAME ")"
 *   comparison := sum OP NUMBER | "edition" "==" STRING
 *   sum        := value { "+" value }
 *   value      := METRIC | "installs" | "growth_7d" "(" METRIC ")" | "growth_30d" "(" METRIC ")"
 *   OP         := ">=" | ">" | "<=" | "<" | "=="
 * METRIC is a count name of ping.h (active_users_monthly, teams, ...):
 * the organization's total over its counting installs. installs is how
 * many installs count. growth_Nd(m) is the percent change of m against the
 * organization's value N days earlier (the latest day at or before then);
 * undefined, and so false, when there is no such day or it was 0. NAME is
 * [A-Za-z0-9_.-]+; STRING is double-quoted, no escapes.
 */
#ifndef WL_RULES_H
#define WL_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "ping.h"

#define WL_RULES_MAX 64
#define WL_RULE_NAME_MAX 64

/* What a rule sees of one organization. */
struct wl_account_view {
    const uint64_t *totals;   /* WL_N_COUNTS totals over counting installs */
    uint64_t installs;        /* counting installs */
    /* 1 when any counting install has the feature / runs the edition. */
    int (*has_feature)(void *ctx, const char *name);
    int (*has_edition)(void *ctx, const char *edition);
    /* The metric's value days_ago days before today; 0, or -1 when unknown. */
    int (*past_value)(void *ctx, enum wl_count metric, int days_ago, uint64_t *out);
    void *ctx;
};

/* One comparison of a rule at firing, for the signal's explanation. */
/* Its strings are the expression's (made when it was parsed): valid while
 * it is, nothing formatted per evaluation. */
struct wl_rule_term {
    const char *metric;       /* "teams", "installs", "growth_30d(active_users_monthly)",
                                 "public_channels+private_channels", "has_feature", "edition"
                                 (at most WL_TERM_METRIC_MAX bytes) */
    double value;             /* NAN when undefined */
    const char *op;           /* ">=", ">", "<=", "<", "==" ("has_feature": 1/0) */
    double threshold;
    const char *text;         /* the feature or edition operand, else "" */
};
#define WL_TERM_METRIC_MAX 95

struct wl_expr; /* opaque parsed condition */

struct wl_rule {
    char name[WL_RULE_NAME_MAX];
    char *description;        /* owned */
    char *when_text;          /* owned, as written */
    struct wl_expr *when;     /* owned */
    double weight;            /* default 1 */
    uint64_t cooldown_ms;     /* default 7 days */
    double hysteresis;        /* fraction, default 0.10 */
};

struct wl_ruleset {
    struct wl_rule rules[WL_RULES_MAX];
    size_t n;
    /* Bit m set when some rule uses growth_*d(m): the writer keeps a daily
     * history of those metrics only. */
    uint32_t growth_metrics;
    int max_growth_days;      /* 30 when any growth_30d, 7 for growth_7d only, else 0 */
};

/* Parses one condition. On error returns -1 with "column N: reason" in err. */
int wl_expr_parse(const char *text, struct wl_expr **out, char *err, size_t errlen);
void wl_expr_free(struct wl_expr *e);

/* Calls fn with the operand of every has_feature (is_feature 1) and
 * edition == (0) in e: the writer always tallies what rules test. */
void wl_expr_operands(const struct wl_expr *e,
                      void (*fn)(void *arg, int is_feature, const char *text), void *arg);

/* Evaluates a condition. relax = 0 evaluates it as written; relax = h
 * evaluates it with every threshold moved by h toward "still true" (x >= t
 * becomes x >= t*(1-h); x <= t becomes x <= t*(1+h)); == and has_feature and
 * edition are not relaxed. Returns 1 or 0. */
int wl_expr_eval(const struct wl_expr *e, const struct wl_account_view *v, double relax);

/* Writes up to max terms (the comparisons, left to right) with their current
 * values; returns how many. */
size_t wl_expr_terms(const struct wl_expr *e, const struct wl_account_view *v,
                     struct wl_rule_term *terms, size_t max);

/* Per organization and rule: edge-trigger state. A zeroed struct is the
 * initial state: armed, never fired. */
struct wl_rule_state {
    uint8_t disarmed;         /* fired; waits for the relaxed condition to go false */
    int64_t last_fired;       /* event time ms, 0 = never */
};

/* One evaluation at event time now: returns 1 when the rule fires (the
 * condition is true, the state is armed and the cooldown has passed), and
 * updates st: firing disarms; the state re-arms when the condition relaxed
 * by the rule's hysteresis is false. */
int wl_rule_step(const struct wl_rule *r, struct wl_rule_state *st,
                 const struct wl_account_view *v, int64_t now);

/* Adds a rule from its config values (NULL = default), checking everything.
 * On error returns -1 and err says which value is wrong and why. */
int wl_ruleset_add(struct wl_ruleset *rs, const char *name, const char *when,
                   const char *weight, const char *cooldown, const char *hysteresis,
                   const char *description, char *err, size_t errlen);

/* Frees what the rules own and empties the set. */
void wl_ruleset_clear(struct wl_ruleset *rs);

/* Score: the sum of signal weights, each halved every half_life. Kept as
 * L = log2(sum of w * 2^((t - epoch)/half_life)) so that ordering by L is
 * ordering by score at any time, with no rescan as time passes. */
#define WL_SCORE_EPOCH_MS 1577836800000LL /* 2020-01-01T00:00:00Z */
double wl_score_add(double L, double weight, int64_t t_ms, uint64_t half_life_ms);
double wl_score_at(double L, int64_t now_ms, uint64_t half_life_ms);
#define WL_SCORE_NONE (-1e300) /* L of an organization with no signal */

#endif
