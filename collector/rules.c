/* Rules: the condition parser (recursive descent over the grammar in
 * rules.h), evaluation with relaxed thresholds, the per-organization edge
 * trigger, the rule set built from config values, and decayed scores. */
#include "rules.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUM_MAX 16        /* values in one sum */
#define DEPTH_MAX 32      /* nested parentheses */
#define OPERAND_MAX 63    /* feature names and editions: fit wl_rule_term.text */
#define WEIGHT_MAX 1000.0
#define SEC_MS ((uint64_t)1000)
#define DAY_MS (86400 * SEC_MS)
#define COOLDOWN_MAX_MS (3650 * DAY_MS)

/* ---- the tree ---- */

enum node_kind { NODE_AND, NODE_OR, NODE_CMP, NODE_HAS_FEATURE, NODE_EDITION_EQ };
enum value_kind { VALUE_METRIC, VALUE_INSTALLS, VALUE_GROWTH };
enum cmp_op { OP_GE, OP_GT, OP_LE, OP_LT, OP_EQ };

static const char *const op_text[] = {">=", ">", "<=", "<", "=="};

/* One summand: a metric's total, the install count, or a metric's growth. */
struct value {
    uint8_t kind;   /* enum value_kind */
    uint8_t metric; /* enum wl_count, for VALUE_METRIC and VALUE_GROWTH */
    uint8_t days;   /* 7 or 30, for VALUE_GROWTH */
};

struct wl_expr {
    enum node_kind kind;
    int negate;                       /* NODE_HAS_FEATURE: "not has_feature(...)" */
    char label[WL_TERM_METRIC_MAX + 1]; /* NODE_CMP: its sum as a term names it (sum_label) */
    union {
        struct {                      /* NODE_AND, NODE_OR: two or more */
            struct wl_expr **kids;
            size_t n;
        } list;
        struct {                      /* NODE_CMP: sum op threshold */
            struct value v[SUM_MAX];
            size_t n;
            enum cmp_op op;
            double threshold;
        } cmp;
        char text[OPERAND_MAX + 1];   /* NODE_HAS_FEATURE, NODE_EDITION_EQ */
    } u;
};

void wl_expr_operands(const struct wl_expr *e,
                      void (*fn)(void *arg, int is_feature, const char *text), void *arg)
{
    if (e == NULL)
        return;
    if (e->kind == NODE_AND || e->kind == NODE_OR) {
        for (size_t i = 0; i < e->u.list.n; i++)
            wl_expr_operands(e->u.list.kids[i], fn, arg);
    } else if (e->kind == NODE_HAS_FEATURE || e->kind == NODE_EDITION_EQ) {
        fn(arg, e->kind == NODE_HAS_FEATURE, e->u.text);
    }
}

void wl_expr_free(struct wl_expr *e)
{
    if (e == NULL)
        return;
    if (e->kind == NODE_AND || e->kind == NODE_OR) {
        for (size_t i = 0; i < e->u.list.n; i++)
            wl_expr_free(e->u.list.kids[i]);
        free(e->u.list.kids);
    }
    free(e);
}

/* ---- tokens ---- */

enum tok_kind {
    TOK_END, TOK_IDENT, TOK_NUMBER, TOK_STRING, TOK_LPAREN, TOK_RPAREN, TOK_PLUS, TOK_OP,
    TOK_OTHER
};

struct token {
    enum tok_kind kind;
    size_t pos;       /* byte offset of the first character */
    size_t len;       /* bytes of source text, quotes included */
    enum cmp_op op;   /* TOK_OP */
};

struct parser {
    const char *src;
    size_t pos;       /* where the next token starts (before whitespace) */
    struct token tok; /* the current token */
    int depth;
    char *err;
    size_t errlen;
    int failed;
};

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_name_char(char c) { return is_alpha(c) || is_digit(c) || c == '.' || c == '-'; }

/* Parses all of s[0..len) as digits with an optional ".digits" part.
 * Returns 0 or -EINVAL. */
