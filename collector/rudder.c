/* A RudderStack batch read and mapped to edge pings (rudder.h). Pure: no
 * I/O, no globals; jansson's tree is the only copy of the body we make. */
#include "rudder.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "http_body.h"
#include "orgkey.h"

#define WL_DROP_NAME(sym, name) name,
const char *const wl_rudder_drop_names[WL_RUDDER_N_DROPS] = {WL_RUDDER_DROPS(WL_DROP_NAME)};
#undef WL_DROP_NAME

#define WL_STRING_NAME(name) #name,
static const char *const string_names[] = {WL_STRING_FIELDS(WL_STRING_NAME)};
#undef WL_STRING_NAME
enum { N_STRINGS = sizeof string_names / sizeof string_names[0], S_EDITION = 1 };

/* The config sections whose "enable" becomes a feature. */
static const struct {
    const char *section;
    enum wl_edge_feature feature;
} sections[] = {
    {"config_saml", WL_EF_saml_configured},
    {"config_ldap", WL_EF_ldap_configured},
    {"config_guest_accounts", WL_EF_guest_accounts_enabled},
    {"config_cluster", WL_EF_cluster_enabled},
};
enum { N_SECTIONS = sizeof sections / sizeof sections[0] };
#define WRANGLER "config_wrangler"
#define DOMAINS "allowed_email_domain"

/* One event as read, its strings borrowed from the tree. */
struct draft {
    uint64_t presence;
    uint64_t counts[WL_N_COUNTS];
    const char *strings[N_STRINGS];
    int feature_on[WL_N_EDGE_FEATURES];
    char sku_feature[sizeof WL_LICENSE_PREFIX + WL_RUDDER_SKU_MAX];   /* "" when none */
    uint8_t org_key[32];
    const char *install_id;
    const char *msgid;
    size_t msgid_len;
};

/* Outcome of reading one message: mapped, ignored or dropped for a reason. */
enum { MAPPED = -1, IGNORED = -2 };

static int printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

/* A count property: absent (0), or a JSON integer 0..max_count that fits
 * the Ping field (1), else -1. */
static int take_count(const json_t *props, enum wl_count c, uint64_t max_count,
                      struct draft *d)
{
    const json_t *v = json_object_get(props, wl_count_names[c]);
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    uint64_t n = (uint64_t)json_integer_value(v);
    if (n > max_count || (c != WL_COUNT_posts && n > UINT32_MAX))
        return -1;
    d->counts[c] = n;
    d->presence |= WL_PRESENT(WL_FIELD_COUNT(c));
    return 1;
}

static int map_activity(const json_t *props, uint64_t max_count, struct draft *d)
{
    for (int c = 0; c < WL_N_COUNTS; c++) {
        if (c != WL_COUNT_system_admins && take_count(props, c, max_count, d) < 0)
            return WL_RUDDER_DROP_BAD_FIELD;
    }
    return MAPPED;
}

static int map_server(const json_t *props, uint64_t max_count, struct draft *d)
{
    for (int i = 0; i < N_STRINGS; i++) {
        const json_t *v = json_object_get(props, string_names[i]);
        if (v == NULL)
            continue;
        if (!json_is_string(v))
            return WL_RUDDER_DROP_BAD_FIELD;
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (i == S_EDITION) {
            if (strcmp(s, "true") == 0)
                s = "enterprise";
            else if (strcmp(s, "false") == 0)
                s = "team";
            else
                return WL_RUDDER_DROP_BAD_FIELD;
        } else if (n > WL_STRING_MAX || !printable(s, n)) {
            return WL_RUDDER_DROP_BAD_FIELD;
        }
        d->strings[i] = s;
        d->presence |= WL_PRESENT(WL_FIELD_STRING(i));
    }
    if (take_count(props, WL_COUNT_system_admins, max_count, d) < 0)
        return WL_RUDDER_DROP_BAD_FIELD;
    return MAPPED;
}

