/* The parts of the public HTTP ingest listener (http_ingest.h is its door):
 * the security check's query mapped to a ping (http_ingest_security.c, pure:
 * no I/O, any thread), the operator's bulletins (http_ingest_bulletins.c,
 * loaded once at start, read-only after), and the guard that keeps anonymous
 * senders within bounds (http_ingest_guard.c: a per-address token bucket and
 * a whole-request deadline, thread-safe, for libmicrohttpd's threads), the
 * client address behind trusted proxies (http_ingest_client.c, pure but for
 * reading the headers) and the TLS files (http_ingest_tls.c, at start).
 * Declared here for http_ingest.c, the unit tests and the fuzz target. */
#ifndef WL_HTTP_INGEST_PARTS_H
#define WL_HTTP_INGEST_PARTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ping.h"

/* ---- the security check (GET /security) ---- */

#define WL_SECURITY_PARAMS_MAX 32   /* query parameters read at most; more is a 400 */

/* One query parameter as libmicrohttpd unescaped it (lengths count any NUL). */
struct wl_sq_param {
    const char *key;
    size_t klen;
    const char *value;          /* NULL for "?key" without '=' */
    size_t vlen;
};

/* What one check says, validated. Strings are printable ASCII. */
struct wl_security_check {
    char id[WL_INSTALL_ID_MAX + 1];
    char version[WL_STRING_MAX + 1];   /* the version part of b: "11.6.0" of "11.6.0.1234" */
    const char *edition;               /* "enterprise" (be=true), "team" (false), "" (absent) */
    char db[WL_STRING_MAX + 1];
    char os[WL_STRING_MAX + 1];
    uint32_t uc, auc, tc;              /* 0 when absent */
    int has_uc, has_auc, has_tc;
    int has_db, has_os;
    int test_run;                      /* ut=1 */
};

/* Reads id, b, be, db, os, uc, auc, tc, ut (other names are ignored; any of
 * them twice, more than WL_SECURITY_PARAMS_MAX parameters, an id that is not
 * 1 to 64 printable ASCII bytes, a string over 128 bytes or not printable,
 * be other than true/false, ut other than 0/1, or a count that is not a
 * decimal number up to max_count are refused). Returns 0, or -EINVAL with
 * the reason in why (a short fixed text, never the sender's bytes). */
int wl_security_parse(const struct wl_sq_param *params, size_t n, uint64_t max_count,
                      struct wl_security_check *out, char *why, size_t whylen);

/* The ping a check becomes, alone in a batch (free with wl_ping_batch_free):
 * install_id = id, no org key, seq = 1 (a placeholder: the writer assigns
 * edge pings their seq), sent_at = received_at_ms, version, edition,
 * database_type, operating_system, registered_users = uc,
 * active_users_daily = auc, teams = tc. NULL when out of memory. */
wl_ping_batch *wl_security_batch(const struct wl_security_check *c, int64_t received_at_ms);

/* What the check's ping carries (its edge, malloc'd; NULL when out of
 * memory): the version always, and each of be, db, os, uc, auc, tc the
 * check had; the rest of the install's latest ping stays as it was. */
struct wl_edge *wl_security_edge(const struct wl_security_check *c);

/* ---- bulletins ---- */

#define WL_BULLETIN_ID_MAX 64
#define WL_BULLETINS_MAX 1024
#define WL_BULLETIN_BODY_MAX (1024 * 1024)

struct wl_bulletin {
    char id[WL_BULLETIN_ID_MAX + 1];        /* [A-Za-z0-9._-], unique */
    char version[WL_STRING_MAX + 1];        /* applies_to_version */
    char *body;                             /* the body file's bytes */
    size_t body_len;
};

struct wl_bulletins {
    struct wl_bulletin *v;
    size_t n;
};

/* Loads a JSON array of {"id","applies_to_version","body_file"} (body_file
 * relative to the bulletins file's folder unless absolute) and every body.
 * An empty path loads none. Returns 0, or -EINVAL/-ENOMEM with "FILE: line
 * N: what is wrong" or "FILE: entry N: what is wrong" in err. */
int wl_bulletins_load(const char *path, struct wl_bulletins *out, char *err, size_t errlen);
void wl_bulletins_free(struct wl_bulletins *b);

/* The answer to a check of version: [{"id","applies_to_version"}...] as
 * compact JSON (malloc'd, *len its length), "[]" when none apply. */
char *wl_bulletins_answer(const struct wl_bulletins *b, const char *version, size_t *len);

/* The bulletin with this id, or NULL. */
const struct wl_bulletin *wl_bulletins_find(const struct wl_bulletins *b, const char *id);

/* ---- the Rudder batch (POST /v1/batch): http_ingest_batch.c ---- */

#define WL_RUDDER_KEYS_MAX 64

