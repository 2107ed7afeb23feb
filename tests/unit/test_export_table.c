/* Unit tests for the pings row source's direct reader (tools/export_table.c):
 * every stored ping gives the same row, byte for byte, read directly from
 * its bytes as unpacked by protobuf-c, in NDJSON and CSV; records the direct
 * reader does not take (unknown fields, a ping twice, fixed-width or
 * malformed fields) go to protobuf-c, and what protobuf-c refuses is refused.
 * Cases: crafted records (wire pings and edge pings: source and presence,
 * export schema 2), then random pings and random damage to them; the
 * source and presence columns against wl_source_name and wl_presence_json. The
 * tools/ sources are not in wl_core, so they are compiled into this test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/export_fmt.c"
#include "tools/export_table.c"

/* A pings row source with no store: enough for ping_record. */
static struct wl_export_src *pings_src(int direct)
{
    struct wl_export_src *s = calloc(1, sizeof *s);
    char err[256];
    assert_non_null(s);
    s->t = wl_export_table_find("pings");
    assert_int_equal(ping_columns(s, err, sizeof err), 0);
    assert_true(s->direct); /* schema 1's Ping is all types the reader takes */
    s->direct = direct;
    s->alloc.alloc = arena_alloc;
    s->alloc.free = arena_free;
    s->alloc.allocator_data = &s->arena;
    arena_reset(&s->arena);
    return s;
}

static void src_free(struct wl_export_src *s)
{
    arena_destroy(&s->arena);
    free(s->view.features);
    free(s);
}

struct both {
    struct wl_export_src *direct, *unpack;
    struct wl_rows rd, ru;
};

static void both_init(struct both *b, enum wl_export_format fmt)
{
    const struct wl_export_table *t = wl_export_table_find("pings");
    b->direct = pings_src(1);
    b->unpack = pings_src(0);
    assert_int_equal(wl_rows_init(&b->rd, fmt, t->cols, t->ncols), 0);
    assert_int_equal(wl_rows_init(&b->ru, fmt, t->cols, t->ncols), 0);
}

static void both_free(struct both *b)
{
    src_free(b->direct);
    src_free(b->unpack);
    wl_rows_free(&b->rd);
    wl_rows_free(&b->ru);
}

/* The record through both paths: the same outcome and the same row.
 * Returns ping_record's result. */
static int same_row(struct both *b, const uint8_t *val, size_t len, const char *what)
{
    wl_rows_take(&b->rd);
    wl_rows_take(&b->ru);
    int rd = ping_record(b->direct, val, len, &b->rd);
    int ru = ping_record(b->unpack, val, len, &b->ru);
    if (rd != ru) {
        print_error("%s: direct %d, protobuf-c %d\n", what, rd, ru);
        fail();
    }
    if (rd == 0) {
        assert_int_equal(wl_rows_end(&b->rd), 0);
        assert_int_equal(wl_rows_end(&b->ru), 0);
        if (b->rd.buf.len != b->ru.buf.len || memcmp(b->rd.buf.p, b->ru.buf.p, b->rd.buf.len)) {
            print_error("%s:\n direct   %.*s\n protobuf %.*s\n", what, (int)b->rd.buf.len,
                        b->rd.buf.p, (int)b->ru.buf.len, b->ru.buf.p);
            fail();
        }
    }
    return rd;
}

static size_t pack_edge(const wl_ping *p, const uint8_t *org, size_t org_len, uint64_t seq,
                        uint32_t source, uint64_t presence, uint8_t *out)
{
    stored_ping sp = WARMLINE__STORE__V1__STORED_PING__INIT;
    sp.source = source;
    sp.presence = presence;
    sp.ingest_seq = seq;
    sp.received_at = 1795763427127;
    sp.event_at = -5;
    sp.org.data = (uint8_t *)org;
    sp.org.len = org_len;
    sp.ping = (wl_ping *)p;
    return warmline__store__v1__stored_ping__pack(&sp, out);
}

static size_t pack(const wl_ping *p, const uint8_t *org, size_t org_len, uint64_t seq,
                   uint8_t *out)
{
    return pack_edge(p, org, org_len, seq, WL_SOURCE_WIRE, 0, out);
}