static int map_license(const json_t *props, struct draft *d)
{
    const json_t *customer = json_object_get(props, "customer_id");
    const json_t *sku = json_object_get(props, "edition");

    if ((customer != NULL && !json_is_string(customer)) || (sku != NULL && !json_is_string(sku)))
        return WL_RUDDER_DROP_BAD_FIELD;
    d->presence |= WL_PRESENT(WL_FEATURE_BIT(WL_EF_licensed));
    /* only whether there is one: the id itself goes nowhere */
    d->feature_on[WL_EF_licensed] = customer != NULL && json_string_length(customer) > 0;
    if (sku != NULL) {
        const char *s = json_string_value(sku);
        size_t n = json_string_length(sku), pre = strlen(WL_LICENSE_PREFIX);
        if (n == 0 || n > WL_RUDDER_SKU_MAX)
            return MAPPED;
        memcpy(d->sku_feature, WL_LICENSE_PREFIX, pre);
        for (size_t i = 0; i < n; i++) {
            char c = s[i];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
                d->sku_feature[0] = '\0';   /* left out */
                return MAPPED;
            }
            d->sku_feature[pre + i] = c;
        }
        d->sku_feature[pre + n] = '\0';
    }
    return MAPPED;
}

static int map_section(const json_t *sec, enum wl_edge_feature f, struct draft *d)
{
    if (!json_is_object(sec))
        return WL_RUDDER_DROP_BAD_FIELD;
    const json_t *enable = json_object_get(sec, "enable");
    if (enable == NULL)
        return MAPPED;
    if (!json_is_boolean(enable))
        return WL_RUDDER_DROP_BAD_FIELD;
    d->presence |= WL_PRESENT(WL_FEATURE_BIT(f));
    d->feature_on[f] = json_is_true(enable);
    return MAPPED;
}

/* The first domain wl_org_domain_check accepts becomes the org key (with a
 * salt). Nothing of the domains is kept: the check's message (which may
 * quote one) is wiped, and wipe_domains wipes the tree's copies. */
static int map_wrangler(const json_t *sec, const struct wl_rudder_opts *o, struct draft *d)
{
    if (!json_is_object(sec))
        return WL_RUDDER_DROP_BAD_FIELD;
    const json_t *list = json_object_get(sec, DOMAINS);
    if (list == NULL)
        return MAPPED;
    if (!json_is_array(list))
        return WL_RUDDER_DROP_BAD_FIELD;
    size_t i;
    const json_t *v;
    const char *first = NULL;
    json_array_foreach(list, i, v) {
        if (!json_is_string(v))
            return WL_RUDDER_DROP_BAD_FIELD;
        char err[160];
        if (first == NULL && wl_org_domain_check(json_string_value(v), err, sizeof err) == 0)
            first = json_string_value(v);
        sodium_memzero(err, sizeof err);
    }
    if (first != NULL && o->org_salt != NULL) {
        wl_org_key(o->org_salt, o->org_salt_len, first, d->org_key);
        d->presence |= WL_PRESENT(WL_FIELD_ORG_KEY);
    }
    return MAPPED;
}

static void wipe_domain_list(json_t *sec)
{
    json_t *list = json_object_get(sec, DOMAINS), *v;
    size_t i;

    if (json_is_string(list))
        sodium_memzero((char *)json_string_value(list), json_string_length(list));
    json_array_foreach(list, i, v) {
        if (json_is_string(v))
            sodium_memzero((char *)json_string_value(v), json_string_length(v));
    }
}

/* Wipes, in place, every allowed_email_domain a message carries (as the
 * configs event nests it, or as the config_wrangler event holds it), mapped
 * or not, before the tree is freed. */
static void wipe_domains(json_t *msg)
{
    json_t *props = json_object_get(msg, "properties");
    wipe_domain_list(props);
    wipe_domain_list(json_object_get(props, WRANGLER));
}

static int map_event(const char *event, const json_t *props, const struct wl_rudder_opts *o,
                     struct draft *d)
{
    int r = MAPPED;

    if (strcmp(event, "activity") == 0)
        return map_activity(props, o->max_count, d);
    if (strcmp(event, "server") == 0)
        return map_server(props, o->max_count, d);
    if (strcmp(event, "license") == 0)
        return map_license(props, d);
    /* <= v10.2: the section is the properties (none: it says nothing) */
    if (strcmp(event, WRANGLER) == 0)
        return props != NULL ? map_wrangler(props, o, d) : MAPPED;
    for (int s = 0; s < N_SECTIONS; s++) {
        if (strcmp(event, sections[s].section) == 0)
            return props != NULL ? map_section(props, sections[s].feature, d) : MAPPED;
    }
    if (strcmp(event, "configs") != 0)
        return IGNORED;
    /* v10.3+: one event, the sections nested (absent ones say nothing) */
    for (int s = 0; s < N_SECTIONS && r == MAPPED; s++) {
        const json_t *sec = json_object_get(props, sections[s].section);
        if (sec != NULL)
            r = map_section(sec, sections[s].feature, d);
    }
    const json_t *wr = json_object_get(props, WRANGLER);
    if (r == MAPPED && wr != NULL)
        r = map_wrangler(wr, o, d);
    return r;
}

