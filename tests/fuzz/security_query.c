/* Fuzz target: the security check's query read and mapped to a ping
 * (collector/http_ingest_security.c).
 *
 * Input: a query string. It is cut at '&' and at each part's first '=', and
 * each piece unescaped by libmicrohttpd's own MHD_http_unescape, as the
 * listener receives them (the lengths keep any %00). A check that parses
 * must become a ping the writer's validation accepts, with the fields it
 * was given; one that does not parse gets a reason. */
#include <errno.h>
#include <microhttpd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "fuzz.h"
#include "http_ingest_parts.h"

#define QUERY_MAX 4096
#define MAX_COUNT 10000000

static int printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wl_sq_param p[WL_SECURITY_PARAMS_MAX + 8];
    struct wl_security_check c;
    char buf[QUERY_MAX + 1], why[96];
    size_t n = 0;

    if (size > QUERY_MAX)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    /* MHD stops at the first NUL of the line; so do we */
    size = strlen(buf);
    for (char *part = buf, *next; part != NULL && n < sizeof p / sizeof p[0]; part = next) {
        next = strchr(part, '&');
        if (next != NULL)
            *next++ = '\0';
        if (*part == '\0')
            continue;
        char *eq = strchr(part, '=');
        if (eq != NULL)
            *eq++ = '\0';
        p[n].key = part;
        p[n].klen = MHD_http_unescape(part);
        p[n].value = eq;
        p[n].vlen = eq ? MHD_http_unescape(eq) : 0;
        n++;
    }
    int rc = wl_security_parse(p, n, MAX_COUNT, &c, why, sizeof why);
    if (rc != 0) {
        FUZZ_CHECK(rc == -EINVAL && why[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(n <= WL_SECURITY_PARAMS_MAX);
    FUZZ_CHECK(strlen(c.id) >= 1 && strlen(c.id) <= WL_INSTALL_ID_MAX && printable(c.id));
    FUZZ_CHECK(strlen(c.version) <= WL_STRING_MAX && printable(c.version));
    FUZZ_CHECK(printable(c.db) && printable(c.os));
    FUZZ_CHECK(c.uc <= MAX_COUNT && c.auc <= MAX_COUNT && c.tc <= MAX_COUNT);
    FUZZ_CHECK(c.has_uc || c.uc == 0);
    FUZZ_CHECK(strcmp(c.edition, "") == 0 || strcmp(c.edition, "team") == 0 ||
               strcmp(c.edition, "enterprise") == 0);

    int64_t at = 1796600000000LL; /* a fixed request time */
    wl_ping_batch *b = wl_security_batch(&c, at);
    FUZZ_CHECK(b != NULL && b->n_pings == 1);
    const wl_ping *ping = b->pings[0];
    FUZZ_CHECK(wl_ping_validate(ping, MAX_COUNT) == WL_REJECT_NONE);
    FUZZ_CHECK(strcmp(ping->install_id, c.id) == 0);
    FUZZ_CHECK(ping->seq == 1 && ping->sent_at == at); /* the writer assigns edge seqs */
    struct wl_edge *edge = wl_security_edge(&c);
    FUZZ_CHECK(edge != NULL && edge->source == WL_SOURCE_SECURITY);
    FUZZ_CHECK(!!(edge->presence & WL_PRESENT(WL_FIELD_COUNT(WL_COUNT_registered_users))) ==
               !!c.has_uc);
    FUZZ_CHECK(!!(edge->presence & WL_PRESENT(WL_FIELD_COUNT(WL_COUNT_teams))) == !!c.has_tc);
    free(edge);
    FUZZ_CHECK(strcmp(ping->version, c.version) == 0);
    FUZZ_CHECK(ping->registered_users == c.uc && ping->active_users_daily == c.auc &&
               ping->teams == c.tc);
    FUZZ_CHECK(ping->org_key.len == 0);
    /* packed and unpacked, as the writer stores it, it is the same ping */
    size_t len = warmline__v1__ping_batch__get_packed_size(b);
    uint8_t *wire = malloc(len ? len : 1);
    FUZZ_CHECK(wire != NULL);
    warmline__v1__ping_batch__pack(b, wire);
    wl_ping_batch *back = warmline__v1__ping_batch__unpack(NULL, len, wire);
    FUZZ_CHECK(back != NULL && back->n_pings == 1);
    FUZZ_CHECK(strcmp(back->pings[0]->install_id, c.id) == 0);
    warmline__v1__ping_batch__free_unpacked(back, NULL);
    free(wire);
    wl_ping_batch_free(b);
    return 0;
}