/* A security check's fields: what collector/http_ingest gives one. */
#define CHECK_PRESENCE                                                                     \
    (WL_PRESENT(WL_FIELD_STRING(WL_STRING_version)) |                                      \
     WL_PRESENT(WL_FIELD_STRING(WL_STRING_database_type)) |                                \
     WL_PRESENT(WL_FIELD_STRING(WL_STRING_operating_system)) |                             \
     WL_PRESENT(WL_FIELD_COUNT(WL_COUNT_active_users_daily)) |                             \
     WL_PRESENT(WL_FIELD_COUNT(WL_COUNT_registered_users)) | WL_PRESENT(WL_FIELD_ORG_KEY) |  \
     WL_PRESENT(WL_ORG_BY_NETWORK))
/* A Rudder config event: features of their own, the edition, and bits no
 * name answers to (0, 30, 63: skipped, as wl_presence_json skips them). */
#define RUDDER_PRESENCE                                                                    \
    (WL_PRESENT(WL_FEATURE_BIT(WL_EF_saml_configured)) |                                   \
     WL_PRESENT(WL_FEATURE_BIT(WL_EF_licensed)) |                                          \
     WL_PRESENT(WL_FIELD_STRING(WL_STRING_edition)) | WL_PRESENT(0) | WL_PRESENT(30) |      \
     WL_PRESENT(63))

static const uint8_t org32[32] = {0x44, 0x55, 0x91, 0xcb, 0x9d, 0x60, 0xbb, 0x26, 0xd2, 0x00,
                                  0x93, 0xb8, 0x95, 0x93, 0x13, 0xb3, 0xf7, 0x52, 0x4a, 0x1c,
                                  0x37, 0x4d, 0x03, 0x95, 0x4f, 0xea, 0x45, 0x64, 0x69, 0x3c,
                                  0x48, 0xb0};

static void full_ping(wl_ping *p, char **features)
{
    warmline__v1__ping__init(p);
    p->install_id = "inst-002004";
    p->org_key.data = (uint8_t *)org32;
    p->org_key.len = sizeof org32;
    p->seq = 1795763425195000;
    p->sent_at = 1795763425195;
    p->version = "10.4.3";
    p->edition = "team";
    p->database_type = "postgres";
    p->operating_system = "linux";
    p->installation_type = "docker";
    p->registered_users = 79;
    p->active_users_daily = 40;
    p->teams = UINT32_MAX;
    p->posts = UINT64_MAX;
    p->n_features = 3;
    p->features = features;
    features[0] = "oauth_gitlab";
    features[1] = "quote \" and \\ and \xc3\xa9";
    features[2] = "";
}