static int is_known_event(const char *event)
{
    static const char *const known[] = {"activity", "server", "license", "configs", WRANGLER};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(event, known[i]) == 0)
            return 1;
    for (int s = 0; s < N_SECTIONS; s++)
        if (strcmp(event, sections[s].section) == 0)
            return 1;
    return 0;
}

/* Reads one message into d: MAPPED, IGNORED or an enum wl_rudder_drop. */
static int read_message(const json_t *msg, const struct wl_rudder_opts *o, struct draft *d)
{
    if (!json_is_object(msg))
        return WL_RUDDER_DROP_NOT_AN_OBJECT;
    const json_t *type = json_object_get(msg, "type");
    if (!json_is_string(type))
        return WL_RUDDER_DROP_BAD_TYPE;
    if (strcmp(json_string_value(type), "track") != 0)
        return IGNORED;
    const json_t *event = json_object_get(msg, "event");
    if (!json_is_string(event))
        return WL_RUDDER_DROP_BAD_TYPE;
    if (!is_known_event(json_string_value(event)))
        return IGNORED;

    /* userId when present (even empty), else anonymousId */
    const json_t *id = json_object_get(msg, "userId");
    if (id == NULL)
        id = json_object_get(msg, "anonymousId");
    if (!json_is_string(id) || json_string_length(id) == 0 ||
        json_string_length(id) > WL_INSTALL_ID_MAX ||
        !printable(json_string_value(id), json_string_length(id)))
        return WL_RUDDER_DROP_BAD_USER_ID;
    d->install_id = json_string_value(id);

    const json_t *mid = json_object_get(msg, "messageId");
    if (mid != NULL) {
        if (!json_is_string(mid) || json_string_length(mid) == 0 ||
            json_string_length(mid) > WL_MSGID_MAX ||
            !printable(json_string_value(mid), json_string_length(mid)))
            return WL_RUDDER_DROP_BAD_MESSAGE_ID;
        d->msgid = json_string_value(mid);
        d->msgid_len = json_string_length(mid);
    }

    const json_t *props = json_object_get(msg, "properties");
    if (props != NULL && !json_is_object(props))
        return WL_RUDDER_DROP_BAD_FIELD;
    return map_event(json_string_value(event), props, o, d);
}

/* Frees a ping make_ping did not finish (strings still at their default
 * are not ours). */
static void free_ping(wl_ping *p)
{
    char *strings[N_STRINGS] = {p->version, p->edition, p->database_type, p->operating_system,
                                p->installation_type};
    for (int i = 0; i < N_STRINGS; i++) {
        if (strings[i] != protobuf_c_empty_string)
            free(strings[i]);
    }
    if (p->install_id != protobuf_c_empty_string)
        free(p->install_id);
    free(p->org_key.data);
    for (size_t f = 0; f < p->n_features; f++)
        free(p->features[f]);
    free(p->features);
    free(p);
}

/* The ping d describes, malloc'd for wl_ping_batch_free; NULL when out of
 * memory. */
