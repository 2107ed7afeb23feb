/* Unit tests for collector/ping.h: wl_ping_validate as a table of
 * must_pass / must_reject pings, wl_utf8_valid, the count list and the
 * reason names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "ping.h"
#include "storage/keys.h"

#define MAX_COUNT 10000000 /* the documented default of limits.max_count */

/* In a table test: report one failing case and go on with the others. */
#define CASE_FAIL(...) (print_error(__VA_ARGS__), bad++)

/* ---- a ping to mutate ---- */

struct fixture {
    wl_ping p;
    uint8_t key[40];
    char id[80];
    char str[5][200];            /* version, edition, database_type, operating_system, installation_type */
    char feat_buf[70][200];
    char *features[70];
};

static void valid_ping(struct fixture *f)
{
    wl_ping init = WARMLINE__V1__PING__INIT;
    memset(f, 0, sizeof *f);
    f->p = init;
    strcpy(f->id, "install-0001");
    f->p.install_id = f->id;
    memset(f->key, 0x5a, sizeof f->key);
    f->p.org_key.data = f->key;
    f->p.org_key.len = WL_ORG_KEY_BYTES;
    f->p.seq = 1;
    f->p.sent_at = 1700000000000;
    strcpy(f->str[0], "9.11.2");
    strcpy(f->str[1], "team");
    strcpy(f->str[2], "postgres");
    strcpy(f->str[3], "linux");
    strcpy(f->str[4], "docker");
    f->p.version = f->str[0];
    f->p.edition = f->str[1];
    f->p.database_type = f->str[2];
    f->p.operating_system = f->str[3];
    f->p.installation_type = f->str[4];
    f->p.registered_users = 40;
    f->p.active_users_daily = 12;
    f->p.posts = 123456;
    for (int i = 0; i < 70; i++) {
        snprintf(f->feat_buf[i], sizeof f->feat_buf[i], "feature_%d", i);
        f->features[i] = f->feat_buf[i];
    }
    f->p.features = f->features;
    f->p.n_features = 2;
}

/* The string fields, by index into fixture.str. */
static char **string_field(wl_ping *p, int i)
{
    switch (i) {
    case 0: return &p->version;
    case 1: return &p->edition;
    case 2: return &p->database_type;
    case 3: return &p->operating_system;
    default: return &p->installation_type;
    }
}

static const char *const string_field_names[5] = {"version", "edition", "database_type",
                                                   "operating_system", "installation_type"};

static void fill(char *buf, size_t n, char c)
{
    memset(buf, c, n);
    buf[n] = '\0';
}

/* ---- mutations: each makes the valid ping into one case ---- */