static void test_crafted_records(void **state)
{
    (void)state;
    uint8_t buf[4096], more[4096];
    char *features[3];
    wl_ping p;
    struct both b;

    for (int fmt = 0; fmt < 2; fmt++) {
        both_init(&b, fmt == 0 ? WL_EXPORT_NDJSON : WL_EXPORT_CSV);
        full_ping(&p, features);
        size_t n = pack(&p, org32, sizeof org32, 1, buf);
        assert_int_equal(same_row(&b, buf, n, "full ping"), 0);
        /* The direct reader took it (no protobuf-c allocation). */
        assert_int_equal(read_stored_ping(b.direct->wire_of, buf, n, &b.direct->view), 0);

        /* install:<id> organization, negative and empty values. */
        p.sent_at = -1;
        p.org_key.len = 0;
        p.version = "";
        n = pack(&p, (const uint8_t *)"\x00inst-1", 7, 2, buf);
        assert_int_equal(same_row(&b, buf, n, "install org"), 0);

        /* Strings with a NUL, control bytes, invalid UTF-8. */
        p.install_id = "a\nb\"c\x01\xff";
        p.edition = "bad \xc3 utf8";
        n = pack(&p, org32, sizeof org32, 3, buf);
        assert_int_equal(same_row(&b, buf, n, "odd strings"), 0);

        /* No ping at all; an empty record. */
        n = pack(NULL, org32, sizeof org32, 4, buf);
        assert_int_equal(same_row(&b, buf, n, "no ping"), 0);
        assert_int_equal(same_row(&b, buf, 0, "empty record"), 0);

        /* A string with a NUL inside (not through pack: protobuf-c packs C
         * strings): version = "1.0\0tail". */
        static const uint8_t nul[] = {0x08, 0x05, 0x22, 0x0a, 0x2a, 0x08, '1', '.', '0', 0,
                                      't', 'a', 'i', 'l'};
        assert_int_equal(same_row(&b, nul, sizeof nul, "NUL in a string"), 0);

        /* A uint32 count sent as a 10-byte varint (protobuf-c keeps the low
         * 32 bits), and non-minimal varints. */
        static const uint8_t wide[] = {0x22, 0x0e, 0x50, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0x01, 0x18, 0x85, 0x00};
        assert_int_equal(same_row(&b, wide, sizeof wide, "wide varints"), 0);

        /* A ping twice: protobuf-c merges the two. */
        full_ping(&p, features);
        n = pack(&p, org32, sizeof org32, 5, buf);
        static const uint8_t second[] = {0x22, 0x04, 0x18, 0x07, 0x2a, 0x00};
        memcpy(more, buf, n);
        memcpy(more + n, second, sizeof second);
        assert_int_equal(same_row(&b, more, n + sizeof second, "ping twice"), 0);

        /* Edge pings: a security check, a Rudder event, a source past the
         * known ones, a wire ping that says its source (0) and presence; all
         * read directly. */
        static const struct {
            uint32_t source;
            uint64_t presence;
        } edges[] = {
            {WL_SOURCE_SECURITY, CHECK_PRESENCE}, {WL_SOURCE_RUDDER, RUDDER_PRESENCE},
            {WL_SOURCE_RUDDER, 0}, {WL_SOURCE_SECURITY, UINT64_MAX}, {9, CHECK_PRESENCE},
            {UINT32_MAX, 1}, {WL_SOURCE_WIRE, CHECK_PRESENCE},
        };
        for (size_t i = 0; i < N(edges); i++) {
            char what[64];
            n = pack_edge(i % 2 ? NULL : &p, org32, sizeof org32, 10 + i, edges[i].source,
                          edges[i].presence, buf);
            snprintf(what, sizeof what, "edge ping %zu", i);
            assert_int_equal(same_row(&b, buf, n, what), 0);
            assert_int_equal(read_stored_ping(b.direct->wire_of, buf, n, &b.direct->view), 0);
            assert_int_equal(b.direct->view.source, edges[i].source);
            assert_int_equal(b.direct->view.presence, edges[i].presence);
        }
        /* source as a 10-byte varint: protobuf-c keeps its low 32 bits (2). */
        static const uint8_t wide_source[] = {0x30, 0x82, 0x80, 0x80, 0x80, 0xf0, 0xff, 0xff,
                                              0xff, 0xff, 0x01, 0x38, 0x84, 0x01};
        assert_int_equal(same_row(&b, wide_source, sizeof wide_source, "wide source"), 0);
        assert_non_null(strstr(b.rd.buf.p, fmt == 0 ? "\"source\":\"rudder\"" : ",rudder,"));
        /* source or presence with a length: protobuf-c refuses it. */
        static const uint8_t len_source[] = {0x32, 0x01, 0x01};
        assert_int_equal(same_row(&b, len_source, sizeof len_source, "source as bytes"),
                         -EINVAL);

        /* Unknown fields (a later version's): skipped by protobuf-c. */
        static const uint8_t unknown[] = {0x70, 0x07, 0x7a, 0x01, 'x', 0x22, 0x05, 0xd0,
                                          0x01, 0x05, 0x18, 0x09, 0x49, 1, 2, 3, 4, 5, 6, 7, 8};
        assert_int_equal(same_row(&b, unknown, sizeof unknown, "unknown fields"), 0);

        /* Broken: truncated, a length past the end, a wrong wire type, a
         * field number 0, an 11-byte varint. */
        n = pack(&p, org32, sizeof org32, 6, buf);
        assert_int_equal(same_row(&b, buf, n - 3, "truncated"), -EINVAL);
        static const uint8_t past[] = {0x1a, 0x40, 'a'};
        assert_int_equal(same_row(&b, past, sizeof past, "length past the end"), -EINVAL);
        static const uint8_t wt[] = {0x22, 0x02, 0x08, 0x05};
        same_row(&b, wt, sizeof wt, "wire type");
        static const uint8_t zero[] = {0x00, 0x01};
        assert_int_equal(same_row(&b, zero, sizeof zero, "field 0"), -EINVAL);
        static const uint8_t long_varint[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                              0xff, 0xff, 0xff, 0xff, 0x01};
        assert_int_equal(same_row(&b, long_varint, sizeof long_varint, "11-byte varint"),
                         -EINVAL);
        both_free(&b);
    }
}

