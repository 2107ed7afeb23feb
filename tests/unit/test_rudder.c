/* collector/rudder.c: a RudderStack batch mapped to edge pings. Both client
 * shapes, every mapped event, presence exact, the id and messageId rules,
 * wrong types in every mapped field, bodies refused whole, ignored events,
 * mixed batches, and the organization key from allowed_email_domain (the
 * raw domains nowhere in the result). Every ping produced must pass
 * wl_ping_validate. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <jansson.h>
#include <malloc.h>

#include "envelope.h"
#include "orgkey.h"
#include "rudder.h"

#define ID "k7x3pq9s1bfj8ctw5yhzr4ud6e"
#define AT 1796600000000LL
#define MAX_COUNT 10000000

static const uint8_t salt[] = "test salt";

static struct wl_rudder_opts opts(void)
{
    return (struct wl_rudder_opts){.max_count = MAX_COUNT, .max_messages = 2000,
                                    .max_depth = 32, .max_values = 100000,
                                    .org_salt = salt, .org_salt_len = sizeof salt - 1};
}

static char why[128];

/* Maps body; on 0 checks every ping against the wire contract and the
 * edge's shape. */
static int map_with(const char *body, const struct wl_rudder_opts *o, struct wl_rudder_result *r)
{
    why[0] = '\0';
    int rc = wl_rudder_map(body, strlen(body), o, AT, r, why, sizeof why);
    if (rc != 0) {
        assert_null(r->batch);
        assert_null(r->edge);
        assert_true(why[0] != '\0');
        return rc;
    }
    assert_non_null(r->batch);
    assert_true(r->batch->n_pings <= r->messages);
    uint64_t dropped = 0;
    for (int k = 0; k < WL_RUDDER_N_DROPS; k++)
        dropped += r->dropped[k];
    assert_int_equal(r->batch->n_pings + dropped + r->ignored, r->messages);
    for (size_t i = 0; i < r->batch->n_pings; i++) {
        const wl_ping *p = r->batch->pings[i];
        assert_int_equal(wl_ping_validate(p, o->max_count), WL_REJECT_NONE);
        assert_int_equal(p->seq, 1);
        assert_int_equal(p->sent_at, AT);
        assert_int_equal(r->edge[i].source, WL_SOURCE_RUDDER);
        assert_true(r->edge[i].msgid_len <= WL_MSGID_MAX);
        /* org key present exactly when its bit says so */
        assert_int_equal(p->org_key.len != 0,
                         (r->edge[i].presence & WL_PRESENT(WL_FIELD_ORG_KEY)) != 0);
    }
    return 0;
}

static int map(const char *body, struct wl_rudder_result *r)
{
    struct wl_rudder_opts o = opts();
    return map_with(body, &o, r);
}

/* {"batch":[one track message of event with properties]} */
static char *track(const char *event, const char *props)
{
    static char buf[16384];
    snprintf(buf, sizeof buf,
             "{\"batch\":[{\"type\":\"track\",\"event\":\"%s\",\"userId\":\"" ID "\","
             "\"anonymousId\":\"" ID "\",\"messageId\":\"m-1\",\"properties\":%s}]}",
             event, props);
    return buf;
}

/* Maps one event that must map: its ping and edge. */
static const wl_ping *one(const char *event, const char *props, struct wl_rudder_result *r,
                          uint64_t *presence)
{
    assert_int_equal(map(track(event, props), r), 0);
    if (r->batch->n_pings != 1)
        fail_msg("%s %s: %zu pings, dropped bad_field %" PRIu64, event, props,
                 r->batch->n_pings, r->dropped[WL_RUDDER_DROP_BAD_FIELD]);
    *presence = r->edge[0].presence;
    return r->batch->pings[0];
}

/* Maps one event that must be dropped for reason. */
static void dropped(const char *body, enum wl_rudder_drop reason)
{
    struct wl_rudder_result r;
    assert_int_equal(map(body, &r), 0);
    if (r.batch->n_pings != 0 || r.dropped[reason] != 1)
        fail_msg("%s: %zu pings, %" PRIu64 " dropped %s", body, r.batch->n_pings,
                 r.dropped[reason], wl_rudder_drop_names[reason]);
    assert_null(r.edge);
    wl_rudder_result_free(&r);
}

#define COUNT_BIT(c) WL_PRESENT(WL_FIELD_COUNT(WL_COUNT_##c))
#define FEATURE_BIT(f) WL_PRESENT(WL_FEATURE_BIT(WL_EF_##f))

/* ---- the two client shapes ---- */

