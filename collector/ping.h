/* Pings: the per-ping field lists and validation.
 *
 * The per-ping counts, in one list: validation checks each against the
 * ceiling, aggregation sums them per organization, dumps print them. The
 * order is the order of OrgState.totals; only append. */
#ifndef WL_PING_H
#define WL_PING_H

#define WL_COUNT_FIELDS(X)         \
    X(registered_users)            \
    X(active_users_daily)          \
    X(active_users_monthly)        \
    X(bot_accounts)                \
    X(guest_accounts)              \
    X(teams)                       \
    X(public_channels)             \
    X(private_channels)            \
    X(direct_message_channels)     \
    X(posts_previous_day)          \
    X(incoming_webhooks)           \
    X(outgoing_webhooks)           \
    X(slash_commands)              \
    X(system_admins)               \
    X(posts)

#define WL_STRING_FIELDS(X) \
    X(version)              \
    X(edition)              \
    X(database_type)        \
    X(operating_system)     \
    X(installation_type)

#define WL_COUNT_ENUM(name) WL_COUNT_##name,
enum wl_count { WL_COUNT_FIELDS(WL_COUNT_ENUM) WL_N_COUNTS };
#undef WL_COUNT_ENUM
#define WL_STRING_ENUM(name) WL_STRING_##name,
enum wl_string { WL_STRING_FIELDS(WL_STRING_ENUM) WL_N_STRINGS };
#undef WL_STRING_ENUM

#include <stddef.h>
#include <stdint.h>

#include "reasons.h"
#include "warmline.pb-c.h"

typedef Warmline__V1__Ping wl_ping;
typedef Warmline__V1__PingBatch wl_ping_batch;

/* A ping's bytes as it came: the serialized Ping it was decoded from
 * (envelope.h keeps them with the batch; the writer stores them as they are). */
struct wl_ping_bytes {
    const uint8_t *p;
    size_t len;
};

#define WL_INSTALL_ID_MAX 64
#define WL_STRING_MAX 128
#define WL_FEATURES_MAX 64

/* ---- pings from the HTTP edge ----
 *
 * A wire ping (UDP, TCP, an import) carries every field and its sender's
 * seq. An edge ping (a security check, a Rudder event: collector/http_ingest*)
 * carries some fields: its presence names them. The writer assigns its seq
 * (per install, in arrival order) and merges it into the install's latest
 * ping: absent fields keep their values. */
enum wl_source { WL_SOURCE_WIRE = 0, WL_SOURCE_SECURITY = 1, WL_SOURCE_RUDDER = 2 };

/* Presence bits: bit n is the Ping field numbered n in warmline.proto.
 * The counts are fields 10.. in WL_COUNT_FIELDS order, the strings 5.. in
 * WL_STRING_FIELDS order. WL_FIELD_FEATURES means the whole list. */
#define WL_FIELD_ORG_KEY 2
/* Bit 1 (no Ping field has number 1 in presence: install_id is always
 * there): the org_key came from the operator's network table, not from a
 * domain. The organization precedence (issue 13): a domain (a wire ping's
 * org_key, Rudder's allowed_email_domain) > the network table > the
 * organization the install already has > the install itself. A network
 * org_key does not move an install whose organization came from a domain;
 * an edge ping without an org_key never moves an install. */
#define WL_ORG_BY_NETWORK 1
#define WL_FIELD_STRING(s) (5 + (int)(s))     /* s: enum wl_string */
#define WL_FIELD_COUNT(c) (10 + (int)(c))     /* c: enum wl_count */
#define WL_FIELD_FEATURES 25
#define WL_PRESENT(field) (1ull << (field))

/* The features the edge maps, each with a presence bit of its own (32 +
 * its place here): a Rudder config_saml event carries saml_configured set
 * or unset and leaves the rest as they were. licensed's bit also covers
 * every "license_<sku>" feature (the license's edition). Only append. */
#define WL_EDGE_FEATURES(X)     \
    X(saml_configured)          \
    X(ldap_configured)          \
    X(guest_accounts_enabled)   \
    X(cluster_enabled)          \
    X(licensed)

#define WL_EDGE_FEATURE_ENUM(name) WL_EF_##name,
enum wl_edge_feature { WL_EDGE_FEATURES(WL_EDGE_FEATURE_ENUM) WL_N_EDGE_FEATURES };
#undef WL_EDGE_FEATURE_ENUM
#define WL_FEATURE_BIT(f) (32 + (int)(f))     /* f: enum wl_edge_feature */
#define WL_LICENSE_PREFIX "license_"

extern const char *const wl_edge_feature_names[WL_N_EDGE_FEATURES];

/* "wire", "security" or "rudder" ("unknown" past them). */
const char *wl_source_name(uint32_t source);

/* The presence bit a feature of that name answers to (WL_FEATURE_BIT), or
 * -1 when it has none (only a wire ping's whole list replaces it). */
int wl_edge_feature_bit(const char *name);

#define WL_MSGID_MAX 128    /* a Rudder messageId longer than this is refused */

/* What an edge ping carries besides the Ping (one per ping of an edge job). */
struct wl_edge {
    uint64_t presence;      /* WL_PRESENT bits */
    uint8_t source;         /* enum wl_source, not WL_SOURCE_WIRE */
    uint8_t msgid_len;      /* 0: none */
    char msgid[WL_MSGID_MAX]; /* the Rudder messageId as sent: the writer keeps only a keyed
                                 digest (WL_CF_MSGIDS), and a resend of it changes nothing */
};

/* Field names in list order. */
extern const char *const wl_count_names[WL_N_COUNTS];

/* Copies the ping's counts into out, in list order. */
void wl_ping_counts(const wl_ping *p, uint64_t out[WL_N_COUNTS]);

/* Checks one ping against the wire contract's rules. Returns WL_REJECT_NONE
 * or the first reason it fails. */
enum wl_reason wl_ping_validate(const wl_ping *p, uint64_t max_count);

/* 1 when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
int wl_utf8_valid(const char *s, size_t len);

#endif