/* ---- random pings and random damage ---- */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static char *rand_str(char *buf, size_t cap)
{
    static const char alphabet[] = "abcXYZ019_-. \"\\/\n\t\x01\x7f\xc3\xa9\xe2\x82\xac\xff";
    size_t n = next_rand() % cap;
    for (size_t i = 0; i < n; i++)
        buf[i] = alphabet[next_rand() % (sizeof alphabet - 1)];
    buf[n] = '\0';
    return buf;
}

static void test_random_records(void **state)
{
    (void)state;
    enum { ROUNDS = 3000 };
    static char strs[8][40], feats[80][12];
    char *features[80];
    uint8_t buf[8192], org[40];
    struct both b;
    int refused = 0, damaged = 0;

    for (int fmt = 0; fmt < 2; fmt++) {
        both_init(&b, fmt == 0 ? WL_EXPORT_NDJSON : WL_EXPORT_CSV);
        for (int round = 0; round < ROUNDS; round++) {
            wl_ping p;
            warmline__v1__ping__init(&p);
            p.install_id = rand_str(strs[0], sizeof strs[0]);
            p.version = rand_str(strs[1], sizeof strs[1]);
            p.edition = rand_str(strs[2], sizeof strs[2]);
            p.database_type = rand_str(strs[3], sizeof strs[3]);
            p.operating_system = rand_str(strs[4], sizeof strs[4]);
            p.installation_type = rand_str(strs[5], sizeof strs[5]);
            p.org_key.len = next_rand() % 3 == 0 ? 0 : 32;
            p.org_key.data = (uint8_t *)org32;
            p.seq = next_rand();
            p.sent_at = (int64_t)next_rand();
            p.registered_users = (uint32_t)next_rand();
            p.slash_commands = (uint32_t)(next_rand() % 100);
            p.posts = next_rand() >> (next_rand() % 64);
            p.n_features = next_rand() % 4 == 0 ? next_rand() % 80 : next_rand() % 4;
            for (size_t i = 0; i < p.n_features; i++)
                features[i] = rand_str(feats[i], sizeof feats[i]);
            p.features = features;
            size_t org_len = next_rand() % 3 == 0 ? 1 + next_rand() % 20 : 32;
            for (size_t i = 0; i < org_len; i++)
                org[i] = (uint8_t)next_rand();
            uint32_t source = (uint32_t)(next_rand() % 4);
            uint64_t presence = source ? next_rand() & next_rand() : 0;
            size_t n = pack_edge(next_rand() % 50 == 0 ? NULL : &p, org, org_len, next_rand(),
                                 source, presence, buf);
            char what[64];
            snprintf(what, sizeof what, "random record %d", round);
            assert_int_equal(same_row(&b, buf, n, what), 0);
            /* What protobuf-c packs, the direct reader reads itself. */
            assert_int_equal(read_stored_ping(b.direct->wire_of, buf, n, &b.direct->view), 0);
            /* Damage: flip, cut or insert bytes; both paths agree. */
            int kind = (int)(next_rand() % 3);
            size_t at = next_rand() % n;
            if (kind == 0) {
                buf[at] ^= (uint8_t)(1u << (next_rand() % 8));
            } else if (kind == 1) {
                n = at;
            } else if (n + 1 < sizeof buf) {
                memmove(buf + at + 1, buf + at, n - at);
                buf[at] = (uint8_t)next_rand();
                n++;
            }
            snprintf(what, sizeof what, "damaged record %d (kind %d at %zu)", round, kind, at);
            damaged++;
            if (same_row(&b, buf, n, what) != 0)
                refused++;
        }
        both_free(&b);
    }
    /* The damage was real: some records no longer decode, some still do. */
    assert_true(refused > 0 && refused < damaged);
}

/* ---- the source and presence columns ---- */