static void go_client_shape(void **state)
{
    (void)state;
    const char *body =
        "{\"messageId\":\"6f1c2d3e-0000-4000-8000-000000000001\",\"sentAt\":"
        "\"2025-06-01T10:00:05.012345678Z\",\"batch\":["
        "{\"type\":\"identify\",\"messageId\":\"6f1c2d3e-0000-4000-8000-000000000002\","
        "\"anonymousId\":\"" ID "\",\"userId\":\"" ID "\","
        "\"timestamp\":\"2025-06-01T10:00:00.001Z\","
        "\"context\":{\"library\":{\"name\":\"analytics-go\",\"version\":\"1.0.0\"}}},"
        "{\"type\":\"track\",\"messageId\":\"6f1c2d3e-0000-4000-8000-000000000003\","
        "\"anonymousId\":\"" ID "\",\"userId\":\"" ID "\",\"event\":\"server\","
        "\"timestamp\":\"2025-06-01T10:00:00.002Z\",\"context\":{\"library\":{\"name\":"
        "\"analytics-go\",\"version\":\"1.0.0\"}},\"properties\":{\"database_type\":\"postgres\","
        "\"database_version\":\"16.4\",\"edition\":\"true\",\"installation_type\":\"docker\","
        "\"operating_system\":\"linux\",\"system_admins\":1,\"version\":\"10.11.0\"}}],"
        "\"context\":{\"library\":{\"name\":\"analytics-go\",\"version\":\"3.3.0\"}}}";
    struct wl_rudder_result r;

    assert_int_equal(map(body, &r), 0);
    assert_int_equal(r.messages, 2);
    assert_int_equal(r.ignored, 1); /* the identify */
    assert_int_equal(r.batch->n_pings, 1);
    const wl_ping *p = r.batch->pings[0];
    assert_string_equal(p->install_id, ID);
    assert_string_equal(p->version, "10.11.0");
    assert_string_equal(p->edition, "enterprise");
    assert_string_equal(p->database_type, "postgres");
    assert_string_equal(p->operating_system, "linux");
    assert_string_equal(p->installation_type, "docker");
    assert_int_equal(p->system_admins, 1);
    assert_int_equal(r.edge[0].msgid_len, 36);
    assert_memory_equal(r.edge[0].msgid, "6f1c2d3e-0000-4000-8000-000000000003", 36);
    uint64_t want = COUNT_BIT(system_admins);
    for (int i = 0; i < 5; i++)
        want |= WL_PRESENT(WL_FIELD_STRING(i));
    assert_int_equal(r.edge[0].presence, want);
    wl_rudder_result_free(&r);
}

static void node_client_shape(void **state)
{
    (void)state;
    /* as captured from @rudderstack/rudder-sdk-node 3.1.1 (no anonymousId) */
    const char *body =
        "{\"batch\":[{\"userId\":\"" ID "\",\"event\":\"server\",\"properties\":{\"edition\":"
        "\"false\",\"version\":\"10.11.0\",\"database_type\":\"postgres\",\"operating_system\":"
        "\"linux\",\"installation_type\":\"docker\",\"system_admins\":1,\"database_version\":"
        "\"16.4\"},\"type\":\"track\",\"context\":{\"library\":{\"name\":\"analytics-node\","
        "\"version\":\"3.1.1\"}},\"channel\":\"server\",\"_metadata\":{\"nodeVersion\":"
        "\"20.20.2\"},\"originalTimestamp\":\"2026-12-06T23:07:03.481Z\",\"messageId\":"
        "\"a8cc8123-d05e-4ba0-beb3-d4ecb191318d\",\"sentAt\":\"2026-12-06T23:07:03.482Z\"},"
        "{\"userId\":\"" ID "\",\"event\":\"activity\",\"properties\":{\"registered_users\":40,"
        "\"active_users_daily\":12},\"type\":\"track\",\"messageId\":\"b-2\"}],"
        "\"timestamp\":\"2026-12-06T23:07:03.482Z\",\"sentAt\":\"2026-12-06T23:07:03.482Z\"}";
    struct wl_rudder_result r;

    assert_int_equal(map(body, &r), 0);
    assert_int_equal(r.batch->n_pings, 2);
    assert_string_equal(r.batch->pings[0]->edition, "team");
    assert_memory_equal(r.edge[0].msgid, "a8cc8123-d05e-4ba0-beb3-d4ecb191318d", 36);
    assert_int_equal(r.batch->pings[1]->registered_users, 40);
    assert_int_equal(r.batch->pings[1]->active_users_daily, 12);
    assert_int_equal(r.edge[1].presence,
                     COUNT_BIT(registered_users) | COUNT_BIT(active_users_daily));
    assert_int_equal(r.edge[1].msgid_len, 3);
    wl_rudder_result_free(&r);
}

/* ---- every mapped event ---- */

