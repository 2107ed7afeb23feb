/* A RudderStack batch (POST /v1/batch, as Mattermost-style servers v5.23 to
 * v10.x send it) read and mapped to edge pings, one per mapped event.
 *
 * Pure: no I/O, no globals, any thread (the HTTP ingest listener calls it
 * on libmicrohttpd's threads, the fuzz target tests/fuzz/rudder_batch.c the
 * same way). The body arrives inflated (http_body.h); this file bounds it
 * with wl_json_bound, parses it with jansson and maps it.
 *
 * Both client shapes: the Go client's {"messageId","sentAt","batch":[...],
 * "context"} and the Node SDK's {"batch":[...],"timestamp","sentAt"}; only
 * "batch" is read. Each message is {"type","event","userId","anonymousId",
 * "messageId","properties",...}: "track" messages of the events below are
 * mapped, other types and events are ignored (counted, nothing kept).
 *
 * The ping of an event: install_id = userId (when present, else
 * anonymousId), 1..WL_INSTALL_ID_MAX printable ASCII; seq = 1 (a
 * placeholder: the writer assigns the real one); sent_at = the request's
 * arrival; edge.source = WL_SOURCE_RUDDER; edge.msgid = the messageId
 * (1..WL_MSGID_MAX printable ASCII; none when absent); edge.presence = the
 * fields and mapped features the event carries, nothing else:
 *   activity   registered_users, active_users_daily, active_users_monthly,
 *              bot_accounts, guest_accounts, teams, public_channels,
 *              private_channels, direct_message_channels, posts,
 *              posts_previous_day, slash_commands, incoming_webhooks,
 *              outgoing_webhooks: JSON integers 0..max_count (and 32 bits
 *              but posts), each to the Ping count of the same name
 *   server     version, database_type, operating_system, installation_type
 *              (printable ASCII, at most WL_STRING_MAX), edition ("true" ->
 *              "enterprise", "false" -> "team", as the security check's be),
 *              system_admins (a count)
 *   license    presence of licensed; feature "licensed" when customer_id is a
 *              non-empty string; "license_<edition>" (the SKU lower-cased,
 *              when it is 1..32 of [a-z0-9_], else left out). customer_id and
 *              license_id are never copied anywhere.
 *   configs (v10.3+: properties hold config_* objects) and config_saml,
 *   config_ldap, config_guest_accounts, config_cluster, config_wrangler
 *   (<= v10.2: properties are the section): a section's boolean "enable"
 *              sets the presence of saml_configured, ldap_configured,
 *              guest_accounts_enabled, cluster_enabled, and lists the feature
 *              when true (a section without "enable", or a section
 *              event without properties, says nothing);
 *              config_wrangler.allowed_email_domain (an array of strings):
 *              the first that wl_org_domain_check accepts becomes org_key =
 *              wl_org_key(org_salt, domain), with WL_FIELD_ORG_KEY's
 *              presence, when org_salt is set. The domains are never copied:
 *              jansson's copies are wiped before the tree is freed.
 * Every produced ping passes wl_ping_validate(ping, max_count).
 *
 * A message is dropped, counted under one reason, when it is not an object
 * (not_an_object), has a type or event that is not a string (bad_type), a
 * bad id (bad_user_id) or messageId (bad_message_id), or a mapped property
 * of the wrong type or out of range (bad_field: a real, a string, a negative
 * or a bool for a count, a count over max_count, a string not printable or
 * too long, an edition other than "true"/"false", properties or a section
 * that is not an object, enable that is not a bool, allowed_email_domain
 * that is not an array of strings). The rest of its batch still maps.
 *
 * Cost: the body is refused before jansson parses it past opts' depth and
 * values (wl_json_bound: its tree is then bounded as http_body.h says), and
 * past max_messages before any message is mapped; the result holds at most
 * max_messages pings of at most 6 strings of WL_STRING_MAX bytes each. */
#ifndef WL_RUDDER_H
#define WL_RUDDER_H

#include <stddef.h>
#include <stdint.h>

#include "ping.h"

/* Why a message was dropped; the name is what metrics and logs say. */
#define WL_RUDDER_DROPS(X)                 \
    X(NOT_AN_OBJECT, "not_an_object")      \
    X(BAD_TYPE, "bad_type")                \
    X(BAD_USER_ID, "bad_user_id")          \
    X(BAD_MESSAGE_ID, "bad_message_id")    \
    X(BAD_FIELD, "bad_field")

#define WL_RUDDER_DROP_ENUM(sym, name) WL_RUDDER_DROP_##sym,
enum wl_rudder_drop { WL_RUDDER_DROPS(WL_RUDDER_DROP_ENUM) WL_RUDDER_N_DROPS };
#undef WL_RUDDER_DROP_ENUM

extern const char *const wl_rudder_drop_names[WL_RUDDER_N_DROPS];

/* The license SKU kept in a "license_<sku>" feature: at most this long. */
#define WL_RUDDER_SKU_MAX 32

struct wl_rudder_opts {
    uint64_t max_count;         /* [limits] max_count */
    uint64_t max_messages;      /* [http] rudder_max_messages */
    uint64_t max_depth;         /* [http] http_max_json_depth */
    uint64_t max_values;        /* [http] http_max_json_values */
    const uint8_t *org_salt;    /* NULL: no organization key from domains */
    size_t org_salt_len;
};

struct wl_rudder_result {
    wl_ping_batch *batch;       /* the mapped pings (free with wl_ping_batch_free), never
                                   NULL on 0 (n_pings may be 0) */
    struct wl_edge *edge;       /* batch->n_pings of them (free()), NULL when none */
    uint64_t dropped[WL_RUDDER_N_DROPS];
    uint64_t ignored;           /* other types, other events */
    size_t messages;            /* in the batch array */
};

/* Maps body[0..len) (the inflated request body; body[len] need not be
 * NUL) into out. Returns 0 (free out with wl_rudder_result_free, or take
 * batch and edge for a writer job and set them NULL first), -EINVAL when
 * the body breaks opts' JSON bounds, does not parse as JSON, is not an
 * object with a "batch" array, or holds more than max_messages messages (the
 * caller answers 400; why holds a fixed text, never the sender's bytes), or
 * -ENOMEM. On an error out holds nothing to free. */
int wl_rudder_map(const char *body, size_t len, const struct wl_rudder_opts *o,
                  int64_t received_at_ms, struct wl_rudder_result *out, char *why, size_t whylen);

void wl_rudder_result_free(struct wl_rudder_result *r);

#endif
