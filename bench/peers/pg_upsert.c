/* pg_upsert: PostgreSQL doing the collector's per-organization work for the
 * same pings, in its best form: one multi-row statement per batch (an
 * implicit transaction, committed with synchronous_commit as set), rows
 * passed as arrays (unnest) to one prepared statement, keys sorted, batches
 * pipelined over one connection (libpq pipeline mode).
 *
 *   pg_upsert CONNINFO CSV BATCH DEPTH SYNC
 *
 * CSV is warmline-loadgen --csv output. Every BATCH input pings become one
 * statement that (1) upserts each install's latest state (the latest ping
 * of the install in the batch; a ping at or below the stored seq changes
 * nothing, as the collector's dedup) and (2) adds to each organization's
 * totals the change of its installs' latest counts (the sum over its
 * installs of their latest counts, as the collector keeps), its install
 * count and its last-seen time. DEPTH statements are in flight at once.
 * SYNC: "on" or "off" (synchronous_commit). Batches are built before the
 * clock starts. Prints one JSON line: pings, batches, seconds, pings_per_s.
 * Unlike the collector it keeps no raw log, no daily history, no rules. */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NPARAM 8

static const char *const schema =
    "DROP TABLE IF EXISTS installs, orgs;"
    "CREATE TABLE installs (install_id text PRIMARY KEY, org bytea, seq bigint NOT NULL,"
    " sent_at bigint, registered_users int, active_users_daily int, active_users_monthly int,"
    " posts bigint);"
    "CREATE TABLE orgs (org bytea PRIMARY KEY, installs int, pings bigint,"
    " registered_users bigint, active_users_daily bigint, active_users_monthly bigint,"
    " posts bigint, last_seen bigint);";

static const char *const upsert =
    "WITH v AS (SELECT u.install_id, decode(NULLIF(u.org, ''), 'hex') AS org, u.seq, u.sent_at,"
    "   u.reg, u.dau, u.mau, u.posts"
    "  FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int4[], $6::int4[],"
    "   $7::int4[], $8::int8[]) AS u(install_id, org, seq, sent_at, reg, dau, mau, posts)),"
    " old AS (SELECT i.install_id, i.registered_users, i.active_users_daily,"
    "   i.active_users_monthly, i.posts FROM installs i JOIN v USING (install_id)),"
    " up AS (INSERT INTO installs AS i SELECT install_id, org, seq, sent_at, reg, dau, mau, posts"
    "   FROM v ORDER BY install_id"
    "   ON CONFLICT (install_id) DO UPDATE SET org = excluded.org, seq = excluded.seq,"
    "   sent_at = excluded.sent_at, registered_users = excluded.registered_users,"
    "   active_users_daily = excluded.active_users_daily,"
    "   active_users_monthly = excluded.active_users_monthly, posts = excluded.posts"
    "   WHERE i.seq < excluded.seq RETURNING i.install_id)"
    " INSERT INTO orgs AS o (org, installs, pings, registered_users, active_users_daily,"
    "  active_users_monthly, posts, last_seen)"
    " SELECT v.org, count(*) FILTER (WHERE old.install_id IS NULL), count(*),"
    "  sum(v.reg - coalesce(old.registered_users, 0)),"
    "  sum(v.dau - coalesce(old.active_users_daily, 0)),"
    "  sum(v.mau - coalesce(old.active_users_monthly, 0)),"
    "  sum(v.posts - coalesce(old.posts, 0)), max(v.sent_at)"
    " FROM up JOIN v USING (install_id) LEFT JOIN old USING (install_id)"
    " WHERE v.org IS NOT NULL GROUP BY v.org ORDER BY v.org"
    " ON CONFLICT (org) DO UPDATE SET installs = o.installs + excluded.installs,"
    "  pings = o.pings + excluded.pings,"
    "  registered_users = o.registered_users + excluded.registered_users,"
    "  active_users_daily = o.active_users_daily + excluded.active_users_daily,"
    "  active_users_monthly = o.active_users_monthly + excluded.active_users_monthly,"
    "  posts = o.posts + excluded.posts, last_seen = greatest(o.last_seen, excluded.last_seen)";

struct row {
    char *f[9]; /* install_id, org, seq, sent_at, reg, dau, mau, posts, posts_previous_day */
    uint64_t seq;
    size_t idx; /* input order */
};