static void activity_every_count(void **state)
{
    (void)state;
    struct wl_rudder_result r;
    uint64_t presence;
    const wl_ping *p = one("activity",
        "{\"registered_users\":1,\"active_users_daily\":2,\"active_users_monthly\":3,"
        "\"bot_accounts\":4,\"guest_accounts\":5,\"teams\":6,\"public_channels\":7,"
        "\"private_channels\":8,\"direct_message_channels\":9,\"posts\":10000000,"
        "\"posts_previous_day\":11,\"slash_commands\":12,\"incoming_webhooks\":13,"
        "\"outgoing_webhooks\":14,\"registered_deactivated_users\":99,\"bot_posts_previous_day\":"
        "98,\"public_channels_deleted\":97,\"storage_bytes\":1.5,\"system_admins\":7}",
        &r, &presence);
    assert_int_equal(p->registered_users, 1);
    assert_int_equal(p->active_users_daily, 2);
    assert_int_equal(p->active_users_monthly, 3);
    assert_int_equal(p->bot_accounts, 4);
    assert_int_equal(p->guest_accounts, 5);
    assert_int_equal(p->teams, 6);
    assert_int_equal(p->public_channels, 7);
    assert_int_equal(p->private_channels, 8);
    assert_int_equal(p->direct_message_channels, 9);
    assert_int_equal(p->posts, 10000000);
    assert_int_equal(p->posts_previous_day, 11);
    assert_int_equal(p->slash_commands, 12);
    assert_int_equal(p->incoming_webhooks, 13);
    assert_int_equal(p->outgoing_webhooks, 14);
    /* system_admins belongs to server: not read from activity */
    assert_int_equal(p->system_admins, 0);
    uint64_t want = 0;
    for (int c = 0; c < WL_N_COUNTS; c++)
        if (c != WL_COUNT_system_admins)
            want |= WL_PRESENT(WL_FIELD_COUNT(c));
    assert_int_equal(presence, want);
    assert_int_equal(p->n_features, 0);
    assert_string_equal(p->version, "");
    wl_rudder_result_free(&r);
}

static void partial_presence_exact(void **state)
{
    (void)state;
    struct wl_rudder_result r;
    uint64_t presence;
    const wl_ping *p = one("activity", "{\"teams\":0,\"posts\":5}", &r, &presence);
    assert_int_equal(presence, COUNT_BIT(teams) | COUNT_BIT(posts));
    assert_int_equal(p->teams, 0);
    assert_int_equal(p->posts, 5);
    wl_rudder_result_free(&r);

    p = one("server", "{\"version\":\"9.11.0\",\"installation_type\":\"\"}", &r, &presence);
    assert_int_equal(presence, WL_PRESENT(WL_FIELD_STRING(0)) | WL_PRESENT(WL_FIELD_STRING(4)));
    assert_string_equal(p->version, "9.11.0");
    assert_string_equal(p->installation_type, "");
    wl_rudder_result_free(&r);

    /* no properties at all: a ping that carries nothing */
    assert_int_equal(map("{\"batch\":[{\"type\":\"track\",\"event\":\"activity\",\"userId\":"
                         "\"" ID "\"}]}", &r), 0);
    assert_int_equal(r.batch->n_pings, 1);
    assert_int_equal(r.edge[0].presence, 0);
    assert_int_equal(r.edge[0].msgid_len, 0);
    wl_rudder_result_free(&r);
}

static void license_event(void **state)
{
    (void)state;
    struct wl_rudder_result r;
    uint64_t presence;
    const char *cust = "cust_8f3k2j1h4g5";
    char props[512];

    snprintf(props, sizeof props,
             "{\"customer_id\":\"%s\",\"license_id\":\"lic_77aa88bb\",\"users\":500,"
             "\"edition\":\"E20\",\"issued\":1,\"start\":2,\"expire\":3,\"feature_saml\":true}",
             cust);
    const wl_ping *p = one("license", props, &r, &presence);
    assert_int_equal(presence, FEATURE_BIT(licensed));
    assert_int_equal(p->n_features, 2);
    assert_string_equal(p->features[0], "licensed");
    assert_string_equal(p->features[1], "license_e20");
    /* the ids are nowhere in the ping */
    size_t len = warmline__v1__ping__get_packed_size(p);
    uint8_t *wire = malloc(len);
    warmline__v1__ping__pack(p, wire);
    assert_null(memmem(wire, len, cust, strlen(cust)));
    assert_null(memmem(wire, len, "lic_77aa88bb", 12));
    free(wire);
    wl_rudder_result_free(&r);

    /* no customer id: licensed's presence, not listed; a SKU outside [a-z0-9_] left out */
    p = one("license", "{\"customer_id\":\"\",\"edition\":\"e-20\"}", &r, &presence);
    assert_int_equal(presence, FEATURE_BIT(licensed));
    assert_int_equal(p->n_features, 0);
    wl_rudder_result_free(&r);
    p = one("license", "{\"edition\":\"professional\"}", &r, &presence);
    assert_int_equal(p->n_features, 1);
    assert_string_equal(p->features[0], "license_professional");
    wl_rudder_result_free(&r);
    /* 32 bytes kept, 33 left out */
    p = one("license", "{\"edition\":\"abcdefghijklmnopqrstuvwxyz012345\"}", &r, &presence);
    assert_int_equal(p->n_features, 1);
    wl_rudder_result_free(&r);
    p = one("license", "{\"edition\":\"abcdefghijklmnopqrstuvwxyz0123456\"}", &r, &presence);
    assert_int_equal(p->n_features, 0);
    wl_rudder_result_free(&r);
}