static void m_none(struct fixture *f) { (void)f; }
static void m_id_empty(struct fixture *f) { f->id[0] = '\0'; }
static void m_id_64(struct fixture *f) { fill(f->id, 64, 'a'); }
static void m_id_65(struct fixture *f) { fill(f->id, 65, 'a'); }
static void m_id_1(struct fixture *f) { strcpy(f->id, "x"); }
static void m_id_printable(struct fixture *f) { strcpy(f->id, " !~{}[]:/-_.@AZaz09"); }
static void m_id_ctrl(struct fixture *f) { strcpy(f->id, "abc\x01"); }
static void m_id_tab(struct fixture *f) { strcpy(f->id, "a\tb"); }
static void m_id_newline(struct fixture *f) { strcpy(f->id, "ab\n"); }
static void m_id_del(struct fixture *f) { strcpy(f->id, "ab\x7f"); }
static void m_id_0x80(struct fixture *f) { strcpy(f->id, "ab\x80"); }
static void m_id_0xff(struct fixture *f) { strcpy(f->id, "\xff" "ab"); }
static void m_id_utf8(struct fixture *f) { strcpy(f->id, "caf\xc3\xa9"); }
static void m_key_0(struct fixture *f) { f->p.org_key.len = 0; f->p.org_key.data = NULL; }
static void m_key_31(struct fixture *f) { f->p.org_key.len = 31; }
static void m_key_32(struct fixture *f) { f->p.org_key.len = 32; }
static void m_key_33(struct fixture *f) { f->p.org_key.len = 33; }
static void m_key_1(struct fixture *f) { f->p.org_key.len = 1; }
static void m_seq_0(struct fixture *f) { f->p.seq = 0; }
static void m_seq_max(struct fixture *f) { f->p.seq = UINT64_MAX; }
static void m_sent_at_negative(struct fixture *f) { f->p.sent_at = -1; }
static void m_feat_64(struct fixture *f) { f->p.n_features = 64; }
static void m_feat_65(struct fixture *f) { f->p.n_features = 65; }
static void m_feat_0(struct fixture *f) { f->p.n_features = 0; f->p.features = NULL; }
static void m_feat_128(struct fixture *f) { fill(f->feat_buf[63], 128, 'f'); f->p.n_features = 64; }
static void m_feat_129(struct fixture *f) { fill(f->feat_buf[63], 129, 'f'); f->p.n_features = 64; }
static void m_feat_utf8(struct fixture *f) { strcpy(f->feat_buf[1], "saml\xc0\x80"); }
static void m_feat_empty(struct fixture *f) { f->feat_buf[0][0] = '\0'; }
static void m_empty_strings(struct fixture *f)
{
    for (int i = 0; i < 5; i++)
        f->str[i][0] = '\0';
}
/* Every count field at max_count, and then one above. */
static void m_all_counts_at_max(struct fixture *f)
{
#define SET_MAX(name) f->p.name = MAX_COUNT;
    WL_COUNT_FIELDS(SET_MAX)
#undef SET_MAX
}
static void m_posts_above(struct fixture *f) { f->p.posts = (uint64_t)MAX_COUNT + 1; }
static void m_posts_huge(struct fixture *f) { f->p.posts = UINT64_MAX; }
static void m_users_above(struct fixture *f) { f->p.registered_users = MAX_COUNT + 1; }
static void m_admins_u32max(struct fixture *f) { f->p.system_admins = UINT32_MAX; }
/* Several faults: the first in the documented order wins. */
static void m_id_and_seq(struct fixture *f) { f->id[0] = '\0'; f->p.seq = 0; }
static void m_key_and_seq(struct fixture *f) { f->p.org_key.len = 5; f->p.seq = 0; }
static void m_string_and_count(struct fixture *f)
{
    fill(f->str[2], 129, 's');
    f->p.posts = UINT64_MAX;
}

struct validate_case {
    const char *name;
    void (*mutate)(struct fixture *);
    enum wl_reason want;
};