/* The row of one record, as a C string (valid until the next call). */
static const char *row_of(struct wl_export_src *s, struct wl_rows *r, uint32_t source,
                          uint64_t presence)
{
    uint8_t buf[512];
    wl_ping p;
    warmline__v1__ping__init(&p);
    p.install_id = "inst-1";
    size_t n = pack_edge(&p, org32, sizeof org32, 7, source, presence, buf);
    wl_rows_take(r);
    assert_int_equal(ping_record(s, buf, n, r), 0);
    assert_int_equal(wl_rows_end(r), 0);
    static char out[8192];
    assert_true(r->buf.len < sizeof out);
    memcpy(out, r->buf.p, r->buf.len);
    out[r->buf.len] = '\0';
    return out;
}

static void test_source_presence_columns(void **state)
{
    (void)state;
    const struct wl_export_table *t = wl_export_table_find("pings");
    struct wl_rows nd, csv;
    json_error_t jerr;

    assert_int_equal(wl_rows_init(&nd, WL_EXPORT_NDJSON, t->cols, t->ncols), 0);
    assert_int_equal(wl_rows_init(&csv, WL_EXPORT_CSV, t->cols, t->ncols), 0);
    /* Schema 2: source and presence right after org. */
    assert_int_equal(WL_EXPORT_SCHEMA, 2);
    assert_string_equal(t->cols[3], "org");
    assert_string_equal(t->cols[4], "source");
    assert_string_equal(t->cols[5], "presence");
    assert_string_equal(t->cols[6], "install_id");

    for (int direct = 0; direct < 2; direct++) {
        struct wl_export_src *s = pings_src(direct);
        /* A wire ping: source "wire", presence null (NDJSON) or empty (CSV),
         * whatever presence bits the record holds. */
        for (int k = 0; k < 2; k++) {
            uint64_t pr = k ? CHECK_PRESENCE : 0;
            json_t *o = json_loads(row_of(s, &nd, WL_SOURCE_WIRE, pr), 0, &jerr);
            assert_non_null(o);
            assert_string_equal(json_string_value(json_object_get(o, "source")), "wire");
            assert_true(json_is_null(json_object_get(o, "presence")));
            json_decref(o);
            assert_non_null(strstr(row_of(s, &csv, WL_SOURCE_WIRE, pr),
                                   ",wire,,inst-1,"));
        }
        /* The security check and the Rudder event: their names. */
        const char *check = row_of(s, &nd, WL_SOURCE_SECURITY, CHECK_PRESENCE);
        assert_non_null(strstr(check, "\"source\":\"security\",\"presence\":[\"org_by_network\","
                                      "\"org_key\",\"version\",\"database_type\","
                                      "\"operating_system\",\"registered_users\","
                                      "\"active_users_daily\"],\"install_id\""));
        const char *rudder = row_of(s, &nd, WL_SOURCE_RUDDER, RUDDER_PRESENCE);
        assert_non_null(strstr(rudder, "\"source\":\"rudder\",\"presence\":[\"edition\","
                                       "\"feature:saml_configured\",\"feature:licensed\"],"));
        /* CSV: presence is its JSON text, quoted (it holds commas). */
        assert_non_null(strstr(row_of(s, &csv, WL_SOURCE_RUDDER, RUDDER_PRESENCE),
                               ",rudder,\"[\"\"edition\"\",\"\"feature:saml_configured\"\","
                               "\"\"feature:licensed\"\"]\",inst-1,"));
        assert_non_null(strstr(row_of(s, &csv, WL_SOURCE_SECURITY, 0), ",security,[],inst-1,"));
        assert_non_null(strstr(row_of(s, &nd, 3, 0), "\"source\":\"unknown\",\"presence\":[]"));

        /* Every single bit and random masks: exactly wl_presence_json. */
        for (int round = 0; round < 64 + 2000; round++) {
            uint64_t pr = round < 64 ? WL_PRESENT(round) : next_rand() & next_rand();
            json_t *o = json_loads(row_of(s, &nd, WL_SOURCE_RUDDER, pr), 0, &jerr);
            json_t *want = wl_presence_json(pr);
            assert_non_null(o);
            assert_non_null(want);
            if (!json_equal(json_object_get(o, "presence"), want)) {
                print_error("presence %#llx: %.*s\n", (unsigned long long)pr, (int)nd.buf.len,
                            nd.buf.p);
                fail();
            }
            json_decref(want);
            json_decref(o);
        }
        src_free(s);
    }
    wl_rows_free(&nd);
    wl_rows_free(&csv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crafted_records),
        cmocka_unit_test(test_source_presence_columns),
        cmocka_unit_test(test_random_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