static void configs_nested_and_per_section(void **state)
{
    (void)state;
    struct wl_rudder_result r;
    uint64_t presence;

    /* v10.3+: one configs event; cluster's section has no enable, wrangler no domains */
    const wl_ping *p = one("configs",
        "{\"config_service\":{\"enable_x\":true},\"config_saml\":{\"enable\":true,"
        "\"verify\":false},\"config_ldap\":{\"enable\":false},\"config_guest_accounts\":"
        "{\"enable\":true,\"hide_tag\":false},\"config_cluster\":{\"enable_experimental\":true},"
        "\"config_wrangler\":{\"allowed_email_domain\":[]},\"config_plugin\":{}}",
        &r, &presence);
    assert_int_equal(presence, FEATURE_BIT(saml_configured) | FEATURE_BIT(ldap_configured) |
                                   FEATURE_BIT(guest_accounts_enabled));
    assert_int_equal(p->n_features, 2);
    assert_string_equal(p->features[0], "saml_configured");
    assert_string_equal(p->features[1], "guest_accounts_enabled");
    wl_rudder_result_free(&r);

    /* <= v10.2: one event per section */
    static const struct {
        const char *event;
        uint64_t bit;
        const char *feature;
    } per[] = {
        {"config_saml", FEATURE_BIT(saml_configured), "saml_configured"},
        {"config_ldap", FEATURE_BIT(ldap_configured), "ldap_configured"},
        {"config_guest_accounts", FEATURE_BIT(guest_accounts_enabled), "guest_accounts_enabled"},
        {"config_cluster", FEATURE_BIT(cluster_enabled), "cluster_enabled"},
    };
    for (size_t i = 0; i < sizeof per / sizeof per[0]; i++) {
        p = one(per[i].event, "{\"enable\":true,\"other\":1}", &r, &presence);
        assert_int_equal(presence, per[i].bit);
        assert_int_equal(p->n_features, 1);
        assert_string_equal(p->features[0], per[i].feature);
        wl_rudder_result_free(&r);
        p = one(per[i].event, "{\"enable\":false}", &r, &presence);
        assert_int_equal(presence, per[i].bit);
        assert_int_equal(p->n_features, 0);
        wl_rudder_result_free(&r);
    }
    /* a section event without properties says nothing */
    assert_int_equal(map("{\"batch\":[{\"type\":\"track\",\"event\":\"config_saml\","
                         "\"userId\":\"" ID "\"},{\"type\":\"track\",\"event\":"
                         "\"config_wrangler\",\"userId\":\"" ID "\"}]}", &r), 0);
    assert_int_equal(r.batch->n_pings, 2);
    assert_int_equal(r.edge[0].presence | r.edge[1].presence, 0);
    wl_rudder_result_free(&r);
}

/* ---- the organization key ---- */

static int contains_ci(const uint8_t *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp((const char *)hay + i, needle, k) == 0)
            return 1;
    return 0;
}

/* Every byte the result holds: the packed pings and the edges. */
static int result_contains(const struct wl_rudder_result *r, const char *needle)
{
    size_t len = warmline__v1__ping_batch__get_packed_size(r->batch);
    uint8_t *wire = malloc(len ? len : 1);
    warmline__v1__ping_batch__pack(r->batch, wire);
    int found = contains_ci(wire, len, needle);
    free(wire);
    if (r->edge != NULL)
        found |= contains_ci((const uint8_t *)r->edge, r->batch->n_pings * sizeof *r->edge,
                             needle);
    return found;
}

static void wrangler_domain_hashed(void **state)
{
    (void)state;
    struct wl_rudder_result r;
    uint64_t presence;
    uint8_t want[32];

    /* the first valid one, in the order sent: not the address, not the blank */
    const char *props = "{\"config_wrangler\":{\"allowed_email_domain\":[\"ann@skipped.org\","
                        "\"  \",\"Example-Corp.COM\",\"second.net\"],\"move_thread_max_count\":5}}";
    const wl_ping *p = one("configs", props, &r, &presence);
    wl_org_key(salt, sizeof salt - 1, "example-corp.com", want);
    assert_int_equal(presence, WL_PRESENT(WL_FIELD_ORG_KEY));
    assert_int_equal(p->org_key.len, 32);
    assert_memory_equal(p->org_key.data, want, 32);
    assert_false(result_contains(&r, "example-corp"));
    assert_false(result_contains(&r, "skipped"));
    assert_false(result_contains(&r, "second.net"));
    wl_rudder_result_free(&r);

    /* the per-section event, the same key */
    p = one("config_wrangler", "{\"allowed_email_domain\":[\"example-corp.com\"]}", &r,
            &presence);
    assert_memory_equal(p->org_key.data, want, 32);
    wl_rudder_result_free(&r);

    /* no valid domain: no key */
    p = one("config_wrangler", "{\"allowed_email_domain\":[\"a@b.c\",\"\"]}", &r, &presence);
    assert_int_equal(presence, 0);
    assert_int_equal(p->org_key.len, 0);
    wl_rudder_result_free(&r);

    /* no salt: no key, the domain still nowhere */
    struct wl_rudder_opts o = opts();
    o.org_salt = NULL;
    o.org_salt_len = 0;
    assert_int_equal(map_with(track("configs", props), &o, &r), 0);
    assert_int_equal(r.batch->n_pings, 1);
    assert_int_equal(r.edge[0].presence, 0);
    assert_int_equal(r.batch->pings[0]->org_key.len, 0);
    assert_false(result_contains(&r, "example-corp"));
    wl_rudder_result_free(&r);
}