static const struct validate_case validate_cases[] = {
    /* must pass */
    {"valid", m_none, WL_REJECT_NONE},
    {"install_id 64 bytes", m_id_64, WL_REJECT_NONE},
    {"install_id 1 byte", m_id_1, WL_REJECT_NONE},
    {"install_id printable punctuation and space", m_id_printable, WL_REJECT_NONE},
    {"org_key empty", m_key_0, WL_REJECT_NONE},
    {"org_key 32 bytes", m_key_32, WL_REJECT_NONE},
    {"seq max", m_seq_max, WL_REJECT_NONE},
    {"sent_at negative", m_sent_at_negative, WL_REJECT_NONE},
    {"64 features", m_feat_64, WL_REJECT_NONE},
    {"no features", m_feat_0, WL_REJECT_NONE},
    {"128-byte feature", m_feat_128, WL_REJECT_NONE},
    {"empty feature", m_feat_empty, WL_REJECT_NONE},
    {"empty strings", m_empty_strings, WL_REJECT_NONE},
    {"every count == max_count", m_all_counts_at_max, WL_REJECT_NONE},
    /* must reject */
    {"install_id empty", m_id_empty, WL_REJECT_INSTALL_ID_EMPTY},
    {"install_id 65 bytes", m_id_65, WL_REJECT_INSTALL_ID_TOO_LONG},
    {"install_id control char", m_id_ctrl, WL_REJECT_INSTALL_ID_NOT_PRINTABLE},
    {"install_id tab", m_id_tab, WL_REJECT_INSTALL_ID_NOT_PRINTABLE},
    {"install_id newline", m_id_newline, WL_REJECT_INSTALL_ID_NOT_PRINTABLE},
    {"install_id DEL", m_id_del, WL_REJECT_INSTALL_ID_NOT_PRINTABLE},
    {"install_id byte 0x80", m_id_0x80, WL_REJECT_INSTALL_ID_NOT_PRINTABLE},
    {"install_id byte 0xff", m_id_0xff, WL_REJECT_INSTALL_ID_NOT_PRINTABLE},
    {"install_id UTF-8 (not ASCII)", m_id_utf8, WL_REJECT_INSTALL_ID_NOT_PRINTABLE},
    {"org_key 31 bytes", m_key_31, WL_REJECT_ORG_KEY_LENGTH},
    {"org_key 33 bytes", m_key_33, WL_REJECT_ORG_KEY_LENGTH},
    {"org_key 1 byte", m_key_1, WL_REJECT_ORG_KEY_LENGTH},
    {"seq 0", m_seq_0, WL_REJECT_SEQ_ZERO},
    {"65 features", m_feat_65, WL_REJECT_TOO_MANY_FEATURES},
    {"129-byte feature", m_feat_129, WL_REJECT_STRING_TOO_LONG},
    {"feature not UTF-8", m_feat_utf8, WL_REJECT_STRING_NOT_UTF8},
    {"posts max_count + 1", m_posts_above, WL_REJECT_COUNT_TOO_LARGE},
    {"posts UINT64_MAX", m_posts_huge, WL_REJECT_COUNT_TOO_LARGE},
    {"registered_users max_count + 1", m_users_above, WL_REJECT_COUNT_TOO_LARGE},
    {"system_admins UINT32_MAX", m_admins_u32max, WL_REJECT_COUNT_TOO_LARGE},
    /* the first reason, in the documented order */
    {"empty id and seq 0", m_id_and_seq, WL_REJECT_INSTALL_ID_EMPTY},
    {"bad org_key and seq 0", m_key_and_seq, WL_REJECT_ORG_KEY_LENGTH},
    {"long string and huge count", m_string_and_count, WL_REJECT_STRING_TOO_LONG},
};

static void test_validate_table(void **state)
{
    (void)state;
    static struct fixture f;
    size_t n = sizeof validate_cases / sizeof validate_cases[0];
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        valid_ping(&f);
        validate_cases[i].mutate(&f);
        enum wl_reason got = wl_ping_validate(&f.p, MAX_COUNT);
        if (got != validate_cases[i].want)
            CASE_FAIL("%s: got %s, want %s\n", validate_cases[i].name, wl_reason_name(got),
                      wl_reason_name(validate_cases[i].want));
    }
    if (bad)
        fail_msg("%d of %zu cases wrong", bad, n);
}

/* Every string field: 128 bytes pass, 129 fail, each kind of bad UTF-8 fails,
 * multibyte characters pass, and the limit is in bytes. */
