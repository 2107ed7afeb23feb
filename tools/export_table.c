#include "export_table.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collector/aggregate.h"
#include "collector/ping_json.h"
#include "collector/rules.h"
#include "collector/signal_json.h"
#include "records.pb-c.h"
#include "storage/keys.h"

typedef Warmline__Store__V1__StoredPing stored_ping;
typedef Warmline__Store__V1__OrgState org_state;
typedef Warmline__Store__V1__DailyState daily_state;

/* ---- columns, export schema 2 ------------------------------------------------ */

#define COUNT_COLUMNS                                                                      \
    "registered_users", "active_users_daily", "active_users_monthly", "bot_accounts",     \
        "guest_accounts", "teams", "public_channels", "private_channels",                  \
        "direct_message_channels", "posts_previous_day", "incoming_webhooks",              \
        "outgoing_webhooks", "slash_commands", "system_admins", "posts"
#define N_COUNT_COLUMNS 15

/* The first PING_STORED columns come from StoredPing, the rest are the
 * ping's own fields, read through collector/ping_json.h's field table.
 * Schema 2 added source and presence (an edge ping's fields: the others
 * print as 0 or "" but were not sent). */
#define PING_STORED 6
static const char *const ping_cols[] = {
    "ingest_seq", "received_at", "event_at", "org", "source", "presence",
    "install_id", "org_key", "seq", "sent_at",
    "version", "edition", "database_type", "operating_system", "installation_type",
    COUNT_COLUMNS,
    "features",
};

/* The shape of collector/signal_json.h, shared with the signal file, the
 * webhook, `warmline dump signals` and the API. */
static const char *const signal_cols[] = {
    "id", "org", "rule", "description", "weight", "fired_at", "fired_at_iso",
    "terms", "install_ids", "ingest_seq",
};

static const char *const daily_cols[] = {
    "org", "day", "date", "installs", "installs_total", COUNT_COLUMNS,
};