/* The configured write keys, as digests (never kept or compared raw). */
struct wl_rudder_keys {
    uint8_t hash[WL_RUDDER_KEYS_MAX][32];
    size_t n;
};

/* Parses rudder_write_keys (comma-separated, spaces around trimmed; empty:
 * none, any key is accepted). -EINVAL with err for an empty entry or too
 * many keys. */
int wl_rudder_keys_parse(const char *csv, struct wl_rudder_keys *out, char *err, size_t errlen);

/* 1 when user (the HTTP Basic user: the write key) is one of them, or none
 * are configured. Constant time in the key: every key is compared. */
int wl_rudder_keys_allow(const struct wl_rudder_keys *k, const char *user, size_t len);

/* A request body as it is read: at most max bytes kept, the rest read past
 * (over set); the caller answers 413 then. */
struct wl_body {
    uint8_t *p;
    size_t len, cap;
    int over;
};

/* 0, or -ENOMEM. */
int wl_body_add(struct wl_body *b, const char *data, size_t n, size_t max);
void wl_body_free(struct wl_body *b);

struct wl_networks;
struct sockaddr;

/* The network table's organization for client (the request's client
 * address) on every ping (a batch's, or a check's) that named no domain:
 * org_key and presence WL_FIELD_ORG_KEY | WL_ORG_BY_NETWORK. Returns how
 * many pings took it. */
size_t wl_edge_apply_network(wl_ping_batch *batch, struct wl_edge *edge,
                             struct wl_networks *nets, const struct sockaddr *client);

/* What a batch came to. */
struct wl_rudder_outcome {
    uint64_t accepted, duplicates, rejected; /* the writer's, per mapped event */
    uint64_t dropped, ignored;               /* the mapping's (rudder.h) */
};

/* {"accepted":..,"duplicates":..,"rejected":..,"dropped":..,"ignored":..}
 * (malloc'd, *len its length), NULL when out of memory. */
char *wl_rudder_answer(const struct wl_rudder_outcome *o, size_t *len);

/* ---- the guard ---- */

struct wl_http_guard;

struct wl_http_guard_opts {
    size_t table_size;          /* addresses tracked (fixed) */
    uint64_t rate, burst;       /* requests per second per address, bucket size (rate 0: off) */
    uint64_t rate_total, burst_total; /* requests per second from all addresses together,
                                         bucket size (rate_total 0: off); loopback too */
    int limit_loopback;         /* the bucket applies to loopback senders too */
    size_t max_conns;           /* connections tracked for the deadline (MHD's cap) */
    uint64_t deadline_ms;       /* a request, from its first byte, must be done by then */
    uint64_t hold_max_bytes;    /* body bytes one address may hold at once (0: no cap) */
};

/* Creates the guard and starts its sweeper thread, which shuts down the
 * socket of every connection whose request has run past deadline_ms.
 * Returns 0 or a negative code with err. */
int wl_http_guard_new(const struct wl_http_guard_opts *o, struct wl_http_guard **out,
                      char *err, size_t errlen);
/* Stops the sweeper and frees. NULL is a no-op. Call after the daemon stopped. */
void wl_http_guard_free(struct wl_http_guard *g);

/* One request from sa, its client address (wl_http_client_address: the
 * peer, or the address a trusted proxy forwarded): 0 when it may go on, else
 * the milliseconds until that address, or all of them together, has a token
 * (at least 1). Thread-safe. */
uint64_t wl_http_guard_admit(struct wl_http_guard *g, const struct sockaddr *sa);

/* n more tokens for one request that carries n more pings (a Rudder batch:
 * the buckets count pings, so one request cannot bring thousands), from the
 * address's bucket and the bucket of all: 0 when taken, else the ms until
 * they are there. At most a bucket less one token is asked (the request
 * took one): a batch larger than the bucket is taken when it is full. */
uint64_t wl_http_guard_admit_n(struct wl_http_guard *g, const struct sockaddr *sa, uint32_t n);

/* Body bytes an address holds (its unfinished and unanswered bodies), in
 * 64 KiB units: one request now holds total bytes; 0 when that fits within
 * the address's hold_max_bytes (*units, what this request has counted,
 * grows to cover it), -EMFILE when not. sa NULL (unknown): not counted.
 * Release *units when the request ends. Thread-safe. */
#define WL_HTTP_HOLD_UNIT (64 * 1024)
int wl_http_guard_hold(struct wl_http_guard *g, const struct sockaddr *sa, size_t total,
                       uint32_t *units);
void wl_http_guard_release(struct wl_http_guard *g, const struct sockaddr *sa, uint32_t units);

/* A connection opened on socket fd: returns its slot (the connection's
 * socket context), or NULL when none is free (close it). */