struct batch {
    char *param[NPARAM];
    size_t pings;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int by_install_then_seq(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    int c = strcmp(x->f[0], y->f[0]);
    if (c != 0)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Appends s to the growing array literal *buf. */
static void append(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s);
    if (*len + n + 4 > *cap) {
        *cap = (*cap + n + 4) * 2;
        *buf = realloc(*buf, *cap);
        if (*buf == NULL) {
            fprintf(stderr, "pg_upsert: out of memory\n");
            exit(1);
        }
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* rows[0..n): one batch; keeps each install's latest ping, sorted by
 * install_id, as eight array literals. */
static void build_batch(struct row *rows, size_t n, struct batch *b)
{
    static const int col[NPARAM] = {0, 1, 2, 3, 4, 5, 6, 7};
    size_t len[NPARAM] = {0}, cap[NPARAM] = {0};

    qsort(rows, n, sizeof *rows, by_install_then_seq);
    b->pings = n;
    for (int p = 0; p < NPARAM; p++) {
        b->param[p] = NULL;
        append(&b->param[p], &len[p], &cap[p], "{");
    }
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && strcmp(rows[i].f[0], rows[i + 1].f[0]) == 0)
            continue; /* a later ping of the same install is in this batch */
        for (int p = 0; p < NPARAM; p++) {
            const char *v = rows[i].f[col[p]];
            if (!first)
                append(&b->param[p], &len[p], &cap[p], ",");
            append(&b->param[p], &len[p], &cap[p], v[0] ? v : "\"\"");
        }
        first = 0;
    }
    for (int p = 0; p < NPARAM; p++)
        append(&b->param[p], &len[p], &cap[p], "}");
}

static void die_pg(PGconn *c, const char *what)
{
    fprintf(stderr, "pg_upsert: %s: %s", what, PQerrorMessage(c));
    exit(1);
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        die_pg(c, sql);
    PQclear(r);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "Usage: pg_upsert CONNINFO CSV BATCH DEPTH SYNC(on|off)\n");
        return 2;
    }
    size_t bsize = strtoul(argv[3], NULL, 10), depth = strtoul(argv[4], NULL, 10);
    if (bsize == 0 || depth == 0 || (strcmp(argv[5], "on") != 0 && strcmp(argv[5], "off") != 0)) {
        fprintf(stderr, "pg_upsert: BATCH and DEPTH must be positive, SYNC on or off\n");
        return 2;
    }

    /* The pings, into memory. */
    FILE *in = fopen(argv[2], "r");
    if (in == NULL) {
        perror(argv[2]);
        return 1;
    }
    size_t nrows = 0, cap = 1 << 16;
    struct row *rows = malloc(cap * sizeof *rows);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t got;
    if (getline(&line, &lcap, in) < 0) { /* the header */
        fprintf(stderr, "pg_upsert: %s is empty\n", argv[2]);
        return 1;
    }
    while ((got = getline(&line, &lcap, in)) > 0) {
        if (line[got - 1] == '\n')
            line[got - 1] = '\0';
        if (nrows == cap)
            rows = realloc(rows, (cap *= 2) * sizeof *rows);
        struct row *r = &rows[nrows];
        char *s = strdup(line);
        int k = 0;
        for (char *tok = s; k < 9; k++) {
            r->f[k] = tok;
            char *comma = tok ? strchr(tok, ',') : NULL;
            if (comma)
                *comma = '\0';
            tok = comma ? comma + 1 : NULL;
            if (r->f[k] == NULL) {
                fprintf(stderr, "pg_upsert: line %zu: expected 9 fields\n", nrows + 2);
                return 1;
            }
        }
        r->seq = strtoull(r->f[2], NULL, 10);
        r->idx = nrows++;
    }
    fclose(in);
    free(line);

    size_t nb = (nrows + bsize - 1) / bsize;
    struct batch *batches = calloc(nb ? nb : 1, sizeof *batches);
    for (size_t i = 0; i < nb; i++) {
        size_t off = i * bsize, n = nrows - off < bsize ? nrows - off : bsize;
        build_batch(rows + off, n, &batches[i]);
    }

    PGconn *c = PQconnectdb(argv[1]);
    if (PQstatus(c) != CONNECTION_OK)
        die_pg(c, "connecting");
    exec_ok(c, schema);
    char set[64];
    snprintf(set, sizeof set, "SET synchronous_commit = %s", argv[5]);
    exec_ok(c, set);
    PGresult *pr = PQprepare(c, "upsert", upsert, NPARAM, NULL);
    if (PQresultStatus(pr) != PGRES_COMMAND_OK)
        die_pg(c, "preparing the upsert");
    PQclear(pr);
    if (!PQenterPipelineMode(c))
        die_pg(c, "entering pipeline mode");

    double t0 = now_s();
    size_t sent = 0, done = 0;
    while (done < nb) {
        while (sent < nb && sent - done < depth) {
            if (!PQsendQueryPrepared(c, "upsert", NPARAM, (const char *const *)batches[sent].param,
                                     NULL, NULL, 0) ||
                !PQpipelineSync(c))
                die_pg(c, "sending a batch");
            sent++;
        }
        if (PQflush(c) < 0)
            die_pg(c, "flushing");
        /* One batch's results: the statement's, a NULL, then the sync's. */
        PGresult *r;
        int got_sync = 0;
        while (!got_sync) {
            r = PQgetResult(c);
            if (r == NULL)
                continue;
            ExecStatusType st = PQresultStatus(r);
            if (st == PGRES_PIPELINE_SYNC)
                got_sync = 1;
            else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
                fprintf(stderr, "pg_upsert: batch %zu: %s", done, PQresultErrorMessage(r));
                return 1;
            }
            PQclear(r);
        }
        done++;
    }
    double s = now_s() - t0;
    PQexitPipelineMode(c);

    PGresult *q = PQexec(c, "SELECT (SELECT count(*) FROM installs), (SELECT count(*) FROM orgs),"
                            " (SELECT coalesce(sum(pings), 0) FROM orgs)");
    if (PQresultStatus(q) != PGRES_TUPLES_OK)
        die_pg(c, "counting");
    printf("{\"pings\":%zu,\"batches\":%zu,\"batch\":%zu,\"depth\":%zu,\"synchronous_commit\":\"%s\","
           "\"seconds\":%.4f,\"pings_per_s\":%.0f,\"installs\":%s,\"orgs\":%s,"
           "\"org_pings\":%s}\n",
           nrows, nb, bsize, depth, argv[5], s, s > 0 ? (double)nrows / s : 0.0,
           PQgetvalue(q, 0, 0), PQgetvalue(q, 0, 1), PQgetvalue(q, 0, 2));
    PQclear(q);
    PQfinish(c);
    return 0;
}