/* Every block jansson frees is searched for the domains before it goes:
 * the tree's copies must have been wiped. (The lexer's token buffer is
 * freed too; the longer key after the domains overwrites its last copy.) */
static int domain_seen_in_free;

static void free_checking(void *p)
{
    if (p != NULL) {
        size_t n = malloc_usable_size(p);
        if (contains_ci(p, n, "example-corp") || contains_ci(p, n, "skipped.org"))
            domain_seen_in_free = 1;
    }
    free(p);
}

static void domains_wiped_before_free(void **state)
{
    (void)state;
    struct wl_rudder_result r;
    const char *body = track("configs",
        "{\"config_wrangler\":{\"allowed_email_domain\":[\"ann@skipped.org\","
        "\"Example-Corp.COM\"],\"move_thread_from_direct_message_channel_enable\":true}}");

    json_set_alloc_funcs(malloc, free_checking);
    domain_seen_in_free = 0;
    assert_int_equal(map(body, &r), 0);
    json_set_alloc_funcs(malloc, free);
    assert_int_equal(r.batch->n_pings, 1);
    assert_int_equal(r.batch->pings[0]->org_key.len, 32);
    assert_false(domain_seen_in_free);
    wl_rudder_result_free(&r);
    /* the same for a message dropped after its domains were read */
    json_set_alloc_funcs(malloc, free_checking);
    assert_int_equal(map(track("config_wrangler",
        "{\"allowed_email_domain\":[\"Example-Corp.COM\",7],"
        "\"move_thread_from_direct_message_channel_enable\":true}"), &r), 0);
    json_set_alloc_funcs(malloc, free);
    assert_int_equal(r.dropped[WL_RUDDER_DROP_BAD_FIELD], 1);
    assert_false(domain_seen_in_free);
    wl_rudder_result_free(&r);
}

/* ---- ids ---- */

static void user_id_rules(void **state)
{
    (void)state;
    char body[1024], id[80];
    struct wl_rudder_result r;
    static const char *const bad[] = {"\"\"", "123", "null", "[]", "\"a\\u0001b\"",
                                      "\"caf\\u00e9\"", "\"tab\\there\""};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(body, sizeof body, "{\"batch\":[{\"type\":\"track\",\"event\":\"server\","
                 "\"userId\":%s,\"anonymousId\":\"" ID "\",\"properties\":{}}]}", bad[i]);
        dropped(body, WL_RUDDER_DROP_BAD_USER_ID);
    }
    /* 64 bytes map, 65 do not */
    memset(id, 'a', 64);
    id[64] = '\0';
    snprintf(body, sizeof body, "{\"batch\":[{\"type\":\"track\",\"event\":\"server\","
             "\"userId\":\"%s\"}]}", id);
    assert_int_equal(map(body, &r), 0);
    assert_int_equal(r.batch->n_pings, 1);
    assert_string_equal(r.batch->pings[0]->install_id, id);
    wl_rudder_result_free(&r);
    snprintf(body, sizeof body, "{\"batch\":[{\"type\":\"track\",\"event\":\"server\","
             "\"userId\":\"%sa\"}]}", id);
    dropped(body, WL_RUDDER_DROP_BAD_USER_ID);
    /* no userId: anonymousId; neither: dropped */
    assert_int_equal(map("{\"batch\":[{\"type\":\"track\",\"event\":\"server\",\"anonymousId\":"
                         "\"anon-1\"}]}", &r), 0);
    assert_string_equal(r.batch->pings[0]->install_id, "anon-1");
    wl_rudder_result_free(&r);
    dropped("{\"batch\":[{\"type\":\"track\",\"event\":\"server\"}]}", WL_RUDDER_DROP_BAD_USER_ID);
}

