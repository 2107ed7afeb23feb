/* Query parameters of the HTTP API: every endpoint names the ones it takes;
 * anything else, a repeat, or a value out of its range is a 400 that names
 * the parameter, the expectation and what was sent. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "api_http.h"

#define SHOWN_MAX 64 /* bytes of a bad value quoted back */

struct collect {
    struct wl_api_param *params;
    size_t n;
    const char *bad_name;       /* unknown */
    const char *repeated;
};

static enum MHD_Result collect_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct collect *c = cls;
    (void)kind;
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->params[i].name, key) == 0) {
            if (c->params[i].value != NULL) {
                c->repeated = c->params[i].name;
                return MHD_NO;
            }
            c->params[i].value = value ? value : "";
            return MHD_YES;
        }
    }
    c->bad_name = key;
    return MHD_NO;
}

int wl_api_params(const struct wl_req *rq, struct wl_api_param *params, size_t n,
                  enum MHD_Result *ret)
{
    struct collect c = {.params = params, .n = n};
    char names[256];
    size_t len = 0;

    for (size_t i = 0; i < n; i++)
        params[i].value = NULL;
    MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, collect_one, &c);
    if (c.repeated != NULL) {
        *ret = wl_api_send_error(rq->conn, MHD_HTTP_BAD_REQUEST, "bad_parameter",
                                 "%s: given more than once", c.repeated);
        return -1;
    }
    if (c.bad_name == NULL)
        return 0;
    names[0] = '\0';
    for (size_t i = 0; i < n && len < sizeof names; i++)
        len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "",
                                params[i].name);
    *ret = wl_api_send_error(rq->conn, MHD_HTTP_BAD_REQUEST, "bad_parameter",
                             "unknown parameter '%.*s' (%s%s)", SHOWN_MAX, c.bad_name,
                             n ? "this endpoint takes " : "this endpoint takes none",
                             names);
    return -1;
}

static int bad(const struct wl_req *rq, const struct wl_api_param *p, const char *expected,
               enum MHD_Result *ret)
{
    size_t len = strlen(p->value);
    *ret = wl_api_send_error(rq->conn, MHD_HTTP_BAD_REQUEST, "bad_parameter",
                             "%s: expected %s, got '%.*s'%s", p->name, expected, SHOWN_MAX,
                             p->value, len > SHOWN_MAX ? "..." : "");
    return -1;
}

/* A decimal whole number, digits only. */
static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!isdigit((unsigned char)s[0]))
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0)
        return -EINVAL;
    *out = v;
    return 0;
}

int wl_api_param_uint(const struct wl_req *rq, const struct wl_api_param *p, uint64_t min,
                      uint64_t max, uint64_t def, uint64_t *out, enum MHD_Result *ret)
{
    char expected[96];
    uint64_t v;

    if (p->value == NULL) {
        *out = def;
        return 0;
    }
    if (parse_u64(p->value, &v) != 0 || v < min || v > max) {
        snprintf(expected, sizeof expected, "a whole number from %llu to %llu",
                 (unsigned long long)min, (unsigned long long)max);
        return bad(rq, p, expected, ret);
    }
    *out = v;
    return 0;
}

int wl_api_param_score(const struct wl_req *rq, const struct wl_api_param *p, double def,
                       double *out, enum MHD_Result *ret)
{
    char *end;

    if (p->value == NULL) {
        *out = def;
        return 0;
    }
    const char *s = p->value;
    /* strtod alone would take " 1", "inf", "nan" and hex */
    if (!(isdigit((unsigned char)s[0]) || (s[0] == '.' && isdigit((unsigned char)s[1]))) ||
        strpbrk(s, "xXpP") != NULL)
        return bad(rq, p, "a number >= 0", ret);
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0' || errno != 0 || !isfinite(v) || v < 0)
        return bad(rq, p, "a number >= 0", ret);
    *out = v;
    return 0;
}

