#include "signal_json.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ping.h"
#include "storage/keys.h"

#define ORG_TEXT_MAX (8 + 2 * WL_ORG_ID_MAX + 1) /* "install:" + id, or 64 hex */
#define EXACT_INT_LIMIT 9007199254740992.0      /* 2^53 */

static int is_whole(double x)
{
    return isfinite(x) && x == trunc(x) && fabs(x) < EXACT_INT_LIMIT;
}

static json_t *json_number(double x)
{
    if (!isfinite(x))
        return json_null();
    if (is_whole(x))
        return json_integer((json_int_t)x);
    return json_real(x);
}

static json_t *json_u64(uint64_t v)
{
    char buf[24];

    if (v <= (uint64_t)INT64_MAX)
        return json_integer((json_int_t)v);
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return json_string(buf);
}

json_t *wl_json_string_lossy(const char *s, size_t len)
{
    if (s == NULL)
        return json_string("");
    if (wl_utf8_valid(s, len))
        return json_stringn(s, len);
    char *copy = malloc(len ? len : 1);
    if (copy == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++)
        copy[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    json_t *j = json_stringn(copy, len);
    free(copy);
    return j;
}

/* jansson refuses invalid UTF-8; a damaged record should still print. */
static json_t *json_text(const char *s)
{
    return wl_json_string_lossy(s, s ? strlen(s) : 0);
}

static void org_text(const wl_signal *sig, char out[ORG_TEXT_MAX])
{
    wl_org_id_format(sig->org.data, sig->org.len, out, ORG_TEXT_MAX);
}

/* "2024-05-01T12:34:56.789Z", or null when the time cannot be represented. */
static json_t *json_iso_time(int64_t ms)
{
    char buf[40];
    struct tm tm;
    int64_t sec = ms / 1000, milli = ms % 1000;

    if (milli < 0) { /* floor, for times before 1970 */
        milli += 1000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
        return json_null();
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)milli);
    return json_string(buf);
}

static json_t *term_json(const Warmline__Store__V1__Signal__Term *t)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int bad = json_object_set_new(o, "metric", json_text(t->metric)) |
              json_object_set_new(o, "value", json_number(t->value)) |
              json_object_set_new(o, "op", json_text(t->op)) |
              json_object_set_new(o, "threshold", json_number(t->threshold));
    if (t->text != NULL && t->text[0] != '\0')
        bad |= json_object_set_new(o, "text", json_text(t->text));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *wl_signal_json(const wl_signal *sig)
{
    char org[ORG_TEXT_MAX];
    json_t *o = json_object(), *terms = json_array(), *installs = json_array();
    int bad = o == NULL || terms == NULL || installs == NULL;

    for (size_t i = 0; !bad && i < sig->n_terms; i++)
        bad = json_array_append_new(terms, term_json(sig->terms[i])) != 0;
    for (size_t i = 0; !bad && i < sig->n_install_ids; i++)
        bad = json_array_append_new(installs, json_text(sig->install_ids[i])) != 0;
    if (bad)
        goto fail;
    org_text(sig, org);
    bad = json_object_set_new(o, "id", json_u64(sig->id)) |
          json_object_set_new(o, "org", json_string(org)) |
          json_object_set_new(o, "rule", json_text(sig->rule)) |
          json_object_set_new(o, "description", json_text(sig->description)) |
          json_object_set_new(o, "weight", json_number(sig->weight)) |
          json_object_set_new(o, "fired_at", json_integer((json_int_t)sig->fired_at)) |
          json_object_set_new(o, "fired_at_iso", json_iso_time(sig->fired_at));
    /* the object owns the arrays from here, even on failure */
    bad |= json_object_set_new(o, "terms", terms);
    terms = NULL;
    bad |= json_object_set_new(o, "install_ids", installs);
    installs = NULL;
    bad |= json_object_set_new(o, "ingest_seq", json_u64(sig->ingest_seq));
    if (bad)
        goto fail;
    return o;

fail:
    json_decref(terms);
    json_decref(installs);
    json_decref(o);
    return NULL;
}

char *wl_signal_json_text(const wl_signal *sig)
{
    json_t *o = wl_signal_json(sig);
    if (o == NULL)
        return NULL;
    char *text = json_dumps(o, WL_SIGNAL_JSON_FLAGS);
    json_decref(o);
    return text;
}

/* ---- the one-line summary ---- */

struct out {
    char *buf;
    size_t len, n;
    int truncated;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;

    if (o->truncated || o->len == 0)
        return;
    va_start(ap, fmt);
    int m = vsnprintf(o->buf + o->n, o->len - o->n, fmt, ap);
    va_end(ap);
    if (m < 0 || (size_t)m >= o->len - o->n) {
        o->truncated = 1;
        o->n = o->len - 1;
    } else {
        o->n += (size_t)m;
    }
}

/* 12, 53.33, 0.5; "n/a" when undefined. */
static const char *num_text(double x, char *buf, size_t len)
{
    if (!isfinite(x)) {
        snprintf(buf, len, "n/a");
    } else if (is_whole(x) || fabs(x) >= 1e15) {
        snprintf(buf, len, "%.0f", x);
    } else {
        snprintf(buf, len, "%.2f", x);
        char *end = buf + strlen(buf);
        while (end > buf && end[-1] == '0')
            *--end = '\0';
        if (end > buf && end[-1] == '.')
            *--end = '\0';
    }
    return buf;
}

static void put_term(struct out *o, const Warmline__Store__V1__Signal__Term *t)
{
    char v[64], th[64];
    const char *metric = t->metric ? t->metric : "";
    const char *op = t->op ? t->op : "";

    if (t->text != NULL && t->text[0] != '\0') {
        if (strcmp(metric, "has_feature") == 0)
            put(o, "has_feature(%s)", t->text);
        else
            put(o, "%s %s \"%s\"", metric, op, t->text);
        if (t->value == 0)
            put(o, " (no)");
    } else {
        put(o, "%s %s (%s %s)", metric, num_text(t->value, v, sizeof v), op,
            num_text(t->threshold, th, sizeof th));
    }
}

size_t wl_signal_summary(const wl_signal *sig, char *buf, size_t len)
{
    char org[ORG_TEXT_MAX];
    struct out o = {.buf = buf, .len = len};

    if (len == 0)
        return 0;
    buf[0] = '\0';
    org_text(sig, org);
    put(&o, "signal %" PRIu64 " for org %s: ", sig->id, org);
    if (sig->description != NULL && sig->description[0] != '\0')
        put(&o, "%s [%s]", sig->description, sig->rule ? sig->rule : "");
    else
        put(&o, "rule %s", sig->rule ? sig->rule : "");
    for (size_t i = 0; i < sig->n_terms; i++) {
        put(&o, i == 0 ? " - " : ", ");
        put_term(&o, sig->terms[i]);
    }
    if (o.truncated && len >= 4) {
        size_t p = len - 4;
        while (p > 0 && ((unsigned char)buf[p] & 0xc0) == 0x80) /* not inside a character */
            p--;
        memcpy(buf + p, "...", 4);
        o.n = p + 3;
    }
    /* one line of valid UTF-8, whatever the record holds */
    int utf8 = wl_utf8_valid(buf, o.n);
    for (size_t i = 0; i < o.n; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c < 0x20 || c == 0x7f)
            buf[i] = ' ';
        else if (c >= 0x80 && !utf8)
            buf[i] = '?';
    }
    return o.n;
}
