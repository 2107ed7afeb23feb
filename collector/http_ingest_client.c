/* The HTTP ingest listener's client address: the peer, or behind a trusted
 * reverse proxy the address its X-Forwarded-For names. Parsing the trusted
 * list runs once at start; the rest is pure and runs on libmicrohttpd's
 * threads (the list is read-only once parsed). No address is kept or logged
 * here: the caller uses it (rate limit, network table) and forgets it. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "http_ingest_parts.h"

#define XFF_ENTRY_MAX 64        /* "[v6 address]:port" is at most 53 bytes */
#define XFF_HEADERS_MAX 16      /* the rightmost X-Forwarded-For headers walked (a walk that
                                   gets past them ends at the leftmost address it believed) */

/* b is ::ffff:a.b.c.d (bytes: no alignment assumed, unlike IN6_IS_ADDR_V4MAPPED) */
static int v4mapped(const uint8_t b[16])
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(b, prefix, sizeof prefix) == 0;
}

/* The address of sa as 16 bytes (an IPv4 or IPv4-mapped one in bytes 0..3)
 * and its family: AF_INET, AF_INET6, or 0 for another family. */
static int addr_bytes(const struct sockaddr *sa, uint8_t b[16])
{
    memset(b, 0, 16);
    if (sa == NULL)
        return 0;
    if (sa->sa_family == AF_INET) {
        memcpy(b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return AF_INET;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(b, a->s6_addr + 12, 4);
            return AF_INET;
        }
        memcpy(b, a->s6_addr, 16);
        return AF_INET6;
    }
    return 0;
}

/* sa as a plain sockaddr: an IPv4-mapped IPv6 address as IPv4, port 0. */
static void normalize(int family, const uint8_t b[16], struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)out;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, b, 4);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, b, 16);
    }
}

static int in_cidr(const struct wl_cidr *c, int family, const uint8_t b[16])
{
    if (c->family != family)
        return 0;
    unsigned whole = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, b, whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->addr[whole] & mask) == (b[whole] & mask);
}

static int trusted_bytes(const struct wl_trusted *t, int family, const uint8_t b[16])
{
    for (size_t i = 0; t != NULL && i < t->n; i++)
        if (in_cidr(&t->v[i], family, b))
            return 1;
    return 0;
}

int wl_trusted_has(const struct wl_trusted *t, const struct sockaddr *sa)
{
    uint8_t b[16];
    int family = addr_bytes(sa, b);
    return family != 0 && trusted_bytes(t, family, b);
}

/* One CIDR of the list (s[0..len), trimmed): ADDRESS or ADDRESS/BITS. */
static int parse_cidr(const char *s, size_t len, struct wl_cidr *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (len == 0 || len >= sizeof buf)
        return -EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    if (slash != NULL)
        *slash++ = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, buf, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, buf, out->addr) == 1)
        out->family = AF_INET6;
    else
        return -EINVAL;
    unsigned max = out->family == AF_INET ? 32 : 128, bits = max;
    if (slash != NULL) {
        size_t n = strlen(slash);
        if (n == 0 || n > 3 || strspn(slash, "0123456789") != n || (n > 1 && slash[0] == '0'))
            return -EINVAL;
        bits = (unsigned)strtoul(slash, NULL, 10);
        if (bits > max)
            return -EINVAL;
    }
    out->bits = (uint8_t)bits;
    if (out->family == AF_INET6 && v4mapped(out->addr)) {
        if (out->bits < 96)
            return -EINVAL;
        memmove(out->addr, out->addr + 12, 4);
        memset(out->addr + 4, 0, 12);
        out->family = AF_INET;
        out->bits = (uint8_t)(out->bits - 96);
    }
    /* no host bits beyond the prefix: 10.0.0.1/8 is a typo, not a network */
    for (unsigned i = out->bits; i < 128; i++)
        if (out->addr[i / 8] & (0x80 >> (i % 8)))
            return -ERANGE;
    return 0;
}

int wl_trusted_parse(const char *list, struct wl_trusted *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    for (const char *p = list; p != NULL && *p != '\0';) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        p = comma ? comma + 1 : NULL;
        if (a == b)
            continue; /* "a, ,b" and a trailing comma: nothing there */
        if (out->n == WL_TRUSTED_MAX) {
            snprintf(err, errlen, "http_trusted_proxies: more than %d CIDRs", WL_TRUSTED_MAX);
            return -EINVAL;
        }
        int rc = parse_cidr(a, (size_t)(b - a), &out->v[out->n]);
        if (rc != 0) {
            char shown[48]; /* the entry as written, quotes and controls masked for the log */
            size_t n = (size_t)(b - a) < sizeof shown - 1 ? (size_t)(b - a) : sizeof shown - 1;
            for (size_t i = 0; i < n; i++)
                shown[i] = isalnum((unsigned char)a[i]) || strchr(".:/-_[]%", a[i]) ? a[i] : '?';
            shown[n] = '\0';
            snprintf(err, errlen,
                     rc == -ERANGE ? "http_trusted_proxies: %s%s has host bits set past its "
                                     "prefix length"
                                   : "http_trusted_proxies: %s%s is not an IPv4 or IPv6 "
                                     "address or CIDR (ADDRESS/BITS)",
                     shown, n < (size_t)(b - a) ? "..." : "");
            return -EINVAL;
        }
        out->n++;
    }
    return 0;
}