void *wl_http_guard_conn_open(struct wl_http_guard *g, int fd);
/* Its request is answered: the next one's clock starts now. */
void wl_http_guard_conn_restart(struct wl_http_guard *g, void *slot);
/* Its next request is paid for: a token was taken when it was accepted (an
 * HTTPS connection pays for its handshake before it is made). */
void wl_http_guard_conn_prepay(struct wl_http_guard *g, void *slot);
/* 1 (once) when its request was paid for at accept, else 0: admit it then. */
int wl_http_guard_conn_use_prepaid(struct wl_http_guard *g, void *slot);
/* It closed (before its socket is closed: libmicrohttpd's order). */
void wl_http_guard_conn_close(struct wl_http_guard *g, void *slot);

/* ---- TLS (http_ingest_tls.c) ---- */

#define WL_TLS_FILE_MAX (1024 * 1024)   /* a PEM file longer than this is refused */

/* The PEM files' bytes, NUL-terminated, for libmicrohttpd (which keeps the
 * pointers: free them only after the daemon stopped). cert NULL: no TLS. */
struct wl_http_tls {
    char *cert, *key;
    size_t cert_len, key_len;
};

/* Reads both files (both empty: no TLS, out zeroed) and checks them with
 * GnuTLS: a certificate (chain), an unencrypted private key, and that they
 * go together; also that libmicrohttpd has TLS. Returns 0, or a negative
 * code with the option, the file and what is wrong in err. */
int wl_http_tls_load(const char *cert_file, const char *key_file, struct wl_http_tls *out,
                     char *err, size_t errlen);
/* Zeroes the key's bytes and frees both. */
void wl_http_tls_free(struct wl_http_tls *t);

/* ---- the client address (http_ingest_client.c) ----
 *
 * The request's client is its peer, unless the peer is a trusted reverse
 * proxy (http_trusted_proxies) and the request carries X-Forwarded-For:
 * then the rightmost address in it that is not itself a trusted proxy.
 * Several X-Forwarded-For headers are one list, joined in order (RFC 7230
 * 3.2.2); only the 16 rightmost are read. The walk goes right to left and
 * stops at an entry that is not an address (garbage, "unknown", a port out
 * of range): the address believed last (the nearest trusted proxy, or the
 * peer) stands. An untrusted peer's X-Forwarded-For is never read. Entries:
 * an IPv4 or IPv6 address with optional spaces around it, IPv6 in brackets
 * or not, a port after IPv4 ("a.b.c.d:port") or bracketed IPv6
 * ("[v6]:port") accepted and dropped (not standard, some proxies send it);
 * an IPv4-mapped IPv6 address is IPv4. The address is used, never kept. */

#define WL_TRUSTED_MAX 64

struct wl_cidr {
    uint8_t family;             /* AF_INET or AF_INET6 */
    uint8_t bits;               /* prefix length */
    uint8_t addr[16];           /* IPv4 in bytes 0..3; no bits set past the prefix */
};

struct wl_trusted {
    struct wl_cidr v[WL_TRUSTED_MAX];
    size_t n;
};

/* Parses a comma-separated list of CIDRs (ADDRESS/BITS, IPv4 or IPv6; a bare
 * address is /32 or /128; spaces around each, empty ones skipped). Host bits
 * past the prefix (10.0.0.1/8), more than WL_TRUSTED_MAX CIDRs, or anything
 * else is -EINVAL, with "http_trusted_proxies: <the CIDR> ..." in err. */
int wl_trusted_parse(const char *list, struct wl_trusted *out, char *err, size_t errlen);

/* 1 when sa is in one of the trusted CIDRs (IPv4-mapped IPv6 as IPv4). */
int wl_trusted_has(const struct wl_trusted *t, const struct sockaddr *sa);

/* One X-Forwarded-For entry (s[0..len), not NUL-terminated) as an address
 * with port 0. Returns 0 or -EINVAL. */
int wl_xff_entry_parse(const char *s, size_t len, struct sockaddr_storage *out);

/* One X-Forwarded-For header's value. */
struct wl_xff {
    const char *value;
    size_t len;
};

/* The client address of a request from peer with these X-Forwarded-For
 * values (in header order) under trusted (NULL: none), as described above,
 * into out (port 0). Returns 0, or -EAFNOSUPPORT for a peer that is neither
 * IPv4 nor IPv6. Pure. */
int wl_client_from_xff(const struct sockaddr *peer, const struct wl_trusted *t,
                       const struct wl_xff *xff, size_t n, struct sockaddr_storage *out);

/* The same for a request on one of libmicrohttpd's threads (its headers
 * must be in: the access handler's first call). */
struct MHD_Connection;
int wl_http_client_address(struct MHD_Connection *conn, const struct wl_trusted *t,
                           struct sockaddr_storage *out);

#endif