static void test_validate_each_string_field(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *value; /* NULL: use the length below */
        size_t len;
        enum wl_reason want;
    } cases[] = {
        {"128 bytes", NULL, 128, WL_REJECT_NONE},
        {"129 bytes", NULL, 129, WL_REJECT_STRING_TOO_LONG},
        {"199 bytes", NULL, 199, WL_REJECT_STRING_TOO_LONG},
        {"overlong C0 80", "a\xc0\x80", 0, WL_REJECT_STRING_NOT_UTF8},
        {"lone continuation 80", "\x80", 0, WL_REJECT_STRING_NOT_UTF8},
        {"surrogate ED A0 80", "x\xed\xa0\x80y", 0, WL_REJECT_STRING_NOT_UTF8},
        {"truncated E2 82", "\xe2\x82", 0, WL_REJECT_STRING_NOT_UTF8},
        {"F5 byte", "\xf5\x80\x80\x80", 0, WL_REJECT_STRING_NOT_UTF8},
        {"FF byte", "ok\xff", 0, WL_REJECT_STRING_NOT_UTF8},
        {"e-acute", "caf\xc3\xa9", 0, WL_REJECT_NONE},
        {"euro", "\xe2\x82\xac" "5", 0, WL_REJECT_NONE},
        {"emoji", "\xf0\x9f\x98\x80", 0, WL_REJECT_NONE},
        {"control chars are fine in strings", "a\tb\x01", 0, WL_REJECT_NONE},
    };
    static struct fixture f;
    int bad = 0;
    for (int field = 0; field < 5; field++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            valid_ping(&f);
            char *buf = f.str[field];
            if (cases[i].value != NULL)
                strcpy(buf, cases[i].value);
            else
                fill(buf, cases[i].len, 'v');
            *string_field(&f.p, field) = buf;
            enum wl_reason got = wl_ping_validate(&f.p, MAX_COUNT);
            if (got != cases[i].want)
                CASE_FAIL("%s with %s: got %s, want %s\n", string_field_names[field],
                          cases[i].name, wl_reason_name(got), wl_reason_name(cases[i].want));
        }
        /* The limit counts bytes: 64 x e-acute = 128 bytes passes, 43 x euro
         * = 129 bytes (43 characters) fails. */
        valid_ping(&f);
        f.str[field][0] = '\0';
        for (int k = 0; k < 64; k++)
            strcat(f.str[field], "\xc3\xa9");
        if (wl_ping_validate(&f.p, MAX_COUNT) != WL_REJECT_NONE)
            CASE_FAIL("%s: 64 x e-acute (128 bytes) rejected\n", string_field_names[field]);
        f.str[field][0] = '\0';
        for (int k = 0; k < 43; k++)
            strcat(f.str[field], "\xe2\x82\xac");
        if (wl_ping_validate(&f.p, MAX_COUNT) != WL_REJECT_STRING_TOO_LONG)
            CASE_FAIL("%s: 43 x euro (129 bytes) not too long\n", string_field_names[field]);
    }
    if (bad)
        fail_msg("%d string cases wrong", bad);
}