int wl_xff_entry_parse(const char *s, size_t len, struct sockaddr_storage *out)
{
    char buf[XFF_ENTRY_MAX + 1];
    uint8_t b[16];
    int family;

    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len == 0 || len > XFF_ENTRY_MAX || memchr(s, '\0', len) != NULL)
        return -EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *host = buf, *port = NULL;
    if (buf[0] == '[') { /* [v6] or [v6]:port */
        char *close = strchr(buf, ']');
        if (close == NULL)
            return -EINVAL;
        *close = '\0';
        host = buf + 1;
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0')
            return -EINVAL;
    } else {
        char *colon = strchr(buf, ':');
        if (colon != NULL && strchr(colon + 1, ':') == NULL) { /* v4:port */
            *colon = '\0';
            port = colon + 1;
        }
    }
    if (port != NULL) {
        size_t n = strlen(port);
        if (n == 0 || n > 5 || strspn(port, "0123456789") != n || strtoul(port, NULL, 10) > 65535)
            return -EINVAL;
    }
    if (inet_pton(AF_INET, host, b) == 1 && host == buf)
        family = AF_INET;   /* a bracketed IPv4 address is not a form anyone sends */
    else if (inet_pton(AF_INET6, host, b) == 1 && (host != buf || port == NULL))
        family = AF_INET6;
    else
        return -EINVAL;
    if (family == AF_INET6 && v4mapped(b)) {
        memmove(b, b + 12, 4);
        family = AF_INET;
    }
    normalize(family, b, out);
    return 0;
}

int wl_client_from_xff(const struct sockaddr *peer, const struct wl_trusted *t,
                       const struct wl_xff *xff, size_t n, struct sockaddr_storage *out)
{
    uint8_t b[16];
    int family = addr_bytes(peer, b);

    if (family == 0)
        return -EAFNOSUPPORT;
    normalize(family, b, out);
    if (!trusted_bytes(t, family, b))
        return 0; /* nobody else's X-Forwarded-For is believed */
    /* right to left, over the headers joined in order: the first hop that is
     * not a trusted proxy is the client */
    for (size_t h = n; h-- > 0;) {
        const char *v = xff[h].value;
        size_t end = xff[h].len;
        for (;;) {
            size_t start = end;
            while (start > 0 && v[start - 1] != ',')
                start--;
            struct sockaddr_storage e;
            int empty = 1;
            for (size_t i = start; i < end && empty; i++)
                empty = v[i] == ' ' || v[i] == '\t';
            if (!empty) {
                if (wl_xff_entry_parse(v + start, end - start, &e) != 0)
                    return 0; /* not an address: the last one believed stands */
                *out = e;
                family = addr_bytes((struct sockaddr *)&e, b);
                if (!trusted_bytes(t, family, b))
                    return 0;
            }
            if (start == 0)
                break;
            end = start - 1;
        }
    }
    return 0; /* every hop a trusted proxy: the leftmost */
}

struct xff_gather {
    struct wl_xff v[XFF_HEADERS_MAX];
    size_t n;                   /* headers seen (the last XFF_HEADERS_MAX are kept, in a ring) */
};

static enum MHD_Result gather_xff(void *cls, enum MHD_ValueKind kind, const char *key,
                                  size_t key_size, const char *value, size_t value_size)
{
    struct xff_gather *g = cls;
    (void)kind;
    if (key_size == 15 && strncasecmp(key, "X-Forwarded-For", 15) == 0 && value != NULL) {
        g->v[g->n % XFF_HEADERS_MAX] = (struct wl_xff){value, value_size};
        g->n++;
    }
    return MHD_YES;
}

int wl_http_client_address(struct MHD_Connection *conn, const struct wl_trusted *t,
                           struct sockaddr_storage *out)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *peer = ci ? ci->client_addr : NULL;
    struct xff_gather g = {.n = 0};
    struct wl_xff in_order[XFF_HEADERS_MAX];

    if (t == NULL || t->n == 0 || !wl_trusted_has(t, peer))
        return wl_client_from_xff(peer, NULL, NULL, 0, out);
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, gather_xff, &g);
    size_t kept = g.n < XFF_HEADERS_MAX ? g.n : XFF_HEADERS_MAX;
    for (size_t i = 0; i < kept; i++)
        in_order[i] = g.v[(g.n - kept + i) % XFF_HEADERS_MAX];
    return wl_client_from_xff(peer, t, in_order, kept, out);
}