static void message_id_rules(void **state)
{
    (void)state;
    char body[1024], mid[WL_MSGID_MAX + 2];
    struct wl_rudder_result r;
    static const char *const bad[] = {"\"\"", "7", "null", "{}", "\"m\\u0000\"", "\"m\\n\"",
                                      "\"\\u00ff\""};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(body, sizeof body, "{\"batch\":[{\"type\":\"track\",\"event\":\"server\","
                 "\"userId\":\"" ID "\",\"messageId\":%s}]}", bad[i]);
        if (i == 4) {
            /* \u0000 is refused by jansson itself: the body does not parse */
            assert_int_equal(map(body, &r), -EINVAL);
            continue;
        }
        dropped(body, WL_RUDDER_DROP_BAD_MESSAGE_ID);
    }
    memset(mid, 'm', WL_MSGID_MAX);
    mid[WL_MSGID_MAX] = '\0';
    snprintf(body, sizeof body, "{\"batch\":[{\"type\":\"track\",\"event\":\"server\","
             "\"userId\":\"" ID "\",\"messageId\":\"%s\"}]}", mid);
    assert_int_equal(map(body, &r), 0);
    assert_int_equal(r.edge[0].msgid_len, WL_MSGID_MAX);
    assert_memory_equal(r.edge[0].msgid, mid, WL_MSGID_MAX);
    wl_rudder_result_free(&r);
    snprintf(body, sizeof body, "{\"batch\":[{\"type\":\"track\",\"event\":\"server\","
             "\"userId\":\"" ID "\",\"messageId\":\"%sm\"}]}", mid);
    dropped(body, WL_RUDDER_DROP_BAD_MESSAGE_ID);
}

/* ---- wrong types in every mapped field ---- */

static void wrong_types_every_field(void **state)
{
    (void)state;
    static const char *const not_counts[] = {"1.5", "1.0", "\"1\"", "-1", "true", "null", "[]",
                                             "{}", "10000001", "1e3"};
    static const char *const not_strings[] = {"1", "true", "null", "[]", "{}",
                                              "\"bell\\u0007\"", "\"caf\\u00e9\""};
    char props[512], longstr[WL_STRING_MAX + 2];

    for (int c = 0; c < WL_N_COUNTS; c++) {
        const char *event = c == WL_COUNT_system_admins ? "server" : "activity";
        for (size_t k = 0; k < sizeof not_counts / sizeof not_counts[0]; k++) {
            snprintf(props, sizeof props, "{\"teams\":1,\"%s\":%s}", wl_count_names[c],
                     not_counts[k]);
            dropped(track(event, props), WL_RUDDER_DROP_BAD_FIELD);
        }
    }
    /* past 32 bits with a larger max_count: still refused but for posts (64 bits) */
    struct wl_rudder_opts o = opts();
    o.max_count = UINT64_C(1) << 40;
    struct wl_rudder_result r;
    assert_int_equal(map_with(track("activity", "{\"teams\":4294967296}"), &o, &r), 0);
    assert_int_equal(r.batch->n_pings, 0);
    wl_rudder_result_free(&r);
    assert_int_equal(map_with(track("activity", "{\"posts\":4294967296}"), &o, &r), 0);
    assert_int_equal(r.batch->n_pings, 1);
    assert_int_equal(r.batch->pings[0]->posts, UINT64_C(4294967296));
    wl_rudder_result_free(&r);

    static const char *const strings[] = {"version", "edition", "database_type",
                                          "operating_system", "installation_type"};
    memset(longstr, 'v', WL_STRING_MAX + 1);
    longstr[WL_STRING_MAX + 1] = '\0';
    for (size_t s = 0; s < 5; s++) {
        for (size_t k = 0; k < sizeof not_strings / sizeof not_strings[0]; k++) {
            snprintf(props, sizeof props, "{\"%s\":%s}", strings[s], not_strings[k]);
            dropped(track("server", props), WL_RUDDER_DROP_BAD_FIELD);
        }
        snprintf(props, sizeof props, "{\"%s\":\"%s\"}", strings[s], longstr);
        dropped(track("server", props), WL_RUDDER_DROP_BAD_FIELD);
    }
    dropped(track("server", "{\"edition\":\"yes\"}"), WL_RUDDER_DROP_BAD_FIELD);
    dropped(track("server", "{\"edition\":\"True\"}"), WL_RUDDER_DROP_BAD_FIELD);

    static const char *const others[] = {
        "1", "\"x\"", "true", "[]",                       /* properties not an object */
    };
    for (size_t k = 0; k < sizeof others / sizeof others[0]; k++)
        dropped(track("activity", others[k]), WL_RUDDER_DROP_BAD_FIELD);
    dropped(track("license", "{\"customer_id\":12}"), WL_RUDDER_DROP_BAD_FIELD);
    dropped(track("license", "{\"customer_id\":null}"), WL_RUDDER_DROP_BAD_FIELD);
    dropped(track("license", "{\"edition\":[\"e20\"]}"), WL_RUDDER_DROP_BAD_FIELD);
    static const char *const sections[] = {"config_saml", "config_ldap", "config_guest_accounts",
                                           "config_cluster"};
    static const char *const not_bools[] = {"\"true\"", "1", "null", "{}"};
    for (size_t s = 0; s < 4; s++) {
        for (size_t k = 0; k < sizeof not_bools / sizeof not_bools[0]; k++) {
            snprintf(props, sizeof props, "{\"enable\":%s}", not_bools[k]);
            dropped(track(sections[s], props), WL_RUDDER_DROP_BAD_FIELD);
            snprintf(props, sizeof props, "{\"%s\":{\"enable\":%s}}", sections[s], not_bools[k]);
            dropped(track("configs", props), WL_RUDDER_DROP_BAD_FIELD);
        }
        snprintf(props, sizeof props, "{\"%s\":true}", sections[s]);
        dropped(track("configs", props), WL_RUDDER_DROP_BAD_FIELD);
        dropped(track(sections[s], "[true]"), WL_RUDDER_DROP_BAD_FIELD);
    }
    static const char *const not_domain_lists[] = {"\"a.com\"", "\"a.com,b.com\"", "[1]",
                                                   "[\"a.com\",null]", "{}", "true"};
    for (size_t k = 0; k < sizeof not_domain_lists / sizeof not_domain_lists[0]; k++) {
        snprintf(props, sizeof props, "{\"allowed_email_domain\":%s}", not_domain_lists[k]);
        dropped(track("config_wrangler", props), WL_RUDDER_DROP_BAD_FIELD);
        snprintf(props, sizeof props, "{\"config_wrangler\":{\"allowed_email_domain\":%s}}",
                 not_domain_lists[k]);
        dropped(track("configs", props), WL_RUDDER_DROP_BAD_FIELD);
    }
    dropped(track("configs", "{\"config_wrangler\":[]}"), WL_RUDDER_DROP_BAD_FIELD);
    /* type and event */
    dropped("{\"batch\":[{\"type\":1,\"event\":\"server\",\"userId\":\"" ID "\"}]}",
            WL_RUDDER_DROP_BAD_TYPE);
    dropped("{\"batch\":[{\"event\":\"server\",\"userId\":\"" ID "\"}]}", WL_RUDDER_DROP_BAD_TYPE);
    dropped("{\"batch\":[{\"type\":\"track\",\"event\":[],\"userId\":\"" ID "\"}]}",
            WL_RUDDER_DROP_BAD_TYPE);
    dropped("{\"batch\":[\"track\"]}", WL_RUDDER_DROP_NOT_AN_OBJECT);
    dropped("{\"batch\":[null]}", WL_RUDDER_DROP_NOT_AN_OBJECT);
}