static wl_ping *make_ping(const struct draft *d, int64_t received_at_ms)
{
    wl_ping *p = malloc(sizeof *p);
    if (p == NULL)
        return NULL;
    warmline__v1__ping__init(p);
    p->seq = 1;
    p->sent_at = received_at_ms;
    p->install_id = strdup(d->install_id);
    if (p->install_id == NULL)
        goto fail;
    char **strings[N_STRINGS] = {&p->version, &p->edition, &p->database_type,
                                 &p->operating_system, &p->installation_type};
    for (int i = 0; i < N_STRINGS; i++) {
        if (d->strings[i] != NULL && (*strings[i] = strdup(d->strings[i])) == NULL)
            goto fail;
    }
#define WL_COUNT_SET(name) p->name = d->counts[WL_COUNT_##name];
    WL_COUNT_FIELDS(WL_COUNT_SET)
#undef WL_COUNT_SET
    if (d->presence & WL_PRESENT(WL_FIELD_ORG_KEY)) {
        if ((p->org_key.data = malloc(sizeof d->org_key)) == NULL)
            goto fail;
        memcpy(p->org_key.data, d->org_key, sizeof d->org_key);
        p->org_key.len = sizeof d->org_key;
    }
    size_t nf = d->sku_feature[0] != '\0';
    for (int f = 0; f < WL_N_EDGE_FEATURES; f++)
        nf += d->feature_on[f] != 0;
    if (nf > 0) {
        if ((p->features = calloc(nf, sizeof *p->features)) == NULL)
            goto fail;
        for (int f = 0; f < WL_N_EDGE_FEATURES; f++) {
            if (d->feature_on[f] &&
                (p->features[p->n_features++] = strdup(wl_edge_feature_names[f])) == NULL)
                goto fail;
        }
        if (d->sku_feature[0] != '\0' &&
            (p->features[p->n_features++] = strdup(d->sku_feature)) == NULL)
            goto fail;
    }
    return p;

fail:
    free_ping(p);
    return NULL;
}

void wl_rudder_result_free(struct wl_rudder_result *r)
{
    wl_ping_batch_free(r->batch);
    free(r->edge);
    memset(r, 0, sizeof *r);
}

int wl_rudder_map(const char *body, size_t len, const struct wl_rudder_opts *o,
                  int64_t received_at_ms, struct wl_rudder_result *out, char *why, size_t whylen)
{
    json_t *root = NULL, *msg;
    json_error_t jerr;
    size_t i;
    int rc;

    memset(out, 0, sizeof *out);
    unsigned depth = o->max_depth > WL_JSON_DEPTH_LIMIT ? WL_JSON_DEPTH_LIMIT
                                                         : (unsigned)o->max_depth;
    if (wl_json_bound(body, len, depth, o->max_values, why, whylen) != 0)
        return -EINVAL;
    root = json_loadb(body, len, 0, &jerr);
    if (root == NULL) {
        /* jerr.text may quote the sender's bytes: not passed on */
        snprintf(why, whylen, "body is not JSON");
        return -EINVAL;
    }
    json_t *list = json_object_get(root, "batch");
    if (!json_is_array(list)) {
        snprintf(why, whylen, "body is not an object with a \"batch\" array");
        rc = -EINVAL;
        goto fail;
    }
    size_t n = json_array_size(list);
    if (n > o->max_messages) {
        snprintf(why, whylen, "more messages than rudder_max_messages");
        rc = -EINVAL;
        goto fail;
    }
    out->messages = n;
    rc = -ENOMEM;
    if ((out->batch = malloc(sizeof *out->batch)) == NULL)
        goto fail;
    warmline__v1__ping_batch__init(out->batch);
    if (n > 0) {
        if ((out->batch->pings = calloc(n, sizeof *out->batch->pings)) == NULL ||
            (out->edge = calloc(n, sizeof *out->edge)) == NULL)
            goto fail;
    }
    json_array_foreach(list, i, msg) {
        struct draft d;
        memset(&d, 0, sizeof d);
        int r = read_message(msg, o, &d);
        wipe_domains(msg);
        if (r == IGNORED) {
            out->ignored++;
        } else if (r != MAPPED) {
            out->dropped[r]++;
        } else {
            wl_ping *p = make_ping(&d, received_at_ms);
            if (p == NULL)
                goto fail;
            struct wl_edge *e = &out->edge[out->batch->n_pings];
            e->presence = d.presence;
            e->source = WL_SOURCE_RUDDER;
            e->msgid_len = (uint8_t)d.msgid_len;
            if (d.msgid_len > 0)
                memcpy(e->msgid, d.msgid, d.msgid_len);
            out->batch->pings[out->batch->n_pings++] = p;
        }
        sodium_memzero(d.org_key, sizeof d.org_key);
    }
    if (out->batch->n_pings == 0) {
        free(out->edge);
        out->edge = NULL;
    }
    json_decref(root);
    return 0;

fail:
    if (root != NULL) {
        json_array_foreach(json_object_get(root, "batch"), i, msg)
            wipe_domains(msg);
        json_decref(root);
    }
    wl_rudder_result_free(out);
    if (rc == -ENOMEM)
        snprintf(why, whylen, "out of memory");
    return rc;
}