static int parse_decimal(const char *s, size_t len, double *out)
{
    size_t i = 0, int_digits = 0, frac_digits = 0;
    char buf[64];

    while (i < len && is_digit(s[i]))
        i++, int_digits++;
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && is_digit(s[i]))
            i++, frac_digits++;
        if (frac_digits == 0)
            return -EINVAL;
    }
    if (i != len || int_digits == 0 || len >= sizeof buf)
        return -EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    *out = strtod(buf, NULL);
    return isfinite(*out) ? 0 : -EINVAL;
}

/* Reads the token at p->pos into p->tok and moves past it. Characters the
 * grammar does not know become TOK_OTHER, reported by whoever expected
 * something else. */
static void next(struct parser *p)
{
    const char *s = p->src;
    size_t i = p->pos;

    while (is_space(s[i]))
        i++;
    struct token t = {.kind = TOK_OTHER, .pos = i, .len = 1};
    char c = s[i];
    if (c == '\0') {
        t.kind = TOK_END;
        t.len = 0;
    } else if (is_alpha(c)) {
        while (is_alpha(s[i + t.len]) || is_digit(s[i + t.len]))
            t.len++;
        t.kind = TOK_IDENT;
    } else if (is_digit(c) || (c == '-' && is_digit(s[i + 1]))) {
        /* Take everything that could belong to a number (so "1e5" and
         * "1.2.3" are reported whole), then check it. */
        t.len = 1;
        while (is_alpha(s[i + t.len]) || is_digit(s[i + t.len]) || s[i + t.len] == '.')
            t.len++;
        t.kind = TOK_NUMBER;
    } else if (c == '"') {
        while (s[i + t.len] != '\0' && s[i + t.len] != '"')
            t.len++;
        if (s[i + t.len] == '"')
            t.len++;
        t.kind = TOK_STRING; /* unterminated when the last byte is not '"' */
    } else if (c == '(') {
        t.kind = TOK_LPAREN;
    } else if (c == ')') {
        t.kind = TOK_RPAREN;
    } else if (c == '+') {
        t.kind = TOK_PLUS;
    } else if (c == '>' || c == '<') {
        t.kind = TOK_OP;
        if (s[i + 1] == '=') {
            t.len = 2;
            t.op = c == '>' ? OP_GE : OP_LE;
        } else {
            t.op = c == '>' ? OP_GT : OP_LT;
        }
    } else if (c == '=' && s[i + 1] == '=') {
        t.kind = TOK_OP;
        t.len = 2;
        t.op = OP_EQ;
    }
    p->tok = t;
    p->pos = i + t.len;
}

static int tok_is(const struct parser *p, const char *word)
{
    return p->tok.kind == TOK_IDENT && strlen(word) == p->tok.len &&
           memcmp(p->src + p->tok.pos, word, p->tok.len) == 0;
}

/* Describes the current token for "found ...". */
static void tok_describe(const struct parser *p, char *buf, size_t len)
{
    const char *text = p->src + p->tok.pos;
    int n = p->tok.len > 40 ? 40 : (int)p->tok.len;
    const char *more = p->tok.len > 40 ? "..." : "";

    switch (p->tok.kind) {
    case TOK_END: snprintf(buf, len, "end of condition"); break;
    case TOK_NUMBER: snprintf(buf, len, "number '%.*s%s'", n, text, more); break;
    case TOK_STRING: snprintf(buf, len, "string %.*s%s", n, text, more); break;
    default: snprintf(buf, len, "'%.*s%s'", n, text, more); break;
    }
}