/* Reads exactly n digits. */
static int digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*s)[i]))
            return -1;
        v = v * 10 + ((*s)[i] - '0');
    }
    *s += n;
    *out = v;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

int wl_api_parse_time(const char *s, int64_t *out_ms)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, off = 0;
    uint64_t u;

    if (parse_u64(s, &u) == 0) { /* unix ms */
        if (u > (uint64_t)INT64_MAX)
            return -EINVAL;
        *out_ms = (int64_t)u;
        return 0;
    }
    if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) || *s++ != '-' ||
        digits(&s, 2, &d))
        return -EINVAL;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return -EINVAL;
    if (*s == 'T' || *s == 't' || *s == ' ') {
        s++;
        if (digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi))
            return -EINVAL;
        if (*s == ':') {
            s++;
            if (digits(&s, 2, &sec))
                return -EINVAL;
            if (*s == '.') {
                int n = 0, scale = 100;
                s++;
                while (isdigit((unsigned char)*s)) { /* milliseconds; finer is dropped */
                    ms += n < 3 ? (*s - '0') * scale : 0;
                    scale /= 10;
                    n++;
                    s++;
                }
                if (n == 0)
                    return -EINVAL;
            }
        }
        if (h > 23 || mi > 59 || sec > 60)
            return -EINVAL;
        if (*s == 'Z' || *s == 'z') {
            s++;
        } else if (*s == '+' || *s == '-') {
            int sign = *s++ == '-' ? -1 : 1, oh, om;
            if (digits(&s, 2, &oh) || *s++ != ':' || digits(&s, 2, &om) || oh > 23 || om > 59)
                return -EINVAL;
            off = sign * (oh * 60 + om);
        } else {
            return -EINVAL; /* a time of day needs its zone */
        }
    }
    if (*s != '\0')
        return -EINVAL;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = sec};
    time_t t = timegm(&tm);
    *out_ms = ((int64_t)t - (int64_t)off * 60) * 1000 + ms;
    return 0;
}

int wl_api_param_time(const struct wl_req *rq, const struct wl_api_param *p, int64_t *out,
                      int *given, enum MHD_Result *ret)
{
    *given = 0;
    if (p->value == NULL)
        return 0;
    if (wl_api_parse_time(p->value, out) != 0)
        return bad(rq, p,
                   "unix milliseconds, a date (2026-11-01) or a UTC time "
                   "(2026-11-01T12:00:00Z)",
                   ret);
    *given = 1;
    return 0;
}

int wl_api_param_name(const struct wl_req *rq, const struct wl_api_param *p, const char **out,
                      enum MHD_Result *ret)
{
    *out = NULL;
    if (p->value == NULL)
        return 0;
    size_t n = strlen(p->value);
    if (n == 0 || n > 63 || strspn(p->value,
                                   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "0123456789_.-") != n)
        return bad(rq, p, "a rule name (1 to 63 of A-Z a-z 0-9 _ . -)", ret);
    *out = p->value;
    return 0;
}

#define B64URL "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

int wl_api_param_b64(const struct wl_req *rq, const struct wl_api_param *p, uint8_t *out,
                     size_t min, size_t max, size_t *len, const char *expected,
                     enum MHD_Result *ret)
{
    *len = 0;
    if (p->value == NULL)
        return 0;
    size_t n = strlen(p->value);
    /* base64 of max bytes is 4/3 as long: a longer value is refused unread */
    if (n == 0 || n > (max + 2) / 3 * 4 || strspn(p->value, B64URL) != n ||
        sodium_base642bin(out, max, p->value, n, NULL, len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        *len < min) {
        *len = 0;
        return bad(rq, p, expected, ret);
    }
    return 0;
}

json_t *wl_api_b64_json(const uint8_t *b, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *text = malloc(cap);
    if (text == NULL)
        return NULL;
    sodium_bin2base64(text, cap, b, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    json_t *s = json_string(text);
    free(text);
    return s;
}