static const char *const account_cols[] = {
    "snapshot_seq", "as_of", "org", "install_ids", "installs_total", "installs_counting",
    "first_seen", "last_seen", COUNT_COLUMNS,
    "versions", "editions", "features", "signals", "score", "score_log2", "day", "updated_at",
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Counts are only ever appended to ping.h: schema 1 has the first 15. */
_Static_assert(N_COUNT_COLUMNS <= WL_N_COUNTS, "a count was removed from ping.h");

const struct wl_export_table wl_export_tables[] = {
    {WL_EXPORT_PINGS, "pings", "ingest_seq", 1, 1, ping_cols, N(ping_cols)},
    {WL_EXPORT_SIGNALS, "signals", "signal_id", 1, 1, signal_cols, N(signal_cols)},
    {WL_EXPORT_DAILY, "daily", "utc_day", 0, 0, daily_cols, N(daily_cols)},
    {WL_EXPORT_ACCOUNTS, "accounts", "ingest_seq", 1, 0, account_cols, N(account_cols)},
};
const size_t wl_export_n_tables = N(wl_export_tables);

const struct wl_export_table *wl_export_table_find(const char *name)
{
    for (size_t i = 0; i < wl_export_n_tables; i++) {
        if (strcmp(wl_export_tables[i].name, name) == 0)
            return &wl_export_tables[i];
    }
    return NULL;
}

/* ---- bounds ------------------------------------------------------------------ */

/* max(meta name, the last key of cf) as a big-endian u64. */
static int meta_or_last(const struct wl_export_ctx *ctx, const char *name, enum wl_cf cf,
                        uint64_t *out, char *err, size_t errlen)
{
    char *val = NULL;
    size_t vlen = 0;
    uint64_t v = 0, last = 0;
    int rc = wl_store_get_at(ctx->store, ctx->snap, WL_CF_META, name, strlen(name), &val, &vlen,
                             err, errlen);
    if (rc != 0 && rc != -ENOENT)
        return rc;
    if (rc == 0 && vlen == 8)
        v = wl_be64_get(val);
    free(val);
    rc = wl_store_last_seq(ctx->store, ctx->snap, cf, &last, err, errlen);
    *out = last > v ? last : v;
    return rc;
}

int wl_export_ingest_seq(const struct wl_export_ctx *ctx, uint64_t *out, char *err,
                         size_t errlen)
{
    return meta_or_last(ctx, "ingest_seq", WL_CF_PINGS, out, err, errlen);
}

int wl_export_upper(const struct wl_export_table *t, const struct wl_export_ctx *ctx,
                    uint64_t *out, char *err, size_t errlen)
{
    switch (t->id) {
    case WL_EXPORT_PINGS:
        return wl_export_ingest_seq(ctx, out, err, errlen);
    case WL_EXPORT_ACCOUNTS:
        *out = ctx->cp.seq; /* what the organizations' records hold */
        return 0;
    case WL_EXPORT_SIGNALS:
        return meta_or_last(ctx, "signal_seq", WL_CF_SIGNALS, out, err, errlen);
    case WL_EXPORT_DAILY: {
        /* A day is whole in the records once it ended, with the grace, both
         * before the export's clock and before the first ping stored after
         * the checkpoint (the pings after it are in the collector's memory
         * only; the next checkpoint writes their days). */
        int64_t until = ctx->as_of;
        int held = ctx->cp.first_after_at > 0 && ctx->cp.first_after_at < until;
        if (held)
            until = ctx->cp.first_after_at;
        int64_t end = until - WL_EXPORT_DAY_GRACE_MS;
        int64_t complete = end < 0 ? 0 : end / 86400000LL; /* days that ended */
        if (complete == 0) {
            snprintf(err, errlen, "no UTC day is complete yet%s",
                     held ? " in the state records (the next checkpoint writes the rest)" : "");
            return -ENOENT;
        }
        *out = (uint64_t)(complete - 1);
        return 0;
    }
    }
    return -EINVAL;
}

/* ---- a bump allocator for protobuf-c: one row's allocations, freed at once --- */

struct arena {
    char *p;
    size_t used, cap;
    struct arena_big { struct arena_big *next; } *big; /* allocations that did not fit */
};

static void *arena_alloc(void *data, size_t size)
{
    struct arena *a = data;
    size = (size + 15) & ~(size_t)15;
    if (a->cap - a->used >= size) {
        void *p = a->p + a->used;
        a->used += size;
        return p;
    }
    /* Does not fit: a separate block, freed by arena_reset (the next row
     * gets a bigger arena). */
    struct arena_big *b = malloc(sizeof(struct arena_big) + 16 + size);
    if (b == NULL)
        return NULL;
    b->next = a->big;
    a->big = b;
    return (char *)b + 16;
}

static void arena_free(void *data, void *p)
{
    (void)data;
    (void)p; /* everything goes at arena_reset */
}

static void arena_reset(struct arena *a)
{
    size_t grow = 0;
    while (a->big != NULL) {
        struct arena_big *next = a->big->next;
        free(a->big);
        a->big = next;
        grow = 1;
    }
    if (grow || a->p == NULL) {
        size_t cap = a->cap ? 2 * a->cap : 16384;
        char *p = malloc(cap);
        if (p != NULL) {
            free(a->p);
            a->p = p;
            a->cap = cap;
        }
    }
    a->used = 0;
}

static void arena_destroy(struct arena *a)
{
    a->used = a->cap; /* nothing fits: reset only frees */
    while (a->big != NULL) {
        struct arena_big *next = a->big->next;
        free(a->big);
        a->big = next;
    }
    free(a->p);
    memset(a, 0, sizeof *a);
}

_Static_assert(sizeof(struct arena_big) <= 16, "arena block header");

/* ---- pings: a view of one stored ping, and a direct reader of its bytes ------ */

/* Ping fields are read into arrays indexed by their proto field number. */
#define PING_MAX_FIELD 31

/* A StoredPing as the pings row needs it: numbers, and strings and bytes as
 * (pointer, length) into the record or the unpacked message. A string column
 * ends at the string's first NUL, as the unpacked message's C string does. */
struct ping_view {
    uint64_t ingest_seq;
    int64_t received_at, event_at;
    struct wl_str org;
    uint32_t source;        /* enum wl_source (the varint's low bits, as protobuf-c) */
    uint64_t presence;      /* WL_PRESENT bits (an edge ping's) */
    uint32_t seen;          /* bit n: field n was read (else it is 0 or "") */
    uint64_t num[PING_MAX_FIELD + 1];
    struct wl_str str[PING_MAX_FIELD + 1];
    struct wl_str *features;
    size_t n_features, cap_features;
};

/* One pings column past the stored ones: the ping field it shows. */
struct ping_col {
    const struct wl_ping_field *f;
    enum wl_ping_field_kind kind; /* f->kind, at hand */
    unsigned number;              /* its proto field number */
};

/* How the direct reader takes each Ping field number: 0 unknown (the record
 * goes to protobuf-c), else the wire type it must have. */
enum { WIRE_NONE = 0, WIRE_VARINT = 1, WIRE_LEN = 2, WIRE_REPEATED = 3 };

static int view_feature(struct ping_view *v, const char *p, size_t len)
{
    if (v->n_features == v->cap_features) {
        size_t cap = v->cap_features ? 2 * v->cap_features : 64;
        struct wl_str *f = realloc(v->features, cap * sizeof *f);
        if (f == NULL)
            return -ENOMEM;
        v->features = f;
        v->cap_features = cap;
    }
    v->features[v->n_features].p = p;
    v->features[v->n_features].len = len; /* cut at a NUL by wl_rows_strs */
    v->n_features++;
    return 0;
}

/* A varint of at most 10 bytes: 0, or -1 (truncated or too long). */
static inline int pb_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    if (p < end && *p < 0x80) { /* most tags and counts: one byte */
        *out = *p;
        *pp = p + 1;
        return 0;
    }
    for (unsigned shift = 0; shift < 70 && p < end; shift += 7) {
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            *pp = p;
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* The next field: its number and wire type, and for a varint its value, for
 * a length-delimited field its bytes. 1, 0 at the end, -1 for anything the
 * direct reader leaves to protobuf-c (fixed-width fields, groups, bad
 * encodings: protobuf-c then decides, and refuses what is broken). */
static inline int pb_field(const uint8_t **pp, const uint8_t *end, unsigned *number,
                           unsigned *wire, uint64_t *num, struct wl_str *str)
{
    uint64_t tag, len;
    if (*pp == end)
        return 0;
    if (pb_varint(pp, end, &tag) != 0 || tag >> 3 == 0 || tag >> 3 > PING_MAX_FIELD)
        return -1;
    *number = (unsigned)(tag >> 3);
    *wire = (unsigned)(tag & 7);
    if (*wire == 0)
        return pb_varint(pp, end, num) == 0 ? 1 : -1;
    if (*wire != 2 || pb_varint(pp, end, &len) != 0 || len > (uint64_t)(end - *pp))
        return -1;
    str->p = (const char *)*pp;
    str->len = (size_t)len;
    *pp += len;
    return 1;
}

/* Reads a Ping's bytes into v. 0, or -1: leave the record to protobuf-c. */
static int read_ping(const uint8_t *wire_of, const uint8_t *p, const uint8_t *end,
                     struct ping_view *v)
{
    unsigned number, wire;
    uint64_t num = 0;
    struct wl_str str = {NULL, 0};
    int rc;
    while ((rc = pb_field(&p, end, &number, &wire, &num, &str)) == 1) {
        switch (wire_of[number]) {
        case WIRE_VARINT:
            if (wire != 0)
                return -1;
            v->num[number] = num;
            v->seen |= 1u << number;
            break;
        case WIRE_LEN:
            if (wire != 2)
                return -1;
            v->str[number] = str;
            v->seen |= 1u << number;
            break;
        case WIRE_REPEATED:
            if (wire != 2 || view_feature(v, str.p, str.len) != 0)
                return -1;
            break;
        default:
            return -1;
        }
    }
    return rc;
}

/* Reads a StoredPing's bytes into v, without allocating per record. 0, or
 * -1: leave the record to protobuf-c (what this reader does not take, or a
 * record that does not decode). */
static int read_stored_ping(const uint8_t *wire_of, const uint8_t *p, size_t len,
                            struct ping_view *v)
{
    const uint8_t *end = p + len, *ping = NULL, *ping_end = NULL;
    unsigned number, wire;
    uint64_t num = 0;
    struct wl_str str = {NULL, 0};
    int rc;

    v->ingest_seq = 0;
    v->received_at = v->event_at = 0;
    v->source = 0;
    v->presence = 0;
    v->org.p = "";
    v->org.len = 0;
    while ((rc = pb_field(&p, end, &number, &wire, &num, &str)) == 1) {
        if (wire == 0 && number == 1)
            v->ingest_seq = num;
        else if (wire == 0 && number == 2)
            v->received_at = (int64_t)num;
        else if (wire == 0 && number == 5)
            v->event_at = (int64_t)num;
        else if (wire == 0 && number == 6)
            v->source = (uint32_t)num;
        else if (wire == 0 && number == 7)
            v->presence = num;
        else if (wire == 2 && number == 3)
            v->org = str;
        else if (wire == 2 && number == 4 && ping == NULL) /* twice: merged, by protobuf-c */
            ping = (const uint8_t *)str.p, ping_end = ping + str.len;
        else
            return -1;
    }
    if (rc != 0)
        return -1;
    v->seen = 0;
    v->n_features = 0;
    return ping != NULL ? read_ping(wire_of, ping, ping_end, v) : 0;
}

/* The longest presence name, its NUL included ("feature:" and a feature). */
#define PRESENCE_NAME_MAX 64

/* Bytes a row source's scan reads from a file at a time. */
#define SCAN_READAHEAD (2u << 20)

/* ---- row sources ------------------------------------------------------------- */

struct wl_export_src {
    const struct wl_export_table *t;
    const struct wl_export_ctx *ctx;
    enum wl_cf cf;
    struct wl_iter *it;
    uint64_t first, last;
    int started, done;
    struct arena arena;
    ProtobufCAllocator alloc;
    struct ping_col ping_cols[N(ping_cols) - PING_STORED];
    int direct;                          /* the direct reader is on */
    uint8_t wire_of[PING_MAX_FIELD + 1]; /* its map of Ping field numbers */
    struct ping_view view;
    /* The presence column: bit n's name as wl_presence_json gives it (len 0:
     * a bit it does not name), taken from it once per source. */
    struct wl_str presence_names[64];
    char presence_text[64][PRESENCE_NAME_MAX];
};

/* Names each presence bit through wl_presence_json, so that the column is
 * what `warmline dump pings` shows without a JSON tree per row. 0 or
 * -ENOMEM/-EPROTO. */
static int presence_names(struct wl_export_src *s, char *err, size_t errlen)
{
    for (unsigned bit = 0; bit < 64; bit++) {
        json_t *a = wl_presence_json(WL_PRESENT(bit));
        size_t n = a != NULL ? json_array_size(a) : 0;
        const char *name = n == 1 ? json_string_value(json_array_get(a, 0)) : NULL;
        size_t len = name != NULL ? strlen(name) : 0;
        s->presence_names[bit].p = s->presence_text[bit];
        s->presence_names[bit].len = 0;
        if (a == NULL || n > 1 || (n == 1 && (len == 0 || len >= PRESENCE_NAME_MAX))) {
            json_decref(a);
            snprintf(err, errlen, a == NULL ? "out of memory"
                                            : "presence bit %u has no single short name", bit);
            return a == NULL ? -ENOMEM : -EPROTO;
        }
        memcpy(s->presence_text[bit], name != NULL ? name : "", len + 1);
        s->presence_names[bit].len = len;
        json_decref(a);
    }
    return 0;
}

/* source, then presence: null for a wire ping (it carries every field), the
 * names of the fields an edge ping carries otherwise (in bit order). */
static void source_presence_cells(const struct wl_export_src *s, const struct ping_view *v,
                           struct wl_rows *r)
{
    struct wl_str names[64];
    size_t n = 0;
    wl_rows_cstr(r, wl_source_name(v->source));
    if (v->source == WL_SOURCE_WIRE) {
        wl_rows_null(r);
        return;
    }
    for (uint64_t m = v->presence; m != 0; m &= m - 1) {
        const struct wl_str *name = &s->presence_names[__builtin_ctzll(m)];
        if (name->len > 0)
            names[n++] = *name;
    }
    wl_rows_strs(r, names, n);
}

/* Maps every pings column past the stored ones to its field of the shared
 * ping table and its proto field number, and sets up the direct reader when
 * every Ping field is of a type it reads (else every record goes through
 * protobuf-c). */
static int ping_columns(struct wl_export_src *s, char *err, size_t errlen)
{
    const ProtobufCMessageDescriptor *d = &warmline__v1__ping__descriptor;
    const struct wl_export_table *t = s->t;
    int direct = 1;

    for (size_t c = PING_STORED; c < t->ncols; c++) {
        const struct wl_ping_field *f = NULL;
        for (size_t i = 0; i < wl_ping_n_fields && f == NULL; i++) {
            if (strcmp(wl_ping_fields[i].name, t->cols[c]) == 0)
                f = &wl_ping_fields[i];
        }
        const ProtobufCFieldDescriptor *fd =
            protobuf_c_message_descriptor_get_field_by_name(d, t->cols[c]);
        if (f == NULL || fd == NULL) {
            snprintf(err, errlen, "pings column %s is not a ping field (export schema %d)",
                     t->cols[c], WL_EXPORT_SCHEMA);
            return -EPROTO;
        }
        if (fd->id > PING_MAX_FIELD) { /* the view's arrays end there: raise it */
            snprintf(err, errlen, "pings column %s is field %u, past PING_MAX_FIELD %d",
                     t->cols[c], fd->id, PING_MAX_FIELD);
            return -EPROTO;
        }
        s->ping_cols[c - PING_STORED].f = f;
        s->ping_cols[c - PING_STORED].kind = f->kind;
        s->ping_cols[c - PING_STORED].number = fd->id;
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        int repeated = fd->label == PROTOBUF_C_LABEL_REPEATED;
        uint8_t w = WIRE_NONE;
        if (fd->id > PING_MAX_FIELD)
            direct = 0;
        else if (!repeated && (fd->type == PROTOBUF_C_TYPE_UINT32 ||
                               fd->type == PROTOBUF_C_TYPE_UINT64 ||
                               fd->type == PROTOBUF_C_TYPE_INT64))
            w = WIRE_VARINT;
        else if (!repeated && (fd->type == PROTOBUF_C_TYPE_STRING ||
                               fd->type == PROTOBUF_C_TYPE_BYTES))
            w = WIRE_LEN;
        else if (repeated && fd->type == PROTOBUF_C_TYPE_STRING)
            w = WIRE_REPEATED;
        else
            direct = 0;
        if (fd->id <= PING_MAX_FIELD)
            s->wire_of[fd->id] = w;
    }
    s->direct = direct;
    return presence_names(s, err, errlen);
}

int wl_export_src_open(const struct wl_export_table *t, const struct wl_export_ctx *ctx,
                       uint64_t first, uint64_t last, struct wl_export_src **out, char *err,
                       size_t errlen)
{
    static const enum wl_cf cfs[] = {
        [WL_EXPORT_PINGS] = WL_CF_PINGS, [WL_EXPORT_SIGNALS] = WL_CF_SIGNALS,
        [WL_EXPORT_DAILY] = WL_CF_DAILY, [WL_EXPORT_ACCOUNTS] = WL_CF_ORGS,
    };
    struct wl_export_src *s = calloc(1, sizeof *s);
    if (s == NULL)
        goto oom;
    s->t = t;
    s->ctx = ctx;
    s->first = first;
    s->last = last;
    if (t->id == WL_EXPORT_PINGS) {
        int rc = ping_columns(s, err, errlen);
        if (rc != 0) {
            free(s);
            return rc;
        }
    }
    s->alloc.alloc = arena_alloc;
    s->alloc.free = arena_free;
    s->alloc.allocator_data = &s->arena;
    arena_reset(&s->arena);
    s->cf = cfs[t->id];
    /* The export's view is the frozen secondary (snap NULL): one long scan,
     * read ahead, that leaves the block cache alone. */
    s->it = ctx->snap == NULL ? wl_iter_new_scan(ctx->store, s->cf, SCAN_READAHEAD)
                              : wl_iter_new_at(ctx->store, ctx->snap, s->cf);
    if (s->it == NULL || s->arena.p == NULL)
        goto oom;
    *out = s;
    return 0;

oom:
    wl_export_src_free(s);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

void wl_export_src_free(struct wl_export_src *s)
{
    if (s == NULL)
        return;
    wl_iter_free(s->it);
    arena_destroy(&s->arena);
    free(s->view.features);
    free(s);
}

static void key_hex(const char *key, size_t klen, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = klen;
    if (2 * n + 1 > outlen)
        n = (outlen - 1) / 2;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[(uint8_t)key[i] >> 4];
        out[2 * i + 1] = hex[(uint8_t)key[i] & 15];
    }
    out[2 * n] = '\0';
}

static int bad_record(const struct wl_export_src *s, const char *key, size_t klen, char *err,
                      size_t errlen)
{
    char hex[2 * 40 + 1];
    key_hex(key, klen, hex, sizeof hex);
    snprintf(err, errlen, "%s: the record at key %s%s does not decode", wl_cf_name(s->cf), hex,
             klen > 40 ? "..." : "");
    return -EINVAL;
}

static void org_cell(struct wl_rows *r, const uint8_t *org, size_t len)
{
    char buf[8 + 2 * WL_ORG_ID_MAX + 1];
    if (len == 0) {
        wl_rows_str(r, "", 0);
        return;
    }
    if (len == 1 + WL_ORG_KEY_BYTES && org[0] == WL_ORG_TAG_KEY) { /* as wl_org_id_format */
        wl_rows_hex(r, org + 1, WL_ORG_KEY_BYTES);
        return;
    }
    wl_org_id_format(org, len, buf, sizeof buf);
    wl_rows_cstr(r, buf);
}

/* The view of a message protobuf-c unpacked. 0 or -ENOMEM. */
static int view_unpacked(struct wl_export_src *s, const stored_ping *sp)
{
    static const wl_ping empty = WARMLINE__V1__PING__INIT;
    const wl_ping *p = sp->ping != NULL ? sp->ping : &empty;
    struct ping_view *v = &s->view;

    v->ingest_seq = sp->ingest_seq;
    v->received_at = sp->received_at;
    v->event_at = sp->event_at;
    v->org.p = (const char *)sp->org.data;
    v->org.len = sp->org.len;
    v->source = sp->source;
    v->presence = sp->presence;
    v->n_features = 0;
    v->seen = UINT32_MAX;
    for (size_t i = 0; i < N(s->ping_cols); i++) {
        const struct wl_ping_field *f = s->ping_cols[i].f;
        unsigned n = s->ping_cols[i].number;
        const char *str;
        switch (f->kind) {
        case WL_PF_STRING:
            str = *WL_PING_FIELD_AT_CONST(p, f, char *);
            v->str[n].p = str != NULL ? str : "";
            v->str[n].len = strlen(v->str[n].p);
            break;
        case WL_PF_U32: v->num[n] = *WL_PING_FIELD_AT_CONST(p, f, uint32_t); break;
        case WL_PF_U64: v->num[n] = *WL_PING_FIELD_AT_CONST(p, f, uint64_t); break;
        case WL_PF_I64: v->num[n] = (uint64_t)*WL_PING_FIELD_AT_CONST(p, f, int64_t); break;
        case WL_PF_ORG_KEY:
            v->str[n].p = (const char *)p->org_key.data;
            v->str[n].len = p->org_key.len;
            break;
        case WL_PF_FEATURES:
            for (size_t k = 0; k < p->n_features; k++) {
                const char *ft = p->features[k] != NULL ? p->features[k] : "";
                if (view_feature(v, ft, strlen(ft)) != 0)
                    return -ENOMEM;
            }
            break;
        }
    }
    return 0;
}

static void ping_row(const struct wl_export_src *s, const struct ping_view *v,
                     struct wl_rows *r)
{
    static const struct wl_str empty = {"", 0};
    wl_rows_begin(r);
    wl_rows_u64(r, v->ingest_seq);
    wl_rows_i64(r, v->received_at);
    wl_rows_i64(r, v->event_at);
    org_cell(r, (const uint8_t *)v->org.p, v->org.len);
    source_presence_cells(s, v, r);
    for (size_t i = 0; i < N(s->ping_cols); i++) {
        unsigned n = s->ping_cols[i].number;
        int seen = (v->seen >> n) & 1;
        uint64_t num = seen ? v->num[n] : 0;
        const struct wl_str *str = seen ? &v->str[n] : &empty;
        switch (s->ping_cols[i].kind) {
        case WL_PF_STRING: wl_rows_strz(r, str->p, str->len); break;
        case WL_PF_U32: wl_rows_u64(r, (uint32_t)num); break; /* the varint's low bits */
        case WL_PF_U64: wl_rows_u64(r, num); break;
        case WL_PF_I64: wl_rows_i64(r, (int64_t)num); break;
        case WL_PF_ORG_KEY: wl_rows_hex(r, (const uint8_t *)str->p, str->len); break;
        case WL_PF_FEATURES: wl_rows_strs(r, v->features, v->n_features); break;
        }
    }
}

/* One pings record into r: read directly, or by protobuf-c when the direct
 * reader leaves it. 0, or -EINVAL (it does not decode) / -ENOMEM. */
static int ping_record(struct wl_export_src *s, const uint8_t *val, size_t vlen,
                       struct wl_rows *r)
{
    if (!s->direct || read_stored_ping(s->wire_of, val, vlen, &s->view) != 0) {
        arena_reset(&s->arena);
        stored_ping *sp = warmline__store__v1__stored_ping__unpack(&s->alloc, vlen, val);
        if (sp == NULL)
            return -EINVAL;
        if (view_unpacked(s, sp) != 0)
            return -ENOMEM;
    }
    ping_row(s, &s->view, r);
    return 0;
}

/* The signal's JSON object, its keys checked against the columns. */
static int signal_row(const struct wl_export_table *t, const wl_signal *sig, struct wl_rows *r,
                      char *err, size_t errlen)
{
    json_t *o = wl_signal_json(sig);
    size_t i = 0;
    const char *key;
    json_t *v;

    if (o == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    wl_rows_begin(r);
    json_object_foreach(o, key, v) {
        if (i >= t->ncols || strcmp(key, t->cols[i]) != 0) {
            snprintf(err, errlen, "the signal JSON has '%s' where export schema %d has '%s'",
                     key, WL_EXPORT_SCHEMA, i < t->ncols ? t->cols[i] : "(nothing)");
            json_decref(o);
            return -EPROTO;
        }
        wl_rows_json(r, v, WL_SIGNAL_JSON_FLAGS);
        i++;
    }
    json_decref(o);
    return 0;
}

static void counts_cells(struct wl_rows *r, const uint64_t *totals, size_t n)
{
    for (size_t i = 0; i < N_COUNT_COLUMNS; i++)
        wl_rows_u64(r, i < n ? totals[i] : 0);
}

static void daily_row(const uint8_t *key, size_t org_len, const daily_state *d,
                      struct wl_rows *r)
{
    char date[16];
    time_t t = (time_t)d->day * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%Y-%m-%d", &tm);
    wl_rows_begin(r);
    org_cell(r, key + 1, org_len);
    wl_rows_u64(r, d->day);
    wl_rows_cstr(r, date);
    wl_rows_u64(r, d->installs);
    wl_rows_u64(r, d->installs_total);
    counts_cells(r, d->totals, d->n_totals);
}

static void account_row(const struct wl_export_ctx *ctx, const char *key, size_t klen,
                        const org_state *o, struct wl_rows *r)
{
    wl_rows_begin(r);
    wl_rows_u64(r, ctx->snapshot_seq);
    wl_rows_i64(r, ctx->as_of);
    org_cell(r, (const uint8_t *)key, klen);
    wl_rows_str_array(r, o->install_ids, o->n_install_ids);
    wl_rows_u64(r, WL_ORG_INSTALLS_TOTAL(o));
    wl_rows_u64(r, o->installs_counting);
    wl_rows_i64(r, o->first_seen);
    wl_rows_i64(r, o->last_seen);
    counts_cells(r, o->totals, o->n_totals);
    wl_rows_str_array(r, o->versions, o->n_versions);
    wl_rows_str_array(r, o->editions, o->n_editions);
    wl_rows_str_array(r, o->features, o->n_features);
    wl_rows_u64(r, o->signals);
    if (o->has_score) {
        wl_rows_real(r, wl_score_at(o->score_log2, ctx->as_of, ctx->half_life_ms), 17);
        wl_rows_real(r, o->score_log2, 17);
    } else {
        wl_rows_real(r, 0.0, 17);
        wl_rows_null(r);
    }
    wl_rows_u64(r, o->day);
    wl_rows_i64(r, o->updated_at);
}

/* pings and signals: big-endian u64 keys from first to last. */
static int next_seq_keyed(struct wl_export_src *s, struct wl_rows *r, uint64_t *seq, char *err,
                          size_t errlen)
{
    uint8_t k8[8];
    size_t klen, vlen;

    if (!s->started) {
        wl_be64_put(k8, s->first);
        wl_iter_seek(s->it, k8, 8);
        s->started = 1;
    } else {
        wl_iter_next(s->it);
    }
    if (!wl_iter_valid(s->it))
        return wl_iter_status(s->it, err, errlen) != 0 ? -EIO : 0;
    const char *key = wl_iter_key(s->it, &klen);
    if (klen != 8)
        return bad_record(s, key, klen, err, errlen);
    *seq = wl_be64_get(key);
    if (*seq > s->last)
        return 0;
    if (r == NULL)
        return 1;
    const uint8_t *val = (const uint8_t *)wl_iter_value(s->it, &vlen);
    int rc = 0;
    if (s->t->id == WL_EXPORT_PINGS) {
        rc = ping_record(s, val, vlen, r);
        if (rc == -EINVAL)
            return bad_record(s, key, klen, err, errlen);
        if (rc == -ENOMEM)
            snprintf(err, errlen, "out of memory");
    } else {
        arena_reset(&s->arena);
        wl_signal *sig = warmline__store__v1__signal__unpack(&s->alloc, vlen, val);
        if (sig == NULL)
            return bad_record(s, key, klen, err, errlen);
        rc = signal_row(s->t, sig, r, err, errlen);
    }
    return rc != 0 ? rc : 1;
}

/* daily: keys are length byte + org id + big-endian day, so rows of the
 * range are found by seeking within each organization's run of keys. */
static int next_daily(struct wl_export_src *s, struct wl_rows *r, uint64_t *seq, char *err,
                      size_t errlen)
{
    uint8_t target[1 + 255 + 4];
    size_t klen, vlen;

    if (!s->started) {
        wl_iter_seek_first(s->it);
        s->started = 1;
    } else {
        wl_iter_next(s->it);
    }
    for (;;) {
        if (!wl_iter_valid(s->it))
            return wl_iter_status(s->it, err, errlen) != 0 ? -EIO : 0;
        const char *key = wl_iter_key(s->it, &klen);
        if (klen < 5 || (size_t)(uint8_t)key[0] + 5 != klen)
            return bad_record(s, key, klen, err, errlen);
        size_t prefix = klen - 4;
        uint32_t day = wl_be32_get(key + prefix);
        if (day < s->first || day > s->last) {
            /* Seek to this organization's first day of the range, or past
             * its last possible day. */
            memcpy(target, key, prefix);
            wl_be32_put(target + prefix, day < s->first ? (uint32_t)s->first : UINT32_MAX);
            int past = day > s->last;
            wl_iter_seek(s->it, target, prefix + 4);
            if (past && wl_iter_valid(s->it)) {
                const char *k2 = wl_iter_key(s->it, &klen);
                if (klen == prefix + 4 && memcmp(k2, target, klen) == 0)
                    wl_iter_next(s->it);
            }
            continue;
        }
        *seq = day;
        if (r == NULL)
            return 1;
        const uint8_t *val = (const uint8_t *)wl_iter_value(s->it, &vlen);
        arena_reset(&s->arena);
        daily_state *d = warmline__store__v1__daily_state__unpack(&s->alloc, vlen, val);
        if (d == NULL || d->day != day)
            return bad_record(s, key, klen, err, errlen);
        daily_row((const uint8_t *)key, prefix - 1, d, r);
        return 1;
    }
}

static int next_account(struct wl_export_src *s, struct wl_rows *r, uint64_t *seq, char *err,
                        size_t errlen)
{
    size_t klen, vlen;

    if (!s->started) {
        wl_iter_seek_first(s->it);
        s->started = 1;
    } else {
        wl_iter_next(s->it);
    }
    if (!wl_iter_valid(s->it))
        return wl_iter_status(s->it, err, errlen) != 0 ? -EIO : 0;
    *seq = s->ctx->snapshot_seq;
    if (r == NULL)
        return 1;
    const char *key = wl_iter_key(s->it, &klen);
    const uint8_t *val = (const uint8_t *)wl_iter_value(s->it, &vlen);
    arena_reset(&s->arena);
    org_state *o = warmline__store__v1__org_state__unpack(&s->alloc, vlen, val);
    if (o == NULL)
        return bad_record(s, key, klen, err, errlen);
    account_row(s->ctx, key, klen, o, r);
    return 1;
}

int wl_export_src_next(struct wl_export_src *s, struct wl_rows *rows, uint64_t *seq, char *err,
                       size_t errlen)
{
    int rc;
    if (s->done)
        return 0;
    switch (s->t->id) {
    case WL_EXPORT_PINGS:
    case WL_EXPORT_SIGNALS: rc = next_seq_keyed(s, rows, seq, err, errlen); break;
    case WL_EXPORT_DAILY: rc = next_daily(s, rows, seq, err, errlen); break;
    case WL_EXPORT_ACCOUNTS: rc = next_account(s, rows, seq, err, errlen); break;
    default: rc = -EINVAL; break;
    }
    if (rc == 1 && rows != NULL && wl_rows_end(rows) != 0) {
        snprintf(err, errlen, "%s", rows->err == -ENOMEM ? "out of memory"
                                    : "a row does not match the table's columns");
        return rows->err;
    }
    if (rc <= 0)
        s->done = 1;
    return rc;
}
