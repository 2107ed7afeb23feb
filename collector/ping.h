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

#include <stddef.h>
#include <stdint.h>

#include "reasons.h"
#include "warmline.pb-c.h"

typedef Warmline__V1__Ping wl_ping;
typedef Warmline__V1__PingBatch wl_ping_batch;

#define WL_INSTALL_ID_MAX 64
#define WL_STRING_MAX 128
#define WL_FEATURES_MAX 64

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