/* ---- bodies refused whole ---- */

static void bodies_refused(void **state)
{
    (void)state;
    struct wl_rudder_result r;
    static const char *const bad[] = {
        "", "not json", "[]", "{}", "{\"batch\":{}}", "{\"batch\":\"x\"}", "{\"batch\":null}",
        "{\"batch\":[]", "{\"batch\":[]} x", "{\"batch\":[{\"type\":\"track\",}]}",
        "{\"batch\":[1e999]}", "{\"batch\":[99999999999999999999]}", "\"secret.example\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(map(bad[i], &r), -EINVAL);
        assert_null(strstr(why, "secret"));
        assert_null(strstr(why, "track"));
    }
    /* an empty batch is fine */
    assert_int_equal(map("{\"batch\":[]}", &r), 0);
    assert_int_equal(r.batch->n_pings, 0);
    assert_null(r.edge);
    wl_rudder_result_free(&r);
    /* past the depth and values bounds: the object and the batch are 2 levels */
    struct wl_rudder_opts o = opts();
    char deep[256];
    for (int k = 30; k <= 31; k++) {
        size_t n = (size_t)snprintf(deep, sizeof deep, "{\"batch\":[");
        for (int i = 0; i < k; i++)
            deep[n++] = '[';
        for (int i = 0; i < k; i++)
            deep[n++] = ']';
        snprintf(deep + n, sizeof deep - n, "]}");
        if (k == 30) {
            assert_int_equal(map_with(deep, &o, &r), 0);   /* depth 32: not_an_object */
            assert_int_equal(r.dropped[WL_RUDDER_DROP_NOT_AN_OBJECT], 1);
            wl_rudder_result_free(&r);
        } else {
            assert_int_equal(map_with(deep, &o, &r), -EINVAL);
            assert_string_equal(why, "JSON nested deeper than http_max_json_depth");
        }
    }
    o = opts();
    o.max_values = 100;
    char many[2048];
    size_t n = (size_t)snprintf(many, sizeof many, "{\"batch\":[");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "%s0", i ? "," : "");
    snprintf(many + n, sizeof many - n, "]}");
    assert_int_equal(map_with(many, &o, &r), -EINVAL);      /* 102 values */
    assert_string_equal(why, "more JSON values than http_max_json_values");
}