/* Records the first error: "column N: " then the message. */
__attribute__((format(printf, 3, 4)))
static void fail_at(struct parser *p, size_t pos, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = 1;
    int n = snprintf(p->err, p->errlen, "column %zu: ", pos + 1);
    if (n < 0 || (size_t)n >= p->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* "column N: expected WHAT, found <current token>". */
static void fail_expected(struct parser *p, const char *what)
{
    char found[64];
    tok_describe(p, found, sizeof found);
    fail_at(p, p->tok.pos, "expected %s, found %s", what, found);
}

static int metric_index(const char *s, size_t len)
{
    for (int m = 0; m < WL_N_COUNTS; m++) {
        if (strlen(wl_count_names[m]) == len && memcmp(wl_count_names[m], s, len) == 0)
            return m;
    }
    return -1;
}

static void fail_unknown_metric(struct parser *p)
{
    char known[512];
    size_t n = 0;
    for (int m = 0; m < WL_N_COUNTS && n < sizeof known; m++)
        n += (size_t)snprintf(known + n, sizeof known - n, "%s, ", wl_count_names[m]);
    if (n < sizeof known)
        snprintf(known + n, sizeof known - n, "installs");
    fail_at(p, p->tok.pos, "unknown metric '%.*s' (known: %s)", (int)p->tok.len,
            p->src + p->tok.pos, known);
}

static struct wl_expr *node_new(struct parser *p, enum node_kind kind)
{
    struct wl_expr *e = calloc(1, sizeof *e);
    if (e == NULL)
        fail_at(p, p->tok.pos, "out of memory");
    else
        e->kind = kind;
    return e;
}

/* ---- the grammar, one function per rule ---- */

static struct wl_expr *parse_expr(struct parser *p);

/* value := METRIC | "installs" | "growth_7d" "(" METRIC ")" | "growth_30d" "(" METRIC ")" */
static int parse_value(struct parser *p, struct value *out)
{
    if (p->tok.kind == TOK_NUMBER) {
        char found[64];
        tok_describe(p, found, sizeof found);
        fail_at(p, p->tok.pos,
                "expected a metric, found %s (the number goes on the right: teams >= 5)", found);
        return -1;
    }
    if (p->tok.kind != TOK_IDENT || tok_is(p, "and") || tok_is(p, "or")) {
        fail_expected(p, "a metric");
        return -1;
    }
    if (tok_is(p, "installs")) {
        *out = (struct value){.kind = VALUE_INSTALLS};
        next(p);
        return 0;
    }
    if (tok_is(p, "edition") || tok_is(p, "has_feature")) {
        fail_at(p, p->tok.pos, "'%.*s' cannot be part of a sum or compared with a number",
                (int)p->tok.len, p->src + p->tok.pos);
        return -1;
    }
    struct token name = p->tok;
    next(p);
    if (p->tok.kind == TOK_LPAREN) {
        int days;
        if (name.len == 9 && memcmp(p->src + name.pos, "growth_7d", 9) == 0) {
            days = 7;
        } else if (name.len == 10 && memcmp(p->src + name.pos, "growth_30d", 10) == 0) {
            days = 30;
        } else {
            fail_at(p, name.pos, "unknown function '%.*s' (known: growth_7d, growth_30d, "
                    "has_feature)", (int)name.len, p->src + name.pos);
            return -1;
        }
        next(p);
        int m = p->tok.kind == TOK_IDENT ? metric_index(p->src + p->tok.pos, p->tok.len) : -1;
        if (m < 0) {
            if (p->tok.kind == TOK_IDENT && !tok_is(p, "installs") && !tok_is(p, "growth_7d") &&
                !tok_is(p, "growth_30d")) {
                fail_unknown_metric(p);
            } else {
                char what[64];
                snprintf(what, sizeof what, "a metric in %.*s()", (int)name.len,
                         p->src + name.pos);
                fail_expected(p, what);
            }
            return -1;
        }
        next(p);
        if (p->tok.kind != TOK_RPAREN) {
            fail_expected(p, "')'");
            return -1;
        }
        next(p);
        *out = (struct value){.kind = VALUE_GROWTH, .metric = (uint8_t)m, .days = (uint8_t)days};
        return 0;
    }
    int m = metric_index(p->src + name.pos, name.len);
    if (m < 0) {
        struct token here = p->tok;
        p->tok = name;
        fail_unknown_metric(p);
        p->tok = here;
        return -1;
    }
    *out = (struct value){.kind = VALUE_METRIC, .metric = (uint8_t)m};
    return 0;
}

/* comparison := sum OP NUMBER;  sum := value { "+" value } */
static struct wl_expr *parse_comparison(struct parser *p)
{
    struct wl_expr *e = node_new(p, NODE_CMP);
    if (e == NULL)
        return NULL;
    for (;;) {
        if (e->u.cmp.n == SUM_MAX) {
            fail_at(p, p->tok.pos, "a sum has at most %d values", SUM_MAX);
            goto fail;
        }
        if (parse_value(p, &e->u.cmp.v[e->u.cmp.n]) != 0)
            goto fail;
        e->u.cmp.n++;
        if (p->tok.kind != TOK_PLUS)
            break;
        next(p);
    }
    if (p->tok.kind != TOK_OP) {
        fail_expected(p, "an operator (>=, >, <=, <, ==)");
        goto fail;
    }
    e->u.cmp.op = p->tok.op;
    next(p);
    if (p->tok.kind != TOK_NUMBER) {
        fail_expected(p, "a number");
        goto fail;
    }
    const char *num = p->src + p->tok.pos;
    size_t len = p->tok.len;
    int neg = num[0] == '-';
    if (parse_decimal(num + neg, len - (size_t)neg, &e->u.cmp.threshold) != 0) {
        fail_at(p, p->tok.pos, "malformed number '%.*s' (write digits, e.g. 50 or 0.5)",
                (int)(len > 40 ? 40 : len), num);
        goto fail;
    }
    if (neg)
        e->u.cmp.threshold = -e->u.cmp.threshold;
    next(p);
    return e;
fail:
    wl_expr_free(e);
    return NULL;
}

/* "has_feature" "(" NAME ")": NAME is read from the raw text, since it may
 * hold '.' and '-' and start with a digit. */
static struct wl_expr *parse_has_feature(struct parser *p)
{
    next(p);
    if (p->tok.kind != TOK_LPAREN) {
        fail_expected(p, "'(' after has_feature");
        return NULL;
    }
    size_t i = p->pos;
    while (is_space(p->src[i]))
        i++;
    size_t len = 0;
    while (is_name_char(p->src[i + len]))
        len++;
    if (len == 0) {
        p->pos = i;
        next(p);
        fail_expected(p, "a feature name ([A-Za-z0-9_.-]+)");
        return NULL;
    }
    if (len > OPERAND_MAX) {
        fail_at(p, i, "feature name longer than %d characters", OPERAND_MAX);
        return NULL;
    }
    struct wl_expr *e = node_new(p, NODE_HAS_FEATURE);
    if (e == NULL)
        return NULL;
    memcpy(e->u.text, p->src + i, len);
    p->pos = i + len;
    next(p);
    if (p->tok.kind != TOK_RPAREN) {
        fail_expected(p, "')'");
        wl_expr_free(e);
        return NULL;
    }
    next(p);
    return e;
}

/* "edition" "==" STRING */
static struct wl_expr *parse_edition(struct parser *p)
{
    next(p);
    if (p->tok.kind != TOK_OP || p->tok.op != OP_EQ) {
        fail_expected(p, "'==' after edition (edition == \"enterprise\")");
        return NULL;
    }
    next(p);
    if (p->tok.kind != TOK_STRING) {
        fail_expected(p, "a double-quoted edition");
        return NULL;
    }
    const char *s = p->src + p->tok.pos;
    size_t len = p->tok.len;
    if (len < 2 || s[len - 1] != '"') {
        fail_at(p, p->tok.pos, "unterminated string");
        return NULL;
    }
    if (len == 2) {
        fail_at(p, p->tok.pos, "empty edition");
        return NULL;
    }
    if (len - 2 > OPERAND_MAX) {
        fail_at(p, p->tok.pos, "edition longer than %d characters", OPERAND_MAX);
        return NULL;
    }
    struct wl_expr *e = node_new(p, NODE_EDITION_EQ);
    if (e == NULL)
        return NULL;
    memcpy(e->u.text, s + 1, len - 2);
    next(p);
    return e;
}

/* primary := "(" expr ")" | comparison | ["not"] "has_feature" "(" NAME ")" | edition */
static struct wl_expr *parse_primary(struct parser *p)
{
    if (p->tok.kind == TOK_LPAREN) {
        if (p->depth == DEPTH_MAX) {
            fail_at(p, p->tok.pos, "parentheses nested deeper than %d", DEPTH_MAX);
            return NULL;
        }
        p->depth++;
        next(p);
        struct wl_expr *e = parse_expr(p);
        if (e == NULL)
            return NULL;
        if (p->tok.kind != TOK_RPAREN) {
            fail_expected(p, "')'");
            wl_expr_free(e);
            return NULL;
        }
        p->depth--;
        next(p);
        return e;
    }
    if (tok_is(p, "has_feature"))
        return parse_has_feature(p);
    if (tok_is(p, "not")) { /* only before has_feature: a feature is there or not */
        next(p);
        if (!tok_is(p, "has_feature")) {
            fail_expected(p, "has_feature after not (not has_feature(licensed))");
            return NULL;
        }
        struct wl_expr *e = parse_has_feature(p);
        if (e != NULL)
            e->negate = 1;
        return e;
    }
    if (tok_is(p, "edition"))
        return parse_edition(p);
    return parse_comparison(p);
}

/* expr := and_expr { "or" and_expr };  and_expr := primary { "and" primary }.
 * A chain becomes one node with n children, so a long chain is not a deep
 * tree. */
static struct wl_expr *parse_list(struct parser *p, enum node_kind kind)
{
    const char *word = kind == NODE_OR ? "or" : "and";
    struct wl_expr *first = kind == NODE_OR ? parse_list(p, NODE_AND) : parse_primary(p);
    if (first == NULL || !tok_is(p, word))
        return first;

    struct wl_expr *list = node_new(p, kind);
    if (list == NULL) {
        wl_expr_free(first);
        return NULL;
    }
    size_t cap = 0;
    struct wl_expr *kid = first;
    for (;;) {
        if (list->u.list.n == cap) {
            size_t ncap = cap ? 2 * cap : 4;
            struct wl_expr **k = realloc(list->u.list.kids, ncap * sizeof *k);
            if (k == NULL) {
                fail_at(p, p->tok.pos, "out of memory");
                wl_expr_free(kid);
                goto fail;
            }
            list->u.list.kids = k;
            cap = ncap;
        }
        list->u.list.kids[list->u.list.n++] = kid;
        if (!tok_is(p, word))
            return list;
        next(p);
        kid = kind == NODE_OR ? parse_list(p, NODE_AND) : parse_primary(p);
        if (kid == NULL)
            goto fail;
    }
fail:
    wl_expr_free(list);
    return NULL;
}

static struct wl_expr *parse_expr(struct parser *p)
{
    return parse_list(p, NODE_OR);
}

/* "teams", "installs", "growth_30d(active_users_monthly)" joined by "+". */
static void sum_label(const struct wl_expr *e, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < e->u.cmp.n && n < len; i++) {
        const struct value *val = &e->u.cmp.v[i];
        const char *plus = i ? "+" : "";
        int w;
        if (val->kind == VALUE_INSTALLS)
            w = snprintf(buf + n, len - n, "%sinstalls", plus);
        else if (val->kind == VALUE_METRIC)
            w = snprintf(buf + n, len - n, "%s%s", plus, wl_count_names[val->metric]);
        else
            w = snprintf(buf + n, len - n, "%sgrowth_%dd(%s)", plus, val->days,
                         wl_count_names[val->metric]);
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

/* Each sum's label, made once (its terms point at it). */
static void label_sums(struct wl_expr *e)
{
    if (e->kind == NODE_AND || e->kind == NODE_OR) {
        for (size_t i = 0; i < e->u.list.n; i++)
            label_sums(e->u.list.kids[i]);
    } else if (e->kind == NODE_CMP) {
        sum_label(e, e->label, sizeof e->label);
    }
}

int wl_expr_parse(const char *text, struct wl_expr **out, char *err, size_t errlen)
{
    struct parser p = {.src = text ? text : "", .err = err, .errlen = errlen};

    *out = NULL;
    if (errlen > 0)
        err[0] = '\0';
    next(&p);
    if (p.tok.kind == TOK_END) {
        fail_at(&p, p.tok.pos, "empty condition");
        return -1;
    }
    struct wl_expr *e = parse_expr(&p);
    if (e != NULL && p.tok.kind == TOK_END)
        label_sums(e);
    if (e != NULL && p.tok.kind != TOK_END) {
        if (p.tok.kind == TOK_RPAREN)
            fail_expected(&p, "'and', 'or' or end of condition (unbalanced ')')");
        else
            fail_expected(&p, "'and', 'or' or end of condition");
        wl_expr_free(e);
        e = NULL;
    }
    if (e == NULL)
        return -1;
    *out = e;
    return 0;
}

/* ---- evaluation ---- */

/* The value of one summand: returns 1 with it in out, or 0 when it is
 * undefined (a growth whose past value is unknown or 0). */
static int value_get(const struct value *val, const struct wl_account_view *v, double *out)
{
    switch (val->kind) {
    case VALUE_INSTALLS:
        *out = (double)v->installs;
        return 1;
    case VALUE_METRIC:
        *out = v->totals ? (double)v->totals[val->metric] : 0.0;
        return 1;
    default: {
        uint64_t past = 0;
        if (v->past_value == NULL ||
            v->past_value(v->ctx, (enum wl_count)val->metric, val->days, &past) != 0 || past == 0)
            return 0;
        double now = v->totals ? (double)v->totals[val->metric] : 0.0;
        *out = (now - (double)past) / (double)past * 100.0;
        return 1;
    }
    }
}

/* The sum of a comparison, or NAN when a summand is undefined. */
static double sum_get(const struct wl_expr *e, const struct wl_account_view *v)
{
    double sum = 0;
    for (size_t i = 0; i < e->u.cmp.n; i++) {
        double x;
        if (!value_get(&e->u.cmp.v[i], v, &x))
            return NAN;
        sum += x;
    }
    return sum;
}

static int call_set(int (*fn)(void *, const char *), void *ctx, const char *name)
{
    return fn != NULL && fn(ctx, name) != 0;
}

/* Relaxing moves the threshold by |t|*relax toward "still true": for a
 * threshold >= 0 that is t*(1-relax) for > and >=, t*(1+relax) for < and
 * <=, as rules.h says; for a negative threshold (a shrinking growth) the
 * same direction, so relaxing never makes a condition stricter. */
static int cmp_eval(const struct wl_expr *e, const struct wl_account_view *v, double relax)
{
    double x = sum_get(e, v);
    double t = e->u.cmp.threshold;
    if (isnan(x))
        return 0;
    switch (e->u.cmp.op) {
    case OP_GE: return x >= t - fabs(t) * relax;
    case OP_GT: return x > t - fabs(t) * relax;
    case OP_LE: return x <= t + fabs(t) * relax;
    case OP_LT: return x < t + fabs(t) * relax;
    default: return x == t;
    }
}

int wl_expr_eval(const struct wl_expr *e, const struct wl_account_view *v, double relax)
{
    switch (e->kind) {
    case NODE_AND:
        for (size_t i = 0; i < e->u.list.n; i++) {
            if (!wl_expr_eval(e->u.list.kids[i], v, relax))
                return 0;
        }
        return 1;
    case NODE_OR:
        for (size_t i = 0; i < e->u.list.n; i++) {
            if (wl_expr_eval(e->u.list.kids[i], v, relax))
                return 1;
        }
        return 0;
    case NODE_CMP:
        return cmp_eval(e, v, relax);
    case NODE_HAS_FEATURE:
        return call_set(v->has_feature, v->ctx, e->u.text) != e->negate;
    default:
        return call_set(v->has_edition, v->ctx, e->u.text);
    }
}


static void collect_terms(const struct wl_expr *e, const struct wl_account_view *v,
                          struct wl_rule_term *terms, size_t max, size_t *n)
{
    if (*n >= max)
        return;
    if (e->kind == NODE_AND || e->kind == NODE_OR) {
        for (size_t i = 0; i < e->u.list.n; i++)
            collect_terms(e->u.list.kids[i], v, terms, max, n);
        return;
    }
    struct wl_rule_term *t = &terms[(*n)++];
    if (e->kind == NODE_CMP) {
        *t = (struct wl_rule_term){.metric = e->label, .value = sum_get(e, v),
                                   .op = op_text[e->u.cmp.op], .threshold = e->u.cmp.threshold,
                                   .text = ""};
        return;
    }
    int has = e->kind == NODE_HAS_FEATURE ? call_set(v->has_feature, v->ctx, e->u.text)
                                          : call_set(v->has_edition, v->ctx, e->u.text);
    *t = (struct wl_rule_term){.metric = e->kind == NODE_HAS_FEATURE ? "has_feature" : "edition",
                               .value = has ? 1 : 0, .op = "==",
                               /* not has_feature(x): has_feature == 0 */
                               .threshold = e->negate ? 0 : 1, .text = e->u.text};
}

size_t wl_expr_terms(const struct wl_expr *e, const struct wl_account_view *v,
                     struct wl_rule_term *terms, size_t max)
{
    size_t n = 0;
    collect_terms(e, v, terms, max, &n);
    return n;
}

/* ---- the edge trigger ----
 *
 * Armed: the first step with the condition true is an edge; it disarms.
 * The edge fires when the cooldown since the last firing has passed;
 * inside the cooldown it is suppressed: the state still disarms, so a
 * level that stays true past the end of the cooldown does not fire later.
 * Only a new edge (after re-arming) outside the cooldown fires.
 * Disarmed: re-arms when the condition relaxed by the hysteresis is false;
 * then the strict condition is false too, so that step never fires. */
int wl_rule_step(const struct wl_rule *r, struct wl_rule_state *st,
                 const struct wl_account_view *v, int64_t now)
{
    if (st->disarmed) {
        if (!wl_expr_eval(r->when, v, r->hysteresis))
            st->disarmed = 0;
        return 0;
    }
    if (!wl_expr_eval(r->when, v, 0))
        return 0;
    st->disarmed = 1;
    if (st->last_fired != 0) {
        /* An event time before the last firing counts as inside the cooldown. */
        int64_t since = now - st->last_fired;
        if (since < 0 || (uint64_t)since < r->cooldown_ms)
            return 0;
    }
    st->last_fired = now;
    return 1;
}

/* ---- the rule set ---- */

/* Writes "FIELD: message" to err and returns -1. */
__attribute__((format(printf, 3, 4)))
static int field_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* "7d", "12h", "30m", "45s", "500ms" or bare seconds. Returns 0 or -EINVAL. */
static int parse_duration_ms(const char *s, uint64_t *out)
{
    static const struct { const char *unit; uint64_t ms; } units[] = {
        {"", SEC_MS}, {"ms", 1}, {"s", SEC_MS}, {"m", 60 * SEC_MS}, {"h", 3600 * SEC_MS},
        {"d", DAY_MS},
    };
    size_t digits = 0;
    uint64_t v = 0;

    while (is_digit(s[digits])) {
        if (v > COOLDOWN_MAX_MS)
            return -ERANGE;
        v = v * 10 + (uint64_t)(s[digits] - '0');
        digits++;
    }
    if (digits == 0)
        return -EINVAL;
    const char *unit = s + digits;
    while (*unit == ' ')
        unit++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(unit, units[i].unit) == 0) {
            if (v > COOLDOWN_MAX_MS / units[i].ms)
                return -ERANGE;
            *out = v * units[i].ms;
            return 0;
        }
    }
    return -EINVAL;
}

/* "10%" or "0.1": a fraction in [0, 1). Returns 0 or -EINVAL. */
static int parse_fraction(const char *s, double *out)
{
    size_t len = strlen(s);
    int percent = len > 0 && s[len - 1] == '%';
    double v;

    if (parse_decimal(s, len - (size_t)percent, &v) != 0)
        return -EINVAL;
    if (percent)
        v /= 100.0;
    if (!(v >= 0.0 && v < 1.0))
        return -EINVAL;
    *out = v;
    return 0;
}

/* Sets the growth bits and days of rs for the growth values in e. */
static void note_growth(const struct wl_expr *e, uint32_t *bits, int *days)
{
    if (e->kind == NODE_AND || e->kind == NODE_OR) {
        for (size_t i = 0; i < e->u.list.n; i++)
            note_growth(e->u.list.kids[i], bits, days);
    } else if (e->kind == NODE_CMP) {
        for (size_t i = 0; i < e->u.cmp.n; i++) {
            const struct value *val = &e->u.cmp.v[i];
            if (val->kind != VALUE_GROWTH)
                continue;
            *bits |= (uint32_t)1 << val->metric;
            if (val->days > *days)
                *days = val->days;
        }
    }
}

int wl_ruleset_add(struct wl_ruleset *rs, const char *name, const char *when,
                   const char *weight, const char *cooldown, const char *hysteresis,
                   const char *description, char *err, size_t errlen)
{
    struct wl_rule r = {.weight = 1.0, .cooldown_ms = 7 * DAY_MS, .hysteresis = 0.10};
    char perr[256];

    if (errlen > 0)
        err[0] = '\0';
    if (name == NULL || name[0] == '\0')
        return field_error(err, errlen, "name: empty");
    size_t len = strlen(name);
    if (len >= WL_RULE_NAME_MAX)
        return field_error(err, errlen, "name: '%.40s...' is longer than %d characters", name,
                           WL_RULE_NAME_MAX - 1);
    for (size_t i = 0; i < len; i++) {
        if (!is_name_char(name[i]))
            return field_error(err, errlen, "name: '%s' has a character outside [A-Za-z0-9_.-]",
                               name);
    }
    for (size_t i = 0; i < rs->n; i++) {
        if (strcmp(rs->rules[i].name, name) == 0)
            return field_error(err, errlen, "name: rule '%s' is defined twice", name);
    }
    if (rs->n >= WL_RULES_MAX)
        return field_error(err, errlen, "name: '%s' is one rule too many (at most %d)", name,
                           WL_RULES_MAX);
    memcpy(r.name, name, len + 1);

    if (weight != NULL) {
        if (parse_decimal(weight, strlen(weight), &r.weight) != 0 || !(r.weight > 0))
            return field_error(err, errlen, "weight: '%s' is not a number > 0", weight);
        if (r.weight > WEIGHT_MAX)
            return field_error(err, errlen, "weight: '%s' is above %g", weight, WEIGHT_MAX);
    }
    if (cooldown != NULL) {
        int rc = parse_duration_ms(cooldown, &r.cooldown_ms);
        if (rc == -ERANGE)
            return field_error(err, errlen, "cooldown: '%s' is longer than 3650d", cooldown);
        if (rc != 0)
            return field_error(err, errlen, "cooldown: '%s' is not a duration such as 7d, 12h, "
                               "30m, 45s, 500ms (bare numbers are seconds)", cooldown);
    }
    if (hysteresis != NULL && parse_fraction(hysteresis, &r.hysteresis) != 0)
        return field_error(err, errlen, "hysteresis: '%s' is not a fraction in [0, 1) "
                           "such as 10%% or 0.1", hysteresis);

    if (when == NULL)
        return field_error(err, errlen, "when: missing (every rule needs a condition)");
    if (wl_expr_parse(when, &r.when, perr, sizeof perr) != 0)
        return field_error(err, errlen, "when: %s", perr);

    if (description == NULL || description[0] == '\0')
        description = when;
    r.when_text = strdup(when);
    r.description = strdup(description);
    if (r.when_text == NULL || r.description == NULL) {
        free(r.when_text);
        free(r.description);
        wl_expr_free(r.when);
        return field_error(err, errlen, "%s: out of memory", name);
    }
    note_growth(r.when, &rs->growth_metrics, &rs->max_growth_days);
    rs->rules[rs->n++] = r;
    return 0;
}

void wl_ruleset_clear(struct wl_ruleset *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->rules[i].description);
        free(rs->rules[i].when_text);
        wl_expr_free(rs->rules[i].when);
    }
    memset(rs, 0, sizeof *rs);
}

/* ---- scores ---- */

double wl_score_add(double L, double weight, int64_t t_ms, uint64_t half_life_ms)
{
    if (!(weight > 0) || !isfinite(weight) || half_life_ms == 0)
        return L;
    double x = log2(weight) + (double)(t_ms - WL_SCORE_EPOCH_MS) / (double)half_life_ms;
    if (L <= WL_SCORE_NONE)
        return x;
    /* log2(2^L + 2^x) = max + log2(1 + 2^-(|L - x|)): no overflow. */
    double hi = L > x ? L : x;
    double d = fabs(L - x);
    return hi + log1p(exp2(-d)) / M_LN2;
}

double wl_score_at(double L, int64_t now_ms, uint64_t half_life_ms)
{
    if (L <= WL_SCORE_NONE || half_life_ms == 0)
        return 0;
    return exp2(L - (double)(now_ms - WL_SCORE_EPOCH_MS) / (double)half_life_ms);
}