/* Every count field, one at a time: max_count passes, max_count + 1 fails. */
static void test_validate_each_count_field(void **state)
{
    (void)state;
    static struct fixture f;
    int bad = 0;
    static const uint64_t limits[] = {1, 1000, MAX_COUNT, UINT32_MAX - 1};
    for (size_t l = 0; l < sizeof limits / sizeof limits[0]; l++) {
        uint64_t max = limits[l];
#define CHECK_FIELD(name)                                                              \
    valid_ping(&f);                                                                    \
    f.p.registered_users = f.p.active_users_daily = 0;                                 \
    f.p.posts = 0;                                                                     \
    f.p.name = max;                                                                    \
    if (wl_ping_validate(&f.p, max) != WL_REJECT_NONE)                                 \
        CASE_FAIL(#name " == max_count %llu rejected\n", (unsigned long long)max);      \
    f.p.name = max + 1;                                                                \
    if (wl_ping_validate(&f.p, max) != WL_REJECT_COUNT_TOO_LARGE)                      \
        CASE_FAIL(#name " == max_count %llu + 1 accepted\n", (unsigned long long)max);
        WL_COUNT_FIELDS(CHECK_FIELD)
#undef CHECK_FIELD
    }
    /* At the widest ceiling a uint32 count cannot exceed it; posts (uint64) can. */
    valid_ping(&f);
    f.p.registered_users = UINT32_MAX;
    f.p.posts = UINT32_MAX;
    assert_int_equal(wl_ping_validate(&f.p, UINT32_MAX), WL_REJECT_NONE);
    f.p.posts = (uint64_t)UINT32_MAX + 1;
    assert_int_equal(wl_ping_validate(&f.p, UINT32_MAX), WL_REJECT_COUNT_TOO_LARGE);
    if (bad)
        fail_msg("%d count cases wrong", bad);
}

/* ---- wl_utf8_valid ---- */

struct utf8_case {
    const char *s;
    size_t len;
    int want;
};

#define U(lit, want) {lit, sizeof(lit) - 1, want}

static const struct utf8_case utf8_cases[] = {
    /* must_parse */
    U("", 1),
    U("plain ascii", 1),
    U("\x00", 1),                 /* NUL is ASCII */
    U("\x7f", 1),
    U("\xc2\x80", 1),             /* U+0080, smallest 2-byte */
    U("\xc3\xa9", 1),             /* é */
    U("\xdf\xbf", 1),             /* U+07FF */
    U("\xe0\xa0\x80", 1),         /* U+0800, smallest 3-byte */
    U("\xe2\x82\xac", 1),         /* € */
    U("\xed\x9f\xbf", 1),         /* U+D7FF, just below the surrogates */
    U("\xee\x80\x80", 1),         /* U+E000, just above */
    U("\xef\xbf\xbf", 1),         /* U+FFFF */
    U("\xf0\x90\x80\x80", 1),     /* U+10000, smallest 4-byte */
    U("\xf0\x9f\x98\x80", 1),     /* 😀 */
    U("\xf4\x8f\xbf\xbf", 1),     /* U+10FFFF, the last */
    U("a\xc3\xa9" "b\xe2\x82\xac" "c\xf0\x9f\x98\x80" "d", 1),
    /* must_not_parse */
    U("\x80", 0),                 /* lone continuation */
    U("a\xbf", 0),
    U("\xc0\x80", 0),             /* overlong NUL */
    U("\xc1\xbf", 0),             /* overlong U+007F */
    U("\xe0\x80\x80", 0),         /* overlong 3-byte */
    U("\xe0\x9f\xbf", 0),         /* overlong U+07FF */
    U("\xf0\x80\x80\x80", 0),     /* overlong 4-byte */
    U("\xf0\x8f\xbf\xbf", 0),     /* overlong U+FFFF */
    U("\xed\xa0\x80", 0),         /* U+D800 */
    U("\xed\xbf\xbf", 0),         /* U+DFFF */
    U("\xed\xa0\xbd\xed\xb8\x80", 0), /* CESU-8 surrogate pair */
    U("\xf4\x90\x80\x80", 0),     /* U+110000 */
    U("\xf5\x80\x80\x80", 0),
    U("\xf8\x88\x80\x80\x80", 0), /* 5-byte form */
    U("\xfe", 0),
    U("\xff", 0),
    U("\xc3", 0),                 /* truncated 2-byte */
    U("\xe2\x82", 0),             /* truncated 3-byte */
    U("\xf0\x9f\x98", 0),         /* truncated 4-byte */
    U("\xc3(", 0),                /* bad continuation */
    U("\xe2(\xa1", 0),
    U("\xe2\x82(", 0),
    U("\xf0\x9f(\x80", 0),
    U("ok\xc3", 0),               /* truncated at the very end */
};

static void test_utf8_table(void **state)
{
    (void)state;
    size_t n = sizeof utf8_cases / sizeof utf8_cases[0];
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        int got = wl_utf8_valid(utf8_cases[i].s, utf8_cases[i].len);
        if (got != utf8_cases[i].want) {
            char hex[64] = "";
            for (size_t k = 0; k < utf8_cases[i].len && k < 20; k++)
                snprintf(hex + strlen(hex), sizeof hex - strlen(hex), "%02x ",
                         (unsigned char)utf8_cases[i].s[k]);
            CASE_FAIL("case %zu [%s]: got %d, want %d\n", i, hex, got, utf8_cases[i].want);
        }
    }
    if (bad)
        fail_msg("%d of %zu UTF-8 cases wrong", bad, n);
}

/* The length is respected: a valid prefix of an invalid buffer is valid. */
static void test_utf8_uses_len(void **state)
{
    (void)state;
    const char s[] = "ab\xe2\x82\xac\xff";
    assert_int_equal(wl_utf8_valid(s, 5), 1);
    assert_int_equal(wl_utf8_valid(s, 6), 0);
    assert_int_equal(wl_utf8_valid(s, 4), 0); /* cuts the euro sign */
    assert_int_equal(wl_utf8_valid(s, 0), 1);
}

/* ---- counts and names ---- */

static void test_count_list(void **state)
{
    (void)state;
    static const char *const expect[WL_N_COUNTS] = {
        "registered_users", "active_users_daily", "active_users_monthly", "bot_accounts",
        "guest_accounts", "teams", "public_channels", "private_channels",
        "direct_message_channels", "posts_previous_day", "incoming_webhooks",
        "outgoing_webhooks", "slash_commands", "system_admins", "posts",
    };
    assert_int_equal(WL_N_COUNTS, 15);
    for (int i = 0; i < WL_N_COUNTS; i++)
        assert_string_equal(wl_count_names[i], expect[i]);

    wl_ping p = WARMLINE__V1__PING__INIT;
    uint64_t out[WL_N_COUNTS];
    uint64_t v = 1;
#define SET_DISTINCT(name) p.name = (uint32_t)(v++ * 1000 + 7);
    WL_COUNT_FIELDS(SET_DISTINCT)
#undef SET_DISTINCT
    p.posts = (uint64_t)1 << 40;
    wl_ping_counts(&p, out);
    for (int i = 0; i < WL_N_COUNTS - 1; i++)
        assert_int_equal(out[i], (uint64_t)(i + 1) * 1000 + 7);
    assert_int_equal(out[WL_COUNT_posts], (uint64_t)1 << 40);
    assert_int_equal(out[WL_COUNT_registered_users], p.registered_users);
    assert_int_equal(out[WL_COUNT_system_admins], p.system_admins);
}

static void test_reason_names(void **state)
{
    (void)state;
    for (int r = 0; r < WL_N_REASONS; r++) {
        const char *name = wl_reason_name((enum wl_reason)r);
        assert_non_null(name);
        if (name[0] == '\0')
            fail_msg("reason %d has an empty name", r);
        if (strcmp(name, "none") == 0)
            fail_msg("reason %d is named none", r);
        for (const char *c = name; *c; c++) {
            if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
                fail_msg("reason %d name '%s' is not lower_snake_case", r, name);
        }
        for (int q = 0; q < r; q++) {
            if (strcmp(name, wl_reason_name((enum wl_reason)q)) == 0)
                fail_msg("reasons %d and %d are both named %s", q, r, name);
        }
    }
    assert_string_equal(wl_reason_name(WL_REJECT_NONE), "none");
    assert_string_equal(wl_reason_name(WL_N_REASONS), "none");
    assert_string_equal(wl_reason_name(WL_REJECT_ENVELOPE_DECODE), "envelope_decode");
    assert_string_equal(wl_reason_name(WL_REJECT_INFLATE_TOO_LARGE), "inflate_too_large");
    assert_string_equal(wl_reason_name(WL_REJECT_SEQ_ZERO), "seq_zero");
    assert_string_equal(wl_reason_name(WL_REJECT_COUNT_TOO_LARGE), "count_too_large");
    assert_string_equal(wl_reason_name(WL_REJECT_INSTALL_ID_NOT_PRINTABLE),
                        "install_id_not_printable");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_table),
        cmocka_unit_test(test_validate_each_string_field),
        cmocka_unit_test(test_validate_each_count_field),
        cmocka_unit_test(test_utf8_table),
        cmocka_unit_test(test_utf8_uses_len),
        cmocka_unit_test(test_count_list),
        cmocka_unit_test(test_reason_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