static void too_many_messages(void **state)
{
    (void)state;
    struct wl_rudder_result r;
    size_t cap = 10000 * 80 + 64, n = 0;
    char *body = malloc(cap);

    assert_non_null(body);
    n += (size_t)snprintf(body, cap, "{\"batch\":[");
    for (int i = 0; i < 10000; i++)
        n += (size_t)snprintf(body + n, cap - n, "%s{\"type\":\"track\",\"event\":\"teams\","
                              "\"userId\":\"" ID "\"}", i ? "," : "");
    snprintf(body + n, cap - n, "]}");
    assert_int_equal(map(body, &r), -EINVAL);
    assert_string_equal(why, "more messages than rudder_max_messages");
    /* at exactly the limit: read (each event ignored) */
    struct wl_rudder_opts o = opts();
    o.max_messages = 10000;
    assert_int_equal(map_with(body, &o, &r), 0);
    assert_int_equal(r.messages, 10000);
    assert_int_equal(r.ignored, 10000);
    wl_rudder_result_free(&r);
    free(body);
}

/* ---- ignored and mixed ---- */

static void unknown_events_ignored(void **state)
{
    (void)state;
    struct wl_rudder_result r;
    const char *body =
        "{\"batch\":["
        "{\"type\":\"identify\",\"userId\":\"" ID "\"},"
        "{\"type\":\"page\",\"userId\":\"\"},"
        "{\"type\":\"track\",\"event\":\"plugins\",\"userId\":\"" ID "\",\"properties\":"
        "{\"active_plugins\":[\"x\"]}},"
        "{\"type\":\"track\",\"event\":\"permissions_general\",\"userId\":\"" ID "\"},"
        "{\"type\":\"track\",\"event\":\"config_service\",\"userId\":\"" ID "\"},"
        "{\"type\":\"track\",\"event\":\"groups\",\"userId\":1},"
        "{\"type\":\"track\",\"event\":\"read_only_channel_posted\",\"userId\":\"" ID "\","
        "\"properties\":{\"user_actual_id\":\"u5k2raw26charuserid0000000\",\"channel_id\":\"c\"}},"
        "{\"type\":\"track\",\"event\":\"Activity\",\"userId\":\"" ID "\"}"
        "]}";

    assert_int_equal(map(body, &r), 0);
    assert_int_equal(r.messages, 8);
    assert_int_equal(r.ignored, 8);
    assert_int_equal(r.batch->n_pings, 0);
    for (int k = 0; k < WL_RUDDER_N_DROPS; k++)
        assert_int_equal(r.dropped[k], 0);
    wl_rudder_result_free(&r);
}

static void good_and_bad_mixed(void **state)
{
    (void)state;
    struct wl_rudder_result r;
    const char *body =
        "{\"batch\":["
        "{\"type\":\"track\",\"event\":\"activity\",\"userId\":\"" ID "\",\"messageId\":\"a\","
        "\"properties\":{\"posts\":3}},"
        "5,"
        "{\"type\":\"track\",\"event\":\"activity\",\"userId\":\"\",\"properties\":{}},"
        "{\"type\":\"track\",\"event\":\"activity\",\"userId\":\"" ID "\",\"properties\":"
        "{\"posts\":-3}},"
        "{\"type\":\"track\",\"event\":\"server\",\"userId\":\"" ID "\",\"messageId\":\"\"},"
        "{\"type\":\"track\",\"event\":\"plugins\",\"userId\":\"" ID "\"},"
        "{\"type\":\"track\",\"event\":\"server\",\"userId\":\"" ID "\",\"messageId\":\"b\","
        "\"properties\":{\"version\":\"10.5.1\"}}"
        "]}";

    assert_int_equal(map(body, &r), 0);
    assert_int_equal(r.messages, 7);
    assert_int_equal(r.batch->n_pings, 2);
    assert_int_equal(r.batch->pings[0]->posts, 3);
    assert_string_equal(r.batch->pings[1]->version, "10.5.1");
    assert_int_equal(r.edge[0].msgid[0], 'a');
    assert_int_equal(r.edge[1].msgid[0], 'b');
    assert_int_equal(r.dropped[WL_RUDDER_DROP_NOT_AN_OBJECT], 1);
    assert_int_equal(r.dropped[WL_RUDDER_DROP_BAD_USER_ID], 1);
    assert_int_equal(r.dropped[WL_RUDDER_DROP_BAD_FIELD], 1);
    assert_int_equal(r.dropped[WL_RUDDER_DROP_BAD_MESSAGE_ID], 1);
    assert_int_equal(r.ignored, 1);
    wl_rudder_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(go_client_shape),
        cmocka_unit_test(node_client_shape),
        cmocka_unit_test(activity_every_count),
        cmocka_unit_test(partial_presence_exact),
        cmocka_unit_test(license_event),
        cmocka_unit_test(configs_nested_and_per_section),
        cmocka_unit_test(wrangler_domain_hashed),
        cmocka_unit_test(domains_wiped_before_free),
        cmocka_unit_test(user_id_rules),
        cmocka_unit_test(message_id_rules),
        cmocka_unit_test(wrong_types_every_field),
        cmocka_unit_test(bodies_refused),
        cmocka_unit_test(too_many_messages),
        cmocka_unit_test(unknown_events_ignored),
        cmocka_unit_test(good_and_bad_mixed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
